//! `portcullis vap POLICY`: a `cel` policy as a ValidatingAdmissionPolicy and
//! ValidatingAdmissionPolicyBinding (`admissionregistration.k8s.io/v1`), so
//! that a rule can move from portcullis into the API server.
//!
//! POLICY is a policy file (every `cel` Policy in it is exported; the
//! Environments it refers to may be defined in it or in the policy set of
//! `--policies`, as for the other commands: `./policies` when it is a
//! directory, else the bundled set) or, when no such file exists, the name of
//! a policy in that set.
//!
//! Both objects are named `portcullis-<policy>` (so they cannot clash with a
//! policy of another origin and say where they come from) and labelled
//! `portcullis.dev/policy: <policy>`. What of the policy they cannot say is a
//! `# not equivalent: <policy>: ...` comment line at the top of the output and
//! a line on standard error; the export still succeeds. See [`convert`].
//!
//! Exit code 0: exported; 2: a policy whose rule is not `cel` (alone, or every
//! policy of the file), or a usage or input error.

pub mod convert;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::documents::{self, Format};
use crate::engine::{Policy, PolicySet};
use crate::policy::{self, PolicySource};

pub use convert::{Export, export, not_cel};

/// What `portcullis vap` was asked.
#[derive(Clone, Debug)]
pub struct Run {
    /// A policy file, or a policy's name.
    pub policy: String,
    pub policies: Option<PathBuf>,
    /// What named `--policies`, for errors about it.
    pub policies_flag: String,
}

/// Runs `portcullis vap`; returns the exit code.
pub fn run(run: &Run, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8 {
    match exports(run) {
        Ok((exports, skipped)) => {
            for message in skipped {
                let _ = writeln!(stderr, "portcullis vap: skipped: {message}");
            }
            for export in &exports {
                for note in &export.not_equivalent {
                    let _ = writeln!(stderr, "portcullis vap: {}: not equivalent: {note}", policy_of(export));
                }
            }
            match render(&exports) {
                Ok(text) => match stdout.write_all(text.as_bytes()) {
                    Ok(()) => 0,
                    Err(error) => {
                        let _ = writeln!(stderr, "portcullis vap: cannot write the output: {error}");
                        2
                    }
                },
                Err(error) => {
                    let _ = writeln!(stderr, "portcullis vap: {error}");
                    2
                }
            }
        }
        Err(messages) => {
            for message in messages {
                let _ = writeln!(stderr, "portcullis vap: {message}");
            }
            2
        }
    }
}

/// The policy an export came from, by its label.
fn policy_of(export: &Export) -> &str {
    export
        .policy
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(convert::POLICY_LABEL))
        .map_or("", String::as_str)
}

/// The exports asked for, and why the policies of the file that are not
/// `cel` were skipped; `Err`: the messages of a failure.
fn exports(run: &Run) -> Result<(Vec<Export>, Vec<String>), Vec<String>> {
    let source = PolicySource::resolve(run.policies.as_deref(), &run.policies_flag).map_err(|e| vec![e.to_string()])?;
    let path = Path::new(&run.policy);
    let (set, names) = if path.is_file() {
        load_file(path, &source).map_err(|e| vec![e])?
    } else if path.exists() {
        return Err(vec![format!("{}: not a file", run.policy)]);
    } else if run.policy.contains('/') || run.policy.ends_with(".yaml") || run.policy.ends_with(".yml") {
        return Err(vec![format!("{}: no such file", run.policy)]);
    } else {
        let set = source.load().map_err(|e| vec![e.to_string()])?;
        if !set.policies().iter().any(|p| p.name() == run.policy) {
            return Err(vec![format!("no file and no policy named {} in {source}", run.policy)]);
        }
        (set, vec![run.policy.clone()])
    };
    let policies: Vec<&Policy> =
        names.iter().filter_map(|name| set.policies().iter().find(|p| p.name() == name)).collect();
    let mut exported = Vec::new();
    let mut refused = Vec::new();
    for policy in policies {
        match export(policy, set.environments()) {
            Ok(export) => exported.push(export),
            Err(message) => refused.push(message),
        }
    }
    if exported.is_empty() { Err(refused) } else { Ok((exported, refused)) }
}

/// Loads a policy file with the Environments of the policy set (those the
/// file does not define itself; the set's copy of the file left out), and
/// returns the set and the names of the file's policies, in order.
fn load_file(path: &Path, source: &PolicySource) -> Result<(PolicySet, Vec<String>), String> {
    let text = documents::read_file(path).map_err(|e| format!("{}: {}", e.path.display(), e.source))?;
    let documents = documents::parse(&path.display().to_string(), &text, Format::Yaml).map_err(|e| e.to_string())?;
    let named = |kind: &str| -> Vec<String> {
        documents
            .iter()
            .filter(|d| d.value.get("kind").and_then(|k| k.as_str()) == Some(kind))
            .filter_map(|d| d.value.pointer("/metadata/name").and_then(|n| n.as_str()).map(str::to_owned))
            .collect()
    };
    let (policies, own_environments) = (named("Policy"), named("Environment"));
    if !documents.iter().any(|d| d.value.get("kind").and_then(|k| k.as_str()) == Some("Policy")) {
        return Err(format!("{}: no Policy documents found", path.display()));
    }
    let set_sources = match source {
        PolicySource::Dir(dir) => policy::read_sources(dir).map_err(|e| e.to_string())?,
        PolicySource::Bundled => policy::bundled::sources(),
    };
    let same = |other: &Path| match (path.canonicalize(), other.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let mut sources = Vec::new();
    for (file, text) in set_sources.into_iter().filter(|(file, _)| !same(file)) {
        let environments = environments_only(&file, &text, &own_environments)?;
        sources.push((file, environments));
    }
    sources.push((path.to_owned(), text));
    let set = policy::load_sources(&sources).map_err(|e| e.to_string())?;
    Ok((set, policies))
}

/// The Environment documents of a policy file (but those named in `except`),
/// every other document blanked out line for line, so that a load error still
/// points at the right line.
fn environments_only(file: &Path, text: &str, except: &[String]) -> Result<String, String> {
    let documents = documents::parse(&file.display().to_string(), text, Format::Yaml).map_err(|e| e.to_string())?;
    Ok(documents
        .iter()
        .map(|document| {
            let kind = document.value.get("kind").and_then(|k| k.as_str());
            let name = document.value.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default();
            if kind == Some("Environment") && !except.iter().any(|own| own == name) {
                document.text.clone()
            } else {
                "\n".repeat(document.text.matches('\n').count())
            }
        })
        .collect())
}

/// The exports as YAML: every `# not equivalent` line first, then each
/// policy and its binding, `---` between documents.
pub fn render(exports: &[Export]) -> Result<String, String> {
    let mut out = String::new();
    for export in exports {
        for note in &export.not_equivalent {
            out.push_str(&format!("# not equivalent: {}: {note}\n", policy_of(export)));
        }
    }
    let mut first = true;
    for export in exports {
        for document in [to_yaml(&export.policy)?, to_yaml(&export.binding)?] {
            if !first {
                out.push_str("---\n");
            }
            first = false;
            out.push_str(&document);
            if !document.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// YAML with each string on one line (a message or an expression is not
/// folded, whatever its length), but an expression of several lines as a
/// literal block, as it was written.
fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, String> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.folded_wrap_chars = 1 << 20;
    serde_saphyr::to_string_with_options(value, options).map_err(|e| format!("cannot write YAML: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};

    const POLICY: &str = "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  \
        action: Warn\n  match: {kinds: [Service], namespaces: [shop]}\n  rule:\n    cel:\n      validations:\n        \
        - expression: |\n            object.spec.type !=\n              'NodePort'\n";

    #[test]
    fn renders_policy_and_binding_that_read_back_as_the_same_objects() {
        let set = policy::load_sources(&[(PathBuf::from("p.yaml"), POLICY.to_owned())]).unwrap();
        let export = export(&set.policies()[0], set.environments()).unwrap();
        assert!(export.not_equivalent.is_empty(), "{:?}", export.not_equivalent);
        let text = render(std::slice::from_ref(&export)).unwrap();
        let (policy, binding) = text.split_once("---\n").unwrap();
        let policy: ValidatingAdmissionPolicy = serde_saphyr::from_str(policy).unwrap();
        let binding: ValidatingAdmissionPolicyBinding = serde_saphyr::from_str(binding).unwrap();
        assert_eq!((policy, binding), (export.policy.clone(), export.binding));
        // A multi-line expression without a message gets portcullis's own message.
        let validation = &export.policy.spec.unwrap().validations.unwrap()[0];
        assert_eq!(validation.expression, "object.spec.type !=\n  'NodePort'");
        assert_eq!(validation.message.as_deref(), Some("failed expression: object.spec.type != 'NodePort'"));
    }

    #[test]
    fn other_documents_are_blanked_line_for_line() {
        let text = "# c\napiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: a}\n---\n\
                    apiVersion: portcullis.dev/v1alpha1\nkind: Environment\nmetadata: {name: e}\nspec: {}\n---\n\
                    apiVersion: portcullis.dev/v1alpha1\nkind: Environment\nmetadata: {name: own}\nspec: {}\n";
        let kept = environments_only(Path::new("x.yaml"), text, &["own".to_owned()]).unwrap();
        assert_eq!(kept.lines().count(), text.lines().count());
        assert_eq!(
            kept,
            "\n\n\n\n---\napiVersion: portcullis.dev/v1alpha1\nkind: Environment\nmetadata: {name: e}\nspec: {}\n\n\n\n\n\n"
        );
    }
}
