//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the regression
//! test that replays their corpus (`tests/fuzz_regressions.rs`). Neither may
//! panic, whatever the input.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::engine::{self, NamespaceLabels, PolicySet, Stage};
use crate::webhook::review::Review;

/// The bundled policies, embedded so the fuzzers need no files.
const BUNDLED: &[(&str, &str)] = &[
    ("environments.yaml", include_str!("../policies/environments.yaml")),
    ("ingress-controllers.yaml", include_str!("../policies/ingress-controllers.yaml")),
    ("grpc-backend-protocol.yaml", include_str!("../policies/grpc-backend-protocol.yaml")),
    ("https-redirect.yaml", include_str!("../policies/https-redirect.yaml")),
    ("ingress-source-allow-list.yaml", include_str!("../policies/ingress-source-allow-list.yaml")),
    ("no-configuration-snippets.yaml", include_str!("../policies/no-configuration-snippets.yaml")),
    ("no-external-ips.yaml", include_str!("../policies/no-external-ips.yaml")),
    ("no-nodeport-in-production.yaml", include_str!("../policies/no-nodeport-in-production.yaml")),
    ("prefer-grpc-routes.yaml", include_str!("../policies/prefer-grpc-routes.yaml")),
    ("require-gateway-auth.yaml", include_str!("../policies/require-gateway-auth.yaml")),
    ("require-gateway-tls.yaml", include_str!("../policies/require-gateway-tls.yaml")),
    ("require-ingress-auth.yaml", include_str!("../policies/require-ingress-auth.yaml")),
    ("require-ingress-tls.yaml", include_str!("../policies/require-ingress-tls.yaml")),
    ("require-route-tls.yaml", include_str!("../policies/require-route-tls.yaml")),
    ("restrict-external-names.yaml", include_str!("../policies/restrict-external-names.yaml")),
    ("restrict-gateway-allowed-routes.yaml", include_str!("../policies/restrict-gateway-allowed-routes.yaml")),
    ("restrict-loadbalancer-source-ranges.yaml", include_str!("../policies/restrict-loadbalancer-source-ranges.yaml")),
    ("restrict-reference-grants.yaml", include_str!("../policies/restrict-reference-grants.yaml")),
    ("restrict-route-hostnames.yaml", include_str!("../policies/restrict-route-hostnames.yaml")),
    ("safe-annotation-values.yaml", include_str!("../policies/safe-annotation-values.yaml")),
    ("safe-ingress-paths.yaml", include_str!("../policies/safe-ingress-paths.yaml")),
    ("warn-gateway-allowed-routes.yaml", include_str!("../policies/warn-gateway-allowed-routes.yaml")),
    ("warn-gateway-auth.yaml", include_str!("../policies/warn-gateway-auth.yaml")),
    ("warn-ingress-auth.yaml", include_str!("../policies/warn-ingress-auth.yaml")),
    ("warn-loadbalancer-in-production.yaml", include_str!("../policies/warn-loadbalancer-in-production.yaml")),
    ("warn-wildcard-hosts.yaml", include_str!("../policies/warn-wildcard-hosts.yaml")),
    ("websocket-timeouts.yaml", include_str!("../policies/websocket-timeouts.yaml")),
];

fn bundled() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(|| {
        let sources: Vec<(PathBuf, String)> =
            BUNDLED.iter().map(|(name, text)| (PathBuf::from(name), (*text).to_owned())).collect();
        crate::policy::load_sources(&sources).expect("the bundled policies load")
    })
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
    let sources =
        [(PathBuf::from("environments.yaml"), BUNDLED[0].1.to_owned()), (PathBuf::from("fuzz.yaml"), text.to_owned())];
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzzed_policy_set_is_every_bundled_policy_file() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let mut files: Vec<String> = crate::policy::policy_files(&dir)
            .unwrap()
            .iter()
            .map(|path| path.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        files.sort();
        let mut fuzzed: Vec<String> = BUNDLED.iter().map(|(name, _)| (*name).to_owned()).collect();
        fuzzed.sort();
        assert_eq!(fuzzed, files, "add new policy files to BUNDLED");
    }
}
