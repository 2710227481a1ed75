//! The server over real TLS on 127.0.0.1:0, with HTTP/2 and HTTP/1.1 clients,
//! and its graceful shutdown.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{bundled, fixture, in_namespace, install_crypto};
use portcullis::webhook::{self as server, AppState, Running, ServeConfig};
use reqwest::{Certificate, Client, StatusCode, Version};
use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Development certificates for 127.0.0.1 and localhost in a fresh directory.
fn certificates(name: &str) -> (PathBuf, Certificate) {
    let dir = temp_dir(name);
    let bundle =
        portcullis::webhook::certs::generate(&["localhost".into()], &["127.0.0.1".parse().unwrap()], 7).unwrap();
    portcullis::webhook::certs::write(&dir, &bundle).unwrap();
    (dir, Certificate::from_pem(bundle.ca_pem.as_bytes()).unwrap())
}

async fn start(name: &str, shutdown_delay: Duration) -> (Running, Certificate) {
    install_crypto();
    let (dir, ca) = certificates(name);
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert: dir.join("tls.crt"),
        tls_key: dir.join("tls.key"),
        shutdown_delay,
        drain_timeout: Duration::from_secs(5),
    };
    (server::start(&config, AppState::new(bundled())).await.unwrap(), ca)
}

fn client(ca: &Certificate, http1: bool) -> Client {
    let builder = Client::builder().tls_certs_only([ca.clone()]).no_proxy();
    let builder = if http1 { builder.http1_only() } else { builder };
    builder.build().unwrap()
}

async fn denial_over(client: &Client, running: &Running) -> (Version, Value) {
    let body = in_namespace(fixture("v1.32/service-create-nodeport.json"), "production");
    let response = client
        .post(format!("https://127.0.0.1:{}/validate?timeout=5s", running.webhook_addr.port()))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    (response.version(), response.json().await.unwrap())
}

#[tokio::test]
async fn serves_reviews_over_tls_with_http2_and_http1() {
    let (running, ca) = start("h2-h1", Duration::ZERO).await;
    for (http1, version) in [(false, Version::HTTP_2), (true, Version::HTTP_11)] {
        let client = client(&ca, http1);
        let (negotiated, out) = denial_over(&client, &running).await;
        assert_eq!(negotiated, version);
        assert_eq!(out["response"]["uid"], "972db847-ba69-426c-bebd-ef8cb3d479d9");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 403);
        assert_eq!(out["response"]["status"]["reason"], "Forbidden");
        // Keep-alive: a second review on the same client.
        let (again, _) = denial_over(&client, &running).await;
        assert_eq!(again, version);
    }

    let admin = Client::builder().no_proxy().build().unwrap();
    let metrics =
        admin.get(format!("http://{}/metrics", running.admin_addr)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(
        r#"portcullis_admission_rejections_total{policy="no-nodeport-in-production",kind="Service",operation="CREATE",namespace="production",dry_run="false"} 4"#
    ), "{metrics}");
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test]
async fn shuts_down_gracefully_unready_first() {
    let (running, ca) = start("shutdown", Duration::from_millis(400)).await;
    let admin = Client::builder().no_proxy().build().unwrap();
    let readyz = format!("http://{}/readyz", running.admin_addr);
    assert_eq!(admin.get(&readyz).send().await.unwrap().status(), StatusCode::OK);

    running.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // During the delay: unready, yet still answering reviews.
    assert_eq!(admin.get(&readyz).send().await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    let (_, out) = denial_over(&client(&ca, false), &running).await;
    assert_eq!(out["response"]["allowed"], false);

    let addr = running.webhook_addr;
    tokio::time::timeout(Duration::from_secs(10), running.wait()).await.expect("stops in time").unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "webhook port closed after shutdown");
}

#[tokio::test]
async fn refuses_to_start_with_a_missing_certificate() {
    install_crypto();
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert: "/nonexistent/tls.crt".into(),
        tls_key: "/nonexistent/tls.key".into(),
        shutdown_delay: Duration::ZERO,
        drain_timeout: Duration::from_secs(1),
    };
    let err = server::start(&config, AppState::new(bundled())).await.err().expect("start fails");
    assert_eq!(err.to_string(), "cannot read /nonexistent/tls.crt: No such file or directory (os error 2)");
}
