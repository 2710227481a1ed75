//! Loading policy files: every `*.yaml` / `*.yml` directly in the policy
//! directory (hidden files and sub-directories are skipped, which also skips the
//! `..data` machinery of a ConfigMap volume), and so is `kustomization.yaml`,
//! which generates that ConfigMap. A file may hold several documents
//! of these kinds, all `apiVersion: portcullis.dev/v1alpha1`:
//!
//! - `Policy`: one rule with its match, action and exceptions;
//! - `Environment`: a named set of namespaces (name globs and a label selector);
//! - `IngressControllers`: extra ingress class → controller family mappings.
//!
//! Unknown fields, unknown rule types, bad globs and references to unknown
//! environments are errors that name the file and the document.

pub mod store;

pub use store::PolicyStore;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::engine::policy::{EnvironmentSpec, PolicySpec};
use crate::engine::{ControllerMap, Environment, Family, Policy, PolicySet};

pub const API_VERSION: &str = "portcullis.dev/v1alpha1";

/// Why a policy set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{file}: {subject}: {message}")]
    Invalid { file: PathBuf, subject: String, message: String },
    #[error("{dir}: no Policy documents found")]
    Empty { dir: PathBuf },
}

/// What a document is, for error messages: `Policy "name"` or `document 2`.
struct Subject<'a>(&'a str, Option<&'a str>, usize);

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(name) => write!(f, "{} {name:?}", self.0),
            None => write!(f, "document {}", self.2 + 1),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document<S> {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: Metadata,
    spec: S,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ControllersSpec {
    /// Ingress class name → controller family.
    #[serde(default)]
    classes: BTreeMap<String, Family>,
    /// The family of Ingresses that name no class.
    #[serde(default)]
    default: Option<Family>,
}

/// A policy or environment name: a DNS label, so it is safe in metric labels,
/// messages and audit annotation keys.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!("metadata.name {name:?} must be a DNS label (lowercase letters, digits and '-', at most 63)"))
    }
}

/// The `*.yaml` / `*.yml` files directly inside `dir`, sorted by name.
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |source| LoadError::Io { path: dir.to_owned(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        // `kustomization.yaml` generates the policies ConfigMap; it is no policy.
        let kustomization = name == "kustomization.yaml" || name == "kustomization.yml";
        // `is_file` follows symlinks, as a ConfigMap volume needs.
        if yaml && !kustomization && !name.starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The policy files in `dir` with their contents, in load order.
pub fn read_sources(dir: &Path) -> Result<Vec<(PathBuf, String)>, LoadError> {
    policy_files(dir)?
        .into_iter()
        .map(|path| match std::fs::read_to_string(&path) {
            Ok(text) => Ok((path, text)),
            Err(source) => Err(LoadError::Io { path, source }),
        })
        .collect()
}

/// Loads and validates every policy file in `dir`.
pub fn load_dir(dir: &Path) -> Result<PolicySet, LoadError> {
    load_dir_sources(dir, &read_sources(dir)?)
}

/// Loads the sources read from `dir`; a directory without policies is an error.
pub fn load_dir_sources(dir: &Path, sources: &[(PathBuf, String)]) -> Result<PolicySet, LoadError> {
    let set = load_sources(sources)?;
    if set.is_empty() {
        return Err(LoadError::Empty { dir: dir.to_owned() });
    }
    Ok(set)
}

/// Loads a policy set from `(file name, YAML text)` pairs, in order.
pub fn load_sources(sources: &[(PathBuf, String)]) -> Result<PolicySet, LoadError> {
    let mut docs = Vec::new();
    for (file, text) in sources {
        let invalid = |subject: String, message: String| LoadError::Invalid { file: file.clone(), subject, message };
        let values: Vec<Value> = serde_saphyr::from_str_multiple(text)
            .map_err(|e| invalid("YAML".into(), e.to_string().replace('\n', " ")))?;
        for (index, value) in values.into_iter().enumerate().filter(|(_, v)| !v.is_null()) {
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
            let name = value.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned);
            let subject = Subject(&kind, name.as_deref(), index).to_string();
            let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            if api_version != API_VERSION {
                return Err(invalid(subject, format!("apiVersion must be {API_VERSION}, not {api_version:?}")));
            }
            docs.push((file, subject, kind, value));
        }
    }

    fn parse<S: DeserializeOwned>(value: Value) -> Result<(String, S), String> {
        let doc: Document<S> = serde_json::from_value(value).map_err(|e| e.to_string())?;
        check_name(&doc.metadata.name)?;
        Ok((doc.metadata.name, doc.spec))
    }
    let invalid = |file: &PathBuf, subject: &str, message: String| LoadError::Invalid {
        file: file.clone(),
        subject: subject.to_owned(),
        message,
    };

    // Environments and the controller table first: policies refer to them.
    let mut environments: Vec<Environment> = Vec::new();
    let mut controllers: Option<ControllerMap> = None;
    for (file, subject, kind, value) in &docs {
        match kind.as_str() {
            "Environment" => {
                let (name, spec) = parse::<EnvironmentSpec>(value.clone()).map_err(|m| invalid(file, subject, m))?;
                if environments.iter().any(|env| env.name() == name) {
                    return Err(invalid(file, subject, "an Environment with this name is already defined".into()));
                }
                environments.push(Environment::new(name, spec).map_err(|m| invalid(file, subject, m))?);
            }
            "IngressControllers" => {
                let (_, spec) = parse::<ControllersSpec>(value.clone()).map_err(|m| invalid(file, subject, m))?;
                if controllers.is_some() {
                    return Err(invalid(file, subject, "only one IngressControllers document is allowed".into()));
                }
                controllers = Some(ControllerMap::with(spec.classes, spec.default));
            }
            "Policy" => {}
            other => {
                return Err(invalid(
                    file,
                    subject,
                    format!("unknown kind {other:?} (expected Policy, Environment or IngressControllers)"),
                ));
            }
        }
    }
    let mut policies: Vec<Policy> = Vec::new();
    for (file, subject, kind, value) in docs {
        if kind != "Policy" {
            continue;
        }
        let (name, spec) = parse::<PolicySpec>(value).map_err(|m| invalid(file, &subject, m))?;
        if policies.iter().any(|p| p.name() == name) {
            return Err(invalid(file, &subject, "a Policy with this name is already defined".into()));
        }
        policies.push(Policy::new(name, spec, &environments).map_err(|m| invalid(file, &subject, m))?);
    }
    Ok(PolicySet::new(policies, environments, controllers.unwrap_or_default()))
}

/// A human-readable listing of a policy set (`portcullis policies`).
pub fn describe(set: &PolicySet) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let environments = set.environments();
    let names = |indexes: &[usize]| indexes.iter().map(|&i| environments[i].name()).collect::<Vec<_>>().join(",");
    let _ = writeln!(out, "{:<38} {:<6} {:<21} {:<16} {:<14} WHERE", "POLICY", "ACTION", "RULE", "KINDS", "OPERATIONS");
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
        let _ = writeln!(
            out,
            "{:<38} {:<6} {:<21} {:<16} {:<14} {}",
            policy.name(),
            action,
            policy.rule().name(),
            kinds.join(","),
            operations.join(","),
            scope.join("; ")
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<PolicySet, String> {
        load_sources(&[(PathBuf::from("p.yaml"), text.to_owned())]).map_err(|e| e.to_string())
    }

    const ENV: &str = "apiVersion: portcullis.dev/v1alpha1\nkind: Environment\nmetadata: {name: production}\nspec: {namespaces: [prod]}\n";

    #[test]
    fn loads_policies_and_environments_from_one_file() {
        let set = load(&format!(
            "{ENV}---\napiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: no-nodeport\nspec:\n  \
             action: Deny\n  match:\n    kinds: [service]\n    environments: [production]\n  rule:\n    serviceType:\n      forbidden: [NodePort]\n"
        ))
        .unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.policies()[0].name(), "no-nodeport");
        assert_eq!(set.environments()[0].name(), "production");
    }

    #[test]
    fn names_the_file_and_policy_on_unknown_fields() {
        let err = load(
            "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: p1}\nspec:\n  actoin: Deny\n  rule: {ingressTls: {}}\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("p.yaml: Policy \"p1\": unknown field `actoin`, expected one of `description`, `action`"),
            "{err}"
        );
    }

    #[test]
    fn names_the_file_and_policy_on_unknown_rule_types() {
        let err = load("apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: p2}\nspec:\n  rule: {noSnippets: {}}\n")
            .unwrap_err();
        assert!(
            err.starts_with("p.yaml: Policy \"p2\": unknown variant `noSnippets`, expected one of `serviceType`"),
            "{err}"
        );
    }

    #[test]
    fn rejects_bad_globs_unknown_environments_and_mismatched_kinds() {
        let policy = |spec: &str| {
            format!("apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p3}}\nspec:\n{spec}")
        };
        assert_eq!(
            load(&policy("  match: {excludeNamespaces: ['kube-[']}\n  rule: {ingressTls: {}}\n")).unwrap_err(),
            "p.yaml: Policy \"p3\": invalid glob \"kube-[\": invalid range pattern"
        );
        assert_eq!(
            load(&policy("  match: {environments: [staging]}\n  rule: {ingressTls: {}}\n")).unwrap_err(),
            "p.yaml: Policy \"p3\": match.environments: unknown environment \"staging\" (known: )"
        );
        assert_eq!(
            load(&policy("  match: {kinds: [Ingress]}\n  rule: {serviceType: {forbidden: [NodePort]}}\n")).unwrap_err(),
            "p.yaml: Policy \"p3\": match.kinds: rule serviceType applies to Service, not to \"Ingress\""
        );
        assert_eq!(
            load(&policy("  match: {operations: [DELETE]}\n  rule: {ingressTls: {}}\n")).unwrap_err(),
            "p.yaml: Policy \"p3\": match.operations: DELETE carries no object to check; use CREATE and UPDATE"
        );
    }

    #[test]
    fn rejects_wrong_api_versions_kinds_names_and_duplicates() {
        assert_eq!(
            load("apiVersion: v1\nkind: Policy\nmetadata: {name: p}\nspec: {}\n").unwrap_err(),
            "p.yaml: Policy \"p\": apiVersion must be portcullis.dev/v1alpha1, not \"v1\""
        );
        assert_eq!(
            load("apiVersion: portcullis.dev/v1alpha1\nkind: Polcy\nmetadata: {name: p}\nspec: {}\n").unwrap_err(),
            "p.yaml: Polcy \"p\": unknown kind \"Polcy\" (expected Policy, Environment or IngressControllers)"
        );
        assert_eq!(
            load("apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: No_Good}\nspec: {rule: {ingressTls: {}}}\n")
                .unwrap_err(),
            "p.yaml: Policy \"No_Good\": metadata.name \"No_Good\" must be a DNS label (lowercase letters, digits and '-', at most 63)"
        );
        assert_eq!(
            load(&format!("{ENV}---\n{ENV}")).unwrap_err(),
            "p.yaml: Environment \"production\": an Environment with this name is already defined"
        );
        assert!(load("key: [unclosed\n").unwrap_err().starts_with("p.yaml: YAML: "));
    }

    #[test]
    fn ingress_controllers_extend_the_default_table() {
        let set = load(
            "apiVersion: portcullis.dev/v1alpha1\nkind: IngressControllers\nmetadata: {name: classes}\n\
             spec: {classes: {public: nginx}, default: traefik}\n",
        )
        .unwrap();
        assert_eq!(set.controllers().classes().get("public"), Some(&Family::Nginx));
        assert_eq!(set.controllers().classes().get("haproxy"), Some(&Family::Haproxy));
        assert_eq!(set.controllers().default_family(), Some(Family::Traefik));
    }
}
