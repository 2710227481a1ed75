//! The policy engine: a pure function from an admission input and a policy set
//! to a [`Decision`]. Nothing in this module performs I/O, reads the clock, logs
//! or records metrics; the edges (webhook, `check`, `test`) record and render
//! around [`evaluate`]. The request model is in [`input`], the answer in
//! [`decision`].

pub mod controller;
pub mod decision;
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
}

/// Evaluates one admission request against the policy set, given the labels of
/// the request's namespace.
pub fn evaluate(input: &Input<'_>, policies: &PolicySet, labels: NamespaceLabels<'_>) -> Decision {
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
    let controller = match object {
        Object::Ingress(ingress) => policies.controllers().resolve(ingress, input.ingress_classes),
        _ => None,
    };
    let mut patch = PatchBuilder::default();

    for (index, policy) in policies.policies().iter().enumerate() {
        if policy.rule().stage() != input.stage
            || !policy.applies_to(input, labels, policies.environments())
            || policy.is_excepted(&input.user)
        {
            continue;
        }
        let subject = rules::Subject { object, controller };
        if input.stage == Stage::Mutate {
            let before = patch.len();
            policy.rule().mutate(&subject, &mut patch);
            if patch.len() > before {
                decision.mutated_by.push(index);
            }
            continue;
        }
        let finding =
            |severity, text: String, pre_existing| PolicyFinding { policy: Some(index), severity, text, pre_existing };

        if let Object::Invalid { error, .. } = object {
            // Said once: denied by the first matching Deny policy, else warned
            // by the first Warn policy.
            let text =
                || format!("the object cannot be read as a {}: {error}; correct the manifest", input.kind.as_str());
            let said = |severity| decision.of(severity).next().is_some();
            match policy.action() {
                Action::Deny if !said(Severity::Deny) => {
                    decision.findings.retain(|f| f.severity != Severity::Warn);
                    decision.findings.push(finding(Severity::Deny, text(), false));
                }
                Action::Warn if !said(Severity::Deny) && !said(Severity::Warn) => {
                    decision.findings.push(finding(Severity::Warn, text(), false))
                }
                _ => {}
            }
            decision.results.push(PolicyResult { policy: index, outcome: Outcome::Error });
            continue;
        }
        let mut outcome = Outcome::Pass;
        let mut old_findings: Option<Vec<Finding>> = None;
        for found in policy.rule().check(&subject) {
            let text = match found {
                Finding::Warning(text) => {
                    if policy.action() != Action::Audit {
                        decision.findings.push(finding(Severity::Warn, text, false));
                    }
                    continue;
                }
                Finding::Violation(ref text) => text,
            };
            outcome = Outcome::Fail;
            let existed = policy.existing_violations() == ExistingViolations::Warn
                && input.operation == Operation::Update
                && old_findings
                    .get_or_insert_with(|| old_violations(input, policy, policies.controllers()))
                    .contains(&found);
            let (severity, pre_existing) = match (policy.action(), existed) {
                (Action::Deny, false) => (Severity::Deny, false),
                (Action::Deny, true) => (Severity::Warn, true),
                (Action::Warn, _) => (Severity::Warn, false),
                (Action::Audit, _) => (Severity::Audit, false),
            };
            decision.findings.push(finding(severity, text.clone(), pre_existing));
        }
        decision.results.push(PolicyResult { policy: index, outcome });
    }
    decision.patch = patch.build();
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
        });
    }
    decision
}

/// The violations the object had before this update, to recognise existing ones.
fn old_violations(input: &Input<'_>, policy: &Policy, controllers: &ControllerMap) -> Vec<Finding> {
    match input.old_object {
        Some(old @ Object::Service(_)) => policy.rule().check(&rules::Subject { object: old, controller: None }),
        Some(old @ Object::Ingress(ingress)) => {
            let controller = controllers.resolve(ingress, input.ingress_classes);
            policy.rule().check(&rules::Subject { object: old, controller })
        }
        _ => Vec::new(),
    }
}
