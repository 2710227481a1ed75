//! The engine's answer as data: each finding knows its policy and severity;
//! message lines are rendered from them by [`line`], the one place that
//! spells `[<policy>] <Kind> <namespace>/<name>: <what>; <fix>`.

use super::input::About;
use super::policy::PolicySet;

/// The longest warning the API server is sure to pass on whole: it truncates
/// longer ones once a response's warnings exceed 4 KiB. Bundled policies keep
/// every warning within it, and `portcullis test` fails a case whose warning
/// does not.
pub const MAX_WARNING_CHARS: usize = 256;

/// Ends the warning that replaces the denial of a violation the old object
/// already had (see [`super::ExistingViolations::Warn`]); the line before it
/// says what to fix.
pub const EXISTING: &str = "(pre-existing, allowed for now)";

/// The name that stands in the brackets of portcullis' own notices.
pub const PORTCULLIS: &str = "portcullis";

/// What a finding does to the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// Rejects the request.
    Deny,
    /// Allowed, with a `Warning:` for the client.
    Warn,
    /// Allowed silently; recorded in the audit annotations and metrics.
    Audit,
    /// Not about the object but about how it was judged (e.g. namespace labels
    /// that could not be read); sent whatever the verdict, since it explains it.
    Notice,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Deny => "deny",
            Severity::Warn => "warn",
            Severity::Audit => "audit",
            Severity::Notice => "notice",
        }
    }
}

/// One finding of one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFinding {
    /// Index into [`PolicySet::policies`]; `None` for portcullis' own notices.
    pub policy: Option<usize>,
    pub severity: Severity,
    /// `<what is wrong>; <how to fix>`, without the policy and object prefix.
    pub text: String,
    /// A Deny finding the old object already had, downgraded to a warning
    /// (its line ends in [`EXISTING`]).
    pub pre_existing: bool,
    /// For a failed validation of a `cel` rule, its index in `validations`.
    pub validation: Option<usize>,
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

/// The engine's answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Every finding, in policy order (notices last).
    pub findings: Vec<PolicyFinding>,
    /// One merged RFC 6902 patch (empty when nothing changes).
    pub patch: json_patch::Patch,
    /// The policy behind each operation of `patch`, by index (parallel to
    /// `patch.0`): the one that added it. An operation two policies need (the
    /// `annotations` map both add to) is added once, by the first.
    pub patch_owners: Vec<usize>,
    /// Indexes of the policies that contributed to the patch, in order.
    pub mutated_by: Vec<usize>,
    /// One entry per matched policy that was evaluated.
    pub results: Vec<PolicyResult>,
    /// Policies (by index) whose `cel` evaluation was cut off by its cost limit.
    pub cost_exceeded: Vec<usize>,
    /// Whether the `cel` rules spent the whole budget the review was given
    /// ([`super::evaluate_within`]).
    pub cel_budget_spent: bool,
}

impl Decision {
    /// Allowed unless some finding denies.
    pub fn allowed(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Deny)
    }

    /// The findings of one severity, in order.
    pub fn of(&self, severity: Severity) -> impl Iterator<Item = &PolicyFinding> {
        self.findings.iter().filter(move |f| f.severity == severity)
    }

    /// The indexes of the policies that deny, in order.
    pub fn denying_policies(&self) -> impl Iterator<Item = usize> + '_ {
        self.of(Severity::Deny).filter_map(|f| f.policy)
    }

    /// Each operation of the patch with the policy behind it.
    pub fn patch_by_policy(&self) -> impl Iterator<Item = (usize, &json_patch::PatchOperation)> {
        self.patch_owners.iter().copied().zip(&self.patch.0)
    }

    /// Whether the client would see a warning if the request were allowed.
    pub fn has_warnings(&self) -> bool {
        self.findings.iter().any(|f| matches!(f.severity, Severity::Warn | Severity::Notice))
    }

    /// The message line of a finding of this decision.
    pub fn line(&self, finding: &PolicyFinding, about: About<'_>, policies: &PolicySet) -> String {
        let policy = finding.policy.map_or(PORTCULLIS, |index| policies.policies()[index].name());
        line(policy, about, &finding.text, finding.pre_existing)
    }

    /// The lines of one severity, in order.
    pub fn lines(&self, severity: Severity, about: About<'_>, policies: &PolicySet) -> Vec<String> {
        self.of(severity).map(|f| self.line(f, about, policies)).collect()
    }

    /// The denial message: one line per denying finding.
    pub fn message(&self, about: About<'_>, policies: &PolicySet) -> String {
        self.lines(Severity::Deny, about, policies).join("\n")
    }

    /// Every warning line (`Warning:` in kubectl) of an allowed request: Warn
    /// findings in policy order, then notices.
    pub fn warnings(&self, about: About<'_>, policies: &PolicySet) -> Vec<String> {
        let mut lines = self.lines(Severity::Warn, about, policies);
        lines.extend(self.lines(Severity::Notice, about, policies));
        lines
    }

    /// The warnings to send with the response. A denied request gets only the
    /// notices: the object is not stored, the denial says what must change, and
    /// the advice of Warn policies would bury it (the next, allowed, attempt
    /// shows it; `portcullis check` always shows it).
    pub fn client_warnings(&self, about: About<'_>, policies: &PolicySet) -> Vec<String> {
        if self.allowed() { self.warnings(about, policies) } else { self.lines(Severity::Notice, about, policies) }
    }
}

/// The one rendering of a message line:
/// `[<policy>] <Kind> <namespace>/<name>: <text>`, plus [`EXISTING`] for a
/// pre-existing violation.
pub fn line(policy: &str, about: About<'_>, text: &str, pre_existing: bool) -> String {
    let mut line = format!("[{policy}] {} {}/{}: {text}", about.kind.as_str(), about.namespace, about.name);
    if pre_existing {
        line.push(' ');
        line.push_str(EXISTING);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Kind;

    const WEB: About<'static> = About { kind: Kind::Service, namespace: "shop", name: "web" };

    #[test]
    fn renders_the_policy_the_object_and_the_text() {
        assert_eq!(line("p", WEB, "bad; fix it", false), "[p] Service shop/web: bad; fix it");
        assert_eq!(
            line("p", WEB, "bad; fix it", true),
            "[p] Service shop/web: bad; fix it (pre-existing, allowed for now)"
        );
    }

    #[test]
    fn a_denied_request_carries_only_notices() {
        let set = PolicySet::default();
        let finding = |severity| PolicyFinding {
            policy: None,
            severity,
            text: severity.as_str().into(),
            pre_existing: false,
            validation: None,
        };
        let mut decision = Decision {
            findings: vec![finding(Severity::Warn), finding(Severity::Notice), finding(Severity::Audit)],
            ..Decision::default()
        };
        assert!(decision.allowed());
        assert_eq!(
            decision.client_warnings(WEB, &set),
            ["[portcullis] Service shop/web: warn", "[portcullis] Service shop/web: notice"]
        );
        decision.findings.insert(0, finding(Severity::Deny));
        assert!(!decision.allowed());
        assert_eq!(decision.message(WEB, &set), "[portcullis] Service shop/web: deny");
        assert_eq!(decision.client_warnings(WEB, &set), ["[portcullis] Service shop/web: notice"]);
    }
}
