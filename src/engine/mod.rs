//! The policy engine: a pure function from an admission input and a policy set
//! to a [`Decision`]. Nothing in this module performs I/O, reads the clock, logs
//! or records metrics; the edges (webhook, `check`, `test`) record and render
//! around [`evaluate`]. The request model is in [`input`], the answer in
//! [`decision`].

pub mod cel;
pub mod controller;
pub mod decision;
pub mod gateway;
pub mod glob;
pub mod input;
pub mod load_balancer;
pub mod object;
pub mod patch;
pub mod policy;
pub mod rules;

pub use controller::{ControllerMap, Family};
pub use decision::{
    Decision, EXISTING, MAX_WARNING_CHARS, Outcome, PORTCULLIS, PolicyFinding, PolicyResult, Severity, line,
};
pub use input::{About, Input, NamespaceLabels, Operation, Stage, User};
pub use object::{Kind, Object};
pub use patch::PatchBuilder;
pub use policy::{Action, Environment, Exception, ExistingViolations, Match, Policy, PolicySet};

/// What a rule found wrong with an object. The text is `<what is wrong>; <how
/// to fix>`, without the policy and object prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Counts against the policy: denied, warned or audited per its action.
    Violation(String),
    /// Always a warning, whatever the policy's action (e.g. an accepted but
    /// weaker configuration).
    Warning(String),
    /// Not about the object but about how it was judged (e.g. a Gateway the
    /// route attaches to is unknown, so it was judged as strictly as it could
    /// be): a portcullis notice, sent whatever the verdict, said once.
    Notice(String),
    /// A failed validation of a `cel` rule: counts against the policy like a
    /// violation; `validation` is its index (`None` for a variable that could
    /// not be evaluated), `cost_exceeded` whether the evaluation was cut off.
    Cel { text: String, validation: Option<usize>, cost_exceeded: bool },
}

/// Evaluates one admission request against the policy set, given the labels of
/// the request's namespace.
pub fn evaluate(input: &Input<'_>, policies: &PolicySet, labels: NamespaceLabels<'_>) -> Decision {
    evaluate_within(input, policies, labels, cel::REVIEW_STEP_LIMIT)
}

/// [`evaluate`], the `cel` rules sharing a budget of `cel_steps` steps rather
/// than [`cel::REVIEW_STEP_LIMIT`]; [`Decision::cel_budget_spent`] says when
/// they ran out of it.
pub fn evaluate_within(
    input: &Input<'_>,
    policies: &PolicySet,
    labels: NamespaceLabels<'_>,
    cel_steps: u64,
) -> Decision {
    let mut decision = Decision::default();
    if !matches!(input.operation, Operation::Create | Operation::Update) {
        return decision;
    }
    let Some(object) = input.object else {
        return decision;
    };
    if input.operation == Operation::Update && object.is_being_deleted() {
        // Finalizers are being removed so that the object can go: blocking
        // that would leave it terminating for ever.
        return decision;
    }
    // The `cel` rules of this review share one budget.
    let cel_budget = cel::ReviewBudget::of(cel_steps);
    let controller = match object {
        Object::Ingress(ingress) => policies.controllers().resolve(ingress, input.ingress_classes),
        _ => None,
    };
    let mut patch = PatchBuilder::default();
    // The namespace's environments, matched once rather than once per policy.
    let membership: Vec<bool> =
        policies.environments().iter().map(|environment| environment.contains(input.namespace, labels)).collect();
    let in_environment = |index: usize| membership[index];

    for (index, policy) in policies.policies().iter().enumerate() {
        if policy.rule().stage() != input.stage
            || !policy.applies_in(input, &in_environment)
            || policy.is_excepted(&input.user)
        {
            continue;
        }
        let request = Some(rules::Request { input, labels });
        let subject =
            rules::Subject { object, controller, namespace: input.namespace, gateways: input.gateways, request };
        if input.stage == Stage::Mutate {
            patch.set_owner(index);
            policy.rule().mutate(&subject, &mut patch);
            continue;
        }
        let finding = |severity, text: String, pre_existing, validation| PolicyFinding {
            policy: Some(index),
            severity,
            text,
            pre_existing,
            validation,
        };

        if let Object::Invalid { error, .. } = object {
            // No rule can judge it, so no policy's name is on it: denied once
            // under portcullis' own name as soon as a validating policy
            // matches, whatever the policies' actions.
            if !decision.findings.iter().any(|f| f.policy.is_none() && f.severity == Severity::Deny) {
                decision.findings.push(PolicyFinding {
                    policy: None,
                    severity: Severity::Deny,
                    text: unreadable(input.kind, error),
                    pre_existing: false,
                    validation: None,
                });
            }
            decision.results.push(PolicyResult { policy: index, outcome: Outcome::Error });
            continue;
        }
        let mut outcome = Outcome::Pass;
        let mut old_findings: Option<Vec<Finding>> = None;
        for found in policy.rule().check(&subject) {
            let (text, validation) = match found {
                Finding::Warning(text) => {
                    if policy.action() != Action::Audit {
                        decision.findings.push(finding(Severity::Warn, text, false, None));
                    }
                    continue;
                }
                Finding::Notice(text) => {
                    decision.findings.push(PolicyFinding {
                        policy: None,
                        severity: Severity::Notice,
                        text,
                        pre_existing: false,
                        validation: None,
                    });
                    continue;
                }
                Finding::Violation(ref text) => (text, None),
                Finding::Cel { ref text, validation, cost_exceeded } => {
                    if cost_exceeded {
                        decision.cost_exceeded.push(index);
                    }
                    (text, validation)
                }
            };
            outcome = Outcome::Fail;
            // A cut-off evaluation judged nothing: it is never "the same
            // violation as before" (the old object's evaluation may have been
            // cut off too), so it fails closed on UPDATE as on CREATE.
            let judged = !matches!(found, Finding::Cel { cost_exceeded: true, .. });
            let existed = policy.existing_violations() == ExistingViolations::Warn
                && input.operation == Operation::Update
                && judged
                && old_findings
                    .get_or_insert_with(|| old_violations(input, policy, policies.controllers(), labels))
                    .contains(&found);
            let (severity, pre_existing) = match (policy.action(), existed) {
                (Action::Deny, false) => (Severity::Deny, false),
                (Action::Deny, true) => (Severity::Warn, true),
                (Action::Warn, _) => (Severity::Warn, false),
                (Action::Audit, _) => (Severity::Audit, false),
            };
            decision.findings.push(finding(severity, text.clone(), pre_existing, validation));
        }
        decision.results.push(PolicyResult { policy: index, outcome });
    }
    decision.cel_budget_spent = cel_budget.spent();
    drop(cel_budget);
    (decision.patch, decision.patch_owners) = patch.finish();
    // Operations are added in policy order: each policy once, where its first is.
    decision.mutated_by = decision.patch_owners.clone();
    decision.mutated_by.dedup();
    dedupe(&mut decision.findings);
    let unknown = matches!(labels, NamespaceLabels::Unknown);
    if unknown && input.stage == Stage::Validate && policies.environments().iter().any(Environment::has_selector) {
        decision.findings.push(PolicyFinding {
            policy: None,
            severity: Severity::Notice,
            text: format!(
                "the labels of namespace {} are unknown, so it was judged as part of every environment its labels \
                 could select",
                input.namespace
            ),
            pre_existing: false,
            validation: None,
        });
    }
    decision
}

/// The denial of an object that does not fit its kind's schema.
fn unreadable(kind: Kind, error: &str) -> String {
    let kind = kind.as_str();
    let article = if kind.starts_with(['A', 'E', 'I', 'O', 'U']) { "an" } else { "a" };
    format!("the object cannot be read as {article} {kind}: {error}; correct the manifest")
}

/// Drops a finding that repeats an earlier one word for word (same policy,
/// severity and text), such as one switch shared by two controller families:
/// a decision never says the same line twice.
fn dedupe(findings: &mut Vec<PolicyFinding>) {
    let mut seen = 0;
    while seen < findings.len() {
        if findings[..seen].contains(&findings[seen]) {
            findings.remove(seen);
        } else {
            seen += 1;
        }
    }
}

/// The violations the object had before this update, to recognise existing ones.
fn old_violations(
    input: &Input<'_>,
    policy: &Policy,
    controllers: &ControllerMap,
    labels: NamespaceLabels<'_>,
) -> Vec<Finding> {
    let Some(old) = input.old_object else { return Vec::new() };
    let controller = match old {
        Object::Ingress(ingress) => controllers.resolve(ingress, input.ingress_classes),
        _ => None,
    };
    policy.rule().check(&rules::Subject {
        object: old,
        controller,
        namespace: input.namespace,
        gateways: input.gateways,
        request: Some(rules::Request { input, labels }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(policy: Option<usize>, severity: Severity, text: &str) -> PolicyFinding {
        PolicyFinding { policy, severity, text: text.to_owned(), pre_existing: false, validation: None }
    }

    #[test]
    fn dedupe_keeps_the_first_of_identical_findings_only() {
        let mut findings = vec![
            finding(Some(0), Severity::Deny, "a"),
            finding(Some(0), Severity::Deny, "b"),
            finding(Some(0), Severity::Deny, "a"),
            finding(Some(1), Severity::Deny, "a"),
            finding(Some(0), Severity::Warn, "a"),
            finding(None, Severity::Notice, "n"),
            finding(Some(1), Severity::Deny, "a"),
            finding(None, Severity::Notice, "n"),
        ];
        let mut pre_existing = finding(Some(0), Severity::Warn, "a");
        pre_existing.pre_existing = true;
        findings.push(pre_existing.clone());
        dedupe(&mut findings);
        assert_eq!(
            findings,
            [
                finding(Some(0), Severity::Deny, "a"),
                finding(Some(0), Severity::Deny, "b"),
                finding(Some(1), Severity::Deny, "a"),
                finding(Some(0), Severity::Warn, "a"),
                finding(None, Severity::Notice, "n"),
                pre_existing,
            ]
        );
    }

    /// A policy set from YAML policy documents.
    fn policies(yaml: &str) -> PolicySet {
        crate::policy::load_sources(&[("p.yaml".into(), yaml.to_owned())]).expect("valid policies")
    }

    fn policy(name: &str, action: &str, rule: &str) -> String {
        format!(
            "---\napiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{name: {name}}}\n\
             spec: {{action: {action}, match: {{namespaces: [shop]}}, rule: {rule}}}\n"
        )
    }

    #[test]
    fn an_unreadable_object_is_denied_once_under_portcullis_whatever_the_actions() {
        let set = policies(
            &[
                policy("warn-tls", "Warn", "{ingressTls: {}}"),
                policy("audit-auth", "Audit", "{ingressAuth: {}}"),
                policy("warn-tls-again", "Warn", "{ingressTls: {}}"),
                policy("redirect", "Deny", "{setAnnotations: [{add: {a: b}}]}"),
            ]
            .concat(),
        );
        let manifest = serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                          "metadata": {"name": "web"}, "spec": {"rules": {"host": "a"}}});
        let judge = |namespace: &str| {
            let review = crate::admission::Review::from_manifest(
                &manifest,
                namespace,
                Operation::Create,
                crate::admission::Requester::default(),
            );
            let decision = evaluate(&review.input(Stage::Validate), &set, NamespaceLabels::none());
            let message = decision.message(review.about(), &set);
            (decision, message)
        };
        let (decision, message) = judge("shop");
        assert_eq!(
            decision.findings,
            [finding(
                None,
                Severity::Deny,
                "the object cannot be read as an Ingress: spec.rules: invalid type: map, expected a sequence; correct the manifest"
            )]
        );
        assert_eq!(
            message,
            "[portcullis] Ingress shop/web: the object cannot be read as an Ingress: spec.rules: invalid type: map, \
             expected a sequence; correct the manifest"
        );
        // Each matched validating policy could not judge it (the metric's result=error).
        let error = |policy| PolicyResult { policy, outcome: Outcome::Error };
        assert_eq!(decision.results, [error(0), error(1), error(2)]);
        assert_eq!(decision.denying_policies().count(), 0, "no policy's name is on it");

        // Where no validating policy matches, nothing is said.
        assert_eq!(judge("elsewhere").0, Decision::default());
    }

    #[test]
    fn each_patch_operation_is_credited_to_the_policy_that_added_it() {
        let set = policies(
            &[
                policy("grpc", "Deny", "{setAnnotations: [{add: {backend: GRPC}}]}"),
                policy("tls-check", "Deny", "{ingressTls: {}}"),
                policy("redirect", "Deny", "{setAnnotations: [{add: {redirect: 'true', backend: HTTP}}]}"),
                policy("nothing-left", "Deny", "{setAnnotations: [{add: {redirect: 'false'}}]}"),
            ]
            .concat(),
        );
        let manifest = serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                          "metadata": {"name": "api"}, "spec": {"rules": [{"host": "a"}]}});
        let review = crate::admission::Review::from_manifest(
            &manifest,
            "shop",
            Operation::Create,
            crate::admission::Requester::default(),
        );
        let decision = evaluate(&review.input(Stage::Mutate), &set, NamespaceLabels::none());
        let credited: Vec<(&str, String)> = decision
            .patch_by_policy()
            .map(|(index, op)| (set.policies()[index].name(), serde_json::to_string(op).unwrap()))
            .collect();
        assert_eq!(
            credited,
            [
                ("grpc", r#"{"op":"add","path":"/metadata/annotations","value":{}}"#.to_owned()),
                ("grpc", r#"{"op":"add","path":"/metadata/annotations/backend","value":"GRPC"}"#.to_owned()),
                ("redirect", r#"{"op":"add","path":"/metadata/annotations/redirect","value":"true"}"#.to_owned()),
            ]
        );
        // One merged patch on the wire, as before; a policy whose every entry was
        // already added by an earlier one contributed nothing.
        assert_eq!(decision.patch.0.len(), decision.patch_owners.len());
        assert_eq!(decision.mutated_by, [0, 2]);
    }

    #[test]
    fn an_unreadable_object_is_named_with_its_article() {
        assert_eq!(
            unreadable(Kind::Ingress, "spec.rules: invalid type: map, expected a sequence"),
            "the object cannot be read as an Ingress: spec.rules: invalid type: map, expected a sequence; correct the manifest"
        );
        assert_eq!(
            unreadable(Kind::Service, "spec.type: invalid type: integer `7`, expected a string"),
            "the object cannot be read as a Service: spec.type: invalid type: integer `7`, expected a string; correct the manifest"
        );
    }
}
