//! The IngressClass cache against a Kubernetes API served in process: a small
//! axum app that speaks the list/watch protocol for IngressClasses, handed to
//! `kube::Client::new` as its service (no network at all), as
//! `tests/namespaces.rs` does for Namespaces. The webhook runs on top of it, so
//! the tests see what the cluster's `spec.controller` does to the verdicts.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::http::{get as get_path, post_review};
use common::{bundled, eventually, review};
use futures::StreamExt;
use portcullis::cluster::IngressClassCache;
use portcullis::metrics::Metrics;
use portcullis::policy::PolicyStore;
use portcullis::webhook::{AppState, Limits, admin_router, webhook_router};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

/// A fake API server holding IngressClasses.
#[derive(Clone)]
struct FakeApi(Arc<Inner>);

struct Inner {
    cluster: Mutex<Cluster>,
    version: AtomicU64,
    /// Changes to the classes, sent to every open watch; `None` ends them.
    events: broadcast::Sender<Option<Change>>,
    health: Mutex<Health>,
    /// Lists are held until this turns true.
    list_open: watch::Sender<bool>,
}

/// A watch event: its type (ADDED, MODIFIED, DELETED) and the whole IngressClass.
type Change = (&'static str, Value);

/// The classes, and every announced change, so that a watch from a resource
/// version replays what came after it, as etcd does.
#[derive(Default)]
struct Cluster {
    classes: BTreeMap<String, Value>,
    history: Vec<(u64, Change)>,
}

/// How the fake answers lists and watches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Health {
    Up,
    /// 503, like an API server that is down or restarting.
    Unavailable,
    /// 403, like a ServiceAccount without the RBAC rule for ingressclasses.
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
        }))
    }

    /// An IngressClass as the API server keeps it, with what a real one
    /// carries besides its controller (labels, annotations, parameters).
    fn class(&self, name: &str, controller: &str) -> (u64, Value) {
        let version = self.0.version.fetch_add(1, Ordering::SeqCst) + 1;
        let object = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": name, "uid": format!("6f1f0a52-0000-4000-8000-{version:012}"),
                         "resourceVersion": version.to_string(), "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"app.kubernetes.io/name": "ingress"},
                         "annotations": {"meta.helm.sh/release-name": "ingress", "big": "x".repeat(10_000)}},
            "spec": {"controller": controller,
                     "parameters": {"apiGroup": "k8s.nginx.org", "kind": "GlobalConfiguration", "name": "main"}}});
        (version, object)
    }

    /// Creates or changes a class; `announce` sends (and records) the watch event.
    fn put(&self, name: &str, controller: &str, announce: bool) {
        let mut cluster = self.0.cluster.lock().unwrap();
        let (version, object) = self.class(name, controller);
        let existed = cluster.classes.insert(name.to_owned(), object.clone()).is_some();
        if announce {
            self.announce(&mut cluster, version, if existed { "MODIFIED" } else { "ADDED" }, object);
        }
    }

    /// Deletes a class; `announce` sends (and records) the watch event.
    fn delete(&self, name: &str, announce: bool) {
        let mut cluster = self.0.cluster.lock().unwrap();
        let mut object = cluster.classes.remove(name).expect("no such class");
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

    /// The API server answers again.
    fn come_back(&self) {
        *self.0.health.lock().unwrap() = Health::Up;
    }

    fn failure(&self) -> Option<Response> {
        match *self.0.health.lock().unwrap() {
            Health::Up => None,
            Health::Unavailable => {
                Some(status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "the server is down"))
            }
            Health::Forbidden => Some(status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "ingressclasses.networking.k8s.io is forbidden: User \"system:serviceaccount:portcullis-system:portcullis\" cannot list resource \"ingressclasses\" in API group \"networking.k8s.io\" at the cluster scope",
            )),
        }
    }

    fn client(&self) -> kube::Client {
        let router = Router::new()
            .route("/apis/networking.k8s.io/v1/ingressclasses", get(list_or_watch))
            .with_state(self.clone());
        kube::Client::new(router, "default")
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": message, "reason": reason, "code": code.as_u16()});
    (code, [(header::CONTENT_TYPE, "application/json")], status.to_string()).into_response()
}

fn watch_line((kind, object): &Change) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": kind, "object": object})))
}

async fn list_or_watch(State(api): State<FakeApi>, uri: Uri) -> Response {
    let query: Vec<(&str, &str)> =
        uri.query().unwrap_or_default().split('&').filter_map(|pair| pair.split_once('=')).collect();
    let watching = query.iter().any(|&(key, value)| key == "watch" && (value == "true" || value == "1"));
    if let Some(failure) = api.failure() {
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
            if let Some(failure) = api.failure() {
                return failure;
            }
            let replay: Vec<Bytes> =
                cluster.history.iter().filter(|(version, _)| *version > since).map(|(_, c)| watch_line(c)).collect();
            (replay, api.0.events.subscribe())
        };
        let live = futures::stream::unfold(events, |mut events| async move {
            match events.recv().await {
                Ok(Some(change)) => Some((watch_line(&change), events)),
                _ => None,
            }
        });
        let stream = futures::stream::iter(replay).chain(live).map(Ok::<_, Infallible>);
        return ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response();
    }
    let mut open = api.0.list_open.subscribe();
    let _ = open.wait_for(|open| *open).await;
    if let Some(failure) = api.failure() {
        return failure;
    }
    let items: Vec<Value> = api.0.cluster.lock().unwrap().classes.values().cloned().collect();
    let version = api.0.version.load(Ordering::SeqCst).to_string();
    let list = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClassList",
                      "metadata": {"resourceVersion": version}, "items": items});
    ([(header::CONTENT_TYPE, "application/json")], list.to_string()).into_response()
}

struct Webhook {
    cache: Arc<IngressClassCache>,
    state: Arc<AppState>,
    router: Router,
    admin: Router,
}

/// The webhook serving the bundled policies with the IngressClasses of `api`
/// (and no namespace cache: namespace names alone decide).
fn webhook(api: &FakeApi) -> Webhook {
    let (cache, _task) = IngressClassCache::start(api.client());
    let metrics = Arc::new(Metrics::new());
    let state =
        AppState::with_cluster(PolicyStore::new(bundled()), metrics, None, Some(cache.clone()), Limits::default());
    state.set_ready(true);
    Webhook { cache, router: webhook_router(state.clone()), admin: admin_router(state.clone()), state }
}

const F5: &str = "nginx.org/ingress-controller";
const INGRESS_NGINX: &str = "k8s.io/ingress-nginx";

/// A production Ingress of class `class` with TLS, authenticated by `annotations`.
fn ingress(class: &str, annotations: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "namespace": "production", "annotations": annotations},
        "spec": {"ingressClassName": class,
                 "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                 "rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "shop", "port": {"number": 80}}}}]}}]}})
}

/// The validating webhook's response to creating `ingress` in production.
async fn validate(hook: &Webhook, ingress: Value) -> Value {
    post_review(&hook.router, "/validate", &review("CREATE", "production", ingress, None)).await["response"].clone()
}

fn ingress_nginx_auth() -> Value {
    json!({"nginx.ingress.kubernetes.io/auth-url": "https://auth.example.com/check",
           "nginx.ingress.kubernetes.io/whitelist-source-range": "203.0.113.0/24"})
}

fn f5_auth() -> Value {
    json!({"nginx.org/basic-auth-secret": "shop-users"})
}

const NOT_F5_AUTH: &str = "[require-ingress-auth] Ingress production/shop: no authentication for the f5-nginx \
    controller; set nginx.org/basic-auth-secret (or nginx.com/jwt-key with NGINX Plus), or portcullis.dev/auth: application";

const NOT_INGRESS_NGINX_AUTH: &str = "[require-ingress-auth] Ingress production/shop: no authentication for the nginx \
    controller; set nginx.ingress.kubernetes.io/auth-url, auth-type+auth-secret or auth-tls-secret, or portcullis.dev/auth: application";

async fn ready(hook: &Webhook) -> bool {
    get_path(&hook.admin, "/readyz").await.status == StatusCode::OK
}

#[tokio::test]
async fn the_clusters_controller_names_the_family_of_a_class() {
    let api = FakeApi::new(true);
    // F5 NGINX installs its class under the name ingress-nginx uses.
    api.put("nginx", F5, false);
    let hook = webhook(&api);
    eventually("the cache syncs", async || ready(&hook).await).await;

    let denied = validate(&hook, ingress("nginx", ingress_nginx_auth())).await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["status"]["message"], NOT_F5_AUTH, "ingress-nginx's auth-url means nothing to F5 NGINX");
    let allowed = validate(&hook, ingress("nginx", f5_auth())).await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert_eq!(
        allowed["warnings"],
        json!([
            "[ingress-source-allow-list] Ingress production/shop: the f5-nginx controller has no allow-list annotation, so any client can reach it; restrict sources at the load balancer or firewall"
        ])
    );

    // The class is handed to ingress-nginx: the same Ingresses swap verdicts.
    api.put("nginx", INGRESS_NGINX, true);
    eventually("the new controller reaches the engine", async || {
        validate(&hook, ingress("nginx", ingress_nginx_auth())).await["allowed"] == true
    })
    .await;
    let denied = validate(&hook, ingress("nginx", f5_auth())).await;
    assert_eq!(denied["status"]["message"], NOT_INGRESS_NGINX_AUTH);
}

#[tokio::test]
async fn a_class_of_an_unknown_controller_is_judged_strictly() {
    let api = FakeApi::new(true);
    api.put("edge", "example.com/edge-controller", false);
    let hook = webhook(&api);
    eventually("the cache syncs", async || ready(&hook).await).await;
    // Any controller's annotation used to count for an unknown class.
    let denied = validate(&hook, ingress("edge", ingress_nginx_auth())).await;
    assert_eq!(
        denied["status"]["message"],
        "[require-ingress-auth] Ingress production/shop: unknown ingress class \"edge\": no auth annotation counts; \
         map it by IngressClass spec.controller or IngressControllers, or portcullis.dev/auth: application"
    );
    // A built-in class name is only a guess when the cluster names another controller...
    api.put("haproxy", "haproxy-ingress.github.io/controller", true);
    eventually("the class reaches the cache", async || hook.cache.controller("haproxy").is_some()).await;
    let haproxy_auth = json!({"haproxy.org/auth-type": "basic-auth", "haproxy.org/auth-secret": "shop-users"});
    let guessed = validate(&hook, ingress("haproxy", haproxy_auth)).await;
    assert_eq!(
        guessed["status"]["message"],
        "[require-ingress-auth] Ingress production/shop: unknown ingress class \"haproxy\": no auth annotation \
         counts; map it by IngressClass spec.controller or IngressControllers, or portcullis.dev/auth: application"
    );
    // ...but a class the policies map (policies/ingress-controllers.yaml: public -> nginx) is theirs.
    api.put("public", "example.com/own-nginx-build", true);
    eventually("the class reaches the cache", async || hook.cache.controller("public").is_some()).await;
    assert_eq!(validate(&hook, ingress("public", ingress_nginx_auth())).await["allowed"], true);
}

#[tokio::test]
async fn readiness_waits_for_the_first_list() {
    let api = FakeApi::new(false);
    api.put("nginx", F5, false);
    let hook = webhook(&api);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!hook.state.is_ready(), "ready before the IngressClass list arrived");
    assert!(!ready(&hook).await);
    api.0.list_open.send_replace(true);
    eventually("the cache syncs", async || ready(&hook).await).await;
    assert!(hook.cache.is_synced());
    assert_eq!(hook.cache.controller("nginx").as_deref(), Some(F5));
}

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
        let prefix = format!("portcullis::cluster::ingress_classes: {message}");
        text.lines()
            .filter(|line| line.split_whitespace().nth(1) == Some(level) && line.contains(&prefix))
            .map(String::from)
            .collect()
    }
}

#[tokio::test]
async fn forbidden_ingress_classes_do_not_keep_the_pod_unready() {
    let (logs, _guard) = Logs::capture();
    let api = FakeApi::new(true);
    api.put("nginx", F5, false);
    api.fail(Health::Forbidden);
    let hook = webhook(&api);
    eventually("ready without IngressClasses", async || ready(&hook).await).await;
    assert!(!hook.cache.is_synced());
    assert!(hook.cache.is_empty());
    // Meanwhile the class table decides: nginx is ingress-nginx.
    let denied = validate(&hook, ingress("nginx", f5_auth())).await;
    assert_eq!(denied["status"]["message"], NOT_INGRESS_NGINX_AUTH);

    // Said once, however often the watch tries again.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(logs.lines("WARN", "IngressClasses cannot be listed; ready without them").len(), 1);
    assert_eq!(logs.lines("WARN", "IngressClass watch failed").len(), 0);
    assert!(!logs.lines("DEBUG", "IngressClass watch failed again").is_empty(), "it keeps trying");

    // RBAC granted: the watch, still trying, picks the classes up.
    api.come_back();
    eventually("the cache syncs", async || hook.cache.is_synced()).await;
    assert_eq!(validate(&hook, ingress("nginx", f5_auth())).await["allowed"], true);
    assert_eq!(logs.lines("INFO", "IngressClass watch recovered").len(), 1);
    assert_eq!(logs.lines("INFO", "IngressClass cache synced").len(), 1);
}

#[tokio::test]
async fn an_unreachable_api_server_keeps_the_pod_unready_until_a_list() {
    let api = FakeApi::new(true);
    api.fail(Health::Unavailable);
    let hook = webhook(&api);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!ready(&hook).await, "a 503 is no answer about IngressClasses");
    api.come_back();
    eventually("the cache syncs", async || ready(&hook).await).await;
}

#[tokio::test]
async fn losing_the_api_server_keeps_the_last_snapshot_and_a_relist_replaces_it() {
    let api = FakeApi::new(true);
    api.put("nginx", F5, false);
    api.put("old", INGRESS_NGINX, false);
    let hook = webhook(&api);
    eventually("the cache syncs", async || ready(&hook).await).await;
    assert_eq!(hook.cache.len(), 2);

    api.fail(Health::Unavailable);
    // Changed and deleted while portcullis cannot see it; the watch events are never seen.
    api.put("nginx", INGRESS_NGINX, false);
    api.delete("old", false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(ready(&hook).await, "a stale snapshot keeps serving");
    assert_eq!(validate(&hook, ingress("nginx", f5_auth())).await["allowed"], true, "still F5 NGINX");

    api.come_back();
    eventually("the relist reaches the engine", async || {
        validate(&hook, ingress("nginx", f5_auth())).await["allowed"] == false
    })
    .await;
    assert_eq!(hook.cache.controller("old"), None, "the relist replaced the snapshot");
    assert_eq!(hook.cache.len(), 1);
}

#[tokio::test]
async fn services_and_other_reviews_are_unaffected() {
    let api = FakeApi::new(true);
    api.put("nginx", F5, false);
    let hook = webhook(&api);
    eventually("the cache syncs", async || ready(&hook).await).await;
    let nodeport = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "production"},
                          "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
    let denied =
        post_review(&hook.router, "/validate", &review("CREATE", "production", nodeport, None)).await["response"]
            .clone();
    assert_eq!(
        denied["status"]["message"],
        "[no-nodeport-in-production] Service production/web: type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS"
    );
}
