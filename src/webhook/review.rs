//! The wire format: decoding an `AdmissionReview` request (v1 or v1beta1) into
//! the request model ([`Review`]) and encoding the response.
//!
//! The request is decoded in one pass with the objects kept as raw JSON, then
//! each object is parsed once, straight into its typed k8s-openapi struct
//! (`Object::from_json`, by [`crate::admission`]). The response is written with our own types because
//! kube-core's `AdmissionResponse` serializes `patch` as an array of numbers
//! (kube-rs#1781) where the API server expects a base64 string.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::admission::{Parts, Requester};
pub use crate::admission::{Review, V1, V1BETA1};
use crate::engine::{Decision, Operation, PORTCULLIS, PolicySet, Severity};

/// Why a request body is not a usable AdmissionReview (answered 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("body is not a valid AdmissionReview: {0}")]
    Json(String),
    #[error("kind must be AdmissionReview, not {0:?}")]
    Kind(String),
    #[error("apiVersion must be {V1} or {V1BETA1}, not {0:?}")]
    ApiVersion(String),
    #[error("AdmissionReview has no request")]
    NoRequest,
    #[error("AdmissionReview request has no uid")]
    NoUid,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireReview<'a> {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(borrow)]
    request: Option<WireRequest<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    #[serde(default)]
    uid: String,
    kind: WireKind,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    operation: Operation,
    #[serde(default)]
    user_info: WireUser,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    old_object: Option<&'a RawValue>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
struct WireKind {
    #[serde(default)]
    group: String,
    kind: String,
}

#[derive(Default, Deserialize)]
struct WireUser {
    #[serde(default)]
    username: String,
    #[serde(default)]
    groups: Vec<String>,
}

impl Review {
    /// Decodes a request body into the request model, objects parsed.
    pub fn decode(body: &[u8]) -> Result<Review, DecodeError> {
        let wire: WireReview<'_> = serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
        if wire.kind != "AdmissionReview" {
            return Err(DecodeError::Kind(wire.kind));
        }
        let api_version = match wire.api_version.as_str() {
            V1 => V1,
            V1BETA1 => V1BETA1,
            _ => return Err(DecodeError::ApiVersion(wire.api_version)),
        };
        let request = wire.request.ok_or(DecodeError::NoRequest)?;
        if request.uid.is_empty() {
            return Err(DecodeError::NoUid);
        }
        Ok(Review::assemble(Parts {
            api_version,
            uid: request.uid,
            group: &request.kind.group,
            kind: &request.kind.kind,
            name: request.name,
            namespace: request.namespace,
            operation: request.operation,
            requester: Requester { username: request.user_info.username, groups: request.user_info.groups },
            object: request.object.map(RawValue::get),
            old_object: request.old_object.map(RawValue::get),
            dry_run: request.dry_run,
        }))
    }

    /// Encodes the response to this review for the engine's decision, made
    /// with `policies`.
    pub fn respond(&self, decision: &Decision, policies: &PolicySet) -> Vec<u8> {
        let about = self.about();
        let status = (!decision.allowed()).then(|| WireStatus {
            status: "Failure",
            code: 403,
            reason: "Forbidden",
            message: decision.message(about, policies),
        });
        let patch = (!decision.patch.0.is_empty()).then(|| {
            let json = serde_json::to_vec(&decision.patch).expect("a JSON patch always serializes");
            base64::engine::general_purpose::STANDARD.encode(json)
        });
        let mut audit_annotations: BTreeMap<&str, String> = BTreeMap::new();
        for audit in decision.of(Severity::Audit) {
            let name = audit.policy.map_or(PORTCULLIS, |index| policies.policies()[index].name());
            let entry = audit_annotations.entry(name).or_default();
            if !entry.is_empty() {
                entry.push_str("; ");
            }
            entry.push_str(&decision.line(audit, about, policies));
        }
        let review = WireResponseReview {
            api_version: self.api_version,
            kind: "AdmissionReview",
            response: WireResponse {
                uid: &self.uid,
                allowed: decision.allowed(),
                status,
                warnings: decision.client_warnings(about, policies),
                patch_type: patch.as_ref().map(|_| "JSONPatch"),
                patch,
                audit_annotations,
            },
        };
        serde_json::to_vec(&review).expect("a response always serializes")
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponseReview<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: WireResponse<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<WireStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: BTreeMap<&'a str, String>,
}

#[derive(Serialize)]
struct WireStatus {
    status: &'static str,
    code: u16,
    reason: &'static str,
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Kind, Object, PolicyFinding};
    use serde_json::{Value, json};

    fn body(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": V1, "kind": "AdmissionReview", "request": request})).unwrap()
    }

    fn request() -> Value {
        json!({"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "service"},
               "namespace": "prod", "operation": "CREATE",
               "userInfo": {"username": "alice", "groups": ["devs"]},
               "object": {"metadata": {"generateName": "web-"}, "spec": {"type": "NodePort"}}})
    }

    #[test]
    fn decodes_kind_case_insensitively_and_names_generated_objects() {
        let review = Review::decode(&body(request())).unwrap();
        assert_eq!(review.kind, Kind::Service);
        assert_eq!(review.name, "web-");
        assert_eq!(review.username, "alice");
        assert!(matches!(review.object, Some(Object::Service(_))));
        assert!(review.old_object.is_none());
    }

    #[test]
    fn rejects_reviews_without_request_or_uid() {
        let no_request = serde_json::to_vec(&json!({"apiVersion": V1, "kind": "AdmissionReview"})).unwrap();
        assert_eq!(Review::decode(&no_request).unwrap_err(), DecodeError::NoRequest);
        let mut no_uid = request();
        no_uid.as_object_mut().unwrap().remove("uid");
        assert_eq!(Review::decode(&body(no_uid)).unwrap_err(), DecodeError::NoUid);
        assert_eq!(
            Review::decode(br#"{"apiVersion":"v1","kind":"AdmissionReview"}"#).unwrap_err().to_string(),
            "apiVersion must be admission.k8s.io/v1 or admission.k8s.io/v1beta1, not \"v1\""
        );
        assert!(matches!(Review::decode(b"{\"kind\":"), Err(DecodeError::Json(_))));
    }

    /// Three Audit policies named `a`, `b` and `c`.
    fn abc() -> PolicySet {
        let policy = |name: &str| {
            format!(
                "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{name: {name}}}\n\
                 spec: {{action: Audit, rule: {{externalIPs: {{}}}}}}\n---\n"
            )
        };
        let text: String = ["a", "b", "c"].into_iter().map(policy).collect();
        crate::policy::load_sources(&[(std::path::PathBuf::from("p.yaml"), text)]).unwrap()
    }

    #[test]
    fn encodes_denials_with_403_forbidden_and_a_base64_patch() {
        let review = Review::decode(&body(request())).unwrap();
        let finding =
            |policy, severity, text: &str| PolicyFinding { policy, severity, text: text.into(), pre_existing: false };
        let decision = Decision {
            findings: vec![
                finding(Some(0), Severity::Deny, "one"),
                finding(Some(1), Severity::Deny, "two"),
                finding(Some(1), Severity::Warn, "careful"),
                finding(Some(2), Severity::Audit, "noted"),
                finding(Some(2), Severity::Audit, "again"),
                finding(None, Severity::Notice, "labels unknown"),
            ],
            patch: serde_json::from_value(json!([{"op": "add", "path": "/metadata/annotations", "value": {}}]))
                .unwrap(),
            ..Default::default()
        };
        let out: Value = serde_json::from_slice(&review.respond(&decision, &abc())).unwrap();
        assert_eq!(
            out,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
                "uid": "u-1", "allowed": false,
                "status": {"status": "Failure", "code": 403, "reason": "Forbidden",
                           "message": "[a] Service prod/web-: one\n[b] Service prod/web-: two"},
                "warnings": ["[portcullis] Service prod/web-: labels unknown"],
                "patchType": "JSONPatch",
                "patch": "W3sib3AiOiJhZGQiLCJwYXRoIjoiL21ldGFkYXRhL2Fubm90YXRpb25zIiwidmFsdWUiOnt9fV0=",
                "auditAnnotations": {"c": "[c] Service prod/web-: noted; [c] Service prod/web-: again"},
            }})
        );
    }

    #[test]
    fn an_allowed_response_is_minimal() {
        let review = Review::decode(&body(request())).unwrap();
        let out: Value = serde_json::from_slice(&review.respond(&Decision::default(), &PolicySet::default())).unwrap();
        assert_eq!(
            out,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "u-1", "allowed": true}})
        );
    }
}
