//! Services and Ingresses from the API server, for the background audit
//! ([`super::audit`]): kube-runtime watchers follow every Service and Ingress
//! of the cluster (one restarting watch per kind, [`super::watch`]'s retry
//! schedule) and the cache keeps each object as lean as the engine reads it:
//! `metadata.managedFields`, `status` and the bookkeeping metadata (resource
//! version, owner references, timestamps) are dropped on arrival; name,
//! namespace, uid, labels, annotations and `spec` stay (policies may read
//! any annotation, so all are kept: the audit judges what the webhook would).
//! A scan takes a snapshot of each kind ([`ObjectCache::services`]: one `Arc`
//! clone) and lists nothing itself. Secrets are never watched.
//!
//! A list replaces the kind's map only once it is complete, so a scan during
//! a relist sees the last complete state; an object deleted while the watch
//! was down is gone after the relist. One warning is logged when an outage of
//! a kind starts and one info line when it ends; each failure at debug.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::watch::{Outage, relisting_watch};

/// The objects of one kind by namespace and name.
pub type Objects<K> = BTreeMap<(String, String), Arc<K>>;

/// A kind the cache keeps: what of it is kept.
pub trait Lean: kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static {
    /// The object without what no rule reads.
    fn lean(self) -> Self;
}

/// The metadata a rule or a report reads.
fn lean_metadata(metadata: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: metadata.name,
        namespace: metadata.namespace,
        uid: metadata.uid,
        labels: metadata.labels,
        annotations: metadata.annotations,
        ..ObjectMeta::default()
    }
}

impl Lean for Service {
    fn lean(self) -> Self {
        Service { metadata: lean_metadata(self.metadata), spec: self.spec, status: None }
    }
}

impl Lean for Ingress {
    fn lean(self) -> Self {
        Ingress { metadata: lean_metadata(self.metadata), spec: self.spec, status: None }
    }
}

/// The watched objects of one kind.
pub struct Store<K> {
    objects: RwLock<Arc<Objects<K>>>,
    synced: AtomicBool,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Store { objects: RwLock::new(Arc::new(BTreeMap::new())), synced: AtomicBool::new(false) }
    }
}

impl<K: Lean> Store<K> {
    /// The objects as they are now (one `Arc` clone).
    pub fn snapshot(&self) -> Arc<Objects<K>> {
        self.objects.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether a list has completed.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    fn key(object: &K) -> Option<(String, String)> {
        let meta = object.meta();
        Some((meta.namespace.clone().unwrap_or_default(), meta.name.clone()?))
    }
}

/// Applies watch events to a [`Store`]; a list is gathered aside until it is complete.
struct Writer<K> {
    list: Objects<K>,
}

impl<K: Lean> Writer<K> {
    fn apply(&mut self, store: &Store<K>, event: Event<K>) {
        let write = || store.objects.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Init => self.list = BTreeMap::new(),
            Event::InitApply(object) => {
                if let Some(key) = Store::key(&object) {
                    self.list.insert(key, Arc::new(object.lean()));
                }
            }
            Event::InitDone => {
                *write() = Arc::new(std::mem::take(&mut self.list));
                store.synced.store(true, Ordering::SeqCst);
            }
            Event::Apply(object) => {
                if let Some(key) = Store::key(&object) {
                    Arc::make_mut(&mut write()).insert(key, Arc::new(object.lean()));
                }
            }
            Event::Delete(object) => {
                if let Some(key) = Store::key(&object) {
                    let mut objects = write();
                    if objects.contains_key(&key) {
                        Arc::make_mut(&mut objects).remove(&key);
                    }
                }
            }
        }
    }
}

/// The cluster's Services and Ingresses, for the audit.
#[derive(Default)]
pub struct ObjectCache {
    pub services: Store<Service>,
    pub ingresses: Store<Ingress>,
}

impl ObjectCache {
    /// Starts watching Services and Ingresses in every namespace; the tasks
    /// run until aborted.
    pub fn start(client: Client) -> (Arc<ObjectCache>, Vec<JoinHandle<()>>) {
        let cache = Arc::new(ObjectCache::default());
        let services: Api<Service> = Api::all(client.clone());
        let ingresses: Api<Ingress> = Api::all(client);
        let held = cache.clone();
        let services = tokio::spawn(async move {
            follow("Service", relisting_watch("Service", services), &held.services).await;
        });
        let held = cache.clone();
        let ingresses = tokio::spawn(async move {
            follow("Ingress", relisting_watch("Ingress", ingresses), &held.ingresses).await;
        });
        (cache, vec![services, ingresses])
    }

    /// Whether both kinds have been listed.
    pub fn is_synced(&self) -> bool {
        self.services.is_synced() && self.ingresses.is_synced()
    }
}

/// Follows one kind's watch into its store, with the outage log lines.
async fn follow<K: Lean>(what: &'static str, events: impl Stream<Item = watcher::Result<Event<K>>>, store: &Store<K>) {
    let mut events = pin!(events);
    let mut writer = Writer { list: BTreeMap::new() };
    let mut outage: Option<Outage> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                match &mut outage {
                    Some(outage) => {
                        outage.errors += 1;
                        debug!(kind = what, %error, errors = outage.errors, "audit watch failed again");
                    }
                    None => {
                        outage = Some(Outage { since: Instant::now(), errors: 1 });
                        warn!(kind = what, %error, "audit watch failed; scans use the last snapshot until a list succeeds again");
                    }
                }
                continue;
            }
        };
        let current = matches!(event, Event::InitDone | Event::Apply(_) | Event::Delete(_));
        let done = matches!(event, Event::InitDone);
        writer.apply(store, event);
        if done {
            debug!(kind = what, objects = store.snapshot().len(), "audit objects listed");
        }
        if current && let Some(ended) = outage.take() {
            info!(
                kind = what,
                outage = %format_args!("{:.1}s", ended.since.elapsed().as_secs_f64()),
                errors = ended.errors,
                "audit watch recovered"
            );
        }
    }
    warn!(kind = what, "audit watch ended; scans use the last snapshot");
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServiceSpec, ServiceStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    fn service(namespace: &str, name: &str, kind: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                resource_version: Some("7".into()),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                annotations: Some([("team".to_owned(), "shop".to_owned())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec { type_: Some(kind.into()), ..ServiceSpec::default() }),
            status: Some(ServiceStatus::default()),
        }
    }

    #[test]
    fn objects_are_kept_lean_and_a_list_replaces_the_map_when_complete() {
        let store = Store::<Service>::default();
        let mut writer = Writer { list: BTreeMap::new() };
        writer.apply(&store, Event::Init);
        writer.apply(&store, Event::InitApply(service("prod", "web", "NodePort")));
        assert!(store.snapshot().is_empty() && !store.is_synced());
        writer.apply(&store, Event::InitDone);
        assert!(store.is_synced());
        let held = store.snapshot();
        let web = &held[&("prod".to_owned(), "web".to_owned())];
        assert_eq!(web.metadata.managed_fields, None);
        assert_eq!(web.metadata.resource_version, None);
        assert_eq!(web.status, None);
        assert_eq!(web.metadata.annotations, Some([("team".to_owned(), "shop".to_owned())].into()));
        assert_eq!(web.spec.as_ref().unwrap().type_.as_deref(), Some("NodePort"));

        writer.apply(&store, Event::Apply(service("prod", "web", "ClusterIP")));
        writer.apply(&store, Event::Apply(service("dev", "api", "ClusterIP")));
        writer.apply(&store, Event::Delete(service("dev", "api", "ClusterIP")));
        let now = store.snapshot();
        assert_eq!(now.len(), 1);
        assert_eq!(
            now[&("prod".to_owned(), "web".to_owned())].spec.as_ref().unwrap().type_.as_deref(),
            Some("ClusterIP")
        );
        assert_eq!(
            held[&("prod".to_owned(), "web".to_owned())].spec.as_ref().unwrap().type_.as_deref(),
            Some("NodePort")
        );
    }
}
