//! The objects portcullis understands, parsed into typed k8s-openapi structs.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The kind of the object under review. Parsed case-insensitively.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Service,
    Ingress,
    /// Any kind portcullis has no rules for: always allowed.
    Other,
}

impl Kind {
    /// Kinds are compared case-insensitively: `service`, `SERVICE` and `Service`
    /// are the same kind.
    pub fn parse(kind: &str) -> Kind {
        if kind.eq_ignore_ascii_case("Service") {
            Kind::Service
        } else if kind.eq_ignore_ascii_case("Ingress") {
            Kind::Ingress
        } else {
            Kind::Other
        }
    }

    /// The canonical spelling, for messages and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::Ingress => "Ingress",
            Kind::Other => "other",
        }
    }
}

/// An object under review.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Service(Box<Service>),
    Ingress(Box<Ingress>),
    /// A kind portcullis has no rules for; never inspected.
    Other,
    /// A Service or Ingress whose JSON does not fit the typed schema.
    Invalid {
        kind: Kind,
        error: String,
    },
}

impl Object {
    /// Parses an object's JSON as the given kind, leaving out what no rule
    /// reads: `metadata.managedFields` (often the larger part of an object) and
    /// `status`.
    pub fn from_json(kind: Kind, json: &str) -> Object {
        match kind {
            Kind::Service => {
                typed(kind, lean(json, |metadata, spec| Service { metadata, spec, status: None }), Object::Service)
            }
            Kind::Ingress => {
                typed(kind, lean(json, |metadata, spec| Ingress { metadata, spec, status: None }), Object::Ingress)
            }
            Kind::Other => Object::Other,
        }
    }

    /// Whether `metadata.deletionTimestamp` is set: the object is terminating
    /// and waits only for its finalizers to be removed.
    pub fn is_being_deleted(&self) -> bool {
        self.metadata().is_some_and(|metadata| metadata.deletion_timestamp.is_some())
    }

    pub fn metadata(&self) -> Option<&ObjectMeta> {
        match self {
            Object::Service(service) => Some(&service.metadata),
            Object::Ingress(ingress) => Some(&ingress.metadata),
            Object::Other | Object::Invalid { .. } => None,
        }
    }
}

/// Builds a typed object from its `metadata` (without `managedFields`) and its
/// `spec`, each parsed straight from the raw JSON.
fn lean<S: serde::de::DeserializeOwned, T>(
    json: &str,
    build: impl FnOnce(ObjectMeta, Option<S>) -> T,
) -> Result<T, serde_json::Error> {
    use serde::Deserialize as _;
    use serde_json::value::RawValue;
    use std::collections::BTreeMap;

    let fields: BTreeMap<&str, &RawValue> = serde_json::from_str(json)?;
    let present = |key| fields.get(key).copied().filter(|raw: &&RawValue| raw.get() != "null");
    let metadata = match present("metadata") {
        Some(raw) => {
            let meta: BTreeMap<&str, &RawValue> = serde_json::from_str(raw.get())?;
            let map =
                serde::de::value::MapDeserializer::new(meta.into_iter().filter(|(key, _)| *key != "managedFields"));
            ObjectMeta::deserialize(map)?
        }
        None => ObjectMeta::default(),
    };
    let spec = present("spec").map(|raw| serde_json::from_str(raw.get())).transpose()?;
    Ok(build(metadata, spec))
}

/// A typed object, or why the JSON does not fit the kind's schema.
fn typed<T>(kind: Kind, parsed: Result<T, serde_json::Error>, wrap: fn(Box<T>) -> Object) -> Object {
    match parsed {
        Ok(value) => wrap(Box::new(value)),
        Err(error) => {
            // The position is within the embedded object, meaningless to the user.
            let text = error.to_string();
            let error = text.rsplit_once(" at line ").map_or(text.as_str(), |(head, _)| head).to_owned();
            Object::Invalid { kind, error }
        }
    }
}

/// The value of an annotation, if set.
pub fn annotation<'a>(metadata: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Parses a boolean the way Go's `strconv.ParseBool` does, which is what the
/// ingress controllers use for their annotations: `1 t T TRUE true True` and
/// `0 f F FALSE false False`. Anything else is `None` (the controller then
/// falls back to its default).
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_case_insensitive() {
        assert_eq!(Kind::parse("service"), Kind::Service);
        assert_eq!(Kind::parse("SERVICE"), Kind::Service);
        assert_eq!(Kind::parse("iNgReSs"), Kind::Ingress);
        assert_eq!(Kind::parse("Pod"), Kind::Other);
    }

    #[test]
    fn go_booleans_follow_strconv_parse_bool() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Some(false), "{f}");
        }
        for other in ["", "yes", "no", "fAlse", " false"] {
            assert_eq!(parse_go_bool(other), None, "{other}");
        }
    }

    #[test]
    fn an_object_that_does_not_fit_the_schema_is_invalid() {
        let object = Object::from_json(Kind::Service, r#"{"spec":{"ports":"eighty"}}"#);
        assert_eq!(
            object,
            Object::Invalid {
                kind: Kind::Service,
                error: "invalid type: string \"eighty\", expected a sequence".into()
            }
        );
    }
}
