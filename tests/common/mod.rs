//! Helpers shared by the integration tests (the modules of
//! `tests/integration.rs`, which reach them as `crate::common`) and the e2e
//! harness (`tests/e2e/main.rs`, which uses a few), hence `dead_code` is
//! allowed here.
//!
//! - this file: the repository, the bundled policies, captured fixtures,
//!   AdmissionReview builders, the crypto provider and [`eventually`];
//! - [`http`]: the routers called in process (`tower::ServiceExt::oneshot`);
//! - [`tls`]: the real server over TLS on 127.0.0.1:0 and clients that trust it;
//! - [`manifests`]: `manifests/` rendered with kubectl or kustomize, read as
//!   k8s-openapi types;
//! - [`fake_api`]: a Kubernetes API server in process (discovery, list, watch,
//!   GET), for the cluster caches; [`logs`]: their log lines captured;
//! - [`schema`]: the JSON Schema check of the documented output schemas.
#![allow(dead_code)]

pub mod fake_api;
pub mod http;
pub mod logs;
pub mod manifests;
pub mod schema;
pub mod tls;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portcullis::engine::PolicySet;
use serde_json::{Value, json};

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The policies bundled in `policies/`.
pub fn bundled() -> PolicySet {
    portcullis::policy::load_dir(&repo("policies")).expect("bundled policies load")
}

/// A real AdmissionReview body captured from a kube-apiserver.
pub fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(repo("tests/fixtures").join(name)).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Moves a review (request, object and old object) into another namespace.
pub fn in_namespace(mut review: Value, namespace: &str) -> Value {
    review["request"]["namespace"] = json!(namespace);
    for key in ["object", "oldObject"] {
        if review["request"][key].is_object() {
            review["request"][key]["metadata"]["namespace"] = json!(namespace);
        }
    }
    review
}

/// A v1 AdmissionReview for an object.
pub fn review(operation: &str, namespace: &str, object: Value, old_object: Option<Value>) -> Value {
    let kind = object["kind"].as_str().unwrap_or("Service").to_owned();
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let resource = portcullis::engine::Kind::of(group, &kind).resource();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "11111111-2222-3333-4444-555555555555",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["developers", "system:authenticated"]},
            "object": if operation == "DELETE" { Value::Null } else { object.clone() },
            "oldObject": old_object.unwrap_or(Value::Null),
            "dryRun": false,
        }
    })
}

/// Installs the one rustls crypto provider (ring); fine to call from every test.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Polls `condition` every 25 ms until it holds; fails the test after 10 s.
pub async fn eventually(what: &str, condition: impl AsyncFnMut() -> bool) {
    eventually_within(what, Duration::from_secs(10), condition).await
}

/// Polls `condition` every 25 ms until it holds; fails the test after `timeout`.
pub async fn eventually_within(what: &str, timeout: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < timeout, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
