//! Certificates: cert-manager issues the serving certificate the pods mount and
//! injects its CA into both webhooks; `manifests/without-cert-manager` leaves no
//! cert-manager behind and takes the CA `portcullis certs` wrote from the
//! untracked `ca.crt` the user copies in.

use crate::common;

use common::manifests::{
    INJECT_CA_FROM, Manifests, NAMESPACE, WEBHOOK_KINDS, assert_schemas, base, mutating, pod_spec, render_text,
    validating, webhooks, without_cert_manager_webhooks,
};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhook;
use serde_json::{Value, json};

#[test]
fn cert_manager_issues_the_serving_certificate() {
    let manifests = base();
    let hooks = webhooks();
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
    let service = validating(&hooks).client_config.service.unwrap();
    let host = format!("{}.{}.svc", service.name, service.namespace);
    assert!(
        manifests.value("Certificate", "portcullis")["spec"]["dnsNames"].as_array().unwrap().contains(&json!(host))
    );
    let volumes = pod_spec(&manifests).volumes.unwrap();
    let secret = volumes.iter().find_map(|v| v.secret.clone()).unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("portcullis-tls"));
    for kind in WEBHOOK_KINDS {
        let annotations = hooks.value(kind, "portcullis")["metadata"]["annotations"].clone();
        assert_eq!(annotations, json!({INJECT_CA_FROM: "portcullis-system/portcullis"}), "{kind}");
    }
}

fn is_cert_manager(doc: &Value) -> bool {
    doc["apiVersion"].as_str().unwrap().starts_with("cert-manager.io/")
}

#[test]
fn without_cert_manager_base_is_the_base_less_cert_manager() {
    let text = render_text("manifests/without-cert-manager/base");
    let overlay = Manifests::parse(&text);
    assert!(!text.contains("cert-manager.io"), "no cert-manager objects or annotations remain");
    let others: Vec<Value> = base().0.into_iter().filter(|doc| !is_cert_manager(doc)).collect();
    assert_eq!(overlay.0, others);
}

#[test]
fn without_cert_manager_webhooks_take_the_ca_portcullis_certs_wrote() {
    let bundle =
        portcullis::webhook::certs::generate(&["portcullis.portcullis-system.svc".to_owned()], &[], 365).unwrap();
    let overlay = without_cert_manager_webhooks("certificates", &bundle.ca_pem);
    assert!(overlay.0.iter().all(|doc| !is_cert_manager(doc)));
    for kind in WEBHOOK_KINDS {
        let doc = overlay.value(kind, "portcullis");
        assert_eq!(doc["metadata"].get("annotations"), None, "{kind}: no cainjector annotation");
        assert_eq!(doc["webhooks"][0]["clientConfig"]["caBundle"], bundle.ca_bundle(), "{kind}");
    }
    assert_schemas(&overlay);
    let v = validating(&overlay);
    let m = mutating(&overlay);
    assert_eq!(v.client_config.ca_bundle.as_ref().unwrap().0, bundle.ca_pem.as_bytes());
    assert_eq!(m.client_config.ca_bundle.as_ref().unwrap().0, bundle.ca_pem.as_bytes());

    // Apart from the caBundle, the webhooks are manifests/webhooks'.
    let hooks = webhooks();
    let without_ca = |mut webhook: ValidatingWebhook| {
        webhook.client_config.ca_bundle = None;
        webhook
    };
    assert_eq!(without_ca(v), validating(&hooks));
    let mut m = m;
    m.client_config.ca_bundle = None;
    assert_eq!(m, mutating(&hooks));

    // A rotation: both CAs in ca.crt, so the API server trusts the old and the
    // new serving certificate while the Secret is replaced.
    let next =
        portcullis::webhook::certs::generate(&["portcullis.portcullis-system.svc".to_owned()], &[], 365).unwrap();
    let both = format!("{}{}", bundle.ca_pem, next.ca_pem);
    let rotating = without_cert_manager_webhooks("certificates-rotation", &both);
    assert_eq!(validating(&rotating).client_config.ca_bundle.unwrap().0, both.as_bytes());
    assert_eq!(mutating(&rotating).client_config.ca_bundle.unwrap().0, both.as_bytes());
}
