//! IngressClasses from the API server: a kube-runtime watcher follows the
//! cluster's IngressClasses and the cache keeps only what the engine reads from
//! them, each class's `spec.controller` by class name. The controller names the
//! Ingress controller family whatever the class is called (F5 NGINX's default
//! class is `nginx`, like ingress-nginx's), so each review of an Ingress gets
//! the current snapshot ([`IngressClassCache::snapshot`]: one `Arc` clone, no
//! copy) and the engine looks its class up there before the class table of the
//! policies ([`crate::engine::ControllerMap::resolve`]).
//!
//! Readiness (`/readyz`) waits for the first complete list, as for namespaces,
//! but not for ever: when the API server answers that portcullis may not list
//! IngressClasses (403, a ServiceAccount without the RBAC rule) or does not
//! serve them (404), the cache counts as settled with no classes, a warning
//! says that the class table decides meanwhile, and the watch keeps trying. A
//! cluster that is merely unreachable keeps the pod unready, like the
//! namespace cache does. Losing the API server later never stops reviews: the
//! last snapshot keeps serving.
//!
//! When a list or watch fails, the watch starts over with a full list after
//! the shared pauses of [`super::watch`] (`RETRY_INITIAL` doubling up to `RETRY_MAX`,
//! minus up to `RETRY_JITTER` at random, reset after `RETRY_RESET_AFTER`
//! without a failure). One warning is logged when
//! an outage starts and one info line when a list succeeds again; each failure
//! is logged at debug.

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use futures::{Stream, StreamExt};
use k8s_openapi::api::networking::v1::IngressClass;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tracing::{debug, info, warn};

use super::watch::{Outage, relisting_watch, status_code};
use crate::engine::input::{ClassControllers, IngressClasses};

/// No complete list yet, and no refusal.
const WAITING: u8 = 0;
/// A list of IngressClasses has completed.
const SYNCED: u8 = 1;
/// The API server refused to list IngressClasses (403) or does not serve them
/// (404) before any list completed: settled, with no classes.
const REFUSED: u8 = 2;

/// A watched cache of the `spec.controller` of the cluster's IngressClasses.
pub struct IngressClassCache {
    /// Replaced as a whole when a list completes; changed in place (copied
    /// first while a review still holds the old snapshot) by watch events.
    classes: RwLock<Arc<ClassControllers>>,
    state: AtomicU8,
}

/// What the engine borrows for one review: the snapshot taken when it began.
#[derive(Clone, Debug, Default)]
pub struct Snapshot(Option<Arc<ClassControllers>>);

impl Snapshot {
    /// The engine's view ([`IngressClasses::NONE`] without a cache).
    pub fn classes(&self) -> IngressClasses<'_> {
        self.0.as_deref().map_or(IngressClasses::NONE, IngressClasses::new)
    }
}

impl IngressClassCache {
    /// Starts watching IngressClasses. The returned task runs until the
    /// process ends; after a failure it starts over with a full list.
    pub fn start(client: Client) -> (Arc<IngressClassCache>, tokio::task::JoinHandle<()>) {
        let api: Api<IngressClass> = Api::all(client);
        let cache = Arc::new(IngressClassCache::default());
        let task = tokio::spawn(follow(relisting_watch("IngressClass", api), cache.clone()));
        (cache, task)
    }

    /// The classes as they are now, for one review.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(Some(self.current()))
    }

    fn current(&self) -> Arc<ClassControllers> {
        self.classes.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The `spec.controller` of the class `name`, as the cache holds it.
    pub fn controller(&self, name: &str) -> Option<String> {
        self.current().get(name).cloned()
    }

    /// How many classes the cache holds.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    /// Whether the cache holds no class at all.
    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// Whether a list of IngressClasses has completed.
    pub fn is_synced(&self) -> bool {
        self.state.load(Ordering::SeqCst) == SYNCED
    }

    /// Whether readiness may stop waiting: a list completed, or the API server
    /// refused to list IngressClasses (see the module documentation).
    pub fn is_settled(&self) -> bool {
        self.state.load(Ordering::SeqCst) != WAITING
    }
}

impl Default for IngressClassCache {
    fn default() -> Self {
        IngressClassCache { classes: RwLock::new(Arc::default()), state: AtomicU8::new(WAITING) }
    }
}

/// The class name and controller kept of an IngressClass; everything else is dropped.
fn entry(class: IngressClass) -> Option<(String, String)> {
    Some((class.metadata.name?, class.spec?.controller?))
}

/// Applies watch events to the cache: a list is gathered aside and replaces
/// the whole map when it completes, so the last snapshot keeps serving until
/// then and a class deleted while the watch was down is gone after the relist.
#[derive(Default)]
struct Writer {
    /// The list in progress, from `Init` to `InitDone`.
    list: ClassControllers,
}

impl Writer {
    fn apply(&mut self, cache: &IngressClassCache, event: Event<IngressClass>) {
        let write = || cache.classes.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Init => self.list = BTreeMap::new(),
            Event::InitApply(class) => self.list.extend(entry(class)),
            Event::InitDone => *write() = Arc::new(std::mem::take(&mut self.list)),
            Event::Apply(class) => {
                let name = class.metadata.name.clone();
                let mut classes = write();
                match (entry(class), name) {
                    (Some((name, controller)), _) => Arc::make_mut(&mut classes).insert(name, controller),
                    (None, Some(name)) => Arc::make_mut(&mut classes).remove(&name),
                    (None, None) => None,
                };
            }
            Event::Delete(class) => {
                if let Some(name) = &class.metadata.name {
                    let mut classes = write();
                    if classes.contains_key(name) {
                        Arc::make_mut(&mut classes).remove(name);
                    }
                }
            }
        }
    }
}

/// Whether the API server says portcullis cannot have IngressClasses at all:
/// forbidden by RBAC, or not served.
fn is_refusal(error: &watcher::Error) -> bool {
    matches!(status_code(error), Some(403 | 404))
}

/// Follows the watch: applies its events to the cache and keeps readiness and
/// the outage log lines.
async fn follow(events: impl Stream<Item = watcher::Result<Event<IngressClass>>>, cache: Arc<IngressClassCache>) {
    let mut events = pin!(events);
    let mut writer = Writer::default();
    let mut outage: Option<Outage> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                let refused = is_refusal(&error)
                    && cache.state.compare_exchange(WAITING, REFUSED, Ordering::SeqCst, Ordering::SeqCst).is_ok();
                if refused {
                    warn!(%error, "IngressClasses cannot be listed; ready without them: the class table of the policies names Ingress controllers until a list succeeds");
                }
                match &mut outage {
                    Some(outage) => {
                        outage.errors += 1;
                        debug!(%error, errors = outage.errors, "IngressClass watch failed again");
                    }
                    None => {
                        outage = Some(Outage { since: Instant::now(), errors: 1 });
                        // A refusal that settled readiness was said above.
                        if !refused && cache.is_settled() {
                            warn!(%error, "IngressClass watch failed; reviews use the last snapshot of IngressClasses until a list succeeds again");
                        } else if !refused {
                            warn!(%error, "IngressClass watch failed; not ready until a list of IngressClasses succeeds");
                        }
                    }
                }
                continue;
            }
        };
        let done = matches!(event, Event::InitDone);
        // `Init` and `InitApply` come before a list has completed; they prove nothing.
        let current = matches!(event, Event::InitDone | Event::Apply(_) | Event::Delete(_));
        writer.apply(&cache, event);
        if done && cache.state.swap(SYNCED, Ordering::SeqCst) != SYNCED {
            info!(classes = cache.len(), "IngressClass cache synced");
        }
        if current && let Some(ended) = outage.take() {
            info!(
                outage = %format_args!("{:.1}s", ended.since.elapsed().as_secs_f64()),
                errors = ended.errors,
                "IngressClass watch recovered; IngressClasses are current again"
            );
        }
    }
    warn!("IngressClass watch ended; serving the last snapshot");
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::IngressClassSpec;

    fn class(name: &str, controller: &str) -> IngressClass {
        let mut class = IngressClass {
            spec: Some(IngressClassSpec { controller: Some(controller.to_owned()), ..Default::default() }),
            ..Default::default()
        };
        class.metadata.name = Some(name.to_owned());
        class.metadata.annotations = Some([("big".to_owned(), "x".repeat(10_000))].into());
        class
    }

    fn snapshot(cache: &IngressClassCache) -> Vec<(String, String)> {
        cache.current().iter().map(|(name, controller)| (name.clone(), controller.clone())).collect()
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, controller)| (name.to_string(), controller.to_string())).collect()
    }

    #[test]
    fn a_list_replaces_the_map_only_once_it_is_complete() {
        let cache = IngressClassCache::default();
        let mut writer = Writer::default();
        writer.apply(&cache, Event::Init);
        writer.apply(&cache, Event::InitApply(class("nginx", "nginx.org/ingress-controller")));
        writer.apply(&cache, Event::InitApply(class("gone", "k8s.io/ingress-nginx")));
        assert!(cache.is_empty(), "nothing before the list is complete");
        writer.apply(&cache, Event::InitDone);
        let first = snapshot(&cache);
        assert_eq!(first, pairs(&[("gone", "k8s.io/ingress-nginx"), ("nginx", "nginx.org/ingress-controller")]));

        // A review that began before a change keeps its snapshot.
        let held = cache.snapshot();
        writer.apply(&cache, Event::Init);
        writer.apply(&cache, Event::InitApply(class("nginx", "k8s.io/ingress-nginx")));
        assert_eq!(snapshot(&cache), first, "the old snapshot serves until the relist completes");
        writer.apply(&cache, Event::InitDone);
        assert_eq!(snapshot(&cache), pairs(&[("nginx", "k8s.io/ingress-nginx")]));
        assert_eq!(held.classes().controller("nginx"), Some("nginx.org/ingress-controller"));
        assert_eq!(held.classes().controller("gone"), Some("k8s.io/ingress-nginx"));
    }

    #[test]
    fn watch_events_change_one_class() {
        let cache = IngressClassCache::default();
        let mut writer = Writer::default();
        writer.apply(&cache, Event::Apply(class("public", "k8s.io/ingress-nginx")));
        writer.apply(&cache, Event::Apply(class("edge", "traefik.io/ingress-controller")));
        let held = cache.snapshot();
        writer.apply(&cache, Event::Apply(class("public", "nginx.org/ingress-controller")));
        writer.apply(&cache, Event::Delete(class("edge", "traefik.io/ingress-controller")));
        assert_eq!(snapshot(&cache), pairs(&[("public", "nginx.org/ingress-controller")]));
        assert_eq!(held.classes().controller("public"), Some("k8s.io/ingress-nginx"), "copied, not changed");
        // A class without a controller is not kept.
        let mut bare = class("public", "");
        bare.spec = None;
        writer.apply(&cache, Event::Apply(bare));
        assert!(cache.is_empty());
    }

    #[test]
    fn refusals_are_forbidden_and_not_found() {
        let status = |code| {
            let status = kube::core::Status { code, ..Default::default() };
            watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)))
        };
        assert!(is_refusal(&status(403)));
        assert!(is_refusal(&status(404)));
        assert!(!is_refusal(&status(503)));
        assert!(!is_refusal(&watcher::Error::NoResourceVersion));
        let watch = watcher::Error::WatchError(Box::new(kube::core::Status { code: 403, ..Default::default() }));
        assert!(is_refusal(&watch));
    }
}
