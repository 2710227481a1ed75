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
