//! OpenReports (`openreports.io/v1alpha1` `Report`) written by the background
//! audit with `--audit-reports`: one Report named `portcullis` per namespace
//! (not one per object, so etcd holds one small object per namespace), owned
//! by its Namespace, holding at most [`MAX_RESULTS`] results (the worst first:
//! fail, error, warn; then kind, name, policy; an annotation
//! [`TRUNCATED`] says how many were left out) and exact summary counts.
//!
//! Reports are written by server-side apply (field manager `portcullis`,
//! forced), and only when their content changed since the last apply: each
//! result keeps the time it was first seen, so a scan that finds the same
//! results produces the same Report and no API call. After a restart the first
//! scan reads each namespace's Report once (one GET) to take over its
//! first-seen times and content. A namespace whose violations are all fixed
//! keeps a Report with no results (its `pass` count says what was checked);
//! a deleted namespace takes its Report with it.
//!
//! Before each scan's writes discovery is asked whether the Report CRD is
//! installed; when it is not, one warning is logged (until it is installed),
//! `portcullis_audit_report_writes_total{result="not_installed"}` counts the
//! scan, and auditing goes on without Reports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::scan::{NamespaceFindings, Scan, Summary, Verdict};
use crate::engine::Action;
use crate::metrics::{Metrics, ReportWrite};

/// The most results one Report holds.
pub const MAX_RESULTS: usize = 100;

/// The name of the Report in each namespace.
pub const REPORT_NAME: &str = "portcullis";

/// The field manager of the server-side applies.
pub const FIELD_MANAGER: &str = "portcullis";

/// The annotation of a Report that holds fewer results than were found.
pub const TRUNCATED: &str = "portcullis.dev/truncated";

pub const GROUP: &str = "openreports.io";
pub const VERSION: &str = "v1alpha1";

/// `metav1.Timestamp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    pub seconds: i64,
    #[serde(default)]
    pub nanos: i32,
}

/// One result of a Report: one object failing one policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReportResult {
    pub policy: String,
    pub rule: String,
    pub category: String,
    pub severity: String,
    pub timestamp: Timestamp,
    pub result: String,
    pub resources: Vec<ObjectReference>,
    pub message: String,
    pub properties: BTreeMap<String, String>,
}

/// What is compared between scans: the Report but its metadata's constants.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Content {
    pub summary: Summary,
    pub results: Vec<ReportResult>,
    /// The [`TRUNCATED`] annotation.
    pub truncated: Option<String>,
}

/// The Report as applied.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    api_version: String,
    kind: &'static str,
    metadata: ObjectMeta,
    source: &'static str,
    summary: Summary,
    results: &'a [ReportResult],
}

/// The key of a result: kind, name, policy.
type ResultKey = (String, String, String);

/// When each result of a namespace was first seen, with its result.
type FirstSeen = HashMap<ResultKey, (String, i64)>;

fn severity(action: Action) -> &'static str {
    match action {
        Action::Deny => "high",
        Action::Warn => "medium",
        Action::Audit => "low",
    }
}

/// The content of a namespace's Report: results sorted as the scan sorted
/// them, at most `max` of them, each timestamped when first seen (`now` for a
/// new one). `first_seen` is updated and keeps only the results found now.
pub fn content(findings: &NamespaceFindings, first_seen: &mut FirstSeen, now: i64, max: usize) -> Content {
    let mut seen = FirstSeen::new();
    let mut results = Vec::with_capacity(findings.violations.len().min(max));
    for (index, violation) in findings.violations.iter().enumerate() {
        let key = (violation.kind.as_str().to_owned(), violation.name.clone(), violation.policy.clone());
        let result = violation.verdict.as_str();
        let since = match first_seen.get(&key) {
            Some((was, since)) if was == result => *since,
            _ => now,
        };
        seen.insert(key, (result.to_owned(), since));
        if index >= max {
            continue;
        }
        let api_version = match violation.kind.group() {
            "" => "v1".to_owned(),
            group => format!("{group}/v1"),
        };
        results.push(ReportResult {
            policy: violation.policy.clone(),
            rule: violation.rule.to_owned(),
            category: "exposure".to_owned(),
            severity: if violation.verdict == Verdict::Error { "high" } else { severity(violation.action) }.to_owned(),
            timestamp: Timestamp { seconds: since, nanos: 0 },
            result: result.to_owned(),
            resources: vec![ObjectReference {
                api_version: Some(api_version),
                kind: Some(violation.kind.as_str().to_owned()),
                name: Some(violation.name.clone()),
                namespace: None,
                uid: violation.uid.clone(),
                ..ObjectReference::default()
            }],
            message: violation.message.clone(),
            properties: [("action".to_owned(), violation.action.as_str().to_owned())].into(),
        });
    }
    *first_seen = seen;
    let total = findings.violations.len();
    let truncated = (total > max).then(|| {
        format!(
            "{max} of {total} results shown (fail, error, warn first; then kind, name, policy); the summary counts all"
        )
    });
    Content { summary: findings.summary, results, truncated }
}

/// The Report of `namespace` (whose uid is `uid`) with `content`, as applied.
pub fn body(namespace: &str, uid: &str, content: &Content) -> serde_json::Value {
    let metadata = ObjectMeta {
        name: Some(REPORT_NAME.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some([("app.kubernetes.io/managed-by".to_owned(), "portcullis".to_owned())].into()),
        annotations: content.truncated.as_ref().map(|text| [(TRUNCATED.to_owned(), text.clone())].into()),
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Namespace".to_owned(),
            name: namespace.to_owned(),
            uid: uid.to_owned(),
            ..OwnerReference::default()
        }]),
        ..ObjectMeta::default()
    };
    let report = Report {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: "Report",
        metadata,
        source: "portcullis",
        summary: content.summary,
        results: &content.results,
    };
    serde_json::to_value(&report).expect("a Report serializes")
}

/// What one namespace's Report was last applied with.
#[derive(Default)]
struct Written {
    /// The Report was read from the API server (after a start) or applied.
    seeded: bool,
    content: Option<Content>,
    first_seen: FirstSeen,
    uid: Option<String>,
}

/// Writes the Reports of each scan, remembering what it wrote.
pub struct ReportWriter {
    client: Client,
    metrics: Arc<Metrics>,
    max_results: usize,
    resource: ApiResource,
    namespaces: BTreeMap<String, Written>,
    /// Whether the last scan found the CRD; `None` before the first.
    installed: Option<bool>,
}

impl ReportWriter {
    pub fn new(client: Client, metrics: Arc<Metrics>, max_results: usize) -> ReportWriter {
        let gvk = GroupVersionKind::gvk(GROUP, VERSION, "Report");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "reports");
        ReportWriter { client, metrics, max_results, resource, namespaces: BTreeMap::new(), installed: None }
    }

    /// Whether the API server serves Reports; `None` when it cannot tell.
    async fn crd_installed(&self) -> Option<bool> {
        match self.client.list_api_group_resources(&format!("{GROUP}/{VERSION}")).await {
            Ok(list) => Some(list.resources.iter().any(|resource| resource.name == "reports")),
            Err(kube::Error::Api(status)) if status.code == 404 => Some(false),
            Err(error) => {
                warn!(%error, "cannot tell whether the Report CRD is installed; no Reports written after this scan");
                None
            }
        }
    }

    /// Writes the Reports of `scan` that changed; `exists` tells whether a
    /// namespace still exists. `now` is the scan's time (Unix seconds).
    pub async fn write(&mut self, scan: &Scan, now: i64, exists: &(dyn Fn(&str) -> bool + Send + Sync)) {
        match self.crd_installed().await {
            None => {
                self.metrics.audit_report(ReportWrite::Failed);
                return;
            }
            Some(false) => {
                if self.installed != Some(false) {
                    warn!(
                        crd = "reports.openreports.io",
                        "the OpenReports Report CRD is not installed: auditing without Reports (asked again at every scan)"
                    );
                }
                self.installed = Some(false);
                self.metrics.audit_report(ReportWrite::NotInstalled);
                return;
            }
            Some(true) => {
                if self.installed == Some(false) {
                    info!(crd = "reports.openreports.io", "the Report CRD is installed now; writing Reports");
                }
                self.installed = Some(true);
            }
        }
        self.namespaces.retain(|namespace, _| exists(namespace));
        let names: BTreeSet<String> = scan
            .namespaces
            .keys()
            .chain(self.namespaces.keys())
            .filter(|namespace| exists(namespace))
            .cloned()
            .collect();
        let (mut applied, mut unchanged) = (0, 0);
        for namespace in names {
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &namespace, &self.resource);
            let mut written = self.namespaces.remove(&namespace).unwrap_or_default();
            if !written.seeded {
                match api.get_opt(REPORT_NAME).await {
                    Ok(found) => {
                        if let Some(found) = found {
                            seed(&mut written, &found);
                        }
                        written.seeded = true;
                    }
                    Err(error) => debug!(%namespace, %error, "cannot read the Report; applying it anew"),
                }
            }
            let findings = scan.namespaces.get(&namespace).cloned().unwrap_or_default();
            let content = content(&findings, &mut written.first_seen, now, self.max_results);
            if written.content.as_ref() == Some(&content) {
                unchanged += 1;
                self.namespaces.insert(namespace, written);
                continue;
            }
            if written.uid.is_none() {
                let namespaces: Api<Namespace> = Api::all(self.client.clone());
                written.uid = match namespaces.get_metadata_opt(&namespace).await {
                    Ok(found) => found.and_then(|found| found.metadata.uid),
                    Err(error) => {
                        debug!(%namespace, %error, "cannot read the namespace for the Report's owner");
                        None
                    }
                };
            }
            let Some(uid) = written.uid.clone() else {
                warn!(%namespace, "cannot read the namespace's uid; its Report is written at a later scan");
                self.metrics.audit_report(ReportWrite::Failed);
                self.namespaces.insert(namespace, written);
                continue;
            };
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match api.patch(REPORT_NAME, &params, &Patch::Apply(body(&namespace, &uid, &content))).await {
                Ok(_) => {
                    applied += 1;
                    written.content = Some(content);
                    written.seeded = true;
                    self.metrics.audit_report(ReportWrite::Applied);
                }
                Err(error) => {
                    warn!(%namespace, %error, "cannot apply the Report; trying again at the next scan");
                    self.metrics.audit_report(ReportWrite::Failed);
                }
            }
            self.namespaces.insert(namespace, written);
        }
        debug!(applied, unchanged, "audit Reports written");
    }
}

/// Takes over what a Report found on the API server says: its content and
/// the first-seen time of each result.
fn seed(written: &mut Written, found: &DynamicObject) {
    let field = |name: &str| found.data.get(name).cloned().unwrap_or_default();
    let summary: Summary = serde_json::from_value(field("summary")).unwrap_or_default();
    let results: Vec<ReportResult> = serde_json::from_value(field("results")).unwrap_or_default();
    let truncated = found.metadata.annotations.as_ref().and_then(|annotations| annotations.get(TRUNCATED)).cloned();
    for result in &results {
        let Some(resource) = result.resources.first() else { continue };
        let key = (
            resource.kind.clone().unwrap_or_default(),
            resource.name.clone().unwrap_or_default(),
            result.policy.clone(),
        );
        written.first_seen.insert(key, (result.result.clone(), result.timestamp.seconds));
    }
    written.uid = found
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.kind == "Namespace")
        .map(|owner| owner.uid.clone());
    written.content = Some(Content { summary, results, truncated });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::audit::scan::Violation;
    use crate::engine::Kind;

    fn violation(name: &str, verdict: Verdict) -> Violation {
        Violation {
            kind: Kind::Service,
            name: name.into(),
            uid: Some(format!("uid-{name}")),
            policy: "no-nodeport-in-production".into(),
            rule: "serviceType",
            action: Action::Deny,
            verdict,
            message: "type NodePort".into(),
        }
    }

    #[test]
    fn results_keep_their_first_seen_time_and_are_bounded() {
        let findings = NamespaceFindings {
            summary: Summary { pass: 4, fail: 3, ..Summary::default() },
            violations: vec![
                violation("a", Verdict::Fail),
                violation("b", Verdict::Fail),
                violation("c", Verdict::Fail),
            ],
        };
        let mut first_seen = FirstSeen::new();
        let first = content(&findings, &mut first_seen, 100, 2);
        assert_eq!(first.results.len(), 2);
        assert_eq!(
            first.truncated.as_deref(),
            Some("2 of 3 results shown (fail, error, warn first; then kind, name, policy); the summary counts all")
        );
        assert_eq!(first.summary, Summary { pass: 4, fail: 3, ..Summary::default() });
        assert_eq!(first_seen.len(), 3, "results left out are remembered too");
        let again = content(&findings, &mut first_seen, 200, 2);
        assert_eq!(again, first, "nothing changed: the same content, with the first times");

        let fixed = NamespaceFindings {
            summary: Summary { pass: 5, fail: 2, ..Summary::default() },
            violations: vec![violation("b", Verdict::Fail), violation("c", Verdict::Fail)],
        };
        let later = content(&fixed, &mut first_seen, 300, 2);
        let times: Vec<(&str, i64)> =
            later.results.iter().map(|r| (r.resources[0].name.as_deref().unwrap(), r.timestamp.seconds)).collect();
        assert_eq!(times, [("b", 100), ("c", 100)]);
        assert_eq!(later.truncated, None);
        assert_eq!(first_seen.len(), 2);
    }

    #[test]
    fn a_report_is_owned_by_its_namespace() {
        let body = body("production", "ns-uid", &Content::default());
        assert_eq!(
            body,
            serde_json::json!({
                "apiVersion": "openreports.io/v1alpha1",
                "kind": "Report",
                "metadata": {
                    "labels": {"app.kubernetes.io/managed-by": "portcullis"},
                    "name": "portcullis",
                    "namespace": "production",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Namespace", "name": "production", "uid": "ns-uid"}]
                },
                "source": "portcullis",
                "summary": {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0},
                "results": []
            })
        );
    }
}
