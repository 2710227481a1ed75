//! A Kubernetes API server served in process, for the cluster caches: a small
//! axum app handed to `kube::Client::new` as its service (no network at all).
//! It speaks what the caches use: discovery (`/apis`, `/apis/{group}/{version}`),
//! list and watch of a resource across namespaces, GET of one object, and the
//! server-side apply (PATCH `application/apply-patch+yaml`) of the audit's
//! Reports, each recorded ([`FakeApi::applies`]).
//! Like the real API server it replays, to a watch from a resource version,
//! every change after it (as etcd does); it answers a request whose `Accept`
//! asks for `as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` with the
//! metadata alone; and a resource it does not serve (a CRD not installed) is
//! answered 404 and left out of discovery.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

/// A resource the fake can serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

impl Resource {
    pub const NAMESPACES: Resource =
        Resource { group: "", version: "v1", kind: "Namespace", plural: "namespaces", namespaced: false };
    pub const INGRESS_CLASSES: Resource = Resource {
        group: "networking.k8s.io",
        version: "v1",
        kind: "IngressClass",
        plural: "ingressclasses",
        namespaced: false,
    };
    pub const GATEWAYS: Resource = Resource {
        group: "gateway.networking.k8s.io",
        version: "v1",
        kind: "Gateway",
        plural: "gateways",
        namespaced: true,
    };
    pub const LISTENER_SETS: Resource = Resource {
        group: "gateway.networking.k8s.io",
        version: "v1",
        kind: "ListenerSet",
        plural: "listenersets",
        namespaced: true,
    };
    pub const SERVICES: Resource =
        Resource { group: "", version: "v1", kind: "Service", plural: "services", namespaced: true };
    pub const INGRESSES: Resource =
        Resource { group: "networking.k8s.io", version: "v1", kind: "Ingress", plural: "ingresses", namespaced: true };
    /// OpenReports' Report (its CRD installed when served); written by server-side apply.
    pub const REPORTS: Resource =
        Resource { group: "openreports.io", version: "v1alpha1", kind: "Report", plural: "reports", namespaced: true };
    pub const SECURITY_POLICIES: Resource = Resource {
        group: "gateway.envoyproxy.io",
        version: "v1alpha1",
        kind: "SecurityPolicy",
        plural: "securitypolicies",
        namespaced: true,
    };

    /// `v1`, `networking.k8s.io/v1`.
    pub fn api_version(&self) -> String {
        match self.group {
            "" => self.version.to_owned(),
            group => format!("{group}/{}", self.version),
        }
    }

    /// `namespaces`, `ingressclasses.networking.k8s.io`, as the API server names it in messages.
    fn qualified(&self) -> String {
        match self.group {
            "" => self.plural.to_owned(),
            group => format!("{}.{group}", self.plural),
        }
    }

    fn same(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }
}

/// How the fake answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Up,
    /// 503 to everything, discovery included, like an API server that is down or restarting.
    Unavailable,
    /// 403 to every list, watch and GET (discovery is open to everyone), like
    /// a ServiceAccount without RBAC.
    Forbidden,
}

/// How long a failing list or watch takes to be answered: long enough that a
/// state wrongly cleared before the answer would be seen by a test sampling it.
pub const FAILURE_LATENCY: Duration = Duration::from_millis(100);

/// The fake API server. Clones share it.
#[derive(Clone)]
pub struct FakeApi(Arc<Inner>);

struct Inner {
    cluster: Mutex<Cluster>,
    version: AtomicU64,
    /// Changes, sent to every open watch; `None` ends them.
    events: broadcast::Sender<Option<Change>>,
    health: Mutex<Health>,
    /// Lists are held until this turns true.
    list_open: watch::Sender<bool>,
    gets: AtomicUsize,
    /// The `Accept` header of every list, watch and GET: its verb and value.
    accepts: Mutex<Vec<(&'static str, String)>>,
    /// Every list answered: the resource's plural, the `limit` and the `continue` token asked for.
    lists: Mutex<Vec<ListCall>>,
    /// Every server-side apply (PATCH `application/apply-patch+yaml`): its
    /// field manager, whether forced, and the body.
    applies: Mutex<Vec<Apply>>,
}

/// One list the fake answered: the resource's plural, the `limit` and the
/// `continue` token asked for.
pub type ListCall = (&'static str, Option<usize>, Option<String>);

/// One server-side apply the fake received.
#[derive(Clone, Debug)]
pub struct Apply {
    pub field_manager: String,
    pub force: bool,
    pub namespace: String,
    pub name: String,
    pub body: Value,
}

/// A watch event: the resource, the event type (ADDED, MODIFIED, DELETED) and the whole object.
#[derive(Clone, Debug)]
struct Change {
    resource: Resource,
    namespace: String,
    kind: &'static str,
    object: Value,
}

/// An object's place: group, plural, namespace (`""` when cluster-scoped), name.
type Key = (&'static str, &'static str, String, String);

/// What the fake holds: the resources it serves, the objects, and every
/// announced change.
#[derive(Default)]
struct Cluster {
    served: Vec<Resource>,
    forbidden: BTreeSet<(&'static str, &'static str)>,
    objects: BTreeMap<Key, Value>,
    history: Vec<(u64, Change)>,
}

impl FakeApi {
    /// A fake serving `resources`; lists are answered at once when `list_open`.
    pub fn new(resources: &[Resource], list_open: bool) -> FakeApi {
        let cluster = Cluster { served: resources.to_vec(), ..Cluster::default() };
        FakeApi(Arc::new(Inner {
            cluster: Mutex::new(cluster),
            version: AtomicU64::new(1),
            events: broadcast::channel(64).0,
            health: Mutex::new(Health::Up),
            list_open: watch::channel(list_open).0,
            gets: AtomicUsize::new(0),
            accepts: Mutex::default(),
            lists: Mutex::default(),
            applies: Mutex::default(),
        }))
    }

    /// Lists held since [`FakeApi::new`] are answered.
    pub fn open_lists(&self) {
        self.0.list_open.send_replace(true);
    }

    /// Serves `resource` from now on (its CRD is installed).
    pub fn serve(&self, resource: Resource) {
        let mut cluster = self.0.cluster.lock().unwrap();
        if !cluster.served.contains(&resource) {
            cluster.served.push(resource);
        }
    }

    /// Stops serving `resource` (its CRD is removed); its watches end.
    pub fn unserve(&self, resource: Resource) {
        let mut cluster = self.0.cluster.lock().unwrap();
        cluster.served.retain(|served| *served != resource);
        let _ = self.0.events.send(None);
    }

    /// Answers 403 to lists, watches and GETs of `resource` (`false`: no longer);
    /// its open watches end.
    pub fn forbid(&self, resource: Resource, forbidden: bool) {
        let mut cluster = self.0.cluster.lock().unwrap();
        if forbidden {
            cluster.forbidden.insert((resource.group, resource.plural));
        } else {
            cluster.forbidden.remove(&(resource.group, resource.plural));
        }
        let _ = self.0.events.send(None);
    }

    /// Stores `object` (its `metadata.name` and, for a namespaced resource,
    /// `metadata.namespace`) with a new resource version and, unless it has
    /// one, a uid; `announce` sends (and records) the watch event. The new
    /// resource version.
    pub fn put_object(&self, resource: Resource, mut object: Value, announce: bool) -> u64 {
        let mut cluster = self.0.cluster.lock().unwrap();
        let version = self.0.version.fetch_add(1, Ordering::SeqCst) + 1;
        let metadata = &mut object["metadata"];
        metadata["resourceVersion"] = json!(version.to_string());
        if metadata.get("uid").is_none() {
            metadata["uid"] = json!(format!("6f1f0a52-0000-4000-8000-{version:012}"));
        }
        let key = key(resource, &object);
        let existed = cluster.objects.insert(key.clone(), object.clone()).is_some();
        if announce {
            self.announce(&mut cluster, version, resource, key.2, if existed { "MODIFIED" } else { "ADDED" }, object);
        }
        version
    }

    /// Deletes an object (`namespace` `""` when cluster-scoped); `announce`
    /// sends (and records) the watch event.
    pub fn delete_object(&self, resource: Resource, namespace: &str, name: &str, announce: bool) {
        let mut cluster = self.0.cluster.lock().unwrap();
        let key = (resource.group, resource.plural, namespace.to_owned(), name.to_owned());
        let mut object = cluster.objects.remove(&key).expect("no such object");
        let version = self.0.version.fetch_add(1, Ordering::SeqCst) + 1;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        if announce {
            self.announce(&mut cluster, version, resource, key.2, "DELETED", object);
        }
    }

    fn announce(
        &self,
        cluster: &mut Cluster,
        version: u64,
        resource: Resource,
        namespace: String,
        kind: &'static str,
        object: Value,
    ) {
        let change = Change { resource, namespace, kind, object };
        cluster.history.push((version, change.clone()));
        let _ = self.0.events.send(Some(change));
    }

    /// The API server starts failing every request as `health` says, and open watches end.
    pub fn fail(&self, health: Health) {
        *self.0.health.lock().unwrap() = health;
        let _cluster = self.0.cluster.lock().unwrap();
        let _ = self.0.events.send(None);
    }

    /// The API server goes away: every request fails and open watches end.
    pub fn go_down(&self) {
        self.fail(Health::Unavailable);
    }

    /// The API server answers again.
    pub fn come_back(&self) {
        *self.0.health.lock().unwrap() = Health::Up;
    }

    /// The server-side applies so far, in order.
    pub fn applies(&self) -> Vec<Apply> {
        self.0.applies.lock().unwrap().clone()
    }

    /// The object stored at `namespace`/`name` (`""` when cluster-scoped).
    pub fn object(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        let key = (resource.group, resource.plural, namespace.to_owned(), name.to_owned());
        self.0.cluster.lock().unwrap().objects.get(&key).cloned()
    }

    /// How many single objects were asked for (GET).
    pub fn gets(&self) -> usize {
        self.0.gets.load(Ordering::SeqCst)
    }

    /// The `Accept` headers of the requests so far, for `verb` (list, watch or get).
    /// Every list answered: plural, `limit` and `continue` asked for.
    pub fn lists(&self) -> Vec<ListCall> {
        self.0.lists.lock().unwrap().clone()
    }

    pub fn accepts(&self, verb: &str) -> Vec<String> {
        let accepts = self.0.accepts.lock().unwrap();
        accepts.iter().filter(|(seen, _)| *seen == verb).map(|(_, accept)| accept.clone()).collect()
    }

    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.router(), "default")
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

    /// Why a request for `resource` with `verb` fails, if it does.
    fn refusal(&self, resource: Resource, verb: &str) -> Option<Response> {
        let health = *self.0.health.lock().unwrap();
        let forbidden = health == Health::Forbidden
            || self.0.cluster.lock().unwrap().forbidden.contains(&(resource.group, resource.plural));
        match health {
            Health::Unavailable => Some(unavailable()),
            _ if forbidden => Some(status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "{} is forbidden: User \"system:serviceaccount:portcullis-system:portcullis\" cannot {verb} \
                     resource \"{}\" in API group \"{}\" at the cluster scope",
                    resource.qualified(),
                    resource.plural,
                    resource.group
                ),
            )),
            _ => None,
        }
    }
}

fn key(resource: Resource, object: &Value) -> Key {
    let text = |pointer| object.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
    let namespace = if resource.namespaced { text("/metadata/namespace") } else { String::new() };
    (resource.group, resource.plural, namespace, text("/metadata/name"))
}

pub fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": message, "reason": reason, "code": code.as_u16()});
    (code, [(header::CONTENT_TYPE, "application/json")], status.to_string()).into_response()
}

fn unavailable() -> Response {
    status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "the server is down")
}

fn not_found() -> Response {
    status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource")
}

fn not_acceptable() -> Response {
    status(
        StatusCode::NOT_ACCEPTABLE,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
    )
}

fn json_response(value: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// `object` as the request asked for it: whole, or its metadata alone.
fn as_requested(object: &Value, metadata_only: bool) -> Value {
    if metadata_only {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
    } else {
        object.clone()
    }
}

fn watch_line(change: &Change, metadata_only: bool) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": change.kind, "object": as_requested(&change.object, metadata_only)})))
}

/// What a path asks for.
enum Target<'a> {
    /// `/apis`: the groups.
    Groups,
    /// `/api/v1` or `/apis/{group}/{version}`: the resources of a group version.
    Resources { group: &'a str, version: &'a str },
    /// A collection: list or watch, in one namespace or all.
    Collection { group: &'a str, version: &'a str, plural: &'a str, namespace: Option<&'a str> },
    /// One object.
    Object { group: &'a str, version: &'a str, plural: &'a str, namespace: &'a str, name: &'a str },
}

fn target(path: &str) -> Option<Target<'_>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["apis"] => return Some(Target::Groups),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    Some(match rest {
        [] => Target::Resources { group, version },
        [plural] => Target::Collection { group, version, plural, namespace: None },
        [plural, name] => Target::Object { group, version, plural, namespace: "", name },
        ["namespaces", namespace, plural] => Target::Collection { group, version, plural, namespace: Some(namespace) },
        ["namespaces", namespace, plural, name] => Target::Object { group, version, plural, namespace, name },
        _ => return None,
    })
}

async fn handle(State(api): State<FakeApi>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if method == Method::PATCH {
        return apply(&api, &uri, &headers, &body);
    }
    if method != Method::GET {
        return status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "the fake reads and applies only");
    }
    let Some(target) = target(uri.path()) else { return not_found() };
    if *api.0.health.lock().unwrap() == Health::Unavailable
        && matches!(target, Target::Groups | Target::Resources { .. })
    {
        return unavailable();
    }
    let served = |group: &str, version: &str, plural: &str| {
        let cluster = api.0.cluster.lock().unwrap();
        cluster.served.iter().copied().find(|served| served.same(group, plural) && served.version == version)
    };
    match target {
        Target::Groups => groups(&api),
        Target::Resources { group, version } => resources(&api, group, version),
        Target::Collection { group, version, plural, namespace } => {
            let query: Vec<(&str, &str)> =
                uri.query().unwrap_or_default().split('&').filter_map(|pair| pair.split_once('=')).collect();
            let watching = query.iter().any(|&(key, value)| key == "watch" && (value == "true" || value == "1"));
            let verb = if watching { "watch" } else { "list" };
            let Some(metadata_only) = api.negotiate(verb, &headers) else { return not_acceptable() };
            let failure = match served(group, version, plural) {
                None => Err(not_found()),
                Some(resource) => api.refusal(resource, verb).map_or(Ok(resource), Err),
            };
            let resource = match failure {
                Ok(resource) => resource,
                Err(failure) => {
                    tokio::time::sleep(FAILURE_LATENCY).await;
                    return failure;
                }
            };
            if watching {
                let since: u64 = query
                    .iter()
                    .find(|(key, _)| *key == "resourceVersion")
                    .and_then(|(_, value)| value.parse().ok())
                    .unwrap_or(0);
                watch_collection(&api, resource, namespace.map(str::to_owned), since, metadata_only)
            } else {
                list_collection(&api, resource, namespace, metadata_only, &query).await
            }
        }
        Target::Object { group, version, plural, namespace, name } => {
            api.0.gets.fetch_add(1, Ordering::SeqCst);
            let Some(metadata_only) = api.negotiate("get", &headers) else { return not_acceptable() };
            let Some(resource) = served(group, version, plural) else { return not_found() };
            if let Some(failure) = api.refusal(resource, "get") {
                return failure;
            }
            let key = (resource.group, resource.plural, namespace.to_owned(), name.to_owned());
            match api.0.cluster.lock().unwrap().objects.get(&key) {
                Some(object) => json_response(as_requested(object, metadata_only)),
                None => {
                    status(StatusCode::NOT_FOUND, "NotFound", &format!("{} \"{name}\" not found", resource.qualified()))
                }
            }
        }
    }
}

/// A server-side apply of one object: stored whole as applied (the fake has
/// one field manager), keeping its uid, and announced to watches.
fn apply(api: &FakeApi, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(Target::Object { group, version, plural, namespace, name }) = target(uri.path()) else {
        return not_found();
    };
    let resource = {
        let cluster = api.0.cluster.lock().unwrap();
        cluster.served.iter().copied().find(|served| served.same(group, plural) && served.version == version)
    };
    let Some(resource) = resource else { return not_found() };
    if let Some(failure) = api.refusal(resource, "patch") {
        return failure;
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if content_type != "application/apply-patch+yaml" {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the fake takes server-side applies only",
        );
    }
    let query: BTreeMap<&str, &str> =
        uri.query().unwrap_or_default().split('&').filter_map(|pair| pair.split_once('=')).collect();
    let Some(field_manager) = query.get("fieldManager") else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "PATCH, application/apply-patch+yaml: fieldManager is required",
        );
    };
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON");
    };
    if object.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "the name of the object does not match the URL");
    }
    object["metadata"]["namespace"] = json!(namespace);
    if let Some(uid) =
        api.object(resource, namespace, name).and_then(|old| old["metadata"]["uid"].as_str().map(str::to_owned))
    {
        object["metadata"]["uid"] = json!(uid);
    }
    api.0.applies.lock().unwrap().push(Apply {
        field_manager: (*field_manager).to_owned(),
        force: query.get("force") == Some(&"true"),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        body: serde_json::from_slice(body).unwrap(),
    });
    api.put_object(resource, object, true);
    json_response(api.object(resource, namespace, name).unwrap())
}

/// `/apis`: every group of a served resource, versions in the order first served
/// (the first preferred).
fn groups(api: &FakeApi) -> Response {
    let cluster = api.0.cluster.lock().unwrap();
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for resource in cluster.served.iter().filter(|resource| !resource.group.is_empty()) {
        match groups.iter_mut().find(|(group, _)| *group == resource.group) {
            Some((_, versions)) if !versions.contains(&resource.version) => versions.push(resource.version),
            Some(_) => {}
            None => groups.push((resource.group, vec![resource.version])),
        }
    }
    let groups: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| {
            let version = |version: &&str| json!({"groupVersion": format!("{group}/{version}"), "version": version});
            json!({"name": group, "versions": versions.iter().map(version).collect::<Vec<_>>(),
                   "preferredVersion": version(&versions[0])})
        })
        .collect();
    json_response(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

/// `/apis/{group}/{version}`: the resources served there.
fn resources(api: &FakeApi, group: &str, version: &str) -> Response {
    let cluster = api.0.cluster.lock().unwrap();
    let served: Vec<Value> = cluster
        .served
        .iter()
        .filter(|resource| resource.group == group && resource.version == version)
        .map(|resource| {
            json!({"name": resource.plural, "singularName": resource.kind.to_lowercase(),
                   "namespaced": resource.namespaced, "kind": resource.kind,
                   "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]})
        })
        .collect();
    if served.is_empty() {
        return not_found();
    }
    let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    json_response(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": served}),
    )
}

/// A list, in pages of `limit` objects when asked: the `continue` token of the
/// next page is the index of its first object.
async fn list_collection(
    api: &FakeApi,
    resource: Resource,
    namespace: Option<&str>,
    metadata_only: bool,
    query: &[(&str, &str)],
) -> Response {
    let asked = |name: &str| query.iter().find(|(key, _)| *key == name).map(|(_, value)| *value);
    let limit: Option<usize> = asked("limit").and_then(|limit| limit.parse().ok()).filter(|limit| *limit > 0);
    let token = asked("continue").filter(|token| !token.is_empty()).map(str::to_owned);
    api.0.lists.lock().unwrap().push((resource.plural, limit, token.clone()));
    let start: usize = token.as_deref().map_or(0, |token| token.parse().unwrap_or(0));
    let mut open = api.0.list_open.subscribe();
    let _ = open.wait_for(|open| *open).await;
    if let Some(failure) = api.refusal(resource, "list") {
        return failure;
    }
    let items: Vec<Value> = api
        .0
        .cluster
        .lock()
        .unwrap()
        .objects
        .iter()
        .filter(|((group, plural, in_namespace, _), _)| {
            resource.same(group, plural) && namespace.is_none_or(|namespace| namespace == in_namespace)
        })
        .map(|(_, object)| as_requested(object, metadata_only))
        .collect();
    let total = items.len();
    let end = limit.map_or(total, |limit| (start + limit).min(total));
    let items: Vec<Value> = items.into_iter().skip(start).take(end.saturating_sub(start)).collect();
    let next = (end < total).then(|| end.to_string());
    let version = api.0.version.load(Ordering::SeqCst).to_string();
    let (api_version, kind) = if metadata_only {
        ("meta.k8s.io/v1".to_owned(), "PartialObjectMetadataList".to_owned())
    } else {
        (resource.api_version(), format!("{}List", resource.kind))
    };
    json_response(json!({"apiVersion": api_version, "kind": kind,
               "metadata": {"resourceVersion": version, "continue": next}, "items": items}))
}

fn watch_collection(
    api: &FakeApi,
    resource: Resource,
    namespace: Option<String>,
    since: u64,
    metadata_only: bool,
) -> Response {
    let wanted = move |change: &Change| {
        change.resource.same(resource.group, resource.plural)
            && namespace.as_ref().is_none_or(|namespace| *namespace == change.namespace)
    };
    // Under the lock, so that no change falls between the replay and the live events.
    let (replay, events) = {
        let cluster = api.0.cluster.lock().unwrap();
        // Checked again under the lock: `fail` ends the watches that subscribed before it.
        let health = *api.0.health.lock().unwrap();
        if health != Health::Up
            || cluster.forbidden.contains(&(resource.group, resource.plural))
            || !cluster.served.contains(&resource)
        {
            return unavailable();
        }
        let replay: Vec<Bytes> = cluster
            .history
            .iter()
            .filter(|(version, change)| *version > since && wanted(change))
            .map(|(_, change)| watch_line(change, metadata_only))
            .collect();
        (replay, api.0.events.subscribe())
    };
    let live = futures::stream::unfold((events, wanted), move |(mut events, wanted)| async move {
        loop {
            match events.recv().await {
                Ok(Some(change)) if wanted(&change) => {
                    return Some((watch_line(&change, metadata_only), (events, wanted)));
                }
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    });
    let stream = futures::stream::iter(replay).chain(live).map(Ok::<_, Infallible>);
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response()
}
