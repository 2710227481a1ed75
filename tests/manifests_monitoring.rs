//! Monitoring: the optional ServiceMonitor scrapes the admin port, the
//! PrometheusRule carries `rules.yaml`, and the alerts are the documented ones
//! and query metrics portcullis exports.

use crate::common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::http::call;
use common::manifests::{Manifests, NAMESPACE, base, container, container_port, id, selects};
use common::{bundled, fixture, in_namespace, repo};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use portcullis::webhook::{AppState, admin_router, webhook_router};
use serde_json::{Value, json};

fn alert_rules() -> Value {
    let text = std::fs::read_to_string(repo("manifests/monitoring/rules.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn monitoring_is_optional_and_scrapes_the_admin_port() {
    let monitoring = Manifests::render("manifests/monitoring");
    let base = base();
    assert_eq!(
        monitoring.identities(),
        vec![
            id("monitoring.coreos.com/v1", "PrometheusRule", NAMESPACE, "portcullis"),
            id("monitoring.coreos.com/v1", "ServiceMonitor", NAMESPACE, "portcullis"),
        ]
    );
    assert!(base.0.iter().all(|doc| doc["apiVersion"] != "monitoring.coreos.com/v1"));

    let monitor = &monitoring.value("ServiceMonitor", "portcullis")["spec"];
    assert_eq!(monitor["namespaceSelector"], json!({"matchNames": [NAMESPACE]}));
    let endpoints = monitor["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["port"], "admin");
    assert_eq!(endpoints[0]["path"], "/metrics");
    assert_eq!(endpoints[0]["scheme"], "http");

    let service: Service = base.get("Service", "portcullis");
    let selector: LabelSelector = serde_json::from_value(monitor["selector"].clone()).unwrap();
    assert!(selects(&selector, service.metadata.labels.as_ref().unwrap()));
    let admin = service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .find(|port| port.name.as_deref() == Some("admin"))
        .expect("a Service port named admin");
    assert_eq!(admin.target_port, Some(IntOrString::String("admin".into())));
    assert_eq!(admin.port, container_port(&container(&base), "admin"));
}

#[test]
fn prometheus_rule_carries_the_plain_rules_file() {
    let monitoring = Manifests::render("manifests/monitoring");
    let rule = monitoring.value("PrometheusRule", "portcullis");
    assert_eq!(rule["spec"], alert_rules(), "prometheusrule.yaml and rules.yaml differ");
}

#[test]
fn alerts_are_the_documented_ones() {
    let rules = alert_rules();
    let groups = rules["groups"].as_array().unwrap();
    let alerts: Vec<(&str, &str)> = groups
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap())
        .map(|rule| (rule["alert"].as_str().unwrap(), rule["labels"]["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(
        alerts,
        vec![
            ("PortcullisRejectionSpike", "warning"),
            ("PortcullisErrors", "warning"),
            ("PortcullisHighLatency", "warning"),
            ("PortcullisCertificateExpiringSoon", "warning"),
            ("PortcullisDown", "critical"),
            ("PortcullisPolicyReloadFailing", "warning"),
            ("PortcullisAuditViolationsInProduction", "warning"),
            ("PortcullisAuditNotRunning", "warning"),
        ]
    );
}

#[tokio::test]
async fn alerts_query_metrics_portcullis_exports() {
    let state = AppState::new(bundled());
    let webhook = webhook_router(state.clone());
    // A denial (a rejection), a request without a JSON content type (an error)
    // and a failed policy reload: the label values the alerts select on.
    let nodeport = in_namespace(fixture("v1.32/service-create-nodeport.json"), "production");
    let request = Request::post("/validate")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&nodeport).unwrap()))
        .unwrap();
    let reply = call(&webhook, request).await;
    let (status, body) = (reply.status, reply.body);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["response"]["allowed"], json!(false));
    let request = Request::post("/validate").header(header::CONTENT_TYPE, "text/plain").body(Body::from("{}")).unwrap();
    assert_eq!(call(&webhook, request).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    state.metrics().policy_reload(false);
    // An audit scan that found a NodePort in production.
    state.metrics().audit_started(false);
    let series = portcullis::metrics::AuditSeries {
        policy: "no-nodeport-in-production".into(),
        kind: "Service",
        namespace: "production".into(),
        environment: "production".into(),
    };
    state.metrics().audit_scanned(&[(series, 1)].into(), &[("Service", 1)], std::time::Duration::ZERO, 1.0);

    let rules = serde_json::to_string(&alert_rules()).unwrap();
    let queried: BTreeSet<String> = rules
        .match_indices("portcullis_")
        .map(|(at, _)| rules[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect();
    assert_eq!(
        queried,
        BTreeSet::from(
            [
                "portcullis_admission_duration_seconds_bucket",
                "portcullis_admission_rejections_total",
                "portcullis_admission_requests_total",
                "portcullis_audit_last_run_timestamp_seconds",
                "portcullis_audit_scans_total",
                "portcullis_audit_violations",
                "portcullis_policy_reloads_total",
                "portcullis_tls_certificate_expiry_timestamp_seconds",
            ]
            .map(String::from)
        )
    );

    // Prometheus asks for OpenMetrics; other scrapers get the Prometheus text format.
    for accept in [Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"), None] {
        let mut request = Request::get("/metrics");
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        let reply = call(&admin_router(state.clone()), request.body(Body::empty()).unwrap()).await;
        let (status, body) = (reply.status, reply.body);
        assert_eq!(status, StatusCode::OK);
        let exposition = String::from_utf8(body).unwrap();
        let samples: Vec<&str> = exposition.lines().filter(|line| !line.starts_with('#')).collect();
        let names: BTreeSet<&str> = samples.iter().map(|line| line.split(['{', ' ']).next().unwrap()).collect();
        for name in &queried {
            assert!(names.contains(name.as_str()), "{name} is not exported ({accept:?}):\n{exposition}");
        }
        let sample = |name: &str, labels: &[&str]| {
            samples
                .iter()
                .any(|line| line.starts_with(&format!("{name}{{")) && labels.iter().all(|label| line.contains(label)))
        };
        assert!(
            sample(
                "portcullis_admission_rejections_total",
                &["policy=\"no-nodeport-in-production\"", "namespace=\"production\"", "dry_run=\"false\""]
            ),
            "{exposition}"
        );
        assert!(sample("portcullis_admission_requests_total", &["decision=\"error\""]), "{exposition}");
        assert!(sample("portcullis_policy_reloads_total", &["result=\"failure\""]), "{exposition}");
        assert!(sample("portcullis_admission_duration_seconds_bucket", &["le=\"+Inf\""]), "{exposition}");
        assert!(sample("portcullis_audit_violations", &["environment=\"production\""]), "{exposition}");
        assert!(sample("portcullis_audit_scans_total", &["result=\"success\""]), "{exposition}");
    }
}
