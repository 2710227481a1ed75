//! Namespace labels from the API server: a kube-runtime reflector watches
//! Namespaces into an in-memory store, and each review reads its namespace's
//! labels from it. A namespace missing from the store (just created) is
//! fetched with one bounded GET; if that fails too, the review is judged with
//! unknown labels (fail safe, see [`NamespaceLabels::Unknown`]). Losing the API
//! server never stops reviews: the last snapshot keeps serving, and the
//! `portcullis_namespace_cache_stale` gauge and a log line say so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tracing::{info, warn};

use crate::engine::NamespaceLabels;
use crate::metrics::Metrics;

/// The longest a review waits for the API server when its namespace is not cached.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);

/// A watched cache of the cluster's namespaces.
pub struct NamespaceCache {
    store: Store<Namespace>,
    api: Api<Namespace>,
    synced: AtomicBool,
}

/// The labels found for one namespace, owned so that a review can borrow them.
pub enum Lookup {
    Found(Arc<Namespace>),
    /// Neither the cache nor the API server knows it (or the server did not answer).
    Unknown,
}

impl Lookup {
    pub fn labels(&self) -> NamespaceLabels<'_> {
        match self {
            Lookup::Found(namespace) => namespace.metadata.labels.as_ref().into(),
            Lookup::Unknown => NamespaceLabels::Unknown,
        }
    }
}

impl NamespaceCache {
    /// Starts watching namespaces. The returned task runs until the process
    /// ends; it retries with backoff when the API server is away.
    pub fn start(client: Client, metrics: Arc<Metrics>) -> (Arc<NamespaceCache>, tokio::task::JoinHandle<()>) {
        let api: Api<Namespace> = Api::all(client);
        let (store, writer) = reflector::store();
        let cache = Arc::new(NamespaceCache { store, api: api.clone(), synced: AtomicBool::new(false) });
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut stale = false;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(_) => {
                        if stale {
                            info!("namespace watch recovered");
                        }
                        stale = false;
                    }
                    Err(error) => {
                        if !stale {
                            warn!(%error, "namespace watch failed; serving the last snapshot until it recovers");
                        }
                        stale = true;
                    }
                }
                metrics.namespace_cache_stale(stale);
            }
            // The watcher stream never ends on its own; if it does, say so loudly.
            metrics.namespace_cache_stale(true);
            warn!("namespace watch ended; serving the last snapshot");
        });
        let ready_cache = cache.clone();
        tokio::spawn(async move {
            if ready_cache.store.wait_until_ready().await.is_ok() {
                ready_cache.synced.store(true, Ordering::SeqCst);
                info!(namespaces = ready_cache.store.len(), "namespace cache synced");
            }
        });
        (cache, task)
    }

    /// Whether the first full list has arrived.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    /// The namespace, from the cache or else from one bounded GET.
    pub async fn lookup(&self, name: &str) -> Lookup {
        if let Some(namespace) = self.store.get(&ObjectRef::new(name)) {
            return Lookup::Found(namespace);
        }
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.api.get_opt(name)).await {
            Ok(Ok(Some(namespace))) => Lookup::Found(Arc::new(namespace)),
            Ok(Ok(None)) => Lookup::Unknown,
            Ok(Err(error)) => {
                warn!(namespace = name, %error, "namespace lookup failed; judging with unknown labels");
                Lookup::Unknown
            }
            Err(_) => {
                warn!(namespace = name, "namespace lookup timed out; judging with unknown labels");
                Lookup::Unknown
            }
        }
    }
}
