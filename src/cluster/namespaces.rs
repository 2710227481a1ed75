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
//! pause of [`RETRY_INITIAL`] doubling up to [`RETRY_MAX`], so the labels follow
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
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client};
use tracing::{debug, info, warn};

use crate::engine::NamespaceLabels;
use crate::metrics::Metrics;

/// The longest a review waits for the API server when its namespace is not cached.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);

/// The pause before the first retry of a failed namespace list or watch; each
/// further failure doubles it, up to [`RETRY_MAX`].
pub const RETRY_INITIAL: Duration = Duration::from_millis(250);

/// The longest pause between two attempts to list namespaces, so the cache
/// follows the cluster at most this long (plus one list) after the API server
/// is back. kube-runtime's default backoff goes up to 30 s plus jitter.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// Up to this fraction of each pause is taken off at random, so that replicas
/// that lost the API server together do not retry in step. Only ever shortens
/// a pause, so [`RETRY_MAX`] stays a bound.
pub const RETRY_JITTER: f64 = 0.1;

/// After this long without a failure, the next outage starts again from
/// [`RETRY_INITIAL`]. Not reset by a successful list alone: a watch that fails
/// right after each list (say, RBAC allows list but not watch) must not relist
/// every [`RETRY_INITIAL`]. Well above [`RETRY_MAX`], so the pauses of an
/// outage never reset it.
pub const RETRY_RESET_AFTER: Duration = Duration::from_secs(30);

const _: () = assert!(RETRY_INITIAL.as_millis() < RETRY_MAX.as_millis());
const _: () = assert!(RETRY_RESET_AFTER.as_millis() > 2 * RETRY_MAX.as_millis());

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
        let task = tokio::spawn(follow(relisting_watch(api), cache.clone(), metrics));
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

type WatchEvents = Pin<Box<dyn Stream<Item = watcher::Result<Event<NamespaceMeta>>> + Send>>;

/// Namespace metadata watch events from a kube-runtime watcher that is replaced by a
/// fresh one (which begins with a full list) after each error, following a
/// pause from [`RetryBackoff`]. Restarting rather than letting the watcher
/// resume from its last resource version makes every recovery end in an
/// `InitDone` that says so: a resumed watch in a quiet cluster sends nothing at
/// all, and the cache would look stale for as long as no namespace changes.
fn relisting_watch(api: Api<NamespaceMeta>) -> impl Stream<Item = watcher::Result<Event<NamespaceMeta>>> + Send {
    let watches = futures::stream::unfold(None, move |backoff: Option<ResetTimerBackoff<RetryBackoff>>| {
        let api = api.clone();
        async move {
            let backoff = match backoff {
                None => ResetTimerBackoff::new(RetryBackoff::new(), RETRY_RESET_AFTER),
                Some(mut backoff) => {
                    let pause = backoff.next().unwrap_or(RETRY_MAX);
                    debug!(?pause, "restarting the namespace watch with a full list");
                    tokio::time::sleep(pause).await;
                    backoff
                }
            };
            let watch = watcher(api, watcher::Config::default());
            Some((through_first_error(Box::pin(watch)), Some(backoff)))
        }
    });
    watches.flatten()
}

/// The events of `events` up to and including its first error. The stream is
/// not polled again after the error, so a kube-runtime watcher makes no retry
/// of its own.
fn through_first_error(events: WatchEvents) -> impl Stream<Item = watcher::Result<Event<NamespaceMeta>>> + Send {
    futures::stream::unfold(Some(events), |events| async move {
        let mut events = events?;
        let event = events.next().await?;
        let more = event.is_ok().then_some(events);
        Some((event, more))
    })
}

/// A failure of the namespace watch that has not yet ended.
struct Outage {
    since: Instant,
    errors: u64,
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

/// Pauses between attempts to list namespaces: [`RETRY_INITIAL`] doubling up
/// to [`RETRY_MAX`], each shortened by up to [`RETRY_JITTER`] at random.
///
/// Hand-written because kube-runtime's `watcher::ExponentialBackoff` can only
/// be built from a `backon` builder (its constructor is private), and `backon`
/// is not a dependency here; it is wrapped in kube-runtime's
/// [`ResetTimerBackoff`] like the library's own default.
struct RetryBackoff {
    /// The next pause before jitter.
    next: Duration,
    /// A random number in `[0, 1)`.
    random: fn() -> f64,
}

impl RetryBackoff {
    fn new() -> RetryBackoff {
        RetryBackoff::with_random(random_fraction)
    }

    fn with_random(random: fn() -> f64) -> RetryBackoff {
        RetryBackoff { next: RETRY_INITIAL, random }
    }
}

impl Iterator for RetryBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let pause = self.next;
        self.next = (pause * 2).min(RETRY_MAX);
        Some(pause.mul_f64(1.0 - RETRY_JITTER * (self.random)()))
    }
}

impl Backoff for RetryBackoff {
    fn reset(&mut self) {
        self.next = RETRY_INITIAL;
    }
}

/// A random number in `[0, 1)`, good enough for jitter: std's `RandomState`
/// is seeded randomly and gives each new instance different keys.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher, RandomState};
    let bits = RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(pauses: impl Iterator<Item = Duration>) -> Vec<u128> {
        pauses.map(|pause| pause.as_millis()).collect()
    }

    #[test]
    fn retries_double_from_a_quarter_second_to_five_seconds() {
        let backoff = RetryBackoff::with_random(|| 0.0);
        assert_eq!(millis(backoff.take(9)), [250, 500, 1000, 2000, 4000, 5000, 5000, 5000, 5000]);
    }

    #[test]
    fn jitter_shortens_a_pause_by_at_most_a_tenth() {
        let backoff = RetryBackoff::with_random(|| 0.999_999);
        assert_eq!(millis(backoff.take(7)), [225, 450, 900, 1800, 3600, 4500, 4500]);

        let bases = [250, 500, 1000, 2000, 4000, 5000, 5000];
        let mut firsts = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let pauses = RetryBackoff::new().take(bases.len()).collect::<Vec<_>>();
            for (pause, base) in pauses.iter().zip(bases) {
                let base = Duration::from_millis(base);
                assert!(*pause <= base && *pause >= base.mul_f64(0.9), "{pause:?} for {base:?}");
            }
            firsts.insert(pauses[0]);
        }
        assert!(firsts.len() > 1, "the jitter varies: {firsts:?}");
    }

    #[test]
    fn reset_starts_the_schedule_over() {
        let mut backoff = RetryBackoff::with_random(|| 0.0);
        assert_eq!(millis(backoff.by_ref().take(6)), [250, 500, 1000, 2000, 4000, 5000]);
        backoff.reset();
        assert_eq!(millis(backoff.take(2)), [250, 500]);
    }

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

    #[test]
    fn random_fractions_are_in_the_unit_interval() {
        for _ in 0..1000 {
            let fraction = random_fraction();
            assert!((0.0..1.0).contains(&fraction), "{fraction}");
        }
    }
}
