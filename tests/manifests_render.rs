//! What each directory of `manifests/` renders to (with `kubectl kustomize` or
//! `kustomize build`): the install's first step everything but the webhook
//! configurations, its second step exactly those, each object fitting its
//! Kubernetes schema; and that without kubectl or kustomize the manifest tests
//! fail, saying how to install one.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::manifests::{
    CA_FILE, INSTALL_KUSTOMIZE, Manifests, NAMESPACE, assert_schemas, base, id, kustomize_in, repo_copy,
    try_render_text_at, webhook_kinds_in, webhooks, without_cert_manager_webhooks,
};
use k8s_openapi::api::core::v1::Namespace;

#[test]
fn base_installs_everything_but_the_webhook_configurations() {
    let manifests = base();
    assert_eq!(webhook_kinds_in(&manifests), Vec::<String>::new());
    assert_eq!(
        manifests.identities(),
        vec![
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

#[test]
fn without_cert_manager_base_installs_the_base_less_cert_manager() {
    let manifests = Manifests::render("manifests/without-cert-manager/base");
    assert_eq!(webhook_kinds_in(&manifests), Vec::<String>::new());
    assert_eq!(
        manifests.identities(),
        vec![
            id("apps/v1", "Deployment", NAMESPACE, "portcullis"),
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
}

fn the_two_webhook_configurations() -> Vec<(String, String, String, String)> {
    vec![
        id("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "", "portcullis"),
        id("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "", "portcullis"),
    ]
}

#[test]
fn webhooks_install_exactly_the_two_webhook_configurations() {
    let manifests = webhooks();
    assert_eq!(manifests.identities(), the_two_webhook_configurations());
    assert_schemas(&manifests);
}

#[test]
fn without_cert_manager_webhooks_install_exactly_the_two_webhook_configurations() {
    let bundle =
        portcullis::webhook::certs::generate(&["portcullis.portcullis-system.svc".to_owned()], &[], 365).unwrap();
    let manifests = without_cert_manager_webhooks("render-webhooks", &bundle.ca_pem);
    // The Secret that carries ca.crt into the caBundles is kustomize's alone.
    assert_eq!(manifests.identities(), the_two_webhook_configurations());
    assert_schemas(&manifests);
}

#[test]
fn without_cert_manager_webhooks_do_not_render_without_ca_crt() {
    let root = repo_copy("render-no-ca");
    assert!(!root.join(CA_FILE).exists());
    let error = try_render_text_at(&root.join("manifests/without-cert-manager/webhooks"))
        .expect_err("no webhook configurations without the CA");
    let missing = root.join(CA_FILE);
    assert!(error.contains(&format!("lstat {}: no such file or directory", missing.display())), "{error}");
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
        ["Install kubectl 1.27 or newer", "or kustomize v5 or newer", "https://kubernetes.io/docs/tasks/tools/"]
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
