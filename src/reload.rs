//! Background reloads of what can change on disk while serving: the serving
//! certificate (cert-manager or kubelet rotating a Secret volume) and the
//! policy directory (a ConfigMap volume). Both are polled by content, not by
//! file events, so kubelet's atomic `..data` symlink swap is seen like an
//! in-place write. A bad new version is rejected, logged and counted; the last
//! good one keeps serving. A check that panics is caught, counted as a failed
//! reload, and the poller carries on.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::metrics::Metrics;
use crate::policy::{self, PolicyStore};
use crate::webhook::tls::{self, CertStore};

/// Something that checks for a change and applies it.
pub trait Reload: Send + 'static {
    /// Looks for a change and applies it when it is valid. Never blocks for long.
    fn check(&mut self);
    /// Called when `check` panicked: count it as a failed reload.
    fn panicked(&mut self);
}

/// Runs `reload.check()` every `interval` until the task is aborted, surviving panics.
pub fn spawn(name: &'static str, interval: Duration, mut reload: impl Reload) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if std::panic::catch_unwind(AssertUnwindSafe(|| reload.check())).is_err() {
                error!(reloader = name, "reload check panicked; keeping the last good state");
                reload.panicked();
            }
        }
    })
}

/// Reloads the serving certificate when its files change.
pub struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    /// The PEM pair last read (served, or rejected); `None` after a failed read.
    last: Option<(Vec<u8>, Vec<u8>)>,
    store: CertStore,
    metrics: Arc<Metrics>,
}

impl Certificate {
    /// Watches `cert`/`key`, whose current contents `store` serves.
    pub fn new(cert: PathBuf, key: PathBuf, store: CertStore, metrics: Arc<Metrics>) -> Self {
        let last = tls::read_pair(&cert, &key).ok();
        Certificate { cert, key, last, store, metrics }
    }
}

impl Reload for Certificate {
    fn check(&mut self) {
        let pair = match tls::read_pair(&self.cert, &self.key) {
            Ok(pair) => pair,
            Err(err) => {
                // Mid-rotation a file can be missing for a moment; say it once.
                if self.last.take().is_some() {
                    warn!(%err, "cannot read the certificate; keeping the one in use");
                    self.metrics.tls_reload(false);
                }
                return;
            }
        };
        if self.last.as_ref() == Some(&pair) {
            return;
        }
        match tls::load(&self.cert, &pair.0, &self.key, &pair.1) {
            Ok(loaded) => {
                let not_after = loaded.not_after;
                self.store.replace(loaded);
                self.metrics.tls_expiry(not_after as f64);
                self.metrics.tls_reload(true);
                info!(cert = %self.cert.display(), not_after, "serving certificate reloaded");
            }
            Err(err) => {
                self.metrics.tls_reload(false);
                error!(%err, "new certificate rejected; keeping the one in use");
            }
        }
        self.last = Some(pair);
    }

    fn panicked(&mut self) {
        self.metrics.tls_reload(false);
    }
}

/// Reloads the policy set when the files in the policy directory change.
pub struct Policies {
    dir: PathBuf,
    last: Option<Vec<(PathBuf, String)>>,
    store: Arc<PolicyStore>,
    metrics: Arc<Metrics>,
}

impl Policies {
    /// Watches `dir`, whose current files are `loaded` (the set `store` serves).
    pub fn new(dir: PathBuf, loaded: Vec<(PathBuf, String)>, store: Arc<PolicyStore>, metrics: Arc<Metrics>) -> Self {
        Policies { dir, last: Some(loaded), store, metrics }
    }
}

impl Reload for Policies {
    fn check(&mut self) {
        let sources = match policy::read_sources(&self.dir) {
            Ok(sources) => sources,
            Err(err) => {
                if self.last.take().is_some() {
                    warn!(%err, "cannot read the policy directory; keeping the policies in use");
                    self.metrics.policy_reload(false);
                }
                return;
            }
        };
        if self.last.as_ref() == Some(&sources) {
            return;
        }
        match policy::load_dir_sources(&self.dir, &sources) {
            Ok(set) => {
                let count = set.len();
                self.store.replace(set);
                self.metrics.policies_loaded(count);
                self.metrics.policy_reload(true);
                info!(policies = count, dir = %self.dir.display(), "policies reloaded");
            }
            Err(err) => {
                self.metrics.policy_reload(false);
                error!(%err, "new policies rejected; keeping the policies in use");
            }
        }
        self.last = Some(sources);
    }

    fn panicked(&mut self) {
        self.metrics.policy_reload(false);
    }
}

/// The running reloaders; they stop when this is dropped.
#[derive(Default)]
pub struct Reloaders(Vec<JoinHandle<()>>);

impl Reloaders {
    /// Polls the certificate and, when given, the policy directory every `interval`.
    pub fn start(interval: Duration, certificate: Certificate, policies: Option<Policies>) -> Reloaders {
        let mut tasks = vec![spawn("certificate", interval, certificate)];
        tasks.extend(policies.map(|policies| spawn("policies", interval, policies)));
        Reloaders(tasks)
    }
}

impl Drop for Reloaders {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Flaky {
        checks: Arc<AtomicUsize>,
        panics: Arc<AtomicUsize>,
    }

    impl Reload for Flaky {
        fn check(&mut self) {
            if self.checks.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("first check fails");
            }
        }
        fn panicked(&mut self) {
            self.panics.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_panicking_check_is_counted_and_polling_goes_on() {
        let (checks, panics) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let task = spawn("flaky", Duration::from_millis(5), Flaky { checks: checks.clone(), panics: panics.clone() });
        let started = std::time::Instant::now();
        while checks.load(Ordering::SeqCst) < 3 {
            assert!(started.elapsed() < Duration::from_secs(5), "polling stopped after the panic");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(panics.load(Ordering::SeqCst), 1);
        assert!(!task.is_finished());
        task.abort();
    }
}
