//! Where a route attaches, as the route rules (`routeHostnames`, `routeTls`,
//! `gatewayAuth`) and the exposure inventory read it: hostname matching
//! (`intersects`, `covers`, by a [`Wildcard`]), the listeners a route's
//! `parentRefs` select (`selected`, each an `Attachment`), with the fail-safe
//! reading of a parent the [`GatewayView`] does not know (a listener without
//! hostname and, for `routeTls`, plain HTTP) and the notice that says so
//! (`push_unknown_notices`), and whether an HTTPRoute only redirects to
//! `https` (`redirect_only`). Names in messages are `cut` short.

use std::borrow::Cow;

use serde::Deserialize;

use super::view::GatewayView;
use super::{GROUP, HttpRouteRule, Listener, ParentRef, Route};
use crate::engine::Finding;

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
                ParentName(parent, namespace)
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
    ParentName(parent, namespace).to_string()
}

/// [`parent_name`], written where it is shown instead of into a string of its own.
struct ParentName<'a>(&'a ParentRef, &'a str);

impl std::fmt::Display for ParentName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ParentName(parent, namespace) = self;
        let kind = parent.parent_kind().map_or("Gateway", |kind| kind.as_str());
        write!(f, "{kind} {}/{}", cut(parent.namespace_or(namespace)), cut(&parent.name))
    }
}

/// A name cut after [`SHOWN`] characters, so that a line stays short.
pub(crate) fn cut(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
        None => Cow::Borrowed(text),
    }
}

/// Whether the route is an HTTPRoute that only redirects to `https`: every
/// rule (there is at least one) is a `RequestRedirect` with `scheme: https`,
/// so it serves nothing over plain HTTP. A GRPCRoute cannot redirect.
pub(crate) fn redirect_only(route: Route<'_>) -> bool {
    matches!(route, Route::Http(_)) && redirects_only(route.http_rules())
}

fn redirects_only(rules: &[HttpRouteRule]) -> bool {
    !rules.is_empty()
        && rules.iter().all(|rule| {
            rule.filters.iter().any(|filter| {
                filter.kind == "RequestRedirect"
                    && filter.request_redirect.as_ref().and_then(|redirect| redirect.scheme.as_deref()) == Some("https")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gateway::{HttpRoute, TlsRoute};
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

    #[test]
    fn a_listener_that_does_not_admit_the_route_is_not_selected() {
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
        let route: HttpRoute =
            serde_json::from_value(json!({"spec": {"parentRefs": [{"name": "public", "namespace": "infra"}]}}))
                .unwrap();
        let found = selected(Route::Http(&route), "shop", &view);
        let names: Vec<&str> = found
            .iter()
            .map(|found| match found {
                Attachment::Listener { listener, .. } => listener.name.as_str(),
                Attachment::Unknown { .. } => "?",
            })
            .collect();
        assert_eq!(names, ["https"]);
        assert_eq!(
            selected(Route::Http(&route), "infra", &view).len(),
            2,
            "http admits its own namespace, https the selector's"
        );
        let tls: TlsRoute =
            serde_json::from_value(json!({"spec": {"parentRefs": [{"name": "public", "namespace": "infra"}]}}))
                .unwrap();
        let found = selected(Route::Tls(&tls), "shop", &view);
        assert!(matches!(&found[..], [Attachment::Listener { listener, .. }] if listener.name == "tls"), "{found:?}");
        // A mesh parent (a Service) leads to no listener.
        let mesh: HttpRoute =
            serde_json::from_value(json!({"spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web"}]}}))
                .unwrap();
        assert_eq!(selected(Route::Http(&mesh), "shop", &view), vec![]);
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(cut("short"), "short");
        assert_eq!(cut(&"a".repeat(64)), "a".repeat(64));
        assert_eq!(cut(&"a".repeat(70)), format!("{}…", "a".repeat(64)));
    }
}
