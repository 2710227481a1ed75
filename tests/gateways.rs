//! The Gateway API cache against a Kubernetes API served in process
//! (`common::fake_api`: discovery, list, watch and GET), under the webhook: a
//! route's verdict follows the Gateway it attaches to as the cluster changes,
//! Gateway API CRDs that are not installed leave the webhook ready with
//! routes judged strictly, and losing the API server keeps the last snapshot.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use common::fake_api::{FakeApi, Resource};
use common::http::{get as get_path, post_review};
use common::logs::Logs;
use common::{bundled, eventually, install_crypto, repo};
use portcullis::cluster::gateways::{KindState, Options, WatchedKind};
use portcullis::cluster::{Caches, GatewayCache};
use portcullis::engine::PolicySet;
use portcullis::metrics::Metrics;
use portcullis::policy::PolicyStore;
use portcullis::webhook::{AppState, Limits, admin_router, webhook_router};
use serde_json::{Value, json};

const GROUP: &str = "gateway.networking.k8s.io";

/// How long an absent or forbidden kind waits to be asked about again, here.
const RECHECK: Duration = Duration::from_millis(300);

struct Webhook {
    cache: Arc<GatewayCache>,
    store: Arc<PolicyStore>,
    router: Router,
    admin: Router,
}

/// The webhook serving `policies` with the Gateway API objects of `api` (and
/// no namespace cache: namespace names alone decide).
fn webhook_with(api: &FakeApi, policies: PolicySet) -> Webhook {
    install_crypto();
    let store = PolicyStore::new(policies);
    let options = Options { recheck: RECHECK, policy_poll: Duration::from_millis(50) };
    let (cache, _task) = GatewayCache::start_with(api.client(), store.clone(), options);
    let caches = Caches { gateways: Some(cache.clone()), ..Caches::default() };
    let state = AppState::with_caches(store.clone(), Arc::new(Metrics::new()), caches, Limits::default());
    state.set_ready(true);
    Webhook { cache, store, router: webhook_router(state.clone()), admin: admin_router(state) }
}

fn webhook(api: &FakeApi) -> Webhook {
    webhook_with(api, bundled())
}

async fn ready(hook: &Webhook) -> bool {
    get_path(&hook.admin, "/readyz").await.status == StatusCode::OK
}

/// Gateway `namespace/name`: plain HTTP on 80 (the redirect listener) and
/// `https` on 443 for `*.example.com`, of protocol `https_protocol`.
fn gateway(namespace: &str, name: &str, https_protocol: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace, "generation": 1,
                     "creationTimestamp": "2026-12-01T00:00:00Z",
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(4096)}},
        "spec": {"gatewayClassName": "envoy",
                 "listeners": [
                     {"name": "http", "port": 80, "protocol": "HTTP"},
                     {"name": "https", "port": 443, "protocol": https_protocol, "hostname": "*.example.com",
                      "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "wildcard-tls"}]}}]},
        "status": {"conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed",
                                   "lastTransitionTime": "2026-12-01T00:00:01Z", "message": "", "observedGeneration": 1}]}})
}

/// HTTPRoute `namespace/store` for `store.example.com` on listener `https` of Gateway `web`.
fn route(namespace: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "store", "namespace": namespace, "generation": 1,
                     "creationTimestamp": "2026-12-01T00:00:00Z"},
        "spec": {"parentRefs": [{"group": GROUP, "kind": "Gateway", "name": "web", "sectionName": "https"}],
                 "hostnames": ["store.example.com"],
                 "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                            "backendRefs": [{"group": "", "kind": "Service", "name": "store", "port": 8080, "weight": 1}]}]}})
}

/// A CREATE of `object` (an HTTPRoute) as the API server sends it.
fn route_review(object: Value) -> Value {
    let namespace = object["metadata"]["namespace"].clone();
    let name = object["metadata"]["name"].clone();
    let kind = json!({"group": GROUP, "version": "v1", "kind": "HTTPRoute"});
    let resource = json!({"group": GROUP, "version": "v1", "resource": "httproutes"});
    json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {"uid": "5f0c8c36-6f4a-4c1e-9d43-2b7d3c1a0e11",
                    "kind": kind, "resource": resource, "requestKind": kind, "requestResource": resource,
                    "name": name, "namespace": namespace, "operation": "CREATE",
                    "userInfo": {"username": "alice", "groups": ["developers", "system:authenticated"]},
                    "object": object, "oldObject": null, "dryRun": false,
                    "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1",
                                "fieldManager": "kubectl-client-side-apply", "fieldValidation": "Strict"}}})
}

/// The validating webhook's response to creating `route`.
async fn validate(hook: &Webhook, route: Value) -> Value {
    post_review(&hook.router, "/validate", &route_review(route)).await["response"].clone()
}

/// A SecurityPolicy of Envoy Gateway that puts OIDC in front of HTTPRoute `namespace/store`.
fn security_policy(namespace: &str) -> Value {
    json!({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "SecurityPolicy",
        "metadata": {"name": "store-auth", "namespace": namespace},
        "spec": {"targetRefs": [{"group": GROUP, "kind": "HTTPRoute", "name": "store"}],
                 "oidc": {"provider": {"issuer": "https://accounts.example.com"}, "clientID": "store",
                          "clientSecret": {"name": "store-oidc"}}}})
}

const UNKNOWN_DENIED: &str = "[require-route-tls] HTTPRoute shop/store: Gateway shop/web is unknown, so parentRefs[0] may \
    attach to a plain HTTP listener; apply the Gateway first, or make every rule a RequestRedirect with scheme https";

const UNKNOWN_NOTICE: &str = "[portcullis] HTTPRoute shop/store: Gateway shop/web is unknown, so the route was judged \
    as if it attached to a plain HTTP listener without hostname";

const PLAIN_HTTP_DENIED: &str = "[require-route-tls] HTTPRoute shop/store: attached to listener \"https\" (HTTP, port \
    443) of Gateway shop/web, which serves plain HTTP, so requests and credentials travel unencrypted; set \
    parentRefs[0].sectionName to an HTTPS listener, or make every rule a RequestRedirect with scheme https";

const NO_AUTH_WARNING: &str = "[warn-gateway-auth] HTTPRoute shop/store: no authentication the Gateway enforces; add an \
    ExternalAuth filter, an approved Middleware ExtensionRef or a SecurityPolicy/AuthPolicy on the route or its \
    Gateway, or portcullis.dev/auth: application";

/// The answer to a route whose Gateway is unknown: denied, and told why.
fn judged_strictly() -> Value {
    json!({"uid": "5f0c8c36-6f4a-4c1e-9d43-2b7d3c1a0e11", "allowed": false,
           "status": {"status": "Failure", "code": 403, "reason": "Forbidden", "message": UNKNOWN_DENIED},
           "warnings": [UNKNOWN_NOTICE]})
}

/// The answer to the route on the HTTPS listener of a known Gateway outside production.
fn allowed_on_https() -> Value {
    json!({"uid": "5f0c8c36-6f4a-4c1e-9d43-2b7d3c1a0e11", "allowed": true, "warnings": [NO_AUTH_WARNING]})
}

fn kind(group: &str, kind: &str) -> WatchedKind {
    WatchedKind::new(group, kind)
}

#[tokio::test]
async fn a_gateway_added_changed_or_deleted_in_the_cluster_reaches_the_engine() {
    let api = FakeApi::new(&[Resource::GATEWAYS, Resource::LISTENER_SETS], true);
    let hook = webhook(&api);
    eventually("the cache settles", async || ready(&hook).await).await;
    assert_eq!(hook.cache.state(&WatchedKind::gateway()), Some(KindState::Synced));
    assert_eq!(validate(&hook, route("shop")).await, judged_strictly());
    assert_eq!(api.gets(), 1, "the missing Gateway was looked for once");

    api.put_object(Resource::GATEWAYS, gateway("shop", "web", "HTTPS"), true);
    eventually("the Gateway reaches the engine", async || validate(&hook, route("shop")).await["allowed"] == true)
        .await;
    assert_eq!(validate(&hook, route("shop")).await, allowed_on_https());
    let gets = api.gets();

    // The https listener is turned into plain HTTP.
    api.put_object(Resource::GATEWAYS, gateway("shop", "web", "HTTP"), true);
    eventually("the change reaches the engine", async || validate(&hook, route("shop")).await["allowed"] == false)
        .await;
    let denied = validate(&hook, route("shop")).await;
    assert_eq!(denied["status"]["message"], PLAIN_HTTP_DENIED);
    assert_eq!(denied.get("warnings"), None);
    assert_eq!(api.gets(), gets, "a Gateway in the cache is not fetched");

    api.delete_object(Resource::GATEWAYS, "shop", "web", true);
    eventually("the deletion reaches the engine", async || validate(&hook, route("shop")).await == judged_strictly())
        .await;
    assert_eq!(hook.cache.snapshot().parents().count(), 0);
}

#[tokio::test]
async fn a_gateway_applied_together_with_its_route_is_fetched_for_the_review() {
    let api = FakeApi::new(&[Resource::GATEWAYS, Resource::LISTENER_SETS], true);
    let hook = webhook(&api);
    eventually("the cache settles", async || ready(&hook).await).await;
    // Created, and its watch event not seen yet.
    api.put_object(Resource::GATEWAYS, gateway("shop", "web", "HTTPS"), false);
    assert_eq!(validate(&hook, route("shop")).await, allowed_on_https());
    assert_eq!(api.gets(), 1);
    assert_eq!(hook.cache.snapshot().parents().count(), 0, "only the watch writes the cache");
}

#[tokio::test]
async fn gateway_api_crds_that_are_not_installed_leave_the_webhook_ready_and_routes_judged_strictly() {
    let (logs, _guard) = Logs::capture("portcullis::cluster::gateways");
    let api = FakeApi::new(&[], true);
    let hook = webhook(&api);
    eventually("ready without Gateway API", async || ready(&hook).await).await;
    let kinds = [
        kind("gateway.envoyproxy.io", "SecurityPolicy"),
        WatchedKind::gateway(),
        WatchedKind::listener_set(),
        kind("kuadrant.io", "AuthPolicy"),
    ];
    assert_eq!(hook.cache.watched(), kinds, "the parents and the bundled policies' kinds");
    eventually("every kind is found absent", async || {
        kinds.iter().all(|kind| hook.cache.state(kind) == Some(KindState::Absent))
    })
    .await;
    assert_eq!(validate(&hook, route("shop")).await, judged_strictly());

    // Asked about again every RECHECK, and said once per kind.
    tokio::time::sleep(RECHECK * 4).await;
    let absent = logs.lines("INFO", "Gateway API kind not served (its CRD is not installed): none exist");
    assert_eq!(absent.len(), 4, "{absent:#?}");
    for kind in &kinds {
        assert_eq!(absent.iter().filter(|line| line.contains(&format!(" kind={kind} "))).count(), 1, "{kind}");
    }
    assert_eq!(logs.lines("WARN", ""), Vec::<String>::new(), "no outage, no refusal");
    assert!(ready(&hook).await);

    // The Gateway API is installed, and a Gateway created: picked up at the next check.
    api.serve(Resource::GATEWAYS);
    api.put_object(Resource::GATEWAYS, gateway("shop", "web", "HTTPS"), true);
    eventually("the Gateway CRD is seen", async || {
        hook.cache.state(&WatchedKind::gateway()) == Some(KindState::Synced)
    })
    .await;
    assert_eq!(validate(&hook, route("shop")).await, allowed_on_https());
    let synced = logs.lines("INFO", "Gateway API kind synced");
    assert_eq!(synced.len(), 1, "{synced:#?}");
    assert!(synced[0].contains(" kind=Gateway.gateway.networking.k8s.io objects=1"), "{synced:#?}");
    assert_eq!(hook.cache.state(&WatchedKind::listener_set()), Some(KindState::Absent));

    // The CRD is removed again (and with it every Gateway): none exist.
    api.unserve(Resource::GATEWAYS);
    eventually("the removal reaches the engine", async || validate(&hook, route("shop")).await == judged_strictly())
        .await;
    assert_eq!(hook.cache.state(&WatchedKind::gateway()), Some(KindState::Absent));
    assert_eq!(hook.cache.snapshot().parents().count(), 0);
    let gateway_absent = format!(" kind={} ", WatchedKind::gateway());
    let absent = logs.lines("INFO", "Gateway API kind not served");
    assert_eq!(absent.iter().filter(|line| line.contains(&gateway_absent)).count(), 2, "{absent:#?}");
    assert_eq!(logs.lines("WARN", ""), Vec::<String>::new());
}

#[tokio::test]
async fn losing_the_api_server_keeps_the_last_snapshot_and_a_relist_replaces_it() {
    let (logs, _guard) = Logs::capture("portcullis::cluster::gateways");
    let api = FakeApi::new(&[Resource::GATEWAYS, Resource::LISTENER_SETS], true);
    api.put_object(Resource::GATEWAYS, gateway("shop", "web", "HTTPS"), false);
    let hook = webhook(&api);
    eventually("the cache settles", async || ready(&hook).await).await;
    assert_eq!(validate(&hook, route("shop")).await, allowed_on_https());

    api.go_down();
    // Changed while portcullis cannot see it; the watch event is never seen.
    api.put_object(Resource::GATEWAYS, gateway("shop", "web", "HTTP"), false);
    eventually("the outage is noticed", async || !logs.lines("WARN", "Gateway API watch failed;").is_empty()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(ready(&hook).await, "a stale snapshot keeps serving");
    assert_eq!(validate(&hook, route("shop")).await, allowed_on_https(), "the last snapshot");
    let failed = logs.lines("WARN", "Gateway API watch failed;");
    assert_eq!(failed.len(), 1, "one warning for every kind and attempt: {failed:#?}");
    assert!(failed[0].contains("reviews use the last snapshot of Gateways, ListenerSets and policies"), "{failed:#?}");
    assert!(!logs.lines("DEBUG", "Gateway API watch failed again").is_empty(), "it keeps trying");
    assert_eq!(logs.lines("INFO", "Gateway API watch recovered"), Vec::<String>::new());

    api.come_back();
    eventually("the relist reaches the engine", async || {
        validate(&hook, route("shop")).await["status"]["message"] == PLAIN_HTTP_DENIED
    })
    .await;
    // Once every kind has an answer again (the bundled policies' kinds: not served).
    eventually("the outage is over", async || !logs.lines("INFO", "Gateway API watch recovered").is_empty()).await;
    let recovered = logs.lines("INFO", "Gateway API watch recovered");
    assert_eq!(recovered.len(), 1, "{recovered:#?}");
    assert_eq!(logs.lines("WARN", "Gateway API watch failed;").len(), 1);
}

#[tokio::test]
async fn readiness_waits_for_the_first_lists_and_for_an_api_server_that_answers() {
    let api = FakeApi::new(&[Resource::GATEWAYS, Resource::LISTENER_SETS], false);
    let hook = webhook(&api);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!ready(&hook).await, "ready before the Gateways were listed");
    api.open_lists();
    eventually("the cache settles", async || ready(&hook).await).await;

    let api = FakeApi::new(&[Resource::GATEWAYS, Resource::LISTENER_SETS], true);
    api.go_down();
    let hook = webhook(&api);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!ready(&hook).await, "a 503 says nothing about the Gateway API");
    assert_eq!(hook.cache.state(&WatchedKind::gateway()), Some(KindState::Waiting));
    api.come_back();
    eventually("the cache settles", async || ready(&hook).await).await;
}

#[tokio::test]
async fn a_kind_portcullis_may_not_list_does_not_keep_the_pod_unready_and_is_not_fetched() {
    let (logs, _guard) = Logs::capture("portcullis::cluster::gateways");
    let api = FakeApi::new(&[Resource::GATEWAYS, Resource::LISTENER_SETS], true);
    api.put_object(Resource::GATEWAYS, gateway("shop", "web", "HTTPS"), false);
    api.forbid(Resource::GATEWAYS, true);
    let hook = webhook(&api);
    eventually("ready without Gateways", async || ready(&hook).await).await;
    assert_eq!(hook.cache.state(&WatchedKind::gateway()), Some(KindState::Forbidden));
    assert_eq!(validate(&hook, route("shop")).await, judged_strictly());
    assert_eq!(api.gets(), 0, "no GET per review for a kind that cannot be listed");

    tokio::time::sleep(RECHECK * 3).await;
    let forbidden = logs.lines("WARN", "Gateway API kind cannot be listed");
    assert_eq!(forbidden.len(), 1, "said once: {forbidden:#?}");
    assert!(forbidden[0].contains(" kind=Gateway.gateway.networking.k8s.io "), "{forbidden:#?}");
    assert_eq!(logs.lines("WARN", "Gateway API watch failed"), Vec::<String>::new());

    // RBAC granted: picked up at the next check.
    api.forbid(Resource::GATEWAYS, false);
    eventually("the Gateways are listed", async || validate(&hook, route("shop")).await == allowed_on_https()).await;
    assert_eq!(hook.cache.state(&WatchedKind::gateway()), Some(KindState::Synced));
}

/// The bundled policies, with Envoy Gateway's SecurityPolicy no longer accepted as route authentication.
fn without_security_policies() -> PolicySet {
    let line = "        - {group: gateway.envoyproxy.io, kind: SecurityPolicy}\n";
    let mut sources = portcullis::policy::read_sources(&repo("policies")).unwrap();
    let mut removed = 0;
    for (_, text) in &mut sources {
        removed += text.matches(line).count();
        *text = text.replace(line, "");
    }
    assert_eq!(removed, 2, "require-gateway-auth and warn-gateway-auth list it");
    portcullis::policy::load_sources(&sources).unwrap()
}

#[tokio::test]
async fn the_policy_kinds_watched_follow_the_policy_set() {
    let (logs, _guard) = Logs::capture("portcullis::cluster::gateways");
    let api = FakeApi::new(&[Resource::GATEWAYS, Resource::LISTENER_SETS, Resource::SECURITY_POLICIES], true);
    api.put_object(Resource::GATEWAYS, gateway("production", "web", "HTTPS"), false);
    api.put_object(Resource::SECURITY_POLICIES, security_policy("production"), false);
    let hook = webhook(&api);
    eventually("the cache settles", async || ready(&hook).await).await;
    let security_policies = kind("gateway.envoyproxy.io", "SecurityPolicy");
    eventually("the SecurityPolicies are listed", async || {
        hook.cache.state(&security_policies) == Some(KindState::Synced)
    })
    .await;
    let allowed = json!({"uid": "5f0c8c36-6f4a-4c1e-9d43-2b7d3c1a0e11", "allowed": true});
    assert_eq!(validate(&hook, route("production")).await, allowed, "authenticated by the SecurityPolicy");

    hook.store.replace(without_security_policies());
    eventually("the SecurityPolicies are no longer watched", async || {
        !hook.cache.watched().contains(&security_policies)
    })
    .await;
    let snapshot = hook.cache.snapshot();
    assert_eq!(snapshot.policies_targeting("production", GROUP, "HTTPRoute", "store").count(), 0, "forgotten");
    assert_eq!(snapshot.parents().count(), 1, "the Gateway stays");
    assert_eq!(
        validate(&hook, route("production")).await["status"]["message"],
        "[require-gateway-auth] HTTPRoute production/store: no authentication the Gateway enforces; add an \
         ExternalAuth filter, an approved Middleware ExtensionRef or an AuthPolicy on the route or its Gateway, or \
         portcullis.dev/auth: application"
    );

    hook.store.replace(bundled());
    eventually("the SecurityPolicies are watched again", async || {
        validate(&hook, route("production")).await == allowed
    })
    .await;
    assert!(ready(&hook).await);
    let stopped = logs.lines("INFO", "no policy names this kind any more; no longer watched");
    let started = logs.lines("INFO", "a policy names this kind now; watching it");
    assert_eq!((stopped.len(), started.len()), (1, 1), "{stopped:#?} {started:#?}");
    assert!(stopped[0].contains(" kind=SecurityPolicy.gateway.envoyproxy.io"), "{stopped:#?}");
}
