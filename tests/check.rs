//! `portcullis check`, run as a binary on fixture manifests.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{bundled, repo};
use serde_json::{Value, json};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .args(args)
        .current_dir(repo(""))
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

const DIR: &str = "tests/fixtures/check";
const NODEPORT: &str =
    "type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS";
const NO_ALLOW_LIST: &str = "no source allow-list, so any client can reach it; set nginx.ingress.kubernetes.io/whitelist-source-range to the client CIDRs";
const NO_AUTH: &str = "no authentication for the nginx controller; set nginx.ingress.kubernetes.io/auth-url, auth-type+auth-secret or auth-tls-secret, or portcullis.dev/auth: application";

#[test]
fn reports_a_multi_document_file_grouped_with_document_indexes() {
    let run = check(&[&format!("{DIR}/multi.yaml")], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "{DIR}/multi.yaml\n\
             \x20 document 2 (line 9): Service shop/web\n\
             \x20   error   [no-nodeport-in-production] Service shop/web: {NODEPORT}\n\
             \x20 document 4 (line 30): Ingress staging/web\n\
             \x20   warning [ingress-source-allow-list] Ingress staging/web: {NO_ALLOW_LIST}\n\
             \x20   warning [warn-ingress-auth] Ingress staging/web: {NO_AUTH}\n\
             \x20   fix     [https-redirect] would add annotation nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\" (--fix applies it)\n\
             2 objects, 1 denied, 1 warned\n"
        )
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn walks_a_directory_tree_for_yaml_and_json() {
    let run = check(&["-o", "json", &format!("{DIR}/tree")], None);
    assert_eq!(run.code, 1);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let files: Vec<&str> = report["results"].as_array().unwrap().iter().map(|r| r["file"].as_str().unwrap()).collect();
    assert_eq!(files, [format!("{DIR}/tree/ingresses/plain.json"), format!("{DIR}/tree/services/nodeport.yaml")]);
    assert_eq!(report["summary"], json!({"objects": 2, "denied": 1, "warned": 1, "mutated": 0}));
}

#[test]
fn reads_standard_input_with_namespace_and_labels_from_flags() {
    let manifest = std::fs::read_to_string(repo(DIR).join("tree/services/nodeport.yaml")).unwrap();
    let plain = check(&[], Some(&manifest));
    assert_eq!((plain.code, plain.stdout.as_str()), (0, "1 objects, 0 denied, 0 warned\n"));
    let labelled =
        check(&["--namespace", "payments", "--namespace-labels", &format!("{DIR}/labels.yaml"), "-"], Some(&manifest));
    assert_eq!(labelled.code, 1);
    assert_eq!(
        labelled.stdout,
        format!(
            "-\n  document 1 (line 1): Service payments/debug\n    error   [no-nodeport-in-production] Service payments/debug: {NODEPORT}\n1 objects, 1 denied, 0 warned\n"
        )
    );
}

#[test]
fn evaluates_the_items_of_a_list() {
    let run = check(&["-o", "json", &format!("{DIR}/list.yaml")], None);
    assert_eq!(run.code, 1);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!((results[0]["item"].clone(), results[0]["allowed"].clone()), (json!(1), json!(true)));
    assert_eq!(results[1]["item"], 2);
    assert_eq!(
        results[1]["findings"],
        json!([{"severity": "deny", "policy": "no-external-ips",
                "message": "[no-external-ips] Service prod-eu/legacy: spec.externalIPs 203.0.113.9 can intercept cluster traffic (CVE-2020-8554); remove spec.externalIPs and expose the Service through an Ingress"}])
    );
}

/// Where `value` breaks `schema`. Knows only the JSON Schema keywords
/// docs/check-output.schema.json uses, and panics on any other, so a keyword
/// added to the schema cannot go unchecked.
fn schema_errors(schema: &Value, value: &Value) -> Vec<String> {
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

#[test]
fn json_output_follows_the_documented_schema() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("docs/check-output.schema.json")).unwrap()).unwrap();
    for file in ["multi.yaml", "list.yaml", "clean.yaml", "warn-only.yaml", "tree"] {
        let run = check(&["--output", "json", &format!("{DIR}/{file}")], None);
        let report: Value = serde_json::from_str(&run.stdout).unwrap();
        let errors = schema_errors(&schema, &report);
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
    // The schema rejects what it does not describe, so the check above can fail.
    assert!(!schema_errors(&schema, &json!({"version": 1, "summary": {}, "results": []})).is_empty());
    let multi: Value =
        serde_json::from_str(&check(&["-o", "json", &format!("{DIR}/multi.yaml")], None).stdout).unwrap();
    assert_eq!(
        multi["results"][1]["patch"],
        json!([{"op": "add", "path": "/metadata/annotations", "value": {}},
               {"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect", "value": "true"}])
    );
}

#[test]
fn sarif_names_rules_and_locations() {
    let run = check(&["-o", "sarif", &format!("{DIR}/multi.yaml")], None);
    assert_eq!(run.code, 1);
    let sarif: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let driver = &sarif["runs"][0]["tool"]["driver"];
    let rule_ids: Vec<&str> = driver["rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    let policies: Vec<String> = bundled().policies().iter().map(|p| p.name().to_owned()).collect();
    assert_eq!(rule_ids, policies);
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let summary: Vec<(&str, &str, i64, &str)> = results
        .iter()
        .map(|r| {
            (
                r["ruleId"].as_str().unwrap(),
                r["level"].as_str().unwrap(),
                r["locations"][0]["physicalLocation"]["region"]["startLine"].as_i64().unwrap(),
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().unwrap(),
            )
        })
        .collect();
    let uri = "tests/fixtures/check/multi.yaml";
    assert_eq!(
        summary,
        [
            ("no-nodeport-in-production", "error", 9, uri),
            ("ingress-source-allow-list", "warning", 30, uri),
            ("warn-ingress-auth", "warning", 30, uri),
            ("https-redirect", "note", 30, uri),
        ]
    );
    for result in results {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rule_ids[index], result["ruleId"]);
    }
}

#[test]
fn exit_codes_distinguish_clean_warned_denied_and_errors() {
    assert_eq!(check(&[&format!("{DIR}/clean.yaml")], None).code, 0);
    assert_eq!(check(&[&format!("{DIR}/warn-only.yaml")], None).code, 0);
    assert_eq!(check(&[&format!("{DIR}/multi.yaml")], None).code, 1);

    let broken = check(&[&format!("{DIR}/broken.yaml")], None);
    assert_eq!(
        (broken.code, broken.stderr.as_str(), broken.stdout.as_str()),
        (2, "portcullis check: tests/fixtures/check/broken.yaml:10: illegal placement of ':' indicator\n", "")
    );
    let missing = check(&["no/such/file.yaml"], None);
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (2, "portcullis check: no/such/file.yaml: No such file or directory (os error 2)\n")
    );
    let bad_policies = check(&["--policies", "no/such/dir", &format!("{DIR}/clean.yaml")], None);
    assert_eq!(bad_policies.code, 2);
    assert_eq!(check(&["--output", "xml"], None).code, 2, "usage errors exit 2");
}

#[test]
fn fix_patches_only_what_needs_it_and_a_second_check_finds_nothing_to_fix() {
    let original = std::fs::read_to_string(repo(DIR).join("multi.yaml")).unwrap();
    let fixed = check(&["--fix", &format!("{DIR}/multi.yaml")], None);
    assert_eq!(fixed.code, 1, "the NodePort still needs a human");
    assert!(fixed.stderr.ends_with("2 objects, 1 denied, 1 warned\n"), "{}", fixed.stderr);
    assert!(!fixed.stderr.contains("would add"), "{}", fixed.stderr);

    // Unrelated documents (and the one the fix does not touch) are byte-identical.
    let before: Vec<&str> = original.split("\n---\n").collect();
    let after: Vec<&str> = fixed.stdout.split("\n---\n").collect();
    assert_eq!(after.len(), 4);
    assert_eq!(after[..3], before[..3]);
    assert!(after[3].contains("  annotations:\n    nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"\n"));

    let again = check(&["-o", "json", "-"], Some(&fixed.stdout));
    let report: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report["summary"]["mutated"], 0, "no mutation left: {report}");
    assert_eq!(report["summary"]["denied"], 1);
}

#[test]
fn fix_write_rewrites_files_in_place() {
    let dir = std::env::temp_dir().join(format!("portcullis-fix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("multi.yaml");
    std::fs::copy(repo(DIR).join("multi.yaml"), &file).unwrap();
    let clean = dir.join("clean.yaml");
    std::fs::copy(repo(DIR).join("clean.yaml"), &clean).unwrap();
    let run = check(&["--fix", "--write", file.to_str().unwrap(), clean.to_str().unwrap()], None);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    let rewritten = std::fs::read_to_string(&file).unwrap();
    assert!(rewritten.contains("nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\""));
    assert_eq!(
        std::fs::read_to_string(&clean).unwrap(),
        std::fs::read_to_string(repo(DIR).join("clean.yaml")).unwrap()
    );
    let again = check(&["-o", "json", file.to_str().unwrap()], None);
    let report: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report["summary"]["mutated"], 0);
}

/// One engine, no drift: `check` and `/validate` say the same about the same object.
#[tokio::test]
async fn check_and_the_webhook_agree() {
    use tower::ServiceExt;
    let router = portcullis::webhook::webhook_router(portcullis::webhook::AppState::new(bundled()));
    for file in ["tree/ingresses/plain.json", "list.yaml", "warn-only.yaml"] {
        let report: Value =
            serde_json::from_str(&check(&["-o", "json", &format!("{DIR}/{file}")], None).stdout).unwrap();
        let text = std::fs::read_to_string(repo(DIR).join(file)).unwrap();
        let document: Value = serde_saphyr::from_str(&text).unwrap();
        let objects: Vec<Value> = match document["kind"].as_str() {
            Some("List") => document["items"].as_array().unwrap().clone(),
            _ => vec![document],
        };
        for (object, result) in objects.into_iter().zip(report["results"].as_array().unwrap()) {
            let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default").to_owned();
            let body = common::review("CREATE", &namespace, object, None);
            let request = axum::http::Request::post("/validate")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
            let webhook: Value = serde_json::from_slice(&bytes).unwrap();
            let response = &webhook["response"];
            assert_eq!(response["allowed"], result["allowed"], "{file}");
            let denials: Vec<&str> = result["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["severity"] == "deny")
                .map(|f| f["message"].as_str().unwrap())
                .collect();
            assert_eq!(response["status"]["message"].as_str().unwrap_or(""), denials.join("\n"), "{file}");
            let warnings: Vec<Value> = result["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["severity"] == "warn")
                .map(|f| f["message"].clone())
                .collect();
            // The webhook leaves the advice out of a denial; check reports it all.
            let sent = if response["allowed"] == true { warnings } else { vec![] };
            assert_eq!(response.get("warnings").cloned().unwrap_or(json!([])), json!(sent), "{file}");
        }
    }
}
