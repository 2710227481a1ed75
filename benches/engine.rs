//! Engine and wire-format benchmarks (`make bench` / `cargo bench --bench engine`).
//!
//! - `evaluate/*`: `engine::evaluate` alone, objects already decoded, all bundled policies;
//! - `review/*`: decode the AdmissionReview body, evaluate, encode the response: the
//!   whole per-review work of a handler except HTTP, TLS and metrics.
//!
//! The Gateway API cases judge routes with the Gateway of
//! `gateway-api/gateway-create-https.json` known, as the webhook's cache would hold it.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::engine::gateway::GatewayView;
use portcullis::engine::{self, NamespaceLabels, PolicySet, Stage};
use portcullis::webhook::review::Review;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn in_namespace(mut review: Value, namespace: &str) -> Value {
    review["request"]["namespace"] = json!(namespace);
    review["request"]["object"]["metadata"]["namespace"] = json!(namespace);
    review
}

/// A Service with 200 annotations and 50 ports.
fn large_service() -> Value {
    let mut review = in_namespace(fixture("v1.32/service-create-clusterip.json"), "production");
    let object = &mut review["request"]["object"];
    for i in 0..200 {
        object["metadata"]["annotations"][format!("example.com/annotation-{i}")] = json!(format!("value {i}"));
    }
    let ports: Vec<Value> =
        (0..50).map(|i| json!({"name": format!("p{i}"), "port": 8000 + i, "protocol": "TCP"})).collect();
    object["spec"]["ports"] = json!(ports);
    review
}

/// An Ingress with 50 hosts, all covered by TLS, with auth and an allow-list.
fn large_ingress() -> Value {
    let mut review = in_namespace(fixture("v1.32/ingress-create-tls.json"), "production");
    let object = &mut review["request"]["object"];
    let hosts: Vec<String> = (0..50).map(|i| format!("h{i}.example.com")).collect();
    let rules: Vec<Value> = hosts
        .iter()
        .map(|h| {
            json!({"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}})
        })
        .collect();
    object["spec"]["rules"] = json!(rules);
    object["spec"]["tls"] = json!([{"hosts": hosts, "secretName": "wild"}]);
    object["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"] = json!("https://auth.example.com/check");
    object["metadata"]["annotations"]["nginx.ingress.kubernetes.io/whitelist-source-range"] = json!("10.0.0.0/8");
    review
}

/// A CREATE review of `object`, a `kind` of `group`, in `namespace`.
fn review_of(group: &str, kind: &str, namespace: &str, object: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "00000000-0000-4000-8000-0000000000b1",
        "kind": {"group": group, "version": "v1", "kind": kind},
        "name": object["metadata"]["name"], "namespace": namespace, "operation": "CREATE",
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": object, "oldObject": null, "dryRun": false}})
}

/// A TLSRoute on the HTTPS listener of the known Gateway (`restrict-route-hostnames`, `routeTls`).
fn tls_route() -> Value {
    review_of(
        "gateway.networking.k8s.io",
        "TLSRoute",
        "production",
        json!({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TLSRoute",
               "metadata": {"name": "db", "namespace": "production"},
               "spec": {"parentRefs": [{"name": "public", "sectionName": "https"}], "hostnames": ["db.example.com"],
                        "rules": [{"backendRefs": [{"name": "db", "port": 5432}]}]}}),
    )
}

/// A ListenerSet whose HTTPS listener admits routes from every namespace
/// (`gatewayListeners`, `gatewayAllowedRoutes`: denied in production).
fn listener_set() -> Value {
    review_of(
        "gateway.networking.k8s.io",
        "ListenerSet",
        "production",
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ListenerSet",
               "metadata": {"name": "team-a", "namespace": "production"},
               "spec": {"parentRef": {"name": "public"},
                        "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "a.example.com",
                                       "tls": {"certificateRefs": [{"name": "a-example-com"}]},
                                       "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
    )
}

/// The captured Ingress with one field changed by `edit`, in `namespace`.
fn ingress_with(namespace: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut review = in_namespace(fixture("v1.32/ingress-create-tls.json"), namespace);
    edit(&mut review["request"]["object"]);
    review
}

/// The captured ClusterIP Service with its `spec` replaced, in `namespace`.
fn service_with(namespace: &str, spec: Value) -> Value {
    let mut review = in_namespace(fixture("v1.32/service-create-clusterip.json"), namespace);
    review["request"]["object"]["spec"] = spec;
    review
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let bytes = |v: Value| serde_json::to_vec(&v).unwrap();
    vec![
        ("service-allowed", bytes(fixture("v1.32/service-create-nodeport.json"))),
        ("service-denied", bytes(in_namespace(fixture("v1.32/service-create-nodeport.json"), "production"))),
        ("ingress-tls", bytes(fixture("v1.32/ingress-create-tls.json"))),
        ("service-large", bytes(large_service())),
        ("ingress-large", bytes(large_ingress())),
        ("gateway-https", bytes(fixture("gateway-api/gateway-create-https.json"))),
        ("gateway-denied", bytes(fixture("gateway-api/gateway-create-http-from-all.json"))),
        ("httproute-external-auth", bytes(fixture("gateway-api/httproute-create-external-auth.json"))),
        ("httproute-denied", bytes(fixture("gateway-api/httproute-create-on-http-listener.json"))),
        ("grpcroute-denied", bytes(fixture("gateway-api/grpcroute-create-on-http-listener.json"))),
        ("referencegrant-denied", bytes(fixture("gateway-api/referencegrant-create-secrets-from-any.json"))),
        ("tlsroute", bytes(tls_route())),
        ("listenerset-denied", bytes(listener_set())),
        // sourceRanges: two halves of IPv4 are the whole internet (denied).
        (
            "loadbalancer-split-ranges-denied",
            bytes(service_with(
                "production",
                json!({"type": "LoadBalancer", "ports": [{"port": 443}],
                       "loadBalancerSourceRanges": ["0.0.0.0/1", "128.0.0.0/1"]}),
            )),
        ),
        // externalName: a Service pointing at localhost (denied).
        (
            "externalname-denied",
            bytes(service_with("dev", json!({"type": "ExternalName", "externalName": "localhost"}))),
        ),
        // annotationValues: nginx syntax in auth-url (denied).
        (
            "ingress-annotation-value-denied",
            bytes(ingress_with("dev", |object| {
                object["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"] =
                    json!("http://auth.example.com/;}location /x{");
            })),
        ),
        // ingressPaths: a path into /etc (denied).
        (
            "ingress-path-denied",
            bytes(ingress_with("dev", |object| {
                object["spec"]["rules"][0]["http"]["paths"][0]["path"] = json!("/../etc/passwd");
            })),
        ),
        // wildcardHosts: a wildcard rule host covered by TLS (warned).
        (
            "ingress-wildcard-host",
            bytes(ingress_with("dev", |object| {
                object["spec"]["rules"][0]["host"] = json!("*.example.com");
                object["spec"]["tls"][0]["hosts"] = json!(["*.example.com"]);
            })),
        ),
    ]
}

/// The engine's input for a review, with the Gateways of [`gateways`] known.
fn input<'a>(review: &'a Review, view: &'a GatewayView, stage: Stage) -> engine::Input<'a> {
    engine::Input { gateways: view, ..review.input(stage) }
}

/// The Gateways the routes attach to.
fn gateways() -> GatewayView {
    let mut view = GatewayView::default();
    let review = fixture("gateway-api/gateway-create-https.json");
    assert!(view.insert_manifest(&review["request"]["object"], "production"));
    view
}

fn benches(c: &mut Criterion) {
    let set: PolicySet = portcullis::policy::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap();
    let view = gateways();
    let mut evaluate = c.benchmark_group("evaluate");
    for (name, body) in cases() {
        let review = Review::decode(&body).unwrap();
        // Each case takes the path its name says: denied only when named so.
        let decision = engine::evaluate(&input(&review, &view, Stage::Validate), &set, NamespaceLabels::none());
        assert_eq!(!decision.allowed(), name.ends_with("-denied"), "{name}: {:?}", decision.findings);
        evaluate.bench_function(name, |b| {
            b.iter(|| {
                engine::evaluate(black_box(&input(&review, &view, Stage::Validate)), &set, NamespaceLabels::none())
            })
        });
    }
    evaluate.finish();

    let mut full = c.benchmark_group("review");
    for (name, body) in cases() {
        full.bench_function(format!("{name} ({} bytes)", body.len()), |b| {
            b.iter(|| {
                let review = Review::decode(black_box(&body)).unwrap();
                let decision = engine::evaluate(&input(&review, &view, Stage::Validate), &set, NamespaceLabels::none());
                review.respond(&decision, &set)
            })
        });
    }
    let mutate = serde_json::to_vec(&fixture("v1.32/ingress-create-tls.json")).unwrap();
    full.bench_function("ingress-tls mutate", |b| {
        b.iter(|| {
            let review = Review::decode(black_box(&mutate)).unwrap();
            let decision = engine::evaluate(&review.input(Stage::Mutate), &set, NamespaceLabels::none());
            review.respond(&decision, &set)
        })
    });
    full.finish();
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches, cel_benches, part_benches);

/// The CEL examples of `docs/examples/cel` (the README's "Writing your own
/// rule") on captured reviews: `evaluate` alone and the whole review.
fn cel(c: &mut Criterion) {
    let set: PolicySet =
        portcullis::policy::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/cel")).unwrap();
    let view = GatewayView::default();
    let bytes = |v: Value| serde_json::to_vec(&v).unwrap();
    let hosts = |hosts: &[&str]| {
        ingress_with("shop", |object| {
            object["spec"]["rules"] = hosts.iter().map(|host| json!({"host": host})).collect();
        })
    };
    let fifty: Vec<String> = (0..50).map(|i| format!("shop-{i}.example.com")).collect();
    let fifty: Vec<&str> = fifty.iter().map(String::as_str).collect();
    let cases = [
        ("ingress-hosts-allowed", bytes(hosts(&["shop.example.com", "api.example.com"]))),
        ("ingress-hosts-denied", bytes(hosts(&["shop.example.com", "shop.example.org"]))),
        ("ingress-50-hosts-allowed", bytes(hosts(&fifty))),
        ("loadbalancer-denied", bytes(service_with("shop", json!({"type": "LoadBalancer", "ports": [{"port": 443}]})))),
        ("service-allowed", bytes(service_with("shop", json!({"ports": [{"port": 443}]})))),
    ];
    let mut group = c.benchmark_group("cel");
    for (name, body) in &cases {
        let review = Review::decode(body).unwrap();
        let decision = engine::evaluate(&input(&review, &view, Stage::Validate), &set, NamespaceLabels::none());
        assert_eq!(!decision.allowed(), name.ends_with("-denied"), "{name}: {:?}", decision.findings);
        group.bench_function(format!("evaluate {name}"), |b| {
            b.iter(|| {
                engine::evaluate(black_box(&input(&review, &view, Stage::Validate)), &set, NamespaceLabels::none())
            })
        });
        group.bench_function(format!("review {name} ({} bytes)", body.len()), |b| {
            b.iter(|| {
                let review = Review::decode(black_box(body)).unwrap();
                let decision = engine::evaluate(&input(&review, &view, Stage::Validate), &set, NamespaceLabels::none());
                review.respond(&decision, &set)
            })
        });
    }
    // A rule cut off at its step budget: 1000 ports, three nested `all`s.
    let budget = "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: costly}\nspec:\n  action: Deny\n  \
                  rule:\n    cel:\n      validations:\n        - expression: \"object.spec.ports.all(a, \
                  object.spec.ports.all(b, object.spec.ports.all(c, a.port + b.port + c.port > 0)))\"\n";
    let costly = portcullis::policy::load_sources(&[("costly.yaml".into(), budget.to_owned())]).unwrap();
    let ports: Vec<Value> = (1..=1000).map(|port| json!({"name": format!("p{port}"), "port": port})).collect();
    let body = bytes(service_with("shop", json!({"ports": ports})));
    let review = Review::decode(&body).unwrap();
    let decision = engine::evaluate(&input(&review, &view, Stage::Validate), &costly, NamespaceLabels::none());
    assert_eq!(decision.cost_exceeded, [0], "cut off");
    group.sample_size(10);
    group.bench_function("evaluate cut-off-at-budget", |b| {
        b.iter(|| {
            engine::evaluate(black_box(&input(&review, &view, Stage::Validate)), &costly, NamespaceLabels::none())
        })
    });
    group.finish();
}
criterion_group!(cel_benches, cel);

fn parts(c: &mut Criterion) {
    let body = serde_json::to_vec(&fixture("v1.32/service-create-nodeport.json")).unwrap();
    let mut g = c.benchmark_group("parts");
    g.bench_function("value", |b| b.iter(|| serde_json::from_slice::<Value>(black_box(&body)).unwrap()));
    g.bench_function("decode", |b| b.iter(|| Review::decode(black_box(&body)).unwrap()));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let obj = serde_json::to_string(&v["request"]["object"]).unwrap();
    g.bench_function("service-typed", |b| {
        b.iter(|| serde_json::from_str::<k8s_openapi::api::core::v1::Service>(black_box(&obj)).unwrap())
    });
    let mut stripped: Value = serde_json::from_str(&obj).unwrap();
    stripped["metadata"].as_object_mut().unwrap().remove("managedFields");
    let stripped = serde_json::to_string(&stripped).unwrap();
    g.bench_function("service-lean", |b| {
        b.iter(|| portcullis::engine::Object::from_json(portcullis::engine::Kind::Service, black_box(&obj)))
    });
    g.bench_function("service-typed-no-managed", |b| {
        b.iter(|| serde_json::from_str::<k8s_openapi::api::core::v1::Service>(black_box(&stripped)).unwrap())
    });
    g.finish();
}
criterion_group!(part_benches, parts);
