//! A JSON Schema check for the documented output schemas, without a
//! validator dependency.

use serde_json::{Value, json};

/// Where `value` breaks `schema`. Knows only the JSON Schema keywords
/// the documented output schemas (docs/*-output.schema.json) use, and panics on any other, so a keyword
/// added to the schema cannot go unchecked.
pub fn schema_errors(schema: &Value, value: &Value) -> Vec<String> {
    fn walk(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let object = value.as_object();
        for (keyword, rule) in schema.as_object().expect("a schema is an object") {
            let ok = match keyword.as_str() {
                "$schema" | "$id" | "title" | "description" => true,
                "type" => {
                    let actual = match value {
                        Value::Null => "null",
                        Value::Bool(_) => "boolean",
                        Value::Number(n) if n.as_f64().is_some_and(|n| n.fract() == 0.0) => "integer",
                        Value::Number(_) => "number",
                        Value::String(_) => "string",
                        Value::Array(_) => "array",
                        Value::Object(_) => "object",
                    };
                    let allowed = rule.as_array().map_or_else(|| vec![rule], |types| types.iter().collect());
                    allowed.iter().any(|t| *t == actual || (*t == "number" && actual == "integer"))
                }
                "const" => value == rule,
                "enum" => rule.as_array().unwrap().contains(value),
                "minimum" => value.as_f64().is_none_or(|n| n >= rule.as_f64().unwrap()),
                "required" => {
                    object.is_none_or(|o| rule.as_array().unwrap().iter().all(|k| o.contains_key(k.as_str().unwrap())))
                }
                "additionalProperties" => {
                    assert_eq!(rule, &json!(false), "only additionalProperties: false is supported");
                    let known = schema["properties"].as_object();
                    object.is_none_or(|o| o.keys().all(|k| known.is_some_and(|known| known.contains_key(k))))
                }
                "properties" => {
                    for (key, property) in rule.as_object().unwrap() {
                        if let Some(v) = object.and_then(|o| o.get(key)) {
                            walk(property, v, &format!("{at}/{key}"), errors);
                        }
                    }
                    true
                }
                "items" => {
                    for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                        walk(rule, item, &format!("{at}/{i}"), errors);
                    }
                    true
                }
                other => panic!("schema keyword {other:?} at {at} is not supported by this check"),
            };
            if !ok {
                errors.push(format!("{at}: {value} fails {keyword}: {rule}"));
            }
        }
    }
    let mut errors = Vec::new();
    walk(schema, value, "", &mut errors);
    errors
}
