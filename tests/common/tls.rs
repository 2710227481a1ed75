//! The real server over TLS on 127.0.0.1:0, with development certificates, and
//! clients that trust their CA.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portcullis::webhook::certs::Bundle;
use portcullis::webhook::{AppState, Running, ServeConfig};
use reqwest::{Client, ClientBuilder, StatusCode};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

use super::install_crypto;

/// A fresh development CA and serving certificate for `localhost` and
/// 127.0.0.1, valid `days`.
pub fn dev_bundle(days: i64) -> Bundle {
    portcullis::webhook::certs::generate(&["localhost".into()], &["127.0.0.1".parse().unwrap()], days).unwrap()
}

/// A directory of its own under the system temp dir for this test process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Serving on 127.0.0.1:0 (webhook and admin) with this key pair; no shutdown
/// delay and a 2 s drain, which a test overrides with `..serve_config(…)`.
pub fn serve_config(tls_cert: PathBuf, tls_key: PathBuf) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert,
        tls_key,
        shutdown_delay: Duration::ZERO,
        drain_timeout: Duration::from_secs(2),
    }
}

/// A running server and the certificates it serves.
pub struct DevServer {
    pub running: Running,
    pub bundle: Bundle,
}

/// Starts the server for `state` with a development certificate (valid 7 days)
/// written to `temp_dir(name)`.
pub async fn dev_server(
    name: &str,
    state: Arc<AppState>,
    shutdown_delay: Duration,
    drain_timeout: Duration,
) -> DevServer {
    install_crypto();
    let dir = temp_dir(name);
    let bundle = dev_bundle(7);
    portcullis::webhook::certs::write(&dir, &bundle).unwrap();
    let config =
        ServeConfig { shutdown_delay, drain_timeout, ..serve_config(dir.join("tls.crt"), dir.join("tls.key")) };
    DevServer { running: portcullis::webhook::start(&config, state).await.unwrap(), bundle }
}

impl DevServer {
    /// `https://127.0.0.1:<webhook port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.running.webhook_addr.port())
    }

    /// `http://<admin address><path>` (the admin port is plain HTTP).
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.admin_addr)
    }

    /// A client that trusts this server's CA, over HTTP/2 or HTTP/1.1 only.
    pub fn client(&self, http1: bool) -> Client {
        client(&self.bundle, http1)
    }

    /// A raw TLS stream (ALPN http/1.1), for clients that misbehave below HTTP.
    pub async fn raw(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(self.bundle.ca_pem.as_bytes()).unwrap();
        roots.add(ca).unwrap();
        let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(self.running.webhook_addr).await.unwrap();
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
    }
}

/// A client builder that trusts only the CA of `bundle`, bypasses proxies and
/// speaks HTTP/1.1 only when `http1` (otherwise HTTP/2, negotiated by ALPN).
pub fn client_builder(bundle: &Bundle, http1: bool) -> ClientBuilder {
    let ca = reqwest::Certificate::from_pem(bundle.ca_pem.as_bytes()).unwrap();
    let builder = Client::builder().tls_certs_only([ca]).no_proxy();
    if http1 { builder.http1_only() } else { builder }
}

/// [`client_builder`], built.
pub fn client(bundle: &Bundle, http1: bool) -> Client {
    client_builder(bundle, http1).build().unwrap()
}

/// A plain-HTTP client for the admin port.
pub fn admin_client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

/// POSTs an AdmissionReview as JSON to `url`; the response, whatever its status.
pub async fn post_review(client: &Client, url: &str, review: &Value) -> reqwest::Response {
    client
        .post(url)
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(review).unwrap())
        .send()
        .await
        .unwrap()
}

/// POSTs `body` to `url`, with a Content-Type header when one is given; the
/// status and the body as text.
pub async fn post(client: &Client, url: &str, content_type: Option<&str>, body: Vec<u8>) -> (StatusCode, String) {
    let mut request = client.post(url).body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}
