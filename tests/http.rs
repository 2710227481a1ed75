//! The webhook router called in process (`tower::ServiceExt::oneshot`) with the
//! AdmissionReview bodies a real kube-apiserver sent.

use crate::common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use common::http::{call, get, post, post_review};
use common::{bundled, fixture, in_namespace};
use portcullis::webhook::{AppState, admin_router, webhook_router};
use serde_json::{Value, json};

fn routers() -> (Arc<AppState>, Router, Router) {
    let state = AppState::new(bundled());
    (state.clone(), webhook_router(state.clone()), admin_router(state))
}

fn fixtures() -> Vec<String> {
    let mut names = Vec::new();
    for version in ["v1.20", "v1.32"] {
        for entry in std::fs::read_dir(common::repo("tests/fixtures").join(version)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".json") {
                names.push(format!("{version}/{name}"));
            }
        }
    }
    names.sort();
    names
}

#[tokio::test]
async fn answers_every_real_api_server_review_with_its_uid_and_version() {
    let (_, webhook, _) = routers();
    let names = fixtures();
    assert_eq!(names.len(), 51);
    for name in names {
        let body = fixture(&name);
        let path = if name.contains(".mutating.") { "/mutate" } else { "/validate" };
        let out = post_review(&webhook, path, &body).await;
        assert_eq!(out["apiVersion"], body["apiVersion"], "{name}");
        assert_eq!(out["kind"], "AdmissionReview", "{name}");
        assert_eq!(out["response"]["uid"], body["request"]["uid"], "{name}");
        // webhook-test is not production: only the plain-HTTP Ingress breaks a policy there.
        let expect_allowed = !name.ends_with("/ingress-create.json");
        assert_eq!(out["response"]["allowed"], json!(expect_allowed), "{name}: {out}");
    }
}

#[tokio::test]
async fn rejects_nodeport_in_production_with_403_forbidden() {
    let (_, webhook, _) = routers();
    let body = in_namespace(fixture("v1.32/service-create-nodeport.json"), "production");
    let out = post_review(&webhook, "/validate", &body).await;
    assert_eq!(
        out,
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
            "uid": "972db847-ba69-426c-bebd-ef8cb3d479d9",
            "allowed": false,
            "status": {"status": "Failure", "code": 403, "reason": "Forbidden",
                       "message": "[no-nodeport-in-production] Service production/web-nodeport: type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS"}
        }})
    );
}

#[tokio::test]
async fn answers_v1beta1_reviews_in_v1beta1() {
    let (_, webhook, _) = routers();
    let body = in_namespace(fixture("v1.32/service-create-nodeport.admissionreview-v1beta1.json"), "prod-eu");
    let out = post_review(&webhook, "/validate", &body).await;
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(out["response"]["uid"], "39b2a05d-7ea5-4364-906b-57efe623bddc");
    assert_eq!(out["response"]["allowed"], false);
    assert_eq!(out["response"]["status"]["code"], 403);
}

#[tokio::test]
async fn denies_plain_http_ingress_without_the_advice_of_warn_policies() {
    let (_, webhook, _) = routers();
    let out = post_review(&webhook, "/validate", &fixture("v1.32/ingress-create.json")).await;
    assert_eq!(
        out["response"],
        json!({
            "uid": "9dd87190-37c6-404e-bde0-64fc830d2e05",
            "allowed": false,
            "status": {"status": "Failure", "code": 403, "reason": "Forbidden",
                       "message": "[require-ingress-tls] Ingress webhook-test/web-ingress: host web.example.com is not covered by spec.tls, so it is served over plain HTTP; add it to spec.tls[].hosts with a secretName"}
        })
    );
}

#[tokio::test]
async fn an_allowed_request_carries_the_warnings_of_warn_policies() {
    let (_, webhook, _) = routers();
    let mut body = in_namespace(fixture("v1.32/service-create-loadbalancer.json"), "prod");
    body["request"]["object"]["spec"]["loadBalancerSourceRanges"] = json!(["203.0.113.0/24"]);
    let out = post_review(&webhook, "/validate", &body).await;
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(
        out["response"]["warnings"],
        json!([
            "[warn-loadbalancer-in-production] Service prod/web-lb: type LoadBalancer costs a public IP per Service and has no routing or TLS; prefer ClusterIP behind an Ingress"
        ])
    );
}

#[tokio::test]
async fn dry_run_gets_the_same_verdict_and_is_labelled_in_metrics() {
    let (_, webhook, admin) = routers();
    let wet =
        post_review(&webhook, "/validate", &in_namespace(fixture("v1.32/service-create-nodeport.json"), "prod")).await;
    let dry =
        post_review(&webhook, "/validate", &in_namespace(fixture("v1.32/service-create-nodeport-dryrun.json"), "prod"))
            .await;
    assert_eq!(dry["response"]["allowed"], false);
    assert_eq!(
        dry["response"]["status"]["message"].as_str().unwrap().replace("web-dryrun-np", "web-nodeport"),
        wet["response"]["status"]["message"].as_str().unwrap()
    );
    let metrics = get(&admin, "/metrics").await.text();
    for line in [
        r#"portcullis_admission_requests_total{webhook="validate",operation="CREATE",kind="Service",decision="denied",dry_run="true"} 1"#,
        r#"portcullis_admission_requests_total{webhook="validate",operation="CREATE",kind="Service",decision="denied",dry_run="false"} 1"#,
        // The dry-run denial is a rejection of its own kind, which the alert leaves out.
        r#"portcullis_admission_rejections_total{policy="no-nodeport-in-production",kind="Service",operation="CREATE",namespace="prod",dry_run="true"} 1"#,
        r#"portcullis_admission_rejections_total{policy="no-nodeport-in-production",kind="Service",operation="CREATE",namespace="prod",dry_run="false"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line} in\n{metrics}");
    }
    assert_eq!(metrics.matches("portcullis_admission_rejections_total{").count(), 2, "{metrics}");
}

#[tokio::test]
async fn metrics_count_rejections_by_policy() {
    let (_, webhook, admin) = routers();
    post_review(&webhook, "/validate", &in_namespace(fixture("v1.32/service-create-nodeport.json"), "production"))
        .await;
    post_review(&webhook, "/validate", &fixture("v1.32/service-create-clusterip.json")).await;
    let openmetrics = call(
        &admin,
        Request::builder()
            .uri("/metrics")
            .header(header::ACCEPT, "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(openmetrics.content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(openmetrics.text().ends_with("# EOF\n"));
    assert!(openmetrics.text().contains("# TYPE portcullis_admission_rejections counter\n"));
    let reply = get(&admin, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let metrics = reply.text();
    assert!(metrics.contains("# TYPE portcullis_admission_rejections_total counter\n"));
    for line in [
        r#"portcullis_admission_rejections_total{policy="no-nodeport-in-production",kind="Service",operation="CREATE",namespace="production",dry_run="false"} 1"#,
        r#"portcullis_admission_requests_total{webhook="validate",operation="CREATE",kind="Service",decision="allowed",dry_run="false"} 1"#,
        r#"portcullis_policy_results_total{policy="no-nodeport-in-production",action="deny",result="fail"} 1"#,
        r#"portcullis_policy_results_total{policy="no-external-ips",action="deny",result="pass"} 2"#,
        r#"portcullis_admission_duration_seconds_count{webhook="validate"} 2"#,
        "portcullis_policies_loaded 25",
        r#"portcullis_build_info{version="0.1.0"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line} in\n{metrics}");
    }
    assert_eq!(metrics.matches("portcullis_admission_rejections_total{").count(), 1);
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let (_, webhook, admin) = routers();
    let body = serde_json::to_vec(&fixture("v1.32/service-create-clusterip.json")).unwrap();
    for content_type in [Some("text/plain"), Some("application/yaml"), None] {
        let reply = post(&webhook, "/validate", content_type, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}");
        assert_eq!(reply.text(), "Content-Type must be application/json\n");
    }
    let reply = post(&webhook, "/validate", Some("application/json; charset=utf-8"), body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let metrics = get(&admin, "/metrics").await.text();
    assert!(metrics.contains(
        r#"portcullis_admission_requests_total{webhook="validate",operation="unknown",kind="other",decision="error",dry_run="false"} 3"#
    ));
}

#[tokio::test]
async fn undecodable_reviews_are_400_with_a_one_line_reason() {
    let (_, webhook, _) = routers();
    let mut no_uid = fixture("v1.32/service-create-clusterip.json");
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"{\"kind\":\"AdmissionReview\",".to_vec(),
            "body is not a valid AdmissionReview: EOF while parsing a value at line 1 column 26\n",
        ),
        (b"".to_vec(), "body is not a valid AdmissionReview: EOF while parsing a value at line 1 column 0\n"),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            "AdmissionReview has no request\n",
        ),
        (serde_json::to_vec(&no_uid).unwrap(), "AdmissionReview request has no uid\n"),
        (br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec(), "kind must be AdmissionReview, not \"Pod\"\n"),
    ];
    for (body, reason) in cases {
        let reply = post(&webhook, "/validate", Some("application/json"), body).await;
        assert_eq!((reply.status, reply.text().as_str()), (StatusCode::BAD_REQUEST, reason));
    }
}

#[tokio::test]
async fn accepts_large_reviews_and_answers_413_beyond_8_mib() {
    let (_, webhook, _) = routers();
    let mut big = fixture("v1.32/service-create-clusterip.json");
    big["request"]["object"]["metadata"]["annotations"]["example.com/blob"] = json!("x".repeat(7 * 1024 * 1024));
    let out = post_review(&webhook, "/validate", &big).await;
    assert_eq!(out["response"]["allowed"], true);

    let mut huge = fixture("v1.32/service-create-clusterip.json");
    huge["request"]["object"]["metadata"]["annotations"]["example.com/blob"] = json!("x".repeat(9 * 1024 * 1024));
    let reply = post(&webhook, "/validate", Some("application/json"), serde_json::to_vec(&huge).unwrap()).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}

fn apply(object: &Value, patch_b64: &str) -> Value {
    let patch_json = base64::engine::general_purpose::STANDARD.decode(patch_b64).unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch_json).unwrap();
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    patched
}

#[tokio::test]
async fn mutates_a_tls_ingress_and_a_second_pass_changes_nothing() {
    let (_, webhook, _) = routers();
    let mut body = fixture("v1.32/ingress-create-tls.json");
    let out = post_review(&webhook, "/mutate", &body).await;
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(out["response"]["patchType"], "JSONPatch");
    let patch_b64 = out["response"]["patch"].as_str().expect("patch is a base64 string");
    let patch_json: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(patch_b64).unwrap()).unwrap();
    assert_eq!(
        patch_json,
        json!([{"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect", "value": "true"}])
    );
    let patched = apply(&body["request"]["object"], patch_b64);
    let mut expected = body["request"]["object"].clone();
    expected["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"] = json!("true");
    assert_eq!(patched, expected);

    body["request"]["object"] = patched;
    let again = post_review(&webhook, "/mutate", &body).await;
    assert_eq!(again["response"], json!({"uid": "d919d2c5-719a-4d75-b69e-41b480cfcccd", "allowed": true}));
}

#[tokio::test]
async fn mutation_creates_the_missing_annotations_map_and_escapes_keys() {
    let (_, webhook, _) = routers();
    let mut body = fixture("v1.32/ingress-create-tls.json");
    let object = &mut body["request"]["object"];
    object["metadata"].as_object_mut().unwrap().remove("annotations");
    object["spec"]["ingressClassName"] = json!("gce");
    let original = object.clone();
    let out = post_review(&webhook, "/mutate", &body).await;
    let patch_b64 = out["response"]["patch"].as_str().unwrap();
    let patch_json: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(patch_b64).unwrap()).unwrap();
    assert_eq!(
        patch_json,
        json!([
            {"op": "add", "path": "/metadata/annotations", "value": {}},
            {"op": "add", "path": "/metadata/annotations/kubernetes.io~1ingress.allow-http", "value": "false"},
        ])
    );
    let patched = apply(&original, patch_b64);
    assert_eq!(patched["metadata"]["annotations"], json!({"kubernetes.io/ingress.allow-http": "false"}));
}

#[tokio::test]
async fn mutate_adds_grpc_and_websocket_defaults_together() {
    let (_, webhook, _) = routers();
    let mut body = fixture("v1.32/ingress-create-tls.json");
    let object = &mut body["request"]["object"];
    object["metadata"]["annotations"] = json!({"portcullis.dev/websocket": "true"});
    for path in object["spec"]["rules"][0]["http"]["paths"].as_array_mut().unwrap() {
        path["backend"]["service"]["port"] = json!({"name": "grpc-api"});
    }
    let original = object.clone();
    let out = post_review(&webhook, "/mutate", &body).await;
    let patched = apply(&original, out["response"]["patch"].as_str().unwrap());
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({
            "portcullis.dev/websocket": "true",
            "nginx.ingress.kubernetes.io/backend-protocol": "GRPC",
            "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
            "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
        })
    );
}

/// The `portcullis_mutations_total` samples of a scrape, sorted.
async fn mutation_samples(admin: &Router) -> Vec<String> {
    let metrics = get(admin, "/metrics").await.text();
    let mut samples: Vec<String> =
        metrics.lines().filter(|l| l.starts_with("portcullis_mutations_total{")).map(String::from).collect();
    samples.sort();
    samples
}

#[tokio::test]
async fn mutations_are_counted_once_per_returned_patch() {
    let (_, webhook, admin) = routers();
    let mut body = fixture("v1.32/ingress-create-tls.json");
    // Validation never patches; a mutation that adds nothing returns no patch.
    post_review(&webhook, "/validate", &body).await;
    let plain = post_review(&webhook, "/mutate", &fixture("v1.32/ingress-create.json")).await;
    assert_eq!(plain["response"].get("patch"), None);
    assert_eq!(mutation_samples(&admin).await, Vec::<String>::new());

    let out = post_review(&webhook, "/mutate", &body).await;
    let patch = out["response"]["patch"].as_str().expect("a patch is returned");
    let counted =
        vec![r#"portcullis_mutations_total{policy="https-redirect",kind="Ingress",dry_run="false"} 1"#.to_owned()];
    assert_eq!(mutation_samples(&admin).await, counted);

    // The API server calls again (reinvocation) with the patched object: nothing
    // is missing, no patch is returned, nothing more is counted.
    let mut again = body.clone();
    again["request"]["object"] = apply(&body["request"]["object"], patch);
    let out = post_review(&webhook, "/mutate", &again).await;
    assert_eq!(out["response"].get("patch"), None);
    assert_eq!(mutation_samples(&admin).await, counted);

    // A dry run gets the same patch and is counted apart.
    body["request"]["dryRun"] = json!(true);
    let dry = post_review(&webhook, "/mutate", &body).await;
    assert_eq!(dry["response"]["patch"], patch);
    assert_eq!(
        mutation_samples(&admin).await,
        vec![
            r#"portcullis_mutations_total{policy="https-redirect",kind="Ingress",dry_run="false"} 1"#,
            r#"portcullis_mutations_total{policy="https-redirect",kind="Ingress",dry_run="true"} 1"#,
        ]
    );
}

#[tokio::test]
async fn validate_never_patches_and_mutate_never_denies() {
    let (_, webhook, _) = routers();
    let tls = post_review(&webhook, "/validate", &fixture("v1.32/ingress-create-tls.json")).await;
    assert_eq!(tls["response"].get("patch"), None);
    let plain = post_review(&webhook, "/mutate", &fixture("v1.32/ingress-create.json")).await;
    assert_eq!(plain["response"], json!({"uid": "9dd87190-37c6-404e-bde0-64fc830d2e05", "allowed": true}));
}

#[tokio::test]
async fn delete_and_unknown_kinds_are_allowed_untouched() {
    let (_, webhook, _) = routers();
    let delete = in_namespace(fixture("v1.32/service-delete.json"), "production");
    let out = post_review(&webhook, "/validate", &delete).await;
    assert_eq!(out["response"], json!({"uid": delete["request"]["uid"], "allowed": true}));

    let mut pod = fixture("v1.32/service-create-clusterip.json");
    pod["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    pod["request"]["object"] = json!({"kind": "Pod", "spec": {"containers": 7}});
    let out = post_review(&webhook, "/validate", &pod).await;
    assert_eq!(out["response"], json!({"uid": pod["request"]["uid"], "allowed": true}));
}

#[tokio::test]
async fn kinds_match_case_insensitively() {
    let (_, webhook, _) = routers();
    let mut body = in_namespace(fixture("v1.32/service-create-nodeport.json"), "production");
    body["request"]["kind"]["kind"] = json!("SERVICE");
    let out = post_review(&webhook, "/validate", &body).await;
    assert_eq!(out["response"]["allowed"], false);
}

#[tokio::test]
async fn probes_report_health_and_readiness() {
    let (state, webhook, admin) = routers();
    assert_eq!(get(&webhook, "/healthz").await.text(), "ok\n");
    assert_eq!(get(&admin, "/healthz").await.text(), "ok\n");
    let not_ready = get(&admin, "/readyz").await;
    assert_eq!((not_ready.status, not_ready.text().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"));
    state.set_ready(true);
    let ready = get(&admin, "/readyz").await;
    assert_eq!((ready.status, ready.text().as_str()), (StatusCode::OK, "ready\n"));
}

/// `promtool check metrics` on a real scrape (`$PROMTOOL`, else `promtool` from
/// the PATH). `make test` gets promtool, passes its path in PROMTOOL and sets
/// PORTCULLIS_REQUIRE_PROMTOOL=1, so there the check always runs.
#[tokio::test]
async fn a_scrape_passes_promtool_check_metrics() {
    let (_, webhook, admin) = routers();
    post_review(&webhook, "/validate", &in_namespace(fixture("v1.32/service-create-nodeport.json"), "production"))
        .await;
    post_review(&webhook, "/mutate", &fixture("v1.32/ingress-create-tls.json")).await;
    post(&webhook, "/validate", Some("text/plain"), b"x".to_vec()).await;
    let scrape = get(&admin, "/metrics").await.text();
    let promtool = std::process::Command::new(std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into()))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(child) => child,
        Err(err) if std::env::var_os("PORTCULLIS_REQUIRE_PROMTOOL").is_none() => {
            eprintln!("promtool not available ({err}); skipped here, `make test` runs it");
            return;
        }
        Err(err) => panic!("promtool is required: {err}"),
    };
    use std::io::Write;
    child.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics: {report}\n{scrape}");
}
