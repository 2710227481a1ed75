//! The background audit of `serve` (`--audit-interval`): every interval it
//! judges the Services and Ingresses that exist, from the watch-fed
//! [`ObjectCache`] (no list per scan), with the policies serving now and the
//! namespace labels and IngressClasses the other caches hold. Each object is
//! judged as `portcullis check` judges a manifest: a CREATE review built by
//! [`Review::from_manifest`](crate::admission::Review::from_manifest) and
//! [`engine::evaluate`](crate::engine::evaluate) at the validating stage,
//! so the audit and the webhook cannot disagree. A policy an object fails
//! (a Deny, Warn or Audit policy with a violation; mutations are not
//! violations, nor are a Deny policy's advisory warnings) is one violation.
//!
//! The scan runs on a blocking thread, so reviews are never delayed by it. A
//! scan that panics is caught, logged and counted
//! (`portcullis_audit_scans_total{result="failure"}`), and the next one runs
//! as planned. Each completed scan sets `portcullis_audit_violations`,
//! `portcullis_audit_objects`, `portcullis_audit_scan_duration_seconds` and
//! `portcullis_audit_last_run_timestamp_seconds`; with `--audit-reports` it
//! then writes one OpenReports `Report` per namespace ([`reports`]).
//!
//! Gateway API objects are not audited: routes are not watched (they come in
//! reviews), and the Gateway cache keeps listeners, not whole objects.
//!
//! The scan itself, pure, is in [`scan`](mod@scan); the Reports are written by
//! [`reports`], which reads the scan's results.

pub mod reports;
pub mod scan;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kube::Client;
use tokio::task::JoinHandle;
use tracing::{debug, error, info};

use self::reports::{MAX_RESULTS, ReportWriter};
pub use self::scan::{LabelsOf, NamespaceFindings, Scan, ScanInput, Summary, Verdict, Violation, scan};
use crate::cluster::objects::ObjectCache;
use crate::cluster::{IngressClassCache, NamespaceCache};
use crate::metrics::Metrics;
use crate::policy::PolicyStore;

/// The default of `--audit-interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(600);

/// How often the audit looks whether the caches have their first lists.
const SYNC_POLL: Duration = Duration::from_millis(100);

/// How the audit runs.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// The pause between the starts of two scans.
    pub interval: Duration,
    /// Write OpenReports Reports after each scan.
    pub reports: bool,
    /// The most results one Report holds ([`MAX_RESULTS`]).
    pub max_results: usize,
    /// For tests: called on the scan's thread at the start of each scan with
    /// its number (from 1), e.g. to make one panic.
    pub scan_hook: Option<fn(u64)>,
}

impl Options {
    pub fn new(interval: Duration, reports: bool) -> Options {
        Options { interval, reports, max_results: MAX_RESULTS, scan_hook: None }
    }
}

/// The running audit: its scan loop and its watches; stopped when dropped.
pub struct Audit {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Audit {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Audit {
    /// Starts watching Services and Ingresses and scanning every
    /// `options.interval` (the first scan as soon as every cache has its
    /// first list).
    pub fn start(
        client: Client,
        store: Arc<PolicyStore>,
        namespaces: Option<Arc<NamespaceCache>>,
        ingress_classes: Option<Arc<IngressClassCache>>,
        metrics: Arc<Metrics>,
        options: Options,
    ) -> Audit {
        let (objects, mut tasks) = ObjectCache::start(client.clone());
        metrics.audit_started(options.reports);
        let reports = options.reports.then(|| ReportWriter::new(client, metrics.clone(), options.max_results));
        let runner = Runner { objects, store, namespaces, ingress_classes, metrics, options, reports, scans: 0 };
        tasks.push(tokio::spawn(runner.run()));
        info!(interval = ?options.interval, reports = options.reports, "background audit started");
        Audit { tasks }
    }
}

struct Runner {
    objects: Arc<ObjectCache>,
    store: Arc<PolicyStore>,
    namespaces: Option<Arc<NamespaceCache>>,
    ingress_classes: Option<Arc<IngressClassCache>>,
    metrics: Arc<Metrics>,
    options: Options,
    reports: Option<ReportWriter>,
    scans: u64,
}

impl Runner {
    fn synced(&self) -> bool {
        self.objects.is_synced()
            && self.namespaces.as_ref().is_none_or(|cache| cache.is_synced())
            && self.ingress_classes.as_ref().is_none_or(|cache| cache.is_settled())
    }

    async fn run(mut self) {
        while !self.synced() {
            tokio::time::sleep(SYNC_POLL).await;
        }
        let mut ticker = tokio::time::interval(self.options.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.once().await;
        }
    }

    /// One scan, then its metrics and Reports.
    async fn once(&mut self) {
        self.scans += 1;
        let number = self.scans;
        let namespaces = self.namespaces.clone();
        let input = ScanInput {
            policies: self.store.current(),
            services: self.objects.services.snapshot(),
            ingresses: self.objects.ingresses.snapshot(),
            classes: self.ingress_classes.as_ref().map(|cache| cache.snapshot()).unwrap_or_default(),
            labels: Box::new(move |namespace| match &namespaces {
                Some(cache) => cache.labels(namespace),
                None => Some(Arc::default()),
            }),
        };
        let hook = self.options.scan_hook;
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            if let Some(hook) = hook {
                hook(number);
            }
            scan(&input)
        })
        .await;
        let scan = match result {
            Ok(scan) => scan,
            Err(err) => {
                error!(scan = number, error = %err, "audit scan failed; the next scan runs as planned");
                self.metrics.audit_scan_failed();
                return;
            }
        };
        let elapsed = started.elapsed();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.metrics.audit_scanned(&scan.series, &scan.objects, elapsed, now.as_secs_f64());
        let violations: u64 = scan.series.values().sum();
        info!(
            scan = number,
            objects = scan.objects.iter().map(|(_, count)| count).sum::<usize>(),
            violations,
            took = %format_args!("{:.3}s", elapsed.as_secs_f64()),
            "audit scan done"
        );
        if let Some(reports) = &mut self.reports {
            let namespaces = self.namespaces.clone();
            let exists =
                move |namespace: &str| namespaces.as_ref().is_none_or(|cache| cache.labels(namespace).is_some());
            reports.write(&scan, now.as_secs() as i64, &exists).await;
        } else {
            debug!(scan = number, "no Reports written (--audit-reports is off)");
        }
    }
}
