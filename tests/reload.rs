//! Certificate rotation and policy hot reload, with the atomic `..data`
//! symlink swap kubelet performs on Secret and ConfigMap volumes.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::http::post_review;
use common::tls::{client_builder, dev_bundle, serve_config};
use common::{bundled, eventually, fixture, in_namespace, install_crypto, repo};
use portcullis::webhook::certs::Bundle;
use portcullis::webhook::{self as server, AppState, webhook_router};
use reqwest::{Client, StatusCode};

/// A volume laid out like kubelet's: `..data` → a timestamped directory, and
/// each file a symlink through `..data`.
struct Volume {
    root: PathBuf,
    generation: u32,
}

impl Volume {
    fn new(name: &str, files: &[(&str, String)]) -> Volume {
        let root = std::env::temp_dir().join(format!("portcullis-volume-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let mut volume = Volume { root, generation: 0 };
        volume.swap(files);
        for (file, _) in files {
            std::os::unix::fs::symlink(Path::new("..data").join(file), volume.root.join(file)).unwrap();
        }
        volume
    }

    /// Writes a new generation and swaps `..data` to it atomically (rename of a symlink).
    fn swap(&mut self, files: &[(&str, String)]) {
        self.generation += 1;
        let generation = format!("..2026_11_22_{:02}", self.generation);
        std::fs::create_dir(self.root.join(&generation)).unwrap();
        for (file, contents) in files {
            std::fs::write(self.root.join(&generation).join(file), contents).unwrap();
        }
        let tmp = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(&generation, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
    }

    fn path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }
}

fn as_refs(files: &[(String, String)]) -> Vec<(&str, String)> {
    files.iter().map(|(name, text)| (name.as_str(), text.clone())).collect()
}

fn pair(bundle: &Bundle) -> Vec<(&'static str, String)> {
    vec![("tls.crt", bundle.cert_pem.clone()), ("tls.key", bundle.key_pem.clone())]
}

fn bundle() -> Bundle {
    dev_bundle(30)
}

fn client(ca: &Bundle) -> Client {
    client_builder(ca, false).pool_idle_timeout(Duration::from_secs(60)).build().unwrap()
}

async fn healthz(client: &Client, port: u16) -> Result<reqwest::Version, reqwest::Error> {
    let response = client.get(format!("https://127.0.0.1:{port}/healthz")).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(response.version())
}

/// Whether the request failed because the client rejected the server's certificate
/// (signed by another CA than the one it trusts).
fn untrusted(result: Result<reqwest::Version, reqwest::Error>) -> bool {
    let Err(err) = result else { return false };
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    while let Some(error) = source {
        if error.to_string().contains("invalid peer certificate") {
            return true;
        }
        source = error.source();
    }
    false
}

#[tokio::test]
async fn rotates_the_certificate_on_a_symlink_swap_without_dropping_connections() {
    install_crypto();
    let (first, second) = (bundle(), bundle());
    let mut volume = Volume::new("tls", &pair(&first));
    let state = AppState::new(bundled());
    let config = serve_config(volume.path("tls.crt"), volume.path("tls.key"));
    let running = server::start(&config, state.clone()).await.unwrap();
    let certificate = portcullis::reload::Certificate::new(
        config.tls_cert.clone(),
        config.tls_key.clone(),
        running.certificate.clone(),
        state.metrics().clone(),
    );
    let _reloader = portcullis::reload::spawn("certificate", Duration::from_millis(50), certificate);
    let port = running.webhook_addr.port();

    let open = client(&first);
    assert_eq!(healthz(&open, port).await.unwrap(), reqwest::Version::HTTP_2);

    volume.swap(&pair(&second));
    let trusts_second = client(&second);
    eventually("a new connection is served the new certificate", async || healthz(&trusts_second, port).await.is_ok())
        .await;
    assert!(untrusted(healthz(&client(&first), port).await), "a new connection still got the old certificate");
    assert_eq!(
        healthz(&open, port).await.unwrap(),
        reqwest::Version::HTTP_2,
        "the open HTTP/2 connection keeps working"
    );

    let metrics = state.metrics().encode();
    assert!(metrics.contains("portcullis_tls_reloads_total{result=\"success\"} 1\n"), "{metrics}");
    let expiry: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_tls_certificate_expiry_timestamp_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    let in_30_days = (time::OffsetDateTime::now_utc().unix_timestamp() + 30 * 86400) as f64;
    assert!((expiry - in_30_days).abs() < 300.0, "expiry {expiry}");

    // A broken pair (the key of another certificate) is refused; the last good one keeps serving.
    let third = bundle();
    volume.swap(&[("tls.crt", third.cert_pem.clone()), ("tls.key", second.key_pem.clone())]);
    eventually("the broken pair is counted as a failed reload", async || {
        state.metrics().encode().contains("portcullis_tls_reloads_total{result=\"failure\"} 1\n")
    })
    .await;
    assert!(healthz(&client(&second), port).await.is_ok(), "the last good certificate is still served");
    assert!(untrusted(healthz(&client(&third), port).await), "the broken pair was served");

    running.shutdown();
    running.wait().await.unwrap();
}

async fn nodeport_allowed(router: &axum::Router, namespace: &str) -> bool {
    let body = in_namespace(fixture("v1.32/service-create-nodeport.json"), namespace);
    post_review(router, "/validate", &body).await["response"]["allowed"].as_bool().unwrap()
}

#[tokio::test]
async fn reloads_changed_policies_and_keeps_the_last_good_set() {
    let dir = repo("policies");
    let mut files: Vec<(String, String)> = portcullis::policy::read_sources(&dir)
        .unwrap()
        .into_iter()
        .map(|(path, text)| (path.file_name().unwrap().to_str().unwrap().to_owned(), text))
        .collect();
    let mut volume = Volume::new("policies", &as_refs(&files));
    let sources = portcullis::policy::read_sources(&volume.root).unwrap();
    let state = AppState::new(portcullis::policy::load_sources(&sources).unwrap());
    let reloader = portcullis::reload::spawn(
        "policies",
        Duration::from_millis(50),
        portcullis::reload::Policies::new(
            volume.root.clone(),
            sources,
            state.policy_store().clone(),
            state.metrics().clone(),
        ),
    );
    let router = webhook_router(state.clone());
    assert!(nodeport_allowed(&router, "staging").await);

    let environments = files.iter_mut().find(|(name, _)| name == "environments.yaml").unwrap();
    environments.1 = environments.1.replace("namespaces: [production,", "namespaces: [staging, production,");
    assert!(environments.1.contains("staging"));
    volume.swap(&as_refs(&files));
    eventually("staging counts as production", async || !nodeport_allowed(&router, "staging").await).await;
    assert!(state.metrics().encode().contains("portcullis_policy_reloads_total{result=\"success\"} 1\n"));

    let broken = files.iter_mut().find(|(name, _)| name == "no-nodeport-in-production.yaml").unwrap();
    broken.1 = broken.1.replace("action: Deny", "action: Deny\n  severity: high");
    volume.swap(&as_refs(&files));
    eventually("the broken set is counted as a failed reload", async || {
        state.metrics().encode().contains("portcullis_policy_reloads_total{result=\"failure\"} 1\n")
    })
    .await;
    assert!(!nodeport_allowed(&router, "staging").await, "the last good set keeps serving");
    assert_eq!(state.policies().len(), bundled().len());
    reloader.abort();
}
