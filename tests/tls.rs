//! The server over real TLS on 127.0.0.1:0, with HTTP/2 and HTTP/1.1 clients,
//! and its graceful shutdown.

use crate::common;

use std::time::Duration;

use common::tls::{DevServer, admin_client, dev_server, post_review, serve_config};
use common::{bundled, fixture, in_namespace, install_crypto};
use portcullis::webhook::{self as server, AppState, ServeConfig};
use reqwest::{Client, StatusCode, Version};
use serde_json::Value;

async fn start(name: &str, shutdown_delay: Duration) -> DevServer {
    dev_server(name, AppState::new(bundled()), shutdown_delay, Duration::from_secs(5)).await
}

async fn denial_over(client: &Client, server: &DevServer) -> (Version, Value) {
    let body = in_namespace(fixture("v1.32/service-create-nodeport.json"), "production");
    let response = post_review(client, &server.url("/validate?timeout=5s"), &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    (response.version(), response.json().await.unwrap())
}

#[tokio::test]
async fn serves_reviews_over_tls_with_http2_and_http1() {
    let server = start("h2-h1", Duration::ZERO).await;
    for (http1, version) in [(false, Version::HTTP_2), (true, Version::HTTP_11)] {
        let client = server.client(http1);
        let (negotiated, out) = denial_over(&client, &server).await;
        assert_eq!(negotiated, version);
        assert_eq!(out["response"]["uid"], "972db847-ba69-426c-bebd-ef8cb3d479d9");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 403);
        assert_eq!(out["response"]["status"]["reason"], "Forbidden");
        // Keep-alive: a second review on the same client.
        let (again, _) = denial_over(&client, &server).await;
        assert_eq!(again, version);
    }

    let metrics = admin_client().get(server.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(
        r#"portcullis_admission_rejections_total{policy="no-nodeport-in-production",kind="Service",operation="CREATE",namespace="production",dry_run="false"} 4"#
    ), "{metrics}");
    server.running.shutdown();
    server.running.wait().await.unwrap();
}

#[tokio::test]
async fn shuts_down_gracefully_unready_first() {
    let server = start("shutdown", Duration::from_millis(400)).await;
    let admin = admin_client();
    let readyz = server.admin_url("/readyz");
    assert_eq!(admin.get(&readyz).send().await.unwrap().status(), StatusCode::OK);

    server.running.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // During the delay: unready, yet still answering reviews.
    assert_eq!(admin.get(&readyz).send().await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    let (_, out) = denial_over(&server.client(false), &server).await;
    assert_eq!(out["response"]["allowed"], false);

    let addr = server.running.webhook_addr;
    tokio::time::timeout(Duration::from_secs(10), server.running.wait()).await.expect("stops in time").unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "webhook port closed after shutdown");
}

#[tokio::test]
async fn refuses_to_start_with_a_missing_certificate() {
    install_crypto();
    let config = ServeConfig {
        drain_timeout: Duration::from_secs(1),
        ..serve_config("/nonexistent/tls.crt".into(), "/nonexistent/tls.key".into())
    };
    let err = server::start(&config, AppState::new(bundled())).await.err().expect("start fails");
    assert_eq!(err.to_string(), "cannot read /nonexistent/tls.crt: No such file or directory (os error 2)");
}
