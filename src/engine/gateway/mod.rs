//! Gateway API objects (`gateway.networking.k8s.io`), typed with structs of
//! our own: k8s-openapi has none, and the `gateway-api` crate's generated
//! types (every field of every channel, with schemars) would more than double
//! the compile time of the engine for the few fields the rules read. These
//! hold exactly those fields, with the API's names and defaults; unknown
//! fields are ignored, so `v1`, `v1beta1` and `v1alpha2` bodies of the same
//! kind read alike, while a field of the wrong type makes the object
//! unreadable (and denied), as for a Service or Ingress.
//!
//! [`view`] holds the engine's read-only view of the Gateways and
//! ListenerSets routes attach to, and of the policies that target routes;
//! [`attachment`], where in that view a route attaches, as the route rules
//! read it.

pub mod attachment;
pub mod view;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;

pub use view::{GatewayView, Parent, ParentKey, ParentKind, TargetingPolicy};

/// The API group of every kind here.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// A Gateway: listeners on addresses, to which routes attach.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: GatewaySpec,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    #[serde(default)]
    pub gateway_class_name: String,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Which ListenerSets may attach; none when unset.
    #[serde(default)]
    pub allowed_listeners: Option<AllowedListeners>,
}

/// One listener of a Gateway or ListenerSet: the same schema in both.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub name: String,
    /// `None` (or empty): every hostname.
    #[serde(default)]
    pub hostname: Option<String>,
    pub port: i32,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP` or an implementation's own.
    pub protocol: String,
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    #[serde(default)]
    pub allowed_routes: Option<AllowedRoutes>,
}

impl Listener {
    /// The hostname, `None` when the listener accepts every hostname.
    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref().filter(|hostname| !hostname.is_empty())
    }

    /// `HTTPS` or `TLS` with mode `Terminate` (the default): the listener
    /// ends TLS with its own certificates.
    pub fn terminates_tls(&self) -> bool {
        self.protocol == "HTTPS" || (self.protocol == "TLS" && self.tls_mode() == TlsMode::Terminate)
    }

    /// A plain-text HTTP listener.
    pub fn is_plain_http(&self) -> bool {
        self.protocol == "HTTP"
    }

    /// The TLS mode, `Terminate` unless set.
    pub fn tls_mode(&self) -> TlsMode {
        match self.tls.as_ref().and_then(|tls| tls.mode.as_deref()) {
            Some("Passthrough") => TlsMode::Passthrough,
            Some("Terminate") | None => TlsMode::Terminate,
            Some(_) => TlsMode::Other,
        }
    }
}

/// `tls.mode` of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    Terminate,
    Passthrough,
    /// A value the API does not define (the CRD's validation rejects it).
    Other,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub certificate_refs: Vec<ObjectRef>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// `allowedRoutes` of a listener.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoutes {
    #[serde(default)]
    pub namespaces: Option<FromNamespaces>,
    #[serde(default)]
    pub kinds: Vec<GroupKind>,
}

/// `allowedListeners` of a Gateway.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedListeners {
    #[serde(default)]
    pub namespaces: Option<FromNamespaces>,
}

/// `namespaces: {from, selector}` of `allowedRoutes` and `allowedListeners`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FromNamespaces {
    /// `Same`, `All`, `Selector` or (`allowedListeners` only) `None`;
    /// unset means the field's default (`Same` for routes, `None` for ListenerSets).
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub selector: Option<LabelSelector>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupKind {
    #[serde(default)]
    pub group: Option<String>,
    pub kind: String,
}

/// A reference to an object by group, kind, name and namespace
/// (`certificateRefs`, `backendRefs`, `extensionRef`, `targetRefs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Empty or unset: the core group.
    #[serde(default)]
    pub group: Option<String>,
    /// Unset: the field's default kind (`Secret`, `Service`, ...).
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub port: Option<i32>,
    #[serde(default)]
    pub section_name: Option<String>,
}

impl ObjectRef {
    /// The group, `""` for the core group.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or_default()
    }

    /// The kind, or `default` when unset.
    pub fn kind_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.kind.as_deref().filter(|kind| !kind.is_empty()).unwrap_or(default)
    }
}

/// A ListenerSet: more listeners for a Gateway, owned by another team.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSet {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ListenerSetSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSetSpec {
    /// The Gateway the listeners are added to.
    #[serde(default)]
    pub parent_ref: Option<ParentRef>,
    #[serde(default)]
    pub listeners: Vec<Listener>,
}

/// `parentRefs` entry of a route (or `parentRef` of a ListenerSet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    #[serde(default)]
    pub group: Option<String>,
    /// Unset: `Gateway`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Unset: the namespace of the referring object.
    #[serde(default)]
    pub namespace: Option<String>,
    pub name: String,
    /// The listener's name.
    #[serde(default)]
    pub section_name: Option<String>,
    #[serde(default)]
    pub port: Option<i32>,
}

impl ParentRef {
    /// The parent's kind, if it is one of the Gateway API's parents.
    pub fn parent_kind(&self) -> Option<ParentKind> {
        let group = self.group.as_deref().unwrap_or(GROUP);
        if group != GROUP {
            return None;
        }
        match self.kind.as_deref().unwrap_or("Gateway") {
            "Gateway" => Some(ParentKind::Gateway),
            "ListenerSet" => Some(ParentKind::ListenerSet),
            _ => None,
        }
    }

    /// The parent's namespace, given the referring object's.
    pub fn namespace_or<'a>(&'a self, own: &'a str) -> &'a str {
        self.namespace.as_deref().filter(|namespace| !namespace.is_empty()).unwrap_or(own)
    }

    /// `Gateway infra/public`, `Gateway infra/public (listener https)`,
    /// `ListenerSet shop/extra (port 443)`, for messages.
    pub fn describe(&self, own_namespace: &str) -> String {
        let kind = self.kind.as_deref().unwrap_or("Gateway");
        let mut text = format!("{kind} {}/{}", self.namespace_or(own_namespace), self.name);
        match (&self.section_name, self.port) {
            (Some(section), Some(port)) => text.push_str(&format!(" (listener {section}, port {port})")),
            (Some(section), None) => text.push_str(&format!(" (listener {section})")),
            (None, Some(port)) => text.push_str(&format!(" (port {port})")),
            (None, None) => {}
        }
        text
    }

    /// Whether the reference selects `listener`: by `sectionName` and
    /// `port` when set, else every listener.
    pub fn selects(&self, listener: &Listener) -> bool {
        self.section_name.as_deref().is_none_or(|section| section == listener.name)
            && self.port.is_none_or(|port| port == listener.port)
    }
}

/// An HTTPRoute.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: HttpRouteSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub filters: Vec<RouteFilter>,
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
}

/// A filter of an HTTPRoute or GRPCRoute rule (or of one of its backends).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteFilter {
    /// `RequestRedirect`, `ExternalAuth`, `ExtensionRef`, ...
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub request_redirect: Option<RequestRedirect>,
    #[serde(default)]
    pub extension_ref: Option<ObjectRef>,
    /// `ExternalAuth` (Gateway API v1.3+): where requests are authenticated.
    #[serde(default)]
    pub external_auth: Option<ExternalAuth>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub port: Option<i32>,
    #[serde(default)]
    pub status_code: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAuth {
    /// `HTTP` or `GRPC`.
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub backend_ref: Option<ObjectRef>,
}

/// A `backendRefs` entry of a route rule.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub port: Option<i32>,
    #[serde(default)]
    pub filters: Vec<RouteFilter>,
}

/// A GRPCRoute: the same shape as an HTTPRoute where the rules read it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRoute {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: HttpRouteSpec,
}

/// A TLSRoute: SNI-routed TLS connections.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsRoute {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: TlsRouteSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsRouteSpec {
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<TlsRouteRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsRouteRule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
}

/// A ReferenceGrant: lets objects of other namespaces refer to objects of its own.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrant {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ReferenceGrantSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantSpec {
    #[serde(default)]
    pub from: Vec<GrantFrom>,
    #[serde(default)]
    pub to: Vec<GrantTo>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantFrom {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    pub namespace: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantTo {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    /// Unset: every object of the kind in the namespace.
    #[serde(default)]
    pub name: Option<String>,
}

/// What the route rules share: an HTTPRoute, GRPCRoute or TLSRoute.
#[derive(Clone, Copy, Debug)]
pub enum Route<'a> {
    Http(&'a HttpRoute),
    Grpc(&'a GrpcRoute),
    Tls(&'a TlsRoute),
}

impl<'a> Route<'a> {
    pub fn metadata(&self) -> &'a ObjectMeta {
        match self {
            Route::Http(route) => &route.metadata,
            Route::Grpc(route) => &route.metadata,
            Route::Tls(route) => &route.metadata,
        }
    }

    pub fn parent_refs(&self) -> &'a [ParentRef] {
        match self {
            Route::Http(route) => &route.spec.parent_refs,
            Route::Grpc(route) => &route.spec.parent_refs,
            Route::Tls(route) => &route.spec.parent_refs,
        }
    }

    pub fn hostnames(&self) -> &'a [String] {
        match self {
            Route::Http(route) => &route.spec.hostnames,
            Route::Grpc(route) => &route.spec.hostnames,
            Route::Tls(route) => &route.spec.hostnames,
        }
    }

    /// The rules of an HTTPRoute or GRPCRoute (filters and backends); none
    /// for a TLSRoute, which has no filters.
    pub fn http_rules(&self) -> &'a [HttpRouteRule] {
        match self {
            Route::Http(route) => &route.spec.rules,
            Route::Grpc(route) => &route.spec.rules,
            Route::Tls(_) => &[],
        }
    }

    /// `HTTPRoute`, `GRPCRoute` or `TLSRoute`.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Http(_) => "HTTPRoute",
            Route::Grpc(_) => "GRPCRoute",
            Route::Tls(_) => "TLSRoute",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_listener_terminates_tls_on_https_and_tls_terminate_only() {
        let listener = |protocol: &str, mode: Option<&str>| Listener {
            name: "l".into(),
            port: 443,
            protocol: protocol.into(),
            tls: mode.map(|mode| ListenerTls { mode: Some(mode.into()), ..ListenerTls::default() }),
            ..Listener::default()
        };
        assert!(listener("HTTPS", None).terminates_tls());
        assert!(listener("TLS", None).terminates_tls());
        assert!(listener("TLS", Some("Terminate")).terminates_tls());
        assert!(!listener("TLS", Some("Passthrough")).terminates_tls());
        assert!(!listener("HTTP", None).terminates_tls());
        assert!(listener("HTTP", None).is_plain_http());
    }

    #[test]
    fn a_parent_ref_defaults_to_a_gateway_in_the_routes_namespace() {
        let parent: ParentRef = serde_json::from_value(json!({"name": "public"})).unwrap();
        assert_eq!(parent.parent_kind(), Some(ParentKind::Gateway));
        assert_eq!(parent.namespace_or("shop"), "shop");
        assert_eq!(parent.describe("shop"), "Gateway shop/public");
        let set: ParentRef = serde_json::from_value(
            json!({"group": GROUP, "kind": "ListenerSet", "namespace": "infra", "name": "extra", "sectionName": "https", "port": 443}),
        )
        .unwrap();
        assert_eq!(set.parent_kind(), Some(ParentKind::ListenerSet));
        assert_eq!(set.describe("shop"), "ListenerSet infra/extra (listener https, port 443)");
        let service: ParentRef =
            serde_json::from_value(json!({"group": "", "kind": "Service", "name": "mesh"})).unwrap();
        assert_eq!(service.parent_kind(), None);
    }

    #[test]
    fn a_parent_ref_selects_listeners_by_section_name_and_port() {
        let https = Listener { name: "https".into(), port: 443, protocol: "HTTPS".into(), ..Listener::default() };
        let parent = |section: Option<&str>, port: Option<i32>| ParentRef {
            name: "gw".into(),
            section_name: section.map(Into::into),
            port,
            ..ParentRef::default()
        };
        assert!(parent(None, None).selects(&https));
        assert!(parent(Some("https"), None).selects(&https));
        assert!(parent(None, Some(443)).selects(&https));
        assert!(!parent(Some("http"), None).selects(&https));
        assert!(!parent(Some("https"), Some(80)).selects(&https));
    }
}
