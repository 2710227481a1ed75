//! `routeHostnames`: every hostname of an HTTPRoute, GRPCRoute or TLSRoute
//! must be covered by the hostname of a listener the route attaches to. A
//! hostname no such listener covers is not served (the Gateway API ignores it
//! on every listener it does not match), or, with a wildcard listener, would
//! be served with a certificate that does not name it. A route without
//! hostnames on a listener without hostname answers for every host name and is
//! warned, unless it only redirects to `https`.
//!
//! Wildcards: the Gateway API reads a listener's `*.example.com` as a suffix
//! (it attaches `a.b.example.com` too), but a certificate for `*.example.com`
//! names exactly one label (RFC 6125), so clients refuse `a.b.example.com`.
//! Parameter `wildcard`: `OneLabel` (default) judges coverage the way the
//! listener's certificate does, `Suffix` the way the Gateway API attaches.
//!
//! Where a route attaches and how hostnames match, the Gateway API's way, the
//! route rules share: see [`attachment`](crate::engine::gateway::attachment).

use std::borrow::Cow;

use serde::Deserialize;

use super::Subject;
use crate::engine::Finding;
use crate::engine::gateway::attachment::{
    Attachment, Wildcard, covers, cut, parent_name, push_unknown_notices, redirect_only, selected,
};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteHostnames {
    /// How a listener's wildcard covers route hostnames; default `OneLabel`.
    #[serde(default)]
    wildcard: Wildcard,
}

/// Listener hostnames listed in a message, at most.
const LISTED: usize = 3;

impl RouteHostnames {
    pub fn check(&self, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let Some(route) = subject.object.route() else { return };
        let namespace = subject.namespace;
        let selected = selected(route, namespace, subject.gateways);
        push_unknown_notices(route, &selected, namespace, findings);
        let hostnames = route.hostnames();
        let attached: Vec<&Attachment<'_>> = selected.iter().filter(|found| found.attaches(hostnames)).collect();
        if hostnames.is_empty() {
            // A redirect to https may answer for every host name: it serves nothing.
            if !redirect_only(route)
                && let Some(open) = attached.iter().find(|found| found.hostname().is_none())
            {
                findings.push(Finding::Warning(catches_every_host(open, namespace)));
            }
            return;
        }
        if selected.is_empty() {
            // The route attaches to no listener at all: nothing to cover.
            return;
        }
        let mut judged: Vec<&str> = Vec::new();
        for hostname in hostnames {
            if judged.iter().any(|seen| seen.eq_ignore_ascii_case(hostname)) {
                continue;
            }
            judged.push(hostname);
            let covered = attached
                .iter()
                .any(|found| found.hostname().is_none_or(|listener| covers(listener, hostname, self.wildcard)));
            if covered {
                continue;
            }
            let deeper = attached.iter().find_map(|found| match found {
                Attachment::Listener { listener, .. } => listener
                    .hostname()
                    .filter(|wildcard| covers(wildcard, hostname, Wildcard::Suffix))
                    .map(|wildcard| (*found, wildcard)),
                Attachment::Unknown { .. } => None,
            });
            findings.push(Finding::Violation(match deeper {
                Some((found, wildcard)) => format!(
                    "hostname {} is not covered by {wildcard} of {}: a wildcard covers exactly one label, as in a TLS \
                     certificate; attach to a listener whose hostname covers it, or use one label under {}",
                    shown(hostname),
                    found.describe(namespace),
                    wildcard.trim_start_matches("*."),
                ),
                None => format!(
                    "hostname {} is not covered by the hostname of any listener the route's parentRefs select ({}), \
                     so requests for it are not (all) served; attach to a listener whose hostname covers it, or \
                     remove it from spec.hostnames",
                    shown(hostname),
                    listed(&selected),
                ),
            }));
        }
    }
}

/// The warning for a route without hostnames on a listener without one.
fn catches_every_host(open: &Attachment<'_>, namespace: &str) -> String {
    match open {
        Attachment::Listener { .. } => format!(
            "no spec.hostnames, and {} has no hostname either, so the route answers for every host name; list its \
             hosts in spec.hostnames",
            open.describe(namespace)
        ),
        Attachment::Unknown { parent, .. } => format!(
            "no spec.hostnames, and {} is unknown, so the route may answer for every host name; list its hosts in \
             spec.hostnames",
            parent_name(parent, namespace)
        ),
    }
}

/// The distinct hostnames of the selected listeners, for a message (all of
/// them have one: a listener without hostname covers every route hostname).
fn listed(selected: &[Attachment<'_>]) -> String {
    let mut hostnames: Vec<&str> = Vec::new();
    for hostname in selected.iter().filter_map(Attachment::hostname) {
        if !hostnames.iter().any(|seen| seen.eq_ignore_ascii_case(hostname)) {
            hostnames.push(hostname);
        }
    }
    let mut text = hostnames.iter().take(LISTED).map(|hostname| shown(hostname)).collect::<Vec<_>>().join(", ");
    if hostnames.len() > LISTED {
        text.push_str(&format!(" and {} more", hostnames.len() - LISTED));
    }
    text
}

/// A hostname for a message: cut like a name (hostnames are DNS names, nothing to escape).
fn shown(hostname: &str) -> Cow<'_, str> {
    cut(hostname)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Kind;
    use crate::engine::gateway::GatewayView;
    use crate::engine::rules::testing::*;
    use serde_json::json;

    /// An HTTPRoute `web` with these parentRefs and hostnames.
    fn http_route(parents: serde_json::Value, hostnames: &[&str]) -> crate::engine::Object {
        gateway_api(
            Kind::HttpRoute,
            json!({"metadata": {"name": "web"}, "spec": {"parentRefs": parents, "hostnames": hostnames,
                   "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]}}),
        )
    }

    /// A view with Gateway infra/public: `http` (port 80, no hostname) and
    /// `https` (port 443, `*.example.com`), both open to every namespace.
    fn public() -> GatewayView {
        let mut view = GatewayView::default();
        let gateway = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "public", "namespace": "infra"},
            "spec": {"listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}},
                {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.example.com",
                 "allowedRoutes": {"namespaces": {"from": "All"}}}]}});
        assert!(view.insert_manifest(&gateway, "default"));
        view
    }

    fn hostnames_rule(wildcard: &str) -> crate::engine::rules::Rule {
        rule(json!({"routeHostnames": {"wildcard": wildcard}}))
    }

    /// parentRefs to the `https` listener of infra/public.
    fn https_ref() -> serde_json::Value {
        json!([{"name": "public", "namespace": "infra", "sectionName": "https"}])
    }

    #[test]
    fn a_deeper_name_under_a_wildcard_listener_is_denied_by_default() {
        let route = http_route(https_ref(), &["a.b.example.com"]);
        let expected = violation(
            "hostname a.b.example.com is not covered by *.example.com of listener \"https\" (HTTPS, port 443) of \
             Gateway infra/public: a wildcard covers exactly one label, as in a TLS certificate; attach to a listener \
             whose hostname covers it, or use one label under example.com",
        );
        assert_eq!(check_with(&rule(json!({"routeHostnames": {}})), &route, &public()), vec![expected.clone()]);
        assert_eq!(check_with(&hostnames_rule("OneLabel"), &route, &public()), vec![expected]);
        assert_eq!(check_with(&hostnames_rule("Suffix"), &route, &public()), vec![]);
    }

    #[test]
    fn covered_hostnames_pass() {
        let route = http_route(https_ref(), &["shop.example.com", "api.example.com", "*.example.com"]);
        assert_eq!(check_with(&hostnames_rule("OneLabel"), &route, &public()), vec![]);
        // Without sectionName the route attaches to both listeners; http has no hostname.
        let both = http_route(json!([{"name": "public", "namespace": "infra"}]), &["a.b.example.com"]);
        assert_eq!(check_with(&hostnames_rule("OneLabel"), &both, &public()), vec![]);
    }

    #[test]
    fn a_hostname_outside_every_listener_is_denied() {
        let route = http_route(https_ref(), &["shop.example.com", "shop.example.net", "SHOP.example.net"]);
        let expected = violation(
            "hostname shop.example.net is not covered by the hostname of any listener the route's parentRefs select \
             (*.example.com), so requests for it are not (all) served; attach to a listener whose hostname covers \
             it, or remove it from spec.hostnames",
        );
        assert_eq!(check_with(&hostnames_rule("OneLabel"), &route, &public()), vec![expected.clone()]);
        assert_eq!(check_with(&hostnames_rule("Suffix"), &route, &public()), vec![expected]);
    }

    #[test]
    fn a_wildcard_route_wider_than_its_listener_is_denied() {
        let mut view = GatewayView::default();
        view.insert_manifest(
            &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "shop"},
                    "spec": {"listeners": [
                        {"name": "a", "port": 443, "protocol": "HTTPS", "hostname": "a.example.com"},
                        {"name": "b", "port": 443, "protocol": "HTTPS", "hostname": "b.example.com"},
                        {"name": "c", "port": 443, "protocol": "HTTPS", "hostname": "c.example.com"},
                        {"name": "d", "port": 443, "protocol": "HTTPS", "hostname": "d.example.com"}]}}),
            "shop",
        );
        let route = http_route(json!([{"name": "shop"}]), &["*.example.com", "a.example.com", "b.example.com"]);
        assert_eq!(
            check_with(&hostnames_rule("Suffix"), &route, &view),
            vec![violation(
                "hostname *.example.com is not covered by the hostname of any listener the route's parentRefs select \
                 (a.example.com, b.example.com, c.example.com and 1 more), so requests for it are not (all) served; \
                 attach to a listener whose hostname covers it, or remove it from spec.hostnames"
            )]
        );
        // Each name served by one of the listeners: fine (the others ignore it).
        let split = http_route(json!([{"name": "shop"}]), &["a.example.com", "d.example.com"]);
        assert_eq!(check_with(&hostnames_rule("OneLabel"), &split, &view), vec![]);
    }

    #[test]
    fn a_route_without_hostnames_on_a_listener_without_hostname_is_warned() {
        let route = http_route(json!([{"name": "public", "namespace": "infra", "sectionName": "http"}]), &[]);
        let warning = Finding::Warning(
            "no spec.hostnames, and listener \"http\" (HTTP, port 80) of Gateway infra/public has no hostname either, \
             so the route answers for every host name; list its hosts in spec.hostnames"
                .into(),
        );
        assert_eq!(check_with(&hostnames_rule("OneLabel"), &route, &public()), vec![warning]);
        // On the https listener it takes the listener's hostname.
        assert_eq!(check_with(&hostnames_rule("OneLabel"), &http_route(https_ref(), &[]), &public()), vec![]);
        // A catch-all redirect to https serves nothing.
        let redirect = gateway_api(
            Kind::HttpRoute,
            json!({"metadata": {"name": "redirect"}, "spec": {
                "parentRefs": [{"name": "public", "namespace": "infra", "sectionName": "http"}],
                "rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]}]}}),
        );
        assert_eq!(check_with(&hostnames_rule("OneLabel"), &redirect, &public()), vec![]);
        let grpc = gateway_api(
            Kind::GrpcRoute,
            json!({"metadata": {"name": "api"}, "spec": {
                "parentRefs": [{"name": "public", "namespace": "infra", "sectionName": "http"}],
                "rules": [{"backendRefs": [{"name": "api", "port": 50051}]}]}}),
        );
        assert_eq!(check_with(&hostnames_rule("OneLabel"), &grpc, &public()).len(), 1);
    }

    #[test]
    fn an_unknown_gateway_is_judged_as_a_listener_without_hostname_with_a_notice() {
        let notice = Finding::Notice(
            "Gateway infra/edge is unknown, so the route was judged as if it attached to a plain HTTP listener \
             without hostname"
                .into(),
        );
        let parents = json!([{"name": "edge", "namespace": "infra", "sectionName": "https"},
                             {"name": "edge", "namespace": "infra", "sectionName": "http"}]);
        assert_eq!(
            check_with(&hostnames_rule("OneLabel"), &http_route(parents.clone(), &[]), &public()),
            vec![
                notice.clone(),
                Finding::Warning(
                    "no spec.hostnames, and Gateway infra/edge is unknown, so the route may answer for every host \
                     name; list its hosts in spec.hostnames"
                        .into()
                ),
            ]
        );
        assert_eq!(
            check_with(&hostnames_rule("OneLabel"), &http_route(parents, &["a.b.example.com"]), &public()),
            vec![notice]
        );
        let tls = gateway_api(
            Kind::TlsRoute,
            json!({"metadata": {"name": "db"}, "spec": {"parentRefs": [{"name": "edge"}], "hostnames": ["db.example.com"]}}),
        );
        assert_eq!(
            check(&hostnames_rule("OneLabel"), &tls),
            vec![Finding::Notice(
                "Gateway shop/edge is unknown, so the route was judged as if it attached to a listener without hostname"
                    .into()
            )]
        );
    }

    #[test]
    fn a_listener_that_does_not_admit_the_route_is_not_attached() {
        let mut view = GatewayView::default();
        view.insert_manifest(
            &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                    "metadata": {"name": "public", "namespace": "infra"},
                    "spec": {"listeners": [
                        {"name": "http", "port": 80, "protocol": "HTTP"},
                        {"name": "tls", "port": 8443, "protocol": "TLS", "tls": {"mode": "Passthrough"},
                         "allowedRoutes": {"namespaces": {"from": "All"}}},
                        {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.example.com",
                         "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"a": "b"}}}}},
                        {"name": "grpc", "port": 9443, "protocol": "HTTPS", "hostname": "grpc.example.com",
                         "allowedRoutes": {"namespaces": {"from": "All"}, "kinds": [{"kind": "GRPCRoute"}]}}]}}),
            "infra",
        );
        // Of these only tls admits a TLSRoute (which listeners each route selects: see
        // the tests of the attachment).
        let tls = gateway_api(
            Kind::TlsRoute,
            json!({"metadata": {"name": "db"}, "spec": {"parentRefs": [{"name": "public", "namespace": "infra"}]}}),
        );
        assert_eq!(
            check_with(&hostnames_rule("OneLabel"), &tls, &view),
            vec![Finding::Warning(
                "no spec.hostnames, and listener \"tls\" (TLS, port 8443) of Gateway infra/public has no hostname \
                 either, so the route answers for every host name; list its hosts in spec.hostnames"
                    .into()
            )]
        );
        // A mesh parent (a Service) leads to no listener.
        let mesh = http_route(json!([{"group": "", "kind": "Service", "name": "web"}]), &[]);
        assert_eq!(check_with(&hostnames_rule("OneLabel"), &mesh, &view), vec![]);
    }

    #[test]
    fn a_route_that_selects_no_listener_is_not_judged() {
        let route =
            http_route(json!([{"name": "public", "namespace": "infra", "sectionName": "nope"}]), &["x.example.org"]);
        assert_eq!(check_with(&hostnames_rule("OneLabel"), &route, &public()), vec![]);
    }

    #[test]
    fn a_listener_set_is_a_parent_of_its_own() {
        let mut view = GatewayView::default();
        view.insert_manifest(
            &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ListenerSet", "metadata": {"name": "team"},
                    "spec": {"parentRef": {"name": "public", "namespace": "infra"},
                             "listeners": [{"name": "shop", "port": 443, "protocol": "HTTPS", "hostname": "shop.example.com"}]}}),
            "shop",
        );
        let parent = json!([{"kind": "ListenerSet", "group": "gateway.networking.k8s.io", "name": "team"}]);
        assert_eq!(
            check_with(&hostnames_rule("OneLabel"), &http_route(parent.clone(), &["shop.example.com"]), &view),
            vec![]
        );
        assert_eq!(
            check_with(&hostnames_rule("OneLabel"), &http_route(parent, &["*.example.com"]), &view),
            vec![violation(
                "hostname *.example.com is not covered by the hostname of any listener the route's parentRefs select \
                 (shop.example.com), so requests for it are not (all) served; attach to a listener whose hostname \
                 covers it, or remove it from spec.hostnames"
            )]
        );
    }

    #[test]
    fn long_names_are_cut() {
        let host = format!("{}.example.net", "a".repeat(70));
        let route = http_route(https_ref(), &[&host]);
        let findings = check_with(&hostnames_rule("OneLabel"), &route, &public());
        let Some(Finding::Violation(text)) = findings.first() else { panic!("{findings:?}") };
        assert!(text.starts_with(&format!("hostname {}… is not covered", "a".repeat(64))), "{text}");
    }

    #[test]
    fn the_wildcard_parameter_is_checked_at_load() {
        let parsed: Result<crate::engine::rules::Rule, _> =
            serde_json::from_value(json!({"routeHostnames": {"wildcard": "Prefix"}}));
        assert!(parsed.unwrap_err().to_string().contains("unknown variant `Prefix`"));
        let unknown: Result<crate::engine::rules::Rule, _> =
            serde_json::from_value(json!({"routeHostnames": {"wildcards": "Suffix"}}));
        assert!(unknown.is_err());
    }
}
