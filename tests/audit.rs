//! The background audit of `serve` against the Kubernetes API served in
//! process (`common::fake_api`): Services and Ingresses that exist before it
//! starts are judged from the watch-fed caches, the gauge follows watch events
//! at the next scan, OpenReports Reports are applied once per namespace and
//! not again while nothing changes, a cluster without the Report CRD is still
//! audited, and a scan that panics does not stop the next ones.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::fake_api::{FakeApi, Resource};
use common::{bundled, eventually, install_crypto};
use portcullis::cluster::audit::{Audit, Options};
use portcullis::cluster::{IngressClassCache, NamespaceCache};
use portcullis::metrics::Metrics;
use portcullis::policy::PolicyStore;
use serde_json::{Value, json};

const INTERVAL: Duration = Duration::from_millis(100);

const NODEPORT_IN_PRODUCTION: &str = r#"portcullis_audit_violations{policy="no-nodeport-in-production",kind="Service",namespace="production",environment="production"} 1"#;

fn fake(resources: &[Resource]) -> FakeApi {
    let mut served = vec![Resource::NAMESPACES, Resource::INGRESS_CLASSES, Resource::SERVICES, Resource::INGRESSES];
    served.extend_from_slice(resources);
    let api = FakeApi::new(&served, true);
    for name in ["production", "dev"] {
        api.put_object(
            Resource::NAMESPACES,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            true,
        );
    }
    api
}

/// A Service as the API server keeps it, managed fields and status included.
fn service(namespace: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2026-01-01T00:00:00Z",
                        "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                                           "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
           "spec": spec, "status": {"loadBalancer": {}}})
}

fn nodeport() -> Value {
    json!({"type": "NodePort", "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]})
}

fn cluster_ip() -> Value {
    json!({"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8080}]})
}

fn start(api: &FakeApi, reports: bool, scan_hook: Option<fn(u64)>) -> (Arc<Metrics>, Audit) {
    install_crypto();
    let metrics = Arc::new(Metrics::new());
    let client = api.client();
    let (namespaces, _) = NamespaceCache::start(client.clone(), metrics.clone());
    let (classes, _) = IngressClassCache::start(client.clone());
    let options = Options { interval: INTERVAL, reports, max_results: 100, scan_hook };
    let audit =
        Audit::start(client, PolicyStore::new(bundled()), Some(namespaces), Some(classes), metrics.clone(), options);
    (metrics, audit)
}

/// The samples of the metric family `name` (its lines), sorted.
fn samples(metrics: &Metrics, name: &str) -> Vec<String> {
    let prefix = format!("{name}{{");
    let mut lines: Vec<String> = metrics
        .encode_prometheus()
        .lines()
        .filter(|line| line.starts_with(&prefix) || line.starts_with(&format!("{name} ")))
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// The value of one sample (`name{labels}` as written), 0 when absent.
fn value(metrics: &Metrics, series: &str) -> f64 {
    metrics
        .encode_prometheus()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn scans(metrics: &Metrics) -> f64 {
    value(metrics, r#"portcullis_audit_scans_total{result="success"}"#)
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn a_nodeport_in_production_shows_in_the_gauge_and_fixing_it_drops_it_at_the_next_scan() {
    let api = fake(&[]);
    api.put_object(Resource::SERVICES, service("production", "web", nodeport()), true);
    api.put_object(Resource::SERVICES, service("dev", "web", nodeport()), true);
    let before = unix_now();
    let (metrics, _audit) = start(&api, false, None);

    eventually("the NodePort shows in the gauge", async || {
        samples(&metrics, "portcullis_audit_violations") == [NODEPORT_IN_PRODUCTION]
    })
    .await;
    assert_eq!(
        samples(&metrics, "portcullis_audit_objects"),
        [r#"portcullis_audit_objects{kind="Ingress"} 0"#, r#"portcullis_audit_objects{kind="Service"} 2"#]
    );
    let last_run = value(&metrics, "portcullis_audit_last_run_timestamp_seconds");
    assert!(last_run >= before as f64 && last_run <= unix_now() as f64 + 1.0, "{last_run}");
    assert_eq!(value(&metrics, r#"portcullis_audit_scans_total{result="failure"}"#), 0.0);

    // Fixed by a change the watch delivers: gone at the next scan, not before a scan.
    api.put_object(Resource::SERVICES, service("production", "web", cluster_ip()), true);
    eventually("the series is removed", async || samples(&metrics, "portcullis_audit_violations").is_empty()).await;
    assert_eq!(
        samples(&metrics, "portcullis_audit_objects"),
        [r#"portcullis_audit_objects{kind="Ingress"} 0"#, r#"portcullis_audit_objects{kind="Service"} 2"#]
    );
    // A new violation by watch event shows up again.
    api.put_object(Resource::SERVICES, service("production", "admin", nodeport()), true);
    eventually("the new NodePort shows", async || {
        samples(&metrics, "portcullis_audit_violations") == [NODEPORT_IN_PRODUCTION]
    })
    .await;
}

/// The `results` of a Report with each timestamp checked (between `from` and
/// `to`) and replaced by 0, and its summary.
fn results_and_summary(body: &Value, from: i64, to: i64) -> (Value, Value) {
    let mut results = body["results"].clone();
    for result in results.as_array_mut().unwrap() {
        let seconds = result["timestamp"]["seconds"].as_i64().unwrap();
        assert!(seconds >= from && seconds <= to, "{seconds} not in {from}..={to}");
        result["timestamp"]["seconds"] = json!(0);
    }
    (results, body["summary"].clone())
}

#[tokio::test]
async fn reports_are_applied_per_namespace_and_not_rewritten_while_nothing_changes() {
    let api = fake(&[Resource::REPORTS]);
    api.put_object(Resource::SERVICES, service("production", "web", nodeport()), true);
    api.put_object(Resource::SERVICES, service("dev", "api", cluster_ip()), true);
    let production_uid = api.object(Resource::NAMESPACES, "", "production").unwrap()["metadata"]["uid"].clone();
    let before = unix_now();
    let (metrics, _audit) = start(&api, true, None);

    eventually("both Reports are applied", async || api.applies().len() == 2).await;
    let applies = api.applies();
    let namespaces: Vec<&str> = applies.iter().map(|apply| apply.namespace.as_str()).collect();
    assert_eq!(namespaces, ["dev", "production"]);
    assert!(
        applies.iter().all(|apply| apply.field_manager == "portcullis" && apply.force && apply.name == "portcullis")
    );
    let production = &applies[1].body;
    assert_eq!(production["apiVersion"], "openreports.io/v1alpha1");
    assert_eq!(production["kind"], "Report");
    assert_eq!(production["source"], "portcullis");
    assert_eq!(
        production["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Namespace", "name": "production", "uid": production_uid}])
    );
    let web_uid = api.object(Resource::SERVICES, "production", "web").unwrap()["metadata"]["uid"].clone();
    let (results, summary) = results_and_summary(production, before, unix_now());
    assert_eq!(
        results,
        json!([{
            "policy": "no-nodeport-in-production",
            "rule": "serviceType",
            "category": "exposure",
            "severity": "high",
            "timestamp": {"seconds": 0, "nanos": 0},
            "result": "fail",
            "resources": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": web_uid}],
            "message": "type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS",
            "properties": {"action": "deny"}
        }])
    );
    assert_eq!(summary, json!({"pass": 4, "fail": 1, "warn": 0, "error": 0, "skip": 0}));
    let (results, summary) = results_and_summary(&applies[0].body, before, unix_now());
    assert_eq!(results, json!([]));
    assert_eq!(summary, json!({"pass": 2, "fail": 0, "warn": 0, "error": 0, "skip": 0}));
    let first_time = production["results"][0]["timestamp"].clone();

    // Several more scans find the same: no apply call.
    let done = scans(&metrics);
    eventually("three more scans", async || scans(&metrics) >= done + 3.0).await;
    assert_eq!(api.applies().len(), 2, "unchanged Reports are not applied again");
    assert_eq!(value(&metrics, r#"portcullis_audit_report_writes_total{result="applied"}"#), 2.0);

    // A second violation in production: only that Report changes, and the first
    // result keeps the time it was first seen.
    api.put_object(Resource::SERVICES, service("production", "admin", nodeport()), true);
    eventually("the production Report is applied again", async || api.applies().len() == 3).await;
    let changed = api.applies()[2].clone();
    assert_eq!(changed.namespace, "production");
    let names: Vec<&str> = changed.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resources"][0]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "web"]);
    assert_eq!(changed.body["results"][1]["timestamp"], first_time);
    assert_eq!(changed.body["summary"], json!({"pass": 8, "fail": 2, "warn": 0, "error": 0, "skip": 0}));

    // Everything fixed: the Report stays, empty.
    api.put_object(Resource::SERVICES, service("production", "admin", cluster_ip()), true);
    api.put_object(Resource::SERVICES, service("production", "web", cluster_ip()), true);
    eventually("the emptied Report is applied", async || {
        api.applies().last().is_some_and(|apply| apply.body["results"] == json!([]) && apply.namespace == "production")
    })
    .await;
    let stored = api.object(Resource::REPORTS, "production", "portcullis").unwrap();
    assert_eq!(stored["summary"], json!({"pass": 10, "fail": 0, "warn": 0, "error": 0, "skip": 0}));
    let count = api.applies().len();
    let done = scans(&metrics);
    eventually("three more scans", async || scans(&metrics) >= done + 3.0).await;
    assert_eq!(api.applies().len(), count);
}

#[tokio::test]
async fn without_the_report_crd_the_audit_goes_on_and_applies_nothing_until_it_is_installed() {
    let api = fake(&[]);
    api.put_object(Resource::SERVICES, service("production", "web", nodeport()), true);
    let (metrics, _audit) = start(&api, true, None);

    eventually("two scans without Reports", async || {
        value(&metrics, r#"portcullis_audit_report_writes_total{result="not_installed"}"#) >= 2.0
    })
    .await;
    assert_eq!(samples(&metrics, "portcullis_audit_violations"), [NODEPORT_IN_PRODUCTION]);
    assert!(api.applies().is_empty());
    assert_eq!(value(&metrics, r#"portcullis_audit_report_writes_total{result="applied"}"#), 0.0);

    api.serve(Resource::REPORTS);
    eventually("the Report is applied once the CRD is installed", async || {
        api.applies().iter().map(|apply| apply.namespace.as_str()).collect::<Vec<_>>() == ["production"]
    })
    .await;
}

#[tokio::test]
async fn a_scan_that_panics_is_counted_and_the_next_scans_still_run() {
    let api = fake(&[]);
    api.put_object(Resource::SERVICES, service("production", "web", nodeport()), true);
    let hook: fn(u64) = |scan| {
        if scan == 1 {
            panic!("injected failure of the first audit scan");
        }
    };
    let (metrics, _audit) = start(&api, false, Some(hook));

    eventually("two scans after the panic", async || scans(&metrics) >= 2.0).await;
    assert_eq!(value(&metrics, r#"portcullis_audit_scans_total{result="failure"}"#), 1.0);
    assert_eq!(samples(&metrics, "portcullis_audit_violations"), [NODEPORT_IN_PRODUCTION]);
}

#[tokio::test]
async fn a_restarted_audit_takes_the_reports_over_without_rewriting_them() {
    let api = fake(&[Resource::REPORTS]);
    api.put_object(Resource::SERVICES, service("production", "web", nodeport()), true);
    let (_, audit) = start(&api, true, None);
    eventually("the Report is applied", async || api.applies().len() == 1).await;
    drop(audit);

    // A new process (a restart, a new replica) finds the same: it reads the
    // Report once and applies nothing.
    let (metrics, _audit) = start(&api, true, None);
    eventually("three scans", async || scans(&metrics) >= 3.0).await;
    assert_eq!(api.applies().len(), 1);
    assert_eq!(value(&metrics, r#"portcullis_audit_report_writes_total{result="applied"}"#), 0.0);
}
