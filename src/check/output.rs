//! `check` output: human text (the default), JSON (a stable, documented
//! schema: `docs/check-output.schema.json`) and SARIF 2.1.0 for code-scanning
//! UIs.

use std::fmt::Write;

use json_patch::PatchOperation;
use serde_json::{Value, json};

use super::input::Source;
use super::{Checked, Location, NotChecked, summarize};
use crate::engine::{Action, Operation, PORTCULLIS, PolicyFinding, PolicySet, Severity, Stage};
use crate::policy::PolicySource;

/// Version of the JSON output schema.
pub const JSON_VERSION: u32 = 2;

/// What a report says besides the verdicts.
pub struct Context<'a> {
    /// The policy set used.
    pub policies: &'a PolicySource,
    /// Namespaces whose environments were judged by name because their labels
    /// were unknown ([`super::namespaces::judged_by_name`]).
    pub labels_unknown: &'a [String],
}

impl Context<'_> {
    /// `namespace prd: labels unknown, judged by name`, one per namespace, and
    /// `policies: ./policies`.
    fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> =
            self.labels_unknown.iter().map(|namespace| format!("namespace {namespace}: {JUDGED_BY_NAME}")).collect();
        lines.push(format!("policies: {}", self.policies));
        lines
    }
}

const JUDGED_BY_NAME: &str = "labels unknown, judged by name";

/// ANSI colours, or none.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }
}

/// What a patch adds, readably (`annotation key: "value"`), with the index of
/// the policy behind each operation. Creating the empty annotations map is
/// not shown: it comes with the first annotation, from the same policy.
fn describe_patch(checked: &Checked) -> Vec<(usize, String)> {
    checked
        .mutation
        .patch_by_policy()
        .filter_map(|(policy, op)| {
            match op {
                PatchOperation::Add(add) => {
                    let tokens: Vec<String> = add.path.tokens().map(|t| t.decoded().into_owned()).collect();
                    match tokens.as_slice() {
                        [m, a] if m == "metadata" && a == "annotations" => None,
                        [m, a, key] if m == "metadata" && a == "annotations" => {
                            Some(format!("annotation {key}: {}", add.value))
                        }
                        _ => Some(format!("{} = {}", add.path, add.value)),
                    }
                }
                other => Some(serde_json::to_string(other).unwrap_or_default()),
            }
            .map(|fix| (policy, fix))
        })
        .collect()
}

/// The `cel` validation a finding failed: its index and expression.
fn validation(finding: &PolicyFinding, set: &PolicySet) -> Option<Value> {
    let index = finding.validation?;
    let crate::engine::rules::Rule::Cel(rule) = set.policies()[finding.policy?].rule() else { return None };
    let expression = rule.validations.get(index)?.expression.0.source();
    Some(json!({"index": index, "expression": expression}))
}

fn object_label(checked: &Checked) -> String {
    format!("{} {}/{}", checked.kind.as_str(), checked.namespace, checked.name)
}

/// The validation findings in report order: denials, warnings (notices
/// included), audits.
fn findings(checked: &Checked) -> impl Iterator<Item = &PolicyFinding> {
    let v = &checked.validation;
    v.of(Severity::Deny).chain(v.of(Severity::Warn)).chain(v.of(Severity::Notice)).chain(v.of(Severity::Audit))
}

/// How a finding shows in the reports: text label, JSON severity, SARIF level.
fn labels(severity: Severity) -> (&'static str, &'static str, &'static str, &'static str) {
    match severity {
        Severity::Deny => ("31", "error  ", "deny", "error"),
        Severity::Warn | Severity::Notice => ("33", "warning", "warn", "warning"),
        Severity::Audit => ("34", "audit  ", "audit", "note"),
    }
}

/// Where in its file: `document 2, item 1 (line 9)`.
fn place(location: &Location) -> String {
    let item = location.item.map(|i| format!(", item {}", i + 1)).unwrap_or_default();
    format!("document {}{item} (line {})", location.document + 1, location.line)
}

/// The line `not checked: <why>`.
fn not_checked_line(not_checked: &NotChecked) -> String {
    format!("not checked: {}", not_checked.reason)
}

/// One block per file that has findings or anything not checked, in document
/// order (what is about the whole file first), then the namespaces judged by
/// name, the policy set and the summary line.
pub fn text(
    sources: &[Source],
    checked: &[Checked],
    not_checked: &[NotChecked],
    set: &PolicySet,
    context: &Context<'_>,
    style: Style,
) -> String {
    let mut out = String::new();
    for (source_index, source) in sources.iter().enumerate() {
        // Each entry: its place in the file (`None`: the whole file) and its lines.
        let mut entries: Vec<(Option<&Location>, String)> = Vec::new();
        for object in checked.iter().filter(|c| c.location.source == source_index) {
            let fixes = describe_patch(object);
            if object.validation.findings.is_empty() && fixes.is_empty() {
                continue;
            }
            // A review's operation, when not the CREATE of a manifest.
            let operation = match object.operation {
                Operation::Create => String::new(),
                other => format!(" ({})", other.as_str()),
            };
            let mut block = format!("  {}: {}{operation}\n", place(&object.location), object_label(object));
            for finding in findings(object) {
                let (color, label, _, _) = labels(finding.severity);
                let _ = writeln!(block, "    {} {}", style.paint(color, label), object.line(finding, set));
            }
            for (policy, fix) in fixes {
                let _ = writeln!(
                    block,
                    "    {} [{}] would add {fix} (--fix applies it)",
                    style.paint("36", "fix    "),
                    set.policies()[policy].name()
                );
            }
            entries.push((Some(&object.location), block));
        }
        for entry in not_checked.iter().filter(|n| n.source == source_index) {
            let line = style.paint("33", &not_checked_line(entry));
            let line = match &entry.location {
                Some(location) => format!("  {}: {line}\n", place(location)),
                None => format!("  {line}\n"),
            };
            entries.push((entry.location.as_ref(), line));
        }
        if entries.is_empty() {
            continue;
        }
        entries.sort_by_key(|(location, _)| location.map(|location| (location.document, location.item)));
        let _ = writeln!(out, "{}", style.paint("1", &source.name));
        for (_, block) in entries {
            out.push_str(&block);
        }
    }
    for line in context.lines() {
        let _ = writeln!(out, "{line}");
    }
    let summary = summarize(checked, not_checked);
    let _ = write!(out, "{} objects, {} denied, {} warned", summary.objects, summary.denied, summary.warned);
    if summary.not_checked > 0 {
        let _ = write!(out, ", {} not checked", summary.not_checked);
    }
    out.push('\n');
    out
}

/// The patch `/mutate` would return, each operation with the `policy` behind
/// it (a member RFC 6902 tells appliers to ignore).
fn patch_entries(checked: &Checked, set: &PolicySet) -> Vec<Value> {
    checked
        .mutation
        .patch_by_policy()
        .map(|(policy, op)| {
            let mut entry = serde_json::to_value(op).expect("a patch operation always serializes");
            entry["policy"] = json!(set.policies()[policy].name());
            entry
        })
        .collect()
}

/// The JSON report (schema `docs/check-output.schema.json`).
pub fn json(
    sources: &[Source],
    checked: &[Checked],
    not_checked: &[NotChecked],
    set: &PolicySet,
    context: &Context<'_>,
) -> Value {
    let summary = summarize(checked, not_checked);
    let results: Vec<Value> = checked
        .iter()
        .map(|c| {
            let v = &c.validation;
            let findings: Vec<Value> = findings(c)
                .map(|finding| {
                    let mut entry = json!({
                        "severity": labels(finding.severity).2,
                        "policy": finding.policy.map_or(PORTCULLIS, |index| set.policies()[index].name()),
                        "message": c.line(finding, set),
                    });
                    if let Some(validation) = validation(finding, set) {
                        entry["validation"] = validation;
                    }
                    entry
                })
                .collect();
            json!({
                "file": sources[c.location.source].name,
                "document": c.location.document + 1,
                "item": c.location.item.map(|i| i + 1),
                "line": c.location.line,
                "kind": c.kind.as_str(),
                "namespace": c.namespace,
                "name": c.name,
                "operation": c.operation.as_str(),
                "allowed": v.allowed(),
                "findings": findings,
                "patch": patch_entries(c, set),
            })
        })
        .collect();
    let not_checked: Vec<Value> = not_checked
        .iter()
        .map(|n| {
            json!({
                "file": sources[n.source].name,
                "document": n.location.as_ref().map(|l| l.document + 1),
                "item": n.location.as_ref().and_then(|l| l.item).map(|i| i + 1),
                "line": n.location.as_ref().map(|l| l.line),
                "reason": n.reason,
                "inputError": n.input_error,
            })
        })
        .collect();
    let policies = match context.policies {
        PolicySource::Bundled => json!({"bundled": true, "directory": null}),
        PolicySource::Dir(dir) => json!({"bundled": false, "directory": dir.display().to_string()}),
    };
    json!({
        "version": JSON_VERSION,
        "policies": policies,
        "summary": {"objects": summary.objects, "denied": summary.denied, "warned": summary.warned,
                    "mutated": summary.mutated, "notChecked": summary.not_checked},
        "results": results,
        "notChecked": not_checked,
        "labelsUnknown": context.labels_unknown,
    })
}

fn sarif_level(set: &PolicySet, index: usize) -> &'static str {
    let policy = &set.policies()[index];
    match (policy.rule().stage(), policy.action()) {
        (Stage::Mutate, _) => "note",
        (Stage::Validate, Action::Deny) => "error",
        (Stage::Validate, Action::Warn) => "warning",
        (Stage::Validate, Action::Audit) => "note",
    }
}

/// The SARIF location of a file's line.
fn sarif_uri(source: &Source) -> String {
    match source.name.as_str() {
        "-" => "stdin".to_owned(),
        name => name.trim_start_matches("./").to_owned(),
    }
}

/// A SARIF 2.1.0 log: one rule per policy, one result per finding and per
/// suggested fix, and one of rule `portcullis` per thing not checked (level
/// warning for input that cannot be used, note for the rest); the policy set
/// and the namespaces judged by name are notes of the invocation.
pub fn sarif(
    sources: &[Source],
    checked: &[Checked],
    not_checked: &[NotChecked],
    set: &PolicySet,
    context: &Context<'_>,
) -> Value {
    let rules: Vec<Value> = set
        .policies()
        .iter()
        .enumerate()
        .map(|(index, policy)| {
            json!({
                "id": policy.name(),
                "name": policy.name(),
                "shortDescription": {"text": format!("{} ({})", policy.name(), policy.rule().name())},
                "fullDescription": {"text": policy.description()},
                "defaultConfiguration": {"level": sarif_level(set, index)},
            })
        })
        .collect();
    let mut results = Vec::new();
    for c in checked {
        let uri = sarif_uri(&sources[c.location.source]);
        let location = json!([{
            "physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": c.location.line}},
            "logicalLocations": [{"fullyQualifiedName": object_label(c), "kind": "resource"}],
        }]);
        // The rule is the finding's policy; portcullis' own notices are the rule `portcullis`.
        let mut push = |policy: Option<usize>, line: String, level: &str, validation: Option<Value>| {
            let mut result = json!({
                "ruleId": policy.map_or(PORTCULLIS, |index| set.policies()[index].name()),
                "level": level,
                "message": {"text": line},
                "locations": location.clone(),
            });
            if let Some(index) = policy {
                result["ruleIndex"] = json!(index);
            }
            if let Some(validation) = validation {
                result["properties"] = json!({"validation": validation});
            }
            results.push(result);
        };
        for finding in findings(c) {
            push(finding.policy, c.line(finding, set), labels(finding.severity).3, validation(finding, set));
        }
        // One result per mutating policy, with what it adds, so each maps to its rule.
        let fixes = describe_patch(c);
        for &index in &c.mutation.mutated_by {
            let own: Vec<&str> = fixes.iter().filter(|(by, _)| *by == index).map(|(_, fix)| fix.as_str()).collect();
            let line = format!("[{}] {}: would add {}", set.policies()[index].name(), object_label(c), own.join(", "));
            push(Some(index), line, "note", None);
        }
    }
    for entry in not_checked {
        let artifact = json!({"uri": sarif_uri(&sources[entry.source])});
        let (text, location) = match &entry.location {
            Some(location) => {
                let item = location.item.map(|i| format!(", item {}", i + 1)).unwrap_or_default();
                (
                    format!("document {}{item}: {}", location.document + 1, not_checked_line(entry)),
                    json!({"artifactLocation": artifact, "region": {"startLine": location.line}}),
                )
            }
            None => (not_checked_line(entry), json!({"artifactLocation": artifact})),
        };
        results.push(json!({
            "ruleId": PORTCULLIS,
            "level": if entry.input_error { "warning" } else { "note" },
            "message": {"text": text},
            "locations": [{"physicalLocation": location}],
        }));
    }
    let notification =
        |id: &str, text: String| json!({"descriptor": {"id": id}, "level": "note", "message": {"text": text}});
    let mut notifications = vec![notification("policies", format!("policies: {}", context.policies))];
    for namespace in context.labels_unknown {
        notifications.push(notification("namespace-labels", format!("namespace {namespace}: {JUDGED_BY_NAME}")));
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "portcullis",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/portcullis-dev/portcullis",
                "rules": rules,
            }},
            "invocations": [{"executionSuccessful": true, "toolConfigurationNotifications": notifications}],
            "results": results,
        }],
    })
}
