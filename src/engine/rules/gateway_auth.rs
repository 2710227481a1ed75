//! `gatewayAuth`: an HTTPRoute or GRPCRoute exposed through a Gateway must put
//! an authentication method its implementation enforces in front of every rule
//! that forwards to backends, or declare that the application authenticates by
//! itself (`portcullis.dev/auth: application`), which a policy may accept with
//! a warning, as for `ingressAuth`.
//!
//! What counts, each list configurable:
//! - a filter of the rule whose type is in `filters` (default `ExternalAuth`,
//!   Gateway API v1.3+), or one on every backend of the rule;
//! - an `ExtensionRef` filter to an object of a group and kind in
//!   `extensionRefs` (default Traefik's `Middleware`, in `traefik.io` and
//!   `traefik.containo.us`), by name when the entry lists `names`;
//! - a policy object of a group and kind in `policies` (default Envoy
//!   Gateway's `SecurityPolicy`, Kuadrant's `AuthPolicy`) whose `targetRefs`
//!   name the route (or the rule, by `sectionName`), or every Gateway or
//!   ListenerSet it attaches through (or the listeners it selects there); a
//!   policy on a ListenerSet's Gateway protects the ListenerSet too.
//!
//! Routes whose `parentRefs` name no Gateway or ListenerSet (mesh routes) are
//! not exposed and not judged; rules without backends (redirects) need nothing.

use serde::{Deserialize, Deserializer};

use super::Subject;
use super::ingress_auth::APPLICATION_AUTH;
use crate::engine::Finding;
use crate::engine::gateway::attachment::{Attachment, cut, selected};
use crate::engine::gateway::{
    GROUP, GatewayView, GroupKind, HttpRouteRule, ParentKind, ParentRef, Route, RouteFilter, TargetingPolicy,
};
use crate::engine::glob::Globs;
use crate::engine::object::annotation;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayAuth {
    /// Accept `portcullis.dev/auth: application`, with a warning.
    #[serde(default = "yes")]
    allow_application_auth: bool,
    /// Filter types that authenticate.
    #[serde(default = "default_filters")]
    filters: Vec<String>,
    /// `ExtensionRef` targets that authenticate.
    #[serde(default = "default_extension_refs")]
    extension_refs: Vec<ExtensionRefKind>,
    /// Kinds of policy objects that authenticate the routes and Gateways they target.
    #[serde(default = "default_policies", deserialize_with = "group_kinds")]
    policies: Vec<GroupKind>,
    /// What to add, as a denial says it ([`GatewayAuth::fix`]): the same for
    /// every route, so composed once.
    #[serde(skip)]
    fix: std::sync::OnceLock<String>,
}

/// An `extensionRefs` entry: a group and kind, and optionally which names.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExtensionRefKind {
    group: String,
    kind: String,
    /// Globs; empty or omitted: every name.
    #[serde(default)]
    names: Globs,
}

/// A `policies` entry as written: both fields required, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyKind {
    group: String,
    kind: String,
}

fn yes() -> bool {
    true
}

fn default_filters() -> Vec<String> {
    vec!["ExternalAuth".to_owned()]
}

fn default_extension_refs() -> Vec<ExtensionRefKind> {
    ["traefik.io", "traefik.containo.us"]
        .into_iter()
        .map(|group| ExtensionRefKind {
            group: group.to_owned(),
            kind: "Middleware".to_owned(),
            names: Globs::default(),
        })
        .collect()
}

fn group_kind(group: &str, kind: &str) -> GroupKind {
    GroupKind { group: Some(group.to_owned()), kind: kind.to_owned() }
}

fn default_policies() -> Vec<GroupKind> {
    vec![group_kind("gateway.envoyproxy.io", "SecurityPolicy"), group_kind("kuadrant.io", "AuthPolicy")]
}

fn group_kinds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<GroupKind>, D::Error> {
    let written: Vec<PolicyKind> = Vec::deserialize(deserializer)?;
    Ok(written.iter().map(|policy| group_kind(&policy.group, &policy.kind)).collect())
}

impl GatewayAuth {
    /// The kinds of policy objects (group and kind) that authenticate the
    /// routes they target; the webhook watches these.
    pub fn policy_kinds(&self) -> &[crate::engine::gateway::GroupKind] {
        &self.policies
    }

    pub fn check(&self, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let Some(route) = subject.object.route() else { return };
        if matches!(route, Route::Tls(_)) || !route.parent_refs().iter().any(|parent| parent.parent_kind().is_some()) {
            return;
        }
        let exposed: Vec<(usize, &HttpRouteRule)> =
            route.http_rules().iter().enumerate().filter(|(_, rule)| !rule.backend_refs.is_empty()).collect();
        let mut parents_protected = None;
        let open: Vec<(usize, &HttpRouteRule)> = exposed
            .iter()
            .copied()
            .filter(|(_, rule)| {
                !self.rule_authenticates(rule)
                    && !self.route_policy_protects(subject, route, rule)
                    && !*parents_protected.get_or_insert_with(|| self.parents_protected(subject, route))
            })
            .collect();
        if open.is_empty() {
            return;
        }
        let metadata = route.metadata();
        let declared = annotation(metadata, APPLICATION_AUTH) == Some("application");
        if declared && self.allow_application_auth {
            findings.push(Finding::Warning(format!(
                "authentication is left to the application ({APPLICATION_AUTH}: application); make sure every path checks credentials"
            )));
            return;
        }
        let what = if open.len() == exposed.len() {
            "no authentication the Gateway enforces".to_owned()
        } else {
            let rules: Vec<String> = open.iter().map(|(index, rule)| rule_name(*index, rule)).collect();
            format!("no authentication the Gateway enforces on {}", rules.join(", "))
        };
        let fix = self.fix();
        findings.push(Finding::Violation(match (declared, self.allow_application_auth) {
            (true, _) => format!("{APPLICATION_AUTH}: application is not accepted here; {fix}"),
            (false, true) => format!("{what}; {fix}, or {APPLICATION_AUTH}: application"),
            (false, false) => format!("{what}; {fix}"),
        }));
    }

    /// What authenticates each rule of the route that forwards to backends, as
    /// this rule sees it (`ExternalAuth filter`, `Middleware auth
    /// ExtensionRef`, `policy on the route`, `policy on its Gateway`), each
    /// named once; `None` when a rule is left open. A route with no such rule
    /// needs nothing: an empty list.
    pub fn methods(&self, subject: &Subject<'_>) -> Option<Vec<String>> {
        let route = subject.object.route()?;
        let mut found: Vec<String> = Vec::new();
        let mut parents_protected = None;
        for rule in route.http_rules().iter().filter(|rule| !rule.backend_refs.is_empty()) {
            let own = rule.filters.iter().chain(rule.backend_refs.iter().flat_map(|backend| &backend.filters));
            let method = if self.rule_authenticates(rule) {
                own.filter(|filter| self.filter_authenticates(filter)).map(filter_name).next()
            } else if self.route_policy_protects(subject, route, rule) {
                Some("policy on the route".to_owned())
            } else if *parents_protected.get_or_insert_with(|| self.parents_protected(subject, route)) {
                Some("policy on its Gateway".to_owned())
            } else {
                None
            };
            let method = method?;
            if !found.contains(&method) {
                found.push(method);
            }
        }
        Some(found)
    }

    /// Whether the rule's filters authenticate: one of the rule's own, or one
    /// on each of its backends.
    fn rule_authenticates(&self, rule: &HttpRouteRule) -> bool {
        let counts = |filters: &[RouteFilter]| filters.iter().any(|filter| self.filter_authenticates(filter));
        counts(&rule.filters)
            || (!rule.backend_refs.is_empty() && rule.backend_refs.iter().all(|backend| counts(&backend.filters)))
    }

    fn filter_authenticates(&self, filter: &RouteFilter) -> bool {
        if self.filters.contains(&filter.kind) {
            return true;
        }
        let Some(target) = filter.extension_ref.as_ref().filter(|_| filter.kind == "ExtensionRef") else {
            return false;
        };
        self.extension_refs.iter().any(|accepted| {
            accepted.group == target.group()
                && accepted.kind == target.kind_or("")
                && (accepted.names.is_empty() || accepted.names.matches(&target.name))
        })
    }

    /// Whether an accepted policy kind.
    fn accepts(&self, policy: &TargetingPolicy) -> bool {
        self.policies
            .iter()
            .any(|kind| kind.group.as_deref() == Some(policy.group.as_str()) && kind.kind == policy.kind)
    }

    /// Whether an accepted policy targets the object of `kind` named `name` in
    /// `namespace`, as a whole or in the section `section`.
    fn targeted(&self, view: &GatewayView, namespace: &str, kind: &str, name: &str, section: Option<&str>) -> bool {
        view.policies_targeting(namespace, GROUP, kind, name).filter(|policy| self.accepts(policy)).any(|policy| {
            policy.targets.iter().any(|target| {
                target.group() == GROUP
                    && target.kind_or("") == kind
                    && target.name == name
                    && target.section_name.as_deref().is_none_or(|targeted| Some(targeted) == section)
            })
        })
    }

    /// Whether a policy targets the route, or this rule of it by name.
    fn route_policy_protects(&self, subject: &Subject<'_>, route: Route<'_>, rule: &HttpRouteRule) -> bool {
        let name = route.metadata().name.as_deref().unwrap_or_default();
        self.targeted(subject.gateways, subject.namespace, route.kind(), name, rule.name.as_deref())
    }

    /// Whether every Gateway or ListenerSet the route attaches through is
    /// targeted by a policy: as a whole, or on each listener the route
    /// selects there (on the `sectionName` it names, when the parent is unknown).
    fn parents_protected(&self, subject: &Subject<'_>, route: Route<'_>) -> bool {
        let (namespace, view) = (subject.namespace, subject.gateways);
        let attachments = selected(route, namespace, view);
        route.parent_refs().iter().enumerate().all(|(index, parent)| {
            let Some(kind) = parent.parent_kind() else { return true };
            let parent_namespace = parent.namespace_or(namespace);
            let whole =
                |section: Option<&str>| self.targeted(view, parent_namespace, kind.as_str(), &parent.name, section);
            if whole(None) || self.gateway_of_set_protected(view, kind, parent, namespace) {
                return true;
            }
            attachments.iter().filter(|found| found.index() == index).all(|found| match found {
                Attachment::Listener { listener, .. } => whole(Some(&listener.name)),
                Attachment::Unknown { .. } => {
                    parent.section_name.as_deref().is_some_and(|section| whole(Some(section)))
                }
            })
        })
    }

    /// Whether the Gateway of a known ListenerSet is targeted as a whole
    /// (its policies reach the ListenerSet's listeners too).
    fn gateway_of_set_protected(
        &self,
        view: &GatewayView,
        kind: ParentKind,
        parent: &ParentRef,
        namespace: &str,
    ) -> bool {
        if kind != ParentKind::ListenerSet {
            return false;
        }
        let Some(gateway) = view.parent(parent, namespace).and_then(|set| set.gateway.as_ref()) else { return false };
        let set_namespace = parent.namespace_or(namespace);
        gateway.parent_kind() == Some(ParentKind::Gateway)
            && self.targeted(view, gateway.namespace_or(set_namespace), "Gateway", &gateway.name, None)
    }

    /// How to add authentication, from the lists this policy accepts; short,
    /// so that the warning of a Warn policy stays whole.
    fn fix(&self) -> &str {
        self.fix.get_or_init(|| self.compose_fix())
    }

    fn compose_fix(&self) -> String {
        let mut ways: Vec<String> = Vec::new();
        if !self.filters.is_empty() {
            let types = self.filters.join("/");
            ways.push(format!("{} {types} filter", article(&types)));
        }
        let kinds = distinct(self.extension_refs.iter().map(|accepted| accepted.kind.as_str()));
        if !kinds.is_empty() {
            let approved = self.extension_refs.iter().any(|accepted| !accepted.names.is_empty());
            let what = if approved { format!("approved {kinds}") } else { kinds };
            ways.push(format!("{} {what} ExtensionRef", article(&what)));
        }
        let kinds = distinct(self.policies.iter().map(|policy| policy.kind.as_str()));
        if !kinds.is_empty() {
            ways.push(format!("{} {kinds} on the route or its Gateway", article(&kinds)));
        }
        match ways.split_last() {
            None => "this policy accepts no authentication method on routes; ask the platform team".to_owned(),
            Some((last, [])) => format!("add {last}"),
            Some((last, rest)) => format!("add {} or {last}", rest.join(", ")),
        }
    }
}

/// An authenticating filter as the inventory names it: `ExternalAuth filter`,
/// `Middleware auth ExtensionRef`.
fn filter_name(filter: &RouteFilter) -> String {
    match filter.extension_ref.as_ref().filter(|_| filter.kind == "ExtensionRef") {
        Some(target) => format!("{} {} ExtensionRef", target.kind_or(""), target.name),
        None => format!("{} filter", filter.kind),
    }
}

/// `spec.rules[1]`, or `spec.rules[1] (admin)` for a named rule.
fn rule_name(index: usize, rule: &HttpRouteRule) -> String {
    match rule.name.as_deref() {
        Some(name) => format!("spec.rules[{index}] ({})", cut(name)),
        None => format!("spec.rules[{index}]"),
    }
}

/// The distinct names, `/`-joined.
fn distinct<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen.join("/")
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['A', 'E', 'I', 'O', 'U', 'a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Kind;
    use crate::engine::rules::Rule;
    use crate::engine::rules::testing::*;
    use serde_json::json;

    fn auth() -> Rule {
        rule(json!({"gatewayAuth": {}}))
    }

    const FIX: &str = "add an ExternalAuth filter, a Middleware ExtensionRef or a SecurityPolicy/AuthPolicy on the route or its Gateway";

    fn missing() -> Finding {
        violation(&format!("no authentication the Gateway enforces; {FIX}, or portcullis.dev/auth: application"))
    }

    fn route(
        kind: Kind,
        annotations: serde_json::Value,
        parents: serde_json::Value,
        rules: serde_json::Value,
    ) -> crate::engine::Object {
        gateway_api(
            kind,
            json!({"metadata": {"name": "web", "annotations": annotations},
                   "spec": {"parentRefs": parents, "hostnames": ["shop.example.com"], "rules": rules}}),
        )
    }

    fn public() -> serde_json::Value {
        json!([{"name": "public", "namespace": "infra", "sectionName": "https"}])
    }

    fn http(rules: serde_json::Value) -> crate::engine::Object {
        route(Kind::HttpRoute, json!({}), public(), rules)
    }

    fn backend() -> serde_json::Value {
        json!({"name": "web", "port": 8080})
    }

    fn external_auth() -> serde_json::Value {
        json!({"type": "ExternalAuth", "externalAuth": {"protocol": "HTTP",
               "backendRef": {"name": "oauth2-proxy", "namespace": "auth", "port": 4180}}})
    }

    fn middleware(group: &str, name: &str) -> serde_json::Value {
        json!({"type": "ExtensionRef", "extensionRef": {"group": group, "kind": "Middleware", "name": name}})
    }

    #[test]
    fn a_route_without_authentication_is_denied() {
        assert_eq!(check(&auth(), &http(json!([{"backendRefs": [backend()]}]))), vec![missing()]);
        let grpc = route(Kind::GrpcRoute, json!({}), public(), json!([{"backendRefs": [backend()]}]));
        assert_eq!(check(&auth(), &grpc), vec![missing()]);
    }

    #[test]
    fn an_external_auth_filter_authenticates() {
        assert_eq!(check(&auth(), &http(json!([{"filters": [external_auth()], "backendRefs": [backend()]}]))), vec![]);
        // On every backend of the rule, or not at all.
        let on_backends = json!([{"backendRefs": [
            {"name": "a", "port": 80, "filters": [external_auth()]},
            {"name": "b", "port": 80, "filters": [external_auth()]}]}]);
        assert_eq!(check(&auth(), &http(on_backends)), vec![]);
        let one_backend = json!([{"backendRefs": [
            {"name": "a", "port": 80, "filters": [external_auth()]}, {"name": "b", "port": 80}]}]);
        assert_eq!(check(&auth(), &http(one_backend)), vec![missing()]);
    }

    #[test]
    fn every_rule_with_backends_needs_it() {
        let rules = json!([
            {"filters": [external_auth()], "backendRefs": [backend()]},
            {"name": "admin", "backendRefs": [backend()]},
            {"filters": [{"type": "RequestRedirect", "requestRedirect": {"hostname": "www.example.com"}}]},
            {"backendRefs": [backend()], "filters": [{"type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": "x-user", "value": "admin"}]}}]}
        ]);
        assert_eq!(
            check(&auth(), &http(rules)),
            vec![violation(&format!(
                "no authentication the Gateway enforces on spec.rules[1] (admin), spec.rules[3]; {FIX}, or \
                 portcullis.dev/auth: application"
            ))]
        );
        // Rules without backends (redirects) need nothing.
        assert_eq!(
            check(
                &auth(),
                &http(json!([{"filters": [{"type": "RequestRedirect",
            "requestRedirect": {"scheme": "https"}}]}]))
            ),
            vec![]
        );
    }

    #[test]
    fn a_traefik_middleware_extension_ref_authenticates() {
        for group in ["traefik.io", "traefik.containo.us"] {
            let rules = json!([{"filters": [middleware(group, "oidc")], "backendRefs": [backend()]}]);
            assert_eq!(check(&auth(), &http(rules)), vec![], "{group}");
        }
        let other = json!([{"filters": [middleware("example.com", "oidc")], "backendRefs": [backend()]}]);
        assert_eq!(check(&auth(), &http(other)), vec![missing()]);
        // Only the listed names, when the entry has names.
        let named = rule(json!({"gatewayAuth": {"extensionRefs": [
            {"group": "traefik.io", "kind": "Middleware", "names": ["*-forward-auth", "*-oidc"]}]}}));
        let route_with =
            |name: &str| http(json!([{"filters": [middleware("traefik.io", name)], "backendRefs": [backend()]}]));
        assert_eq!(check(&named, &route_with("sso-oidc")), vec![]);
        assert_eq!(
            check(&named, &route_with("gzip")),
            vec![violation(
                "no authentication the Gateway enforces; add an ExternalAuth filter, an approved Middleware \
                 ExtensionRef or a SecurityPolicy/AuthPolicy on the route or its Gateway, or portcullis.dev/auth: \
                 application"
            )]
        );
    }

    /// A view with the given policy manifests (and Gateway infra/public with
    /// listeners `http` and `https`, ListenerSet shop/team on it).
    fn view(policies: &[serde_json::Value]) -> GatewayView {
        let mut view = GatewayView::default();
        view.insert_manifest(
            &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                    "metadata": {"name": "public", "namespace": "infra"},
                    "spec": {"listeners": [
                        {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}},
                        {"name": "https", "port": 443, "protocol": "HTTPS", "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
            "infra",
        );
        view.insert_manifest(
            &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ListenerSet",
                    "metadata": {"name": "team", "namespace": "shop"},
                    "spec": {"parentRef": {"name": "public", "namespace": "infra"},
                             "listeners": [{"name": "shop", "port": 443, "protocol": "HTTPS"}]}}),
            "shop",
        );
        for policy in policies {
            assert!(view.insert_manifest(policy, "shop"), "{policy}");
        }
        view
    }

    fn security_policy(namespace: &str, target: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "SecurityPolicy",
               "metadata": {"name": "sso", "namespace": namespace}, "spec": {"targetRefs": [target], "oidc": {}}})
    }

    fn route_target(kind: &str, section: Option<&str>) -> serde_json::Value {
        let mut target = json!({"group": "gateway.networking.k8s.io", "kind": kind, "name": "web"});
        if let Some(section) = section {
            target["sectionName"] = json!(section);
        }
        target
    }

    #[test]
    fn a_security_policy_or_auth_policy_targeting_the_route_authenticates() {
        let rules = json!([{"backendRefs": [backend()]}]);
        let targeted = view(&[security_policy("shop", route_target("HTTPRoute", None))]);
        assert_eq!(check_with(&auth(), &http(rules.clone()), &targeted), vec![]);
        let kuadrant = json!({"apiVersion": "kuadrant.io/v1", "kind": "AuthPolicy", "metadata": {"name": "a"},
                              "spec": {"targetRef": route_target("HTTPRoute", None)}});
        assert_eq!(check_with(&auth(), &http(rules.clone()), &view(&[kuadrant])), vec![]);
        // In another namespace, for another kind, or of a kind not accepted: no.
        for policy in [
            security_policy("other", route_target("HTTPRoute", None)),
            security_policy("shop", route_target("GRPCRoute", None)),
            json!({"apiVersion": "example.com/v1", "kind": "SecurityPolicy", "metadata": {"name": "x"},
                   "spec": {"targetRefs": [route_target("HTTPRoute", None)]}}),
        ] {
            assert_eq!(
                check_with(&auth(), &http(rules.clone()), &view(std::slice::from_ref(&policy))),
                vec![missing()],
                "{policy}"
            );
        }
        // A policy on one rule (sectionName) protects that rule only.
        let two = json!([{"name": "admin", "backendRefs": [backend()]}, {"name": "api", "backendRefs": [backend()]}]);
        let on_admin = view(&[security_policy("shop", route_target("HTTPRoute", Some("admin")))]);
        assert_eq!(
            check_with(&auth(), &http(two), &on_admin),
            vec![violation(&format!(
                "no authentication the Gateway enforces on spec.rules[1] (api); {FIX}, or portcullis.dev/auth: \
                 application"
            ))]
        );
    }

    fn gateway_target(section: Option<&str>) -> serde_json::Value {
        let mut target = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"});
        if let Some(section) = section {
            target["sectionName"] = json!(section);
        }
        target
    }

    #[test]
    fn a_policy_on_the_gateway_protects_every_route_on_it() {
        let rules = json!([{"backendRefs": [backend()]}]);
        assert_eq!(
            check_with(&auth(), &http(rules.clone()), &view(&[security_policy("infra", gateway_target(None))])),
            vec![]
        );
        // In the route's namespace, it does not target the Gateway.
        assert_eq!(
            check_with(&auth(), &http(rules.clone()), &view(&[security_policy("shop", gateway_target(None))])),
            vec![missing()]
        );
        // On a listener: protects routes attached to that listener only.
        let on_https = view(&[security_policy("infra", gateway_target(Some("https")))]);
        assert_eq!(check_with(&auth(), &http(rules.clone()), &on_https), vec![]);
        let everywhere =
            route(Kind::HttpRoute, json!({}), json!([{"name": "public", "namespace": "infra"}]), rules.clone());
        assert_eq!(check_with(&auth(), &everywhere, &on_https), vec![missing()]);
        // Every parent must be protected.
        let two_parents = route(
            Kind::HttpRoute,
            json!({}),
            json!([{"name": "public", "namespace": "infra", "sectionName": "https"}, {"name": "other"}]),
            rules.clone(),
        );
        assert_eq!(
            check_with(&auth(), &two_parents, &view(&[security_policy("infra", gateway_target(None))])),
            vec![missing()]
        );
        // An unknown Gateway may be targeted too: as a whole, or on the section the route names.
        let unknown =
            route(Kind::HttpRoute, json!({}), json!([{"name": "edge", "sectionName": "https"}]), rules.clone());
        let edge = |section: Option<&str>| {
            let mut target = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"});
            if let Some(section) = section {
                target["sectionName"] = json!(section);
            }
            view(&[security_policy("shop", target)])
        };
        assert_eq!(check_with(&auth(), &unknown, &edge(None)), vec![]);
        assert_eq!(check_with(&auth(), &unknown, &edge(Some("https"))), vec![]);
        assert_eq!(check_with(&auth(), &unknown, &edge(Some("http"))), vec![missing()]);
    }

    #[test]
    fn a_policy_on_a_listener_set_or_its_gateway_protects_its_routes() {
        let rules = json!([{"backendRefs": [backend()]}]);
        let on_set = route(
            Kind::HttpRoute,
            json!({}),
            json!([{"group": "gateway.networking.k8s.io", "kind": "ListenerSet", "name": "team"}]),
            rules,
        );
        assert_eq!(check_with(&auth(), &on_set, &view(&[])), vec![missing()]);
        assert_eq!(check_with(&auth(), &on_set, &view(&[security_policy("infra", gateway_target(None))])), vec![]);
        let set_target = json!({"group": "gateway.networking.k8s.io", "kind": "ListenerSet", "name": "team"});
        assert_eq!(check_with(&auth(), &on_set, &view(&[security_policy("shop", set_target)])), vec![]);
    }

    #[test]
    fn routes_outside_gateways_are_not_judged() {
        let mesh = route(
            Kind::HttpRoute,
            json!({}),
            json!([{"group": "", "kind": "Service", "name": "web"}]),
            json!([{"backendRefs": [backend()]}]),
        );
        assert_eq!(check(&auth(), &mesh), vec![]);
        let orphan = route(Kind::HttpRoute, json!({}), json!([]), json!([{"backendRefs": [backend()]}]));
        assert_eq!(check(&auth(), &orphan), vec![]);
    }

    #[test]
    fn application_auth_is_a_warning_or_a_violation() {
        let declared = route(
            Kind::HttpRoute,
            json!({"portcullis.dev/auth": "application"}),
            public(),
            json!([{"backendRefs": [backend()]}]),
        );
        assert_eq!(
            check(&auth(), &declared),
            vec![Finding::Warning(
                "authentication is left to the application (portcullis.dev/auth: application); make sure every path \
                 checks credentials"
                    .into()
            )]
        );
        let strict = rule(json!({"gatewayAuth": {"allowApplicationAuth": false}}));
        assert_eq!(
            check(&strict, &declared),
            vec![violation(&format!("portcullis.dev/auth: application is not accepted here; {FIX}"))]
        );
        let undeclared = http(json!([{"backendRefs": [backend()]}]));
        assert_eq!(
            check(&strict, &undeclared),
            vec![violation(&format!("no authentication the Gateway enforces; {FIX}"))]
        );
        // An authenticated route is not warned for the declaration.
        let both = route(
            Kind::HttpRoute,
            json!({"portcullis.dev/auth": "application"}),
            public(),
            json!([{"filters": [external_auth()], "backendRefs": [backend()]}]),
        );
        assert_eq!(check(&auth(), &both), vec![]);
    }

    #[test]
    fn the_lists_are_configurable() {
        let custom = rule(json!({"gatewayAuth": {
            "filters": ["ExternalAuth", "BasicAuth"],
            "extensionRefs": [],
            "policies": [{"group": "example.com", "kind": "AuthGuard"}]}}));
        let basic = http(json!([{"filters": [{"type": "BasicAuth"}], "backendRefs": [backend()]}]));
        assert_eq!(check(&custom, &basic), vec![]);
        let traefik = http(json!([{"filters": [middleware("traefik.io", "oidc")], "backendRefs": [backend()]}]));
        assert_eq!(
            check(&custom, &traefik),
            vec![violation(
                "no authentication the Gateway enforces; add an ExternalAuth/BasicAuth filter or an AuthGuard on \
                 the route or its Gateway, or portcullis.dev/auth: application"
            )]
        );
        let Rule::GatewayAuth(params) = &custom else { unreachable!() };
        assert_eq!(params.policy_kinds(), [group_kind("example.com", "AuthGuard")]);
        let Rule::GatewayAuth(defaults) = &auth() else { unreachable!() };
        assert_eq!(
            defaults.policy_kinds(),
            [group_kind("gateway.envoyproxy.io", "SecurityPolicy"), group_kind("kuadrant.io", "AuthPolicy")]
        );
        let nothing = rule(json!({"gatewayAuth": {"filters": [], "extensionRefs": [], "policies": [],
                                                  "allowApplicationAuth": false}}));
        assert_eq!(
            check(&nothing, &basic),
            vec![violation(
                "no authentication the Gateway enforces; this policy accepts no authentication method on \
                 routes; ask the platform team"
            )]
        );
        for bad in [
            json!({"gatewayAuth": {"policies": [{"group": "x", "kind": "Y", "name": "z"}]}}),
            json!({"gatewayAuth": {"policies": [{"kind": "Y"}]}}),
            json!({"gatewayAuth": {"extensionRefs": [{"group": "x"}]}}),
            json!({"gatewayAuth": {"extensionRefs": [{"group": "x", "kind": "Y", "names": ["[a"]}]}}),
            json!({"gatewayAuth": {"filter": ["ExternalAuth"]}}),
        ] {
            assert!(serde_json::from_value::<Rule>(bad.clone()).is_err(), "{bad}");
        }
    }
}
