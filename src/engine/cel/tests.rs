use super::*;
use crate::engine::Object;

fn evaluate(source: &str) -> Evaluated {
    let expression = Expression::compile(source).expect("compiles");
    let list = Value::List(Arc::new((0..1000).map(Value::Int).collect()));
    let object = map([("spec", map([("items", list)]))]);
    Evaluation::new(object, Value::Null, Value::Null, Value::Null).run(|session| session.evaluate(&expression))
}

#[test]
fn a_comprehension_within_the_budget_runs_to_its_end() {
    assert_eq!(evaluate("object.spec.items.all(i, i < 1000)"), Evaluated::Value(Value::Bool(true)));
    assert_eq!(evaluate("object.spec.items.map(i, i * 2)[999]"), Evaluated::Value(Value::Int(1998)));
}

#[test]
fn nested_comprehensions_over_a_large_list_are_cut_off() {
    // 10^9 steps unbounded (minutes); cut off after STEP_LIMIT.
    let started = std::time::Instant::now();
    let result =
        evaluate("object.spec.items.all(a, object.spec.items.all(b, object.spec.items.all(c, a + b + c >= 0)))");
    assert_eq!(result, Evaluated::CostExceeded(Limit::Rule));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn an_exceeded_budget_is_not_hidden_by_a_short_circuit() {
    let source = "object.spec.items.exists(a, object.spec.items.exists(b, object.spec.items.exists(c, a + b + c < 0))) \
                  || true";
    assert_eq!(evaluate(source), Evaluated::CostExceeded(Limit::Rule));
}

#[test]
fn a_list_built_quadratically_is_charged_by_its_size() {
    assert_eq!(
        evaluate("object.spec.items.map(a, object.spec.items.map(b, object.spec.items)).size() > 0"),
        Evaluated::CostExceeded(Limit::Rule)
    );
}

#[test]
fn what_the_interpreter_cannot_evaluate_is_a_compile_error() {
    let error = Expression::compile("object.spec == google.protobuf.Struct{}").unwrap_err();
    assert_eq!(error.message, "message construction (google.protobuf.Struct{...}) is not supported");
    assert_eq!(error.column, 16);
    let error = Expression::compile("params.x == 1").unwrap_err();
    assert_eq!(
        error,
        CompileError {
            line: 1,
            column: 1,
            message:
                "`params` is not available in portcullis (variables: object, oldObject, request, namespaceObject, \
                      variables)"
                    .into()
        }
    );
    let error = Expression::compile("true &&\n  objct.x").unwrap_err();
    assert_eq!((error.line, error.column), (2, 3));
    assert_eq!(error.to_string(), format!("line 2, column 3: {}", error.message));
}

#[test]
fn comprehension_variables_are_in_scope_only_inside() {
    assert!(Expression::compile("object.spec.items.all(i, i > 0)").is_ok());
    assert_eq!(
        Expression::compile("object.spec.items.all(i, i > 0) && i > 0").unwrap_err().message,
        "undeclared reference to `i` (variables: object, oldObject, request, namespaceObject, variables)"
    );
}

#[test]
fn typed_objects_reach_cel_as_their_json_would() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1.32");
    let mut compared = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "json") {
            continue;
        }
        let review: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (object, kind) = (&review["request"]["object"], &review["request"]["kind"]["kind"]);
        let kind = match kind.as_str() {
            Some("Service") => crate::engine::Kind::Service,
            Some("Ingress") => crate::engine::Kind::Ingress,
            _ => continue,
        };
        if object.is_null() {
            continue;
        }
        let parsed = Object::from_json(kind, &object.to_string());
        let json = match &parsed {
            Object::Service(service) => serde_json::to_value(service.as_ref()).unwrap(),
            Object::Ingress(ingress) => serde_json::to_value(ingress.as_ref()).unwrap(),
            other => panic!("{}: {other:?}", path.display()),
        };
        assert_eq!(object_value(&parsed, None), from_json(&json), "{}", path.display());
        compared += 1;
    }
    assert!(compared >= 20, "{compared}");
}

#[test]
fn replace_and_join_are_charged_for_what_they_would_build() {
    // 10,000 characters with an empty pattern: 10,001 copies of 10,000
    // characters (100 MB) would be built; the charge refuses it first.
    let source =
        "'x'.replace('', 'y') == 'yxy' && ['a', 'b'].join('-') == 'a-b' && 'aaa'.replace('a', 'b', 2) == 'bba'";
    assert_eq!(evaluate(source), Evaluated::Value(Value::Bool(true)));
    let huge = "object.spec.items.map(i, 'abcdefghij').join('').replace('', object.spec.items.map(i, 'abcdefghij').join('')).size() > 0";
    assert_eq!(evaluate(huge), Evaluated::CostExceeded(Limit::Rule));
    let joined = "object.spec.items.join(object.spec.items.map(i, 'abcdefghijklmnopqrstuvwxyz').join('')).size() > 0";
    assert_eq!(evaluate(joined), Evaluated::CostExceeded(Limit::Rule));
}

#[test]
fn the_rules_of_one_review_share_its_budget() {
    // 3,001 steps each: per item, one step and the two arguments of `<`; and the result.
    let source = "object.spec.items.all(i, i < 1000)";
    let _review = ReviewBudget::of(7_500);
    assert_eq!(evaluate(source), Evaluated::Value(Value::Bool(true)));
    assert_eq!(evaluate(source), Evaluated::Value(Value::Bool(true)));
    assert_eq!(evaluate(source), Evaluated::CostExceeded(Limit::Review));
    // Spent: a later rule fails closed at its first step.
    assert_eq!(evaluate("1 + 1 == 2"), Evaluated::CostExceeded(Limit::Review));
}

#[test]
fn outside_a_review_only_the_rules_own_budget_counts() {
    {
        let _review = ReviewBudget::of(10);
        assert_eq!(evaluate("object.spec.items.all(i, i < 1000)"), Evaluated::CostExceeded(Limit::Review));
    }
    for _ in 0..3 {
        assert_eq!(evaluate("object.spec.items.all(i, i < 1000)"), Evaluated::Value(Value::Bool(true)));
    }
}

#[test]
fn an_abandoned_review_stops_at_its_next_step() {
    let cancelled = Arc::new(AtomicBool::new(false));
    let source = "object.spec.items.all(i, i < 1000)";
    let result = ReviewBudget::cancelled_by(cancelled.clone(), || evaluate(source));
    assert_eq!(result, Evaluated::Value(Value::Bool(true)));
    cancelled.store(true, Ordering::Relaxed);
    let result = ReviewBudget::cancelled_by(cancelled, || evaluate(source));
    assert_eq!(result, Evaluated::CostExceeded(Limit::Review));
    // Only within: afterwards the thread's reviews run again.
    assert_eq!(evaluate(source), Evaluated::Value(Value::Bool(true)));
}
