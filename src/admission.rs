//! The request model: one admission request with its objects parsed, the one
//! way into the engine for the webhook, `portcullis check` and `portcullis
//! test`. The webhook decodes it from an `AdmissionReview` body
//! (`crate::webhook::review`); `check` and `test` build it from a manifest with
//! [`Review::from_manifest`]. Both parse each object once, with the same lean
//! parser ([`Object::from_json`]: typed k8s-openapi structs, without
//! `managedFields` and `status`), so the same object gets the same decision
//! whichever way it comes in.

use serde_json::Value;

use crate::engine::input::IngressClasses;
use crate::engine::{About, Input, Kind, Object, Operation, Stage, User};

pub const V1: &str = "admission.k8s.io/v1";
pub const V1BETA1: &str = "admission.k8s.io/v1beta1";

/// The namespace of a manifest that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The name of an object that has neither `metadata.name` nor `metadata.generateName`.
pub const UNNAMED: &str = "(unnamed)";

/// The uid of a review built from a manifest.
pub const OFFLINE_UID: &str = "portcullis-offline";

/// Who sends a review built from a manifest, unless told otherwise: an
/// authenticated user no exception names.
pub const OFFLINE_USERNAME: &str = "portcullis-offline";
pub const OFFLINE_GROUP: &str = "system:authenticated";

/// The user of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    pub username: String,
    pub groups: Vec<String>,
}

impl Default for Requester {
    /// [`OFFLINE_USERNAME`] in [`OFFLINE_GROUP`].
    fn default() -> Self {
        Requester { username: OFFLINE_USERNAME.to_owned(), groups: vec![OFFLINE_GROUP.to_owned()] }
    }
}

/// An admission request with its objects parsed.
#[derive(Debug)]
pub struct Review {
    /// `admission.k8s.io/v1` or `v1beta1`, echoed in the response.
    pub api_version: &'static str,
    pub uid: String,
    pub kind: Kind,
    pub name: String,
    pub namespace: String,
    pub operation: Operation,
    pub username: String,
    pub groups: Vec<String>,
    pub object: Option<Object>,
    pub old_object: Option<Object>,
    /// The objects' JSON as received, kept for the kinds the engine reads
    /// into lean types of only the fields its rules read (the Gateway API
    /// kinds, [`keeps_json`]), so a `cel` rule sees the whole object; `None`
    /// for Services and Ingresses, whose types are complete.
    pub object_json: Option<Box<str>>,
    pub old_object_json: Option<Box<str>>,
    pub dry_run: bool,
}

/// Whether a review of this kind keeps its objects' JSON ([`Review::object_json`]).
pub fn keeps_json(kind: Kind) -> bool {
    !matches!(kind, Kind::Service | Kind::Ingress | Kind::Other)
}

/// The fields of a request before its objects are parsed.
pub(crate) struct Parts<'a> {
    pub api_version: &'static str,
    pub uid: String,
    /// `request.kind.group`, or the group of the manifest's `apiVersion`
    /// (`""` for the core group).
    pub group: &'a str,
    /// `request.kind.kind`, or the manifest's `kind`.
    pub kind: &'a str,
    /// Empty when the request names none (a CREATE with `generateName`).
    pub name: String,
    pub namespace: String,
    pub operation: Operation,
    pub requester: Requester,
    /// The objects' JSON text.
    pub object: Option<&'a str>,
    pub old_object: Option<&'a str>,
    pub dry_run: bool,
}

/// The manifest's JSON with `metadata.namespace` filled in, as the API server
/// sends a namespaced object (rules such as `externalName` read it).
fn in_namespace(manifest: &Value, namespace: &str) -> String {
    match manifest.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(written) if !written.is_empty() => manifest.to_string(),
        _ => {
            let mut manifest = manifest.clone();
            if let Some(metadata) = manifest.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.insert("namespace".to_owned(), Value::from(namespace));
            }
            manifest.to_string()
        }
    }
}

impl Review {
    /// Parses the objects of a request: only for the kinds portcullis has rules
    /// for, the old object only on UPDATE. A request without a name takes the
    /// object's `metadata.name`, else its `generateName` (a CREATE that lets
    /// the API server pick the name), else [`UNNAMED`].
    pub(crate) fn assemble(parts: Parts<'_>) -> Review {
        let kind = Kind::of(parts.group, parts.kind);
        let parse = |json: Option<&str>| json.filter(|_| kind != Kind::Other).map(|json| parse_object(kind, json));
        let object = parse(parts.object);
        let old_object = if parts.operation == Operation::Update { parse(parts.old_object) } else { None };
        Review::assemble_parsed(parts, object, old_object)
    }

    /// [`Review::assemble`] with the objects already parsed (the webhook's
    /// one-pass decoder): `object` and `old_object` as `assemble` would have
    /// parsed them; the texts in `parts` are not read.
    pub(crate) fn assemble_parsed(parts: Parts<'_>, object: Option<Object>, old_object: Option<Object>) -> Review {
        let kind = Kind::of(parts.group, parts.kind);
        let json = |text: Option<&str>, object: &Option<Object>| {
            text.filter(|_| keeps_json(kind) && object.is_some()).map(Box::from)
        };
        let object_json = json(parts.object, &object);
        let old_object_json = json(parts.old_object, &old_object);
        let mut name = parts.name;
        if name.is_empty() {
            let given = |field: &Option<String>| field.clone().filter(|name| !name.is_empty());
            name = object
                .as_ref()
                .and_then(Object::metadata)
                .and_then(|meta| given(&meta.name).or_else(|| given(&meta.generate_name)))
                .unwrap_or_else(|| UNNAMED.to_owned());
        }
        Review {
            api_version: parts.api_version,
            uid: parts.uid,
            kind,
            name,
            namespace: parts.namespace,
            operation: parts.operation,
            username: parts.requester.username,
            groups: parts.requester.groups,
            object,
            old_object,
            object_json,
            old_object_json,
            dry_run: parts.dry_run,
        }
    }

    /// The review the API server would send for `manifest` in `namespace`:
    /// for DELETE the manifest is the object deleted (the review carries no
    /// object), for UPDATE add the old object with [`Review::with_old_object`].
    pub fn from_manifest(manifest: &Value, namespace: &str, operation: Operation, requester: Requester) -> Review {
        let json = in_namespace(manifest, namespace);
        let kind = manifest.get("kind").and_then(Value::as_str).unwrap_or_default();
        let api_version = manifest.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        let deleted = operation == Operation::Delete;
        // As the API server fills in `request.name`: empty for a generated name.
        let name = manifest.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        Review::assemble(Parts {
            api_version: V1,
            uid: OFFLINE_UID.to_owned(),
            group,
            kind,
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            operation,
            requester,
            object: (!deleted).then_some(json.as_str()),
            old_object: None,
            dry_run: false,
        })
    }

    /// Adds the object as it was before an UPDATE.
    pub fn with_old_object(mut self, old: &Value) -> Review {
        if self.operation == Operation::Update && self.kind != Kind::Other {
            let json = in_namespace(old, &self.namespace);
            self.old_object = Some(parse_object(self.kind, &json));
            self.old_object_json = keeps_json(self.kind).then(|| json.into_boxed_str());
        }
        self
    }

    /// The namespace a manifest is reviewed in: its `metadata.namespace`, else
    /// `fallback`, else [`DEFAULT_NAMESPACE`].
    pub fn namespace_of<'a>(manifest: &'a Value, fallback: Option<&'a str>) -> &'a str {
        manifest
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|namespace| !namespace.is_empty())
            .or(fallback)
            .unwrap_or(DEFAULT_NAMESPACE)
    }

    /// The engine's view of this review, without the cluster's IngressClasses
    /// (the webhook sets [`Input::ingress_classes`] from its cache).
    pub fn input(&self, stage: Stage) -> Input<'_> {
        Input {
            stage,
            operation: self.operation,
            kind: self.kind,
            namespace: &self.namespace,
            name: &self.name,
            user: User { username: &self.username, groups: &self.groups },
            object: self.object.as_ref(),
            old_object: self.old_object.as_ref(),
            object_json: self.object_json.as_deref(),
            old_object_json: self.old_object_json.as_deref(),
            dry_run: self.dry_run,
            ingress_classes: IngressClasses::NONE,
            gateways: &crate::engine::gateway::view::EMPTY,
        }
    }

    /// The object this review is about, for message lines.
    pub fn about(&self) -> About<'_> {
        About { kind: self.kind, namespace: &self.namespace, name: &self.name }
    }
}

/// Parses an object with the engine's lean parser ([`Object::from_json`]).
/// When it does not fit its kind's schema, the error is read again to name the
/// field it is about (`spec.ports[0].port: invalid type: ...`), as
/// [`crate::documents::from_value`] does for policy files: only on this
/// rare path, so a valid object is parsed once.
fn parse_object(kind: Kind, json: &str) -> Object {
    let object = Object::from_json(kind, json);
    let Object::Invalid { kind, error } = object else { return object };
    let located = locate(kind, json).unwrap_or(error);
    Object::Invalid { kind, error: located }
}

/// The error of reading the object's `metadata` (without `managedFields`)
/// and `spec`, what the lean parser reads, with its field path; `None` when
/// it names no field (the object itself is the wrong type) or cannot be read.
fn locate(kind: Kind, json: &str) -> Option<String> {
    use crate::engine::gateway;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::networking::v1::Ingress;

    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(json) else { return None };
    let mut lean = serde_json::Map::new();
    if let Some(mut metadata) = fields.remove("metadata").filter(|m| !m.is_null()) {
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.remove("managedFields");
        }
        lean.insert("metadata".to_owned(), metadata);
    }
    if let Some(spec) = fields.remove("spec").filter(|s| !s.is_null()) {
        lean.insert("spec".to_owned(), spec);
    }
    let lean = Value::Object(lean);
    let error = match kind {
        Kind::Service => crate::documents::from_value::<Service>(&lean).err(),
        Kind::Ingress => crate::documents::from_value::<Ingress>(&lean).err(),
        Kind::Gateway => crate::documents::from_value::<gateway::Gateway>(&lean).err(),
        Kind::ListenerSet => crate::documents::from_value::<gateway::ListenerSet>(&lean).err(),
        Kind::HttpRoute => crate::documents::from_value::<gateway::HttpRoute>(&lean).err(),
        Kind::GrpcRoute => crate::documents::from_value::<gateway::GrpcRoute>(&lean).err(),
        Kind::TlsRoute => crate::documents::from_value::<gateway::TlsRoute>(&lean).err(),
        Kind::ReferenceGrant => crate::documents::from_value::<gateway::ReferenceGrant>(&lean).err(),
        Kind::Other => None,
    }?;
    (!error.path.is_empty()).then(|| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_manifest_becomes_the_review_the_api_server_would_send() {
        let manifest = json!({"apiVersion": "v1", "kind": "service", "metadata": {"generateName": "web-"},
                              "spec": {"type": "NodePort"}});
        let review = Review::from_manifest(&manifest, "prod", Operation::Create, Requester::default());
        assert_eq!((review.kind, review.name.as_str(), review.namespace.as_str()), (Kind::Service, "web-", "prod"));
        assert_eq!(
            (review.username.as_str(), review.groups.as_slice()),
            (OFFLINE_USERNAME, &[OFFLINE_GROUP.to_owned()][..])
        );
        assert!(matches!(review.object, Some(Object::Service(_))));
        assert!(review.old_object.is_none());

        let deleted = Review::from_manifest(&manifest, "prod", Operation::Delete, Requester::default());
        assert!(deleted.object.is_none());
        let created = Review::from_manifest(&manifest, "prod", Operation::Create, Requester::default());
        assert!(created.with_old_object(&manifest).old_object.is_none(), "only an UPDATE has an old object");
        let updated = Review::from_manifest(&manifest, "prod", Operation::Update, Requester::default());
        assert!(matches!(updated.with_old_object(&manifest).old_object, Some(Object::Service(_))));
    }

    #[test]
    fn an_object_without_a_name_is_named_by_its_generate_name_or_unnamed() {
        let named = |metadata: Value| {
            let manifest = json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata});
            Review::from_manifest(&manifest, "prod", Operation::Create, Requester::default()).name
        };
        assert_eq!(named(json!({"name": "web", "generateName": "web-"})), "web");
        assert_eq!(named(json!({"generateName": "web-"})), "web-");
        assert_eq!(named(json!({"name": "", "generateName": "web-"})), "web-");
        assert_eq!(named(json!({})), UNNAMED);
        assert_eq!(named(json!({"generateName": ""})), "(unnamed)");
        // An object that cannot be read has no metadata to name it by.
        assert_eq!(named(json!({"labels": "x"})), UNNAMED);
    }

    #[test]
    fn an_object_that_does_not_fit_its_kind_names_the_field() {
        let invalid =
            |manifest: Value| match Review::from_manifest(&manifest, "prod", Operation::Create, Requester::default())
                .object
            {
                Some(Object::Invalid { error, .. }) => error,
                other => panic!("{other:?}"),
            };
        assert_eq!(
            invalid(json!({"kind": "Ingress", "spec": {"rules": [{"host": "a"}, {"host": 5}]}})),
            "spec.rules[1].host: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            invalid(json!({"kind": "Service", "metadata": {"name": "web", "managedFields": [], "labels": {"a": 1}},
                           "spec": {"ports": [{"port": 80}]}})),
            "metadata.labels.a: invalid type: integer `1`, expected a string"
        );
        // What no rule reads is not read: a broken status does not matter, ...
        let status = json!({"kind": "Service", "spec": {"ports": "80"}, "status": {"loadBalancer": 1}});
        assert_eq!(invalid(status), "spec.ports: invalid type: string \"80\", expected a sequence");
        // ... and an object that is not a mapping names no field.
        let review = Review::assemble(Parts {
            api_version: V1,
            uid: "u".into(),
            group: "",
            kind: "Service",
            name: String::new(),
            namespace: "prod".into(),
            operation: Operation::Update,
            requester: Requester::default(),
            object: Some("[1]"),
            old_object: Some(r#"{"spec": {"type": 7}}"#),
            dry_run: false,
        });
        assert_eq!(
            review.object,
            Some(Object::Invalid { kind: Kind::Service, error: "invalid type: sequence, expected a map".into() })
        );
        assert_eq!(
            review.old_object,
            Some(Object::Invalid {
                kind: Kind::Service,
                error: "spec.type: invalid type: integer `7`, expected a string".into()
            })
        );
        assert_eq!(review.name, UNNAMED);
    }

    #[test]
    fn the_object_carries_its_namespace_as_the_api_server_sends_it() {
        let manifest = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "own"},
                              "spec": {"type": "ExternalName", "externalName": "db.shop.svc.cluster.local"}});
        let review = Review::from_manifest(&manifest, "shop", Operation::Update, Requester::default())
            .with_old_object(&manifest);
        for object in [&review.object, &review.old_object] {
            let namespace = object.as_ref().and_then(Object::metadata).and_then(|m| m.namespace.as_deref());
            assert_eq!(namespace, Some("shop"));
        }
        // A namespace written in the manifest stays.
        let written = json!({"kind": "Service", "metadata": {"name": "own", "namespace": "other"}});
        let review = Review::from_manifest(&written, "shop", Operation::Create, Requester::default());
        assert_eq!(
            review.object.as_ref().and_then(Object::metadata).and_then(|m| m.namespace.as_deref()),
            Some("other")
        );
    }

    #[test]
    fn the_namespace_is_the_manifests_then_the_fallback_then_default() {
        let named = json!({"metadata": {"namespace": "shop"}});
        assert_eq!(Review::namespace_of(&named, Some("x")), "shop");
        assert_eq!(Review::namespace_of(&json!({"metadata": {"namespace": ""}}), Some("x")), "x");
        assert_eq!(Review::namespace_of(&json!({}), None), DEFAULT_NAMESPACE);
    }
}
