//! `cel`: a rule written in CEL, with the variables of a Kubernetes
//! ValidatingAdmissionPolicy (`object`, `oldObject`, `request`,
//! `namespaceObject`, `variables`) and the Kubernetes CEL libraries.
//!
//! ```yaml
//! rule:
//!   cel:
//!     variables:
//!       - name: hosts
//!         expression: "object.spec.rules.map(r, r.host)"
//!     validations:
//!       - expression: "variables.hosts.all(h, h.endsWith('.example.com'))"
//!         message: "Ingress hosts must be under example.com"
//! ```
//!
//! Expressions are compiled when the policy is loaded; evaluation is bounded
//! by [`crate::engine::cel::STEP_LIMIT`] steps and fails closed: an
//! expression that cannot be evaluated, or that runs out of steps, is a
//! failed validation.

use serde::Deserialize;

use crate::engine::Finding;
use crate::engine::cel::{self, Evaluated, Evaluation, Expression, Limit, ReviewBudget, STEP_LIMIT, Session};
use crate::engine::input::{NamespaceLabels, Operation};
use crate::engine::object::Kind;

use super::Subject;
use cel::{map, string};
use kube_cel::cel::Value;
use kube_cel::cel::objects::Key;

/// The rule's parameters, compiled.
#[derive(Debug, Deserialize)]
#[serde(try_from = "CelSpec")]
pub struct Cel {
    pub variables: Vec<Variable>,
    pub validations: Vec<Validation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CelSpec {
    #[serde(default)]
    variables: Vec<Variable>,
    validations: Vec<Validation>,
}

/// A named expression, read by later ones as `variables.<name>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Variable {
    pub name: String,
    pub expression: Compiled,
}

/// An expression that must be true, and what to say when it is not.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Validation {
    pub expression: Compiled,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub message_expression: Option<Compiled>,
}

/// An expression compiled while the policy is read: a syntax error or a name
/// that cannot resolve is a load error on the field, with its column.
#[derive(Debug)]
pub struct Compiled(pub Expression);

impl<'de> Deserialize<'de> for Compiled {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Expression::compile(&source)
            .map(Compiled)
            .map_err(|error| serde::de::Error::custom(format!("cannot compile `{}`: {error}", source.trim())))
    }
}

impl TryFrom<CelSpec> for Cel {
    type Error = String;

    fn try_from(spec: CelSpec) -> Result<Cel, String> {
        if spec.validations.is_empty() {
            return Err("validations: at least one validation is required".into());
        }
        let mut declared: Vec<&str> = Vec::new();
        let unknown = |expression: &Expression, declared: &[&str], field: String| -> Result<(), String> {
            match expression.variables().iter().find(|name| !declared.contains(&name.as_str())) {
                Some(name) => {
                    let (line, column) = expression.position_of_variable(name);
                    let at =
                        if line > 1 { format!("line {line}, column {column}") } else { format!("column {column}") };
                    let known = if declared.is_empty() { "none".to_owned() } else { declared.join(", ") };
                    Err(format!(
                        "{field}: cannot compile `{}`: {at}: no variable `{name}` is declared before it (declared: {known})",
                        expression.source().trim()
                    ))
                }
                None => Ok(()),
            }
        };
        for (index, variable) in spec.variables.iter().enumerate() {
            let name = variable.name.as_str();
            let identifier = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !identifier {
                return Err(format!("variables[{index}].name: {name:?} is not a CEL identifier"));
            }
            if declared.contains(&name) {
                return Err(format!("variables[{index}].name: {name:?} is declared twice"));
            }
            unknown(&variable.expression.0, &declared, format!("variables[{index}].expression"))?;
            declared.push(name);
        }
        for (index, validation) in spec.validations.iter().enumerate() {
            unknown(&validation.expression.0, &declared, format!("validations[{index}].expression"))?;
            if let Some(message) = &validation.message_expression {
                unknown(&message.0, &declared, format!("validations[{index}].messageExpression"))?;
            }
            if validation.message.as_deref().is_some_and(|m| m.contains('\n')) {
                return Err(format!("validations[{index}].message: a message is one line"));
            }
        }
        Ok(Cel { variables: spec.variables, validations: spec.validations })
    }
}

/// The text of a failure the evaluation was cut off by.
fn cost_exceeded(limit: Limit, what: &str) -> String {
    match limit {
        Limit::Rule => format!(
            "the CEL rule exceeded its cost limit of {STEP_LIMIT} steps at {what} and counts as failed; \
             simplify the expression"
        ),
        Limit::Review => format!(
            "the CEL rules judging this object exceeded their shared cost limit of {} steps at {what}, and this \
             rule counts as failed; simplify the costliest expressions",
            ReviewBudget::limit()
        ),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Cel {
    /// Evaluates the variables in order, then each validation; never panics.
    pub fn check(&self, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        activation(subject).run(|session| self.check_in(session, findings));
    }

    fn check_in(&self, evaluation: &mut Session<'_>, findings: &mut Vec<Finding>) {
        for variable in &self.variables {
            let error = match evaluation.evaluate(&variable.expression.0) {
                Evaluated::Value(value) => match evaluation.declare(&variable.name, value) {
                    Ok(()) => continue,
                    Err(error) => error,
                },
                Evaluated::Error(error) => error,
                Evaluated::CostExceeded(limit) => {
                    let text = cost_exceeded(limit, &format!("variable {}", variable.name));
                    findings.push(Finding::Cel { text, validation: None, cost_exceeded: true });
                    return;
                }
            };
            findings.push(Finding::Cel {
                text: format!(
                    "variable {} (`{}`) cannot be evaluated: {}; correct the object or the policy",
                    variable.name,
                    one_line(variable.expression.0.source()),
                    one_line(&error)
                ),
                validation: None,
                cost_exceeded: false,
            });
            return;
        }
        for (index, validation) in self.validations.iter().enumerate() {
            let expression = &validation.expression.0;
            let text = match evaluation.evaluate(expression) {
                Evaluated::Value(Value::Bool(true)) => continue,
                Evaluated::Value(Value::Bool(false)) => self.message(index, evaluation),
                Evaluated::Value(other) => format!(
                    "validation {index} (`{}`) evaluated to {} instead of a bool; correct the policy",
                    one_line(expression.source()),
                    other.type_of()
                ),
                Evaluated::Error(error) => format!(
                    "validation {index} (`{}`) cannot be evaluated: {}; correct the object or the policy",
                    one_line(expression.source()),
                    one_line(&error)
                ),
                Evaluated::CostExceeded(limit) => {
                    let text = cost_exceeded(limit, &format!("validation {index}"));
                    findings.push(Finding::Cel { text, validation: Some(index), cost_exceeded: true });
                    return;
                }
            };
            findings.push(Finding::Cel { text, validation: Some(index), cost_exceeded: false });
        }
    }

    /// The message of a failed validation: its `messageExpression` when that
    /// gives a non-empty string, else `message`, else the expression, as the
    /// API server does.
    fn message(&self, index: usize, evaluation: &Session<'_>) -> String {
        let validation = &self.validations[index];
        if let Some(expression) = &validation.message_expression
            && let Evaluated::Value(Value::String(text)) = evaluation.evaluate(&expression.0)
            && !text.trim().is_empty()
        {
            return one_line(&text);
        }
        match &validation.message {
            Some(message) if !message.trim().is_empty() => message.trim().to_owned(),
            _ => format!("failed expression: {}", one_line(validation.expression.0.source())),
        }
    }
}

/// The variables of a VAP expression for this subject: the object is the
/// request's (or, when the engine looks for violations an UPDATE's old object
/// already had, that old object, with `oldObject` null).
fn activation(subject: &Subject<'_>) -> Evaluation {
    let Some(request) = subject.request else {
        let object = cel::object_value(subject.object, None);
        return Evaluation::new(object, Value::Null, Value::Null, namespace_object(subject.namespace, None));
    };
    let input = request.input;
    let current = input.object.is_some_and(|object| std::ptr::eq(object, subject.object));
    let json = if current { input.object_json } else { input.old_object_json };
    let object = cel::object_value(subject.object, json);
    let old_object = match input.old_object {
        Some(old) if current && input.operation == Operation::Update => cel::object_value(old, input.old_object_json),
        _ => Value::Null,
    };
    let (group, kind) = (input.kind.group(), input.kind.as_str());
    let version = match (input.kind, &object) {
        (Kind::Service | Kind::Ingress, _) => "v1",
        // The version of the object's `apiVersion` (`<group>/<version>`).
        (_, Value::Map(fields)) => match fields.map.get(&Key::String(std::sync::Arc::new("apiVersion".to_owned()))) {
            Some(Value::String(api_version)) => api_version.rsplit('/').next().unwrap_or_default(),
            _ => "",
        },
        _ => "",
    };
    let groups = Value::List(std::sync::Arc::new(input.user.groups.iter().map(|g| string(g)).collect()));
    // The object's own name, as the API server's `request.name`: empty for a
    // CREATE with only `generateName` (portcullis's messages name that one
    // by its prefix).
    let name = subject.object.metadata().and_then(|metadata| metadata.name.as_deref());
    let request_value = map([
        ("kind", map([("group", string(group)), ("version", string(version)), ("kind", string(kind))])),
        (
            "resource",
            map([("group", string(group)), ("version", string(version)), ("resource", string(input.kind.resource()))]),
        ),
        ("name", string(name.unwrap_or_default())),
        ("namespace", string(input.namespace)),
        ("operation", string(input.operation.as_str())),
        ("userInfo", map([("username", string(input.user.username)), ("groups", groups)])),
        ("dryRun", Value::Bool(input.dry_run)),
    ]);
    let labels = match request.labels {
        NamespaceLabels::Known(labels) => Some(labels),
        NamespaceLabels::Unknown => None,
    };
    Evaluation::new(object, old_object, request_value, namespace_object(input.namespace, labels))
}

/// `namespaceObject`: the Namespace's name and, when known, its labels. When
/// the labels are unknown (the namespace cache has not seen it) there is no
/// `metadata.labels`, so an expression that reads them cannot be evaluated
/// and fails closed, and `has(namespaceObject.metadata.labels)` is false.
fn namespace_object(name: &str, labels: Option<&std::collections::BTreeMap<String, String>>) -> Value {
    let mut metadata = vec![("name", string(name))];
    if let Some(labels) = labels {
        metadata.push(("labels", map(labels.iter().map(|(k, v)| (k.as_str(), string(v))))));
    }
    map([("apiVersion", string("v1")), ("kind", string("Namespace")), ("metadata", map(metadata))])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, rule, service};
    use super::*;
    use crate::engine::Object;
    use serde_json::json;

    fn cel(validations: serde_json::Value) -> super::super::Rule {
        rule(json!({"cel": {"validations": validations}}))
    }

    fn load_balancer(labels: serde_json::Value) -> Object {
        service(json!({"metadata": {"name": "lb", "labels": labels}, "spec": {"type": "LoadBalancer"}}))
    }

    fn failed(text: &str, validation: Option<usize>) -> Finding {
        Finding::Cel { text: text.into(), validation, cost_exceeded: false }
    }

    #[test]
    fn a_false_validation_says_its_message_and_a_true_one_nothing() {
        let rule = cel(json!([{"expression": "object.spec.type != 'LoadBalancer' || \
                                               has(object.metadata.labels) && 'cost-center' in object.metadata.labels",
                                "message": "LoadBalancers need a cost-center label"}]));
        assert_eq!(
            check(&rule, &load_balancer(json!({}))),
            [failed("LoadBalancers need a cost-center label", Some(0))]
        );
        assert_eq!(check(&rule, &load_balancer(json!({"cost-center": "42"}))), []);
    }

    #[test]
    fn without_a_message_the_failed_expression_is_named() {
        let rule = cel(json!([{"expression": "1 == 2"}]));
        assert_eq!(check(&rule, &load_balancer(json!({}))), [failed("failed expression: 1 == 2", Some(0))]);
    }

    #[test]
    fn an_expression_that_cannot_be_evaluated_fails_closed() {
        let rule = cel(json!([{"expression": "object.spec.missing == 'x'", "message": "m"}]));
        assert_eq!(
            check(&rule, &load_balancer(json!({}))),
            [failed(
                "validation 0 (`object.spec.missing == 'x'`) cannot be evaluated: No such key: missing; \
                 correct the object or the policy",
                Some(0)
            )]
        );
        let rule = cel(json!([{"expression": "object.metadata.name"}]));
        assert_eq!(
            check(&rule, &load_balancer(json!({}))),
            [failed(
                "validation 0 (`object.metadata.name`) evaluated to string instead of a bool; correct the policy",
                Some(0)
            )]
        );
    }

    #[test]
    fn a_rule_run_after_the_reviews_budget_is_spent_fails_closed_saying_so() {
        let rule = cel(json!([{"expression": "1 + 1 == 2", "message": "m"}]));
        assert_eq!(check(&rule, &load_balancer(json!({}))), []);
        let _review = cel::ReviewBudget::of(3);
        assert_eq!(
            check(&rule, &load_balancer(json!({}))),
            [Finding::Cel {
                text: "the CEL rules judging this object exceeded their shared cost limit of 3 steps at \
                       validation 0, and this rule counts as failed; simplify the costliest expressions"
                    .into(),
                validation: Some(0),
                cost_exceeded: true
            }]
        );
    }

    #[test]
    fn variables_are_declared_before_use_and_checked_at_load() {
        let error = serde_json::from_value::<super::super::Rule>(json!({"cel": {
            "variables": [{"name": "a", "expression": "variables.b"}, {"name": "b", "expression": "1"}],
            "validations": [{"expression": "true"}]}}))
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "variables[0].expression: cannot compile `variables.b`: column 1: no variable `b` is declared before it \
             (declared: none)"
        );
    }

    #[test]
    fn a_variable_read_by_index_is_checked_at_load_too() {
        let error = serde_json::from_value::<super::super::Rule>(json!({"cel": {
            "variables": [{"name": "a", "expression": "1"}],
            "validations": [{"expression": "variables.a == 1 && variables['b'] == 2"}]}}))
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "validations[0].expression: cannot compile `variables.a == 1 && variables['b'] == 2`: column 21: no \
             variable `b` is declared before it (declared: a)"
        );
        let rule = rule(json!({"cel": {"variables": [{"name": "a", "expression": "1"}],
                                       "validations": [{"expression": "variables['a'] == 1"}]}}));
        assert_eq!(check(&rule, &load_balancer(json!({}))), []);
    }

    #[test]
    fn a_syntax_error_names_the_column() {
        let error = serde_json::from_value::<super::super::Rule>(json!({"cel": {
            "validations": [{"expression": "object.spec.type == "}]}}))
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("cannot compile `object.spec.type ==`: column "), "{error}");
        let error = serde_json::from_value::<super::super::Rule>(json!({"cel": {
            "validations": [{"expression": "objekt.spec.type == 'x'"}]}}))
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "cannot compile `objekt.spec.type == 'x'`: column 1: undeclared reference to `objekt` \
             (variables: object, oldObject, request, namespaceObject, variables)"
        );
    }
}
