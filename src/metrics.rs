//! Prometheus metrics, recorded by the server around the engine (never inside
//! it). Label values come from small closed sets; the only open-ended label is
//! `namespace`, on the rejection counter alone.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::{Decision, Kind, Operation, Outcome, PORTCULLIS, PolicySet, Severity, Stage};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`Metrics::encode_prometheus`]'s output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram buckets for review latency: 50 µs to 1 s.
const DURATION_BUCKETS: [f64; 10] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    webhook: &'static str,
    operation: &'static str,
    kind: &'static str,
    decision: &'static str,
    dry_run: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    policy: Arc<str>,
    kind: &'static str,
    operation: &'static str,
    namespace: String,
    dry_run: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyResultLabels {
    policy: Arc<str>,
    action: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MutationLabels {
    policy: Arc<str>,
    kind: &'static str,
    dry_run: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// One series of `portcullis_audit_violations`: how many objects of a kind
/// in a namespace violate a policy. `environment` is the namespace's
/// environments (the `Environment` documents it belongs to, comma-separated in
/// policy order; empty for none), so alerts can select production.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct AuditSeries {
    pub policy: String,
    pub kind: &'static str,
    pub namespace: String,
    pub environment: String,
}

/// `portcullis_cel_cost_exceeded_total`: one series per policy with a `cel` rule.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CelLabels {
    policy: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// What became of the Reports of one audit scan, for `portcullis_audit_report_writes_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportWrite {
    /// One Report applied.
    Applied,
    /// One Report could not be applied (or its namespace not read).
    Failed,
    /// The scan wrote no Report: the Report CRD is not installed.
    NotInstalled,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// What happened to a review, for the `decision` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// The request could not be answered (bad content type, undecodable body).
    Error,
}

fn webhook(stage: Stage) -> &'static str {
    match stage {
        Stage::Validate => "validate",
        Stage::Mutate => "mutate",
    }
}

/// The `dry_run` label: a dry run is judged like any request, but nothing is
/// persisted, so dashboards and alerts must be able to leave it out.
fn dry_run_label(dry_run: bool) -> &'static str {
    if dry_run { "true" } else { "false" }
}

fn outcome(result: Outcome) -> &'static str {
    match result {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Error => "error",
    }
}

/// All portcullis metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    rejections: Family<RejectionLabels, Counter>,
    policy_results: Family<PolicyResultLabels, Counter>,
    duration: Family<WebhookLabels, Histogram>,
    mutations: Family<MutationLabels, Counter>,
    policies_loaded: Gauge,
    policy_reloads: Family<ResultLabels, Counter>,
    tls_expiry: Gauge<f64, AtomicU64>,
    tls_reloads: Family<ResultLabels, Counter>,
    namespace_cache_stale: Gauge,
    namespace_watch_errors: Counter,
    audit_violations: Family<AuditSeries, Gauge>,
    /// The series of `audit_violations` set by the last scan.
    audit_series: std::sync::Mutex<std::collections::BTreeSet<AuditSeries>>,
    audit_last_run: Gauge<f64, AtomicU64>,
    audit_objects: Family<KindLabels, Gauge>,
    audit_duration: Gauge<f64, AtomicU64>,
    audit_scans: Family<ResultLabels, Counter>,
    audit_report_writes: Family<ResultLabels, Counter>,
    cel_cost_exceeded: Family<CelLabels, Counter>,
    /// The series a review records, each looked up in its family once.
    handles: Handles,
}

/// Series of the review metrics, resolved on first use and kept, so that a
/// review increments counters without building, hashing or allocating label
/// sets (a series still appears only once it has been counted).
struct Handles {
    /// `admission_requests` by webhook, operation (or none), kind, decision
    /// and dry run; see [`Handles::request`].
    requests: Box<[std::sync::OnceLock<Counter>]>,
    /// `admission_duration` by webhook.
    duration: [std::sync::OnceLock<Histogram>; 2],
    /// `policy_results` of the policy set serving: rebuilt when another set is
    /// first recorded.
    policy_results: std::sync::RwLock<Arc<PolicyResultHandles>>,
}

/// `policy_results` series of one policy set: per policy, by result.
#[derive(Default)]
struct PolicyResultHandles {
    /// The policies' names, to recognise the set (by pointer).
    names: Vec<Arc<str>>,
    results: Vec<[std::sync::OnceLock<Counter>; 3]>,
}

const OPERATIONS: [Operation; 4] = [Operation::Create, Operation::Update, Operation::Delete, Operation::Connect];
const VERDICTS: usize = 3;

impl Handles {
    fn new() -> Self {
        let series = 2 * (OPERATIONS.len() + 1) * (Kind::KNOWN.len() + 1) * VERDICTS * 2;
        Handles {
            requests: (0..series).map(|_| std::sync::OnceLock::new()).collect(),
            duration: Default::default(),
            policy_results: std::sync::RwLock::default(),
        }
    }

    /// The index of a series of `admission_requests`.
    fn request(stage: Stage, operation: Option<Operation>, kind: Kind, verdict: Verdict, dry_run: bool) -> usize {
        let stage = match stage {
            Stage::Validate => 0,
            Stage::Mutate => 1,
        };
        let operation = operation.and_then(|op| OPERATIONS.iter().position(|o| *o == op)).unwrap_or(OPERATIONS.len());
        let kind = Kind::KNOWN.iter().position(|k| *k == kind).unwrap_or(Kind::KNOWN.len());
        let verdict = verdict as usize;
        (((stage * (OPERATIONS.len() + 1) + operation) * (Kind::KNOWN.len() + 1) + kind) * VERDICTS + verdict) * 2
            + usize::from(dry_run)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::default();
        registry.register("admission_requests", "Admission reviews answered", requests.clone());
        let rejections = Family::default();
        registry.register(
            "admission_rejections",
            "Admission requests denied, once per denying policy; dry_run=true for dry-run requests, which persist \
             nothing, so alerts leave dry_run=true out",
            rejections.clone(),
        );
        let policy_results = Family::default();
        registry.register("policy_results", "Policy evaluations by action and result", policy_results.clone());
        let duration = Family::<WebhookLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS.iter().copied())
        });
        registry.register_with_unit(
            "admission_duration",
            "Time to answer an admission review, from body received to response encoded",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        let mutations = Family::default();
        registry.register(
            "mutations",
            "Patches returned in allowed /mutate responses, once per mutating policy that contributed to the patch; \
             dry_run=true for dry-run requests, which persist nothing",
            mutations.clone(),
        );
        let policies_loaded = Gauge::default();
        registry.register("policies_loaded", "Policies in the set currently serving", policies_loaded.clone());
        let policy_reloads = Family::<ResultLabels, Counter>::default();
        registry.register("policy_reloads", "Policy directory reloads by result", policy_reloads.clone());
        let tls_expiry = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "Expiry (Unix time) of the serving certificate",
            tls_expiry.clone(),
        );
        let tls_reloads = Family::<ResultLabels, Counter>::default();
        registry.register("tls_reloads", "Serving certificate reloads by result", tls_reloads.clone());
        // Both results exist from the start, so `increase()` sees the first failure.
        for result in ["success", "failure"] {
            let _ = policy_reloads.get_or_create(&ResultLabels { result });
            let _ = tls_reloads.get_or_create(&ResultLabels { result });
        }
        let namespace_cache_stale = Gauge::default();
        registry.register(
            "namespace_cache_stale",
            "1 from a failed namespace list or watch until a list succeeds again; meanwhile reviews use the last \
             snapshot of namespace labels",
            namespace_cache_stale.clone(),
        );
        let namespace_watch_errors = Counter::default();
        registry.register(
            "namespace_watch_errors",
            "Failed attempts to list or watch namespaces (each retry counts once)",
            namespace_watch_errors.clone(),
        );
        let audit_violations = Family::<AuditSeries, Gauge>::default();
        registry.register(
            "audit_violations",
            "Objects that violate a Deny, Warn or Audit policy, found by the last background audit scan; a series \
             is removed when its count drops to zero",
            audit_violations.clone(),
        );
        let audit_last_run = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "audit_last_run_timestamp_seconds",
            "When (Unix time) the last background audit scan completed; 0 before the first",
            audit_last_run.clone(),
        );
        let audit_objects = Family::<KindLabels, Gauge>::default();
        registry.register("audit_objects", "Objects judged by the last background audit scan", audit_objects.clone());
        let audit_duration = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "audit_scan_duration",
            "How long the last background audit scan took to judge the objects",
            prometheus_client::registry::Unit::Seconds,
            audit_duration.clone(),
        );
        let audit_scans = Family::<ResultLabels, Counter>::default();
        registry.register(
            "audit_scans",
            "Background audit scans by result (failure: the scan panicked; the next one runs as planned)",
            audit_scans.clone(),
        );
        let cel_cost_exceeded = Family::<CelLabels, Counter>::default();
        registry.register(
            "cel_cost_exceeded",
            "Evaluations of a cel rule cut off by its cost limit (the rule counts as failed: fail closed)",
            cel_cost_exceeded.clone(),
        );
        let audit_report_writes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "audit_report_writes",
            "OpenReports Reports applied (applied), not applied (failed), and scans whose Reports were skipped \
             because the Report CRD is not installed (not_installed); an unchanged Report is not written",
            audit_report_writes.clone(),
        );
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info.get_or_create(&VersionLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "Build information (always 1)", build_info);
        Metrics {
            registry,
            requests,
            rejections,
            policy_results,
            duration,
            mutations,
            policies_loaded,
            policy_reloads,
            tls_expiry,
            tls_reloads,
            namespace_cache_stale,
            namespace_watch_errors,
            audit_violations,
            audit_series: std::sync::Mutex::default(),
            audit_last_run,
            audit_objects,
            audit_duration,
            audit_scans,
            audit_report_writes,
            cel_cost_exceeded,
            handles: Handles::new(),
        }
    }

    /// Records a completed audit scan: the violation counts (series not in
    /// `violations` are removed), the objects judged by kind, how long it took
    /// and when it ended (Unix seconds).
    pub fn audit_scanned(
        &self,
        violations: &std::collections::BTreeMap<AuditSeries, u64>,
        objects: &[(&'static str, usize)],
        elapsed: Duration,
        finished_unix: f64,
    ) {
        let mut series = self.audit_series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for gone in series.iter().filter(|labels| !violations.contains_key(*labels)) {
            self.audit_violations.remove(gone);
        }
        for (labels, count) in violations {
            self.audit_violations.get_or_create(labels).set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        *series = violations.keys().cloned().collect();
        for &(kind, count) in objects {
            self.audit_objects.get_or_create(&KindLabels { kind }).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.audit_duration.set(elapsed.as_secs_f64());
        self.audit_last_run.set(finished_unix);
        self.audit_scans.get_or_create(&ResultLabels { result: "success" }).inc();
    }

    /// Counts an audit scan that panicked.
    pub fn audit_scan_failed(&self) {
        self.audit_scans.get_or_create(&ResultLabels { result: "failure" }).inc();
    }

    /// Counts what became of a Report (or of a scan's Reports).
    pub fn audit_report(&self, write: ReportWrite) {
        let result = match write {
            ReportWrite::Applied => "applied",
            ReportWrite::Failed => "failed",
            ReportWrite::NotInstalled => "not_installed",
        };
        self.audit_report_writes.get_or_create(&ResultLabels { result }).inc();
    }

    /// Makes the audit's counters exist at zero, so `increase()` sees their
    /// first count; called when the audit starts (`reports`: it writes Reports).
    pub fn audit_started(&self, reports: bool) {
        for result in ["success", "failure"] {
            let _ = self.audit_scans.get_or_create(&ResultLabels { result });
        }
        if reports {
            for result in ["applied", "failed", "not_installed"] {
                let _ = self.audit_report_writes.get_or_create(&ResultLabels { result });
            }
        }
    }

    /// Records an answered review.
    #[allow(clippy::too_many_arguments)]
    pub fn record_review(
        &self,
        stage: Stage,
        operation: Operation,
        kind: Kind,
        namespace: &str,
        dry_run: bool,
        decision: &Decision,
        policies: &PolicySet,
        elapsed: Duration,
    ) {
        let verdict = if decision.allowed() { Verdict::Allowed } else { Verdict::Denied };
        self.record_request(stage, Some(operation), kind, verdict, dry_run, elapsed);
        let all = policies.policies();
        if !decision.results.is_empty() {
            let handles = self.policy_result_handles(policies);
            for result in &decision.results {
                let slot = &handles.results[result.policy][result.outcome as usize];
                slot.get_or_init(|| {
                    let policy = &all[result.policy];
                    self.policy_results.get_or_create_owned(&PolicyResultLabels {
                        policy: policy.shared_name().clone(),
                        action: policy.action().as_str(),
                        result: outcome(result.outcome),
                    })
                })
                .inc();
            }
        }
        for &index in &decision.cost_exceeded {
            let policy = all[index].shared_name().clone();
            self.cel_cost_exceeded.get_or_create(&CelLabels { policy }).inc();
        }
        let reject = |policy: Arc<str>| {
            self.rejections
                .get_or_create(&RejectionLabels {
                    policy,
                    kind: kind.as_str(),
                    operation: operation.as_str(),
                    namespace: namespace.to_owned(),
                    dry_run: dry_run_label(dry_run),
                })
                .inc();
        };
        let mut last = None;
        for policy in decision.denying_policies() {
            // One count per denying policy, however many lines it produced.
            if last == Some(policy) {
                continue;
            }
            last = Some(policy);
            reject(all[policy].shared_name().clone());
        }
        // A denial in portcullis' own name (an object that cannot be read as
        // its kind) is said once and counted once, as policy="portcullis".
        if decision.of(Severity::Deny).any(|finding| finding.policy.is_none()) {
            reject(Arc::from(PORTCULLIS));
        }
        // Counted only when the response carries the patch and allows the
        // request: a patch in a denial is never applied, and an empty patch
        // (nothing missing, e.g. on reinvocation) is not returned at all.
        if stage == Stage::Mutate && decision.allowed() && !decision.patch.0.is_empty() {
            for &index in &decision.mutated_by {
                self.mutations
                    .get_or_create(&MutationLabels {
                        policy: all[index].shared_name().clone(),
                        kind: kind.as_str(),
                        dry_run: dry_run_label(dry_run),
                    })
                    .inc();
            }
        }
    }

    /// Records a request that could not be answered with a review.
    pub fn record_error(&self, stage: Stage, elapsed: Duration) {
        self.record_request(stage, None, Kind::Other, Verdict::Error, false, elapsed);
    }

    /// `operation` is `None` for a request that was not a readable review.
    fn record_request(
        &self,
        stage: Stage,
        operation: Option<Operation>,
        kind: Kind,
        verdict: Verdict,
        dry_run: bool,
        elapsed: Duration,
    ) {
        let index = Handles::request(stage, operation, kind, verdict, dry_run);
        self.handles.requests[index]
            .get_or_init(|| {
                let decision = match verdict {
                    Verdict::Allowed => "allowed",
                    Verdict::Denied => "denied",
                    Verdict::Error => "error",
                };
                self.requests.get_or_create_owned(&RequestLabels {
                    webhook: webhook(stage),
                    operation: operation.map_or("unknown", Operation::as_str),
                    kind: kind.as_str(),
                    decision,
                    dry_run: dry_run_label(dry_run),
                })
            })
            .inc();
        let stage_index = usize::from(stage == Stage::Mutate);
        self.handles.duration[stage_index]
            .get_or_init(|| self.duration.get_or_create_owned(&WebhookLabels { webhook: webhook(stage) }))
            .observe(elapsed.as_secs_f64());
    }

    /// The `policy_results` series of `policies`: those kept, when they are
    /// of this set (its policies' names are the same allocations), else new.
    fn policy_result_handles(&self, policies: &PolicySet) -> Arc<PolicyResultHandles> {
        let same = |handles: &PolicyResultHandles| {
            handles.names.len() == policies.len()
                && handles.names.iter().zip(policies.policies()).all(|(name, p)| Arc::ptr_eq(name, p.shared_name()))
        };
        let current = self.handles.policy_results.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if same(&current) {
            return current;
        }
        let fresh = Arc::new(PolicyResultHandles {
            names: policies.policies().iter().map(|p| p.shared_name().clone()).collect(),
            results: policies.policies().iter().map(|_| Default::default()).collect(),
        });
        *self.handles.policy_results.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh.clone();
        fresh
    }

    /// A policy set was loaded (at start or on reload).
    pub fn policies_loaded(&self, count: usize) {
        self.policies_loaded.set(count as i64);
    }

    /// Counts a policy reload attempt.
    pub fn policy_reload(&self, success: bool) {
        self.policy_reloads.get_or_create(&ResultLabels { result: if success { "success" } else { "failure" } }).inc();
    }

    /// Counts a certificate reload attempt.
    pub fn tls_reload(&self, success: bool) {
        self.tls_reloads.get_or_create(&ResultLabels { result: if success { "success" } else { "failure" } }).inc();
    }

    /// Sets the serving certificate's expiry (Unix seconds).
    pub fn tls_expiry(&self, unix_seconds: f64) {
        self.tls_expiry.set(unix_seconds);
    }

    /// Whether reviews use a stale snapshot of namespace labels.
    pub fn namespace_cache_stale(&self, stale: bool) {
        self.namespace_cache_stale.set(i64::from(stale));
    }

    /// Counts a failed attempt to list or watch namespaces.
    pub fn namespace_watch_error(&self) {
        self.namespace_watch_errors.inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The metrics in the Prometheus text format 0.0.4, for scrapers that do
    /// not ask for OpenMetrics (and for `promtool check metrics`).
    pub fn encode_prometheus(&self) -> String {
        openmetrics_to_prometheus(&self.encode())
    }
}

/// Rewrites OpenMetrics text as Prometheus text 0.0.4: a counter family's
/// HELP and TYPE name its `_total` samples, and UNIT and EOF lines go.
/// (prometheus-client encodes OpenMetrics only.)
fn openmetrics_to_prometheus(openmetrics: &str) -> String {
    let counters: Vec<&str> =
        openmetrics.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(&name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled() -> PolicySet {
        crate::policy::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
            .expect("bundled policies load")
    }

    /// A decision in which `https-redirect` added one operation to the patch.
    fn patched(policies: &PolicySet) -> Decision {
        let index = policies.policies().iter().position(|p| p.name() == "https-redirect").unwrap();
        let patch =
            serde_json::from_value(serde_json::json!([{"op": "add", "path": "/metadata/annotations/x", "value": "y"}]))
                .unwrap();
        Decision { patch, mutated_by: vec![index], ..Decision::default() }
    }

    fn mutation_samples(metrics: &Metrics) -> Vec<String> {
        metrics
            .encode_prometheus()
            .lines()
            .filter(|l| l.starts_with("portcullis_mutations_total{"))
            .map(String::from)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    #[test]
    fn mutations_count_only_patches_returned_in_allowed_responses() {
        let policies = bundled();
        let metrics = Metrics::new();
        let record = |dry_run, decision: &Decision| {
            metrics.record_review(
                Stage::Mutate,
                Operation::Create,
                Kind::Ingress,
                "shop",
                dry_run,
                decision,
                &policies,
                Duration::ZERO,
            )
        };
        // No patch to return: not counted, whoever was listed.
        let mut empty = patched(&policies);
        empty.patch = json_patch::Patch(Vec::new());
        record(false, &empty);
        // A denied response: the API server ignores its patch.
        let mut denied = patched(&policies);
        denied.findings.push(crate::engine::PolicyFinding {
            policy: Some(0),
            severity: crate::engine::Severity::Deny,
            text: "no".into(),
            pre_existing: false,
            validation: None,
        });
        record(false, &denied);
        assert_eq!(mutation_samples(&metrics), Vec::<String>::new());

        record(false, &patched(&policies));
        record(true, &patched(&policies));
        record(true, &patched(&policies));
        assert_eq!(
            mutation_samples(&metrics),
            vec![
                r#"portcullis_mutations_total{policy="https-redirect",kind="Ingress",dry_run="false"} 1"#,
                r#"portcullis_mutations_total{policy="https-redirect",kind="Ingress",dry_run="true"} 2"#,
            ]
        );
    }

    #[test]
    fn an_unreadable_object_is_one_rejection_by_portcullis() {
        let policies = bundled();
        let metrics = Metrics::new();
        let manifest = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                          "spec": {"type": 7}});
        let review = crate::admission::Review::from_manifest(
            &manifest,
            "production",
            Operation::Create,
            crate::admission::Requester::default(),
        );
        let decision =
            crate::engine::evaluate(&review.input(Stage::Validate), &policies, crate::engine::NamespaceLabels::none());
        assert!(decision.results.len() > 1, "several policies match: {:?}", decision.results);
        metrics.record_review(
            Stage::Validate,
            Operation::Create,
            Kind::Service,
            "production",
            false,
            &decision,
            &policies,
            Duration::ZERO,
        );
        let rejections: Vec<String> = metrics
            .encode_prometheus()
            .lines()
            .filter(|l| l.starts_with("portcullis_admission_rejections_total{"))
            .map(String::from)
            .collect();
        assert_eq!(
            rejections,
            [
                r#"portcullis_admission_rejections_total{policy="portcullis",kind="Service",operation="CREATE",namespace="production",dry_run="false"} 1"#
            ]
        );
    }

    #[test]
    fn policy_results_follow_the_policy_set_from_one_review_to_the_next() {
        use crate::engine::{Outcome, PolicyResult};
        let policy = |name: &str, action: &str| {
            format!(
                "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{name: {name}}}\n\
                 spec: {{action: {action}, rule: {{externalIPs: {{}}}}}}\n---\n"
            )
        };
        let load = |text: String| crate::policy::load_sources(&[(std::path::PathBuf::from("p.yaml"), text)]).unwrap();
        let first = load(policy("a", "Deny") + &policy("b", "Warn"));
        // A reload: the same names in another order, `a` now a warning.
        let reloaded = load(policy("b", "Warn") + &policy("a", "Warn"));
        let metrics = Metrics::new();
        let record = |set: &PolicySet, results: Vec<PolicyResult>| {
            let decision = Decision { results, ..Decision::default() };
            metrics.record_review(
                Stage::Validate,
                Operation::Create,
                Kind::Service,
                "dev",
                false,
                &decision,
                set,
                Duration::ZERO,
            );
        };
        let result = |policy, outcome| PolicyResult { policy, outcome };
        record(&first, vec![result(0, Outcome::Fail), result(1, Outcome::Pass)]);
        record(&first, vec![result(0, Outcome::Fail), result(1, Outcome::Fail)]);
        record(&reloaded, vec![result(0, Outcome::Pass), result(1, Outcome::Fail)]);
        record(&first, vec![result(0, Outcome::Pass)]);
        let samples: Vec<String> = metrics
            .encode_prometheus()
            .lines()
            .filter(|l| {
                l.starts_with("portcullis_policy_results_total{") || l.starts_with("portcullis_admission_requests")
            })
            .map(String::from)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            samples,
            [
                r#"portcullis_admission_requests_total{webhook="validate",operation="CREATE",kind="Service",decision="allowed",dry_run="false"} 4"#,
                r#"portcullis_policy_results_total{policy="a",action="deny",result="fail"} 2"#,
                r#"portcullis_policy_results_total{policy="a",action="deny",result="pass"} 1"#,
                r#"portcullis_policy_results_total{policy="a",action="warn",result="fail"} 1"#,
                r#"portcullis_policy_results_total{policy="b",action="warn",result="fail"} 1"#,
                r#"portcullis_policy_results_total{policy="b",action="warn",result="pass"} 2"#,
            ]
        );
    }

    #[test]
    fn prometheus_text_names_counters_by_their_samples() {
        let openmetrics = "# HELP portcullis_x Things.\n# TYPE portcullis_x counter\nportcullis_x_total{a=\"b\"} 1\n\
                           # HELP portcullis_d Time.\n# TYPE portcullis_d histogram\n# UNIT portcullis_d seconds\n\
                           portcullis_d_count 2\n# HELP portcullis_g Level.\n# TYPE portcullis_g gauge\nportcullis_g 3\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus(openmetrics),
            "# HELP portcullis_x_total Things.\n# TYPE portcullis_x_total counter\nportcullis_x_total{a=\"b\"} 1\n\
             # HELP portcullis_d Time.\n# TYPE portcullis_d histogram\nportcullis_d_count 2\n\
             # HELP portcullis_g Level.\n# TYPE portcullis_g gauge\nportcullis_g 3\n"
        );
    }
}
