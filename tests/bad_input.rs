//! Hostile and malformed input against the real server over TLS, while a
//! healthy client keeps reviewing: nothing panics, every answer is exact, and
//! the healthy client never fails.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::tls::{DevServer, dev_server, post};
use common::{bundled, eventually_within, fixture, in_namespace};
use portcullis::metrics::Metrics;
use portcullis::policy::PolicyStore;
use portcullis::webhook::{AppState, Limits};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(name: &str, limits: Limits) -> DevServer {
    let state = AppState::with_limits(PolicyStore::new(bundled()), Arc::new(Metrics::new()), None, limits);
    dev_server(&format!("bad-{name}"), state, Duration::ZERO, Duration::from_secs(2)).await
}

/// [`DevServer::client`] with a 10 s timeout on every request.
fn client_for(server: &DevServer, http1: bool) -> Client {
    common::tls::client_builder(&server.bundle, http1).timeout(Duration::from_secs(10)).build().unwrap()
}

/// A review whose last field is `prefix` + 100,000 nested arrays (closed), then `suffix`.
fn deep(prefix: &str, suffix: &str) -> Vec<u8> {
    let depth = 100_000;
    format!(
        "{{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",{prefix}{}{}{suffix}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes()
}

fn review_bytes(review: &Value) -> Vec<u8> {
    serde_json::to_vec(review).unwrap()
}

fn nodeport_in_production() -> Value {
    in_namespace(fixture("v1.32/service-create-nodeport.json"), "production")
}

/// Keeps reviewing a valid request until stopped; counts successes and failures.
fn healthy_client(server: &DevServer, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    let client = client_for(server, false);
    let url = server.url("/validate");
    tokio::spawn(async move {
        let (mut ok, mut failures) = (0, Vec::new());
        let body = review_bytes(&fixture("v1.32/service-create-clusterip.json"));
        while !stop.load(Ordering::SeqCst) {
            let answer = client.post(&url).header("Content-Type", "application/json").body(body.clone()).send().await;
            match answer {
                Ok(response) if response.status() == StatusCode::OK => {
                    let out: Value = response.json().await.unwrap();
                    if out["response"]["allowed"] == true { ok += 1 } else { failures.push(out.to_string()) }
                }
                Ok(response) => failures.push(format!("status {}", response.status())),
                Err(err) => failures.push(err.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (ok, failures)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_bad_input_while_a_healthy_client_keeps_working() {
    let server = start("suite", Limits { max_in_flight: 256, request_timeout: Duration::from_secs(1) }).await;
    let stop = Arc::new(AtomicBool::new(false));
    let healthy = healthy_client(&server, stop.clone());
    let url = server.url("/validate");
    let json = Some("application/json");

    for http1 in [false, true] {
        let client = client_for(&server, http1);
        let valid = review_bytes(&fixture("v1.32/service-create-clusterip.json"));
        let cases: Vec<(Option<&str>, Vec<u8>, StatusCode, &str)> = vec![
            (
                json,
                valid[..valid.len() / 2].to_vec(),
                StatusCode::BAD_REQUEST,
                "body is not a valid AdmissionReview: EOF while parsing a string at line 1 column 1125\n",
            ),
            (
                json,
                b"{\"kind\": AdmissionReview}".to_vec(),
                StatusCode::BAD_REQUEST,
                "body is not a valid AdmissionReview: expected value at line 1 column 10\n",
            ),
            (
                json,
                Vec::new(),
                StatusCode::BAD_REQUEST,
                "body is not a valid AdmissionReview: EOF while parsing a value at line 1 column 0\n",
            ),
            (
                Some("text/yaml"),
                valid.clone(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json\n",
            ),
            (None, valid.clone(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json\n"),
            (json, deep("\"extra\":", ""), StatusCode::BAD_REQUEST, "AdmissionReview has no request\n"),
            (
                json,
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                "AdmissionReview has no request\n",
            ),
            (
                json,
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":5}}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                "body is not a valid AdmissionReview: invalid type: integer `5`, expected a string at line 1 column 79\n",
            ),
        ];
        for (content_type, body, status, reason) in cases {
            let (got, text) = post(&client, &url, content_type, body).await;
            assert_eq!((got, text.as_str()), (status, reason), "http1={http1}");
        }

        // Deeply nested JSON as the object: no stack overflow, and never allowed by accident.
        let nested = deep(
            "\"request\":{\"uid\":\"u\",\"kind\":{\"kind\":\"Service\"},\"namespace\":\"prod\",\"operation\":\"CREATE\",\"object\":",
            "}",
        );
        let (status, text) = post(&client, &url, json, nested).await;
        let out: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            out["response"]["status"]["message"],
            "[portcullis] Service prod/(unnamed): the object cannot be read as a Service: invalid type: sequence, expected a map; correct the manifest"
        );

        let mut no_uid = fixture("v1.32/service-create-clusterip.json");
        no_uid["request"].as_object_mut().unwrap().remove("uid");
        assert_eq!(
            post(&client, &url, json, review_bytes(&no_uid)).await,
            (StatusCode::BAD_REQUEST, "AdmissionReview request has no uid\n".to_owned())
        );

        let mut huge = fixture("v1.32/service-create-clusterip.json");
        huge["request"]["object"]["metadata"]["annotations"]["x"] = json!("y".repeat(9 * 1024 * 1024));
        // Refused from its Content-Length; over HTTP/1.1 the server may close the
        // connection before the client has finished sending, which is fine too.
        let answer =
            client.post(&url).header("Content-Type", "application/json").body(review_bytes(&huge)).send().await;
        match answer {
            Ok(response) => assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE),
            Err(err) => assert!(http1 && err.is_request(), "http1={http1}: {err:?}"),
        }
        // That HTTP/1.1 connection is closed by the server; start on a fresh one.
        let client = client_for(&server, http1);

        // Odd but valid reviews get exact verdicts.
        let mut odd_case = nodeport_in_production();
        odd_case["request"]["kind"]["kind"] = json!("sErViCe");
        let (status, text) = post(&client, &url, json, review_bytes(&odd_case)).await;
        let out: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((status, out["response"]["allowed"].clone()), (StatusCode::OK, json!(false)));

        let v1beta1 = in_namespace(fixture("v1.32/service-create-nodeport.admissionreview-v1beta1.json"), "prod");
        let out: Value = serde_json::from_str(&post(&client, &url, json, review_bytes(&v1beta1)).await.1).unwrap();
        assert_eq!(
            (out["apiVersion"].clone(), out["response"]["allowed"].clone()),
            (json!("admission.k8s.io/v1beta1"), json!(false))
        );

        let mut numbers = nodeport_in_production();
        numbers["request"]["object"]["metadata"]["name"] = json!(42);
        let out: Value = serde_json::from_str(&post(&client, &url, json, review_bytes(&numbers)).await.1).unwrap();
        assert_eq!(out["response"]["allowed"], false, "a matched object that cannot be read is never allowed");
        assert_eq!(
            out["response"]["status"]["message"],
            "[portcullis] Service production/web-nodeport: the object cannot be read as a Service: metadata.name: invalid type: integer `42`, expected a string; correct the manifest"
        );

        let mut unknown = fixture("v1.32/service-create-clusterip.json");
        unknown["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
        unknown["request"]["object"] = json!({"spec": {"replicas": "many"}});
        let out: Value = serde_json::from_str(&post(&client, &url, json, review_bytes(&unknown)).await.1).unwrap();
        assert_eq!(out["response"]["allowed"], true);

        let mut many = fixture("v1.32/service-create-clusterip.json");
        let annotations: serde_json::Map<String, Value> =
            (0..50_000).map(|i| (format!("example.com/key-{i}"), json!(format!("value-{i}")))).collect();
        many["request"]["object"]["metadata"]["annotations"] = Value::Object(annotations);
        let (status, text) = post(&client, &url, json, review_bytes(&many)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["response"]["allowed"], true);
    }

    // A slow body: answered 408 once the request timeout passes, and the connection is closed.
    let mut slow = server.raw().await;
    slow.write_all(
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if slow.write_all(b" ").await.is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await.expect("closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
    assert!(answer.ends_with("review not received and answered within 1s\n"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));

    // Slow headers: the connection is closed by the header read timeout.
    let mut stalled = server.raw().await;
    stalled.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the stalled connection was not closed");
    assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());

    stop.store(true, Ordering::SeqCst);
    let (ok, failures) = healthy.await.unwrap();
    assert!(failures.is_empty(), "the healthy client saw failures: {failures:?}");
    assert!(ok > 20, "the healthy client only got {ok} answers");
    server.running.shutdown();
    server.running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_reviews_beyond_the_in_flight_limit_at_once() {
    let server = start("overload", Limits { max_in_flight: 2, request_timeout: Duration::from_secs(2) }).await;
    // Two slow requests hold both permits.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut raw = server.raw().await;
        raw.write_all(
            b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
        holders.push(raw);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = client_for(&server, false);
    let started = Instant::now();
    let (status, text) =
        post(&client, &server.url("/validate"), Some("application/json"), review_bytes(&nodeport_in_production()))
            .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "portcullis is overloaded: 2 reviews in flight; retry\n")
    );
    // Refused at once, not queued until a slow request times out (2 s).
    assert!(started.elapsed() < Duration::from_millis(1500), "refused after {:?}", started.elapsed());

    // Once the slow requests time out, reviews are answered again.
    let url = server.url("/validate");
    let answered = async || {
        let (status, _) = post(&client, &url, Some("application/json"), review_bytes(&nodeport_in_production())).await;
        status == StatusCode::OK
    };
    eventually_within("reviews are answered again after the slow requests timed out", Duration::from_secs(6), answered)
        .await;
    drop(holders);
    server.running.shutdown();
    server.running.wait().await.unwrap();
}
