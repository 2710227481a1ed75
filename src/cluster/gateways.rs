//! Gateway API objects from the API server: what routes attach to and what
//! targets them. kube-runtime watchers follow the cluster's Gateways and
//! ListenerSets (`gateway.networking.k8s.io`) and the policy kinds the
//! `gatewayAuth` rules accept as authentication for the routes they target
//! ([`crate::engine::PolicySet::targeting_policy_kinds`], e.g. Envoy
//! Gateway's `SecurityPolicy`). Of each object the cache keeps only what the
//! engine reads: a Gateway's or ListenerSet's listeners (and a ListenerSet's
//! Gateway), a policy's `targetRefs`. From them it builds the engine's
//! [`GatewayView`], replaced as a whole on every change (Gateways are few; an
//! update that changes nothing the engine reads, such as a status update by
//! the controller, changes nothing), so each review of a route takes the
//! current snapshot with one `Arc` clone.
//!
//! Each kind is watched on its own, at the version discovery recommends
//! (the group's preferred version when it serves the kind there, else the
//! most stable one that does), found again before every full list. A kind
//! the API server does not serve (its CRD is not installed: discovery does
//! not know it, or the list answers 404) means none exist: one info line says
//! so, the kind counts as settled for readiness, and it is asked about again
//! every [`RECHECK`], so a CRD installed later is picked up. A kind that
//! portcullis may not list (403) is said once in a warning and re-checked
//! likewise; what was known of it before stays. Any other failure is an
//! outage, as for the other caches: the watch starts over with a full list
//! on the shared retry schedule of [`super::watch`], the last snapshot keeps
//! serving, one warning is logged when the first kind fails and one info line
//! when every kind is current again.
//!
//! `/readyz` waits until every kind watched from the start is settled: listed,
//! not served, or forbidden. An API server that does not answer keeps the pod
//! unready, as for namespaces.
//!
//! The policy kinds follow the policy set: the cache looks at the
//! [`PolicyStore`] every [`POLICY_POLL`], and when a reload changes the kinds,
//! starts watching the new ones and stops watching (and forgets) the ones no
//! policy names any more. A kind added by a reload does not make the pod
//! unready while it is being listed; until then routes are judged without its
//! policies, which is the strict side.
//!
//! A route whose Gateway or ListenerSet the snapshot lacks (created together
//! with the route, and its watch event not seen yet) has it fetched with one
//! bounded GET ([`GatewayCache::view_for`]), as the namespace cache does for
//! a namespace it has not seen; what is found is used for that review only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind, Status};
use kube::discovery::verbs;
use kube::error::DiscoveryError;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::namespaces::LOOKUP_TIMEOUT;
use super::watch::{Events, Outage, restarting_watch, status_code};
use crate::engine::gateway::{
    GROUP, Gateway, GatewaySpec, GatewayView, GroupKind, ListenerSet, ListenerSetSpec, ParentKey, ParentKind, Route,
    TargetingPolicy,
};
use crate::policy::PolicyStore;

/// The pause before asking again about a kind the API server does not serve
/// (404) or that portcullis may not list (403).
pub const RECHECK: Duration = Duration::from_secs(60);

/// How often the policy set is looked at for a change of the policy kinds to watch.
pub const POLICY_POLL: Duration = Duration::from_secs(1);

/// At most this many missing parents are fetched for one review; the rest
/// stay unknown (judged strictly).
pub const MAX_LOOKUPS: usize = 4;

/// Timings of the cache; [`Options::default`] in production.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// See [`RECHECK`].
    pub recheck: Duration,
    /// See [`POLICY_POLL`].
    pub policy_poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { recheck: RECHECK, policy_poll: POLICY_POLL }
    }
}

/// A kind the cache watches: its API group and kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchedKind {
    pub group: String,
    pub kind: String,
}

impl WatchedKind {
    pub fn new(group: &str, kind: &str) -> WatchedKind {
        WatchedKind { group: group.to_owned(), kind: kind.to_owned() }
    }

    /// `gateway.networking.k8s.io` `Gateway`.
    pub fn gateway() -> WatchedKind {
        WatchedKind::new(GROUP, "Gateway")
    }

    /// `gateway.networking.k8s.io` `ListenerSet`.
    pub fn listener_set() -> WatchedKind {
        WatchedKind::new(GROUP, "ListenerSet")
    }

    fn of_parent(kind: ParentKind) -> WatchedKind {
        match kind {
            ParentKind::Gateway => WatchedKind::gateway(),
            ParentKind::ListenerSet => WatchedKind::listener_set(),
        }
    }

    fn role(&self) -> Role {
        match (self.group.as_str(), self.kind.as_str()) {
            (GROUP, "Gateway") => Role::Gateway,
            (GROUP, "ListenerSet") => Role::ListenerSet,
            _ => Role::Policy,
        }
    }
}

/// `Gateway.gateway.networking.k8s.io`, `SecurityPolicy.gateway.envoyproxy.io`.
impl fmt::Display for WatchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.group.as_str() {
            "" => f.write_str(&self.kind),
            group => write!(f, "{}.{group}", self.kind),
        }
    }
}

/// What a watched kind is to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Gateway,
    ListenerSet,
    /// A policy that may target routes by `targetRefs`.
    Policy,
}

/// Where the watch of one kind is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindState {
    /// No list yet and no definite answer: readiness waits.
    Waiting,
    /// Listed; the watch follows it.
    Synced,
    /// Not served by the API server (404: its CRD is not installed): none exist.
    Absent,
    /// Portcullis may not list it (403); what was known before stays.
    Forbidden,
}

impl KindState {
    const ALL: [KindState; 4] = [KindState::Waiting, KindState::Synced, KindState::Absent, KindState::Forbidden];

    fn from_u8(value: u8) -> KindState {
        KindState::ALL.get(usize::from(value)).copied().unwrap_or(KindState::Waiting)
    }
}

/// What the watch task of one kind shares with the cache.
struct KindStatus {
    kind: WatchedKind,
    state: AtomicU8,
    /// The resource discovery found for the kind (version, plural), once found.
    resource: Mutex<Option<ApiResource>>,
}

impl KindStatus {
    fn state(&self) -> KindState {
        KindState::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Sets the state; the one before.
    fn set_state(&self, state: KindState) -> KindState {
        KindState::from_u8(self.state.swap(state as u8, Ordering::SeqCst))
    }
}

/// A watched kind.
struct Watch {
    status: Arc<KindStatus>,
    task: JoinHandle<()>,
    /// Watched from the start: readiness waits for it to settle.
    initial: bool,
}

/// What the cache keeps of one object.
#[derive(Clone, Debug, PartialEq)]
enum Entry {
    Gateway(Gateway),
    ListenerSet(ListenerSet),
    Policy(TargetingPolicy),
}

/// The objects of one kind, by namespace and name.
type Objects = BTreeMap<(String, String), Entry>;

/// The watches, what they hold, and the outage record; behind one lock,
/// never held across an `await`.
#[derive(Default)]
struct Book {
    watches: BTreeMap<WatchedKind, Watch>,
    objects: BTreeMap<WatchedKind, Objects>,
    /// Kinds whose last attempt got no answer.
    failing: BTreeSet<WatchedKind>,
    outage: Option<Outage>,
}

impl Book {
    /// Whether `status` is the one of a kind still watched (a task stopped
    /// after a reload may still deliver one last event).
    fn is_current(&self, status: &Arc<KindStatus>) -> bool {
        self.watches.get(&status.kind).is_some_and(|watch| Arc::ptr_eq(&watch.status, status))
    }

    /// The API server answered for `kind`: its part of an outage is over.
    fn answered(&mut self, kind: &WatchedKind) {
        if self.failing.remove(kind)
            && self.failing.is_empty()
            && let Some(ended) = self.outage.take()
        {
            info!(
                outage = %format_args!("{:.1}s", ended.since.elapsed().as_secs_f64()),
                errors = ended.errors,
                "Gateway API watch recovered; Gateways, ListenerSets and policies are current again"
            );
        }
    }

    /// Whether every kind watched from the start has settled.
    fn settled(&self) -> bool {
        self.watches.values().filter(|watch| watch.initial).all(|watch| watch.status.state() != KindState::Waiting)
    }
}

/// A watched cache of the cluster's Gateways, ListenerSets and route-targeting
/// policies, as the engine's [`GatewayView`].
pub struct GatewayCache {
    client: Client,
    options: Options,
    view: RwLock<Arc<GatewayView>>,
    book: Mutex<Book>,
    /// Latched once [`Book::settled`] held.
    settled: AtomicBool,
}

impl GatewayCache {
    /// Starts watching Gateways, ListenerSets and the policy kinds of the
    /// policies `store` serves, following reloads. The returned task runs
    /// until the cache is dropped.
    pub fn start(client: Client, store: Arc<PolicyStore>) -> (Arc<GatewayCache>, JoinHandle<()>) {
        GatewayCache::start_with(client, store, Options::default())
    }

    /// [`GatewayCache::start`] with other timings.
    pub fn start_with(
        client: Client,
        store: Arc<PolicyStore>,
        options: Options,
    ) -> (Arc<GatewayCache>, JoinHandle<()>) {
        let cache = Arc::new(GatewayCache {
            client,
            options,
            view: RwLock::new(Arc::default()),
            book: Mutex::default(),
            settled: AtomicBool::new(false),
        });
        let policies = store.current();
        cache.reconcile(wanted(&policies.targeting_policy_kinds()), true);
        let task = tokio::spawn(follow_policies(Arc::downgrade(&cache), store, policies));
        (cache, task)
    }

    /// The view as it is now, for one review.
    pub fn snapshot(&self) -> Arc<GatewayView> {
        self.view.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether readiness may stop waiting: every kind watched from the start
    /// is listed, not served or forbidden (see the module documentation).
    pub fn is_settled(&self) -> bool {
        if self.settled.load(Ordering::SeqCst) {
            return true;
        }
        let settled = self.book().settled();
        if settled {
            self.settled.store(true, Ordering::SeqCst);
        }
        settled
    }

    /// The kinds watched now.
    pub fn watched(&self) -> Vec<WatchedKind> {
        self.book().watches.keys().cloned().collect()
    }

    /// Where the watch of `kind` is; `None` when it is not watched.
    pub fn state(&self, kind: &WatchedKind) -> Option<KindState> {
        self.book().watches.get(kind).map(|watch| watch.status.state())
    }

    /// Watches Gateways, ListenerSets and exactly the policy kinds `kinds`:
    /// new kinds are watched from now on, kinds no longer named are no longer
    /// watched and what was known of them is forgotten. Called when the
    /// policy set changes.
    pub fn watch_policy_kinds(self: &Arc<Self>, kinds: &[GroupKind]) {
        self.reconcile(wanted(kinds), false);
    }

    /// The view for one review of `routes` (the object and, on UPDATE, the
    /// old object) in `namespace`: the snapshot, plus the parents their
    /// `parentRefs` name that it lacks, fetched with one GET each (at most
    /// [`MAX_LOOKUPS`], all within [`LOOKUP_TIMEOUT`]). What is fetched is
    /// not added to the cache: the watch alone writes it. A parent that
    /// cannot be fetched stays unknown, and the rules judge the route strictly.
    pub async fn view_for(&self, namespace: &str, routes: &[Route<'_>]) -> Arc<GatewayView> {
        let snapshot = self.snapshot();
        let mut missing: Vec<ParentKey> = Vec::new();
        for reference in routes.iter().flat_map(|route| route.parent_refs()) {
            let Some(kind) = reference.parent_kind() else { continue };
            let key = ParentKey {
                kind,
                namespace: reference.namespace_or(namespace).to_owned(),
                name: reference.name.clone(),
            };
            if snapshot.parent(reference, namespace).is_none() && !missing.contains(&key) {
                missing.push(key);
            }
        }
        if missing.is_empty() {
            return snapshot;
        }
        if missing.len() > MAX_LOOKUPS {
            debug!(
                missing = missing.len(),
                fetched = MAX_LOOKUPS,
                "more parents unknown than are fetched for one review"
            );
            missing.truncate(MAX_LOOKUPS);
        }
        let deadline = tokio::time::Instant::now() + LOOKUP_TIMEOUT;
        let found = futures::future::join_all(missing.iter().map(|key| self.fetch(key, deadline))).await;
        let found: Vec<Entry> = found.into_iter().flatten().collect();
        if found.is_empty() {
            return snapshot;
        }
        let mut view = GatewayView::clone(&snapshot);
        for entry in &found {
            add(&mut view, namespace, entry);
        }
        Arc::new(view)
    }

    /// One parent, by one GET that ends by `deadline`.
    async fn fetch(&self, key: &ParentKey, deadline: tokio::time::Instant) -> Option<Entry> {
        let kind = WatchedKind::of_parent(key.kind);
        let resource = {
            let book = self.book();
            let status = book.watches.get(&kind).map(|watch| watch.status.clone());
            // Forbidden to list, most likely to get too: no GET per review.
            if status.as_ref().is_some_and(|status| status.state() == KindState::Forbidden) {
                return None;
            }
            status.and_then(|status| lock(&status.resource).clone())
        };
        let resource = resource.unwrap_or_else(|| default_resource(key.kind));
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &key.namespace, &resource);
        let (kind_name, namespace, name) = (key.kind.as_str(), key.namespace.as_str(), key.name.as_str());
        match tokio::time::timeout_at(deadline, api.get_opt(name)).await {
            Ok(Ok(Some(object))) => entry_of(&kind, object).1,
            Ok(Ok(None)) => None,
            Ok(Err(error)) => {
                warn!(kind = kind_name, namespace, name, %error, "Gateway API lookup failed; judging the route as if it were unknown");
                None
            }
            Err(_) => {
                warn!(
                    kind = kind_name,
                    namespace, name, "Gateway API lookup timed out; judging the route as if it were unknown"
                );
                None
            }
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.book)
    }

    /// Watches exactly `wanted`.
    fn reconcile(self: &Arc<Self>, wanted: BTreeSet<WatchedKind>, initial: bool) {
        let mut book = self.book();
        let gone: Vec<WatchedKind> = book.watches.keys().filter(|kind| !wanted.contains(kind)).cloned().collect();
        let mut changed = false;
        for kind in gone {
            if let Some(watch) = book.watches.remove(&kind) {
                watch.task.abort();
            }
            changed |= book.objects.remove(&kind).is_some_and(|objects| !objects.is_empty());
            book.answered(&kind);
            info!(kind = %kind, "no policy names this kind any more; no longer watched");
        }
        for kind in wanted {
            if book.watches.contains_key(&kind) {
                continue;
            }
            if !initial {
                info!(kind = %kind, "a policy names this kind now; watching it");
            }
            let status = Arc::new(KindStatus {
                kind: kind.clone(),
                state: AtomicU8::new(KindState::Waiting as u8),
                resource: Mutex::new(None),
            });
            let task = tokio::spawn(follow(Arc::downgrade(self), status.clone(), self.client.clone(), self.options));
            book.watches.insert(kind, Watch { status, task, initial });
        }
        if changed {
            self.publish(&book);
        }
    }

    /// Builds the view anew from what the book holds.
    fn publish(&self, book: &Book) {
        let mut view = GatewayView::default();
        for objects in book.objects.values() {
            for ((namespace, _), entry) in objects {
                add(&mut view, namespace, entry);
            }
        }
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }

    /// A list of the kind completed: it replaces what was known of the kind.
    fn listed(&self, status: &Arc<KindStatus>, list: Objects) {
        let mut book = self.book();
        if !book.is_current(status) {
            return;
        }
        let count = list.len();
        if book.objects.get(&status.kind) != Some(&list) {
            book.objects.insert(status.kind.clone(), list);
            self.publish(&book);
        }
        if status.set_state(KindState::Synced) != KindState::Synced {
            info!(kind = %status.kind, objects = count, "Gateway API kind synced");
        }
        book.answered(&status.kind);
    }

    /// The watch saw an object change (`Some`) or go (`None`).
    fn changed(&self, status: &Arc<KindStatus>, key: (String, String), entry: Option<Entry>) {
        let mut book = self.book();
        if !book.is_current(status) {
            return;
        }
        let objects = book.objects.entry(status.kind.clone()).or_default();
        let changed = match entry {
            Some(entry) if objects.get(&key) != Some(&entry) => {
                objects.insert(key, entry);
                true
            }
            Some(_) => false,
            None => objects.remove(&key).is_some(),
        };
        if changed {
            self.publish(&book);
        }
        book.answered(&status.kind);
    }

    /// A list or watch of the kind failed.
    fn failed(&self, status: &Arc<KindStatus>, error: &watcher::Error) {
        let mut book = self.book();
        if !book.is_current(status) {
            return;
        }
        let kind = &status.kind;
        let recheck = self.options.recheck;
        match status_code(error) {
            Some(404) => {
                if status.set_state(KindState::Absent) != KindState::Absent {
                    info!(kind = %kind, recheck = ?recheck, "Gateway API kind not served (its CRD is not installed): none exist; asking again later");
                }
                if book.objects.remove(kind).is_some_and(|objects| !objects.is_empty()) {
                    self.publish(&book);
                }
                book.answered(kind);
            }
            Some(403) => {
                if status.set_state(KindState::Forbidden) != KindState::Forbidden {
                    warn!(kind = %kind, %error, recheck = ?recheck, "Gateway API kind cannot be listed; what was known of it stays (nothing before a list); asking again later");
                }
                book.answered(kind);
            }
            _ => {
                book.failing.insert(kind.clone());
                let settled = book.settled();
                match &mut book.outage {
                    Some(outage) => {
                        outage.errors += 1;
                        debug!(kind = %kind, %error, errors = outage.errors, "Gateway API watch failed again");
                    }
                    None => {
                        book.outage = Some(Outage { since: Instant::now(), errors: 1 });
                        if settled {
                            warn!(kind = %kind, %error, "Gateway API watch failed; reviews use the last snapshot of Gateways, ListenerSets and policies until a list succeeds again");
                        } else {
                            warn!(kind = %kind, %error, "Gateway API watch failed; not ready until the Gateway API kinds are listed");
                        }
                    }
                }
            }
        }
    }
}

impl Drop for GatewayCache {
    fn drop(&mut self) {
        for watch in self.book().watches.values() {
            watch.task.abort();
        }
    }
}

/// A poisoned lock still holds whole data: every write is one insert, remove or swap.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Gateways and ListenerSets, and the policy kinds `kinds`.
fn wanted(kinds: &[GroupKind]) -> BTreeSet<WatchedKind> {
    let policies = kinds.iter().map(|kind| WatchedKind::new(kind.group.as_deref().unwrap_or_default(), &kind.kind));
    [WatchedKind::gateway(), WatchedKind::listener_set()].into_iter().chain(policies).collect()
}

/// Adds what the cache keeps of one object to a view.
fn add(view: &mut GatewayView, namespace: &str, entry: &Entry) {
    match entry {
        Entry::Gateway(gateway) => view.insert_gateway(namespace, gateway),
        Entry::ListenerSet(set) => view.insert_listener_set(namespace, set),
        Entry::Policy(policy) => view.insert_policy(policy.clone()),
    }
}

/// What the cache keeps of an object of `kind`: its namespace and name, and
/// what the engine reads (`None` when that does not fit the schema, or a
/// policy targets nothing: then it is as if it did not exist).
fn entry_of(kind: &WatchedKind, object: DynamicObject) -> ((String, String), Option<Entry>) {
    let namespace = object.metadata.namespace.unwrap_or_default();
    let name = object.metadata.name.unwrap_or_default();
    let spec = object.data.get("spec").unwrap_or(&Value::Null);
    // Only the name and namespace of the metadata: no labels, annotations or managed fields.
    let metadata =
        || ObjectMeta { name: Some(name.clone()), namespace: Some(namespace.clone()), ..ObjectMeta::default() };
    let entry = match kind.role() {
        Role::Gateway => Option::<GatewaySpec>::deserialize(spec)
            .map(|spec| Some(Entry::Gateway(Gateway { metadata: metadata(), spec: spec.unwrap_or_default() }))),
        Role::ListenerSet => Option::<ListenerSetSpec>::deserialize(spec)
            .map(|spec| Some(Entry::ListenerSet(ListenerSet { metadata: metadata(), spec: spec.unwrap_or_default() }))),
        Role::Policy => {
            let object = json!({"metadata": {"name": name}, "spec": spec});
            Ok(TargetingPolicy::from_object(&kind.group, &kind.kind, &namespace, &object).map(Entry::Policy))
        }
    };
    let entry = match entry {
        Ok(Some(entry)) => Some(entry),
        Ok(None) => None,
        Err(error) => {
            debug!(kind = %kind, %namespace, %name, %error, "unreadable; routes attached to it are judged as if it were unknown");
            None
        }
    };
    ((namespace, name), entry)
}

/// The resource of a parent kind at `v1`, for a GET before discovery found it.
fn default_resource(kind: ParentKind) -> ApiResource {
    let (kind, plural) = match kind {
        ParentKind::Gateway => ("Gateway", "gateways"),
        ParentKind::ListenerSet => ("ListenerSet", "listenersets"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", kind), plural)
}

/// The resource to watch `kind` at: the group's preferred version when it
/// serves the kind, else the most stable version that does. `None` when the
/// API server does not serve the kind (or it cannot be listed and watched).
async fn resolve(client: &Client, kind: &WatchedKind) -> Result<Option<ApiResource>, kube::Error> {
    let group = match kube::discovery::group(client, &kind.group).await {
        Ok(group) => group,
        Err(kube::Error::Discovery(DiscoveryError::MissingApiGroup(_) | DiscoveryError::EmptyApiGroup(_))) => {
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let found = group
        .recommended_kind(&kind.kind)
        .or_else(|| group.resources_by_stability().into_iter().find(|(resource, _)| resource.kind == kind.kind));
    Ok(found
        .filter(|(_, capabilities)| {
            capabilities.supports_operation(verbs::LIST) && capabilities.supports_operation(verbs::WATCH)
        })
        .map(|(resource, _)| resource))
}

/// A 404 as the API server answers for a resource it does not serve.
fn not_served(kind: &WatchedKind) -> watcher::Error {
    let message = format!("the server does not serve {kind}");
    watcher::Error::InitialListFailed(kube::Error::Api(Status::failure(&message, "NotFound").with_code(404).boxed()))
}

/// Whether the answer will not change soon: not served, or forbidden.
fn is_refusal(error: &watcher::Error) -> bool {
    matches!(status_code(error), Some(403 | 404))
}

/// One watch of `status.kind`: found by discovery, then listed and watched;
/// a watch that fails at once when discovery fails or does not know the kind.
async fn start_watch(client: Client, status: Arc<KindStatus>) -> Events<DynamicObject> {
    let error = match resolve(&client, &status.kind).await {
        Ok(Some(resource)) => {
            debug!(kind = %status.kind, version = %resource.version, "watching");
            *lock(&status.resource) = Some(resource.clone());
            return Box::pin(watcher(Api::all_with(client, &resource), watcher::Config::default()));
        }
        Ok(None) => not_served(&status.kind),
        Err(error) => watcher::Error::InitialListFailed(error),
    };
    Box::pin(futures::stream::once(std::future::ready(Err(error))))
}

/// Follows the watch of one kind until the cache is dropped or the kind is no
/// longer watched: gathers each list aside and hands it over when complete,
/// so the last snapshot keeps serving until then.
async fn follow(weak: Weak<GatewayCache>, status: Arc<KindStatus>, client: Client, options: Options) {
    let start = {
        let status = status.clone();
        move || start_watch(client.clone(), status.clone())
    };
    let recheck = options.recheck;
    let events = restarting_watch(status.kind.to_string(), start, move |error| is_refusal(error).then_some(recheck));
    let mut events = pin!(events);
    let mut list = Objects::new();
    while let Some(event) = events.next().await {
        let Some(cache) = weak.upgrade() else { return };
        match event {
            Err(error) => cache.failed(&status, &error),
            Ok(Event::Init) => list = Objects::new(),
            Ok(Event::InitApply(object)) => {
                if let (key, Some(entry)) = entry_of(&status.kind, object) {
                    list.insert(key, entry);
                }
            }
            Ok(Event::InitDone) => cache.listed(&status, std::mem::take(&mut list)),
            Ok(Event::Apply(object)) => {
                let (key, entry) = entry_of(&status.kind, object);
                cache.changed(&status, key, entry);
            }
            Ok(Event::Delete(object)) => cache.changed(&status, entry_of(&status.kind, object).0, None),
        }
    }
    warn!(kind = %status.kind, "Gateway API watch ended; serving the last snapshot");
}

/// Follows the policy set: when a reload changes the policy kinds, the
/// watches change with them.
async fn follow_policies(cache: Weak<GatewayCache>, store: Arc<PolicyStore>, mut seen: Arc<crate::engine::PolicySet>) {
    let Some(poll) = cache.upgrade().map(|cache| cache.options.policy_poll) else { return };
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(cache) = cache.upgrade() else { return };
        let current = store.current();
        if !Arc::ptr_eq(&current, &seen) {
            cache.watch_policy_kinds(&current.targeting_policy_kinds());
            seen = current;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn entries_keep_what_the_engine_reads() {
        let gateway = dynamic(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "public", "namespace": "infra", "labels": {"team": "net"},
                         "annotations": {"big": "x".repeat(10_000)},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"gatewayClassName": "envoy", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
            "status": {"conditions": [{"type": "Programmed", "status": "True"}]}}));
        let (key, entry) = entry_of(&WatchedKind::gateway(), gateway);
        assert_eq!(key, ("infra".to_owned(), "public".to_owned()));
        let Some(Entry::Gateway(gateway)) = entry else { panic!("{entry:?}") };
        assert_eq!(
            gateway.metadata,
            ObjectMeta { name: Some("public".into()), namespace: Some("infra".into()), ..ObjectMeta::default() }
        );
        assert_eq!(gateway.spec.listeners[0].protocol, "HTTP");
        assert_eq!(gateway.spec.gateway_class_name, "envoy");

        let broken =
            dynamic(json!({"metadata": {"name": "broken", "namespace": "infra"}, "spec": {"listeners": "all"}}));
        assert_eq!(entry_of(&WatchedKind::gateway(), broken).1, None, "does not fit the schema");

        let set = dynamic(json!({"metadata": {"name": "extra", "namespace": "shop"},
            "spec": {"parentRef": {"name": "public", "namespace": "infra"},
                     "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}]}}));
        let Some(Entry::ListenerSet(set)) = entry_of(&WatchedKind::listener_set(), set).1 else { panic!() };
        assert_eq!(set.spec.parent_ref.map(|parent| parent.name), Some("public".to_owned()));

        let kind = WatchedKind::new("gateway.envoyproxy.io", "SecurityPolicy");
        let policy = dynamic(json!({"metadata": {"name": "auth", "namespace": "shop"},
            "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web"}]}}));
        let Some(Entry::Policy(policy)) = entry_of(&kind, policy).1 else { panic!() };
        assert_eq!((policy.group.as_str(), policy.kind.as_str()), ("gateway.envoyproxy.io", "SecurityPolicy"));
        assert_eq!((policy.namespace.as_str(), policy.name.as_str()), ("shop", "auth"));
        assert!(policy.targets("shop", GROUP, "HTTPRoute", "web"));
        let aimless = dynamic(json!({"metadata": {"name": "none", "namespace": "shop"}, "spec": {}}));
        assert_eq!(entry_of(&kind, aimless).1, None, "a policy that targets nothing is not kept");
    }

    #[test]
    fn the_parents_are_always_watched_and_policy_kinds_once() {
        let envoy = GroupKind { group: Some("gateway.envoyproxy.io".into()), kind: "SecurityPolicy".into() };
        let kuadrant = GroupKind { group: Some("kuadrant.io".into()), kind: "AuthPolicy".into() };
        let kinds: Vec<String> = wanted(&[envoy.clone(), kuadrant, envoy]).iter().map(WatchedKind::to_string).collect();
        assert_eq!(
            kinds,
            [
                "SecurityPolicy.gateway.envoyproxy.io",
                "Gateway.gateway.networking.k8s.io",
                "ListenerSet.gateway.networking.k8s.io",
                "AuthPolicy.kuadrant.io"
            ]
        );
        assert_eq!(wanted(&[]).len(), 2);
    }

    #[test]
    fn refusals_are_rechecked_slowly() {
        assert!(is_refusal(&not_served(&WatchedKind::gateway())));
        let status =
            |code| watcher::Error::InitialListFailed(kube::Error::Api(Status::failure("", "").with_code(code).boxed()));
        assert!(is_refusal(&status(403)));
        assert!(!is_refusal(&status(503)));
        assert!(!is_refusal(&watcher::Error::NoResourceVersion));
    }

    #[test]
    fn kind_states_round_trip() {
        for state in KindState::ALL {
            assert_eq!(KindState::from_u8(state as u8), state);
        }
    }
}
