//! What `manifests/` renders to (with `kubectl kustomize` or `kustomize build`):
//! exactly these objects, each fitting its Kubernetes schema; and that without
//! kubectl or kustomize the manifest tests fail, saying how to install one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::manifests::{INSTALL_KUSTOMIZE, NAMESPACE, assert_schemas, base, id, kustomize_in};
use k8s_openapi::api::core::v1::Namespace;

#[test]
fn base_installs_exactly_these_objects_each_fitting_its_schema() {
    let manifests = base();
    assert_eq!(
        manifests.identities(),
        vec![
            id("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "", "portcullis"),
            id("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "", "portcullis"),
            id("apps/v1", "Deployment", NAMESPACE, "portcullis"),
            id("cert-manager.io/v1", "Certificate", NAMESPACE, "portcullis"),
            id("cert-manager.io/v1", "Certificate", NAMESPACE, "portcullis-ca"),
            id("cert-manager.io/v1", "Issuer", NAMESPACE, "portcullis-ca"),
            id("cert-manager.io/v1", "Issuer", NAMESPACE, "portcullis-selfsigned"),
            id("policy/v1", "PodDisruptionBudget", NAMESPACE, "portcullis"),
            id("rbac.authorization.k8s.io/v1", "ClusterRole", "", "portcullis"),
            id("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "portcullis"),
            id("v1", "ConfigMap", NAMESPACE, "portcullis-policies"),
            id("v1", "Namespace", "", NAMESPACE),
            id("v1", "Service", NAMESPACE, "portcullis"),
            id("v1", "ServiceAccount", NAMESPACE, "portcullis"),
        ]
    );
    assert_schemas(&manifests);
    // Not labelled for opt-out: the webhooks exclude it by name.
    let namespace: Namespace = manifests.get("Namespace", NAMESPACE);
    let labels = namespace.metadata.labels.unwrap();
    assert_eq!(labels.get("portcullis.dev/webhook"), None);
    assert_eq!(labels.get("pod-security.kubernetes.io/enforce").map(String::as_str), Some("restricted"));
}

/// A fresh directory holding an empty file for each of `tools`, as a PATH entry.
fn fake_tools(name: &str, tools: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for tool in tools {
        std::fs::write(dir.join(tool), "").unwrap();
    }
    dir
}

fn program_and_args(command: &Command) -> (PathBuf, Vec<String>) {
    let args = command.get_args().map(|arg| arg.to_str().unwrap().to_owned()).collect();
    (PathBuf::from(command.get_program()), args)
}

#[test]
fn without_kubectl_or_kustomize_rendering_fails_saying_how_to_install_one() {
    let empty = fake_tools("no-tools", &[]);
    let no_fallback = Path::new("/nonexistent/kubectl");
    for path in [Some(empty.as_os_str()), None] {
        let error = kustomize_in(path, no_fallback).expect_err("no kubectl or kustomize is an error, not a skip");
        assert_eq!(error, INSTALL_KUSTOMIZE);
    }
    for advice in
        ["Install kubectl 1.21 or newer", "or kustomize v4 or newer", "https://kubernetes.io/docs/tasks/tools/"]
    {
        assert!(INSTALL_KUSTOMIZE.contains(advice), "{INSTALL_KUSTOMIZE}");
    }
}

#[test]
fn renders_with_kubectl_kustomize_else_kustomize_build() {
    let both = fake_tools("both-tools", &["kubectl", "kustomize"]);
    let only_kustomize = fake_tools("only-kustomize", &["kustomize"]);
    let fallback = fake_tools("fallback-kubectl", &["kubectl"]).join("kubectl");
    let no_fallback = Path::new("/nonexistent/kubectl");
    let found =
        |path: &Path, fallback: &Path| program_and_args(&kustomize_in(Some(path.as_os_str()), fallback).unwrap());

    assert_eq!(found(&both, no_fallback), (both.join("kubectl"), vec!["kustomize".to_owned()]));
    assert_eq!(found(&only_kustomize, no_fallback), (only_kustomize.join("kustomize"), vec!["build".to_owned()]));
    // kubectl outside the PATH (the machine image's /usr/bin/kubectl) comes before kustomize.
    assert_eq!(found(&only_kustomize, &fallback), (fallback.clone(), vec!["kustomize".to_owned()]));
}
