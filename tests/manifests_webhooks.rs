//! The webhook configurations (`manifests/webhooks`, the install's second step,
//! and its without-cert-manager twin): which namespaces and objects they see,
//! that they register exactly what the bundled policies act on, fail closed, and
//! call the Service port (of the first step) and the paths the real router serves.

use crate::common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::http::call;
use common::manifests::{
    Manifests, NAMESPACE, base, container, container_args, container_port, mutating, namespace_labels, pod_labels,
    selects, strings, validating, webhooks, without_cert_manager_webhooks,
};
use common::{bundled, fixture, repo};
use k8s_openapi::api::admissionregistration::v1::{RuleWithOperations, ServiceReference};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use portcullis::engine::{Kind, PolicySet, Stage};
use portcullis::webhook::{AppState, webhook_router};
use serde_json::{Value, json};

#[test]
fn webhooks_exclude_kube_system_and_our_namespace() {
    let manifests = webhooks();
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

fn gateway_api_rule() -> RuleWithOperations {
    RuleWithOperations {
        api_groups: strings(&["gateway.networking.k8s.io"]),
        api_versions: strings(&["v1", "v1beta1", "v1alpha2"]),
        resources: strings(&["gateways", "listenersets", "httproutes", "grpcroutes", "tlsroutes", "referencegrants"]),
        operations: strings(&["CREATE", "UPDATE"]),
        scope: Some("Namespaced".into()),
    }
}

#[test]
fn validating_sees_services_ingresses_and_gateway_api_mutating_only_ingresses() {
    let manifests = webhooks();
    assert_eq!(validating(&manifests).rules.unwrap(), vec![services_rule(), ingresses_rule(), gateway_api_rule()]);
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
            assert_ne!(*kind, Kind::Other, "policy {} matches a kind portcullis has no rules for", policy.name());
            for operation in &matches.operations {
                acted_on.insert((kind.group().to_owned(), kind.resource().to_owned(), operation.as_str().to_owned()));
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

/// The rules of the one webhook in the rendered configuration `kind`, read from
/// the document itself.
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
    let bundle =
        portcullis::webhook::certs::generate(&["portcullis.portcullis-system.svc".to_owned()], &[], 365).unwrap();
    let rendered = [
        ("manifests/webhooks", webhooks()),
        ("manifests/without-cert-manager/webhooks", without_cert_manager_webhooks("webhook-rules", &bundle.ca_pem)),
    ];
    for (dir, manifests) in &rendered {
        for (kind, acted_on) in &stages {
            let registered = registrations(&webhook_rules(manifests, kind));
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
    let validating = registrations(&[services_rule(), ingresses_rule(), gateway_api_rule()]);
    assert_eq!(compare_registrations(&validating, &acted_on(&policies, Stage::Validate)), Ok(()));
    // A wildcard is not what the policies act on either.
    let mut wildcard = ingresses_rule();
    wildcard.operations = strings(&["*"]);
    let error = compare_registrations(&registrations(&[wildcard]), &acted_on(&policies, Stage::Mutate)).unwrap_err();
    assert!(error.contains(r#""networking.k8s.io", "ingresses", "*")"#), "{error}");
}

#[test]
fn webhooks_fail_closed_within_five_seconds_on_v1_reviews() {
    let manifests = webhooks();
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
    let hooks = webhooks();
    let manifests = base();
    let expected = |path: &str| ServiceReference {
        namespace: NAMESPACE.into(),
        name: "portcullis".into(),
        path: Some(path.into()),
        port: Some(443),
    };
    let v = validating(&hooks).client_config;
    let m = mutating(&hooks).client_config;
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
    let manifests = webhooks();
    let paths = [
        (validating(&manifests).client_config.service.unwrap().path.unwrap(), "v1.32/service-create-clusterip.json"),
        (mutating(&manifests).client_config.service.unwrap().path.unwrap(), "v1.32/ingress-create-tls.json"),
    ];
    let router = webhook_router(AppState::new(bundled()));
    for (path, fixture_name) in paths {
        let review = fixture(fixture_name);
        let request = Request::post(&path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&review).unwrap()))
            .unwrap();
        let reply = call(&router, request).await;
        let (status, body) = (reply.status, reply.body);
        assert_eq!(status, StatusCode::OK, "POST {path}: {}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["response"]["uid"], review["request"]["uid"], "POST {path}");
        assert_eq!(answer["response"]["allowed"], json!(true), "POST {path}");
    }
    // The router does not answer just any path.
    let request =
        Request::post("/admit").header(header::CONTENT_TYPE, "application/json").body(Body::from("{}")).unwrap();
    assert_eq!(call(&router, request).await.status, StatusCode::NOT_FOUND);
}
