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
fn judges_routes_against_the_gateway_in_the_same_file() {
    const ROUTE_AUTH: &str = "no authentication the Gateway enforces; add an ExternalAuth filter, an approved \
                              Middleware ExtensionRef or a SecurityPolicy/AuthPolicy on the route or its Gateway, or \
                              portcullis.dev/auth: application";
    let run = check(&[&format!("{DIR}/gateway.yaml")], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "{DIR}/gateway.yaml\n\
             \x20 document 3 (line 41): HTTPRoute shop/web\n\
             \x20   warning [warn-gateway-auth] HTTPRoute shop/web: {ROUTE_AUTH}\n\
             \x20 document 4 (line 57): HTTPRoute shop/plain\n\
             \x20   error   [require-route-tls] HTTPRoute shop/plain: attached to listener \"http\" (HTTP, port 80) of \
             Gateway shop/public, which serves plain HTTP, so requests and credentials travel unencrypted; set \
             parentRefs[0].sectionName to an HTTPS listener, or make every rule a RequestRedirect with scheme https\n\
             \x20   warning [warn-gateway-auth] HTTPRoute shop/plain: {ROUTE_AUTH}\n\
             4 objects, 1 denied, 2 warned\n"
        )
    );
    // The same route without its Gateway in the input is judged fail-safe, and told so.
    let text = std::fs::read_to_string(repo(&format!("{DIR}/gateway.yaml"))).unwrap();
    let web = text.split("\n---\n").find(|document| document.contains("name: web\n")).unwrap();
    let run = check(&["-"], Some(web));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "error   [require-route-tls] HTTPRoute shop/web: Gateway shop/public is unknown, so parentRefs[0] may \
             attach to a plain HTTP listener; apply the Gateway first, or make every rule a RequestRedirect with \
             scheme https"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn walks_a_directory_tree_for_yaml_and_json() {
    let run = check(&["-o", "json", &format!("{DIR}/tree")], None);
    assert_eq!(run.code, 1);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let files: Vec<&str> = report["results"].as_array().unwrap().iter().map(|r| r["file"].as_str().unwrap()).collect();
    assert_eq!(files, [format!("{DIR}/tree/ingresses/plain.json"), format!("{DIR}/tree/services/nodeport.yaml")]);
    assert_eq!(report["summary"], json!({"objects": 2, "denied": 1, "warned": 1, "mutated": 0, "skipped": 0}));
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
    let files = [
        "multi.yaml",
        "list.yaml",
        "clean.yaml",
        "warn-only.yaml",
        "tree",
        "broken.yaml",
        "helm-template.yaml",
        "not-manifests.yaml",
        "review-update.json",
        "gateway.yaml",
    ];
    for file in files {
        let run = check(&["--output", "json", &format!("{DIR}/{file}")], None);
        let report: Value = serde_json::from_str(&run.stdout).unwrap();
        let errors = schema_errors(&schema, &report);
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
    // The schema rejects what it does not describe, so the check above can fail.
    assert!(!schema_errors(&schema, &json!({"version": 1, "summary": {}, "results": []})).is_empty());
    let summary = json!({"objects": 0, "denied": 0, "warned": 0, "mutated": 0, "skipped": 1});
    assert_eq!(
        schema_errors(&schema, &json!({"version": 1, "summary": summary, "results": [], "skipped": []})),
        [""; 0]
    );
    let skip = |entry: Value| json!({"version": 1, "summary": summary, "results": [], "skipped": [entry]});
    let entry =
        json!({"file": "f.yaml", "document": 1, "item": null, "line": 1, "reason": "not a Kubernetes object: a list"});
    assert_eq!(schema_errors(&schema, &skip(entry.clone())), [""; 0]);
    let mut unknown_field = entry.clone();
    unknown_field["why"] = json!("?");
    assert_eq!(schema_errors(&schema, &skip(unknown_field)).len(), 1);
    let mut no_reason = entry;
    no_reason.as_object_mut().unwrap().remove("reason");
    assert_eq!(
        schema_errors(&schema, &skip(no_reason)),
        [
            r#"/skipped/0: {"file":"f.yaml","document":1,"item":null,"line":1} fails required: ["file","document","item","line","reason"]"#
        ]
    );
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

    // A document that is not valid YAML is skipped; the others are still checked.
    let broken = check(&[&format!("{DIR}/broken.yaml")], None);
    assert_eq!(
        (broken.code, broken.stdout.as_str(), broken.stderr.as_str()),
        (
            2,
            "tests/fixtures/check/broken.yaml\n  document 2 (line 6): skipped: YAML error on line 10: illegal placement of ':' indicator\n\
             1 objects, 0 denied, 0 warned, 1 skipped\n",
            SKIPPED_ONE
        )
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

const SKIPPED_ONE: &str = "portcullis check: 1 skipped, not checked (see the report); --skip-unknown accepts that\n";
const RENDER: &str = "render the chart (helm template) and check the output";

#[test]
fn reports_helm_templates_as_skipped_in_every_format() {
    let file = format!("{DIR}/helm-template.yaml");
    let text = check(&[&file], None);
    assert_eq!(
        (text.code, text.stdout.as_str(), text.stderr.as_str()),
        (
            2,
            format!(
                "{file}\n\
                 \x20 document 1 (line 2): skipped: Helm template syntax {{{{- if .Values.ingress.enabled }}}}; {RENDER}\n\
                 \x20 document 2 (line 11): skipped: Helm template syntax {{{{ .Release.Name }}}}; {RENDER}\n\
                 0 objects, 0 denied, 0 warned, 2 skipped\n"
            )
            .as_str(),
            "portcullis check: 2 skipped, not checked (see the report); --skip-unknown accepts that\n"
        )
    );

    let json: Value = serde_json::from_str(&check(&["-o", "json", &file], None).stdout).unwrap();
    assert_eq!(json["summary"], json!({"objects": 0, "denied": 0, "warned": 0, "mutated": 0, "skipped": 2}));
    assert_eq!(
        json["skipped"],
        json!([
            {"file": file, "document": 1, "item": null, "line": 2,
             "reason": format!("Helm template syntax {{{{- if .Values.ingress.enabled }}}}; {RENDER}")},
            {"file": file, "document": 2, "item": null, "line": 11,
             "reason": format!("Helm template syntax {{{{ .Release.Name }}}}; {RENDER}")},
        ])
    );

    let sarif: Value = serde_json::from_str(&check(&["-o", "sarif", &file], None).stdout).unwrap();
    let results: Vec<(&str, &str, &str, i64)> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ruleId"].as_str().unwrap(),
                r["level"].as_str().unwrap(),
                r["message"]["text"].as_str().unwrap(),
                r["locations"][0]["physicalLocation"]["region"]["startLine"].as_i64().unwrap(),
            )
        })
        .collect();
    let first = format!("document 1: skipped: Helm template syntax {{{{- if .Values.ingress.enabled }}}}; {RENDER}");
    let second = format!("document 2: skipped: Helm template syntax {{{{ .Release.Name }}}}; {RENDER}");
    assert_eq!(results, [("portcullis", "warning", first.as_str(), 2), ("portcullis", "warning", second.as_str(), 11)]);

    // --skip-unknown: still reported, but the exit code says what was checked.
    let accepted = check(&["--skip-unknown", &file], None);
    assert_eq!((accepted.code, accepted.stdout.as_str(), accepted.stderr.as_str()), (0, text.stdout.as_str(), ""));
}

#[test]
fn reports_what_is_not_a_kubernetes_object_and_checks_the_rest() {
    let file = format!("{DIR}/not-manifests.yaml");
    let run = check(&[&file], None);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            2,
            format!(
                "{file}\n\
                 \x20 document 1 (line 2): skipped: not a Kubernetes object: no apiVersion and kind\n\
                 \x20 document 2 (line 5): skipped: not a Kubernetes object: a list\n\
                 \x20 document 3, item 2 (line 8): skipped: not a Kubernetes object: no apiVersion\n\
                 1 objects, 0 denied, 0 warned, 3 skipped\n"
            )
            .as_str()
        )
    );
    // Template syntax in a kind check does not judge (a PrometheusRule's alert text) is no reason to skip.
    assert!(!run.stdout.contains("document 4"), "{}", run.stdout);

    // Skipped documents and a denial: with --skip-unknown the denial decides.
    let stdin = format!(
        "{}---\n{}",
        std::fs::read_to_string(repo(&file)).unwrap(),
        std::fs::read_to_string(repo(DIR).join("tree/services/nodeport.yaml")).unwrap()
    );
    let denied = check(&["--skip-unknown", "--namespace", "prod", "-o", "json", "-"], Some(&stdin));
    let report: Value = serde_json::from_str(&denied.stdout).unwrap();
    assert_eq!(
        (denied.code, &report["summary"]),
        (1, &json!({"objects": 2, "denied": 1, "warned": 0, "mutated": 0, "skipped": 3}))
    );
    // Without it, what could not be checked makes the result incomplete: exit 2.
    assert_eq!(check(&["--namespace", "prod", "-"], Some(&stdin)).code, 2);

    // A scalar document is no object either; an empty one is nothing at all.
    let scalar = check(&["-o", "json", "-"], Some("just text\n---\n---\n"));
    let report: Value = serde_json::from_str(&scalar.stdout).unwrap();
    assert_eq!(
        (scalar.code, &report["skipped"]),
        (
            2,
            &json!([{"file": "-", "document": 1, "item": null, "line": 1,
                     "reason": "not a Kubernetes object: a string"}])
        )
    );
}

#[test]
fn checks_an_admission_review_as_its_request() {
    let file = format!("{DIR}/review-update.json");
    let run = check(&[&file], None);
    // The request's operation: an UPDATE of an object that was already a
    // NodePort, so a warning where the CREATE of the manifest is denied.
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (
            0,
            format!(
                "{file}\n  document 1 (line 1): Service shop-prod/web (UPDATE)\n    warning \
                 [no-nodeport-in-production] Service shop-prod/web: {NODEPORT} (pre-existing, allowed for now)\n\
                 1 objects, 0 denied, 1 warned\n"
            )
            .as_str(),
            ""
        )
    );
    let report: Value = serde_json::from_str(&check(&["-o", "json", &file], None).stdout).unwrap();
    let result = &report["results"][0];
    assert_eq!(
        (&result["kind"], &result["namespace"], &result["name"], &result["operation"], &result["allowed"]),
        (&json!("Service"), &json!("shop-prod"), &json!("web"), &json!("UPDATE"), &json!(true))
    );

    // The same decision as the webhook's for that body.
    let body = std::fs::read(repo(&file)).unwrap();
    let review = portcullis::admission::Review::decode(&body).unwrap();
    let set = bundled();
    let decision = portcullis::engine::evaluate(
        &review.input(portcullis::engine::Stage::Validate),
        &set,
        portcullis::engine::NamespaceLabels::none(),
    );
    let warnings: Vec<Value> = decision.warnings(review.about(), &set).into_iter().map(Value::from).collect();
    let reported: Vec<Value> = result["findings"].as_array().unwrap().iter().map(|f| f["message"].clone()).collect();
    assert_eq!((decision.allowed(), reported), (true, warnings));

    // The request's namespace, not --namespace, when the object names none.
    let mut unplaced: Value = serde_json::from_slice(&body).unwrap();
    unplaced["request"]["object"]["metadata"].as_object_mut().unwrap().remove("namespace");
    let report: Value =
        serde_json::from_str(&check(&["--namespace", "dev", "-o", "json", "-"], Some(&unplaced.to_string())).stdout)
            .unwrap();
    assert_eq!(report["results"][0]["findings"], result["findings"]);
    assert_eq!(report["results"][0]["namespace"], "shop-prod");

    // A review the webhook could not decode is skipped, saying why.
    let mut no_uid: Value = serde_json::from_slice(&body).unwrap();
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let run = check(&["-"], Some(&no_uid.to_string()));
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (
            2,
            "-\n  document 1 (line 1): skipped: an AdmissionReview that cannot be decoded: AdmissionReview request has no uid\n\
             0 objects, 0 denied, 0 warned, 1 skipped\n",
            SKIPPED_ONE
        )
    );
}

#[test]
fn fix_patches_the_object_of_an_admission_review_and_keeps_skipped_documents() {
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
        "namespace": "dev", "operation": "CREATE",
        "object": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
                   "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"], "secretName": "a"}],
                            "rules": [{"host": "a.example.com"}]}}}});
    let input = format!("# kept\nreplicas: [1\n---\n{review}\n");
    let fixed = check(&["--fix", "--skip-unknown", "-"], Some(&input));
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    let (kept, patched) = fixed.stdout.split_once("---\n").unwrap();
    assert_eq!(kept, "# kept\nreplicas: [1\n", "a skipped document is written back byte for byte");
    let patched: Value = serde_saphyr::from_str(patched).unwrap();
    assert_eq!(
        patched["request"]["object"]["metadata"]["annotations"],
        json!({"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"})
    );
    assert_eq!(patched["metadata"], Value::Null, "the review itself is not patched");
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
