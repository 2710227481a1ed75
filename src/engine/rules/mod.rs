//! The rule catalogue. One file per rule type, each with its unit tests.
//!
//! A policy's `rule:` holds exactly one of these, keyed by its type, e.g.
//! `rule: {serviceType: {forbidden: [NodePort]}}`. Unknown rule types and
//! unknown parameters are load errors.

pub mod annotation_values;
pub mod cel;
pub mod external_ips;
pub mod external_name;
pub mod forbidden_annotations;
pub mod gateway_allowed_routes;
pub mod gateway_auth;
pub mod gateway_listeners;
pub mod grpc_backends;
pub mod ingress_auth;
pub mod ingress_paths;
pub mod ingress_tls;
pub mod reference_grants;
pub mod route_hostnames;
pub mod route_tls;
pub mod service_type;
pub mod set_annotations;
pub mod source_ranges;
pub mod wildcard_hosts;

use serde::Deserialize;

use super::controller::Family;
use super::gateway::GatewayView;
use super::input::{Input, NamespaceLabels};
use super::object::{Kind, Object};
use super::patch::PatchBuilder;
use super::{Finding, Stage};

/// What a rule looks at: the typed object and, for an Ingress, its
/// controller family; for a route, the Gateways it can attach to.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub object: &'a Object,
    /// `None` when the Ingress names no known class (or for another kind).
    pub controller: Option<Family>,
    /// The request's namespace (a route's `parentRefs` default to it).
    pub namespace: &'a str,
    /// What routes attach to and what targets them, as far as known.
    pub gateways: &'a GatewayView,
    /// The whole request, for rules that read more than the object (`cel`);
    /// `None` where an object is judged outside a request (the inventory).
    pub request: Option<Request<'a>>,
}

/// The admission request a subject comes from, and its namespace's labels.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub input: &'a Input<'a>,
    pub labels: NamespaceLabels<'a>,
}

impl Subject<'_> {
    /// The families whose annotations apply: the known one, or all of them
    /// when the controller is unknown.
    pub fn families(&self) -> &[Family] {
        match &self.controller {
            Some(family) => std::slice::from_ref(family),
            None => &Family::ALL,
        }
    }

    /// Controller wording for messages: `the nginx controller` or `an unknown ingress class`.
    pub fn controller_name(&self) -> String {
        match self.controller {
            Some(family) => format!("the {} controller", family.as_str()),
            None => "an unknown ingress class".to_owned(),
        }
    }
}

/// One rule, with its parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Rule {
    ServiceType(service_type::ServiceType),
    #[serde(rename = "externalIPs")]
    ExternalIps(external_ips::ExternalIps),
    ExternalName(external_name::ExternalName),
    SourceRanges(source_ranges::SourceRanges),
    IngressTls(ingress_tls::IngressTls),
    IngressAuth(ingress_auth::IngressAuth),
    ForbiddenAnnotations(forbidden_annotations::ForbiddenAnnotations),
    SetAnnotations(set_annotations::SetAnnotations),
    AnnotationValues(annotation_values::AnnotationValues),
    IngressPaths(ingress_paths::IngressPaths),
    WildcardHosts(wildcard_hosts::WildcardHosts),
    GatewayListeners(gateway_listeners::GatewayListeners),
    GatewayAllowedRoutes(gateway_allowed_routes::GatewayAllowedRoutes),
    RouteTls(route_tls::RouteTls),
    RouteHostnames(route_hostnames::RouteHostnames),
    GatewayAuth(gateway_auth::GatewayAuth),
    ReferenceGrants(reference_grants::ReferenceGrants),
    GrpcBackends(grpc_backends::GrpcBackends),
    Cel(cel::Cel),
}

const SERVICE: &[Kind] = &[Kind::Service];
const INGRESS: &[Kind] = &[Kind::Ingress];
const BOTH: &[Kind] = &[Kind::Service, Kind::Ingress];
const LISTENERS: &[Kind] = &[Kind::Gateway, Kind::ListenerSet];
const HTTP_ROUTES: &[Kind] = &[Kind::HttpRoute, Kind::GrpcRoute];
const ROUTES: &[Kind] = &[Kind::HttpRoute, Kind::GrpcRoute, Kind::TlsRoute];

impl Rule {
    /// The rule type as written in policy files.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::ServiceType(_) => "serviceType",
            Rule::ExternalIps(_) => "externalIPs",
            Rule::ExternalName(_) => "externalName",
            Rule::SourceRanges(_) => "sourceRanges",
            Rule::IngressTls(_) => "ingressTls",
            Rule::IngressAuth(_) => "ingressAuth",
            Rule::ForbiddenAnnotations(_) => "forbiddenAnnotations",
            Rule::SetAnnotations(_) => "setAnnotations",
            Rule::AnnotationValues(_) => "annotationValues",
            Rule::IngressPaths(_) => "ingressPaths",
            Rule::WildcardHosts(_) => "wildcardHosts",
            Rule::GatewayListeners(_) => "gatewayListeners",
            Rule::GatewayAllowedRoutes(_) => "gatewayAllowedRoutes",
            Rule::RouteTls(_) => "routeTls",
            Rule::RouteHostnames(_) => "routeHostnames",
            Rule::GatewayAuth(_) => "gatewayAuth",
            Rule::ReferenceGrants(_) => "referenceGrants",
            Rule::GrpcBackends(_) => "grpcBackends",
            Rule::Cel(_) => "cel",
        }
    }

    /// The kinds the rule can check.
    pub fn kinds(&self) -> &'static [Kind] {
        match self {
            Rule::ServiceType(_) | Rule::ExternalIps(_) => SERVICE,
            Rule::ExternalName(_) => SERVICE,
            Rule::IngressTls(_) | Rule::IngressAuth(_) => INGRESS,
            Rule::IngressPaths(_) | Rule::WildcardHosts(_) => INGRESS,
            Rule::SourceRanges(_) | Rule::ForbiddenAnnotations(_) | Rule::SetAnnotations(_) => BOTH,
            Rule::AnnotationValues(_) => BOTH,
            Rule::GatewayListeners(_) | Rule::GatewayAllowedRoutes(_) => LISTENERS,
            Rule::RouteTls(_) | Rule::GatewayAuth(_) => HTTP_ROUTES,
            Rule::RouteHostnames(_) => ROUTES,
            Rule::ReferenceGrants(_) => &[Kind::ReferenceGrant],
            Rule::GrpcBackends(_) => &[Kind::HttpRoute],
            // Every kind: a Gateway API object is read into a lean type, and
            // its JSON is kept for CEL (`Input::object_json`).
            Rule::Cel(_) => &Kind::KNOWN,
        }
    }

    /// Whether the rule validates (`/validate`) or mutates (`/mutate`).
    pub fn stage(&self) -> Stage {
        match self {
            Rule::SetAnnotations(_) => Stage::Mutate,
            _ => Stage::Validate,
        }
    }

    /// What is wrong with the object, if anything.
    pub fn check(&self, subject: &Subject<'_>) -> Vec<Finding> {
        let mut findings = Vec::new();
        match (self, subject.object) {
            (Rule::ServiceType(rule), Object::Service(service)) => rule.check(service, &mut findings),
            (Rule::ExternalIps(rule), Object::Service(service)) => rule.check(service, &mut findings),
            (Rule::ExternalName(rule), Object::Service(service)) => rule.check(service, &mut findings),
            (Rule::SourceRanges(rule), Object::Service(service)) => rule.check_service(service, &mut findings),
            (Rule::SourceRanges(rule), Object::Ingress(ingress)) => rule.check_ingress(ingress, subject, &mut findings),
            (Rule::IngressTls(rule), Object::Ingress(ingress)) => rule.check(ingress, subject, &mut findings),
            (Rule::IngressAuth(rule), Object::Ingress(ingress)) => rule.check(ingress, subject, &mut findings),
            (Rule::IngressPaths(rule), Object::Ingress(ingress)) => rule.check(ingress, subject, &mut findings),
            (Rule::WildcardHosts(rule), Object::Ingress(ingress)) => rule.check(ingress, &mut findings),
            (Rule::GatewayListeners(rule), _) => rule.check(subject, &mut findings),
            (Rule::GatewayAllowedRoutes(rule), _) => rule.check(subject, &mut findings),
            (Rule::RouteTls(rule), _) => rule.check(subject, &mut findings),
            (Rule::RouteHostnames(rule), _) => rule.check(subject, &mut findings),
            (Rule::GatewayAuth(rule), _) => rule.check(subject, &mut findings),
            (Rule::ReferenceGrants(rule), _) => rule.check(subject, &mut findings),
            (Rule::GrpcBackends(rule), _) => rule.check(subject, &mut findings),
            (Rule::Cel(rule), _) => rule.check(subject, &mut findings),
            (Rule::ForbiddenAnnotations(rule), object) => {
                if let Some(metadata) = object.metadata() {
                    rule.check(metadata, &mut findings)
                }
            }
            (Rule::AnnotationValues(rule), object) => {
                if let Some(metadata) = object.metadata() {
                    rule.check(metadata, &mut findings)
                }
            }
            _ => {}
        }
        findings
    }

    /// Adds the rule's changes to the patch (mutating rules only).
    pub fn mutate(&self, subject: &Subject<'_>, patch: &mut PatchBuilder) {
        if let Rule::SetAnnotations(rule) = self {
            rule.mutate(subject, patch);
        }
    }
}

/// Helpers for the rules' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::engine::controller::ControllerMap;

    pub fn service(json: serde_json::Value) -> Object {
        Object::Service(Box::new(serde_json::from_value(json).expect("valid Service")))
    }

    pub fn ingress(json: serde_json::Value) -> Object {
        Object::Ingress(Box::new(serde_json::from_value(json).expect("valid Ingress")))
    }

    /// Parses a rule from its YAML-equivalent JSON, e.g. `{"serviceType": {...}}`.
    pub fn rule(json: serde_json::Value) -> Rule {
        serde_json::from_value(json).expect("valid rule")
    }

    /// Runs a rule's check with the default controller table, in namespace
    /// `shop`, with no Gateway known.
    pub fn check(rule: &Rule, object: &Object) -> Vec<Finding> {
        check_with(rule, object, &crate::engine::gateway::view::EMPTY)
    }

    /// Runs a rule's check in namespace `shop` with the Gateways of `gateways` known.
    pub fn check_with(rule: &Rule, object: &Object, gateways: &GatewayView) -> Vec<Finding> {
        let controller = match object {
            Object::Ingress(ingress) => ControllerMap::default().family_of(ingress),
            _ => None,
        };
        rule.check(&Subject { object, controller, namespace: "shop", gateways, request: None })
    }

    /// A Gateway API object of the given kind from its JSON.
    pub fn gateway_api(kind: Kind, json: serde_json::Value) -> Object {
        match Object::from_json(kind, &json.to_string()) {
            Object::Invalid { error, .. } => panic!("invalid {}: {error}", kind.as_str()),
            object => object,
        }
    }

    pub fn violation(text: &str) -> Finding {
        Finding::Violation(text.to_owned())
    }
}
