//! The entry points of one object and their protections, read with the
//! engine's functions and the parameters of the policies that apply.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::Value;

use super::{AllowList, AllowListKind, Auth, AuthMethod, Entry, EntryType, Reach, Status, Tls, TlsSource};
use crate::admission::{Requester, Review};
use crate::check::{self, Source, namespaces::LabelMap};
use crate::engine::controller::Family;
use crate::engine::gateway::attachment::{Attachment, selected};
use crate::engine::gateway::{GatewayView, Listener, ListenerSet, Route, TlsMode};
use crate::engine::input::{ClassControllers, IngressClasses};
use crate::engine::load_balancer::{self, Exposure, Provider};
use crate::engine::object::annotation;
use crate::engine::rules::gateway_auth::GatewayAuth;
use crate::engine::rules::ingress_auth::{APPLICATION_AUTH, IngressAuth};
use crate::engine::rules::source_ranges::{IngressAllowList, SourceRanges};
use crate::engine::rules::{Rule, Subject};
use crate::engine::{Input, Kind, NamespaceLabels, Object, Operation, PolicySet, Stage};

/// cert-manager's ingress-shim fills `spec.tls[].secretName` of an Ingress
/// carrying one of these annotations.
const CERT_MANAGER_ISSUERS: [&str; 2] = ["cert-manager.io/cluster-issuer", "cert-manager.io/issuer"];

/// GKE's Gateway certificate map annotation.
const GKE_CERTMAP: &str = "networking.gke.io/certmap";

/// The entry points of one object.
pub type ObjectEntries = Vec<Entry>;

/// What every object is read against: the policy set, the namespace labels,
/// the IngressClasses and the Gateways of the whole input.
pub(super) struct Context<'a> {
    set: &'a PolicySet,
    default_namespace: Option<&'a str>,
    labels: &'a LabelMap,
    classes: &'a ClassControllers,
    gateways: GatewayView,
    /// `namespace/name` of each Gateway to its class.
    gateway_classes: BTreeMap<String, String>,
    /// Parameters when no policy of the set has the rule: the rule's defaults.
    default_ingress_auth: IngressAuth,
    default_gateway_auth: GatewayAuth,
    default_source_ranges: SourceRanges,
}

impl<'a> Context<'a> {
    pub(super) fn new(
        sources: &[Source],
        set: &'a PolicySet,
        options: &'a check::Options,
        labels: &'a LabelMap,
    ) -> Context<'a> {
        let default_namespace = options.namespace.as_deref();
        let mut gateways = GatewayView::default();
        let mut gateway_classes = BTreeMap::new();
        for source in sources {
            for document in &source.documents {
                for (_, object) in check::objects(&document.value) {
                    let namespace = Review::namespace_of(object, default_namespace);
                    gateways.insert_manifest(object, namespace);
                    if kind_of(object) == Kind::Gateway
                        && let (Some(name), Some(class)) = (
                            object.pointer("/metadata/name").and_then(Value::as_str),
                            object.pointer("/spec/gatewayClassName").and_then(Value::as_str),
                        )
                    {
                        gateway_classes.insert(format!("{namespace}/{name}"), class.to_owned());
                    }
                }
            }
        }
        let defaults = serde_json::json!({});
        Context {
            set,
            default_namespace,
            labels,
            classes: &options.ingress_classes,
            gateways,
            gateway_classes,
            default_ingress_auth: serde_json::from_value(defaults.clone()).expect("ingressAuth has defaults"),
            default_gateway_auth: serde_json::from_value(defaults.clone()).expect("gatewayAuth has defaults"),
            default_source_ranges: serde_json::from_value(defaults).expect("sourceRanges has defaults"),
        }
    }

    /// The entry points of an object (none for one that is not exposed or
    /// cannot be read), without violations yet.
    pub(super) fn entries(&self, object: &Value) -> ObjectEntries {
        let kind = kind_of(object);
        if kind == Kind::Other || kind == Kind::ReferenceGrant {
            return Vec::new();
        }
        let namespace = Review::namespace_of(object, self.default_namespace);
        let review = Review::from_manifest(object, namespace, Operation::Create, Requester::default());
        let Some(parsed) = &review.object else { return Vec::new() };
        let labels = NamespaceLabels::from(self.labels.get(namespace));
        let input = Input {
            gateways: &self.gateways,
            ingress_classes: IngressClasses::new(self.classes),
            ..review.input(Stage::Validate)
        };
        let about =
            About { review: &review, input: &input, labels, environments: self.environments(namespace, labels) };
        match parsed {
            Object::Service(service) => self.service(&about, service),
            Object::Ingress(ingress) => self.ingress(&about, ingress),
            Object::Gateway(gateway) => {
                let class = Some(gateway.spec.gateway_class_name.clone()).filter(|class| !class.is_empty());
                let certmap = annotation(&gateway.metadata, GKE_CERTMAP).filter(|value| !value.is_empty());
                listeners(&about, &gateway.spec.listeners, class, certmap)
            }
            Object::ListenerSet(set) => {
                let class = self.listener_set_class(namespace, set);
                listeners(&about, &set.spec.listeners, class, None)
            }
            Object::HttpRoute(_) | Object::GrpcRoute(_) | Object::TlsRoute(_) => self.route(&about, parsed),
            _ => Vec::new(),
        }
    }

    /// The environments `namespace` belongs to.
    fn environments(&self, namespace: &str, labels: NamespaceLabels<'_>) -> Vec<String> {
        self.set
            .environments()
            .iter()
            .filter(|environment| environment.contains(namespace, labels))
            .map(|environment| environment.name().to_owned())
            .collect()
    }

    /// The parameters of the first policy with this rule type that applies to
    /// the object (else of the first with it at all): how that policy sees it.
    fn rule<T>(&self, about: &About<'_>, pick: impl Fn(&Rule) -> Option<&T>) -> Option<&T> {
        let policies = self.set.policies();
        let applying = policies.iter().find(|policy| {
            pick(policy.rule()).is_some()
                && policy.applies_to(about.input, about.labels, self.set.environments())
                && !policy.is_excepted(&about.input.user)
        });
        applying.or_else(|| policies.iter().find(|policy| pick(policy.rule()).is_some())).and_then(|p| pick(p.rule()))
    }

    fn source_ranges(&self, about: &About<'_>) -> &SourceRanges {
        self.rule(about, |rule| match rule {
            Rule::SourceRanges(rule) => Some(rule),
            _ => None,
        })
        .unwrap_or(&self.default_source_ranges)
    }

    fn service(&self, about: &About<'_>, service: &Service) -> ObjectEntries {
        let Some(spec) = &service.spec else { return Vec::new() };
        let ports = spec.ports.as_deref().unwrap_or_default();
        let protocol = |port: &k8s_openapi::api::core::v1::ServicePort| port.protocol.clone().unwrap_or("TCP".into());
        let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
        let no_tls = || Tls { source: TlsSource::None, detail: Some("passed through to the Pods".to_owned()) };
        let no_auth = || Auth { method: AuthMethod::None, detail: None };
        let mut entries = Vec::new();
        if service_type.eq_ignore_ascii_case("NodePort") {
            for port in ports {
                let node_port = port.node_port.map_or("(allocated)".to_owned(), |port| port.to_string());
                let address = format!("nodes:{node_port}/{} -> {}", protocol(port), port.port);
                let mut entry = about.entry(EntryType::NodePort, address, Reach::Public);
                entry.tls = no_tls();
                entry.auth = no_auth();
                entries.push(entry);
            }
        }
        if load_balancer::is_load_balancer(service) {
            let providers: &[Provider] = self.source_ranges(about).providers();
            let listed: Vec<String> = ports.iter().map(|port| format!("{}/{}", port.port, protocol(port))).collect();
            let (reach, internal_by) = match load_balancer::exposure(service, providers) {
                Exposure::Internal(evidence) => (Reach::Internal, Some(evidence.to_string())),
                Exposure::Public(_) => (Reach::Public, None),
            };
            let mut entry = about.entry(EntryType::LoadBalancer, format!("load balancer:{}", listed.join(",")), reach);
            entry.internal_by = internal_by;
            entry.tls = no_tls();
            entry.auth = no_auth();
            entry.allow_list = match load_balancer::source_ranges(service) {
                load_balancer::SourceRanges::Spec(ranges) => ranges_from("spec.loadBalancerSourceRanges", ranges),
                load_balancer::SourceRanges::Annotation(ranges) => {
                    let ranges: Vec<String> = ranges.split(',').map(|r| r.trim().to_owned()).collect();
                    ranges_from(load_balancer::SOURCE_RANGES_ANNOTATION, &ranges)
                }
                load_balancer::SourceRanges::Open => no_allow_list(),
            };
            entries.push(entry);
        }
        for ip in spec.external_ips.iter().flatten() {
            let listed: Vec<String> = ports.iter().map(|port| format!("{}/{}", port.port, protocol(port))).collect();
            let reach = match ip.parse::<IpAddr>() {
                Ok(address) if !is_public(address) => Reach::Internal,
                _ => Reach::Public,
            };
            let mut entry = about.entry(EntryType::ExternalIp, format!("{ip}:{}", listed.join(",")), reach);
            entry.tls = no_tls();
            entry.auth = no_auth();
            entries.push(entry);
        }
        entries
    }

    fn ingress(&self, about: &About<'_>, ingress: &Ingress) -> ObjectEntries {
        let Some(spec) = &ingress.spec else { return Vec::new() };
        let controller = self.set.controllers().resolve(ingress, about.input.ingress_classes);
        let subject = Subject {
            object: about.input.object.expect("an object"),
            controller,
            namespace: about.input.namespace,
            gateways: &self.gateways,
            request: None,
        };
        let ingress_auth = self
            .rule(about, |rule| match rule {
                Rule::IngressAuth(rule) => Some(rule),
                _ => None,
            })
            .unwrap_or(&self.default_ingress_auth);
        let auth = match ingress_auth.method(ingress, controller) {
            Some(keys) => Auth { method: AuthMethod::Annotations, detail: Some(keys.join(" + ")) },
            None => application_or_none(&ingress.metadata),
        };
        let allow_list = match self.source_ranges(about).ingress_allow_list(ingress, &subject) {
            IngressAllowList::Cidrs { key, value } => {
                let ranges: Vec<String> =
                    value.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect();
                ranges_from(key, &ranges)
            }
            IngressAllowList::Middleware => AllowList {
                kind: AllowListKind::Middleware,
                from: Some(crate::engine::controller::TRAEFIK_MIDDLEWARES.to_owned()),
                ranges: Vec::new(),
            },
            IngressAllowList::None => no_allow_list(),
        };
        let controller_name = controller.map(|family| family.as_str().to_owned());
        let entry = |entry_type, address: String, tls| {
            let mut entry = about.entry(entry_type, address, Reach::Public);
            entry.tls = tls;
            entry.auth = auth.clone();
            entry.allow_list = allow_list.clone();
            entry.controller = controller_name.clone();
            entry
        };
        let mut entries = Vec::new();
        if spec.default_backend.is_some() {
            let tls = Tls { source: TlsSource::None, detail: Some("answers any host name".to_owned()) };
            entries.push(entry(EntryType::IngressDefaultBackend, "* (default backend)".to_owned(), tls));
        }
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.as_deref().filter(|host| !host.is_empty());
            let tls = ingress_tls(ingress, host, controller);
            let paths: Vec<&str> =
                rule.http.iter().flat_map(|http| &http.paths).map(|path| path.path.as_deref().unwrap_or("/")).collect();
            let host = host.unwrap_or("*");
            if paths.is_empty() {
                entries.push(entry(EntryType::IngressRule, host.to_owned(), tls));
                continue;
            }
            for path in paths {
                entries.push(entry(EntryType::IngressRule, format!("{host}{path}"), tls.clone()));
            }
        }
        entries
    }

    /// A ListenerSet's class: the class of its Gateway, when in the input.
    fn listener_set_class(&self, namespace: &str, set: &ListenerSet) -> Option<String> {
        let parent = set.spec.parent_ref.as_ref()?;
        self.gateway_classes.get(&format!("{}/{}", parent.namespace_or(namespace), parent.name)).cloned()
    }

    fn route(&self, about: &About<'_>, object: &Object) -> ObjectEntries {
        let Some(route) = object.route() else { return Vec::new() };
        if !route.parent_refs().iter().any(|parent| parent.parent_kind().is_some()) {
            return Vec::new(); // A mesh route: not exposed.
        }
        let namespace = about.input.namespace;
        let attachments = selected(route, namespace, &self.gateways);
        let attached: Vec<&Attachment<'_>> =
            attachments.iter().filter(|found| found.attaches(route.hostnames())).collect();
        let hostnames = match route.hostnames() {
            [] => "*".to_owned(),
            names => names.join(","),
        };
        let via: Vec<String> = attached.iter().map(|found| via(found, namespace)).collect();
        let address = match via.as_slice() {
            [] => format!("{hostnames} (attached to no listener)"),
            _ => format!("{hostnames} via {}", via.join(", ")),
        };
        let mut entry = about.entry(EntryType::Route, address, Reach::Public);
        entry.tls = route_tls(route, &attached);
        entry.auth = match route {
            Route::Tls(_) => Auth { method: AuthMethod::NotApplicable, detail: Some("TLS passthrough".into()) },
            Route::Http(_) | Route::Grpc(_) => {
                let gateway_auth = self
                    .rule(about, |rule| match rule {
                        Rule::GatewayAuth(rule) => Some(rule),
                        _ => None,
                    })
                    .unwrap_or(&self.default_gateway_auth);
                let subject = Subject { object, controller: None, namespace, gateways: &self.gateways, request: None };
                match gateway_auth.methods(&subject) {
                    Some(methods) if methods.is_empty() => {
                        Auth { method: AuthMethod::NotApplicable, detail: Some("only redirects".into()) }
                    }
                    Some(methods) => Auth { method: AuthMethod::Gateway, detail: Some(methods.join(", ")) },
                    None => application_or_none(route.metadata()),
                }
            }
        };
        let classes: Vec<&str> = attached
            .iter()
            .filter_map(|found| {
                let parent = found.parent();
                self.gateway_classes.get(&format!("{}/{}", parent.namespace_or(namespace), parent.name))
            })
            .map(String::as_str)
            .collect();
        entry.controller = classes.first().map(|class| (*class).to_owned());
        vec![entry]
    }
}

/// The object an entry point belongs to, as the engine sees it.
struct About<'a> {
    review: &'a Review,
    input: &'a Input<'a>,
    labels: NamespaceLabels<'a>,
    environments: Vec<String>,
}

impl About<'_> {
    /// An entry point of the object, with no protection until told otherwise.
    fn entry(&self, entry_type: EntryType, address: String, reach: Reach) -> Entry {
        Entry {
            namespace: self.review.namespace.clone(),
            kind: self.review.kind.as_str(),
            name: self.review.name.clone(),
            entry_type,
            address,
            reach,
            internal_by: None,
            tls: Tls { source: TlsSource::None, detail: None },
            auth: Auth { method: AuthMethod::None, detail: None },
            allow_list: no_allow_list(),
            controller: None,
            environments: self.environments.clone(),
            violations: Vec::new(),
            status: Status::Unprotected,
        }
    }
}

fn kind_of(object: &Value) -> Kind {
    let text = |field| object.get(field).and_then(Value::as_str).unwrap_or_default();
    Kind::of_manifest(text("apiVersion"), text("kind"))
}

fn no_allow_list() -> AllowList {
    AllowList { kind: AllowListKind::None, from: None, ranges: Vec::new() }
}

fn ranges_from(from: &str, ranges: &[String]) -> AllowList {
    AllowList { kind: AllowListKind::Ranges, from: Some(from.to_owned()), ranges: ranges.to_vec() }
}

/// `portcullis.dev/auth: application`, else none.
fn application_or_none(metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Auth {
    match annotation(metadata, APPLICATION_AUTH) {
        Some("application") => Auth { method: AuthMethod::Application, detail: Some(APPLICATION_AUTH.to_owned()) },
        _ => Auth { method: AuthMethod::None, detail: None },
    }
}

/// Whether an address is reachable from the internet (not private, shared,
/// loopback, link-local or unique-local).
fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let shared = v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64;
            !(v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || shared)
        }
        IpAddr::V6(v6) => {
            let unique_local = (v6.segments()[0] & 0xfe00) == 0xfc00;
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || unique_local || link_local)
        }
    }
}

/// Where the certificate of an Ingress host comes from.
fn ingress_tls(ingress: &Ingress, host: Option<&str>, controller: Option<Family>) -> Tls {
    let none = |why: &str| Tls { source: TlsSource::None, detail: Some(why.to_owned()) };
    let Some(host) = host else { return none("rule without host") };
    let tls = ingress.spec.as_ref().and_then(|spec| spec.tls.as_deref()).unwrap_or_default();
    let covering = tls.iter().find(|entry| {
        entry.hosts.iter().flatten().any(|tls_host| crate::engine::rules::ingress_tls::covers(tls_host, host))
    });
    let Some(covering) = covering else { return none("host not in spec.tls") };
    let known;
    let families: &[Family] = match controller {
        Some(family) => {
            known = [family];
            &known
        }
        None => &Family::ALL,
    };
    let elsewhere = families
        .iter()
        .flat_map(|family| family.dialect().certificate_annotations)
        .find(|key| annotation(&ingress.metadata, key).is_some_and(|value| !value.is_empty()));
    match (covering.secret_name.as_deref().filter(|name| !name.is_empty()), elsewhere) {
        (_, Some(key)) => Tls { source: TlsSource::Annotation, detail: Some((*key).to_owned()) },
        (Some(secret), None) => match CERT_MANAGER_ISSUERS.iter().find_map(|key| annotation(&ingress.metadata, key)) {
            Some(issuer) => Tls { source: TlsSource::CertManager, detail: Some(format!("{issuer} -> {secret}")) },
            None => Tls { source: TlsSource::Secret, detail: Some(secret.to_owned()) },
        },
        (None, None) => Tls { source: TlsSource::DefaultCertificate, detail: None },
    }
}

/// The entry points of a Gateway's or ListenerSet's listeners.
fn listeners(about: &About<'_>, listeners: &[Listener], class: Option<String>, certmap: Option<&str>) -> ObjectEntries {
    listeners
        .iter()
        .map(|listener| {
            let hostname = listener.hostname().unwrap_or("*");
            let address = format!("{} {}:{} {hostname}", listener.name, listener.protocol, listener.port);
            let mut entry = about.entry(EntryType::Listener, address, Reach::Public);
            entry.tls = listener_tls(listener, certmap);
            entry.auth = Auth { method: AuthMethod::NotApplicable, detail: Some("on its routes".into()) };
            entry.controller = class.clone();
            entry
        })
        .collect()
}

fn listener_tls(listener: &Listener, certmap: Option<&str>) -> Tls {
    if listener.protocol == "TLS" && listener.tls_mode() == TlsMode::Passthrough {
        return Tls { source: TlsSource::Passthrough, detail: None };
    }
    if !listener.terminates_tls() {
        return Tls { source: TlsSource::None, detail: Some(format!("{} listener", listener.protocol)) };
    }
    let refs: Vec<String> = listener
        .tls
        .iter()
        .flat_map(|tls| &tls.certificate_refs)
        .map(|reference| match &reference.namespace {
            Some(namespace) => format!("{namespace}/{}", reference.name),
            None => reference.name.clone(),
        })
        .collect();
    if !refs.is_empty() {
        return Tls { source: TlsSource::CertificateRefs, detail: Some(refs.join(",")) };
    }
    let option = listener.tls.iter().flat_map(|tls| &tls.options).find(|(_, value)| !value.trim().is_empty());
    match (option, certmap) {
        (Some((key, _)), _) => Tls { source: TlsSource::Annotation, detail: Some(format!("tls.options {key}")) },
        (None, Some(_)) => Tls { source: TlsSource::Annotation, detail: Some(GKE_CERTMAP.to_owned()) },
        (None, None) => Tls { source: TlsSource::None, detail: Some("no certificateRefs".to_owned()) },
    }
}

/// `infra/public:https`, or `infra/public (unknown)`.
fn via(found: &Attachment<'_>, namespace: &str) -> String {
    let parent = found.parent();
    let name = format!("{}/{}", parent.namespace_or(namespace), parent.name);
    match found {
        Attachment::Listener { listener, .. } => format!("{name}:{}", listener.name),
        Attachment::Unknown { .. } => format!("{name} (unknown)"),
    }
}

/// TLS of a route: that of every listener it attaches to.
fn route_tls(route: Route<'_>, attached: &[&Attachment<'_>]) -> Tls {
    if attached.is_empty() {
        return Tls { source: TlsSource::None, detail: Some("attached to no listener".to_owned()) };
    }
    let mut refs = Vec::new();
    for found in attached {
        let Attachment::Listener { listener, .. } = found else {
            return Tls { source: TlsSource::None, detail: Some("Gateway unknown".to_owned()) };
        };
        let tls = listener_tls(listener, None);
        match tls.source {
            TlsSource::None => {
                return Tls {
                    source: TlsSource::None,
                    detail: Some(format!("{} listener {}", listener.protocol, listener.name)),
                };
            }
            TlsSource::Passthrough if matches!(route, Route::Tls(_)) => {
                return Tls { source: TlsSource::Passthrough, detail: None };
            }
            _ => refs.extend(tls.detail),
        }
    }
    refs.dedup();
    Tls { source: TlsSource::CertificateRefs, detail: Some(refs.join(",")) }
}
