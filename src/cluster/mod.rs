//! What portcullis reads from the API server: the labels of namespaces, which
//! decide the environments a namespace belongs to, the controller of each
//! IngressClass, which decides the Ingress controller family of an Ingress,
//! and the Gateways, ListenerSets and route-targeting policies that routes
//! attach to and are authenticated by. With the background audit on, it also
//! watches Services and Ingresses ([`objects`]) and judges them every interval
//! ([`audit`]), writing OpenReports ([`audit::reports`]) when asked to.

pub mod audit;
pub mod gateways;
pub mod ingress_classes;
pub mod namespaces;
pub mod objects;
pub mod watch;

use std::path::Path;
use std::sync::Arc;

pub use gateways::GatewayCache;
pub use ingress_classes::IngressClassCache;
pub use namespaces::{Labels, Lookup, NamespaceCache};

/// The caches the webhook reads; each `None` without a cluster.
#[derive(Clone, Default)]
pub struct Caches {
    pub namespaces: Option<Arc<NamespaceCache>>,
    pub ingress_classes: Option<Arc<IngressClassCache>>,
    pub gateways: Option<Arc<GatewayCache>>,
}

/// The configuration to reach the API server: from `kubeconfig`, else
/// in-cluster, else the usual kubeconfig locations (`KUBECONFIG`, `~/.kube/config`).
pub async fn config(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Config> {
    Ok(match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await?,
    })
}

/// A client for the API server, configured by [`config`], for the caches of
/// `serve`: each connection attempt (TCP and TLS) is bounded by
/// [`watch::CONNECT_TIMEOUT`] instead of kube's 30 s.
pub async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let mut config = config(kubeconfig).await?;
    config.connect_timeout = Some(watch::CONNECT_TIMEOUT);
    Ok(kube::Client::try_from(config)?)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::Namespace;
    use kube::Api;

    use super::*;

    /// An API server that takes the connection but never answers the TLS
    /// handshake, as one whose packets are dropped never answers the SYN:
    /// the attempt fails after [`watch::CONNECT_TIMEOUT`], not kube's 30 s.
    #[tokio::test]
    async fn a_connection_that_is_never_answered_fails_within_the_connect_timeout() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Bound but never accepted: the kernel completes the TCP handshake, nobody speaks TLS.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let path = std::env::temp_dir().join(format!("portcullis-connect-timeout-{}.kubeconfig", std::process::id()));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n  - name: c\n    cluster:\n      server: \
                 https://127.0.0.1:{port}\n      insecure-skip-tls-verify: true\nusers:\n  - name: u\n    user:\n      \
                 token: t\ncontexts:\n  - name: c\n    context: {{cluster: c, user: u}}\ncurrent-context: c\n"
            ),
        )
        .unwrap();
        let client = client(Some(&path)).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        let started = Instant::now();
        let api = Api::<Namespace>::all(client);
        let params = Default::default();
        let result = tokio::time::timeout(Duration::from_secs(20), api.list(&params)).await;
        let took = started.elapsed();
        assert!(matches!(result, Ok(Err(_))), "the list fails rather than hangs: {result:?}");
        assert!(
            took >= watch::CONNECT_TIMEOUT && took < watch::CONNECT_TIMEOUT + Duration::from_secs(3),
            "failed after {took:?}"
        );
        drop(silent);
    }
}
