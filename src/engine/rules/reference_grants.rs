//! `referenceGrants`: a ReferenceGrant lets objects of the namespaces in its
//! `from` refer to objects of its own namespace named in its `to`; for Secrets
//! that means using the namespace's certificates and keys. A grant whose `to`
//! includes a protected kind (default: Secrets, group `""` kind `Secret`) must
//! name each `from` namespace exactly: a namespace that is empty or holds a
//! glob character (`*`, `?`, `[`) reads as "every namespace" (the CRD's
//! schema refuses such a value, but `portcullis check` sees manifests before
//! any schema does, and a cluster may run an older or looser CRD). With
//! `fromNamespaces` (globs), every `from` namespace must also match the list.
//! Grants of other kinds are not judged.

use serde::Deserialize;

use super::Subject;
use crate::engine::gateway::{GrantFrom, GrantTo};
use crate::engine::glob::Globs;
use crate::engine::{Finding, Object};

#[derive(Debug, Deserialize)]
#[serde(try_from = "Config")]
pub struct ReferenceGrants {
    protected_kinds: Vec<ProtectedKind>,
    from_namespaces: Option<Globs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// The kinds a grant must not open to every namespace (default: Secrets).
    #[serde(default = "secrets")]
    protected_kinds: Vec<ProtectedKind>,
    /// The namespaces (globs) that may be granted the protected kinds;
    /// unset: any namespace named exactly.
    #[serde(default)]
    from_namespaces: Option<Globs>,
}

/// A kind by API group (`""`: the core group) and name.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProtectedKind {
    #[serde(default)]
    group: String,
    kind: String,
}

fn secrets() -> Vec<ProtectedKind> {
    vec![ProtectedKind { group: String::new(), kind: "Secret".into() }]
}

impl TryFrom<Config> for ReferenceGrants {
    type Error = String;
    fn try_from(config: Config) -> Result<Self, String> {
        if config.protected_kinds.is_empty() {
            return Err("referenceGrants.protectedKinds: list at least one kind (default: Secret)".into());
        }
        if let Some(empty) = config.protected_kinds.iter().find(|protected| protected.kind.trim().is_empty()) {
            return Err(format!("referenceGrants.protectedKinds: an entry of group {:?} has no kind", empty.group));
        }
        Ok(ReferenceGrants { protected_kinds: config.protected_kinds, from_namespaces: config.from_namespaces })
    }
}

impl ProtectedKind {
    fn covers(&self, to: &GrantTo) -> bool {
        self.group.eq_ignore_ascii_case(&to.group) && self.kind.eq_ignore_ascii_case(&to.kind)
    }
}

/// `all Secrets` or `Secret "shop-tls"`, for each protected `to` entry.
fn targets(protected: &[&GrantTo]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for to in protected {
        let text = match to.name.as_deref().filter(|name| !name.is_empty()) {
            Some(name) => format!("{} {name:?}", to.kind),
            None => format!("all {}", plural(&to.kind)),
        };
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    seen.join(", ")
}

/// `Gateways`, `HTTPRoutes`, `BackendTLSPolicies`.
fn plural(kind: &str) -> String {
    match kind.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{stem}ies"),
        _ if kind.ends_with('s') => format!("{kind}es"),
        _ => format!("{kind}s"),
    }
}

/// A `from` namespace that names no single namespace.
fn is_pattern(namespace: &str) -> bool {
    namespace.trim().is_empty() || namespace.contains(['*', '?', '['])
}

impl ReferenceGrants {
    pub fn check(&self, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let Object::ReferenceGrant(grant) = subject.object else { return };
        let protected: Vec<&GrantTo> =
            grant.spec.to.iter().filter(|to| self.protected_kinds.iter().any(|kind| kind.covers(to))).collect();
        if protected.is_empty() {
            return;
        }
        let targets = targets(&protected);
        for (index, from) in grant.spec.from.iter().enumerate() {
            if let Some(problem) = self.judge(from, &targets) {
                findings.push(Finding::Violation(format!("spec.from[{index}] {problem}")));
            }
        }
    }

    /// What is wrong with one `from` entry, after `spec.from[i]`.
    fn judge(&self, from: &GrantFrom, targets: &str) -> Option<String> {
        let namespace = &from.namespace;
        let kinds = plural(&from.kind);
        if is_pattern(namespace) {
            return Some(format!(
                "opens {targets} of this namespace to {kinds} of every namespace (namespace {namespace:?}); name \
                 each namespace that needs them in a from entry of its own"
            ));
        }
        let allowed = self.from_namespaces.as_ref()?;
        if allowed.matches(namespace) {
            return None;
        }
        let listed: Vec<&str> = allowed.patterns().collect();
        let listed = if listed.is_empty() { "none".to_owned() } else { listed.join(", ") };
        Some(format!(
            "opens {targets} of this namespace to {kinds} of namespace {namespace}, which this policy does not allow \
             (allowed: {listed}); remove the entry, or ask the platform team to allow the namespace"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Kind;
    use crate::engine::rules::testing::*;
    use serde_json::{Value, json};

    fn grant(from: Value, to: Value) -> Object {
        gateway_api(
            Kind::ReferenceGrant,
            json!({"metadata": {"name": "certs", "namespace": "infra"}, "spec": {"from": from, "to": to}}),
        )
    }

    fn grants() -> crate::engine::rules::Rule {
        rule(json!({"referenceGrants": {}}))
    }

    fn from(kind: &str, namespace: &str) -> Value {
        json!({"group": "gateway.networking.k8s.io", "kind": kind, "namespace": namespace})
    }

    fn to_secrets() -> Value {
        json!([{"group": "", "kind": "Secret"}])
    }

    #[test]
    fn a_grant_from_every_namespace_to_secrets_is_denied() {
        assert_eq!(
            check(&grants(), &grant(json!([from("Gateway", "*")]), to_secrets())),
            vec![violation(
                "spec.from[0] opens all Secrets of this namespace to Gateways of every namespace (namespace \"*\"); \
                 name each namespace that needs them in a from entry of its own"
            )]
        );
    }

    #[test]
    fn glob_like_and_empty_namespaces_count_as_every_namespace() {
        let object = grant(
            json!([
                from("Gateway", "gateway-system"),
                from("HTTPRoute", "team-?"),
                from("Gateway", ""),
                from("Gateway", "[a-z]*")
            ]),
            json!([{"group": "", "kind": "Secret", "name": "wildcard-tls"}]),
        );
        assert_eq!(
            check(&grants(), &object),
            vec![
                violation(
                    "spec.from[1] opens Secret \"wildcard-tls\" of this namespace to HTTPRoutes of every namespace \
                     (namespace \"team-?\"); name each namespace that needs them in a from entry of its own"
                ),
                violation(
                    "spec.from[2] opens Secret \"wildcard-tls\" of this namespace to Gateways of every namespace \
                     (namespace \"\"); name each namespace that needs them in a from entry of its own"
                ),
                violation(
                    "spec.from[3] opens Secret \"wildcard-tls\" of this namespace to Gateways of every namespace \
                     (namespace \"[a-z]*\"); name each namespace that needs them in a from entry of its own"
                ),
            ]
        );
    }

    #[test]
    fn exactly_named_namespaces_are_allowed_without_an_allow_list() {
        let object = grant(json!([from("Gateway", "gateway-system"), from("HTTPRoute", "shop")]), to_secrets());
        assert_eq!(check(&grants(), &object), vec![]);
    }

    #[test]
    fn grants_of_other_kinds_are_not_judged() {
        let services = json!([{"group": "", "kind": "Service"}, {"group": "example.com", "kind": "Secret"}]);
        assert_eq!(check(&grants(), &grant(json!([from("HTTPRoute", "*")]), services)), vec![]);
    }

    #[test]
    fn every_protected_target_is_named_once() {
        let to = json!([{"group": "", "kind": "Secret", "name": "a"}, {"group": "", "kind": "Service"},
                        {"group": "", "kind": "Secret"}, {"group": "", "kind": "Secret", "name": "a"}]);
        assert_eq!(
            check(&grants(), &grant(json!([from("Gateway", "*")]), to)),
            vec![violation(
                "spec.from[0] opens Secret \"a\", all Secrets of this namespace to Gateways of every namespace \
                 (namespace \"*\"); name each namespace that needs them in a from entry of its own"
            )]
        );
    }

    #[test]
    fn an_allow_list_limits_the_namespaces() {
        let allow_list = rule(json!({"referenceGrants": {"fromNamespaces": ["gateway-system", "infra-*"]}}));
        let object = grant(
            json!([from("Gateway", "gateway-system"), from("Gateway", "infra-eu"), from("Gateway", "shop")]),
            to_secrets(),
        );
        assert_eq!(
            check(&allow_list, &object),
            vec![violation(
                "spec.from[2] opens all Secrets of this namespace to Gateways of namespace shop, which this policy \
                 does not allow (allowed: gateway-system, infra-*); remove the entry, or ask the platform team to \
                 allow the namespace"
            )]
        );
        // A wildcard stays a wildcard, even when the list would match it.
        assert_eq!(
            check(&allow_list, &grant(json!([from("Gateway", "infra-*")]), to_secrets())),
            vec![violation(
                "spec.from[0] opens all Secrets of this namespace to Gateways of every namespace (namespace \
                 \"infra-*\"); name each namespace that needs them in a from entry of its own"
            )]
        );
        // An empty list allows no namespace.
        let none = rule(json!({"referenceGrants": {"fromNamespaces": []}}));
        assert_eq!(
            check(&none, &grant(json!([from("Gateway", "gateway-system")]), to_secrets())),
            vec![violation(
                "spec.from[0] opens all Secrets of this namespace to Gateways of namespace gateway-system, which this \
                 policy does not allow (allowed: none); remove the entry, or ask the platform team to allow the \
                 namespace"
            )]
        );
    }

    #[test]
    fn protected_kinds_are_a_parameter() {
        let rule = rule(json!({"referenceGrants": {"protectedKinds": [
            {"kind": "ConfigMap"}, {"group": "cert-manager.io", "kind": "Certificate"}]}}));
        let to = json!([{"group": "", "kind": "ConfigMap", "name": "ca"}, {"group": "", "kind": "Secret"}]);
        assert_eq!(
            check(&rule, &grant(json!([from("BackendTLSPolicy", "*")]), to)),
            vec![violation(
                "spec.from[0] opens ConfigMap \"ca\" of this namespace to BackendTLSPolicies of every namespace \
                 (namespace \"*\"); name each namespace that needs them in a from entry of its own"
            )]
        );
        // Secrets are no longer protected by that policy.
        assert_eq!(check(&rule, &grant(json!([from("Gateway", "*")]), to_secrets())), vec![]);
    }

    #[test]
    fn kinds_are_pluralised_in_messages() {
        assert_eq!(plural("Gateway"), "Gateways");
        assert_eq!(plural("HTTPRoute"), "HTTPRoutes");
        assert_eq!(plural("BackendTLSPolicy"), "BackendTLSPolicies");
        assert_eq!(plural("Ingress"), "Ingresses");
        assert_eq!(plural("Secret"), "Secrets");
    }

    #[test]
    fn parameters_are_checked_at_load() {
        let error = |json| serde_json::from_value::<crate::engine::rules::Rule>(json).unwrap_err().to_string();
        assert_eq!(
            error(json!({"referenceGrants": {"protectedKinds": []}})),
            "referenceGrants.protectedKinds: list at least one kind (default: Secret)"
        );
        assert_eq!(
            error(json!({"referenceGrants": {"protectedKinds": [{"group": "", "kind": " "}]}})),
            "referenceGrants.protectedKinds: an entry of group \"\" has no kind"
        );
        let text = error(json!({"referenceGrants": {"protectedKinds": [{"kinds": "Secret"}]}}));
        assert!(text.starts_with("unknown field `kinds`"), "{text}");
        let text = error(json!({"referenceGrants": {"namespaces": ["a"]}}));
        assert!(text.starts_with("unknown field `namespaces`"), "{text}");
        let text = error(json!({"referenceGrants": {"fromNamespaces": ["[a"]}}));
        assert!(text.starts_with("invalid glob \"[a\""), "{text}");
    }
}
