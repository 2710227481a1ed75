//! The namespace cache against a Kubernetes API served in process: a small axum
//! app that speaks the list/watch protocol for Namespaces, handed to
//! `kube::Client::new` as its service (no network at all). Like the real API
//! server it answers a request whose `Accept` asks for
//! `as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` with the metadata alone,
//! and any other request with whole Namespaces.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{bundled, fixture, in_namespace};
use futures::StreamExt;
use http_body_util::BodyExt;
use portcullis::cluster::{Lookup, NamespaceCache};
use portcullis::metrics::Metrics;
use portcullis::webhook::{AppState, admin_router, webhook_router};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tower::ServiceExt;

/// A fake API server holding Namespaces.
#[derive(Clone)]
struct FakeApi(Arc<Inner>);

struct Inner {
    cluster: Mutex<Cluster>,
    version: AtomicU64,
    /// Changes to the namespaces, sent to every open watch; `None` ends them.
    events: broadcast::Sender<Option<Change>>,
    health: Mutex<Health>,
    /// The first list is held until this turns true.
    list_open: watch::Sender<bool>,
    gets: AtomicUsize,
    /// The `Accept` header of every request: list, watch or get, and its value.
    accepts: Mutex<Vec<(&'static str, String)>>,
}

/// A watch event: its type (ADDED, MODIFIED, DELETED) and the whole Namespace.
type Change = (&'static str, Value);

/// What the fake holds: the namespaces and every announced change, so that a
/// watch from a resource version replays what came after it, as etcd does.
#[derive(Default)]
struct Cluster {
    namespaces: BTreeMap<String, Value>,
    history: Vec<(u64, Change)>,
}

/// How the fake answers lists, watches and GETs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Health {
    Up,
    /// 503, like an API server that is down or restarting.
    Unavailable,
    /// 403, like a token that lacks the RBAC to list namespaces.
    Forbidden,
}

impl FakeApi {
    fn new(list_open: bool) -> FakeApi {
        FakeApi(Arc::new(Inner {
            cluster: Mutex::new(Cluster::default()),
            version: AtomicU64::new(1),
            events: broadcast::channel(64).0,
            health: Mutex::new(Health::Up),
            list_open: watch::channel(list_open).0,
            gets: AtomicUsize::new(0),
            accepts: Mutex::default(),
        }))
    }

    /// A whole Namespace as the API server keeps it: besides its labels, what
    /// a real one carries (uid, creation time, kubectl's annotation, managed
    /// fields, spec and status), all of which portcullis has no use for.
    fn namespace(&self, name: &str, labels: Value, annotations: Value) -> (u64, Value) {
        let version = self.0.version.fetch_add(1, Ordering::SeqCst) + 1;
        let object = json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "uid": format!("6f1f0a52-0000-4000-8000-{version:012}"),
                            "resourceVersion": version.to_string(), "creationTimestamp": "2026-01-01T00:00:00Z",
                            "labels": labels, "annotations": annotations,
                            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                                               "apiVersion": "v1", "time": "2026-01-01T00:00:00Z",
                                               "fieldsType": "FieldsV1",
                                               "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}]},
               "spec": {"finalizers": ["kubernetes"]},
               "status": {"phase": "Active"}});
        (version, object)
    }

    /// Creates or changes a namespace; `announce` sends (and records) the watch event.
    fn put(&self, name: &str, labels: Value, announce: bool) {
        self.put_annotated(name, labels, json!({}), announce);
    }

    fn put_annotated(&self, name: &str, labels: Value, annotations: Value, announce: bool) {
        let mut cluster = self.0.cluster.lock().unwrap();
        let (version, object) = self.namespace(name, labels, annotations);
        let existed = cluster.namespaces.insert(name.to_owned(), object.clone()).is_some();
        if announce {
            self.announce(&mut cluster, version, if existed { "MODIFIED" } else { "ADDED" }, object);
        }
    }

    /// Deletes a namespace; `announce` sends (and records) the watch event.
    fn delete(&self, name: &str, announce: bool) {
        let mut cluster = self.0.cluster.lock().unwrap();
        let mut object = cluster.namespaces.remove(name).expect("no such namespace");
        let version = self.0.version.fetch_add(1, Ordering::SeqCst) + 1;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        if announce {
            self.announce(&mut cluster, version, "DELETED", object);
        }
    }

    fn announce(&self, cluster: &mut Cluster, version: u64, kind: &'static str, object: Value) {
        cluster.history.push((version, (kind, object.clone())));
        let _ = self.0.events.send(Some((kind, object)));
    }

    /// The API server starts failing every request as `health` says, and open watches end.
    fn fail(&self, health: Health) {
        *self.0.health.lock().unwrap() = health;
        let _cluster = self.0.cluster.lock().unwrap();
        let _ = self.0.events.send(None);
    }

    /// The `Accept` headers of the requests so far, for `verb` (list, watch or get).
    fn accepts(&self, verb: &str) -> Vec<String> {
        let accepts = self.0.accepts.lock().unwrap();
        accepts.iter().filter(|(seen, _)| *seen == verb).map(|(_, accept)| accept.clone()).collect()
    }

    /// Records the request's `Accept` and reads which representation it asks
    /// for, as the API server does: `Some(true)` for metadata only,
    /// `Some(false)` for whole objects, `None` for one it cannot serve.
    fn negotiate(&self, verb: &'static str, headers: &HeaderMap) -> Option<bool> {
        let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).unwrap_or_default();
        self.0.accepts.lock().unwrap().push((verb, accept.to_owned()));
        let partial = if verb == "list" { "PartialObjectMetadataList" } else { "PartialObjectMetadata" };
        // The first media range the fake can serve wins, as in the API server.
        accept.split(',').find_map(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next()?;
            if !matches!(media, "application/json" | "application/*" | "*/*" | "") {
                return None;
            }
            let params: BTreeMap<&str, &str> = parts.filter_map(|part| part.split_once('=')).collect();
            match (params.get("as"), params.get("g"), params.get("v")) {
                (None, _, _) => Some(false),
                (Some(&kind), Some(&"meta.k8s.io"), Some(&"v1")) if kind == partial => Some(true),
                _ => None,
            }
        })
    }

    /// The API server goes away: every request fails and open watches end.
    fn go_down(&self) {
        self.fail(Health::Unavailable);
    }

    /// The API server answers again.
    fn come_back(&self) {
        *self.0.health.lock().unwrap() = Health::Up;
    }

    /// The failure to answer with, if the server is not up.
    fn failure(&self) -> Option<Response> {
        match *self.0.health.lock().unwrap() {
            Health::Up => None,
            Health::Unavailable => {
                Some(status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "the server is down"))
            }
            Health::Forbidden => Some(status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "namespaces is forbidden: User \"system:serviceaccount:portcullis-system:portcullis\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope",
            )),
        }
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/namespaces", get(list_or_watch))
            .route("/api/v1/namespaces/{name}", get(get_one))
            .with_state(self.clone())
    }

    fn client(&self) -> kube::Client {
        kube::Client::new(self.router(), "default")
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": message, "reason": reason, "code": code.as_u16()});
    (code, [(header::CONTENT_TYPE, "application/json")], status.to_string()).into_response()
}

/// How long a failing list or watch takes to be answered: long enough that a
/// gauge wrongly cleared before the answer would be seen by a test sampling it.
const FAILURE_LATENCY: Duration = Duration::from_millis(100);

fn not_acceptable() -> Response {
    status(
        StatusCode::NOT_ACCEPTABLE,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
    )
}

/// `object` as the request asked for it: whole, or its metadata alone.
fn as_requested(object: &Value, metadata_only: bool) -> Value {
    if metadata_only {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
    } else {
        object.clone()
    }
}

fn watch_line((kind, object): &Change, metadata_only: bool) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": kind, "object": as_requested(object, metadata_only)})))
}

async fn list_or_watch(State(api): State<FakeApi>, uri: Uri, headers: HeaderMap) -> Response {
    let query: Vec<(&str, &str)> =
        uri.query().unwrap_or_default().split('&').filter_map(|pair| pair.split_once('=')).collect();
    let watching = query.iter().any(|&(key, value)| key == "watch" && (value == "true" || value == "1"));
    let Some(metadata_only) = api.negotiate(if watching { "watch" } else { "list" }, &headers) else {
        return not_acceptable();
    };
    if let Some(failure) = api.failure() {
        tokio::time::sleep(FAILURE_LATENCY).await;
        return failure;
    }
    if watching {
        let since: u64 = query
            .iter()
            .find(|(key, _)| *key == "resourceVersion")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        // Under the lock, so that no change falls between the replay and the live events.
        let (replay, events) = {
            let cluster = api.0.cluster.lock().unwrap();
            // Checked again under the lock: `fail` ends the watches that subscribed before it.
            if let Some(failure) = api.failure() {
                return failure;
            }
            let replay: Vec<Bytes> = cluster
                .history
                .iter()
                .filter(|(version, _)| *version > since)
                .map(|(_, change)| watch_line(change, metadata_only))
                .collect();
            (replay, api.0.events.subscribe())
        };
        let live = futures::stream::unfold(events, move |mut events| async move {
            match events.recv().await {
                Ok(Some(change)) => Some((watch_line(&change, metadata_only), events)),
                _ => None,
            }
        });
        let stream = futures::stream::iter(replay).chain(live).map(Ok::<_, Infallible>);
        return ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response();
    }
    let mut open = api.0.list_open.subscribe();
    let _ = open.wait_for(|open| *open).await;
    let items: Vec<Value> =
        api.0.cluster.lock().unwrap().namespaces.values().map(|object| as_requested(object, metadata_only)).collect();
    let version = api.0.version.load(Ordering::SeqCst).to_string();
    let (api_version, kind) =
        if metadata_only { ("meta.k8s.io/v1", "PartialObjectMetadataList") } else { ("v1", "NamespaceList") };
    let list =
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": version}, "items": items});
    ([(header::CONTENT_TYPE, "application/json")], list.to_string()).into_response()
}

async fn get_one(State(api): State<FakeApi>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    api.0.gets.fetch_add(1, Ordering::SeqCst);
    let Some(metadata_only) = api.negotiate("get", &headers) else {
        return not_acceptable();
    };
    if let Some(failure) = api.failure() {
        return failure;
    }
    match api.0.cluster.lock().unwrap().namespaces.get(&name) {
        Some(object) => ([(header::CONTENT_TYPE, "application/json")], as_requested(object, metadata_only).to_string())
            .into_response(),
        None => status(StatusCode::NOT_FOUND, "NotFound", &format!("namespaces \"{name}\" not found")),
    }
}

struct Webhook {
    cache: Arc<NamespaceCache>,
    state: Arc<AppState>,
    router: Router,
    admin: Router,
    metrics: Arc<Metrics>,
}

fn webhook(api: &FakeApi) -> Webhook {
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

/// portcullis's own log lines, captured on the current thread (where a
/// `#[tokio::test]` runtime runs every task) while the guard lives.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("portcullis=debug"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// The lines logged at `level` whose message starts with `message`.
    fn lines(&self, level: &str, message: &str) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        let prefix = format!("portcullis::cluster::namespaces: {message}");
        text.lines()
            .filter(|line| line.split_whitespace().nth(1) == Some(level) && line.contains(&prefix))
            .map(String::from)
            .collect()
    }
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

#[tokio::test]
async fn labels_follow_the_cluster_within_seconds_after_an_outage() {
    let (logs, _guard) = Logs::capture();
    let api = FakeApi::new(true);
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
    let (logs, _guard) = Logs::capture();
    let api = FakeApi::new(true);
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
    let api = FakeApi::new(true);
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
    let api = FakeApi::new(true);
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
    let api = FakeApi::new(true);
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
    let api = FakeApi::new(true);
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
