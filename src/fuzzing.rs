//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the regression
//! test that replays their corpus (`tests/fuzz_regressions.rs`). Neither may
//! panic, whatever the input.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::engine::{self, NamespaceLabels, PolicySet, Stage};
use crate::webhook::review::Review;

fn bundled() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    // Built into the binary, so the fuzzers need no files.
    SET.get_or_init(crate::policy::bundled::load)
}

/// Decodes a review body, evaluates it at both stages and encodes the answers.
pub fn review(data: &[u8]) {
    review_with(data, bundled());
}

fn review_with(data: &[u8], set: &PolicySet) {
    let Ok(review) = Review::decode(data) else { return };
    for (stage, labels) in [(Stage::Validate, NamespaceLabels::none()), (Stage::Mutate, NamespaceLabels::Unknown)] {
        let decision = engine::evaluate(&review.input(stage), set, labels);
        let response = review.respond(&decision, set);
        let _: serde_json::Value = serde_json::from_slice(&response).expect("a response is valid JSON");
    }
}

/// Loads a policy file; when it loads, evaluates a few reviews against it.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let environments = crate::policy::bundled::FILES.iter().find(|(name, _)| *name == "environments.yaml");
    let environments = environments.map_or("", |(_, text)| text);
    let sources =
        [(PathBuf::from("environments.yaml"), environments.to_owned()), (PathBuf::from("fuzz.yaml"), text.to_owned())];
    let Ok(set) = crate::policy::load_sources(&sources) else { return };
    for body in SAMPLE_REVIEWS {
        review_with(body.as_bytes(), &set);
    }
}

const SAMPLE_REVIEWS: &[&str] = &[
    include_str!("../tests/fixtures/demo/nodeport-production.json"),
    include_str!("../tests/fixtures/demo/ingress-plain-production.json"),
    include_str!("../tests/fixtures/demo/ingress-tls-dev.json"),
];

/// A CEL expression and an object: the first line of `data` is the
/// expression, the rest the object's JSON (a sample Ingress when it is not
/// a JSON object). The expression is compiled; when it compiles, a `cel`
/// policy reading it as a variable, a validation and a message expression is
/// loaded, and the object is reviewed as a Service and as an Ingress, created
/// and updated.
pub fn cel(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (expression, object) = text.split_once('\n').unwrap_or((text, ""));
    if engine::cel::Expression::compile(expression).is_err() {
        return;
    }
    let quoted = serde_json::to_string(expression).expect("a string serializes");
    let policy = format!(
        "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{name: fuzz}}\nspec:\n  action: Deny\n  \
         match: {{kinds: [Service, Ingress]}}\n  rule:\n    cel:\n      variables:\n        - {{name: v, expression: \
         {quoted}}}\n      validations:\n        - {{expression: {quoted}, message: m, messageExpression: {quoted}}}\n        \
         - {{expression: \"variables.v == variables.v\"}}\n"
    );
    let Ok(set) = crate::policy::load_sources(&[(PathBuf::from("fuzz.yaml"), policy)]) else { return };
    let object = match serde_json::from_str::<serde_json::Value>(object) {
        Ok(object @ serde_json::Value::Object(_)) => object,
        _ => serde_json::json!({"metadata": {"name": "web", "labels": {"team": "shop"}},
            "spec": {"rules": [{"host": "shop.example.com"}], "ports": [{"port": 443}]}}),
    };
    for (group, kind) in [("", "Service"), ("networking.k8s.io", "Ingress")] {
        for (operation, old) in [("CREATE", serde_json::Value::Null), ("UPDATE", object.clone())] {
            let review = serde_json::json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "fuzz",
                    "kind": {"group": group, "version": "v1", "kind": kind},
                    "namespace": "shop",
                    "name": "web",
                    "operation": operation,
                    "userInfo": {"username": "fuzz", "groups": ["system:authenticated"]},
                    "object": object,
                    "oldObject": old,
                },
            });
            review_with(&serde_json::to_vec(&review).expect("a review serializes"), &set);
        }
    }
}
