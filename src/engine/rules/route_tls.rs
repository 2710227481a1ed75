//! `routeTls`: an HTTPRoute or GRPCRoute must not be served over plain HTTP.
//! A route attached to a listener of protocol `HTTP` is denied unless it is
//! redirect-only: every rule a `RequestRedirect` with `scheme: https`, which
//! is what the usual port-80 listener is for. A GRPCRoute cannot redirect.
//!
//! Attachment follows the Gateway API: each `parentRefs` entry selects the
//! listeners of its Gateway or ListenerSet by `sectionName` and `port` (all
//! when neither is set) that admit the route, and of those the ones whose
//! hostname intersects the route's (see
//! [`attachment`](crate::engine::gateway::attachment)). A parent portcullis
//! does not know is judged as a plain HTTP listener without hostname (fail
//! safe), and a notice says so.

use serde::Deserialize;

use super::Subject;
use crate::engine::Finding;
use crate::engine::gateway::Route;
use crate::engine::gateway::attachment::{Attachment, push_unknown_notices, redirect_only, selected};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTls {}

impl RouteTls {
    pub fn check(&self, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let Some(route) = subject.object.route() else { return };
        let grpc = match route {
            Route::Http(_) => false,
            Route::Grpc(_) => true,
            Route::Tls(_) => return,
        };
        let namespace = subject.namespace;
        let selected = selected(route, namespace, subject.gateways);
        push_unknown_notices(route, &selected, namespace, findings);
        if redirect_only(route) {
            return;
        }
        let fix = |index: usize| {
            if grpc {
                format!("set parentRefs[{index}].sectionName to an HTTPS listener (a GRPCRoute cannot redirect)")
            } else {
                format!(
                    "set parentRefs[{index}].sectionName to an HTTPS listener, or make every rule a RequestRedirect \
                     with scheme https"
                )
            }
        };
        for attachment in selected.iter().filter(|found| found.attaches(route.hostnames())) {
            let text = match attachment {
                Attachment::Listener { index, listener, .. } if listener.is_plain_http() => format!(
                    "attached to {}, which serves plain HTTP, so requests and credentials travel unencrypted; {}",
                    attachment.describe(namespace),
                    fix(*index)
                ),
                Attachment::Listener { .. } => continue,
                Attachment::Unknown { index, .. } => format!(
                    "{} is unknown, so parentRefs[{index}] may attach to a plain HTTP listener; apply the {} first{}",
                    attachment.describe(namespace),
                    attachment.parent().parent_kind().map_or("Gateway", |kind| kind.as_str()),
                    if grpc { "" } else { ", or make every rule a RequestRedirect with scheme https" }
                ),
            };
            let violation = Finding::Violation(text);
            if !findings.contains(&violation) {
                findings.push(violation);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Kind;
    use crate::engine::gateway::GatewayView;
    use crate::engine::rules::testing::*;
    use serde_json::json;

    fn tls_rule() -> crate::engine::rules::Rule {
        rule(json!({"routeTls": {}}))
    }

    /// Gateway infra/public: `http` (80, no hostname), `https` (443,
    /// `*.example.com`) and `http-internal` (8080, `*.internal.example.org`),
    /// open to every namespace.
    fn public() -> GatewayView {
        let mut view = GatewayView::default();
        let all = json!({"namespaces": {"from": "All"}});
        let gateway = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "public", "namespace": "infra"},
            "spec": {"listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": all},
                {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.example.com", "allowedRoutes": all},
                {"name": "http-internal", "port": 8080, "protocol": "HTTP", "hostname": "*.internal.example.org",
                 "allowedRoutes": all}]}});
        assert!(view.insert_manifest(&gateway, "default"));
        view
    }

    fn route(
        kind: Kind,
        parents: serde_json::Value,
        hostnames: &[&str],
        rules: serde_json::Value,
    ) -> crate::engine::Object {
        gateway_api(
            kind,
            json!({"metadata": {"name": "web"}, "spec": {"parentRefs": parents, "hostnames": hostnames, "rules": rules}}),
        )
    }

    fn backend() -> serde_json::Value {
        json!([{"backendRefs": [{"name": "web", "port": 8080}]}])
    }

    fn redirect(scheme: &str) -> serde_json::Value {
        json!({"type": "RequestRedirect", "requestRedirect": {"scheme": scheme, "statusCode": 301}})
    }

    const PLAIN: &str = "attached to listener \"http\" (HTTP, port 80) of Gateway infra/public, which serves plain \
                         HTTP, so requests and credentials travel unencrypted; ";

    #[test]
    fn a_route_on_the_http_listener_is_denied() {
        let parents = json!([{"name": "public", "namespace": "infra", "sectionName": "http"}]);
        assert_eq!(
            check_with(&tls_rule(), &route(Kind::HttpRoute, parents, &["shop.example.com"], backend()), &public()),
            vec![violation(&format!(
                "{PLAIN}set parentRefs[0].sectionName to an HTTPS listener, or make every rule a RequestRedirect \
                 with scheme https"
            ))]
        );
    }

    #[test]
    fn a_route_on_the_https_listener_passes() {
        let parents = json!([{"name": "public", "namespace": "infra", "sectionName": "https"}]);
        assert_eq!(check_with(&tls_rule(), &route(Kind::HttpRoute, parents, &[], backend()), &public()), vec![]);
        let by_port = json!([{"name": "public", "namespace": "infra", "port": 443}]);
        assert_eq!(check_with(&tls_rule(), &route(Kind::GrpcRoute, by_port, &[], backend()), &public()), vec![]);
    }

    #[test]
    fn a_redirect_to_https_may_attach_to_the_http_listener() {
        let parents = json!([{"name": "public", "namespace": "infra", "sectionName": "http"}]);
        let redirecting = json!([{"filters": [redirect("https")]},
                                 {"matches": [{"path": {"value": "/a"}}], "filters": [redirect("https")]}]);
        assert_eq!(
            check_with(&tls_rule(), &route(Kind::HttpRoute, parents.clone(), &[], redirecting), &public()),
            vec![]
        );
        // A redirect to http, a rule without redirect, or no rules at all (the
        // API server defaults one without filters) is not redirect-only.
        let deny = violation(&format!(
            "{PLAIN}set parentRefs[0].sectionName to an HTTPS listener, or make every rule a RequestRedirect with \
             scheme https"
        ));
        for rules in [
            json!([{"filters": [redirect("http")]}]),
            json!([{"filters": [redirect("https")]}, {"backendRefs": [{"name": "web", "port": 8080}]}]),
            json!([{"filters": [{"type": "RequestRedirect", "requestRedirect": {"port": 443}}]}]),
            json!([{"filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "x"}}]}]),
            json!([]),
        ] {
            assert_eq!(
                check_with(&tls_rule(), &route(Kind::HttpRoute, parents.clone(), &[], rules.clone()), &public()),
                vec![deny.clone()],
                "{rules}"
            );
        }
    }

    #[test]
    fn a_grpc_route_cannot_redirect() {
        let parents = json!([{"name": "public", "namespace": "infra", "port": 80}]);
        let rules = json!([{"filters": [redirect("https")]}]);
        assert_eq!(
            check_with(&tls_rule(), &route(Kind::GrpcRoute, parents, &[], rules), &public()),
            vec![violation(&format!(
                "{PLAIN}set parentRefs[0].sectionName to an HTTPS listener (a GRPCRoute cannot redirect)"
            ))]
        );
    }

    #[test]
    fn without_section_name_a_route_attaches_to_every_listener_its_hostnames_meet() {
        let parents = json!([{"name": "public", "namespace": "infra"}]);
        let fix = "set parentRefs[0].sectionName to an HTTPS listener, or make every rule a RequestRedirect with \
                   scheme https";
        let internal = "attached to listener \"http-internal\" (HTTP, port 8080) of Gateway infra/public, which \
                        serves plain HTTP, so requests and credentials travel unencrypted; ";
        // shop.example.com meets http (no hostname) and https, not http-internal.
        assert_eq!(
            check_with(
                &tls_rule(),
                &route(Kind::HttpRoute, parents.clone(), &["shop.example.com"], backend()),
                &public()
            ),
            vec![violation(&format!("{PLAIN}{fix}"))]
        );
        // Without hostnames it attaches to all three.
        assert_eq!(
            check_with(&tls_rule(), &route(Kind::HttpRoute, parents.clone(), &[], backend()), &public()),
            vec![violation(&format!("{PLAIN}{fix}")), violation(&format!("{internal}{fix}"))]
        );
        // A hostname the http-internal listener meets.
        let on_internal = json!([{"name": "public", "namespace": "infra", "sectionName": "http-internal"}]);
        assert_eq!(
            check_with(
                &tls_rule(),
                &route(Kind::HttpRoute, on_internal.clone(), &["a.internal.example.org"], backend()),
                &public()
            ),
            vec![violation(&format!("{internal}{fix}"))]
        );
        // A hostname it does not meet: the route does not attach there.
        assert_eq!(
            check_with(&tls_rule(), &route(Kind::HttpRoute, on_internal, &["shop.example.com"], backend()), &public()),
            vec![]
        );
    }

    #[test]
    fn a_listener_of_another_namespace_admits_routes_of_its_own_only_by_default() {
        let mut view = GatewayView::default();
        view.insert_manifest(
            &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                    "metadata": {"name": "public", "namespace": "infra"},
                    "spec": {"listeners": [{"name": "http", "port": 80, "protocol": "HTTP"},
                        {"name": "https", "port": 443, "protocol": "HTTPS", "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
            "infra",
        );
        let parents = json!([{"name": "public", "namespace": "infra"}]);
        assert_eq!(check_with(&tls_rule(), &route(Kind::HttpRoute, parents, &[], backend()), &view), vec![]);
    }

    #[test]
    fn a_listener_set_listener_counts_like_a_gateway_listener() {
        let mut view = GatewayView::default();
        view.insert_manifest(
            &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ListenerSet", "metadata": {"name": "team"},
                    "spec": {"parentRef": {"name": "public", "namespace": "infra"},
                             "listeners": [{"name": "plain", "port": 8080, "protocol": "HTTP"}]}}),
            "shop",
        );
        let parents = json!([{"group": "gateway.networking.k8s.io", "kind": "ListenerSet", "name": "team"}]);
        assert_eq!(
            check_with(&tls_rule(), &route(Kind::HttpRoute, parents, &[], backend()), &view),
            vec![violation(
                "attached to listener \"plain\" (HTTP, port 8080) of ListenerSet shop/team, which serves plain HTTP, \
                 so requests and credentials travel unencrypted; set parentRefs[0].sectionName to an HTTPS listener, \
                 or make every rule a RequestRedirect with scheme https"
            )]
        );
    }

    #[test]
    fn an_unknown_gateway_is_judged_as_plain_http_with_a_notice() {
        let notice = Finding::Notice(
            "Gateway infra/public is unknown, so the route was judged as if it attached to a plain HTTP listener \
             without hostname"
                .into(),
        );
        let parents = json!([{"name": "public", "namespace": "infra", "sectionName": "https"},
                             {"name": "public", "namespace": "infra", "sectionName": "https-2"}]);
        assert_eq!(
            check(&tls_rule(), &route(Kind::HttpRoute, parents.clone(), &["shop.example.com"], backend())),
            vec![
                notice.clone(),
                violation(
                    "Gateway infra/public is unknown, so parentRefs[0] may attach to a plain HTTP listener; apply the \
                     Gateway first, or make every rule a RequestRedirect with scheme https"
                ),
                violation(
                    "Gateway infra/public is unknown, so parentRefs[1] may attach to a plain HTTP listener; apply the \
                     Gateway first, or make every rule a RequestRedirect with scheme https"
                ),
            ]
        );
        // A redirect-only route is safe on any listener; the notice still tells how it was judged.
        let rules = json!([{"filters": [redirect("https")]}]);
        assert_eq!(check(&tls_rule(), &route(Kind::HttpRoute, parents, &[], rules)), vec![notice]);
        let set = json!([{"group": "gateway.networking.k8s.io", "kind": "ListenerSet", "name": "team"}]);
        assert_eq!(
            check(&tls_rule(), &route(Kind::GrpcRoute, set, &[], backend())),
            vec![
                Finding::Notice(
                    "ListenerSet shop/team is unknown, so the route was judged as if it attached to a plain HTTP \
                     listener without hostname"
                        .into()
                ),
                violation(
                    "ListenerSet shop/team is unknown, so parentRefs[0] may attach to a plain HTTP listener; apply \
                     the ListenerSet first"
                ),
            ]
        );
    }

    #[test]
    fn other_parents_and_kinds_are_not_judged() {
        let mesh = json!([{"group": "", "kind": "Service", "name": "web"}]);
        assert_eq!(check(&tls_rule(), &route(Kind::HttpRoute, mesh, &[], backend())), vec![]);
        assert_eq!(check(&tls_rule(), &route(Kind::HttpRoute, json!([]), &[], backend())), vec![]);
        let tls = gateway_api(
            Kind::TlsRoute,
            json!({"metadata": {"name": "db"}, "spec": {"parentRefs": [{"name": "public"}]}}),
        );
        assert_eq!(check(&tls_rule(), &tls), vec![]);
    }

    /// Decides a CREATE of HTTPRoute shop/web on the unknown Gateway
    /// infra/public under `routeTls` (Deny) and `routeHostnames` (Warn), the
    /// way the webhook does.
    fn decide(known: &GatewayView) -> Vec<(crate::engine::Severity, String)> {
        use crate::admission::{Requester, Review};
        use crate::engine::{NamespaceLabels, Operation, Stage, evaluate};
        let text = "---\napiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: tls}\n\
                    spec: {action: Deny, rule: {routeTls: {}}}\n\
                    ---\napiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: hostnames}\n\
                    spec: {action: Warn, rule: {routeHostnames: {}}}\n";
        let set = crate::policy::load_sources(&[(std::path::PathBuf::from("p.yaml"), text.to_owned())]).unwrap();
        let manifest = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"},
                              "spec": {"parentRefs": [{"name": "public", "namespace": "infra"}],
                                       "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]}});
        let review = Review::from_manifest(&manifest, "shop", Operation::Create, Requester::default());
        let input = crate::engine::Input { gateways: known, ..review.input(Stage::Validate) };
        let decision = evaluate(&input, &set, NamespaceLabels::none());
        decision
            .findings
            .iter()
            .map(|finding| (finding.severity, decision.line(finding, review.about(), &set)))
            .collect()
    }

    #[test]
    fn the_unknown_gateway_notice_is_said_once_with_the_verdict() {
        use crate::engine::Severity;
        assert_eq!(
            decide(&GatewayView::default()),
            [
                (
                    Severity::Notice,
                    "[portcullis] HTTPRoute shop/web: Gateway infra/public is unknown, so the route was judged as if \
                     it attached to a plain HTTP listener without hostname"
                        .to_owned()
                ),
                (
                    Severity::Deny,
                    "[tls] HTTPRoute shop/web: Gateway infra/public is unknown, so parentRefs[0] may attach to a plain \
                     HTTP listener; apply the Gateway first, or make every rule a RequestRedirect with scheme https"
                        .to_owned()
                ),
                (
                    Severity::Warn,
                    "[hostnames] HTTPRoute shop/web: no spec.hostnames, and Gateway infra/public is unknown, so the \
                     route may answer for every host name; list its hosts in spec.hostnames"
                        .to_owned()
                ),
            ]
        );
        // Known, with an https listener only: nothing to say.
        let mut view = GatewayView::default();
        view.insert_manifest(
            &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                    "metadata": {"name": "public", "namespace": "infra"},
                    "spec": {"listeners": [{"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.example.com",
                                            "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
            "infra",
        );
        assert_eq!(decide(&view), []);
    }
}
