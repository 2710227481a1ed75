//! Finding, reading and validating the policy files of a directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::errors::{DocumentError, LoadError, refine, split_field};
use super::{API_VERSION, dns_label};
use crate::documents::{self, Document, FieldPath, Finder, Format, ReadError, YAML_EXTENSIONS};
use crate::engine::policy::{EnvironmentSpec, PolicySpec};
use crate::engine::{ControllerMap, Environment, Family, Policy, PolicySet};

/// The policy files of a directory: `*.yaml` / `*.yml` directly in it, not in
/// sub-directories (the test cases of `policies/tests/`), skipping hidden files
/// (and so the `..data` machinery of a ConfigMap volume) and
/// `kustomization.yaml`, which generates that ConfigMap; following symlinks,
/// as the ConfigMap volume's files are.
pub const POLICY_FILES: Finder = Finder::new(YAML_EXTENSIONS).skip_names(&["kustomization.yaml", "kustomization.yml"]);

impl From<ReadError> for LoadError {
    fn from(error: ReadError) -> LoadError {
        LoadError::Io { path: error.path, source: error.source }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Manifest<S> {
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

/// The `*.yaml` / `*.yml` files directly inside `dir`, sorted by name ([`POLICY_FILES`]).
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    Ok(POLICY_FILES.find(dir)?)
}

/// The policy files in `dir` with their contents, in load order.
pub fn read_sources(dir: &Path) -> Result<Vec<(PathBuf, String)>, LoadError> {
    policy_files(dir)?
        .into_iter()
        .map(|path| {
            let text = documents::read_file(&path)?;
            Ok((path, text))
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

/// One document of a policy file, with what error messages say about it.
struct Doc<'a> {
    file: &'a Path,
    /// In its file, counted from 1.
    index: usize,
    document: Document,
    kind: String,
    name: Option<String>,
}

impl Doc<'_> {
    fn error(&self, field: Option<FieldPath>, message: impl Into<String>) -> LoadError {
        LoadError::from(DocumentError {
            file: self.file.to_owned(),
            document_line: self.document.line,
            field_line: field.as_ref().and_then(|field| self.document.line_of(field)),
            document: self.index,
            kind: self.kind.clone(),
            name: self.name.clone(),
            field,
            message: message.into(),
        })
    }

    /// An error about the field at `field` (`metadata.name`).
    fn field_error(&self, field: &str, message: impl Into<String>) -> LoadError {
        self.error(FieldPath::parse(field), message)
    }

    /// A validation message of the engine about the spec: its leading field
    /// (`match.kinds: ...`) is a path under `spec`.
    fn spec_error(&self, message: &str) -> LoadError {
        match split_field(message) {
            (Some(field), rest) => self.error(Some(FieldPath::new().key("spec").join(&field)), rest),
            (None, message) => self.error(None, message),
        }
    }

    /// `file:line`, where another document may refer to this one.
    fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.document.line)
    }

    /// The document as `S`, with its name checked.
    fn decode<S: DeserializeOwned>(&self) -> Result<(String, S), LoadError> {
        let manifest: Manifest<S> = documents::from_value(&self.document.value).map_err(|e| {
            let (field, message) = refine(e.path, &e.message);
            self.error(Some(field), message)
        })?;
        dns_label(&manifest.metadata.name).map_err(|message| self.field_error("metadata.name", message))?;
        Ok((manifest.metadata.name, manifest.spec))
    }
}

/// Loads a policy set from `(file name, YAML text)` pairs, in order.
pub fn load_sources(sources: &[(PathBuf, String)]) -> Result<PolicySet, LoadError> {
    let mut docs = Vec::new();
    for (file, text) in sources {
        let documents = documents::parse(&file.display().to_string(), text, Format::Yaml)?;
        for (index, document) in documents.into_iter().enumerate().filter(|(_, d)| !d.value.is_null()) {
            let text = |pointer: &str| document.value.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
            let (kind, name) = (text("/kind").unwrap_or_default(), text("/metadata/name"));
            let doc = Doc { file, index: index + 1, kind, name, document };
            let api_version = doc.document.value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            if api_version != API_VERSION {
                return Err(doc.field_error("apiVersion", format!("must be {API_VERSION}, not {api_version:?}")));
            }
            docs.push(doc);
        }
    }

    // Environments and the controller table first: policies refer to them.
    let mut environments: Vec<Environment> = Vec::new();
    let mut environment_docs: Vec<&Doc> = Vec::new();
    let mut controllers: Option<(ControllerMap, &Doc)> = None;
    for doc in &docs {
        match doc.kind.as_str() {
            "Environment" => {
                let (name, spec) = doc.decode::<EnvironmentSpec>()?;
                if let Some(first) = environments.iter().position(|env| env.name() == name) {
                    let message =
                        format!("an Environment with this name is already defined at {}", environment_docs[first].at());
                    return Err(doc.field_error("metadata.name", message));
                }
                environments.push(Environment::new(name, spec).map_err(|m| doc.spec_error(&m))?);
                environment_docs.push(doc);
            }
            "IngressControllers" => {
                let (_, spec) = doc.decode::<ControllersSpec>()?;
                if let Some((_, first)) = &controllers {
                    let message =
                        format!("only one IngressControllers document is allowed; the first is at {}", first.at());
                    return Err(doc.error(None, message));
                }
                controllers = Some((ControllerMap::with(spec.classes, spec.default), doc));
            }
            "Policy" => {}
            other => {
                let message = format!("unknown kind {other:?} (expected Policy, Environment or IngressControllers)");
                return Err(doc.field_error("kind", message));
            }
        }
    }
    let mut policies: Vec<Policy> = Vec::new();
    let mut policy_docs: Vec<&Doc> = Vec::new();
    for doc in docs.iter().filter(|doc| doc.kind == "Policy") {
        let (name, spec) = doc.decode::<PolicySpec>()?;
        if let Some(first) = policies.iter().position(|p| p.name() == name) {
            let message = format!("a Policy with this name is already defined at {}", policy_docs[first].at());
            return Err(doc.field_error("metadata.name", message));
        }
        policies.push(Policy::new(name, spec, &environments).map_err(|m| doc.spec_error(&m))?);
        policy_docs.push(doc);
    }
    let controllers = controllers.map(|(map, _)| map).unwrap_or_default();
    Ok(PolicySet::new(policies, environments, controllers))
}
