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
//! This file also holds what the route rules share: hostname matching
//! ([`intersects`], [`covers`]) and where a route attaches ([`selected`],
//! [`Attachment`]), with the fail-safe reading of a parent the view does not
//! know (a listener without hostname and, for `routeTls`, plain HTTP).

use std::borrow::Cow;

use serde::Deserialize;

use super::Subject;
use super::route_tls::redirect_only;
use crate::engine::Finding;
use crate::engine::gateway::{GROUP, GatewayView, Listener, ParentRef, Route};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteHostnames {
    /// How a listener's wildcard covers route hostnames; default `OneLabel`.
    #[serde(default)]
    wildcard: Wildcard,
}

/// How far a listener hostname such as `*.example.com` reaches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Wildcard {
    /// Exactly one label, as in a certificate for the name (RFC 6125):
    /// `a.example.com`, not `a.b.example.com`.
    #[default]
    OneLabel,
    /// Any number of labels, as the Gateway API attaches routes.
    Suffix,
}

/// Hostnames and names are shown up to this many characters.
const SHOWN: usize = 64;

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

/// Whether a listener hostname and a route hostname intersect, which is how
/// the Gateway API decides that a route with hostnames attaches to a listener
/// with one: they are equal, or one is a wildcard `*.example.com` and the
/// other ends in `.example.com` with at least one label before it (either
/// side's wildcard stands for one or more labels). ASCII case is ignored.
pub(crate) fn intersects(listener: &str, route: &str) -> bool {
    covers(listener, route, Wildcard::Suffix) || covers(route, listener, Wildcard::Suffix)
}

/// Whether listener hostname `listener` covers route hostname `route`: every
/// name the route's hostname stands for is one the listener serves. Equal
/// names cover each other; a wildcard listener `*.example.com` covers a name
/// (or wildcard) under `example.com`: with [`Wildcard::OneLabel`] exactly one
/// label under it (`a.example.com`, and `*.example.com` itself), with
/// [`Wildcard::Suffix`] any depth. An exact listener hostname never covers a
/// wildcard route hostname. ASCII case is ignored.
pub(crate) fn covers(listener: &str, route: &str, wildcard: Wildcard) -> bool {
    if listener.eq_ignore_ascii_case(route) {
        return true;
    }
    let Some(domain) = listener.strip_prefix('*').filter(|domain| domain.starts_with('.')) else { return false };
    let Some(split) = route.len().checked_sub(domain.len()).filter(|split| *split > 0) else { return false };
    let (Some(head), Some(tail)) = (route.get(..split), route.get(split..)) else { return false };
    tail.eq_ignore_ascii_case(domain)
        && match wildcard {
            Wildcard::Suffix => true,
            Wildcard::OneLabel => !head.contains('.'),
        }
}

/// Where one `parentRefs` entry of a route leads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Attachment<'a> {
    /// A listener of a known Gateway or ListenerSet that the entry selects.
    Listener { index: usize, parent: &'a ParentRef, listener: &'a Listener },
    /// A Gateway or ListenerSet the view does not know: judged as a listener
    /// without hostname (and, for `routeTls`, plain HTTP), the strictest reading.
    Unknown { index: usize, parent: &'a ParentRef },
}

impl<'a> Attachment<'a> {
    /// The index of the `parentRefs` entry.
    pub(crate) fn index(&self) -> usize {
        match self {
            Attachment::Listener { index, .. } | Attachment::Unknown { index, .. } => *index,
        }
    }

    pub(crate) fn parent(&self) -> &'a ParentRef {
        match self {
            Attachment::Listener { parent, .. } | Attachment::Unknown { parent, .. } => parent,
        }
    }

    /// The listener's hostname; `None` when it takes every host name (an
    /// unknown parent is read so).
    pub(crate) fn hostname(&self) -> Option<&'a str> {
        match self {
            Attachment::Listener { listener, .. } => listener.hostname(),
            Attachment::Unknown { .. } => None,
        }
    }

    /// Whether a route with `hostnames` attaches here: the route or the
    /// listener has none, or one of them intersects the listener's.
    pub(crate) fn attaches(&self, hostnames: &[String]) -> bool {
        match self.hostname() {
            None => true,
            Some(listener) => hostnames.is_empty() || hostnames.iter().any(|route| intersects(listener, route)),
        }
    }

    /// `listener "https" (HTTPS, port 443) of Gateway infra/public`, or
    /// `Gateway infra/public` for an unknown parent, for messages.
    pub(crate) fn describe(&self, namespace: &str) -> String {
        match self {
            Attachment::Listener { parent, listener, .. } => format!(
                "listener {:?} ({}, port {}) of {}",
                cut(&listener.name),
                cut(&listener.protocol),
                listener.port,
                parent_name(parent, namespace)
            ),
            Attachment::Unknown { parent, .. } => parent_name(parent, namespace),
        }
    }
}

/// The listeners the `parentRefs` of `route` (in `namespace`) select, in
/// order: of each Gateway or ListenerSet the view knows, those the entry names
/// by `sectionName` and `port` (all when neither is set) whose `allowedRoutes`
/// admit the route's kind and namespace; a parent the view does not know
/// stands as [`Attachment::Unknown`]. Entries for other kinds of parent (a
/// mesh's Service) lead to no listener. Hostnames are not compared here: see
/// [`Attachment::attaches`].
pub(crate) fn selected<'a>(route: Route<'a>, namespace: &str, view: &'a GatewayView) -> Vec<Attachment<'a>> {
    let mut found = Vec::new();
    for (index, parent) in route.parent_refs().iter().enumerate() {
        if parent.parent_kind().is_none() {
            continue;
        }
        let Some(known) = view.parent(parent, namespace) else {
            found.push(Attachment::Unknown { index, parent });
            continue;
        };
        let parent_namespace = parent.namespace_or(namespace);
        for listener in &known.listeners {
            if parent.selects(listener) && admits(listener, route.kind(), namespace, parent_namespace) {
                found.push(Attachment::Listener { index, parent, listener });
            }
        }
    }
    found
}

/// Whether a listener's `allowedRoutes` let in a route of `kind` from
/// `route_namespace`. Without `kinds`, the protocol decides (HTTP and HTTPS:
/// HTTPRoute and GRPCRoute; TLS: TLSRoute; TCP and UDP: none of these; an
/// implementation's own protocol: any). `from` defaults to `Same`; a
/// `Selector` is taken to admit the route (the strict reading: the labels of
/// the route's namespace are not at hand).
fn admits(listener: &Listener, kind: &str, route_namespace: &str, parent_namespace: &str) -> bool {
    let allowed = listener.allowed_routes.as_ref();
    let kinds = allowed.map_or(&[][..], |allowed| allowed.kinds.as_slice());
    let kind_admitted = if kinds.is_empty() {
        match listener.protocol.as_str() {
            "HTTP" | "HTTPS" => kind == "HTTPRoute" || kind == "GRPCRoute",
            "TLS" => kind == "TLSRoute",
            "TCP" | "UDP" => false,
            _ => true,
        }
    } else {
        kinds.iter().any(|admitted| admitted.group.as_deref().unwrap_or(GROUP) == GROUP && admitted.kind == kind)
    };
    let from =
        allowed.and_then(|allowed| allowed.namespaces.as_ref()).and_then(|namespaces| namespaces.from.as_deref());
    kind_admitted && (from.unwrap_or("Same") != "Same" || route_namespace == parent_namespace)
}

/// Adds, once per unknown parent, the notice that says how the route was judged.
pub(crate) fn push_unknown_notices(
    route: Route<'_>,
    attachments: &[Attachment<'_>],
    namespace: &str,
    findings: &mut Vec<Finding>,
) {
    let listener = match route {
        Route::Tls(_) => "a listener without hostname",
        Route::Http(_) | Route::Grpc(_) => "a plain HTTP listener without hostname",
    };
    for attachment in attachments {
        if let Attachment::Unknown { parent, .. } = attachment {
            let notice = Finding::Notice(format!(
                "{} is unknown, so the route was judged as if it attached to {listener}",
                parent_name(parent, namespace)
            ));
            if !findings.contains(&notice) {
                findings.push(notice);
            }
        }
    }
}

/// `Gateway infra/public` (the parent's kind, namespace and name).
pub(crate) fn parent_name(parent: &ParentRef, namespace: &str) -> String {
    let kind = parent.parent_kind().map_or("Gateway", |kind| kind.as_str());
    format!("{kind} {}/{}", cut(parent.namespace_or(namespace)), cut(&parent.name))
}

/// A name cut after [`SHOWN`] characters, so that a line stays short.
pub(crate) fn cut(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
        None => Cow::Borrowed(text),
    }
}

/// A hostname for a message: cut like a name (hostnames are DNS names, nothing to escape).
fn shown(hostname: &str) -> Cow<'_, str> {
    cut(hostname)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Kind;
    use crate::engine::rules::testing::*;
    use serde_json::json;

    #[test]
    fn one_label_wildcards_cover_one_label_only() {
        let one = |listener, route| covers(listener, route, Wildcard::OneLabel);
        assert!(one("shop.example.com", "shop.example.com"));
        assert!(one("Shop.Example.com", "shop.example.COM"));
        assert!(one("*.example.com", "shop.example.com"));
        assert!(one("*.example.com", "*.example.com"));
        assert!(one("*.EXAMPLE.com", "Shop.example.com"));
        assert!(!one("*.example.com", "a.b.example.com"));
        assert!(!one("*.example.com", "*.b.example.com"));
        assert!(!one("*.example.com", "example.com"));
        assert!(!one("*.example.com", ".example.com"));
        assert!(!one("*.example.com", "shopexample.com"));
        assert!(!one("*.example.com", "shop.example.net"));
        assert!(!one("shop.example.com", "*.example.com"), "an exact listener never covers a wildcard");
        assert!(!one("example.com", "shop.example.com"));
        assert!(!one("*example.com", "shopexample.com"), "only a whole wildcard label counts");
        assert!(!one("*.example.com", "é.example.com.x"));
        assert!(!one("*.é", "aé"), "no split inside a character");
    }

    #[test]
    fn suffix_wildcards_cover_any_depth() {
        let suffix = |listener, route| covers(listener, route, Wildcard::Suffix);
        assert!(suffix("*.example.com", "a.b.example.com"));
        assert!(suffix("*.example.com", "*.b.example.com"));
        assert!(suffix("*.example.com", "shop.example.com"));
        assert!(!suffix("*.example.com", "example.com"));
        assert!(!suffix("*.example.com", "shop.example.net"));
        assert!(!suffix("*.b.example.com", "*.example.com"));
        assert!(!suffix("shop.example.com", "*.example.com"));
    }

    #[test]
    fn hostnames_intersect_as_the_gateway_api_attaches() {
        // The spec's examples: a listener test.example.com takes routes for
        // test.example.com or *.example.com; a listener *.example.com takes
        // *.example.com, test.example.com and foo.test.example.com, not
        // example.com or test.example.net.
        assert!(intersects("test.example.com", "test.example.com"));
        assert!(intersects("test.example.com", "*.example.com"));
        assert!(!intersects("test.example.com", "other.example.com"));
        for route in ["*.example.com", "test.example.com", "foo.test.example.com", "*.test.example.com"] {
            assert!(intersects("*.example.com", route), "{route}");
        }
        for route in ["example.com", "test.example.net", "*.example.net"] {
            assert!(!intersects("*.example.com", route), "{route}");
        }
        assert!(intersects("*.test.example.com", "*.example.com"));
    }

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
        // http admits routes of infra only, tls admits TLSRoutes only, grpc GRPCRoutes only.
        let route = http_route(json!([{"name": "public", "namespace": "infra"}]), &[]);
        let found = selected(route.route().unwrap(), "shop", &view);
        let names: Vec<&str> = found
            .iter()
            .map(|found| match found {
                Attachment::Listener { listener, .. } => listener.name.as_str(),
                Attachment::Unknown { .. } => "?",
            })
            .collect();
        assert_eq!(names, ["https"]);
        assert_eq!(
            selected(route.route().unwrap(), "infra", &view).len(),
            2,
            "http admits its own namespace, https the selector's"
        );
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
        assert_eq!(selected(mesh.route().unwrap(), "shop", &view), vec![]);
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
        assert_eq!(cut("short"), "short");
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
