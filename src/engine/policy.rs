//! Policies and environments in their validated, compiled form. The YAML
//! documents deserialize straight into these types (globs and selectors are
//! compiled while deserializing); [`Policy::new`] and [`PolicySet::new`] check
//! what needs the whole set (environment names, kinds a rule supports).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;

use super::controller::ControllerMap;
use super::glob::Globs;
use super::input::{Input, NamespaceLabels, Operation, Stage, User};
use super::object::Kind;
use super::rules::Rule;

/// What a failing policy does. Written case-insensitively (`Deny`, `deny`,
/// `DENY`), like `match.kinds`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Action {
    /// Reject the request with the message.
    #[default]
    Deny,
    /// Allow it, with a `Warning:` for the client.
    Warn,
    /// Allow it silently; counted in metrics and in the audit annotations.
    Audit,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Warn => "warn",
            Action::Audit => "audit",
        }
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        any_case(deserializer, &["Deny", "Warn", "Audit"], &[Action::Deny, Action::Warn, Action::Audit])
    }
}

/// The value whose name (one of `names`, in the order of `values`) is written,
/// matched case-insensitively; another name is serde's `unknown variant` error,
/// naming them as documented.
fn any_case<'de, D: serde::Deserializer<'de>, T: Copy>(
    deserializer: D,
    names: &'static [&'static str],
    values: &[T],
) -> Result<T, D::Error> {
    let written = String::deserialize(deserializer)?;
    match names.iter().position(|name| name.eq_ignore_ascii_case(&written)) {
        Some(index) => Ok(values[index]),
        None => Err(serde::de::Error::unknown_variant(&written, names)),
    }
}

/// How an UPDATE is judged when the old object broke the rule the same way:
/// the rule's findings on `oldObject` and `object` are compared, and only
/// findings the old object did not have are new. Written case-insensitively,
/// like [`Action`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExistingViolations {
    /// Like any other violation: an object that already breaks the rule cannot
    /// be changed at all until it is fixed.
    Deny,
    /// Downgraded to a warning, so that objects admitted before the policy
    /// (or under an exception) can still be relabelled, scaled and cleaned up,
    /// while a new violation is still denied. The default.
    #[default]
    Warn,
}

impl<'de> Deserialize<'de> for ExistingViolations {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        any_case(deserializer, &["Deny", "Warn"], &[ExistingViolations::Deny, ExistingViolations::Warn])
    }
}

/// `spec` of a `Policy` document.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub action: Action,
    #[serde(default)]
    pub existing_violations: ExistingViolations,
    #[serde(default, rename = "match")]
    pub matches: MatchSpec,
    #[serde(default)]
    pub exceptions: Vec<Exception>,
    pub rule: Rule,
}

/// `spec.match` of a `Policy` document.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchSpec {
    /// Defaults to every kind the rule supports.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Defaults to CREATE and UPDATE.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Environment names; empty means every namespace.
    #[serde(default)]
    pub environments: Vec<String>,
    /// Environment names whose namespaces are left out.
    #[serde(default)]
    pub exclude_environments: Vec<String>,
    /// Namespace globs; empty means every namespace.
    #[serde(default)]
    pub namespaces: Globs,
    #[serde(default)]
    pub exclude_namespaces: Globs,
}

/// Who may bypass a policy. An entry applies when any of its lists matches.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exception {
    /// Usernames (globs), e.g. `system:serviceaccount:ops:break-glass`.
    #[serde(default)]
    pub users: Globs,
    #[serde(default)]
    pub groups: Globs,
    /// Service accounts as `namespace/name` (globs), e.g. `ops/*`.
    #[serde(default)]
    pub service_accounts: Globs,
}

impl Exception {
    fn applies_to(&self, user: &User<'_>) -> bool {
        self.users.matches(user.username)
            || user.groups.iter().any(|group| self.groups.matches(group))
            || (!self.service_accounts.is_empty()
                && user
                    .username
                    .strip_prefix("system:serviceaccount:")
                    .and_then(|rest| rest.split_once(':'))
                    .is_some_and(|(ns, name)| self.service_accounts.matches(&format!("{ns}/{name}"))))
    }
}

/// What a policy matches.
#[derive(Clone, Debug)]
pub struct Match {
    pub kinds: Vec<Kind>,
    pub operations: Vec<Operation>,
    /// Indexes into [`PolicySet::environments`].
    pub environments: Vec<usize>,
    pub exclude_environments: Vec<usize>,
    pub namespaces: Globs,
    pub exclude_namespaces: Globs,
}

/// A validated policy.
#[derive(Debug)]
pub struct Policy {
    name: Arc<str>,
    description: String,
    action: Action,
    existing_violations: ExistingViolations,
    matches: Match,
    exceptions: Vec<Exception>,
    rule: Rule,
}

impl Policy {
    /// Validates a policy against the known environments.
    pub fn new(name: String, spec: PolicySpec, environments: &[Environment]) -> Result<Policy, String> {
        let supported = spec.rule.kinds();
        let kinds = if spec.matches.kinds.is_empty() {
            supported.to_vec()
        } else {
            let mut kinds = Vec::new();
            for written in &spec.matches.kinds {
                let kind = Kind::parse(written);
                if !supported.contains(&kind) {
                    let names: Vec<&str> = supported.iter().map(|k| k.as_str()).collect();
                    return Err(format!(
                        "match.kinds: rule {} applies to {}, not to {written:?}",
                        spec.rule.name(),
                        names.join(" and ")
                    ));
                }
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            kinds
        };
        let operations = if spec.matches.operations.is_empty() {
            vec![Operation::Create, Operation::Update]
        } else {
            if let Some(op) =
                spec.matches.operations.iter().find(|op| !matches!(op, Operation::Create | Operation::Update))
            {
                return Err(format!(
                    "match.operations: {} carries no object to check; use CREATE and UPDATE",
                    op.as_str()
                ));
            }
            spec.matches.operations
        };
        let resolve = |field: &str, names: &[String]| {
            names
                .iter()
                .map(|wanted| {
                    environments
                        .iter()
                        .position(|env| &env.name == wanted)
                        .ok_or_else(|| format!("match.{field}: {}", unknown_environment(wanted, environments)))
                })
                .collect::<Result<Vec<usize>, String>>()
        };
        let included = resolve("environments", &spec.matches.environments)?;
        let excluded = resolve("excludeEnvironments", &spec.matches.exclude_environments)?;
        Ok(Policy {
            name: name.into(),
            description: spec.description,
            action: spec.action,
            existing_violations: spec.existing_violations,
            matches: Match {
                kinds,
                operations,
                environments: included,
                exclude_environments: excluded,
                namespaces: spec.matches.namespaces,
                exclude_namespaces: spec.matches.exclude_namespaces,
            },
            exceptions: spec.exceptions,
            rule: spec.rule,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    /// The name as a shared string, cheap to clone into metric labels.
    pub fn shared_name(&self) -> &Arc<str> {
        &self.name
    }
    pub fn description(&self) -> &str {
        &self.description
    }
    pub fn action(&self) -> Action {
        self.action
    }
    pub fn existing_violations(&self) -> ExistingViolations {
        self.existing_violations
    }
    pub fn matches(&self) -> &Match {
        &self.matches
    }
    pub fn rule(&self) -> &Rule {
        &self.rule
    }
    /// Who may bypass the policy (read by `portcullis vap`).
    pub fn exceptions(&self) -> &[Exception] {
        &self.exceptions
    }

    /// Whether the policy applies to this request (kind, operation, namespace, environment).
    pub fn applies_to(&self, input: &Input<'_>, labels: NamespaceLabels<'_>, environments: &[Environment]) -> bool {
        self.applies_in(input, &|env| environments[env].contains(input.namespace, labels))
    }

    /// [`Policy::applies_to`] with the namespace's membership of each
    /// environment (by index into [`PolicySet::environments`]) told by
    /// `in_environment`: `evaluate` works it out once per review, not once per
    /// policy.
    pub fn applies_in(&self, input: &Input<'_>, in_environment: &dyn Fn(usize) -> bool) -> bool {
        let m = &self.matches;
        m.kinds.contains(&input.kind)
            && m.operations.contains(&input.operation)
            && (m.namespaces.is_empty() || m.namespaces.matches(input.namespace))
            && !m.exclude_namespaces.matches(input.namespace)
            && (m.environments.is_empty() || m.environments.iter().any(|&env| in_environment(env)))
            && !m.exclude_environments.iter().any(|&env| in_environment(env))
    }

    /// Whether an exception lets this user bypass the policy.
    pub fn is_excepted(&self, user: &User<'_>) -> bool {
        self.exceptions.iter().any(|exception| exception.applies_to(user))
    }
}

/// Why an environment name is not one of `known`, listing them:
/// `unknown environment "prd" (known: production, staging)`.
pub fn unknown_environment(wanted: &str, known: &[Environment]) -> String {
    if known.is_empty() {
        return format!("unknown environment {wanted:?} (no Environment is defined)");
    }
    let names: Vec<&str> = known.iter().map(|env| env.name.as_str()).collect();
    format!("unknown environment {wanted:?} (known: {})", names.join(", "))
}

/// `spec` of an `Environment` document.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSpec {
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub namespaces: Globs,
}

/// A named set of namespaces, such as `production`.
#[derive(Clone, Debug)]
pub struct Environment {
    name: String,
    namespaces: Globs,
    selector: Option<Selector>,
}

impl Environment {
    pub fn new(name: String, spec: EnvironmentSpec) -> Result<Environment, String> {
        let selector = spec.namespace_selector.map(Selector::new).transpose()?;
        Ok(Environment { name, namespaces: spec.namespaces, selector })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A namespace belongs to the environment when its name matches a glob or
    /// its labels match the selector. With unknown labels, a selector is
    /// assumed to match (fail safe).
    pub fn contains(&self, namespace: &str, labels: NamespaceLabels<'_>) -> bool {
        self.namespaces.matches(namespace)
            || self.selector.as_ref().is_some_and(|selector| match labels {
                NamespaceLabels::Known(labels) => selector.matches(labels),
                NamespaceLabels::Unknown => true,
            })
    }

    /// Whether membership depends on namespace labels.
    pub fn has_selector(&self) -> bool {
        self.selector.is_some()
    }

    /// The label selector, as checked and converted (read by `portcullis vap`).
    pub fn selector(&self) -> Option<&kube::core::Selector> {
        self.selector.as_ref().map(|selector| &selector.0)
    }

    /// Whether the labels of `namespace` could change whether it belongs: the
    /// environment has a selector and the name alone does not put it in.
    pub fn depends_on_labels(&self, namespace: &str) -> bool {
        self.selector.is_some() && !self.namespaces.matches(namespace)
    }

    pub fn namespace_globs(&self) -> impl Iterator<Item = &str> {
        self.namespaces.patterns()
    }
}

/// A Kubernetes label selector, checked as the API server checks one and
/// matched by kube-core.
#[derive(Clone, Debug)]
struct Selector(kube::core::Selector);

impl Selector {
    /// kube-core's conversion takes `In` with an empty list and `Exists` with
    /// values, and its errors do not name the field, so we check first.
    fn new(selector: LabelSelector) -> Result<Selector, String> {
        for expr in selector.match_expressions.iter().flatten() {
            let has_values = expr.values.as_ref().is_some_and(|values| !values.is_empty());
            match expr.operator.as_str() {
                "In" | "NotIn" if !has_values => {
                    return Err(format!(
                        "namespaceSelector: operator {} on {:?} needs values",
                        expr.operator, expr.key
                    ));
                }
                "Exists" | "DoesNotExist" if has_values => {
                    return Err(format!(
                        "namespaceSelector: operator {} on {:?} takes no values",
                        expr.operator, expr.key
                    ));
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => {
                    return Err(format!(
                        "namespaceSelector: unknown operator {other:?} (expected In, NotIn, Exists or DoesNotExist)"
                    ));
                }
            }
        }
        kube::core::Selector::try_from(selector).map(Selector).map_err(|e| format!("namespaceSelector: {e}"))
    }

    /// Kubernetes semantics: every requirement must hold; an empty selector matches everything.
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        kube::core::SelectorExt::matches(&self.0, labels)
    }
}

/// A validated, ordered set of policies with the environments and ingress
/// controller table they refer to.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
    environments: Vec<Environment>,
    controllers: ControllerMap,
    /// The kinds some `cel` policy matches.
    cel_kinds: Vec<Kind>,
}

impl PolicySet {
    pub fn new(policies: Vec<Policy>, environments: Vec<Environment>, controllers: ControllerMap) -> Self {
        let mut cel_kinds: Vec<Kind> = Vec::new();
        for policy in policies.iter().filter(|policy| matches!(policy.rule(), Rule::Cel(_))) {
            for &kind in &policy.matches().kinds {
                if !cel_kinds.contains(&kind) {
                    cel_kinds.push(kind);
                }
            }
        }
        PolicySet { policies, environments, controllers, cel_kinds }
    }

    /// Whether a review of `kind` at `stage` may run a `cel` rule, whose
    /// evaluation can take up to [`super::cel::REVIEW_STEP_LIMIT`] steps (a
    /// second or so) rather than microseconds.
    pub fn runs_cel(&self, kind: Kind, stage: Stage) -> bool {
        stage == Stage::Validate && self.cel_kinds.contains(&kind)
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }
    pub fn environments(&self) -> &[Environment] {
        &self.environments
    }
    pub fn controllers(&self) -> &ControllerMap {
        &self.controllers
    }
    pub fn len(&self) -> usize {
        self.policies.len()
    }
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The kinds of policy objects (such as Envoy Gateway's `SecurityPolicy`)
    /// that `gatewayAuth` rules accept as authentication for the routes they
    /// target, each once: what the webhook must watch.
    pub fn targeting_policy_kinds(&self) -> Vec<super::gateway::GroupKind> {
        let mut kinds: Vec<super::gateway::GroupKind> = Vec::new();
        for policy in &self.policies {
            if let super::rules::Rule::GatewayAuth(rule) = policy.rule() {
                for kind in rule.policy_kinds() {
                    if !kinds.contains(kind) {
                        kinds.push(kind.clone());
                    }
                }
            }
        }
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(yaml: &str) -> Selector {
        Selector::new(serde_json::from_str(yaml).unwrap()).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn selector_follows_kubernetes_semantics() {
        let s = selector(
            r#"{"matchLabels":{"environment":"production"},
                "matchExpressions":[{"key":"tier","operator":"NotIn","values":["sandbox"]},
                                    {"key":"team","operator":"Exists"}]}"#,
        );
        assert!(s.matches(&labels(&[("environment", "production"), ("team", "a")])));
        assert!(!s.matches(&labels(&[("environment", "production")])));
        assert!(!s.matches(&labels(&[("environment", "production"), ("team", "a"), ("tier", "sandbox")])));
        assert!(!s.matches(&labels(&[("environment", "staging"), ("team", "a")])));
        assert!(selector("{}").matches(&labels(&[])));
    }

    #[test]
    fn selector_rejects_unknown_operators() {
        let err = Selector::new(
            serde_json::from_str(r#"{"matchExpressions":[{"key":"a","operator":"Like","values":["x"]}]}"#).unwrap(),
        )
        .unwrap_err();
        assert_eq!(err, "namespaceSelector: unknown operator \"Like\" (expected In, NotIn, Exists or DoesNotExist)");
    }

    #[test]
    fn selector_rejects_values_the_operator_does_not_take() {
        let err = |json: &str| Selector::new(serde_json::from_str(json).unwrap()).unwrap_err();
        let needs = "namespaceSelector: operator In on \"a\" needs values";
        assert_eq!(err(r#"{"matchExpressions":[{"key":"a","operator":"In"}]}"#), needs);
        assert_eq!(err(r#"{"matchExpressions":[{"key":"a","operator":"In","values":[]}]}"#), needs);
        assert_eq!(
            err(r#"{"matchExpressions":[{"key":"a","operator":"NotIn"}]}"#),
            "namespaceSelector: operator NotIn on \"a\" needs values"
        );
        assert_eq!(
            err(r#"{"matchExpressions":[{"key":"a","operator":"Exists","values":["x"]}]}"#),
            "namespaceSelector: operator Exists on \"a\" takes no values"
        );
        let empty_list = r#"{"matchExpressions":[{"key":"a","operator":"DoesNotExist","values":[]}]}"#;
        assert!(Selector::new(serde_json::from_str(empty_list).unwrap()).is_ok());
    }

    #[test]
    fn environment_by_name_or_labels_and_fail_safe_when_unknown() {
        let env = Environment::new(
            "production".into(),
            serde_json::from_str(
                r#"{"namespaceSelector":{"matchLabels":{"environment":"production"}},"namespaces":["prod-*"]}"#,
            )
            .unwrap(),
        )
        .unwrap();
        let none = labels(&[]);
        let prod = labels(&[("environment", "production")]);
        assert!(env.contains("prod-eu", NamespaceLabels::Known(&none)));
        assert!(env.contains("shop", NamespaceLabels::Known(&prod)));
        assert!(!env.contains("shop", NamespaceLabels::Known(&none)));
        assert!(env.contains("shop", NamespaceLabels::Unknown));
    }

    #[test]
    fn exceptions_by_user_group_and_service_account() {
        let exception: Exception =
            serde_json::from_str(r#"{"users":["alice"],"groups":["platform-admins"],"serviceAccounts":["ops/*"]}"#)
                .unwrap();
        let groups = vec!["system:authenticated".to_owned()];
        let admins = vec!["platform-admins".to_owned()];
        assert!(exception.applies_to(&User { username: "alice", groups: &groups }));
        assert!(exception.applies_to(&User { username: "bob", groups: &admins }));
        assert!(exception.applies_to(&User { username: "system:serviceaccount:ops:deployer", groups: &groups }));
        assert!(!exception.applies_to(&User { username: "system:serviceaccount:dev:deployer", groups: &groups }));
        assert!(!exception.applies_to(&User { username: "bob", groups: &groups }));
    }
}
