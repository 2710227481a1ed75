//! Objects as CEL values: JSON (what a typed object serializes to) into the
//! interpreter's values, as the API server presents them to VAP expressions.

use std::collections::HashMap;
use std::sync::Arc;

use kube_cel::cel::Value;
use kube_cel::cel::objects::{Key, Map};

use crate::engine::Object;

/// A JSON value as CEL sees it: objects are maps with string keys, integral
/// numbers `int` (or `uint` beyond `int`), other numbers `double`.
pub fn from_json(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(value) => Value::Bool(*value),
        serde_json::Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => Value::Int(int),
            (None, Some(uint)) => Value::UInt(uint),
            _ => Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(text) => Value::String(Arc::new(text.clone())),
        serde_json::Value::Array(items) => Value::List(Arc::new(items.iter().map(from_json).collect())),
        serde_json::Value::Object(fields) => map(fields.iter().map(|(key, value)| (key.as_str(), from_json(value)))),
    }
}

/// A CEL map with string keys.
pub fn map<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    let map: HashMap<Key, Value> =
        entries.into_iter().map(|(key, value)| (Key::String(Arc::new(key.to_owned())), value)).collect();
    Value::Map(Map { map: Arc::new(map) })
}

/// A CEL string.
pub fn string(text: &str) -> Value {
    Value::String(Arc::new(text.to_owned()))
}

/// The object as CEL sees it (with `apiVersion` and `kind`, without `status`
/// and `metadata.managedFields`, which portcullis does not keep): a Service or
/// Ingress from its typed object, any other kind from its JSON as received
/// (`json`; its typed object is lean); `null` without either.
pub fn object_value(object: &Object, json: Option<&str>) -> Value {
    // A typed object straight into CEL's values (no JSON tree in between).
    let typed = match object {
        Object::Service(service) => Some(kube_cel::cel::to_value(service.as_ref())),
        Object::Ingress(ingress) => Some(kube_cel::cel::to_value(ingress.as_ref())),
        _ => None,
    };
    if let Some(value) = typed {
        return value.unwrap_or(Value::Null);
    }
    let json = match (object, json) {
        (Object::Service(_) | Object::Ingress(_), _) => return Value::Null,
        // An object of a lean kind that does not fit its type still has its JSON.
        (Object::Other, _) | (_, None) => return Value::Null,
        (_, Some(json)) => serde_json::from_str::<serde_json::Value>(json).map(|mut json| {
            if let Some(fields) = json.as_object_mut() {
                fields.remove("status");
                if let Some(metadata) = fields.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
                    metadata.remove("managedFields");
                }
            }
            json
        }),
    };
    json.map_or(Value::Null, |json| from_json(&json))
}
