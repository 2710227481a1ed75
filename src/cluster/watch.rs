//! What the cluster caches share: a kube-runtime watch that is restarted
//! with a full list after every error, after a bounded pause, so each recovery
//! ends in an `InitDone` that proves it (a watch resumed from its last
//! resource version in a quiet cluster sends nothing at all), and the record
//! of an outage for its log lines. `restarting_watch` is its general form,
//! for a watch that must first find out what to watch (the Gateway API cache
//! asks discovery for the version of each kind) and that re-checks a definite
//! refusal slowly instead of on the retry schedule.

use std::fmt::Debug;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::Api;
use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use kube::runtime::watcher::{self, Event, watcher};
use serde::de::DeserializeOwned;
use tracing::debug;

/// The pause before the first retry of a failed namespace list or watch; each
/// further failure doubles it, up to [`RETRY_MAX`].
pub const RETRY_INITIAL: Duration = Duration::from_millis(250);

/// The longest pause between two attempts to list namespaces, so the cache
/// follows the cluster at most this long (plus one [`CONNECT_TIMEOUT`] and one
/// list) after the API server is back. kube-runtime's default backoff goes up
/// to 30 s plus jitter.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// The longest one attempt to connect to the API server (TCP and TLS
/// handshake) may take before it fails and is retried on the schedule above.
/// kube's default is 30 s, and an API server whose packets are dropped (its
/// node gone, a partition) does not refuse a connection, it never answers: one
/// attempt then hung for up to 30 s, so an outage was reported (stale) only
/// 30 s after it began, and an attempt started just before the server came
/// back waited for its next SYN retransmission (1, 3, 7, 15 s into it) or its
/// timeout, keeping the cache stale for seconds after the server was back
/// (10 s seen by hand; reproduced by the end-to-end tests, tests/e2e/).
/// Connecting to an API server takes milliseconds; a slow one is retried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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

/// A failure of a watch that has not yet ended.
pub(crate) struct Outage {
    pub since: Instant,
    pub errors: u64,
}

/// One watch's events, boxed: what [`restarting_watch`] starts each time.
pub(crate) type Events<K> = Pin<Box<dyn Stream<Item = watcher::Result<Event<K>>> + Send>>;

/// Watch events of `api` from a kube-runtime watcher that is replaced by a
/// fresh one (which begins with a full list) after each error, following a
/// pause from [`RetryBackoff`]. `what` names the objects in the debug log.
pub(crate) fn relisting_watch<K>(
    what: &'static str,
    api: Api<K>,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let start = move || {
        let watch: Events<K> = Box::pin(watcher(api.clone(), watcher::Config::default()));
        std::future::ready(watch)
    };
    restarting_watch(what, start, |_: &watcher::Error| None)
}

/// The general form of [`relisting_watch`]: `start` makes each watch (it may
/// first find out what to watch, and fail as a watch fails when it cannot),
/// and is called again after each error or end, after a pause. The pause is
/// the next of the retry schedule ([`RetryBackoff`]) unless `pause_after`
/// gives one for the error (say, a slow re-check after an answer that will not
/// change soon); such a pause leaves the schedule where it was. A watch is not
/// polled again after its first error, so a kube-runtime watcher makes no
/// retry of its own.
pub(crate) fn restarting_watch<K, S, F, P>(
    what: impl Into<String>,
    start: S,
    pause_after: P,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: Send + 'static,
    S: FnMut() -> F + Send + 'static,
    F: Future<Output = Events<K>> + Send,
    P: Fn(&watcher::Error) -> Option<Duration> + Send + 'static,
{
    let state = Restarting { what: what.into(), start, pause_after, backoff: None, events: None, pause: None };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(events) = state.events.as_mut() {
                match events.next().await {
                    Some(Ok(event)) => return Some((Ok(event), state)),
                    Some(Err(error)) => {
                        state.events = None;
                        state.pause = (state.pause_after)(&error);
                        return Some((Err(error), state));
                    }
                    None => state.events = None,
                }
            }
            match state.backoff.as_mut() {
                None => state.backoff = Some(ResetTimerBackoff::new(RetryBackoff::new(), RETRY_RESET_AFTER)),
                Some(backoff) => {
                    let pause = match state.pause.take() {
                        Some(pause) => pause,
                        None => backoff.next().unwrap_or(RETRY_MAX),
                    };
                    debug!(?pause, "restarting the {} watch with a full list", state.what);
                    tokio::time::sleep(pause).await;
                }
            }
            state.events = Some((state.start)().await);
        }
    })
}

/// Where a [`restarting_watch`] is.
struct Restarting<K, S, P> {
    what: String,
    start: S,
    pause_after: P,
    /// `None` until the first watch has started.
    backoff: Option<ResetTimerBackoff<RetryBackoff>>,
    /// The watch being followed; `None` after its first error or end.
    events: Option<Events<K>>,
    /// The pause `pause_after` chose for the last error.
    pause: Option<Duration>,
}

/// The HTTP status of an API server's answer refusing a list or watch.
pub(crate) fn status_code(error: &watcher::Error) -> Option<u16> {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.code),
        watcher::Error::WatchError(status) => Some(status.code),
        _ => None,
    }
}

/// Pauses between attempts to list: [`RETRY_INITIAL`] doubling up to
/// [`RETRY_MAX`], each shortened by up to [`RETRY_JITTER`] at random.
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

    /// A restarting watch over watches that each fail at once (and would
    /// go on with an event were they polled again), with a pause of 10 ms
    /// chosen for each error when `quick`: the first `count` items and how long they took.
    async fn failing_watches(quick: bool, count: usize) -> (Vec<bool>, Duration) {
        let starts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = starts.clone();
        let start = move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let events: Events<()> =
                Box::pin(futures::stream::iter([Err(watcher::Error::NoResourceVersion), Ok(Event::InitDone)]));
            std::future::ready(events)
        };
        let pause = move |_: &watcher::Error| quick.then_some(Duration::from_millis(10));
        let started = Instant::now();
        let items: Vec<bool> =
            restarting_watch("test", start, pause).take(count).map(|item| item.is_ok()).collect().await;
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), count, "one watch per error");
        (items, started.elapsed())
    }

    #[tokio::test]
    async fn a_restarting_watch_stops_at_the_first_error_and_takes_the_chosen_pause() {
        let (items, took) = failing_watches(true, 4).await;
        assert_eq!(items, [false; 4], "a watch is not polled again after its error");
        // Three pauses of 10 ms; the schedule would take 250 + 500 + 1000 ms.
        assert!(took < Duration::from_millis(600), "{took:?}");

        let (items, took) = failing_watches(false, 2).await;
        assert_eq!(items, [false; 2]);
        assert!(took >= RETRY_INITIAL.mul_f64(1.0 - RETRY_JITTER), "the schedule's first pause: {took:?}");
    }

    #[test]
    fn random_fractions_are_in_the_unit_interval() {
        for _ in 0..1000 {
            let fraction = random_fraction();
            assert!((0.0..1.0).contains(&fraction), "{fraction}");
        }
    }
}
