//! `portcullis policies`: a human-readable listing of a policy set.

use crate::engine::PolicySet;

/// A human-readable listing of a policy set (`portcullis policies`).
pub fn describe(set: &PolicySet) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let environments = set.environments();
    let names = |indexes: &[usize]| indexes.iter().map(|&i| environments[i].name()).collect::<Vec<_>>().join(",");
    let mut rows: Vec<[String; 6]> =
        vec![["POLICY", "ACTION", "RULE", "KINDS", "OPERATIONS", "WHERE"].map(str::to_owned)];
    for policy in set.policies() {
        let m = policy.matches();
        let kinds: Vec<&str> = m.kinds.iter().map(|k| k.as_str()).collect();
        let operations: Vec<&str> = m.operations.iter().map(|o| o.as_str()).collect();
        let mut scope = Vec::new();
        if m.environments.is_empty() && m.namespaces.is_empty() {
            scope.push("all namespaces".to_owned());
        }
        if !m.environments.is_empty() {
            scope.push(format!("environments {}", names(&m.environments)));
        }
        if !m.namespaces.is_empty() {
            scope.push(format!("namespaces {}", m.namespaces.patterns().collect::<Vec<_>>().join(",")));
        }
        if !m.exclude_environments.is_empty() {
            scope.push(format!("except environments {}", names(&m.exclude_environments)));
        }
        if !m.exclude_namespaces.is_empty() {
            scope.push(format!("except {}", m.exclude_namespaces.patterns().collect::<Vec<_>>().join(",")));
        }
        let action = match policy.rule().stage() {
            crate::engine::Stage::Mutate => "Mutate",
            crate::engine::Stage::Validate => match policy.action() {
                crate::engine::Action::Deny => "Deny",
                crate::engine::Action::Warn => "Warn",
                crate::engine::Action::Audit => "Audit",
            },
        };
        rows.push([
            policy.name().to_owned(),
            action.to_owned(),
            policy.rule().name().to_owned(),
            kinds.join(","),
            operations.join(","),
            scope.join("; "),
        ]);
    }
    // Each column as wide as its widest cell, so long kind lists stay aligned.
    let mut widths = [0; 5];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    for row in &rows {
        for (width, cell) in widths.iter().zip(row) {
            let _ = write!(out, "{cell:<width$} ");
        }
        let _ = writeln!(out, "{}", row[5]);
    }
    for env in environments {
        let _ = writeln!(
            out,
            "environment {}: namespaces {}",
            env.name(),
            env.namespace_globs().collect::<Vec<_>>().join(",")
        );
    }
    out
}
