//! Certificates: cert-manager issues the serving certificate the pods mount and
//! injects its CA into both webhooks; `manifests/without-cert-manager` leaves no
//! cert-manager behind and takes the CA `portcullis certs` wrote.

mod common;

use common::manifests::{
    INJECT_CA_FROM, Manifests, NAMESPACE, PLACEHOLDER, assert_schemas, base, mutating, pod_spec, render_text,
    validating,
};
use common::repo;
use k8s_openapi::api::admissionregistration::v1::{ValidatingWebhook, ValidatingWebhookConfiguration};
use serde_json::{Value, json};

#[test]
fn cert_manager_issues_the_serving_certificate() {
    let manifests = base();
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
    let text = render_text("manifests/without-cert-manager");
    let base = base();
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
