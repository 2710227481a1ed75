//! One scan of the background audit, pure (no I/O, clock or metrics): every
//! Service and Ingress of a [`ScanInput`] judged as `portcullis check` judges
//! a manifest, a CREATE review built by [`Review::from_manifest`] and
//! [`engine::evaluate`] at the validating stage, into a [`Scan`]: the
//! violations of each namespace, their [`Summary`] and the
//! `portcullis_audit_violations` series.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use serde::Serialize;

use crate::admission::{Requester, Review};
use crate::cluster::ingress_classes::Snapshot;
use crate::cluster::namespaces::Labels;
use crate::cluster::objects::{Lean, Objects};
use crate::engine::{self, Action, Input, Kind, NamespaceLabels, Operation, Outcome, PolicySet, Severity, Stage};
use crate::metrics::AuditSeries;

/// How one (object, policy) pair came out in a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// A Deny policy's violation.
    Fail,
    /// The object could not be read as its kind.
    Error,
    /// A Warn or Audit policy's violation.
    Warn,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Fail => "fail",
            Verdict::Error => "error",
            Verdict::Warn => "warn",
        }
    }
}

/// One object that fails one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: Kind,
    pub name: String,
    pub uid: Option<String>,
    pub policy: String,
    /// The policy's rule type (`serviceType`).
    pub rule: &'static str,
    pub action: Action,
    pub verdict: Verdict,
    /// The policy's findings about the object, one per line, without the
    /// `[policy] Kind namespace/name: ` prefix.
    pub message: String,
}

/// Counts of (object, policy) pairs of one namespace, as OpenReports sums them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Summary {
    pub pass: u64,
    pub fail: u64,
    pub warn: u64,
    pub error: u64,
    pub skip: u64,
}

/// What a scan found in one namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NamespaceFindings {
    pub summary: Summary,
    /// Sorted: fail, error, warn; then kind, name and policy.
    pub violations: Vec<Violation>,
}

/// What one scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Objects judged, by kind.
    pub objects: Vec<(&'static str, usize)>,
    /// The `portcullis_audit_violations` series and their counts.
    pub series: BTreeMap<AuditSeries, u64>,
    /// Namespaces where at least one policy matched an object.
    pub namespaces: BTreeMap<String, NamespaceFindings>,
}

/// The labels of a namespace; `None` when it is not known.
pub type LabelsOf = Box<dyn Fn(&str) -> Option<Labels> + Send>;

/// What a scan reads; each part a snapshot taken when the scan began.
pub struct ScanInput {
    pub policies: Arc<PolicySet>,
    pub services: Arc<Objects<Service>>,
    pub ingresses: Arc<Objects<Ingress>>,
    pub classes: Snapshot,
    /// The labels of a namespace; `None` when it is not known.
    pub labels: LabelsOf,
}

/// Judges every object of `input` (pure: no I/O, clock or metrics).
pub fn scan(input: &ScanInput) -> Scan {
    let mut scan = Scan {
        objects: vec![(Kind::Service.as_str(), input.services.len()), (Kind::Ingress.as_str(), input.ingresses.len())],
        ..Scan::default()
    };
    let mut environments: BTreeMap<String, String> = BTreeMap::new();
    for ((namespace, name), service) in input.services.iter() {
        judge(&mut scan, &mut environments, input, namespace, name, service.as_ref());
    }
    for ((namespace, name), ingress) in input.ingresses.iter() {
        judge(&mut scan, &mut environments, input, namespace, name, ingress.as_ref());
    }
    for findings in scan.namespaces.values_mut() {
        findings.violations.sort_by(|a, b| {
            (a.verdict, a.kind.as_str(), &a.name, &a.policy).cmp(&(b.verdict, b.kind.as_str(), &b.name, &b.policy))
        });
    }
    scan
}

fn judge<K: Lean + Serialize>(
    scan: &mut Scan,
    environments: &mut BTreeMap<String, String>,
    input: &ScanInput,
    namespace: &str,
    name: &str,
    object: &K,
) {
    let Ok(manifest) = serde_json::to_value(object) else { return };
    let review = Review::from_manifest(&manifest, namespace, Operation::Create, Requester::default());
    let labels = (input.labels)(namespace);
    let namespace_labels = match &labels {
        Some(labels) => NamespaceLabels::Known(labels),
        None => NamespaceLabels::Unknown,
    };
    let engine_input = Input { ingress_classes: input.classes.classes(), ..review.input(Stage::Validate) };
    let policies = &input.policies;
    let decision = engine::evaluate(&engine_input, policies, namespace_labels);
    if decision.results.is_empty() {
        return;
    }
    let environment = environments
        .entry(namespace.to_owned())
        .or_insert_with(|| {
            let names: Vec<&str> = policies
                .environments()
                .iter()
                .filter(|environment| environment.contains(namespace, namespace_labels))
                .map(|environment| environment.name())
                .collect();
            names.join(",")
        })
        .clone();
    let findings = scan.namespaces.entry(namespace.to_owned()).or_default();
    for result in &decision.results {
        let policy = &policies.policies()[result.policy];
        let verdict = match (result.outcome, policy.action()) {
            (Outcome::Pass, _) => {
                findings.summary.pass += 1;
                continue;
            }
            (Outcome::Error, _) => Verdict::Error,
            (Outcome::Fail, Action::Deny) => Verdict::Fail,
            (Outcome::Fail, Action::Warn | Action::Audit) => Verdict::Warn,
        };
        let message = if verdict == Verdict::Error {
            decision
                .findings
                .iter()
                .filter(|finding| finding.policy.is_none() && finding.severity == Severity::Deny)
                .map(|finding| finding.text.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            decision
                .findings
                .iter()
                .filter(|finding| finding.policy == Some(result.policy) && finding.severity != Severity::Notice)
                .map(|finding| finding.text.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        };
        match verdict {
            Verdict::Fail => findings.summary.fail += 1,
            Verdict::Warn => findings.summary.warn += 1,
            Verdict::Error => findings.summary.error += 1,
        }
        if verdict != Verdict::Error {
            let series = AuditSeries {
                policy: policy.name().to_owned(),
                kind: review.kind.as_str(),
                namespace: namespace.to_owned(),
                environment: environment.clone(),
            };
            *scan.series.entry(series).or_default() += 1;
        }
        findings.violations.push(Violation {
            kind: review.kind,
            name: name.to_owned(),
            uid: object.meta().uid.clone(),
            policy: policy.name().to_owned(),
            rule: policy.rule().name(),
            action: policy.action(),
            verdict,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects<K: Lean>(items: &[serde_json::Value]) -> Arc<Objects<K>> {
        Arc::new(
            items
                .iter()
                .map(|item| {
                    let object: K = serde_json::from_value(item.clone()).unwrap();
                    let meta = object.meta();
                    ((meta.namespace.clone().unwrap(), meta.name.clone().unwrap()), Arc::new(object))
                })
                .collect(),
        )
    }

    fn bundled() -> Arc<PolicySet> {
        Arc::new(crate::policy::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap())
    }

    #[test]
    fn a_scan_counts_each_failing_policy_once_per_object_by_environment() {
        let services = objects::<Service>(&[
            json!({"metadata": {"name": "web", "namespace": "production", "uid": "u1"},
                   "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
            json!({"metadata": {"name": "api", "namespace": "production"},
                   "spec": {"type": "NodePort", "externalIPs": ["203.0.113.9"], "ports": [{"port": 80}]}}),
            json!({"metadata": {"name": "dev", "namespace": "dev"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
            json!({"metadata": {"name": "dns", "namespace": "kube-system"}, "spec": {"type": "NodePort"}}),
        ]);
        let input = ScanInput {
            policies: bundled(),
            services,
            ingresses: Arc::default(),
            classes: Default::default(),
            labels: Box::new(|_| Some(Arc::default())),
        };
        let scan = scan(&input);
        let series: Vec<(String, &str, String, String, u64)> = scan
            .series
            .iter()
            .map(|(s, count)| (s.policy.clone(), s.kind, s.namespace.clone(), s.environment.clone(), *count))
            .collect();
        assert_eq!(
            series,
            [
                ("no-external-ips".into(), "Service", "production".into(), "production".into(), 1),
                ("no-nodeport-in-production".into(), "Service", "production".into(), "production".into(), 2),
            ]
        );
        assert_eq!(scan.objects, [("Service", 4), ("Ingress", 0)]);
        assert!(!scan.namespaces.contains_key("kube-system"), "no policy matches there");
        let production = &scan.namespaces["production"];
        let found: Vec<(&str, &str, Verdict)> =
            production.violations.iter().map(|v| (v.name.as_str(), v.policy.as_str(), v.verdict)).collect();
        assert_eq!(
            found,
            [
                ("api", "no-external-ips", Verdict::Fail),
                ("api", "no-nodeport-in-production", Verdict::Fail),
                ("web", "no-nodeport-in-production", Verdict::Fail),
            ]
        );
        assert_eq!(production.violations[2].uid.as_deref(), Some("u1"));
        assert_eq!(production.violations[2].rule, "serviceType");
        assert_eq!(
            production.violations[2].message,
            "type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS"
        );
        assert_eq!(production.summary.fail, 3);
        // In dev the NodePort breaks nothing: no-external-ips and restrict-external-names pass.
        assert_eq!(scan.namespaces["dev"].summary, Summary { pass: 2, ..Summary::default() });
        assert!(scan.namespaces["dev"].violations.is_empty());
    }
}
