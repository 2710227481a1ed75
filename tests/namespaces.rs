//! The namespace cache against a Kubernetes API served in process: a small axum
//! app that speaks the list/watch protocol for Namespaces, handed to
//! `kube::Client::new` as its service (no network at all).

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{bundled, fixture, in_namespace};
use http_body_util::BodyExt;
use portcullis::metrics::Metrics;
use portcullis::namespaces::NamespaceCache;
use portcullis::server::{AppState, webhook_router};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tower::ServiceExt;

/// A fake API server holding Namespaces.
#[derive(Clone)]
struct FakeApi(Arc<Inner>);

struct Inner {
    namespaces: Mutex<BTreeMap<String, Value>>,
    version: AtomicU64,
    events: broadcast::Sender<String>,
    down: AtomicBool,
    /// The first list is held until this turns true.
    list_open: watch::Sender<bool>,
    gets: AtomicUsize,
}

impl FakeApi {
    fn new(list_open: bool) -> FakeApi {
        FakeApi(Arc::new(Inner {
            namespaces: Mutex::new(BTreeMap::new()),
            version: AtomicU64::new(1),
            events: broadcast::channel(64).0,
            down: AtomicBool::new(false),
            list_open: watch::channel(list_open).0,
            gets: AtomicUsize::new(0),
        }))
    }

    fn namespace(&self, name: &str, labels: Value) -> Value {
        let version = self.0.version.fetch_add(1, Ordering::SeqCst) + 1;
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "labels": labels, "resourceVersion": version.to_string()}})
    }

    /// Creates or changes a namespace; `announce` sends the watch event.
    fn put(&self, name: &str, labels: Value, announce: bool) {
        let object = self.namespace(name, labels);
        let existed = self.0.namespaces.lock().unwrap().insert(name.to_owned(), object.clone()).is_some();
        if announce {
            let kind = if existed { "MODIFIED" } else { "ADDED" };
            let _ = self.0.events.send(format!("{}\n", json!({"type": kind, "object": object})));
        }
    }

    /// The API server goes away: every request fails and open watches end.
    fn go_down(&self) {
        self.0.down.store(true, Ordering::SeqCst);
        let _ = self.0.events.send(String::new());
    }

    fn client(&self) -> kube::Client {
        let router = Router::new()
            .route("/api/v1/namespaces", get(list_or_watch))
            .route("/api/v1/namespaces/{name}", get(get_one))
            .with_state(self.clone());
        kube::Client::new(router, "default")
    }
}

fn unavailable() -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": "the server is down", "reason": "ServiceUnavailable", "code": 503});
    (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "application/json")], status.to_string()).into_response()
}

async fn list_or_watch(State(api): State<FakeApi>, uri: Uri) -> Response {
    if api.0.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    if uri.query().unwrap_or_default().split('&').any(|pair| pair == "watch=true" || pair == "watch=1") {
        let events = api.0.events.subscribe();
        let stream = futures::stream::unfold(events, |mut events| async move {
            match events.recv().await {
                Ok(line) if !line.is_empty() => Some((Ok::<_, Infallible>(Bytes::from(line)), events)),
                _ => None,
            }
        });
        return ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response();
    }
    let mut open = api.0.list_open.subscribe();
    let _ = open.wait_for(|open| *open).await;
    let items: Vec<Value> = api.0.namespaces.lock().unwrap().values().cloned().collect();
    let version = api.0.version.load(Ordering::SeqCst).to_string();
    let list =
        json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {"resourceVersion": version}, "items": items});
    ([(header::CONTENT_TYPE, "application/json")], list.to_string()).into_response()
}

async fn get_one(State(api): State<FakeApi>, Path(name): Path<String>) -> Response {
    api.0.gets.fetch_add(1, Ordering::SeqCst);
    if api.0.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    match api.0.namespaces.lock().unwrap().get(&name) {
        Some(object) => ([(header::CONTENT_TYPE, "application/json")], object.to_string()).into_response(),
        None => {
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "message": format!("namespaces \"{name}\" not found"), "reason": "NotFound", "code": 404});
            (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "application/json")], status.to_string()).into_response()
        }
    }
}

struct Webhook {
    state: Arc<AppState>,
    router: Router,
    metrics: Arc<Metrics>,
}

fn webhook(api: &FakeApi) -> Webhook {
    let metrics = Arc::new(Metrics::new());
    let (cache, _task) = NamespaceCache::start(api.client(), metrics.clone());
    let state = AppState::with_namespaces(bundled(), metrics.clone(), Some(cache));
    state.set_ready(true);
    Webhook { router: webhook_router(state.clone()), state, metrics }
}

/// The response to a NodePort Service created in `namespace`.
async fn nodeport_in(hook: &Webhook, namespace: &str) -> Value {
    let body = serde_json::to_vec(&in_namespace(fixture("v1.32/service-create-nodeport.json"), namespace)).unwrap();
    let request = Request::post("/validate").header(header::CONTENT_TYPE, "application/json").body(Body::from(body));
    let response = hook.router.clone().oneshot(request.unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice::<Value>(&bytes).unwrap()["response"].clone()
}

async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const PRODUCTION: fn() -> Value = || json!({"environment": "production"});

#[tokio::test]
async fn label_changes_reach_the_engine() {
    let api = FakeApi::new(true);
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
    assert_eq!(api.0.gets.load(Ordering::SeqCst), 0, "served from the cache");
}

#[tokio::test]
async fn readiness_waits_for_the_first_sync() {
    let api = FakeApi::new(false);
    api.put("shop", PRODUCTION(), false);
    let hook = webhook(&api);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!hook.state.is_ready(), "ready before the namespace list arrived");
    api.0.list_open.send_replace(true);
    eventually("the cache syncs", async || hook.state.is_ready()).await;
}

#[tokio::test]
async fn losing_the_api_server_keeps_the_last_snapshot() {
    let api = FakeApi::new(true);
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
    let api = FakeApi::new(true);
    let hook = webhook(&api);
    eventually("the cache syncs", async || hook.state.is_ready()).await;

    // Created after the list, its watch event not yet seen: one GET finds it.
    api.put("fresh", PRODUCTION(), false);
    let fetched = nodeport_in(&hook, "fresh").await;
    assert_eq!(fetched["allowed"], false);
    assert_eq!(fetched.get("warnings"), None);
    assert_eq!(api.0.gets.load(Ordering::SeqCst), 1);

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
