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
use crate::engine::rules::Rule;
use crate::engine::{ControllerMap, Environment, Family, Policy, PolicySet};

/// The policy files of a directory: `*.yaml` / `*.yml` directly in it, not in
/// sub-directories (the test cases of `policies/tests/`), skipping hidden files
/// (and so the `..data` machinery of a ConfigMap volume) and
/// `kustomization.yaml`, which generates that ConfigMap; following symlinks,
/// as the ConfigMap volume's files are.
pub const POLICY_FILES: Finder = Finder::new(YAML_EXTENSIONS).skip_names(&["kustomization.yaml", "kustomization.yml"]);

impl From<ReadError> for LoadError {
    fn from(error: ReadError) -> LoadError {
        LoadError::Io { path: error.path, error: error.source }
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
    /// Traefik reads ingress-nginx's annotations too (its NGINX-annotation
    /// provider): nginx authentication and allow-list annotations count on
    /// traefik-served Ingresses.
    #[serde(default)]
    traefik_nginx_annotations: bool,
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
    let mut traefik_nginx_annotations = false;
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
                traefik_nginx_annotations = spec.traefik_nginx_annotations;
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
        let (name, mut spec) = doc.decode::<PolicySpec>()?;
        if traefik_nginx_annotations {
            match &mut spec.rule {
                Rule::IngressAuth(rule) => rule.count_nginx_annotations_on_traefik(),
                Rule::SourceRanges(rule) => rule.count_nginx_annotations_on_traefik(),
                _ => {}
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{Requester, Review};
    use crate::engine::{NamespaceLabels, Operation, Severity, Stage, evaluate};
    use serde_json::json;

    const POLICIES: &str = "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: auth}\n\
        spec: {rule: {ingressAuth: {allowApplicationAuth: false}}}\n---\n\
        apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: sources}\n\
        spec: {rule: {sourceRanges: {}}}\n";

    fn denials(controllers: &str) -> Vec<String> {
        let text = format!("{POLICIES}---\n{controllers}");
        let set = load_sources(&[(PathBuf::from("p.yaml"), text)]).unwrap();
        let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "annotations": {
                "nginx.ingress.kubernetes.io/auth-url": "https://auth.example.com/check",
                "nginx.ingress.kubernetes.io/whitelist-source-range": "203.0.113.0/24"}},
            "spec": {"ingressClassName": "traefik", "rules": [{"host": "web.example.com"}]}});
        let review = Review::from_manifest(&ingress, "shop", Operation::Create, Requester::default());
        let decision = evaluate(&review.input(Stage::Validate), &set, NamespaceLabels::none());
        decision.lines(Severity::Deny, review.about(), &set)
    }

    #[test]
    fn traefik_nginx_annotations_make_nginx_auth_and_allow_lists_count_on_traefik() {
        let on = "apiVersion: portcullis.dev/v1alpha1\nkind: IngressControllers\nmetadata: {name: classes}\n\
                  spec: {traefikNginxAnnotations: true}\n";
        assert_eq!(denials(on), Vec::<String>::new());
        let off = on.replace("true", "false");
        assert_eq!(
            denials(&off),
            [
                "[auth] Ingress shop/web: no authentication for the traefik controller; add an approved auth \
                 middleware to traefik.ingress.kubernetes.io/router.middlewares",
                "[sources] Ingress shop/web: no source allow-list, so any client can reach it; add an approved \
                 ipAllowList middleware to traefik.ingress.kubernetes.io/router.middlewares",
            ]
        );
        let unknown = on.replace("traefikNginxAnnotations", "traefikNginx");
        let error = load_sources(&[(PathBuf::from("p.yaml"), unknown)]).unwrap_err().to_string();
        assert!(
            error.ends_with(
                "spec.traefikNginx: unknown field `traefikNginx`, expected one of `classes`, `default`, \
                 `traefikNginxAnnotations`"
            ),
            "{error}"
        );
    }
}
