//! The namespace cache against a Kubernetes API served in process
//! (`common::fake_api`), handed to `kube::Client::new` as its service (no
//! network at all). Like the real API server the fake answers a request whose
//! `Accept` asks for `as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` with
//! the metadata alone, and any other request with whole Namespaces.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::fake_api::{FakeApi, Health, Resource};
use common::logs::Logs;
use common::{bundled, eventually, fixture, in_namespace, install_crypto};
use http_body_util::BodyExt;
use portcullis::cluster::{Lookup, NamespaceCache};
use portcullis::metrics::Metrics;
use portcullis::webhook::{AppState, admin_router, webhook_router};
use serde_json::{Value, json};
use tower::ServiceExt;

fn fake(list_open: bool) -> FakeApi {
    FakeApi::new(&[Resource::NAMESPACES], list_open)
}

/// Namespaces in the fake API server.
trait Namespaces {
    /// Creates or changes a namespace; `announce` sends (and records) the watch event.
    fn put(&self, name: &str, labels: Value, announce: bool);
    fn put_annotated(&self, name: &str, labels: Value, annotations: Value, announce: bool);
    /// Deletes a namespace; `announce` sends (and records) the watch event.
    fn delete(&self, name: &str, announce: bool);
}

impl Namespaces for FakeApi {
    fn put(&self, name: &str, labels: Value, announce: bool) {
        self.put_annotated(name, labels, json!({}), announce);
    }

    fn put_annotated(&self, name: &str, labels: Value, annotations: Value, announce: bool) {
        self.put_object(Resource::NAMESPACES, namespace(name, labels, annotations), announce);
    }

    fn delete(&self, name: &str, announce: bool) {
        self.delete_object(Resource::NAMESPACES, "", name, announce);
    }
}

/// A whole Namespace as the API server keeps it: besides its labels, what
/// a real one carries (uid, creation time, kubectl's annotation, managed
/// fields, spec and status), all of which portcullis has no use for.
fn namespace(name: &str, labels: Value, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z",
                        "labels": labels, "annotations": annotations,
                        "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                                           "apiVersion": "v1", "time": "2026-01-01T00:00:00Z",
                                           "fieldsType": "FieldsV1",
                                           "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}]},
           "spec": {"finalizers": ["kubernetes"]},
           "status": {"phase": "Active"}})
}

struct Webhook {
    cache: Arc<NamespaceCache>,
    state: Arc<AppState>,
    router: Router,
    admin: Router,
    metrics: Arc<Metrics>,
}

fn webhook(api: &FakeApi) -> Webhook {
    install_crypto();
    let metrics = Arc::new(Metrics::new());
    let (cache, _task) = NamespaceCache::start(api.client(), metrics.clone());
    let state = AppState::with_namespaces(bundled(), metrics.clone(), Some(cache.clone()));
    state.set_ready(true);
    Webhook { cache, router: webhook_router(state.clone()), admin: admin_router(state.clone()), state, metrics }
}

/// The value of an unlabelled sample, as `GET /metrics` on the admin listener serves it.
async fn metric(hook: &Webhook, name: &str) -> f64 {
    let response = hook.admin.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let value = text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' '));
    value.unwrap_or_else(|| panic!("no {name} in\n{text}")).parse().unwrap()
}

const STALE: &str = "portcullis_namespace_cache_stale";
const WATCH_ERRORS: &str = "portcullis_namespace_watch_errors_total";

/// The response to a NodePort Service created in `namespace`.
async fn nodeport_in(hook: &Webhook, namespace: &str) -> Value {
    let body = serde_json::to_vec(&in_namespace(fixture("v1.32/service-create-nodeport.json"), namespace)).unwrap();
    let request = Request::post("/validate").header(header::CONTENT_TYPE, "application/json").body(Body::from(body));
    let response = hook.router.clone().oneshot(request.unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice::<Value>(&bytes).unwrap()["response"].clone()
}

const PRODUCTION: fn() -> Value = || json!({"environment": "production"});

#[tokio::test]
async fn label_changes_reach_the_engine() {
    let api = fake(true);
    api.put("shop", PRODUCTION(), false);
    let hook = webhook(&api);
    eventually("the cache syncs", async || hook.state.is_ready()).await;
    let denied = nodeport_in(&hook, "shop").await;
    assert_eq!(
        denied["status"]["message"],
        "[no-nodeport-in-production] Service shop/web-nodeport: type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS"
    );

    api.put("shop", json!({"environment": "dev"}), true);
    eventually("the relabelled namespace is no longer production", async || {
        nodeport_in(&hook, "shop").await["allowed"] == json!(true)
    })
    .await;
    assert_eq!(api.gets(), 0, "served from the cache");
}

#[tokio::test]
async fn readiness_waits_for_the_first_sync() {
    let api = fake(false);
    api.put("shop", PRODUCTION(), false);
    let hook = webhook(&api);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!hook.state.is_ready(), "ready before the namespace list arrived");
    api.open_lists();
    eventually("the cache syncs", async || hook.state.is_ready()).await;
}

#[tokio::test]
async fn losing_the_api_server_keeps_the_last_snapshot() {
    let api = fake(true);
    api.put("shop", PRODUCTION(), false);
    let hook = webhook(&api);
    eventually("the cache syncs", async || hook.state.is_ready()).await;
    assert!(hook.metrics.encode().contains("portcullis_namespace_cache_stale 0\n"));

    api.go_down();
    eventually("the cache reports it is stale", async || {
        hook.metrics.encode().contains("portcullis_namespace_cache_stale 1\n")
    })
    .await;
    let still = nodeport_in(&hook, "shop").await;
    assert_eq!(still["allowed"], false, "the snapshot still says shop is production: {still}");
    assert!(hook.state.is_ready(), "a stale snapshot keeps serving");
}

#[tokio::test]
async fn an_unseen_namespace_is_fetched_else_judged_fail_safe() {
    let api = fake(true);
    let hook = webhook(&api);
    eventually("the cache syncs", async || hook.state.is_ready()).await;

    // Created after the list, its watch event not yet seen: one GET finds it.
    api.put("fresh", PRODUCTION(), false);
    let fetched = nodeport_in(&hook, "fresh").await;
    assert_eq!(fetched["allowed"], false);
    assert_eq!(fetched.get("warnings"), None);
    assert_eq!(api.gets(), 1);

    // Nobody can say: judged as if production, and told so.
    api.go_down();
    let unknown = nodeport_in(&hook, "brand-new").await;
    assert_eq!(unknown["allowed"], false);
    assert_eq!(
        unknown["warnings"],
        json!([
            "[portcullis] Service brand-new/web-nodeport: the labels of namespace brand-new are unknown, so it was judged as part of every environment its labels could select"
        ])
    );
}

#[tokio::test]
async fn labels_follow_the_cluster_within_seconds_after_an_outage() {
    let (logs, _guard) = Logs::capture("portcullis::cluster::namespaces");
    let api = fake(true);
    api.put("shop", PRODUCTION(), false);
    let hook = webhook(&api);
    eventually("the cache syncs", async || hook.state.is_ready()).await;
    assert_eq!(metric(&hook, STALE).await, 0.0);
    assert_eq!(metric(&hook, WATCH_ERRORS).await, 0.0);

    api.go_down();
    eventually("the cache reports it is stale", async || metric(&hook, STALE).await == 1.0).await;
    // Relabelled while portcullis cannot see it.
    api.put("shop", json!({"environment": "dev"}), true);
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(3) {
        assert_eq!(metric(&hook, STALE).await, 1.0, "stale all through the outage");
        assert_eq!(nodeport_in(&hook, "shop").await["allowed"], false, "the last snapshot keeps serving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hook.state.is_ready(), "a stale snapshot keeps serving");
    assert_eq!(logs.lines("WARN", "namespace watch failed;").len(), 1, "one warning per outage");
    assert_eq!(logs.lines("INFO", "namespace watch recovered").len(), 0);

    api.come_back();
    let back = Instant::now();
    eventually("the relabel reaches the engine", async || nodeport_in(&hook, "shop").await["allowed"] == true).await;
    let followed = back.elapsed();
    eprintln!("namespace labels followed the cluster {followed:?} after the API server came back");
    assert!(followed < Duration::from_secs(10), "{followed:?}");
    assert_eq!(metric(&hook, STALE).await, 0.0, "current again");

    let errors = metric(&hook, WATCH_ERRORS).await;
    assert!(errors >= 2.0, "every failed attempt counts: {errors}");
    let recovered = logs.lines("INFO", "namespace watch recovered");
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert!(recovered[0].contains(&format!(" errors={errors}")), "{recovered:?}");
    assert_eq!(logs.lines("DEBUG", "namespace watch failed again").len() as f64, errors - 1.0);
    assert_eq!(logs.lines("WARN", "namespace watch failed;").len(), 1);
}

#[tokio::test]
async fn failing_lists_keep_the_cache_stale_until_one_succeeds() {
    let (logs, _guard) = Logs::capture("portcullis::cluster::namespaces");
    let api = fake(true);
    api.put("shop", PRODUCTION(), false);
    // A token without RBAC to list namespaces: kube-runtime still sends
    // `Event::Init` before every attempt, which is no recovery.
    api.fail(Health::Forbidden);
    let hook = webhook(&api);
    eventually("the cache reports it is stale", async || metric(&hook, STALE).await == 1.0).await;
    let first = metric(&hook, WATCH_ERRORS).await;
    let failing = Instant::now();
    while failing.elapsed() < Duration::from_secs(3) {
        assert_eq!(metric(&hook, STALE).await, 1.0, "stale while every list fails");
        assert!(!hook.state.is_ready(), "ready without a namespace list");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let errors = metric(&hook, WATCH_ERRORS).await;
    // Retries after 250 ms, 500 ms, 1 s, 2 s: about four failures in 3 s, not one per 250 ms.
    assert!(errors > first && errors >= 3.0, "the counter rises: {first} then {errors}");
    assert!(errors <= 6.0, "the retries back off: {errors} failures in 3 s");
    assert_eq!(logs.lines("WARN", "namespace watch failed;").len(), 1, "one warning per outage");
    assert_eq!(logs.lines("INFO", "namespace watch recovered"), Vec::<String>::new(), "no false recovery");
    assert_eq!(logs.lines("INFO", "namespace cache synced"), Vec::<String>::new());

    api.come_back();
    eventually("the cache syncs", async || hook.state.is_ready()).await;
    assert_eq!(metric(&hook, STALE).await, 0.0);
    assert_eq!(nodeport_in(&hook, "shop").await["allowed"], false, "shop's labels came with the list");
    let errors = metric(&hook, WATCH_ERRORS).await;
    let recovered = logs.lines("INFO", "namespace watch recovered");
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert!(recovered[0].contains(&format!(" errors={errors}")), "{recovered:?}");
    assert_eq!(logs.lines("INFO", "namespace cache synced").len(), 1);
}

#[tokio::test]
async fn the_cache_is_current_again_after_an_outage_in_which_nothing_changed() {
    let api = fake(true);
    api.put("shop", PRODUCTION(), false);
    let hook = webhook(&api);
    eventually("the cache syncs", async || hook.state.is_ready()).await;

    api.go_down();
    eventually("the cache reports it is stale", async || metric(&hook, STALE).await == 1.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // No namespace changes, so a watch resumed where it stopped would send
    // nothing to prove it is back; a fresh list does.
    api.come_back();
    eventually("the cache is current again", async || metric(&hook, STALE).await == 0.0).await;
    assert_eq!(nodeport_in(&hook, "shop").await["allowed"], false);
}

const METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const METADATA_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

fn labels(value: Value) -> BTreeMap<String, String> {
    serde_json::from_value(value).unwrap()
}

/// The annotations of a Namespace applied with `kubectl apply`, grown to 64 KiB.
fn heavy_annotations() -> Value {
    json!({"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(64 * 1024), "team": "shop"})
}

#[tokio::test]
async fn the_fake_answers_metadata_requests_as_the_api_server_does() {
    let api = fake(true);
    api.put_annotated("shop", PRODUCTION(), heavy_annotations(), false);
    let ask = async |path: &str, accept: &str| {
        let request = Request::get(path).header(header::ACCEPT, accept).body(Body::empty()).unwrap();
        let response = api.router().oneshot(request).await.unwrap();
        let code = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (code, serde_json::from_slice::<Value>(&bytes).unwrap())
    };

    let (code, whole) = ask("/api/v1/namespaces/shop", "application/json").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!((&whole["kind"], &whole["spec"]["finalizers"]), (&json!("Namespace"), &json!(["kubernetes"])));

    let (code, partial) = ask("/api/v1/namespaces/shop", METADATA).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!((&partial["apiVersion"], &partial["kind"]), (&json!("meta.k8s.io/v1"), &json!("PartialObjectMetadata")));
    assert_eq!(partial["metadata"], whole["metadata"]);
    assert_eq!((partial.get("spec"), partial.get("status")), (None, None));

    let (code, list) = ask("/api/v1/namespaces", METADATA_LIST).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!((&list["apiVersion"], &list["kind"]), (&json!("meta.k8s.io/v1"), &json!("PartialObjectMetadataList")));
    assert_eq!(list["items"], json!([partial]));

    // A list asked for as a single object's metadata, as the API server, refuses.
    let (code, refused) = ask("/api/v1/namespaces", METADATA).await;
    assert_eq!((code, &refused["reason"]), (StatusCode::NOT_ACCEPTABLE, &json!("NotAcceptable")));
}

#[tokio::test]
async fn the_cache_asks_for_metadata_only_and_keeps_only_labels() {
    let api = fake(true);
    api.put_annotated("shop", PRODUCTION(), heavy_annotations(), false);
    let hook = webhook(&api);
    eventually("the cache syncs", async || hook.state.is_ready()).await;
    assert_eq!(hook.cache.labels("shop").as_deref(), Some(&labels(PRODUCTION())), "labels, nothing else");
    assert_eq!(hook.cache.len(), 1);

    // A change from the watch.
    api.put_annotated("shop", json!({"environment": "dev", "team": "shop"}), heavy_annotations(), true);
    eventually("the relabel reaches the cache", async || {
        hook.cache.labels("shop").as_deref() == Some(&labels(json!({"environment": "dev", "team": "shop"})))
    })
    .await;

    // A namespace the watch has not shown yet: one metadata GET, not kept.
    api.put_annotated("fresh", PRODUCTION(), heavy_annotations(), false);
    match hook.cache.lookup("fresh").await {
        Lookup::Found(found) => assert_eq!(*found, labels(PRODUCTION())),
        Lookup::Unknown => panic!("fresh was not fetched"),
    }
    assert_eq!(hook.cache.labels("fresh"), None, "only the watch writes the cache");

    let lists = api.accepts("list");
    let watches = api.accepts("watch");
    assert!(!lists.is_empty() && !watches.is_empty(), "lists {lists:?}, watches {watches:?}");
    assert!(lists.iter().all(|accept| accept == METADATA_LIST), "{lists:?}");
    assert!(watches.iter().all(|accept| accept == METADATA), "{watches:?}");
    assert_eq!(api.accepts("get"), [METADATA]);
}

#[tokio::test]
async fn deleted_namespaces_leave_the_cache_even_when_deleted_during_an_outage() {
    let api = fake(true);
    api.put("shop", PRODUCTION(), false);
    api.put("blog", json!({}), false);
    api.put("wiki", json!({}), false);
    let hook = webhook(&api);
    eventually("the cache syncs", async || hook.state.is_ready()).await;
    assert_eq!(hook.cache.labels("blog").as_deref(), Some(&BTreeMap::new()));

    api.delete("blog", true);
    eventually("the deletion reaches the cache", async || hook.cache.labels("blog").is_none()).await;

    api.go_down();
    eventually("the cache reports it is stale", async || metric(&hook, STALE).await == 1.0).await;
    // Its watch event is never seen (say, the history was compacted): only the relist can tell.
    api.delete("wiki", false);
    assert!(hook.cache.labels("wiki").is_some(), "the last snapshot keeps serving");
    api.come_back();
    eventually("the cache is current again", async || metric(&hook, STALE).await == 0.0).await;
    assert_eq!(hook.cache.labels("wiki"), None, "the relist replaced the snapshot");
    assert_eq!(hook.cache.labels("shop").as_deref(), Some(&labels(PRODUCTION())));
    assert_eq!(hook.cache.len(), 1);
}
