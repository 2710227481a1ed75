//! The engine's read-only view of what routes attach to and what targets
//! them: the listeners of Gateways and ListenerSets, and the policies (such as
//! Envoy Gateway's `SecurityPolicy`) whose `targetRefs` name a route. The
//! webhook fills it from its cluster caches, `check` from the input files,
//! `portcullis test` from a case's `gateways`. A parent missing from the view
//! is unknown: the route rules then judge its attachments as strictly as any
//! listener could require, and say so.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{GROUP, Gateway, Listener, ListenerSet, ObjectRef, ParentRef};

/// The kinds a route can attach to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ParentKind {
    Gateway,
    ListenerSet,
}

impl ParentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ParentKind::Gateway => "Gateway",
            ParentKind::ListenerSet => "ListenerSet",
        }
    }
}

/// A parent by kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParentKey {
    pub kind: ParentKind,
    pub namespace: String,
    pub name: String,
}

/// A [`ParentKey`] or its borrowed parts, so that a parent is looked up
/// without copying the names of the reference into a key.
trait KeyParts {
    fn parts(&self) -> (ParentKind, &str, &str);
}

impl KeyParts for ParentKey {
    fn parts(&self) -> (ParentKind, &str, &str) {
        (self.kind, &self.namespace, &self.name)
    }
}

impl KeyParts for (ParentKind, &str, &str) {
    fn parts(&self) -> (ParentKind, &str, &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn KeyParts + 'a> for ParentKey {
    fn borrow(&self) -> &(dyn KeyParts + 'a) {
        self
    }
}

// The order of `ParentKey`'s derived `Ord`: kind, namespace, name.
impl PartialEq for dyn KeyParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyParts + '_ {}

impl PartialOrd for dyn KeyParts + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyParts + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

/// What the view keeps of a Gateway or ListenerSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parent {
    pub listeners: Vec<Listener>,
    /// For a ListenerSet: the Gateway it adds its listeners to.
    pub gateway: Option<ParentRef>,
}

/// A policy object that targets routes or Gateways by `targetRefs` (or the
/// older single `targetRef`), in its own namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetingPolicy {
    /// The policy's API group and kind, e.g. `gateway.envoyproxy.io` `SecurityPolicy`.
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub targets: Vec<ObjectRef>,
}

impl TargetingPolicy {
    /// Reads the targets of a policy object of any kind; `None` when it has
    /// no `spec.targetRefs` or `spec.targetRef`, or they do not fit the schema.
    pub fn from_object(group: &str, kind: &str, namespace: &str, object: &Value) -> Option<TargetingPolicy> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Spec {
            #[serde(default)]
            target_refs: Vec<ObjectRef>,
            #[serde(default)]
            target_ref: Option<ObjectRef>,
        }
        let spec: Spec = serde_json::from_value(object.get("spec")?.clone()).ok()?;
        let mut targets = spec.target_refs;
        targets.extend(spec.target_ref);
        if targets.is_empty() {
            return None;
        }
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        Some(TargetingPolicy {
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            targets,
        })
    }

    /// Whether one of the targets is the object of `group`/`kind` named
    /// `name` in the policy's namespace (targets are local references).
    pub fn targets(&self, namespace: &str, group: &str, kind: &str, name: &str) -> bool {
        self.namespace == namespace
            && self
                .targets
                .iter()
                .any(|target| target.group() == group && target.kind_or("") == kind && target.name == name)
    }
}

/// The view: parents by key, and targeting policies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayView {
    parents: BTreeMap<ParentKey, Parent>,
    /// By group, kind, namespace and name.
    policies: BTreeMap<(String, String, String, String), TargetingPolicy>,
}

/// Nothing known: every parent is unknown.
pub static EMPTY: GatewayView = GatewayView { parents: BTreeMap::new(), policies: BTreeMap::new() };

impl GatewayView {
    /// Adds (or replaces) a Gateway, in `namespace` unless its metadata names one.
    pub fn insert_gateway(&mut self, namespace: &str, gateway: &Gateway) {
        let key = key(ParentKind::Gateway, namespace, &gateway.metadata);
        self.parents.insert(key, Parent { listeners: gateway.spec.listeners.clone(), gateway: None });
    }

    /// Adds (or replaces) a ListenerSet.
    pub fn insert_listener_set(&mut self, namespace: &str, set: &ListenerSet) {
        let key = key(ParentKind::ListenerSet, namespace, &set.metadata);
        self.parents
            .insert(key, Parent { listeners: set.spec.listeners.clone(), gateway: set.spec.parent_ref.clone() });
    }

    /// Adds (or replaces, by group, kind, namespace and name) a targeting policy.
    pub fn insert_policy(&mut self, policy: TargetingPolicy) {
        let key = (policy.group.clone(), policy.kind.clone(), policy.namespace.clone(), policy.name.clone());
        self.policies.insert(key, policy);
    }

    /// Adds what a manifest tells about attachments: a Gateway or
    /// ListenerSet (by its listeners), or any other object with
    /// `spec.targetRefs` (a policy that may target routes). `namespace` is the
    /// one the manifest is applied in when it names none. Whether it added
    /// something; a Gateway or ListenerSet that does not fit its schema adds
    /// nothing (it is itself denied when checked).
    pub fn insert_manifest(&mut self, manifest: &Value, namespace: &str) -> bool {
        let text = |field| manifest.get(field).and_then(Value::as_str).unwrap_or_default();
        let group = text("apiVersion").rsplit_once('/').map_or("", |(group, _)| group);
        let kind = text("kind");
        let namespace = manifest
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or(namespace);
        if group == GROUP && kind.eq_ignore_ascii_case("Gateway") {
            let Ok(gateway) = Gateway::deserialize(manifest) else { return false };
            self.insert_gateway(namespace, &gateway);
            return true;
        }
        if group == GROUP && kind.eq_ignore_ascii_case("ListenerSet") {
            let Ok(set) = ListenerSet::deserialize(manifest) else { return false };
            self.insert_listener_set(namespace, &set);
            return true;
        }
        if group == GROUP || kind.is_empty() {
            return false;
        }
        match TargetingPolicy::from_object(group, kind, namespace, manifest) {
            Some(policy) => {
                self.insert_policy(policy);
                true
            }
            None => false,
        }
    }

    /// Removes a parent.
    pub fn remove_parent(&mut self, key: &ParentKey) {
        self.parents.remove(key);
    }

    /// The parent a route's `parentRefs` entry names, if known; `None` also
    /// for a reference to something that is not a Gateway or ListenerSet.
    pub fn parent(&self, reference: &ParentRef, route_namespace: &str) -> Option<&Parent> {
        let key = (reference.parent_kind()?, reference.namespace_or(route_namespace), reference.name.as_str());
        self.parents.get(&key as &dyn KeyParts)
    }

    /// The policies that target the object of `group`/`kind` named `name` in `namespace`.
    pub fn policies_targeting<'a>(
        &'a self,
        namespace: &'a str,
        group: &'a str,
        kind: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a TargetingPolicy> + 'a {
        self.policies.values().filter(move |policy| policy.targets(namespace, group, kind, name))
    }

    pub fn parents(&self) -> impl Iterator<Item = (&ParentKey, &Parent)> {
        self.parents.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.parents.is_empty() && self.policies.is_empty()
    }
}

fn key(
    kind: ParentKind,
    namespace: &str,
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> ParentKey {
    ParentKey {
        kind,
        namespace: metadata
            .namespace
            .clone()
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or_else(|| namespace.to_owned()),
        name: metadata.name.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_route_finds_its_parent_in_its_own_namespace_by_default() {
        let gateway: Gateway = serde_json::from_value(json!({
            "metadata": {"name": "public"},
            "spec": {"listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}]}
        }))
        .unwrap();
        let mut view = GatewayView::default();
        view.insert_gateway("infra", &gateway);
        let reference = |json| serde_json::from_value::<ParentRef>(json).unwrap();
        let found = view.parent(&reference(json!({"name": "public", "namespace": "infra"})), "shop");
        assert_eq!(found.map(|parent| parent.listeners[0].name.as_str()), Some("https"));
        assert!(view.parent(&reference(json!({"name": "public"})), "shop").is_none());
        assert!(view.parent(&reference(json!({"name": "public"})), "infra").is_some());
        assert!(view.parent(&reference(json!({"name": "public", "kind": "ListenerSet"})), "infra").is_none());
    }

    #[test]
    fn manifests_add_gateways_listener_sets_and_targeting_policies() {
        let mut view = GatewayView::default();
        let gateway = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "public", "namespace": "infra"},
            "spec": {"listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}});
        assert!(view.insert_manifest(&gateway, "default"));
        let set = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ListenerSet",
            "metadata": {"name": "extra"},
            "spec": {"parentRef": {"name": "public", "namespace": "infra"},
                     "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}]}});
        assert!(view.insert_manifest(&set, "shop"));
        let policy = json!({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "SecurityPolicy",
            "metadata": {"name": "auth"}, "spec": {"targetRefs": [
                {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web"}]}});
        assert!(view.insert_manifest(&policy, "shop"));
        let istio = json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "public"},
                           "spec": {"servers": []}});
        assert!(!view.insert_manifest(&istio, "infra"));
        let broken = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "broken"}, "spec": {"listeners": "all"}});
        assert!(!view.insert_manifest(&broken, "infra"));
        let reference = |json| serde_json::from_value::<ParentRef>(json).unwrap();
        let gateway = view.parent(&reference(json!({"name": "public", "namespace": "infra"})), "shop").unwrap();
        assert_eq!(gateway.listeners[0].protocol, "HTTP");
        let set = view.parent(&reference(json!({"name": "extra", "kind": "ListenerSet"})), "shop").unwrap();
        assert_eq!(set.gateway.as_ref().map(|gateway| gateway.name.as_str()), Some("public"));
        assert_eq!(view.policies_targeting("shop", GROUP, "HTTPRoute", "web").count(), 1);
    }

    #[test]
    fn a_policy_targets_routes_of_its_own_namespace_by_group_kind_and_name() {
        let object = json!({"metadata": {"name": "auth"}, "spec": {"targetRefs": [
            {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web"}]}});
        let policy = TargetingPolicy::from_object("gateway.envoyproxy.io", "SecurityPolicy", "shop", &object).unwrap();
        let mut view = GatewayView::default();
        view.insert_policy(policy.clone());
        view.insert_policy(policy);
        let found = |namespace, kind, name| view.policies_targeting(namespace, super::super::GROUP, kind, name).count();
        assert_eq!(found("shop", "HTTPRoute", "web"), 1, "inserted twice, kept once");
        assert_eq!(found("other", "HTTPRoute", "web"), 0);
        assert_eq!(found("shop", "GRPCRoute", "web"), 0);
        let single = json!({"metadata": {"name": "old"}, "spec": {"targetRef": {"group": "gateway.networking.k8s.io",
                            "kind": "HTTPRoute", "name": "web"}}});
        assert!(TargetingPolicy::from_object("kuadrant.io", "AuthPolicy", "shop", &single).is_some());
        assert!(TargetingPolicy::from_object("kuadrant.io", "AuthPolicy", "shop", &json!({"spec": {}})).is_none());
    }
}
