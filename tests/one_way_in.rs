//! One way in: the webhook (an `AdmissionReview` body), `portcullis check` (a
//! manifest) and `portcullis test` (a `PolicyTest` case) build the engine's
//! request through the same model and the same object parser, so the same
//! object gets byte-identical decisions whichever way it comes in. Checked over
//! every review in `tests/fixtures/`, in its own namespace and in `production`,
//! including a Service whose `status` does not fit the schema (which no rule
//! reads).

use crate::common;

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, header};
use common::{bundled, in_namespace, repo};
use http_body_util::BodyExt;
use portcullis::admission::Review;
use portcullis::check::input::{Format, Source};
use portcullis::engine::{self, Decision, NamespaceLabels, Operation, PolicySet, Stage};
use portcullis::webhook::{AppState, webhook_router};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Every AdmissionReview under `tests/fixtures/`, by path.
fn reviews() -> Vec<(String, Value)> {
    let mut found = Vec::new();
    let root = repo("tests/fixtures");
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                if value["kind"] == "AdmissionReview" && value["request"].is_object() {
                    found.push((path.strip_prefix(&root).unwrap().display().to_string(), value));
                }
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// What one way in decided, with the object it named.
#[derive(Debug, PartialEq)]
struct Judged {
    kind: String,
    namespace: String,
    name: String,
    validation: Decision,
    mutation: Decision,
}

fn judged(review: &Review, validation: Decision, mutation: Decision) -> Judged {
    Judged {
        kind: review.kind.as_str().to_owned(),
        namespace: review.namespace.clone(),
        name: review.name.clone(),
        validation,
        mutation,
    }
}

/// The webhook's way: the body decoded as the handler decodes it.
fn by_webhook(body: &Value, set: &PolicySet) -> (Review, Judged) {
    let review = Review::decode(&serde_json::to_vec(body).unwrap()).unwrap();
    let labels = NamespaceLabels::none();
    let validation = engine::evaluate(&review.input(Stage::Validate), set, labels);
    let mutation = engine::evaluate(&review.input(Stage::Mutate), set, labels);
    let judged = judged(&review, validation, mutation);
    (review, judged)
}

/// `portcullis check`'s way: the object as a manifest file (a CREATE).
fn by_check(object: &Value, set: &PolicySet) -> Judged {
    let text = serde_json::to_string_pretty(object).unwrap();
    let source = Source::parse("object.json".into(), None, &text, Format::Json);
    let mut checked = portcullis::check::check(&[source], set, &portcullis::check::Options::default());
    assert_eq!(checked.len(), 1);
    let c = checked.remove(0);
    Judged {
        kind: c.kind.as_str().to_owned(),
        namespace: c.namespace,
        name: c.name,
        validation: c.validation,
        mutation: c.mutation,
    }
}

/// `portcullis test`'s way: a `PolicyTest` case with the request's operation, user and objects.
fn by_suite(request: &Value, set: &PolicySet) -> Judged {
    let operation = request["operation"].as_str().unwrap();
    let deleted = operation == "DELETE";
    let object = if deleted { &request["oldObject"] } else { &request["object"] };
    let mut spec = json!({
        "operation": operation,
        "namespace": request["namespace"],
        "user": {"username": request["userInfo"]["username"], "groups": request["userInfo"]["groups"]},
        "object": object,
        "expect": {"allowed": true},
    });
    if operation == "UPDATE" {
        spec["oldObject"] = request["oldObject"].clone();
    }
    let document = json!({"apiVersion": "portcullis.dev/v1alpha1", "kind": "PolicyTest",
                          "metadata": {"name": "agree"}, "spec": spec});
    let cases =
        portcullis::suite::parse_cases(Path::new("tests/no-external-ips/agree.yaml"), &document.to_string()).unwrap();
    let review = cases[0].request();
    let labels = NamespaceLabels::none();
    let validation = engine::evaluate(&review.input(Stage::Validate), set, labels);
    let mutation = engine::evaluate(&review.input(Stage::Mutate), set, labels);
    judged(&review, validation, mutation)
}

/// The same request as a CREATE of its object, as `check` sees a manifest.
fn as_create(body: &Value) -> Value {
    let mut body = body.clone();
    body["request"]["operation"] = json!("CREATE");
    body["request"]["oldObject"] = Value::Null;
    body["request"]["dryRun"] = json!(false);
    body
}

#[test]
fn the_webhook_check_and_test_decide_alike_on_every_fixture() {
    let set = bundled();
    let mut compared = (0, 0);
    for (name, fixture) in reviews() {
        for namespace in [None, Some("production")] {
            let body = match namespace {
                Some(namespace) => in_namespace(fixture.clone(), namespace),
                None => fixture.clone(),
            };
            let request = &body["request"];
            if request["operation"] == "CONNECT" || (request["object"].is_null() && request["oldObject"].is_null()) {
                continue;
            }
            let (_, webhook) = by_webhook(&body, &set);
            assert_eq!(by_suite(request, &set), webhook, "{name} in {namespace:?}: test vs webhook");
            compared.0 += 1;

            let object = &request["object"];
            let kind = object["kind"].as_str().unwrap_or_default();
            if object.is_object() && (kind == "Service" || kind == "Ingress") {
                let (_, created) = by_webhook(&as_create(&body), &set);
                assert_eq!(by_check(object, &set), created, "{name} in {namespace:?}: check vs webhook");
                compared.1 += 1;
            }
        }
    }
    // 51 captured reviews, the demo ones and the edge cases, each in two namespaces.
    assert!(compared.0 >= 110 && compared.1 >= 80, "compared {compared:?}");
}

#[test]
fn a_malformed_status_is_judged_like_no_status_everywhere() {
    let set = bundled();
    let fixture = common::fixture("edge/service-create-loadbalancer-malformed-status.json");
    let body = in_namespace(fixture, "production");
    let object = &body["request"]["object"];
    assert_eq!(object["status"]["loadBalancer"]["ingress"], "203.0.113.10", "the status does not fit the schema");
    let mut without = object.clone();
    without.as_object_mut().unwrap().remove("status");

    let (review, webhook) = by_webhook(&body, &set);
    assert!(!webhook.validation.allowed(), "a world-open LoadBalancer in production is denied");
    assert_eq!(
        webhook.validation.message(review.about(), &set),
        "[restrict-loadbalancer-source-ranges] Service production/web-lb: type LoadBalancer without \
         loadBalancerSourceRanges is open to the whole internet; set spec.loadBalancerSourceRanges to the client CIDRs"
    );
    assert_eq!(by_check(object, &set), webhook);
    assert_eq!(by_check(&without, &set), webhook);
    assert_eq!(by_suite(&body["request"], &set), webhook);
    let review = Review::from_manifest(object, "production", Operation::Create, Default::default());
    assert!(matches!(review.object, Some(engine::Object::Service(_))), "status is not parsed at all");
}

#[tokio::test]
async fn the_router_answers_with_the_decision_the_model_gives() {
    let set = bundled();
    let router = webhook_router(AppState::new(bundled()));
    for (name, body) in reviews() {
        let path = if name.contains(".mutating.") { "/mutate" } else { "/validate" };
        let stage = if path == "/mutate" { Stage::Mutate } else { Stage::Validate };
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let review = Review::decode(&serde_json::to_vec(&body).unwrap()).unwrap();
        let decision = engine::evaluate(&review.input(stage), &set, NamespaceLabels::none());
        assert_eq!(bytes, review.respond(&decision, &set), "{name}");
    }
}
