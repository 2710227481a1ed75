//! The objects portcullis understands, parsed into typed k8s-openapi structs.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::gateway::{self, Gateway, GrpcRoute, HttpRoute, ListenerSet, ReferenceGrant, Route, TlsRoute};

/// The kind of the object under review. Parsed case-insensitively.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Service,
    Ingress,
    Gateway,
    ListenerSet,
    HttpRoute,
    GrpcRoute,
    TlsRoute,
    ReferenceGrant,
    /// Any kind portcullis has no rules for: always allowed.
    Other,
}

impl Kind {
    /// Every kind portcullis has rules for.
    pub const KNOWN: [Kind; 8] = [
        Kind::Service,
        Kind::Ingress,
        Kind::Gateway,
        Kind::ListenerSet,
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::TlsRoute,
        Kind::ReferenceGrant,
    ];

    /// Kinds are compared case-insensitively: `service`, `SERVICE` and `Service`
    /// are the same kind. Without a group (a policy's `match.kinds`).
    pub fn parse(kind: &str) -> Kind {
        Kind::KNOWN.into_iter().find(|known| known.as_str().eq_ignore_ascii_case(kind)).unwrap_or(Kind::Other)
    }

    /// The kind of an object of API group `group`: a kind of the same name in
    /// another group, such as Istio's `networking.istio.io` `Gateway` or
    /// Knative's `Service`, is [`Kind::Other`]. An empty group (a request or
    /// manifest that names none; the core group has none of these kinds but
    /// Service) is taken as the kind's own.
    pub fn of(group: &str, kind: &str) -> Kind {
        let known = Kind::parse(kind);
        let group_fits =
            group.is_empty() || group == known.group() || (known == Kind::Ingress && group == "extensions");
        if group_fits { known } else { Kind::Other }
    }

    /// The kind of a manifest from its `apiVersion` and `kind`.
    pub fn of_manifest(api_version: &str, kind: &str) -> Kind {
        Kind::of(api_version.rsplit_once('/').map_or("", |(group, _)| group), kind)
    }

    /// The canonical spelling, for messages and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::Ingress => "Ingress",
            Kind::Gateway => "Gateway",
            Kind::ListenerSet => "ListenerSet",
            Kind::HttpRoute => "HTTPRoute",
            Kind::GrpcRoute => "GRPCRoute",
            Kind::TlsRoute => "TLSRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::Other => "other",
        }
    }

    /// The API group (`""` for the core group), as webhook rules name it.
    pub fn group(self) -> &'static str {
        match self {
            Kind::Service | Kind::Other => "",
            Kind::Ingress => "networking.k8s.io",
            _ => gateway::GROUP,
        }
    }

    /// The resource (plural), as webhook rules and RBAC name it.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::Ingress => "ingresses",
            Kind::Gateway => "gateways",
            Kind::ListenerSet => "listenersets",
            Kind::HttpRoute => "httproutes",
            Kind::GrpcRoute => "grpcroutes",
            Kind::TlsRoute => "tlsroutes",
            Kind::ReferenceGrant => "referencegrants",
            Kind::Other => "",
        }
    }
}

/// An object under review.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Service(Box<Service>),
    Ingress(Box<Ingress>),
    Gateway(Box<Gateway>),
    ListenerSet(Box<ListenerSet>),
    HttpRoute(Box<HttpRoute>),
    GrpcRoute(Box<GrpcRoute>),
    TlsRoute(Box<TlsRoute>),
    ReferenceGrant(Box<ReferenceGrant>),
    /// A kind portcullis has no rules for; never inspected.
    Other,
    /// An object of a known kind whose JSON does not fit the typed schema.
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
            Kind::Gateway => typed(
                kind,
                lean(json, |metadata, spec| Gateway { metadata, spec: spec.unwrap_or_default() }),
                Object::Gateway,
            ),
            Kind::ListenerSet => typed(
                kind,
                lean(json, |metadata, spec| ListenerSet { metadata, spec: spec.unwrap_or_default() }),
                Object::ListenerSet,
            ),
            Kind::HttpRoute => typed(
                kind,
                lean(json, |metadata, spec| HttpRoute { metadata, spec: spec.unwrap_or_default() }),
                Object::HttpRoute,
            ),
            Kind::GrpcRoute => typed(
                kind,
                lean(json, |metadata, spec| GrpcRoute { metadata, spec: spec.unwrap_or_default() }),
                Object::GrpcRoute,
            ),
            Kind::TlsRoute => typed(
                kind,
                lean(json, |metadata, spec| TlsRoute { metadata, spec: spec.unwrap_or_default() }),
                Object::TlsRoute,
            ),
            Kind::ReferenceGrant => typed(
                kind,
                lean(json, |metadata, spec| ReferenceGrant { metadata, spec: spec.unwrap_or_default() }),
                Object::ReferenceGrant,
            ),
            Kind::Other => Object::Other,
        }
    }

    /// An HTTPRoute, GRPCRoute or TLSRoute, for the rules they share.
    pub fn route(&self) -> Option<Route<'_>> {
        match self {
            Object::HttpRoute(route) => Some(Route::Http(route)),
            Object::GrpcRoute(route) => Some(Route::Grpc(route)),
            Object::TlsRoute(route) => Some(Route::Tls(route)),
            _ => None,
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
            Object::Gateway(gateway) => Some(&gateway.metadata),
            Object::ListenerSet(set) => Some(&set.metadata),
            Object::HttpRoute(route) => Some(&route.metadata),
            Object::GrpcRoute(route) => Some(&route.metadata),
            Object::TlsRoute(route) => Some(&route.metadata),
            Object::ReferenceGrant(grant) => Some(&grant.metadata),
            Object::Other | Object::Invalid { .. } => None,
        }
    }
}

/// Builds a typed object from its `metadata` (without `managedFields`) and its
/// `spec`: in one pass over the JSON ([`one_pass::lean`]), and when that
/// fails, in the passes below, which accept the same objects and whose errors
/// are the ones reported (a duplicate key, which they take last, is one pass's
/// only other refusal).
fn lean<S: serde::de::DeserializeOwned, T>(
    json: &str,
    build: impl Fn(ObjectMeta, Option<S>) -> T,
) -> Result<T, serde_json::Error> {
    one_pass::lean(json).map(|(metadata, spec)| build(metadata, spec)).or_else(|_| lean_in_passes(json, build))
}

/// Reads the object into a map of raw fields, then `metadata` into another
/// (dropping `managedFields`), then each field and `spec` into their types.
fn lean_in_passes<S: serde::de::DeserializeOwned, T>(
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

/// The lean parser in one pass: the object's fields are read in order,
/// `metadata` straight into [`ObjectMeta`] with `managedFields` skipped
/// unread, `spec` into its type, everything else skipped. Keys are borrowed
/// from the text, as the passes of [`lean_in_passes`] read them, so an escaped
/// key fails both ways alike.
mod one_pass {
    use std::fmt;
    use std::marker::PhantomData;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde::{Deserialize, forward_to_deserialize_any};

    pub(super) fn lean<S: DeserializeOwned>(json: &str) -> Result<(ObjectMeta, Option<S>), serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let parts = lean_from(&mut deserializer)?;
        deserializer.end()?;
        Ok(parts)
    }

    /// `metadata` and `spec` of the object `deserializer` is at.
    pub(super) fn lean_from<'de, D: Deserializer<'de>, S: DeserializeOwned>(
        deserializer: D,
    ) -> Result<(ObjectMeta, Option<S>), D::Error> {
        let (metadata, spec) = deserializer.deserialize_map(Fields::<S>(PhantomData))?;
        Ok((metadata.unwrap_or_default(), spec))
    }

    struct Fields<S>(PhantomData<S>);

    impl<'de, S: DeserializeOwned> Visitor<'de> for Fields<S> {
        type Value = (Option<ObjectMeta>, Option<S>);

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut metadata, mut spec) = (None, None);
            while let Some(key) = map.next_key::<&'de str>()? {
                match key {
                    "metadata" if metadata.is_none() => metadata = Some(map.next_value_seed(Metadata)?),
                    "spec" if spec.is_none() => spec = Some(map.next_value::<Option<S>>()?),
                    "metadata" => return Err(de::Error::duplicate_field("metadata")),
                    "spec" => return Err(de::Error::duplicate_field("spec")),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok((metadata.flatten(), spec.flatten()))
        }
    }

    /// `metadata`, or `None` for `null`.
    struct Metadata;

    impl<'de> DeserializeSeed<'de> for Metadata {
        type Value = Option<ObjectMeta>;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_option(self)
        }
    }

    impl<'de> Visitor<'de> for Metadata {
        type Value = Option<ObjectMeta>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("object metadata")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            ObjectMeta::deserialize(WithoutManagedFields(deserializer)).map(Some)
        }
    }

    /// A map deserializer that leaves out the key `managedFields`.
    struct WithoutManagedFields<D>(D);

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for WithoutManagedFields<D> {
        type Error = D::Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.deserialize_map(Filter(visitor))
        }

        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
        }
    }

    struct Filter<V>(V);

    impl<'de, V: Visitor<'de>> Visitor<'de> for Filter<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            self.0.visit_map(FilteredMap(map))
        }
    }

    struct FilteredMap<A>(A);

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for FilteredMap<A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
            loop {
                match self.0.next_key::<&'de str>()? {
                    None => return Ok(None),
                    Some("managedFields") => {
                        self.0.next_value::<IgnoredAny>()?;
                    }
                    Some(key) => {
                        return seed.deserialize(de::value::BorrowedStrDeserializer::new(key)).map(Some);
                    }
                }
            }
        }

        fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
            self.0.next_value_seed(seed)
        }
    }
}

/// Reads an object of a known kind with the lean parser in one pass, where
/// it is embedded in a larger document (an AdmissionReview's
/// `request.object`), or `None` for `null`. An error leaves the document
/// unread: the caller reads it again and hands the object's text to
/// [`Object::from_json`], which says what does not fit.
#[derive(Clone, Copy, Debug)]
pub struct LeanSeed(pub Kind);

impl<'de> serde::de::DeserializeSeed<'de> for LeanSeed {
    type Value = Option<Object>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> serde::de::Visitor<'de> for LeanSeed {
    type Value = Option<Object>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        use one_pass::lean_from;
        Ok(Some(match self.0 {
            Kind::Service => {
                let (metadata, spec) = lean_from(d)?;
                Object::Service(Box::new(Service { metadata, spec, status: None }))
            }
            Kind::Ingress => {
                let (metadata, spec) = lean_from(d)?;
                Object::Ingress(Box::new(Ingress { metadata, spec, status: None }))
            }
            Kind::Gateway => {
                let (metadata, spec) = lean_from(d)?;
                Object::Gateway(Box::new(Gateway { metadata, spec: spec.unwrap_or_default() }))
            }
            Kind::ListenerSet => {
                let (metadata, spec) = lean_from(d)?;
                Object::ListenerSet(Box::new(ListenerSet { metadata, spec: spec.unwrap_or_default() }))
            }
            Kind::HttpRoute => {
                let (metadata, spec) = lean_from(d)?;
                Object::HttpRoute(Box::new(HttpRoute { metadata, spec: spec.unwrap_or_default() }))
            }
            Kind::GrpcRoute => {
                let (metadata, spec) = lean_from(d)?;
                Object::GrpcRoute(Box::new(GrpcRoute { metadata, spec: spec.unwrap_or_default() }))
            }
            Kind::TlsRoute => {
                let (metadata, spec) = lean_from(d)?;
                Object::TlsRoute(Box::new(TlsRoute { metadata, spec: spec.unwrap_or_default() }))
            }
            Kind::ReferenceGrant => {
                let (metadata, spec) = lean_from(d)?;
                Object::ReferenceGrant(Box::new(ReferenceGrant { metadata, spec: spec.unwrap_or_default() }))
            }
            Kind::Other => {
                <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d)?;
                Object::Other
            }
        }))
    }
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
        assert_eq!(Kind::parse("httproute"), Kind::HttpRoute);
        assert_eq!(Kind::parse("GRPCRoute"), Kind::GrpcRoute);
    }

    #[test]
    fn a_kind_of_the_same_name_in_another_group_is_not_ours() {
        assert_eq!(Kind::of_manifest("gateway.networking.k8s.io/v1", "Gateway"), Kind::Gateway);
        assert_eq!(Kind::of_manifest("gateway.networking.k8s.io/v1beta1", "HTTPRoute"), Kind::HttpRoute);
        assert_eq!(Kind::of_manifest("gateway.networking.k8s.io/v1alpha2", "TLSRoute"), Kind::TlsRoute);
        assert_eq!(Kind::of_manifest("networking.istio.io/v1", "Gateway"), Kind::Other);
        assert_eq!(Kind::of_manifest("serving.knative.dev/v1", "Service"), Kind::Other);
        assert_eq!(Kind::of_manifest("v1", "Service"), Kind::Service);
        assert_eq!(Kind::of_manifest("networking.k8s.io/v1", "Ingress"), Kind::Ingress);
        assert_eq!(Kind::of_manifest("extensions/v1beta1", "Ingress"), Kind::Ingress);
        assert_eq!(Kind::of("", "Ingress"), Kind::Ingress);
        assert_eq!(Kind::of("networking.k8s.io", "Service"), Kind::Other);
        assert_eq!(Kind::of("gateway.networking.k8s.io", "referencegrant"), Kind::ReferenceGrant);
    }

    #[test]
    fn a_gateway_api_object_is_read_from_any_version_of_its_kind() {
        let route = r#"{"apiVersion":"gateway.networking.k8s.io/v1beta1","kind":"HTTPRoute",
            "metadata":{"name":"web","managedFields":[{"manager":"kubectl"}]},
            "spec":{"parentRefs":[{"name":"public","sectionName":"https"}],"hostnames":["shop.example.com"],
                    "rules":[{"backendRefs":[{"name":"web","port":8080}],"futureField":{"x":1}}]},
            "status":{"parents":[]}}"#;
        let Object::HttpRoute(route) = Object::from_json(Kind::HttpRoute, route) else { panic!("not an HTTPRoute") };
        assert_eq!(route.spec.parent_refs[0].section_name.as_deref(), Some("https"));
        assert_eq!(route.spec.rules[0].backend_refs[0].port, Some(8080));
        assert!(route.metadata.managed_fields.is_none());
        let gateway = r#"{"spec":{"listeners":[{"name":"http","port":"eighty","protocol":"HTTP"}]}}"#;
        assert!(matches!(Object::from_json(Kind::Gateway, gateway), Object::Invalid { kind: Kind::Gateway, .. }));
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
