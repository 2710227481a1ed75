//! `forbiddenAnnotations`: annotation keys (and optionally values) that let a
//! namespace user inject configuration into a shared controller, such as
//! ingress-nginx's `*-snippet` annotations (CVE-2021-25742).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use crate::engine::Finding;
use crate::engine::glob::Globs;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForbiddenAnnotations {
    annotations: Vec<Forbidden>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Forbidden {
    /// Annotation keys (globs).
    key: Globs,
    /// Forbidden values (globs); empty means any value.
    #[serde(default)]
    values: Globs,
    /// Why, shown to the user.
    reason: String,
}

impl ForbiddenAnnotations {
    pub fn check(&self, metadata: &ObjectMeta, findings: &mut Vec<Finding>) {
        let Some(annotations) = &metadata.annotations else {
            return;
        };
        for (key, value) in annotations {
            let forbidden = self
                .annotations
                .iter()
                .find(|f| f.key.matches(key) && (f.values.is_empty() || f.values.matches(value)));
            if let Some(forbidden) = forbidden {
                findings.push(Finding::Violation(if forbidden.values.is_empty() {
                    format!("annotation {key} is not allowed ({}); remove it", forbidden.reason)
                } else {
                    format!("the value of annotation {key} is not allowed ({}); change the value", forbidden.reason)
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::testing::*;
    use serde_json::json;

    fn snippets() -> crate::engine::rules::Rule {
        rule(json!({"forbiddenAnnotations": {"annotations": [
            {"key": ["nginx.ingress.kubernetes.io/*-snippet"], "reason": "snippets inject raw nginx configuration"},
            {"key": ["example.com/mode"], "values": ["debug*"], "reason": "debug mode exposes internals"},
        ]}}))
    }

    fn ing(annotations: serde_json::Value) -> crate::engine::Object {
        ingress(json!({"metadata": {"name": "web", "annotations": annotations}, "spec": {}}))
    }

    #[test]
    fn rejects_snippet_annotations() {
        assert_eq!(
            check(
                &snippets(),
                &ing(json!({
                    "nginx.ingress.kubernetes.io/server-snippet": "location /x {}",
                    "nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers x;",
                    "nginx.ingress.kubernetes.io/rewrite-target": "/",
                }))
            ),
            vec![
                violation(
                    "annotation nginx.ingress.kubernetes.io/configuration-snippet is not allowed (snippets inject raw nginx configuration); remove it"
                ),
                violation(
                    "annotation nginx.ingress.kubernetes.io/server-snippet is not allowed (snippets inject raw nginx configuration); remove it"
                ),
            ]
        );
    }

    #[test]
    fn value_patterns_narrow_the_match() {
        assert_eq!(check(&snippets(), &ing(json!({"example.com/mode": "fast"}))), vec![]);
        assert_eq!(
            check(&snippets(), &ing(json!({"example.com/mode": "debug-full"}))),
            vec![violation(
                "the value of annotation example.com/mode is not allowed (debug mode exposes internals); change the value"
            )]
        );
        assert_eq!(check(&snippets(), &service(json!({"metadata": {"name": "web"}}))), vec![]);
    }
}
