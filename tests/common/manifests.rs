//! The installation manifests (`manifests/`), rendered with `kubectl kustomize`
//! or `kustomize build` and read as k8s-openapi types.
//!
//! The install is two steps: `manifests/base` (everything but the webhook
//! configurations) and, once the Deployment is ready, `manifests/webhooks`; the
//! same two under `manifests/without-cert-manager/`, whose webhooks read the CA
//! from a `ca.crt` the user copies in (so they render only in a copy, see
//! [`repo_copy`]).
//!
//! Rendering needs `kubectl` 1.27 or newer (its built-in kustomize) or
//! `kustomize` v5 or newer; without either, every test that renders fails and
//! says how to install one.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, ValidatingWebhook, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use portcullis::cli::{Cli, Command as CliCommand, ServeArgs};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::repo;

pub const NAMESPACE: &str = "portcullis-system";
pub const INJECT_CA_FROM: &str = "cert-manager.io/inject-ca-from";
/// The kinds only the second step (`manifests/webhooks`) installs.
pub const WEBHOOK_KINDS: [&str; 2] = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];
/// The CA the user copies in for `manifests/without-cert-manager/webhooks`
/// (ignored by git, never tracked).
pub const CA_FILE: &str = "manifests/without-cert-manager/webhooks/ca.crt";

// ---------------------------------------------------------------------------
// Rendering

/// Where kubectl is found when it is not on the PATH (the machine image's).
pub const FALLBACK_KUBECTL: &str = "/usr/bin/kubectl";

/// What to do when neither kubectl nor kustomize is installed.
pub const INSTALL_KUSTOMIZE: &str = "the manifest tests render manifests/ with `kubectl kustomize` or \
     `kustomize build`, but neither kubectl nor kustomize is on the PATH (nor at /usr/bin/kubectl). Install \
     kubectl 1.27 or newer (https://kubernetes.io/docs/tasks/tools/) or kustomize v5 or newer \
     (https://kubectl.docs.kubernetes.io/installation/kustomize/) and run the tests again. Debian's \
     kubernetes-client package is kubectl 1.20, whose kustomize (v2.0.3) cannot render manifests/.";

/// `kubectl kustomize` when kubectl is in a directory of `path` (a PATH value)
/// or at `fallback_kubectl`, else `kustomize build` when kustomize is in
/// `path`, else the error [`INSTALL_KUSTOMIZE`].
pub fn kustomize_in(path: Option<&OsStr>, fallback_kubectl: &Path) -> Result<Command, String> {
    let on_path = |name: &str| {
        path.into_iter()
            .flat_map(|path| std::env::split_paths(path).collect::<Vec<_>>())
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    };
    if let Some(kubectl) = on_path("kubectl").or_else(|| Some(fallback_kubectl.to_owned()).filter(|p| p.is_file())) {
        let mut command = Command::new(kubectl);
        command.arg("kustomize");
        return Ok(command);
    }
    let kustomize = on_path("kustomize").ok_or_else(|| INSTALL_KUSTOMIZE.to_owned())?;
    let mut command = Command::new(kustomize);
    command.arg("build");
    Ok(command)
}

/// `kubectl kustomize` (or `kustomize build`); fails the test when neither is installed.
pub fn kustomize() -> Command {
    let path = std::env::var_os("PATH");
    kustomize_in(path.as_deref(), Path::new(FALLBACK_KUBECTL)).unwrap_or_else(|message| panic!("{message}"))
}

/// The multi-document YAML that `dir` (of the repository) renders to.
pub fn render_text(dir: &str) -> String {
    render_text_at(&repo(dir))
}

/// The multi-document YAML that the directory `dir` renders to.
pub fn render_text_at(dir: &Path) -> String {
    try_render_text_at(dir).unwrap_or_else(|error| panic!("{error}"))
}

/// What the directory `dir` renders to, or the error naming the command and
/// what kustomize printed on stderr.
pub fn try_render_text_at(dir: &Path) -> Result<String, String> {
    let mut command = kustomize();
    let output = command.arg(dir).output().unwrap_or_else(|e| panic!("{command:?} cannot run: {e}"));
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed (kubectl 1.27 or newer, or kustomize v5 or newer, is needed): {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8(output.stdout).expect("kustomize prints UTF-8"))
}

/// A copy of what the kustomizations read (`manifests/` and `policies/`, without
/// a [`CA_FILE`] someone copied into the work tree) under a temp dir of its own:
/// a root to follow the README's steps in without touching the repository.
pub fn repo_copy(name: &str) -> PathBuf {
    let root = super::tls::temp_dir(&format!("repo-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["manifests", "policies"] {
        for file in files_under(&repo(dir)) {
            let relative = Path::new(dir).join(&file);
            if relative == Path::new(CA_FILE) {
                continue;
            }
            let target = root.join(&relative);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(repo(dir).join(&file), target).unwrap();
        }
    }
    root
}

/// Every file under `dir`, relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in std::fs::read_dir(dir.join(&relative)).unwrap() {
            let entry = entry.unwrap();
            let path = relative.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() { pending.push(path) } else { files.push(path) }
        }
    }
    files.sort();
    files
}

/// `manifests/without-cert-manager/webhooks` rendered in a copy of the
/// repository whose `ca.crt` is `ca_pem`, with the caBundles as the API server
/// reads them (see [`unwrap_ca_bundles`]).
pub fn without_cert_manager_webhooks(name: &str, ca_pem: &str) -> Manifests {
    let root = repo_copy(name);
    std::fs::write(root.join(CA_FILE), ca_pem).unwrap();
    let mut manifests = Manifests::parse(&render_text_at(&root.join("manifests/without-cert-manager/webhooks")));
    unwrap_ca_bundles(&mut manifests);
    manifests
}

/// kustomize breaks the base64 of a generated Secret into lines of 70
/// characters, and the replacements copy it so into the caBundles. The API
/// server's decoder (Go's encoding/base64, behind encoding/json) skips `\r` and
/// `\n`; k8s-openapi's does not. This joins the lines, after checking that line
/// breaks are all there is besides the base64.
pub fn unwrap_ca_bundles(manifests: &mut Manifests) {
    for doc in manifests.0.iter_mut().filter(|doc| WEBHOOK_KINDS.contains(&doc["kind"].as_str().unwrap_or_default())) {
        for webhook in doc["webhooks"].as_array_mut().expect("webhooks") {
            let bundle = &mut webhook["clientConfig"]["caBundle"];
            let Some(text) = bundle.as_str() else { continue };
            assert!(
                text.chars().all(|c| c.is_ascii_alphanumeric() || "+/=\n".contains(c)),
                "caBundle holds more than base64 and line breaks: {text:?}"
            );
            *bundle = Value::String(text.replace('\n', ""));
        }
    }
}

/// Rendered documents, looked up by kind and name.
#[derive(Debug)]
pub struct Manifests(pub Vec<Value>);

impl Manifests {
    pub fn parse(text: &str) -> Manifests {
        let docs: Vec<Value> = serde_saphyr::from_str_multiple::<Value, Vec<_>>(text).expect("rendered YAML parses");
        Manifests(docs.into_iter().filter(|doc| !doc.is_null()).collect())
    }

    pub fn render(dir: &str) -> Manifests {
        Manifests::parse(&render_text(dir))
    }

    /// The one document of this kind and name.
    pub fn value(&self, kind: &str, name: &str) -> &Value {
        let found: Vec<&Value> =
            self.0.iter().filter(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name).collect();
        assert_eq!(found.len(), 1, "exactly one {kind} {name}");
        found[0]
    }

    /// The one document of this kind and name, as its k8s-openapi type.
    pub fn get<T: DeserializeOwned>(&self, kind: &str, name: &str) -> T {
        serde_json::from_value(self.value(kind, name).clone())
            .unwrap_or_else(|e| panic!("{kind} {name} does not fit its schema: {e}"))
    }

    /// `(apiVersion, kind, namespace, name)` of every document, sorted.
    pub fn identities(&self) -> Vec<(String, String, String, String)> {
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        let mut ids: Vec<_> = self
            .0
            .iter()
            .map(|doc| {
                (
                    text(&doc["apiVersion"]),
                    text(&doc["kind"]),
                    text(&doc["metadata"]["namespace"]),
                    text(&doc["metadata"]["name"]),
                )
            })
            .collect();
        ids.sort();
        ids
    }
}

pub fn id(api_version: &str, kind: &str, namespace: &str, name: &str) -> (String, String, String, String) {
    (api_version.into(), kind.into(), namespace.into(), name.into())
}

/// Deserializes `doc` as `T` and serializes it back: equal only when every field
/// is known to the Kubernetes schema and has the right type.
pub fn round_trips<T: DeserializeOwned + serde::Serialize>(doc: &Value) {
    let name = &doc["metadata"]["name"];
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} {name} does not fit its schema: {e}", doc["kind"]));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, doc, "{} {name} has fields its schema does not know", doc["kind"]);
}

/// Every built-in kind in `manifests` fits its k8s-openapi type exactly.
pub fn assert_schemas(manifests: &Manifests) {
    for doc in &manifests.0 {
        match doc["kind"].as_str().unwrap() {
            "Namespace" => round_trips::<Namespace>(doc),
            "ServiceAccount" => round_trips::<ServiceAccount>(doc),
            "ClusterRole" => round_trips::<ClusterRole>(doc),
            "ClusterRoleBinding" => round_trips::<ClusterRoleBinding>(doc),
            "ConfigMap" => round_trips::<ConfigMap>(doc),
            "Service" => round_trips::<Service>(doc),
            "Deployment" => round_trips::<Deployment>(doc),
            "PodDisruptionBudget" => round_trips::<PodDisruptionBudget>(doc),
            "ValidatingWebhookConfiguration" => round_trips::<ValidatingWebhookConfiguration>(doc),
            "MutatingWebhookConfiguration" => round_trips::<MutatingWebhookConfiguration>(doc),
            "Certificate" | "Issuer" | "ServiceMonitor" | "PrometheusRule" => {}
            other => panic!("unexpected kind {other}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Pieces of the base

/// `manifests/base` rendered: the install's first step, with cert-manager.
pub fn base() -> Manifests {
    Manifests::render("manifests/base")
}

/// `manifests/webhooks` rendered: the install's second step, with cert-manager.
pub fn webhooks() -> Manifests {
    Manifests::render("manifests/webhooks")
}

/// The kinds of `manifests` that only the second step may install.
pub fn webhook_kinds_in(manifests: &Manifests) -> Vec<String> {
    manifests
        .0
        .iter()
        .map(|doc| doc["kind"].as_str().unwrap_or_default().to_owned())
        .filter(|kind| kind.ends_with("WebhookConfiguration"))
        .collect()
}

pub fn validating(manifests: &Manifests) -> ValidatingWebhook {
    let config: ValidatingWebhookConfiguration = manifests.get("ValidatingWebhookConfiguration", "portcullis");
    let [webhook] = <[ValidatingWebhook; 1]>::try_from(config.webhooks.unwrap()).expect("one validating webhook");
    webhook
}

pub fn mutating(manifests: &Manifests) -> MutatingWebhook {
    let config: MutatingWebhookConfiguration = manifests.get("MutatingWebhookConfiguration", "portcullis");
    let [webhook] = <[MutatingWebhook; 1]>::try_from(config.webhooks.unwrap()).expect("one mutating webhook");
    webhook
}

pub fn pod_spec(manifests: &Manifests) -> PodSpec {
    let deployment: Deployment = manifests.get("Deployment", "portcullis");
    deployment.spec.template.spec.unwrap()
}

pub fn container(manifests: &Manifests) -> Container {
    let [container] = <[Container; 1]>::try_from(pod_spec(manifests).containers).expect("one container");
    container
}

pub fn pod_labels(manifests: &Manifests) -> BTreeMap<String, String> {
    let deployment: Deployment = manifests.get("Deployment", "portcullis");
    deployment.spec.template.metadata.unwrap().labels.unwrap()
}

/// The container's arguments, parsed by portcullis' own command line.
pub fn serve_args(args: &[String]) -> ServeArgs {
    let cli = Cli::try_parse_from(std::iter::once("portcullis".to_owned()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| panic!("portcullis rejects the arguments {args:?}: {e}"));
    match cli.command {
        CliCommand::Serve(serve) => serve,
        other => panic!("expected serve, got {other:?}"),
    }
}

pub fn container_args(manifests: &Manifests) -> ServeArgs {
    serve_args(&container(manifests).args.expect("container args"))
}

/// The number of the container port named `name`.
pub fn container_port(container: &Container, name: &str) -> i32 {
    let ports = container.ports.as_ref().expect("container ports");
    let found: Vec<i32> =
        ports.iter().filter(|port| port.name.as_deref() == Some(name)).map(|port| port.container_port).collect();
    assert_eq!(found.len(), 1, "one container port named {name}");
    found[0]
}

/// Kubernetes label selector semantics, as kube-core implements them.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let selector = kube::core::Selector::try_from(selector.clone()).expect("a valid label selector");
    kube::core::SelectorExt::matches(&selector, labels)
}

/// The labels the API server gives a namespace, plus `extra`.
pub fn namespace_labels(name: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), name.to_owned())]);
    labels.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    labels
}

pub fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}
