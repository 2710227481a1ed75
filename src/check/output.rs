//! `check` output: human text (the default), JSON (a stable, documented
//! schema: `docs/check-output.schema.json`) and SARIF 2.1.0 for code-scanning
//! UIs.

use std::fmt::Write;

use json_patch::PatchOperation;
use serde_json::{Value, json};

use super::input::Source;
use super::{Checked, Location, Skipped, summarize};
use crate::engine::{Action, Operation, PORTCULLIS, PolicyFinding, PolicySet, Severity, Stage};

/// Version of the JSON output schema.
pub const JSON_VERSION: u32 = 1;

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

/// What a patch adds, readably: `annotation key: "value"`.
fn describe_patch(checked: &Checked) -> Vec<String> {
    checked
        .mutation
        .patch
        .0
        .iter()
        .filter_map(|op| match op {
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
        })
        .collect()
}

fn mutating_policies(checked: &Checked, set: &PolicySet) -> String {
    let names: Vec<&str> = checked.mutation.mutated_by.iter().map(|&i| set.policies()[i].name()).collect();
    names.join(",")
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

/// The line `skipped: <why>`.
fn skipped_line(skipped: &Skipped) -> String {
    format!("skipped: {}", skipped.reason)
}

/// One block per file that has findings or skipped documents, in document
/// order, then the summary line.
pub fn text(sources: &[Source], checked: &[Checked], skipped: &[Skipped], set: &PolicySet, style: Style) -> String {
    let mut out = String::new();
    for (source_index, source) in sources.iter().enumerate() {
        // Each entry: its place in the file and its lines.
        let mut entries: Vec<(&Location, String)> = Vec::new();
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
            for fix in fixes {
                let _ = writeln!(
                    block,
                    "    {} [{}] would add {fix} (--fix applies it)",
                    style.paint("36", "fix    "),
                    mutating_policies(object, set)
                );
            }
            entries.push((&object.location, block));
        }
        for skip in skipped.iter().filter(|s| s.location.source == source_index) {
            let line = format!("  {}: {}\n", place(&skip.location), style.paint("33", &skipped_line(skip)));
            entries.push((&skip.location, line));
        }
        if entries.is_empty() {
            continue;
        }
        entries.sort_by_key(|(location, _)| (location.document, location.item));
        let _ = writeln!(out, "{}", style.paint("1", &source.name));
        for (_, block) in entries {
            out.push_str(&block);
        }
    }
    let summary = summarize(checked, skipped);
    let _ = write!(out, "{} objects, {} denied, {} warned", summary.objects, summary.denied, summary.warned);
    if summary.skipped > 0 {
        let _ = write!(out, ", {} skipped", summary.skipped);
    }
    out.push('\n');
    out
}

/// The JSON report (schema `docs/check-output.schema.json`).
pub fn json(sources: &[Source], checked: &[Checked], skipped: &[Skipped], set: &PolicySet) -> Value {
    let summary = summarize(checked, skipped);
    let results: Vec<Value> = checked
        .iter()
        .map(|c| {
            let v = &c.validation;
            let findings: Vec<Value> = findings(c)
                .map(|finding| {
                    json!({
                        "severity": labels(finding.severity).2,
                        "policy": finding.policy.map_or(PORTCULLIS, |index| set.policies()[index].name()),
                        "message": c.line(finding, set),
                    })
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
                "patch": c.mutation.patch,
            })
        })
        .collect();
    let skipped: Vec<Value> = skipped
        .iter()
        .map(|s| {
            json!({
                "file": sources[s.location.source].name,
                "document": s.location.document + 1,
                "item": s.location.item.map(|i| i + 1),
                "line": s.location.line,
                "reason": s.reason,
            })
        })
        .collect();
    json!({
        "version": JSON_VERSION,
        "summary": {"objects": summary.objects, "denied": summary.denied, "warned": summary.warned,
                    "mutated": summary.mutated, "skipped": summary.skipped},
        "results": results,
        "skipped": skipped,
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
/// suggested fix, and one (rule `portcullis`, level warning) per skipped document.
pub fn sarif(sources: &[Source], checked: &[Checked], skipped: &[Skipped], set: &PolicySet) -> Value {
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
        let mut push = |policy: Option<usize>, line: String, level: &str| {
            let mut result = json!({
                "ruleId": policy.map_or(PORTCULLIS, |index| set.policies()[index].name()),
                "level": level,
                "message": {"text": line},
                "locations": location.clone(),
            });
            if let Some(index) = policy {
                result["ruleIndex"] = json!(index);
            }
            results.push(result);
        };
        for finding in findings(c) {
            push(finding.policy, c.line(finding, set), labels(finding.severity).3);
        }
        // One result per mutating policy, so each maps to its rule.
        let fixes = describe_patch(c).join(", ");
        for &index in &c.mutation.mutated_by {
            let line = format!("[{}] {}: would add {fixes}", set.policies()[index].name(), object_label(c));
            push(Some(index), line, "note");
        }
    }
    for skip in skipped {
        let item = skip.location.item.map(|i| format!(", item {}", i + 1)).unwrap_or_default();
        results.push(json!({
            "ruleId": PORTCULLIS,
            "level": "warning",
            "message": {"text": format!("document {}{item}: {}", skip.location.document + 1, skipped_line(skip))},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": sarif_uri(&sources[skip.location.source])},
                "region": {"startLine": skip.location.line},
            }}],
        }));
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
            "results": results,
        }],
    })
}
