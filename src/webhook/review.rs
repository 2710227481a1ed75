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
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::admission::{Parts, Requester, keeps_json};
pub use crate::admission::{Review, V1, V1BETA1};
use crate::engine::object::LeanSeed;
use crate::engine::{Decision, Kind, Object, Operation, PORTCULLIS, PolicySet, Severity};

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

/// The AdmissionReview read in one pass ([`Review::decode`]'s first way).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnePassReview {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    request: Option<OnePassRequest>,
}

/// The request of [`OnePassReview`]: the same fields as [`WireRequest`], with
/// the objects parsed into their types as they are read (`request.kind` and
/// `request.operation` come first in what API servers send). It fails where
/// [`WireRequest`] fails, and also when a field it needs comes after an
/// object or an object does not fit its type: the body is then read again the
/// other way, which gives the error or [`Object::Invalid`].
struct OnePassRequest {
    uid: String,
    kind: WireKind,
    name: String,
    namespace: String,
    operation: Operation,
    user_info: WireUser,
    object: Option<Object>,
    old_object: Option<Object>,
    /// The objects' JSON, kept for the kinds read into lean types
    /// ([`Review::object_json`]).
    object_json: Option<Box<RawValue>>,
    old_object_json: Option<Box<RawValue>>,
    dry_run: bool,
}

/// An object (`None` for `null`) with its JSON.
type WithJson = (Option<Object>, Option<Box<RawValue>>);

/// An object of a kind read into a lean type ([`keeps_json`]), with its JSON;
/// an object that does not fit its type fails the one pass.
fn lean_with_json<'de, A: MapAccess<'de>>(map: &mut A, kind: Kind) -> Result<WithJson, A::Error> {
    let json: Option<Box<RawValue>> = map.next_value()?;
    let object = match json.as_deref().map(|json| Object::from_json(kind, json.get())) {
        Some(Object::Invalid { .. }) => return Err(de::Error::custom("the object does not fit its type")),
        object => object,
    };
    Ok((object, json))
}

/// The next value as an object of `kind` (skipped for [`Kind::Other`]), its
/// JSON kept in `json` for the kinds that keep it.
fn read_object<'de, A: MapAccess<'de>>(
    map: &mut A,
    kind: Kind,
    json: &mut Option<Box<RawValue>>,
) -> Result<Option<Object>, A::Error> {
    match kind {
        Kind::Other => map.next_value::<IgnoredAny>().map(|_| None),
        kind if keeps_json(kind) => {
            let (value, kept) = lean_with_json(map, kind)?;
            *json = kept;
            Ok(value)
        }
        kind => map.next_value_seed(LeanSeed(kind)),
    }
}

impl<'de> Deserialize<'de> for OnePassRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(OnePassVisitor)
    }
}

struct OnePassVisitor;

/// A request field's name, without allocating: `""` for a field not read.
struct Field(&'static str);

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
                const READ: [&str; 9] =
                    ["uid", "kind", "name", "namespace", "operation", "userInfo", "dryRun", "object", "oldObject"];
                Ok(Field(READ.into_iter().find(|field| *field == name).unwrap_or("")))
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

impl<'de> Visitor<'de> for OnePassVisitor {
    type Value = OnePassRequest;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an admission request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OnePassRequest, A::Error> {
        fn set<T, E: de::Error>(slot: &mut Option<T>, value: T, field: &'static str) -> Result<(), E> {
            match slot.replace(value) {
                None => Ok(()),
                Some(_) => Err(E::duplicate_field(field)),
            }
        }
        let (mut uid, mut kind, mut name, mut namespace, mut operation) = (None, None, None, None, None);
        let (mut user_info, mut object, mut old_object, mut dry_run) = (None, None, None, None);
        let (mut object_json, mut old_object_json) = (None, None);
        let mut parsed_kind = None;
        while let Some(Field(key)) = map.next_key::<Field>()? {
            match key {
                "uid" => set(&mut uid, map.next_value()?, "uid")?,
                "kind" => {
                    let wire: WireKind = map.next_value()?;
                    parsed_kind = Some(Kind::of(&wire.group, &wire.kind));
                    set(&mut kind, wire, "kind")?;
                }
                "name" => set(&mut name, map.next_value()?, "name")?,
                "namespace" => set(&mut namespace, map.next_value()?, "namespace")?,
                "operation" => set(&mut operation, map.next_value()?, "operation")?,
                "userInfo" => set(&mut user_info, map.next_value()?, "userInfo")?,
                "dryRun" => set(&mut dry_run, map.next_value()?, "dryRun")?,
                "object" => {
                    let kind = parsed_kind.ok_or_else(|| de::Error::custom("object before kind"))?;
                    let value = read_object(&mut map, kind, &mut object_json)?;
                    set(&mut object, value, "object")?;
                }
                "oldObject" => {
                    let kind = parsed_kind.ok_or_else(|| de::Error::custom("oldObject before kind"))?;
                    let update = operation.ok_or_else(|| de::Error::custom("oldObject before operation"))?;
                    // Only an UPDATE's old object is judged.
                    let kind = if update == Operation::Update { kind } else { Kind::Other };
                    let value = read_object(&mut map, kind, &mut old_object_json)?;
                    set(&mut old_object, value, "oldObject")?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(OnePassRequest {
            uid: uid.unwrap_or_default(),
            kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
            name: name.unwrap_or_default(),
            namespace: namespace.unwrap_or_default(),
            operation: operation.ok_or_else(|| de::Error::missing_field("operation"))?,
            user_info: user_info.unwrap_or_default(),
            object: object.flatten(),
            old_object: old_object.flatten(),
            object_json,
            old_object_json,
            dry_run: dry_run.unwrap_or_default(),
        })
    }
}

impl Review {
    /// Decodes a request body into the request model, objects parsed: in one
    /// pass when it can ([`OnePassRequest`]), else as below.
    pub fn decode(body: &[u8]) -> Result<Review, DecodeError> {
        Self::decode_in_one_pass(body).map_or_else(|| Self::decode_in_passes(body), Ok)
    }

    /// The review when the body is valid UTF-8 (what reading the object's
    /// text in [`Review::decode_in_passes`] requires), a valid AdmissionReview
    /// and its objects fit their types; `None` otherwise.
    fn decode_in_one_pass(body: &[u8]) -> Option<Review> {
        let text = std::str::from_utf8(body).ok()?;
        let wire: OnePassReview = serde_json::from_str(text).ok()?;
        let api_version = match (wire.kind.as_str(), wire.api_version.as_str()) {
            ("AdmissionReview", V1) => V1,
            ("AdmissionReview", V1BETA1) => V1BETA1,
            _ => return None,
        };
        let request = wire.request.filter(|request| !request.uid.is_empty())?;
        Some(Review::assemble_parsed(
            Parts {
                api_version,
                uid: request.uid,
                group: &request.kind.group,
                kind: &request.kind.kind,
                name: request.name,
                namespace: request.namespace,
                operation: request.operation,
                requester: Requester { username: request.user_info.username, groups: request.user_info.groups },
                object: request.object_json.as_deref().map(RawValue::get),
                old_object: request.old_object_json.as_deref().map(RawValue::get),
                dry_run: request.dry_run,
            },
            request.object,
            request.old_object,
        ))
    }

    /// The review's fields in one pass with the objects kept as text, then
    /// each object parsed on its own ([`Object::from_json`]).
    fn decode_in_passes(body: &[u8]) -> Result<Review, DecodeError> {
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
        // Written once into a buffer of about its size (the fixed part of an
        // AdmissionReview response is under 200 bytes), not grown by doubling.
        let response = &review.response;
        let texts = response.status.as_ref().map_or(0, |status| status.message.len())
            + response.warnings.iter().map(|warning| warning.len() + 3).sum::<usize>()
            + response.patch.as_ref().map_or(0, String::len)
            + response.audit_annotations.iter().map(|(key, value)| key.len() + value.len() + 6).sum::<usize>();
        let mut body = Vec::with_capacity(256 + response.uid.len() + texts + texts / 8);
        serde_json::to_writer(&mut body, &review).expect("a response always serializes");
        body
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
    use crate::engine::PolicyFinding;
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
        let finding = |policy, severity, text: &str| PolicyFinding {
            policy,
            severity,
            text: text.into(),
            pre_existing: false,
            validation: None,
        };
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

    /// Every captured review body of the repository.
    fn captured_bodies() -> Vec<(String, Vec<u8>)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut bodies = Vec::new();
        for folder in ["v1.20", "v1.32", "demo", "gateway-api", "edge"] {
            for entry in std::fs::read_dir(root.join(folder)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|extension| extension == "json") {
                    bodies.push((path.display().to_string(), std::fs::read(&path).unwrap()));
                }
            }
        }
        assert!(bodies.len() >= 40, "{} bodies", bodies.len());
        bodies
    }

    #[test]
    fn every_captured_review_is_read_in_one_pass_as_the_passes_read_it() {
        let mut one_pass = 0;
        for (name, body) in captured_bodies() {
            let passes = format!("{:?}", Review::decode_in_passes(&body));
            let fast = Review::decode_in_one_pass(&body);
            one_pass += usize::from(fast.is_some());
            let fast = fast.map_or_else(|| Review::decode_in_passes(&body), Ok);
            assert_eq!(format!("{fast:?}"), passes, "{name}");
        }
        // All of them: API servers send `kind` and `operation` before the
        // objects (the edge case's malformed `status` is skipped unread).
        assert_eq!(one_pass, captured_bodies().len());
    }

    #[test]
    fn a_review_the_one_pass_cannot_read_is_read_in_passes() {
        // The object before the kind, a duplicate `metadata` (the passes take
        // the last), a field that does not fit, a request that is not a map.
        let object = r#"{"metadata":{"name":"a"},"spec":{"type":"NodePort"}}"#;
        let rest = r#""uid":"u","kind":{"kind":"Service"},"namespace":"prod","operation":"CREATE""#;
        let wrap = |request: String| format!(r#"{{"apiVersion":"{V1}","kind":"AdmissionReview","request":{request}}}"#);
        let object_first = wrap(format!(r#"{{"object":{object},{rest}}}"#));
        let duplicate =
            wrap(format!(r#"{{{rest},"object":{{"metadata":{{"name":"a"}},"metadata":{{"name":"b"}},"spec":{{}}}}}}"#));
        let misfit = wrap(format!(r#"{{{rest},"object":{{"spec":{{"ports":[{{"port":"http"}}]}}}}}}"#));
        for body in [&object_first, &duplicate, &misfit] {
            assert!(Review::decode_in_one_pass(body.as_bytes()).is_none(), "{body}");
        }
        let name = |body: &str| Review::decode(body.as_bytes()).unwrap().name;
        assert_eq!(name(&object_first), "a");
        assert_eq!(name(&duplicate), "b");
        assert!(matches!(
            Review::decode(misfit.as_bytes()).unwrap().object,
            Some(Object::Invalid { kind: Kind::Service, ref error }) if error.starts_with("spec.ports[0].port: invalid type")
        ));
        // Invalid UTF-8 in a field no one reads: refused, as the passes refuse it.
        let mut bad =
            wrap(format!(r#"{{{rest},"object":{{"metadata":{{"managedFields":[{{"x":"~"}}]}}}}}}"#)).into_bytes();
        let tilde = bad.iter().position(|byte| *byte == b'~').unwrap();
        bad[tilde] = 0xff;
        assert!(matches!(Review::decode(&bad), Err(DecodeError::Json(_))));
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
