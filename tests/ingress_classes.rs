//! The IngressClass cache against a Kubernetes API served in process
//! (`common::fake_api`), handed to `kube::Client::new` as its service (no
//! network at all), as `tests/namespaces.rs` does for Namespaces. The webhook runs on top of it, so
//! the tests see what the cluster's `spec.controller` does to the verdicts.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use common::fake_api::{FakeApi, Health, Resource};
use common::http::{get as get_path, post_review};
use common::logs::Logs;
use common::{bundled, eventually, install_crypto, review};
use portcullis::cluster::IngressClassCache;
use portcullis::metrics::Metrics;
use portcullis::policy::PolicyStore;
use portcullis::webhook::{AppState, Limits, admin_router, webhook_router};
use serde_json::{Value, json};

fn fake(list_open: bool) -> FakeApi {
    FakeApi::new(&[Resource::INGRESS_CLASSES], list_open)
}

/// IngressClasses in the fake API server.
trait Classes {
    /// Creates or changes a class; `announce` sends (and records) the watch event.
    fn put(&self, name: &str, controller: &str, announce: bool);
    /// Deletes a class; `announce` sends (and records) the watch event.
    fn delete(&self, name: &str, announce: bool);
}

impl Classes for FakeApi {
    fn put(&self, name: &str, controller: &str, announce: bool) {
        self.put_object(Resource::INGRESS_CLASSES, class(name, controller), announce);
    }

    fn delete(&self, name: &str, announce: bool) {
        self.delete_object(Resource::INGRESS_CLASSES, "", name, announce);
    }
}

/// An IngressClass as the API server keeps it, with what a real one carries
/// besides its controller (labels, annotations, parameters).
fn class(name: &str, controller: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"app.kubernetes.io/name": "ingress"},
                     "annotations": {"meta.helm.sh/release-name": "ingress", "big": "x".repeat(10_000)}},
        "spec": {"controller": controller,
                 "parameters": {"apiGroup": "k8s.nginx.org", "kind": "GlobalConfiguration", "name": "main"}}})
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
    install_crypto();
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
    let api = fake(true);
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
    let api = fake(true);
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
    let api = fake(false);
    api.put("nginx", F5, false);
    let hook = webhook(&api);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!hook.state.is_ready(), "ready before the IngressClass list arrived");
    assert!(!ready(&hook).await);
    api.open_lists();
    eventually("the cache syncs", async || ready(&hook).await).await;
    assert!(hook.cache.is_synced());
    assert_eq!(hook.cache.controller("nginx").as_deref(), Some(F5));
}

#[tokio::test]
async fn forbidden_ingress_classes_do_not_keep_the_pod_unready() {
    let (logs, _guard) = Logs::capture("portcullis::cluster::ingress_classes");
    let api = fake(true);
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
    let api = fake(true);
    api.fail(Health::Unavailable);
    let hook = webhook(&api);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!ready(&hook).await, "a 503 is no answer about IngressClasses");
    api.come_back();
    eventually("the cache syncs", async || ready(&hook).await).await;
}

#[tokio::test]
async fn losing_the_api_server_keeps_the_last_snapshot_and_a_relist_replaces_it() {
    let api = fake(true);
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
    let api = fake(true);
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
