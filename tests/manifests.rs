//! The installation manifests (`manifests/`, rendered with `kubectl kustomize`),
//! the alert rules and the Dockerfile, checked against each other and against
//! the code they deploy: webhook paths and probe paths are called on the real
//! routers, the container arguments are parsed by the real command line, and
//! the policies ConfigMap is loaded by the real policy loader.
//!
//! Rendering needs `kubectl` (with its built-in kustomize) or `kustomize` on the
//! PATH; without either, the tests that render print why and pass.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use common::{fixture, repo};
use http_body_util::BodyExt;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference, ValidatingWebhook,
    ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, Namespace, PodSecurityContext, PodSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use portcullis::cli::{Cli, Command as CliCommand, ServeArgs};
use portcullis::engine::{Kind, PolicySet, Stage};
use portcullis::webhook::{AppState, admin_router, webhook_router};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower::ServiceExt;

const NAMESPACE: &str = "portcullis-system";
const PLACEHOLDER: &str = "CA_BUNDLE_PLACEHOLDER";
const INJECT_CA_FROM: &str = "cert-manager.io/inject-ca-from";

// ---------------------------------------------------------------------------
// Rendering

/// `kubectl kustomize` (or `kustomize build`), if installed.
fn kustomize() -> Option<Command> {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    };
    if let Some(kubectl) =
        on_path("kubectl").or_else(|| Some(PathBuf::from("/usr/bin/kubectl")).filter(|p| p.is_file()))
    {
        let mut command = Command::new(kubectl);
        command.arg("kustomize");
        return Some(command);
    }
    let mut command = Command::new(on_path("kustomize")?);
    command.arg("build");
    Some(command)
}

/// The multi-document YAML that `dir` renders to, or `None` without kustomize.
fn render_text(dir: &str) -> Option<String> {
    let Some(mut command) = kustomize() else {
        eprintln!("skipped: neither kubectl nor kustomize is installed, {dir} not rendered");
        return None;
    };
    let output = command.arg(repo(dir)).output().expect("kustomize runs");
    assert!(output.status.success(), "kustomize {dir} failed: {}", String::from_utf8_lossy(&output.stderr));
    Some(String::from_utf8(output.stdout).expect("kustomize prints UTF-8"))
}

/// Rendered documents, looked up by kind and name.
struct Manifests(Vec<Value>);

impl Manifests {
    fn parse(text: &str) -> Manifests {
        let docs: Vec<Value> = serde_saphyr::from_str_multiple::<Value, Vec<_>>(text).expect("rendered YAML parses");
        Manifests(docs.into_iter().filter(|doc| !doc.is_null()).collect())
    }

    fn render(dir: &str) -> Option<Manifests> {
        render_text(dir).map(|text| Manifests::parse(&text))
    }

    /// The one document of this kind and name.
    fn value(&self, kind: &str, name: &str) -> &Value {
        let found: Vec<&Value> =
            self.0.iter().filter(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name).collect();
        assert_eq!(found.len(), 1, "exactly one {kind} {name}");
        found[0]
    }

    /// The one document of this kind and name, as its k8s-openapi type.
    fn get<T: DeserializeOwned>(&self, kind: &str, name: &str) -> T {
        serde_json::from_value(self.value(kind, name).clone())
            .unwrap_or_else(|e| panic!("{kind} {name} does not fit its schema: {e}"))
    }

    /// `(apiVersion, kind, namespace, name)` of every document, sorted.
    fn identities(&self) -> Vec<(String, String, String, String)> {
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        let mut ids: Vec<_> = self
            .0
            .iter()
            .map(|doc| {
                (
                    text(&doc["apiVersion"]),
                    text(&doc["kind"]),
                    text(&doc["metadata"]["namespace"]),
                    text(&doc["metadata"]["name"]),
                )
            })
            .collect();
        ids.sort();
        ids
    }
}

fn id(api_version: &str, kind: &str, namespace: &str, name: &str) -> (String, String, String, String) {
    (api_version.into(), kind.into(), namespace.into(), name.into())
}

/// Deserializes `doc` as `T` and serializes it back: equal only when every field
/// is known to the Kubernetes schema and has the right type.
fn round_trips<T: DeserializeOwned + serde::Serialize>(doc: &Value) {
    let name = &doc["metadata"]["name"];
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} {name} does not fit its schema: {e}", doc["kind"]));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, doc, "{} {name} has fields its schema does not know", doc["kind"]);
}

/// Every built-in kind in `manifests` fits its k8s-openapi type exactly.
fn assert_schemas(manifests: &Manifests) {
    for doc in &manifests.0 {
        match doc["kind"].as_str().unwrap() {
            "Namespace" => round_trips::<Namespace>(doc),
            "ServiceAccount" => round_trips::<ServiceAccount>(doc),
            "ClusterRole" => round_trips::<ClusterRole>(doc),
            "ClusterRoleBinding" => round_trips::<ClusterRoleBinding>(doc),
            "ConfigMap" => round_trips::<ConfigMap>(doc),
            "Service" => round_trips::<Service>(doc),
            "Deployment" => round_trips::<Deployment>(doc),
            "PodDisruptionBudget" => round_trips::<PodDisruptionBudget>(doc),
            "ValidatingWebhookConfiguration" => round_trips::<ValidatingWebhookConfiguration>(doc),
            "MutatingWebhookConfiguration" => round_trips::<MutatingWebhookConfiguration>(doc),
            "Certificate" | "Issuer" | "ServiceMonitor" | "PrometheusRule" => {}
            other => panic!("unexpected kind {other}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Pieces of the base

fn base() -> Option<Manifests> {
    Manifests::render("manifests")
}

fn validating(manifests: &Manifests) -> ValidatingWebhook {
    let config: ValidatingWebhookConfiguration = manifests.get("ValidatingWebhookConfiguration", "portcullis");
    let [webhook] = <[ValidatingWebhook; 1]>::try_from(config.webhooks.unwrap()).expect("one validating webhook");
    webhook
}

fn mutating(manifests: &Manifests) -> MutatingWebhook {
    let config: MutatingWebhookConfiguration = manifests.get("MutatingWebhookConfiguration", "portcullis");
    let [webhook] = <[MutatingWebhook; 1]>::try_from(config.webhooks.unwrap()).expect("one mutating webhook");
    webhook
}

fn pod_spec(manifests: &Manifests) -> PodSpec {
    let deployment: Deployment = manifests.get("Deployment", "portcullis");
    deployment.spec.template.spec.unwrap()
}

fn container(manifests: &Manifests) -> Container {
    let [container] = <[Container; 1]>::try_from(pod_spec(manifests).containers).expect("one container");
    container
}

fn pod_labels(manifests: &Manifests) -> BTreeMap<String, String> {
    let deployment: Deployment = manifests.get("Deployment", "portcullis");
    deployment.spec.template.metadata.unwrap().labels.unwrap()
}

/// The container's arguments, parsed by portcullis' own command line.
fn serve_args(args: &[String]) -> ServeArgs {
    let cli = Cli::try_parse_from(std::iter::once("portcullis".to_owned()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| panic!("portcullis rejects the arguments {args:?}: {e}"));
    match cli.command {
        CliCommand::Serve(serve) => serve,
        other => panic!("expected serve, got {other:?}"),
    }
}

fn container_args(manifests: &Manifests) -> ServeArgs {
    serve_args(&container(manifests).args.expect("container args"))
}

/// The number of the container port named `name`.
fn container_port(container: &Container, name: &str) -> i32 {
    let ports = container.ports.as_ref().expect("container ports");
    let found: Vec<i32> =
        ports.iter().filter(|port| port.name.as_deref() == Some(name)).map(|port| port.container_port).collect();
    assert_eq!(found.len(), 1, "one container port named {name}");
    found[0]
}

/// Kubernetes label selector semantics, as kube-core implements them.
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let selector = kube::core::Selector::try_from(selector.clone()).expect("a valid label selector");
    kube::core::SelectorExt::matches(&selector, labels)
}

/// The labels the API server gives a namespace, plus `extra`.
fn namespace_labels(name: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), name.to_owned())]);
    labels.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    labels
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

async fn call(router: Router, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

async fn get(router: &Router, path: &str) -> StatusCode {
    call(router.clone(), Request::get(path).body(Body::empty()).unwrap()).await.0
}

fn bundled_state() -> Arc<AppState> {
    AppState::new(portcullis::policy::load_dir(&repo("policies")).expect("bundled policies load"))
}

// ---------------------------------------------------------------------------
// What the base installs

#[test]
fn base_installs_exactly_these_objects_each_fitting_its_schema() {
    let Some(manifests) = base() else { return };
    assert_eq!(
        manifests.identities(),
        vec![
            id("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "", "portcullis"),
            id("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "", "portcullis"),
            id("apps/v1", "Deployment", NAMESPACE, "portcullis"),
            id("cert-manager.io/v1", "Certificate", NAMESPACE, "portcullis"),
            id("cert-manager.io/v1", "Certificate", NAMESPACE, "portcullis-ca"),
            id("cert-manager.io/v1", "Issuer", NAMESPACE, "portcullis-ca"),
            id("cert-manager.io/v1", "Issuer", NAMESPACE, "portcullis-selfsigned"),
            id("policy/v1", "PodDisruptionBudget", NAMESPACE, "portcullis"),
            id("rbac.authorization.k8s.io/v1", "ClusterRole", "", "portcullis"),
            id("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "portcullis"),
            id("v1", "ConfigMap", NAMESPACE, "portcullis-policies"),
            id("v1", "Namespace", "", NAMESPACE),
            id("v1", "Service", NAMESPACE, "portcullis"),
            id("v1", "ServiceAccount", NAMESPACE, "portcullis"),
        ]
    );
    assert_schemas(&manifests);
    // Not labelled for opt-out: the webhooks exclude it by name.
    let namespace: Namespace = manifests.get("Namespace", NAMESPACE);
    let labels = namespace.metadata.labels.unwrap();
    assert_eq!(labels.get("portcullis.dev/webhook"), None);
    assert_eq!(labels.get("pod-security.kubernetes.io/enforce").map(String::as_str), Some("restricted"));
}

// ---------------------------------------------------------------------------
// Webhooks

#[test]
fn webhooks_exclude_kube_system_and_our_namespace() {
    let Some(manifests) = base() else { return };
    let expected = LabelSelector {
        match_expressions: Some(vec![
            LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "NotIn".into(),
                values: strings(&["kube-system", NAMESPACE]),
            },
            LabelSelectorRequirement {
                key: "portcullis.dev/webhook".into(),
                operator: "NotIn".into(),
                values: strings(&["disabled"]),
            },
        ]),
        match_labels: None,
    };
    let selectors =
        [validating(&manifests).namespace_selector.unwrap(), mutating(&manifests).namespace_selector.unwrap()];
    for selector in selectors {
        assert_eq!(selector, expected);
        let opted_out = [("portcullis.dev/webhook", "disabled")];
        assert!(!selects(&selector, &namespace_labels("kube-system", &[])));
        assert!(!selects(&selector, &namespace_labels(NAMESPACE, &[])));
        assert!(!selects(&selector, &namespace_labels("legacy", &opted_out)));
        assert!(selects(&selector, &namespace_labels("production", &[])));
        assert!(selects(&selector, &namespace_labels("default", &[("portcullis.dev/webhook", "enabled")])));
    }
}

fn services_rule() -> RuleWithOperations {
    RuleWithOperations {
        api_groups: strings(&[""]),
        api_versions: strings(&["v1"]),
        resources: strings(&["services"]),
        operations: strings(&["CREATE", "UPDATE"]),
        scope: Some("Namespaced".into()),
    }
}

fn ingresses_rule() -> RuleWithOperations {
    RuleWithOperations {
        api_groups: strings(&["networking.k8s.io"]),
        api_versions: strings(&["v1"]),
        resources: strings(&["ingresses"]),
        operations: strings(&["CREATE", "UPDATE"]),
        scope: Some("Namespaced".into()),
    }
}

#[test]
fn validating_sees_services_and_ingresses_mutating_only_ingresses() {
    let Some(manifests) = base() else { return };
    assert_eq!(validating(&manifests).rules.unwrap(), vec![services_rule(), ingresses_rule()]);
    // No mutating policy touches a Service: the API server need not call /mutate for one.
    assert_eq!(mutating(&manifests).rules.unwrap(), vec![ingresses_rule()]);
}

/// One thing a webhook is called for: `(apiGroup, resource, operation)`.
type Registration = (String, String, String);

/// What the policies of `stage` act on: every kind and operation of their `match`.
fn acted_on(policies: &PolicySet, stage: Stage) -> BTreeSet<Registration> {
    let mut acted_on = BTreeSet::new();
    for policy in policies.policies().iter().filter(|policy| policy.rule().stage() == stage) {
        let matches = policy.matches();
        for kind in &matches.kinds {
            let (group, resource) = match kind {
                Kind::Service => ("", "services"),
                Kind::Ingress => ("networking.k8s.io", "ingresses"),
                Kind::Other => panic!("policy {} matches a kind portcullis has no rules for", policy.name()),
            };
            for operation in &matches.operations {
                acted_on.insert((group.to_owned(), resource.to_owned(), operation.as_str().to_owned()));
            }
        }
    }
    acted_on
}

/// Every `(apiGroup, resource, operation)` the rules register for. A wildcard
/// stays `*`, so it never equals what the policies act on.
fn registrations(rules: &[RuleWithOperations]) -> BTreeSet<Registration> {
    let mut registered = BTreeSet::new();
    for rule in rules {
        let list = |items: &Option<Vec<String>>| items.clone().unwrap_or_default();
        for group in list(&rule.api_groups) {
            for resource in list(&rule.resources) {
                for operation in list(&rule.operations) {
                    registered.insert((group.clone(), resource.clone(), operation));
                }
            }
        }
    }
    registered
}

/// The rules of the one webhook in the rendered configuration `kind`. Read from
/// the document itself: without cert-manager, its caBundle placeholder does not
/// fit the typed configuration.
fn webhook_rules(manifests: &Manifests, kind: &str) -> Vec<RuleWithOperations> {
    let webhooks = manifests.value(kind, "portcullis")["webhooks"].as_array().expect("webhooks").clone();
    assert_eq!(webhooks.len(), 1, "{kind}: one webhook");
    serde_json::from_value(webhooks[0]["rules"].clone()).unwrap_or_else(|e| panic!("{kind} rules: {e}"))
}

/// `Err` naming what is registered for nothing and what is acted on unregistered.
fn compare_registrations(registered: &BTreeSet<Registration>, acted_on: &BTreeSet<Registration>) -> Result<(), String> {
    if registered == acted_on {
        return Ok(());
    }
    Err(format!(
        "registered, yet no policy acts on it: {:?}; a policy acts on it, yet not registered: {:?}",
        registered.difference(acted_on).collect::<Vec<_>>(),
        acted_on.difference(registered).collect::<Vec<_>>()
    ))
}

#[test]
fn webhooks_register_exactly_what_the_bundled_policies_act_on() {
    let policies = portcullis::policy::load_dir(&repo("policies")).expect("bundled policies load");
    let stages = [
        ("ValidatingWebhookConfiguration", acted_on(&policies, Stage::Validate)),
        ("MutatingWebhookConfiguration", acted_on(&policies, Stage::Mutate)),
    ];
    for (_, acted_on) in &stages {
        assert!(!acted_on.is_empty());
    }
    for dir in ["manifests", "manifests/without-cert-manager"] {
        let Some(manifests) = Manifests::render(dir) else { return };
        for (kind, acted_on) in &stages {
            let registered = registrations(&webhook_rules(&manifests, kind));
            if let Err(difference) = compare_registrations(&registered, acted_on) {
                panic!("{dir}: {kind} does not match the policies of its stage: {difference}");
            }
        }
    }
}

#[test]
fn registering_services_for_mutation_is_caught() {
    // What the MutatingWebhookConfiguration registered before: Services too.
    let policies = portcullis::policy::load_dir(&repo("policies")).expect("bundled policies load");
    let services_and_ingresses = registrations(&[services_rule(), ingresses_rule()]);
    let error = compare_registrations(&services_and_ingresses, &acted_on(&policies, Stage::Mutate)).unwrap_err();
    assert!(error.contains(r#"("", "services", "CREATE")"#), "{error}");
    assert_eq!(compare_registrations(&services_and_ingresses, &acted_on(&policies, Stage::Validate)), Ok(()));
    // A wildcard is not what the policies act on either.
    let mut wildcard = ingresses_rule();
    wildcard.operations = strings(&["*"]);
    assert!(compare_registrations(&registrations(&[wildcard]), &acted_on(&policies, Stage::Mutate)).is_err());
}

#[test]
fn webhooks_fail_closed_within_five_seconds_on_v1_reviews() {
    let Some(manifests) = base() else { return };
    let v = validating(&manifests);
    let m = mutating(&manifests);
    assert_eq!(v.name, "validate.portcullis.dev");
    assert_eq!(m.name, "mutate.portcullis.dev");
    for (admission_review_versions, side_effects, failure_policy, timeout, match_policy, object_selector, conditions) in [
        (
            &v.admission_review_versions,
            &v.side_effects,
            &v.failure_policy,
            v.timeout_seconds,
            &v.match_policy,
            &v.object_selector,
            &v.match_conditions,
        ),
        (
            &m.admission_review_versions,
            &m.side_effects,
            &m.failure_policy,
            m.timeout_seconds,
            &m.match_policy,
            &m.object_selector,
            &m.match_conditions,
        ),
    ] {
        assert_eq!(admission_review_versions, &vec!["v1".to_owned()]);
        assert_eq!(side_effects, "None");
        assert_eq!(failure_policy.as_deref(), Some("Fail"));
        assert_eq!(timeout, Some(5));
        assert_eq!(match_policy.as_deref(), Some("Equivalent"));
        assert_eq!(object_selector, &None);
        assert_eq!(conditions, &None);
    }
    // Our patches only add what is absent, so being called again is safe.
    assert_eq!(m.reinvocation_policy.as_deref(), Some("IfNeeded"));
}

#[test]
fn webhooks_call_the_service_port_that_serves_tls() {
    let Some(manifests) = base() else { return };
    let expected = |path: &str| ServiceReference {
        namespace: NAMESPACE.into(),
        name: "portcullis".into(),
        path: Some(path.into()),
        port: Some(443),
    };
    let v = validating(&manifests).client_config;
    let m = mutating(&manifests).client_config;
    assert_eq!(v.service, Some(expected("/validate")));
    assert_eq!(m.service, Some(expected("/mutate")));
    assert_eq!((v.url, m.url), (None, None));
    // cert-manager's cainjector fills these in.
    assert_eq!((v.ca_bundle, m.ca_bundle), (None, None));

    let service: Service = manifests.get("Service", "portcullis");
    assert_eq!(service.metadata.namespace.as_deref(), Some(NAMESPACE));
    let spec = service.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let selector = LabelSelector { match_labels: spec.selector.clone(), match_expressions: None };
    assert!(selects(&selector, &pod_labels(&manifests)), "the Service selects the pods");
    let ports = spec.ports.unwrap();
    let https: Vec<_> = ports.iter().filter(|port| port.port == 443).collect();
    assert_eq!(https.len(), 1);
    assert_eq!(https[0].target_port, Some(IntOrString::String("https".into())));
    let container = container(&manifests);
    let listen = container_args(&manifests).listen;
    assert_eq!(container_port(&container, "https"), i32::from(listen.port()));
    assert_eq!(listen, "0.0.0.0:8443".parse::<SocketAddr>().unwrap());
}

#[tokio::test]
async fn webhook_paths_exist_in_the_router() {
    let Some(manifests) = base() else { return };
    let paths = [
        (validating(&manifests).client_config.service.unwrap().path.unwrap(), "v1.32/service-create-clusterip.json"),
        (mutating(&manifests).client_config.service.unwrap().path.unwrap(), "v1.32/ingress-create-tls.json"),
    ];
    let router = webhook_router(bundled_state());
    for (path, fixture_name) in paths {
        let review = fixture(fixture_name);
        let request = Request::post(&path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&review).unwrap()))
            .unwrap();
        let (status, body) = call(router.clone(), request).await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["response"]["uid"], review["request"]["uid"], "POST {path}");
        assert_eq!(answer["response"]["allowed"], json!(true), "POST {path}");
    }
    // The router does not answer just any path.
    let request =
        Request::post("/admit").header(header::CONTENT_TYPE, "application/json").body(Body::from("{}")).unwrap();
    assert_eq!(call(router, request).await.0, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------
// The pods

#[tokio::test]
async fn probes_point_at_admin_paths() {
    let Some(manifests) = base() else { return };
    let container = container(&manifests);
    let admin_listen = container_args(&manifests).admin_listen;
    assert_eq!(admin_listen, "0.0.0.0:9090".parse::<SocketAddr>().unwrap());
    assert_eq!(container_port(&container, "admin"), i32::from(admin_listen.port()));

    let liveness = container.liveness_probe.expect("liveness probe");
    let readiness = container.readiness_probe.expect("readiness probe");
    let path_and_port = |probe: &k8s_openapi::api::core::v1::Probe| {
        let get = probe.http_get.clone().expect("httpGet probe");
        assert_eq!(get.scheme, None, "plain HTTP");
        (get.path.unwrap(), get.port)
    };
    assert_eq!(path_and_port(&liveness), ("/healthz".to_owned(), IntOrString::String("admin".into())));
    assert_eq!(path_and_port(&readiness), ("/readyz".to_owned(), IntOrString::String("admin".into())));
    let period = readiness.period_seconds.unwrap();
    assert!((2..=5).contains(&period), "readiness periodSeconds {period}");

    let state = bundled_state();
    let admin = admin_router(state.clone());
    assert_eq!(get(&admin, "/healthz").await, StatusCode::OK);
    assert_eq!(get(&admin, "/readyz").await, StatusCode::SERVICE_UNAVAILABLE);
    state.set_ready(true);
    assert_eq!(get(&admin, "/readyz").await, StatusCode::OK);
    assert_eq!(get(&admin, "/healthz").await, StatusCode::OK);
}

#[test]
fn container_arguments_are_accepted_by_portcullis() {
    let Some(manifests) = base() else { return };
    let container = container(&manifests);
    assert_eq!(container.name, "portcullis");
    assert_eq!(container.image.as_deref(), Some("ghcr.io/portcullis-dev/portcullis:0.1.0"));
    assert_eq!(container.command, None, "the image's entrypoint runs");
    let args = container_args(&manifests);
    assert_eq!(args.tls_cert, Path::new("/etc/portcullis/tls/tls.crt"));
    assert_eq!(args.tls_key, Path::new("/etc/portcullis/tls/tls.key"));
    assert_eq!(args.policies, Path::new("/etc/portcullis/policies"));
    assert_eq!(args.shutdown_delay, Duration::from_secs(5));
    assert_eq!(args.drain_timeout, Duration::from_secs(20));
    assert!(!args.no_cluster, "namespace labels are read from the cluster");
    assert_eq!(args.kubeconfig, None, "in-cluster configuration");
    let env: Vec<(String, Option<String>)> = container.env.unwrap().into_iter().map(|e| (e.name, e.value)).collect();
    assert_eq!(env, vec![("RUST_LOG".to_owned(), Some("info".to_owned()))]);

    // SIGTERM: unready for the delay, then drain; all within the grace period.
    let grace = pod_spec(&manifests).termination_grace_period_seconds.unwrap();
    assert_eq!(grace, 30);
    assert!(args.shutdown_delay + args.drain_timeout < Duration::from_secs(grace as u64));
}

#[test]
fn certificate_and_policies_are_mounted_where_the_arguments_point() {
    let Some(manifests) = base() else { return };
    let spec = pod_spec(&manifests);
    let container = container(&manifests);
    let args = container_args(&manifests);
    let mounts: BTreeMap<String, (String, Option<bool>, Option<String>)> = container
        .volume_mounts
        .unwrap()
        .into_iter()
        .map(|m| (m.name, (m.mount_path, m.read_only, m.sub_path)))
        .collect();
    let tls_dir = args.tls_cert.parent().unwrap().to_str().unwrap().to_owned();
    assert_eq!(args.tls_key.parent().unwrap(), Path::new(&tls_dir));
    assert_eq!(
        mounts,
        BTreeMap::from([
            ("tls".to_owned(), (tls_dir, Some(true), None)),
            ("policies".to_owned(), (args.policies.to_str().unwrap().to_owned(), Some(true), None)),
        ])
    );
    let volumes: BTreeMap<String, _> = spec.volumes.unwrap().into_iter().map(|v| (v.name.clone(), v)).collect();
    assert_eq!(volumes.len(), 2);
    let secret = volumes["tls"].secret.clone().expect("tls is a Secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("portcullis-tls"));
    assert_eq!(secret.default_mode, Some(0o440));
    let config_map = volumes["policies"].config_map.clone().expect("policies is a ConfigMap volume");
    assert_eq!(config_map.name, "portcullis-policies");
    assert_eq!(config_map.items, None, "every policy file is mounted");
}

#[test]
fn pods_run_restricted_with_resources_set() {
    let Some(manifests) = base() else { return };
    let spec = pod_spec(&manifests);
    assert_eq!(
        spec.security_context,
        Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            fs_group: Some(65532),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..Default::default()
        })
    );
    assert_eq!(spec.service_account_name.as_deref(), Some("portcullis"));
    assert_eq!(spec.host_network, None);
    assert_eq!(spec.priority_class_name, None);
    let container = container(&manifests);
    assert_eq!(
        container.security_context,
        Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: strings(&["ALL"]), add: None }),
            ..Default::default()
        })
    );
    let quantities = |pairs: &[(&str, &str)]| {
        Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned()))).collect::<BTreeMap<_, _>>())
    };
    assert_eq!(
        container.resources,
        Some(ResourceRequirements {
            requests: quantities(&[("cpu", "50m"), ("memory", "32Mi")]),
            // No CPU limit: throttling would add latency to every review.
            limits: quantities(&[("memory", "128Mi")]),
            claims: None,
        })
    );
}

#[test]
fn deployment_survives_a_node_loss() {
    let Some(manifests) = base() else { return };
    let deployment: Deployment = manifests.get("Deployment", "portcullis");
    let spec = deployment.spec;
    assert_eq!(spec.replicas, Some(2));
    let labels = pod_labels(&manifests);
    assert_eq!(labels, BTreeMap::from([("app.kubernetes.io/name".to_owned(), "portcullis".to_owned())]));
    assert!(selects(&spec.selector, &labels));
    // A rollout never takes a pod away before its replacement is ready.
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));

    let pdb: PodDisruptionBudget = manifests.get("PodDisruptionBudget", "portcullis");
    assert_eq!(pdb.metadata.namespace.as_deref(), Some(NAMESPACE));
    let pdb = pdb.spec.unwrap();
    assert_eq!(pdb.min_available, Some(IntOrString::Int(1)));
    assert_eq!(pdb.max_unavailable, None);
    assert_eq!(pdb.selector.as_ref(), Some(&spec.selector));
    assert!(selects(pdb.selector.as_ref().unwrap(), &labels));

    let pod = spec.template.spec.unwrap();
    let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
    assert_eq!(anti.required_during_scheduling_ignored_during_execution, None);
    let preferred = anti.preferred_during_scheduling_ignored_during_execution.unwrap();
    assert_eq!(preferred.len(), 1);
    assert_eq!(preferred[0].weight, 100);
    let term = &preferred[0].pod_affinity_term;
    assert_eq!(term.topology_key, "kubernetes.io/hostname");
    assert!(selects(term.label_selector.as_ref().unwrap(), &labels));

    let spread = pod.topology_spread_constraints.unwrap();
    assert_eq!(spread.len(), 1);
    assert_eq!(spread[0].topology_key, "topology.kubernetes.io/zone");
    assert_eq!(spread[0].max_skew, 1);
    assert_eq!(spread[0].when_unsatisfiable, "ScheduleAnyway");
    assert!(selects(spread[0].label_selector.as_ref().unwrap(), &labels));
}

// ---------------------------------------------------------------------------
// RBAC

#[test]
fn rbac_only_reads_namespaces() {
    let Some(manifests) = base() else { return };
    let role: ClusterRole = manifests.get("ClusterRole", "portcullis");
    assert_eq!(role.aggregation_rule, None);
    assert_eq!(
        role.rules,
        Some(vec![PolicyRule {
            api_groups: strings(&[""]),
            resources: strings(&["namespaces"]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..Default::default()
        }])
    );
    let binding: ClusterRoleBinding = manifests.get("ClusterRoleBinding", "portcullis");
    assert_eq!(
        binding.role_ref,
        RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "portcullis".into(),
        }
    );
    assert_eq!(
        binding.subjects,
        Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "portcullis".into(),
            namespace: Some(NAMESPACE.into()),
            api_group: None,
        }])
    );
    let account: ServiceAccount = manifests.get("ServiceAccount", "portcullis");
    assert_eq!(account.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(pod_spec(&manifests).service_account_name.as_deref(), Some("portcullis"));
}

// ---------------------------------------------------------------------------
// Policies

/// The `*.yaml` / `*.yml` files of `policies/` other than the kustomization.
fn policy_file_names() -> BTreeSet<String> {
    std::fs::read_dir(repo("policies"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.starts_with("kustomization."))
        .collect()
}

#[test]
fn policies_kustomization_lists_every_policy_file() {
    let text = std::fs::read_to_string(repo("policies/kustomization.yaml")).unwrap();
    let kustomization: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(kustomization["apiVersion"], "kustomize.config.k8s.io/v1beta1");
    assert_eq!(kustomization["kind"], "Kustomization");
    assert_eq!(kustomization["namespace"], NAMESPACE);
    let generators = kustomization["configMapGenerator"].as_array().unwrap();
    assert_eq!(generators.len(), 1);
    let generator = &generators[0];
    assert_eq!(generator["name"], "portcullis-policies");
    // A stable name: the kubelet updates the mounted files in place and
    // portcullis reloads them; a hashed name would need a new rollout instead.
    assert_eq!(generator["options"]["disableNameSuffixHash"], json!(true));
    let listed: Vec<String> =
        generator["files"].as_array().unwrap().iter().map(|file| file.as_str().unwrap().to_owned()).collect();
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), listed_set.len(), "a file listed twice");
    assert_eq!(listed_set, policy_file_names(), "policies/kustomization.yaml must list every policy file");
    // The same files the loader reads (it skips kustomization.yaml).
    let loaded: BTreeSet<String> = portcullis::policy::policy_files(&repo("policies"))
        .unwrap()
        .iter()
        .map(|path| path.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed_set, loaded);
}

#[test]
fn policies_configmap_holds_every_policy_file() {
    let Some(manifests) = base() else { return };
    let config_map: ConfigMap = manifests.get("ConfigMap", "portcullis-policies");
    assert_eq!(config_map.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(config_map.binary_data, None);
    let data = config_map.data.unwrap();
    assert_eq!(data.keys().cloned().collect::<BTreeSet<_>>(), policy_file_names());
    let mut sources = Vec::new();
    for (name, text) in &data {
        let file = std::fs::read_to_string(repo("policies").join(name)).unwrap();
        assert_eq!(text, &file, "ConfigMap key {name} differs from policies/{name}");
        sources.push((PathBuf::from("/etc/portcullis/policies").join(name), text.clone()));
    }
    let from_config_map = portcullis::policy::load_sources(&sources).expect("the ConfigMap's policies load");
    let from_dir = portcullis::policy::load_dir(&repo("policies")).unwrap();
    assert_eq!(from_config_map.len(), from_dir.len());
    assert_eq!(portcullis::policy::describe(&from_config_map), portcullis::policy::describe(&from_dir));
}

// ---------------------------------------------------------------------------
// Certificates

#[test]
fn cert_manager_issues_the_serving_certificate() {
    let Some(manifests) = base() else { return };
    let issuer_ref = |name: &str| json!({"group": "cert-manager.io", "kind": "Issuer", "name": name});
    assert_eq!(manifests.value("Issuer", "portcullis-selfsigned")["spec"], json!({"selfSigned": {}}));
    let ca = &manifests.value("Certificate", "portcullis-ca")["spec"];
    assert_eq!(ca["isCA"], json!(true));
    assert_eq!(ca["secretName"], "portcullis-ca");
    assert_eq!(ca["issuerRef"], issuer_ref("portcullis-selfsigned"));
    assert_eq!(manifests.value("Issuer", "portcullis-ca")["spec"], json!({"ca": {"secretName": "portcullis-ca"}}));
    assert_eq!(
        manifests.value("Certificate", "portcullis")["spec"],
        json!({
            "secretName": "portcullis-tls",
            "dnsNames": ["portcullis.portcullis-system.svc", "portcullis.portcullis-system.svc.cluster.local"],
            "duration": "2160h",
            "renewBefore": "360h",
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["server auth", "digital signature"],
            "issuerRef": issuer_ref("portcullis-ca"),
        })
    );
    for kind in ["Issuer", "Certificate"] {
        for doc in manifests.0.iter().filter(|doc| doc["kind"] == kind) {
            assert_eq!(doc["apiVersion"], "cert-manager.io/v1");
            assert_eq!(doc["metadata"]["namespace"], NAMESPACE);
        }
    }

    // The API server calls <service>.<namespace>.svc; the certificate names it,
    // lands in the Secret the pods mount, and its CA is injected into both webhooks.
    let service = validating(&manifests).client_config.service.unwrap();
    let host = format!("{}.{}.svc", service.name, service.namespace);
    assert!(
        manifests.value("Certificate", "portcullis")["spec"]["dnsNames"].as_array().unwrap().contains(&json!(host))
    );
    let volumes = pod_spec(&manifests).volumes.unwrap();
    let secret = volumes.iter().find_map(|v| v.secret.clone()).unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("portcullis-tls"));
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"] {
        let annotations = manifests.value(kind, "portcullis")["metadata"]["annotations"].clone();
        assert_eq!(annotations, json!({INJECT_CA_FROM: "portcullis-system/portcullis"}), "{kind}");
    }
}

#[test]
fn without_cert_manager_leaves_no_cert_manager_behind() {
    let (Some(text), Some(base)) = (render_text("manifests/without-cert-manager"), base()) else { return };
    let overlay = Manifests::parse(&text);
    let is_cert_manager = |doc: &Value| doc["apiVersion"].as_str().unwrap().starts_with("cert-manager.io/");
    assert!(overlay.0.iter().all(|doc| !is_cert_manager(doc)));
    assert!(!text.contains("cert-manager.io"), "no cert-manager objects or annotations remain");

    // Everything else is the base, except the webhooks' annotation and caBundle.
    let webhook_kinds = ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"];
    let others = |manifests: &Manifests| -> Vec<Value> {
        manifests
            .0
            .iter()
            .filter(|doc| !is_cert_manager(doc) && !webhook_kinds.contains(&doc["kind"].as_str().unwrap()))
            .cloned()
            .collect()
    };
    assert_eq!(others(&overlay), others(&base));

    for kind in webhook_kinds {
        let doc = overlay.value(kind, "portcullis");
        assert_eq!(doc["metadata"].get("annotations"), None, "{kind}");
        assert_eq!(doc["webhooks"][0]["clientConfig"]["caBundle"], PLACEHOLDER, "{kind}");
        // Unreplaced, the placeholder is no base64: the API server refuses the
        // configuration instead of registering a webhook nobody can reach.
        assert!(serde_json::from_value::<ValidatingWebhookConfiguration>(doc.clone()).is_err());
    }

    // What the documented sed does: the CA `portcullis certs` wrote goes in.
    let bundle =
        portcullis::webhook::certs::generate(&["portcullis.portcullis-system.svc".to_owned()], &[], 365).unwrap();
    let ca_bundle_file = std::fs::read_to_string(repo("manifests/without-cert-manager/ca-bundle.yaml")).unwrap();
    assert_eq!(ca_bundle_file.lines().filter(|l| l.contains(&format!("caBundle: {PLACEHOLDER}"))).count(), 2);
    let filled = Manifests::parse(&text.replace(PLACEHOLDER, &bundle.ca_bundle()));
    assert_schemas(&filled);
    let v = validating(&filled);
    let m = mutating(&filled);
    assert_eq!(v.client_config.ca_bundle.as_ref().unwrap().0, bundle.ca_pem.as_bytes());
    assert_eq!(m.client_config.ca_bundle.as_ref().unwrap().0, bundle.ca_pem.as_bytes());
    // Apart from the caBundle, the webhooks are the base's.
    let without_ca = |mut webhook: ValidatingWebhook| {
        webhook.client_config.ca_bundle = None;
        webhook
    };
    assert_eq!(without_ca(v), validating(&base));
    let mut m = m;
    m.client_config.ca_bundle = None;
    assert_eq!(m, mutating(&base));
}

// ---------------------------------------------------------------------------
// Monitoring

fn alert_rules() -> Value {
    let text = std::fs::read_to_string(repo("manifests/monitoring/rules.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn monitoring_is_optional_and_scrapes_the_admin_port() {
    let (Some(monitoring), Some(base)) = (Manifests::render("manifests/monitoring"), base()) else { return };
    assert_eq!(
        monitoring.identities(),
        vec![
            id("monitoring.coreos.com/v1", "PrometheusRule", NAMESPACE, "portcullis"),
            id("monitoring.coreos.com/v1", "ServiceMonitor", NAMESPACE, "portcullis"),
        ]
    );
    assert!(base.0.iter().all(|doc| doc["apiVersion"] != "monitoring.coreos.com/v1"));

    let monitor = &monitoring.value("ServiceMonitor", "portcullis")["spec"];
    assert_eq!(monitor["namespaceSelector"], json!({"matchNames": [NAMESPACE]}));
    let endpoints = monitor["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["port"], "admin");
    assert_eq!(endpoints[0]["path"], "/metrics");
    assert_eq!(endpoints[0]["scheme"], "http");

    let service: Service = base.get("Service", "portcullis");
    let selector: LabelSelector = serde_json::from_value(monitor["selector"].clone()).unwrap();
    assert!(selects(&selector, service.metadata.labels.as_ref().unwrap()));
    let admin = service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .find(|port| port.name.as_deref() == Some("admin"))
        .expect("a Service port named admin");
    assert_eq!(admin.target_port, Some(IntOrString::String("admin".into())));
    assert_eq!(admin.port, container_port(&container(&base), "admin"));
}

#[test]
fn prometheus_rule_carries_the_plain_rules_file() {
    let Some(monitoring) = Manifests::render("manifests/monitoring") else { return };
    let rule = monitoring.value("PrometheusRule", "portcullis");
    assert_eq!(rule["spec"], alert_rules(), "prometheusrule.yaml and rules.yaml differ");
}

#[test]
fn alerts_are_the_documented_ones() {
    let rules = alert_rules();
    let groups = rules["groups"].as_array().unwrap();
    let alerts: Vec<(&str, &str)> = groups
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap())
        .map(|rule| (rule["alert"].as_str().unwrap(), rule["labels"]["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(
        alerts,
        vec![
            ("PortcullisRejectionSpike", "warning"),
            ("PortcullisErrors", "warning"),
            ("PortcullisHighLatency", "warning"),
            ("PortcullisCertificateExpiringSoon", "warning"),
            ("PortcullisDown", "critical"),
            ("PortcullisPolicyReloadFailing", "warning"),
        ]
    );
}

#[tokio::test]
async fn alerts_query_metrics_portcullis_exports() {
    let state = bundled_state();
    let webhook = webhook_router(state.clone());
    // A denial (a rejection), a request without a JSON content type (an error)
    // and a failed policy reload: the label values the alerts select on.
    let nodeport = common::in_namespace(fixture("v1.32/service-create-nodeport.json"), "production");
    let request = Request::post("/validate")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&nodeport).unwrap()))
        .unwrap();
    let (status, body) = call(webhook.clone(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["response"]["allowed"], json!(false));
    let request = Request::post("/validate").header(header::CONTENT_TYPE, "text/plain").body(Body::from("{}")).unwrap();
    assert_eq!(call(webhook, request).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    state.metrics().policy_reload(false);

    let rules = serde_json::to_string(&alert_rules()).unwrap();
    let queried: BTreeSet<String> = rules
        .match_indices("portcullis_")
        .map(|(at, _)| rules[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect();
    assert_eq!(
        queried,
        BTreeSet::from(
            [
                "portcullis_admission_duration_seconds_bucket",
                "portcullis_admission_rejections_total",
                "portcullis_admission_requests_total",
                "portcullis_policy_reloads_total",
                "portcullis_tls_certificate_expiry_timestamp_seconds",
            ]
            .map(String::from)
        )
    );

    // Prometheus asks for OpenMetrics; other scrapers get the Prometheus text format.
    for accept in [Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"), None] {
        let mut request = Request::get("/metrics");
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        let (status, body) = call(admin_router(state.clone()), request.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        let exposition = String::from_utf8(body).unwrap();
        let samples: Vec<&str> = exposition.lines().filter(|line| !line.starts_with('#')).collect();
        let names: BTreeSet<&str> = samples.iter().map(|line| line.split(['{', ' ']).next().unwrap()).collect();
        for name in &queried {
            assert!(names.contains(name.as_str()), "{name} is not exported ({accept:?}):\n{exposition}");
        }
        let sample = |name: &str, labels: &[&str]| {
            samples
                .iter()
                .any(|line| line.starts_with(&format!("{name}{{")) && labels.iter().all(|label| line.contains(label)))
        };
        assert!(
            sample(
                "portcullis_admission_rejections_total",
                &["policy=\"no-nodeport-in-production\"", "namespace=\"production\"", "dry_run=\"false\""]
            ),
            "{exposition}"
        );
        assert!(sample("portcullis_admission_requests_total", &["decision=\"error\""]), "{exposition}");
        assert!(sample("portcullis_policy_reloads_total", &["result=\"failure\""]), "{exposition}");
        assert!(sample("portcullis_admission_duration_seconds_bucket", &["le=\"+Inf\""]), "{exposition}");
    }
}

// ---------------------------------------------------------------------------
// The image

#[test]
fn dockerfile_defaults_match_the_deployment() {
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let instructions: Vec<&str> =
        dockerfile.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).collect();
    let with = |keyword: &str| -> Vec<&str> {
        instructions.iter().filter_map(|line| line.strip_prefix(keyword)?.strip_prefix(' ')).collect()
    };
    assert_eq!(with("FROM"), vec!["rust:1.95-bookworm AS builder", "gcr.io/distroless/cc-debian12:nonroot"]);
    assert!(with("RUN").iter().any(|run| run.starts_with("cargo build --release --locked")));
    assert_eq!(with("USER"), vec!["65532:65532"]);
    assert_eq!(with("EXPOSE"), vec!["8443 9090"]);
    assert_eq!(
        with("COPY")[with("COPY").len() - 2..],
        [
            "--from=builder /src/target/release/portcullis /usr/local/bin/portcullis",
            "policies/ /etc/portcullis/policies/"
        ]
    );
    let entrypoint: Vec<String> = serde_json::from_str(with("ENTRYPOINT")[0]).unwrap();
    assert_eq!(entrypoint, vec!["/usr/local/bin/portcullis"]);
    let cmd: Vec<String> = serde_json::from_str(with("CMD")[0]).unwrap();
    let defaults = serve_args(&cmd);
    assert_eq!(defaults.tls_cert, Path::new("/etc/portcullis/tls/tls.crt"));
    assert_eq!(defaults.tls_key, Path::new("/etc/portcullis/tls/tls.key"));
    assert_eq!(defaults.policies, Path::new("/etc/portcullis/policies"));

    let dockerignore = std::fs::read_to_string(repo(".dockerignore")).unwrap();
    let ignored: BTreeSet<&str> = dockerignore.lines().collect();
    assert!(["target/", ".dev-certs/", ".git/"].iter().all(|path| ignored.contains(path)));

    // The Deployment runs the same user, ports and paths.
    let Some(manifests) = base() else { return };
    let args = container_args(&manifests);
    assert_eq!(
        (args.listen, args.admin_listen, args.tls_cert, args.tls_key, args.policies),
        (defaults.listen, defaults.admin_listen, defaults.tls_cert, defaults.tls_key, defaults.policies)
    );
    let ports: Vec<String> =
        container(&manifests).ports.unwrap().iter().map(|p| p.container_port.to_string()).collect();
    assert_eq!(ports.join(" "), with("EXPOSE")[0]);
    let user = pod_spec(&manifests).security_context.unwrap();
    assert_eq!(format!("{}:{}", user.run_as_user.unwrap(), user.run_as_group.unwrap()), with("USER")[0]);
}
