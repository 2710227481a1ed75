//! Namespace labels from the API server: a kube-runtime watcher follows the
//! metadata of the cluster's Namespaces, and the cache keeps only what the
//! engine reads from them, each namespace's labels by name; each review reads
//! its namespace's labels from it. A namespace missing from the cache (just
//! created) is fetched with one bounded metadata GET; if that fails too, the
//! review is judged with unknown labels (fail safe, see
//! [`NamespaceLabels::Unknown`]). Losing the API server never stops reviews:
//! the last snapshot keeps serving.
//!
//! Every request asks for metadata only (`Accept:
//! application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`), so the
//! API server sends no spec or status, and of the metadata only the labels are
//! kept: annotations (such as kubectl's last-applied-configuration), managed
//! fields, uid and the rest are dropped as each event is applied.
//!
//! When a list or watch fails, the watch starts over with a full list after a
//! pause of [`super::watch::RETRY_INITIAL`] doubling up to [`super::watch::RETRY_MAX`], so the labels follow
//! the cluster within seconds of the API server coming back. The outage lasts
//! from the first failure until a list completes again (`InitDone`): that, or
//! a change from the live watch that follows it, is the only proof that the
//! snapshot is current again. `Event::Init` is not: kube-runtime sends it
//! before it even asks for the list. For that whole time
//! `portcullis_namespace_cache_stale` is 1; one warning is logged when the
//! outage starts and one info line when it ends (how long, how many
//! failures); each failure is counted in `portcullis_namespace_watch_errors_total`
//! and logged at debug.

use std::collections::{BTreeMap, HashMap};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tracing::{debug, info, warn};

use super::watch::{Outage, relisting_watch};
use crate::engine::NamespaceLabels;
use crate::metrics::Metrics;

/// The longest a review waits for the API server when its namespace is not cached.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);

/// The labels of one namespace, shared between the cache and the reviews reading them.
pub type Labels = Arc<BTreeMap<String, String>>;

/// The metadata of a Namespace. An `Api` of this type makes every request
/// metadata-only: kube-runtime's `metadata_watcher` is deprecated in favour of
/// a plain `watcher` over it, which sends the same requests.
type NamespaceMeta = PartialObjectMeta<Namespace>;

/// A watched cache of the labels of the cluster's namespaces.
pub struct NamespaceCache {
    labels: LabelMap,
    api: Api<NamespaceMeta>,
    synced: AtomicBool,
}

/// The labels found for one namespace, owned so that a review can borrow them.
pub enum Lookup {
    Found(Labels),
    /// Neither the cache nor the API server knows it (or the server did not answer).
    Unknown,
}

impl Lookup {
    pub fn labels(&self) -> NamespaceLabels<'_> {
        match self {
            Lookup::Found(labels) => NamespaceLabels::Known(labels),
            Lookup::Unknown => NamespaceLabels::Unknown,
        }
    }
}

impl NamespaceCache {
    /// Starts watching namespaces. The returned task runs until the process
    /// ends; after a failure it starts over with a full list (see the module
    /// documentation for the retry schedule and what is logged and counted).
    pub fn start(client: Client, metrics: Arc<Metrics>) -> (Arc<NamespaceCache>, tokio::task::JoinHandle<()>) {
        let api: Api<NamespaceMeta> = Api::all(client);
        let cache =
            Arc::new(NamespaceCache { labels: LabelMap::default(), api: api.clone(), synced: AtomicBool::new(false) });
        let task = tokio::spawn(follow(relisting_watch("namespace", api), cache.clone(), metrics));
        (cache, task)
    }

    /// Whether the first full list has arrived (`/readyz` waits for it).
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    /// The labels of the namespace `name` as the cache holds them, without
    /// asking the API server.
    pub fn labels(&self, name: &str) -> Option<Labels> {
        self.labels.read().get(name).cloned()
    }

    /// How many namespaces the cache holds.
    pub fn len(&self) -> usize {
        self.labels.read().len()
    }

    /// Whether the cache holds no namespace at all.
    pub fn is_empty(&self) -> bool {
        self.labels.read().is_empty()
    }

    /// The namespace's labels, from the cache or else from one bounded
    /// metadata GET (which is not added to the cache: the watch alone writes it).
    pub async fn lookup(&self, name: &str) -> Lookup {
        if let Some(labels) = self.labels(name) {
            return Lookup::Found(labels);
        }
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.api.get_opt(name)).await {
            Ok(Ok(Some(namespace))) => Lookup::Found(labels_of(namespace)),
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

/// The labels of every namespace, by name, from one list of their metadata
/// (what `portcullis check --namespace-labels-from-cluster` reads).
pub async fn list_labels(client: Client) -> Result<BTreeMap<String, BTreeMap<String, String>>, kube::Error> {
    let api: Api<NamespaceMeta> = Api::all(client);
    let list = api.list(&Default::default()).await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|namespace| Some((namespace.metadata.name?, namespace.metadata.labels.unwrap_or_default())))
        .collect())
}

/// Labels by namespace name. Reviews hold the read lock only to clone an
/// `Arc`; the watch takes the write lock once per event, and once per
/// completed list to swap in the new map.
#[derive(Default)]
struct LabelMap(RwLock<HashMap<String, Labels>>);

impl LabelMap {
    // A panic while the lock is held leaves the map whole (every write is one
    // insert, remove or swap), so a poisoned lock is still good to use.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Labels>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Labels>> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The labels of a namespace's metadata; everything else is dropped here.
fn labels_of(namespace: NamespaceMeta) -> Labels {
    Arc::new(namespace.metadata.labels.unwrap_or_default())
}

/// Applies watch events to the cache as kube-runtime's reflector store does:
/// a list is gathered aside and replaces the whole map when it completes, so
/// the last snapshot keeps serving until then and a namespace deleted while
/// the watch was down is gone after the relist.
#[derive(Default)]
struct Writer {
    /// The list in progress, from `Init` to `InitDone`.
    list: HashMap<String, Labels>,
}

impl Writer {
    fn apply(&mut self, map: &LabelMap, event: Event<NamespaceMeta>) {
        match event {
            Event::Init => self.list = HashMap::new(),
            Event::InitApply(mut namespace) => {
                if let Some(name) = namespace.metadata.name.take() {
                    self.list.insert(name, labels_of(namespace));
                }
            }
            Event::InitDone => *map.write() = std::mem::take(&mut self.list),
            Event::Apply(mut namespace) => {
                if let Some(name) = namespace.metadata.name.take() {
                    let labels = labels_of(namespace);
                    map.write().insert(name, labels);
                }
            }
            Event::Delete(namespace) => {
                if let Some(name) = &namespace.metadata.name {
                    map.write().remove(name);
                }
            }
        }
    }
}

/// Follows the watch: applies its events to the cache, and keeps readiness,
/// the stale gauge, the error counter and the outage log lines.
async fn follow(
    events: impl Stream<Item = watcher::Result<Event<NamespaceMeta>>>,
    cache: Arc<NamespaceCache>,
    metrics: Arc<Metrics>,
) {
    let mut events = pin!(events);
    let mut writer = Writer::default();
    let mut outage: Option<Outage> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                metrics.namespace_watch_error();
                match &mut outage {
                    Some(outage) => {
                        outage.errors += 1;
                        debug!(%error, errors = outage.errors, "namespace watch failed again");
                    }
                    None => {
                        if cache.is_synced() {
                            warn!(%error, "namespace watch failed; reviews use the last snapshot of namespace labels until a list succeeds again");
                        } else {
                            warn!(%error, "namespace watch failed; not ready until a list of namespaces succeeds");
                        }
                        metrics.namespace_cache_stale(true);
                        outage = Some(Outage { since: Instant::now(), errors: 1 });
                    }
                }
                continue;
            }
        };
        let done = matches!(event, Event::InitDone);
        // `Init` and `InitApply` come before a list has completed; they prove nothing.
        let current = matches!(event, Event::InitDone | Event::Apply(_) | Event::Delete(_));
        writer.apply(&cache.labels, event);
        // After `InitDone` the cache holds the new list.
        if done && !cache.synced.swap(true, Ordering::SeqCst) {
            info!(namespaces = cache.len(), "namespace cache synced");
        }
        if current && let Some(ended) = outage.take() {
            info!(
                outage = %format_args!("{:.1}s", ended.since.elapsed().as_secs_f64()),
                errors = ended.errors,
                "namespace watch recovered; namespace labels are current again"
            );
            metrics.namespace_cache_stale(false);
        }
    }
    // The restarting watch never ends on its own; if it does, say so loudly.
    metrics.namespace_cache_stale(true);
    warn!("namespace watch ended; serving the last snapshot");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(name: &str, labels: &[(&str, &str)]) -> NamespaceMeta {
        let mut namespace = NamespaceMeta::default();
        namespace.metadata.name = Some(name.to_owned());
        let labels = labels.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
        namespace.metadata.labels = Some(labels);
        namespace.metadata.annotations = Some([("big".to_owned(), "x".repeat(10_000))].into());
        namespace
    }

    fn snapshot(map: &LabelMap) -> BTreeMap<String, BTreeMap<String, String>> {
        map.read().iter().map(|(name, labels)| (name.clone(), (**labels).clone())).collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
    }

    #[test]
    fn a_list_replaces_the_map_only_once_it_is_complete() {
        let map = LabelMap::default();
        let mut writer = Writer::default();
        writer.apply(&map, Event::Init);
        writer.apply(&map, Event::InitApply(namespace("shop", &[("environment", "production")])));
        writer.apply(&map, Event::InitApply(namespace("gone", &[])));
        assert!(map.read().is_empty(), "nothing before the list is complete");
        writer.apply(&map, Event::InitDone);
        let first = snapshot(&map);
        assert_eq!(first.keys().collect::<Vec<_>>(), ["gone", "shop"]);
        assert_eq!(first["shop"], labels(&[("environment", "production")]));

        // A relist after a failure: the old snapshot serves until it completes,
        // then a namespace the new list lacks is gone.
        writer.apply(&map, Event::Init);
        writer.apply(&map, Event::InitApply(namespace("shop", &[("environment", "dev")])));
        assert_eq!(snapshot(&map), first);
        writer.apply(&map, Event::InitDone);
        assert_eq!(snapshot(&map), [("shop".to_owned(), labels(&[("environment", "dev")]))].into());

        // A list that fails midway changes nothing; the next one starts afresh.
        writer.apply(&map, Event::Init);
        writer.apply(&map, Event::InitApply(namespace("half", &[])));
        writer.apply(&map, Event::Init);
        writer.apply(&map, Event::InitDone);
        assert!(map.read().is_empty(), "an empty cluster lists empty");
    }

    #[test]
    fn watch_events_change_one_namespace() {
        let map = LabelMap::default();
        let mut writer = Writer::default();
        writer.apply(&map, Event::Apply(namespace("shop", &[("environment", "production")])));
        writer.apply(&map, Event::Apply(namespace("blog", &[])));
        writer.apply(&map, Event::Apply(namespace("shop", &[("environment", "dev")])));
        writer.apply(&map, Event::Delete(namespace("blog", &[])));
        assert_eq!(snapshot(&map), [("shop".to_owned(), labels(&[("environment", "dev")]))].into());
    }

    #[test]
    fn a_namespace_without_labels_has_empty_labels() {
        let mut namespace = namespace("bare", &[]);
        namespace.metadata.labels = None;
        assert_eq!(*labels_of(namespace), BTreeMap::new());
    }
}
