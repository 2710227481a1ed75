//! The policy engine: a pure function from an admission input and a policy set
//! to a [`Decision`]. Nothing in this module performs I/O, reads the clock, logs
//! or records metrics; the server records those around [`evaluate`].

pub mod controller;
pub mod glob;
pub mod object;
pub mod patch;
pub mod policy;
pub mod rules;

use std::collections::BTreeMap;

pub use controller::{ControllerMap, Family};
pub use object::{Kind, Object};
pub use patch::PatchBuilder;
pub use policy::{Action, Environment, Exception, ExistingViolations, Match, Operation, Policy, PolicySet};

/// The longest warning the API server is sure to pass on whole: it truncates
/// longer ones once a response's warnings exceed 4 KiB. Bundled policies keep
/// every warning within it, and `portcullis test` fails a case whose warning
/// does not.
pub const MAX_WARNING_CHARS: usize = 256;

/// Ends the warning that replaces the denial of a violation the old object
/// already had (see [`ExistingViolations::Warn`]); the line before it says
/// what to fix.
pub const EXISTING: &str = "(pre-existing, allowed for now)";

/// Which webhook asks: validating policies answer `/validate`, mutating
/// policies answer `/mutate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Validate,
    Mutate,
}

/// The user making the request, as the API server reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct User<'a> {
    pub username: &'a str,
    pub groups: &'a [String],
}

/// Everything the engine needs about one admission request.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub stage: Stage,
    pub operation: Operation,
    /// The request's kind (`request.kind.kind`); compared case-insensitively.
    pub kind: Kind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub user: User<'a>,
    pub object: Option<&'a Object>,
    pub old_object: Option<&'a Object>,
    pub dry_run: bool,
}

/// The labels of the request's namespace, as far as they are known.
#[derive(Clone, Copy, Debug)]
pub enum NamespaceLabels<'a> {
    Known(&'a BTreeMap<String, String>),
    /// The namespace is not (yet) known: every environment whose selector could
    /// match is assumed to match (fail safe), and a warning says so.
    Unknown,
}

static EMPTY_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl NamespaceLabels<'_> {
    /// No labels: without a cluster, namespace names alone decide.
    pub fn none() -> NamespaceLabels<'static> {
        NamespaceLabels::Known(&EMPTY_LABELS)
    }
}

impl<'a> From<Option<&'a BTreeMap<String, String>>> for NamespaceLabels<'a> {
    fn from(labels: Option<&'a BTreeMap<String, String>>) -> Self {
        NamespaceLabels::Known(labels.unwrap_or(&EMPTY_LABELS))
    }
}

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

/// How one matched policy came out, for the `portcullis_policy_results_total` metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// The object could not be read as its kind.
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyResult {
    /// Index into [`PolicySet::policies`].
    pub policy: usize,
    pub outcome: Outcome,
}

/// One line of a denial, warning or audit message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Index into [`PolicySet::policies`].
    pub policy: usize,
    /// The full line: `[<policy>] <Kind> <namespace>/<name>: <what>; <fix>`.
    pub message: String,
}

/// The engine's answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Denying violations, in policy order. Empty means allowed.
    pub violations: Vec<Violation>,
    /// Warning lines about the object (`Warning:` in kubectl): Warn policies,
    /// accepted weaker setups, violations that existed before an update.
    pub warnings: Vec<String>,
    /// Lines about how the decision was reached rather than about the object
    /// (e.g. namespace labels that could not be read). They explain a denial,
    /// so the webhook sends them whatever the verdict.
    pub notices: Vec<String>,
    /// Violations of `Audit` policies: allowed, recorded only.
    pub audits: Vec<Violation>,
    /// One merged RFC 6902 patch (empty when nothing changes).
    pub patch: json_patch::Patch,
    /// Indexes of the policies that contributed to the patch.
    pub mutated_by: Vec<usize>,
    /// One entry per matched policy that was evaluated.
    pub results: Vec<PolicyResult>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The warnings to send with the response. A denied request gets only the
    /// notices: the object is not stored, the denial says what must change, and
    /// the advice of Warn policies would bury it (the next, allowed, attempt
    /// shows it; `portcullis check` always shows it).
    pub fn client_warnings(&self) -> impl Iterator<Item = &str> {
        let advice = if self.allowed() { self.warnings.as_slice() } else { &[] };
        self.notices.iter().chain(advice).map(String::as_str)
    }

    /// The denial message: one line per violation.
    pub fn message(&self) -> String {
        let lines: Vec<&str> = self.violations.iter().map(|v| v.message.as_str()).collect();
        lines.join("\n")
    }
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
        Object::Ingress(ingress) => policies.controllers().family_of(ingress),
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

        if let Object::Invalid { error, .. } = object {
            // Said once: denied by the first matching Deny policy, else warned
            // by the first Warn policy.
            let line = || {
                let text =
                    format!("the object cannot be read as a {}: {error}; correct the manifest", input.kind.as_str());
                policy.line(input, &text)
            };
            match policy.action() {
                Action::Deny if decision.violations.is_empty() => {
                    decision.violations.push(Violation { policy: index, message: line() });
                    decision.warnings.clear();
                }
                Action::Warn if decision.violations.is_empty() && decision.warnings.is_empty() => {
                    decision.warnings.push(line())
                }
                _ => {}
            }
            decision.results.push(PolicyResult { policy: index, outcome: Outcome::Error });
            continue;
        }
        let findings = policy.rule().check(&subject);
        let mut outcome = Outcome::Pass;
        let mut old_findings: Option<Vec<Finding>> = None;
        for finding in findings {
            let text = match &finding {
                Finding::Warning(text) => {
                    if policy.action() != Action::Audit {
                        decision.warnings.push(policy.line(input, text));
                    }
                    continue;
                }
                Finding::Violation(text) => text,
            };
            if outcome == Outcome::Pass {
                outcome = Outcome::Fail;
            }
            let existed = policy.existing_violations() == ExistingViolations::Warn
                && input.operation == Operation::Update
                && old_findings
                    .get_or_insert_with(|| old_violations(input, policy, policies.controllers()))
                    .contains(&finding);
            let line = policy.line(input, text);
            match (policy.action(), existed) {
                (Action::Deny, false) => decision.violations.push(Violation { policy: index, message: line }),
                (Action::Deny, true) => decision.warnings.push(format!("{line} {EXISTING}")),
                (Action::Warn, _) => decision.warnings.push(line),
                (Action::Audit, _) => decision.audits.push(Violation { policy: index, message: line }),
            }
        }
        decision.results.push(PolicyResult { policy: index, outcome });
    }
    decision.patch = patch.build();
    let unknown = matches!(labels, NamespaceLabels::Unknown);
    if unknown && input.stage == Stage::Validate && policies.environments().iter().any(Environment::has_selector) {
        decision.notices.push(format!(
            "[portcullis] {} {}/{}: the labels of namespace {} are unknown, so it was judged as part of every \
             environment its labels could select",
            input.kind.as_str(),
            input.namespace,
            input.name,
            input.namespace
        ));
    }
    decision
}

/// The violations the object had before this update, to recognise existing ones.
fn old_violations(input: &Input<'_>, policy: &Policy, controllers: &ControllerMap) -> Vec<Finding> {
    match input.old_object {
        Some(old @ Object::Service(_)) => policy.rule().check(&rules::Subject { object: old, controller: None }),
        Some(old @ Object::Ingress(ingress)) => {
            let controller = controllers.family_of(ingress);
            policy.rule().check(&rules::Subject { object: old, controller })
        }
        _ => Vec::new(),
    }
}
