//! `check` output: human text (the default), JSON (a stable, documented
//! schema: `docs/check-output.schema.json`) and SARIF 2.1.0 for code-scanning
//! UIs.

use std::fmt::Write;

use json_patch::PatchOperation;
use serde_json::{Value, json};

use super::input::Source;
use super::{Checked, policy_of, summarize};
use crate::engine::{Action, PolicySet, Stage};

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

/// One block per file that has findings, then the summary line.
pub fn text(sources: &[Source], checked: &[Checked], set: &PolicySet, style: Style) -> String {
    let mut out = String::new();
    for (source_index, source) in sources.iter().enumerate() {
        let mut header = false;
        for object in checked.iter().filter(|c| c.location.source == source_index) {
            let fixes = describe_patch(object);
            let v = &object.validation;
            if v.violations.is_empty() && v.warnings.is_empty() && v.audits.is_empty() && fixes.is_empty() {
                continue;
            }
            if !header {
                let _ = writeln!(out, "{}", style.paint("1", &source.name));
                header = true;
            }
            let item = object.location.item.map(|i| format!(", item {}", i + 1)).unwrap_or_default();
            let _ = writeln!(
                out,
                "  document {}{item} (line {}): {}",
                object.location.document + 1,
                object.location.line,
                object_label(object)
            );
            for violation in &v.violations {
                let _ = writeln!(out, "    {} {}", style.paint("31", "error  "), violation.message);
            }
            for warning in &v.warnings {
                let _ = writeln!(out, "    {} {}", style.paint("33", "warning"), warning);
            }
            for audit in &v.audits {
                let _ = writeln!(out, "    {} {}", style.paint("34", "audit  "), audit.message);
            }
            for fix in fixes {
                let _ = writeln!(
                    out,
                    "    {} [{}] would add {fix} (--fix applies it)",
                    style.paint("36", "fix    "),
                    mutating_policies(object, set)
                );
            }
        }
    }
    let summary = summarize(checked);
    let _ = writeln!(out, "{} objects, {} denied, {} warned", summary.objects, summary.denied, summary.warned);
    out
}

fn finding(severity: &str, line: &str) -> Value {
    json!({"severity": severity, "policy": policy_of(line), "message": line})
}

/// The JSON report (schema `docs/check-output.schema.json`).
pub fn json(sources: &[Source], checked: &[Checked]) -> Value {
    let summary = summarize(checked);
    let results: Vec<Value> = checked
        .iter()
        .map(|c| {
            let v = &c.validation;
            let findings: Vec<Value> = v
                .violations
                .iter()
                .map(|x| finding("deny", &x.message))
                .chain(v.warnings.iter().map(|w| finding("warn", w)))
                .chain(v.audits.iter().map(|x| finding("audit", &x.message)))
                .collect();
            json!({
                "file": sources[c.location.source].name,
                "document": c.location.document + 1,
                "item": c.location.item.map(|i| i + 1),
                "line": c.location.line,
                "kind": c.kind.as_str(),
                "namespace": c.namespace,
                "name": c.name,
                "allowed": v.allowed(),
                "findings": findings,
                "patch": c.mutation.patch,
            })
        })
        .collect();
    json!({
        "version": JSON_VERSION,
        "summary": {"objects": summary.objects, "denied": summary.denied, "warned": summary.warned, "mutated": summary.mutated},
        "results": results,
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

/// A SARIF 2.1.0 log: one rule per policy, one result per finding and per suggested fix.
pub fn sarif(sources: &[Source], checked: &[Checked], set: &PolicySet) -> Value {
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
    let index_of = |name: &str| set.policies().iter().position(|p| p.name() == name);
    let mut results = Vec::new();
    for c in checked {
        let uri = match sources[c.location.source].name.as_str() {
            "-" => "stdin".to_owned(),
            name => name.trim_start_matches("./").to_owned(),
        };
        let location = json!([{
            "physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": c.location.line}},
            "logicalLocations": [{"fullyQualifiedName": object_label(c), "kind": "resource"}],
        }]);
        // The rule is the policy a line names; a fix made by several policies is theirs together.
        let mut push = |line: &str, level: &str| {
            let policy = policy_of(line).filter(|p| index_of(p).is_some()).unwrap_or("portcullis");
            let mut result = json!({
                "ruleId": policy,
                "level": level,
                "message": {"text": line},
                "locations": location.clone(),
            });
            if let Some(index) = index_of(policy) {
                result["ruleIndex"] = json!(index);
            }
            results.push(result);
        };
        let v = &c.validation;
        for violation in &v.violations {
            push(&violation.message, "error");
        }
        for warning in &v.warnings {
            push(warning, "warning");
        }
        for audit in &v.audits {
            push(&audit.message, "note");
        }
        // One result per mutating policy, so each maps to its rule.
        let fixes = describe_patch(c).join(", ");
        for &index in &c.mutation.mutated_by {
            let line = format!("[{}] {}: would add {fixes}", set.policies()[index].name(), object_label(c));
            push(&line, "note");
        }
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
