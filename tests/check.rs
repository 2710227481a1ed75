//! `portcullis check`, run as a binary on fixture manifests.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::schema::schema_errors;
use common::{bundled, repo};
use serde_json::{Value, json};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(args: &[&str], stdin: Option<&str>) -> Run {
    check_in(&repo(""), args, stdin.unwrap_or_default())
}

/// `portcullis check` run in `dir` (the repository for [`check`], where
/// `./policies` is found), without `PORTCULLIS_POLICIES`.
fn check_in(dir: &std::path::Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("PORTCULLIS_POLICIES")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
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
             \x20 document 3 (line 22): not checked: ConfigMap shop/settings (v1): no policy matches this kind\n\
             \x20 document 4 (line 30): Ingress staging/web\n\
             \x20   warning [ingress-source-allow-list] Ingress staging/web: {NO_ALLOW_LIST}\n\
             \x20   warning [warn-ingress-auth] Ingress staging/web: {NO_AUTH}\n\
             \x20   fix     [https-redirect] would add annotation nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\" (--fix applies it)\n\
             namespace staging: labels unknown, judged by name\n\
             policies: ./policies\n\
             2 objects, 1 denied, 1 warned, 1 not checked\n"
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
             namespace shop: labels unknown, judged by name\n\
             policies: ./policies\n\
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
    assert_eq!(report["summary"], json!({"objects": 2, "denied": 1, "warned": 1, "mutated": 0, "notChecked": 0}));
    assert_eq!(report["policies"], json!({"bundled": false, "directory": "policies"}));
    assert_eq!(report["labelsUnknown"], json!(["default", "dev"]));
}

#[test]
fn reads_standard_input_with_namespace_and_labels_from_flags() {
    let manifest = std::fs::read_to_string(repo(DIR).join("tree/services/nodeport.yaml")).unwrap();
    let plain = check(&[], Some(&manifest));
    assert_eq!(
        (plain.code, plain.stdout.as_str()),
        (0, "namespace default: labels unknown, judged by name\npolicies: ./policies\n1 objects, 0 denied, 0 warned\n")
    );
    let labelled =
        check(&["--namespace", "payments", "--namespace-labels", &format!("{DIR}/labels.yaml"), "-"], Some(&manifest));
    assert_eq!(labelled.code, 1);
    assert_eq!(
        labelled.stdout,
        format!(
            "-\n  document 1 (line 1): Service payments/debug\n    error   [no-nodeport-in-production] Service payments/debug: {NODEPORT}\n\
             policies: ./policies\n1 objects, 1 denied, 0 warned\n"
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

#[test]
fn json_output_follows_the_documented_schema() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("docs/check-output.schema.json")).unwrap()).unwrap();
    let files = [
        "other-kinds.yaml",
        "comments.yaml",
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
        "grpc.yaml",
    ];
    for file in files {
        let run = check(&["--output", "json", &format!("{DIR}/{file}")], None);
        let report: Value = serde_json::from_str(&run.stdout).unwrap();
        let errors = schema_errors(&schema, &report);
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
    // A whole file not checked, and the bundled policies.
    let outside = check_in(&temp_dir("schema"), &["-o", "json", "-"], "");
    let report: Value = serde_json::from_str(&outside.stdout).unwrap();
    assert_eq!(report["notChecked"][0]["document"], Value::Null);
    assert_eq!(report["policies"], json!({"bundled": true, "directory": null}));
    assert_eq!(schema_errors(&schema, &report), [""; 0]);
    // The schema rejects what it does not describe, so the check above can fail.
    assert!(!schema_errors(&schema, &json!({"version": 2, "summary": {}, "results": []})).is_empty());
    let summary = json!({"objects": 0, "denied": 0, "warned": 0, "mutated": 0, "notChecked": 1});
    let report = |entries: Vec<Value>, policies: Value| {
        json!({"version": 2, "policies": policies, "summary": summary, "results": [], "notChecked": entries,
               "labelsUnknown": ["prd"]})
    };
    let bundled = json!({"bundled": true, "directory": null});
    assert_eq!(schema_errors(&schema, &report(vec![], bundled.clone())), [""; 0]);
    assert_eq!(
        schema_errors(&schema, &report(vec![], json!({"bundled": false}))),
        [r#"/policies: {"bundled":false} fails required: ["bundled","directory"]"#]
    );
    let entry = json!({"file": "f.yaml", "document": 1, "item": null, "line": 1,
                       "reason": "not a Kubernetes object: a list", "inputError": true});
    assert_eq!(schema_errors(&schema, &report(vec![entry.clone()], bundled.clone())), [""; 0]);
    let mut unknown_field = entry.clone();
    unknown_field["why"] = json!("?");
    assert_eq!(schema_errors(&schema, &report(vec![unknown_field], bundled.clone())).len(), 1);
    let mut no_reason = entry;
    no_reason.as_object_mut().unwrap().remove("reason");
    assert_eq!(
        schema_errors(&schema, &report(vec![no_reason], bundled)),
        [
            r#"/notChecked/0: {"file":"f.yaml","document":1,"item":null,"line":1,"inputError":true} fails required: ["file","document","item","line","reason","inputError"]"#
        ]
    );
    let multi: Value =
        serde_json::from_str(&check(&["-o", "json", &format!("{DIR}/multi.yaml")], None).stdout).unwrap();
    assert_eq!(
        multi["results"][1]["patch"],
        json!([{"op": "add", "path": "/metadata/annotations", "value": {}, "policy": "https-redirect"},
               {"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect", "value": "true",
                "policy": "https-redirect"}])
    );
    // The schema requires the policy of each operation.
    let mut unowned = multi.clone();
    unowned["results"][1]["patch"][0].as_object_mut().unwrap().remove("policy");
    assert_eq!(
        schema_errors(&schema, &unowned),
        [
            r#"/results/1/patch/0: {"op":"add","path":"/metadata/annotations","value":{}} fails required: ["op","path","policy"]"#
        ]
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
            ("portcullis", "note", 22, uri),
        ]
    );
    for result in results.iter().filter(|result| result["ruleId"] != "portcullis") {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rule_ids[index], result["ruleId"]);
    }
    // What is not checked is a note (a warning for input that cannot be used);
    // the policy set and the namespaces judged by name are notes of the invocation.
    assert_eq!(
        results[4]["message"]["text"],
        "document 3: not checked: ConfigMap shop/settings (v1): no policy matches this kind"
    );
    assert_eq!(
        sarif["runs"][0]["invocations"],
        json!([{"executionSuccessful": true, "toolConfigurationNotifications": [
            {"descriptor": {"id": "policies"}, "level": "note", "message": {"text": "policies: ./policies"}},
            {"descriptor": {"id": "namespace-labels"}, "level": "note",
             "message": {"text": "namespace staging: labels unknown, judged by name"}},
        ]}])
    );
}

#[test]
fn exit_codes_distinguish_clean_warned_denied_and_errors() {
    assert_eq!(check(&[&format!("{DIR}/clean.yaml")], None).code, 0);
    assert_eq!(check(&[&format!("{DIR}/warn-only.yaml")], None).code, 0);
    assert_eq!(check(&[&format!("{DIR}/multi.yaml")], None).code, 1);

    // A document that is not valid YAML is not checked; the others are.
    let broken = check(&[&format!("{DIR}/broken.yaml")], None);
    assert_eq!(
        (broken.code, broken.stdout.as_str(), broken.stderr.as_str()),
        (
            2,
            "tests/fixtures/check/broken.yaml\n  document 2 (line 6): not checked: YAML error on line 10: illegal placement of ':' indicator\n\
             namespace default: labels unknown, judged by name\npolicies: ./policies\n\
             1 objects, 0 denied, 0 warned, 1 not checked\n",
            CANNOT_ONE
        )
    );
    let missing = check(&["no/such/file.yaml"], None);
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (2, "portcullis check: no/such/file.yaml: No such file or directory (os error 2)\n")
    );
    let bad_policies = check(&["--policies", "no/such/dir", &format!("{DIR}/clean.yaml")], None);
    assert_eq!(
        (bad_policies.code, bad_policies.stdout.as_str(), bad_policies.stderr.as_str()),
        (2, "", "portcullis check: --policies no/such/dir: no such directory\n")
    );
    assert_eq!(check(&["--output", "xml"], None).code, 2, "usage errors exit 2");
    let both = check(&["--strict", "--skip-unknown", "-"], None);
    assert_eq!(both.code, 2, "usage errors exit 2");
    assert!(
        both.stderr.starts_with("error: the argument '--strict' cannot be used with '--skip-unknown'\n"),
        "{}",
        both.stderr
    );
}

const CANNOT_ONE: &str = "portcullis check: 1 cannot be checked (see the report); --skip-unknown accepts that\n";
const RENDER: &str = "render the chart (helm template) and check the output";

#[test]
fn reports_helm_templates_as_not_checked_in_every_format() {
    let file = format!("{DIR}/helm-template.yaml");
    let text = check(&[&file], None);
    assert_eq!(
        (text.code, text.stdout.as_str(), text.stderr.as_str()),
        (
            2,
            format!(
                "{file}\n\
                 \x20 document 1 (line 2): not checked: Helm template syntax {{{{- if .Values.ingress.enabled }}}}; {RENDER}\n\
                 \x20 document 2 (line 11): not checked: Helm template syntax {{{{ .Release.Name }}}}; {RENDER}\n\
                 policies: ./policies\n\
                 0 objects, 0 denied, 0 warned, 2 not checked\n"
            )
            .as_str(),
            "portcullis check: 2 cannot be checked (see the report); --skip-unknown accepts that\n"
        )
    );

    let json: Value = serde_json::from_str(&check(&["-o", "json", &file], None).stdout).unwrap();
    assert_eq!(json["summary"], json!({"objects": 0, "denied": 0, "warned": 0, "mutated": 0, "notChecked": 2}));
    assert_eq!(
        json["notChecked"],
        json!([
            {"file": file, "document": 1, "item": null, "line": 2,
             "reason": format!("Helm template syntax {{{{- if .Values.ingress.enabled }}}}; {RENDER}"), "inputError": true},
            {"file": file, "document": 2, "item": null, "line": 11,
             "reason": format!("Helm template syntax {{{{ .Release.Name }}}}; {RENDER}"), "inputError": true},
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
    let first =
        format!("document 1: not checked: Helm template syntax {{{{- if .Values.ingress.enabled }}}}; {RENDER}");
    let second = format!("document 2: not checked: Helm template syntax {{{{ .Release.Name }}}}; {RENDER}");
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
                 \x20 document 1 (line 2): not checked: not a Kubernetes object: no apiVersion and kind\n\
                 \x20 document 2 (line 5): not checked: not a Kubernetes object: a list\n\
                 \x20 document 3, item 2 (line 8): not checked: not a Kubernetes object: no apiVersion\n\
                 \x20 document 4 (line 19): not checked: PrometheusRule alerts (monitoring.coreos.com/v1): no policy \
                 matches this kind\n\
                 policies: ./policies\n\
                 1 objects, 0 denied, 0 warned, 4 not checked\n"
            )
            .as_str()
        )
    );
    // Template syntax in a kind no policy matches (a PrometheusRule's alert text) is no input error.
    assert_eq!(run.stderr, "portcullis check: 3 cannot be checked (see the report); --skip-unknown accepts that\n");

    // Input errors and a denial: with --skip-unknown the denial decides.
    let stdin = format!(
        "{}---\n{}",
        std::fs::read_to_string(repo(&file)).unwrap(),
        std::fs::read_to_string(repo(DIR).join("tree/services/nodeport.yaml")).unwrap()
    );
    let denied = check(&["--skip-unknown", "--namespace", "prod", "-o", "json", "-"], Some(&stdin));
    let report: Value = serde_json::from_str(&denied.stdout).unwrap();
    assert_eq!(
        (denied.code, &report["summary"]),
        (1, &json!({"objects": 2, "denied": 1, "warned": 0, "mutated": 0, "notChecked": 4}))
    );
    // Without it, what could not be checked makes the result incomplete: exit 2.
    assert_eq!(check(&["--namespace", "prod", "-"], Some(&stdin)).code, 2);

    // A scalar document is no object either; an empty one is nothing at all.
    let scalar = check(&["-o", "json", "-"], Some("just text\n---\n---\n"));
    let report: Value = serde_json::from_str(&scalar.stdout).unwrap();
    assert_eq!(
        (scalar.code, &report["notChecked"]),
        (
            2,
            &json!([{"file": "-", "document": 1, "item": null, "line": 1,
                     "reason": "not a Kubernetes object: a string", "inputError": true}])
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
                 policies: ./policies\n1 objects, 0 denied, 1 warned\n"
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

    // A review the webhook could not decode is not checked, saying why.
    let mut no_uid: Value = serde_json::from_slice(&body).unwrap();
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let run = check(&["-"], Some(&no_uid.to_string()));
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (
            2,
            "-\n  document 1 (line 1): not checked: an AdmissionReview that cannot be decoded: AdmissionReview request has no uid\n\
             policies: ./policies\n0 objects, 0 denied, 0 warned, 1 not checked\n",
            CANNOT_ONE
        )
    );
}

#[test]
fn fix_patches_the_object_of_an_admission_review_and_keeps_documents_not_checked() {
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
    assert_eq!(kept, "# kept\nreplicas: [1\n", "a document not checked is written back byte for byte");
    // The review is edited in place too: only its object's metadata gains the annotation.
    assert_eq!(
        patched,
        format!("{review}\n").replace(
            r#""metadata":{"name":"web"}"#,
            r#""metadata":{"name":"web", "annotations": {"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}}"#
        )
    );
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
    assert!(fixed.stderr.ends_with("2 objects, 1 denied, 1 warned, 1 not checked\n"), "{}", fixed.stderr);
    assert!(!fixed.stderr.contains("would add"), "{}", fixed.stderr);

    // Unrelated documents (and the one the fix does not touch) are byte-identical;
    // the Ingress gains an annotations block at the end of its metadata, nothing else.
    let before: Vec<&str> = original.split("\n---\n").collect();
    let after: Vec<&str> = fixed.stdout.split("\n---\n").collect();
    assert_eq!(after.len(), 4);
    assert_eq!(after[..3], before[..3]);
    assert_eq!(
        fixed.stdout,
        original.replace(
            "  namespace: staging\n",
            "  namespace: staging\n  annotations:\n    nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"\n"
        )
    );
    assert_eq!(original.matches("  namespace: staging\n").count(), 1);

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

/// The gRPC Ingress of `grpc.yaml`: commented, flow-style annotations, a
/// quoted key; two policies each add an annotation.
const GRPC: &str = "tests/fixtures/check/grpc.yaml";

#[test]
fn fix_write_keeps_comments_flow_style_and_quoting_and_adds_only_the_annotations() {
    let dir = temp_dir("fix-in-place");
    let file = dir.join("grpc.yaml");
    let original = std::fs::read_to_string(repo(GRPC)).unwrap();
    std::fs::write(&file, &original).unwrap();
    let run = check(&["--fix", "--write", file.to_str().unwrap()], None);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    assert!(!run.stderr.contains("would add") && !run.stderr.contains("written again"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# The orders API: gRPC behind ingress-nginx, written compactly.\n\
         apiVersion: networking.k8s.io/v1\n\
         kind: Ingress\n\
         metadata:\n\
         \x20 name: orders   # the name clients resolve\n\
         \x20 namespace: staging\n\
         \x20 # Owned by the payments team; the allow-list is the office network.\n\
         \x20 annotations: {team: payments, 'nginx.ingress.kubernetes.io/whitelist-source-range': \"203.0.113.0/24\", \
         nginx.ingress.kubernetes.io/backend-protocol: \"GRPC\", nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"}\n\
         spec:\n\
         \x20 ingressClassName: nginx\n\
         \x20 tls: [{hosts: [orders.example.com], secretName: orders-tls}]\n\
         \x20 rules:\n\
         \x20   - host: orders.example.com\n\
         \x20     http:\n\
         \x20       paths:\n\
         \x20         - {path: /, pathType: Prefix, backend: {service: {name: orders, port: {name: grpc}}}}\n"
    );
    // The only change: the two annotations appended inside the braces.
    let added = ", nginx.ingress.kubernetes.io/backend-protocol: \"GRPC\", \
                 nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"}";
    assert_eq!(std::fs::read_to_string(&file).unwrap().replacen(added, "}", 1), original);

    let again = check(&["-o", "json", file.to_str().unwrap()], None);
    let report: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!((again.code, &report["summary"]["mutated"]), (0, &json!(0)), "nothing left to fix: {report}");
    let rerun = check(&["--fix", "--write", file.to_str().unwrap()], None);
    assert_eq!(rerun.code, 0);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().replacen(added, "}", 1),
        original,
        "a second fix changes nothing"
    );
}

#[test]
fn fix_edits_json_in_place_and_says_what_it_had_to_write_again() {
    let dir = temp_dir("fix-json");
    let file = dir.join("web.json");
    let json = "{\n  \"apiVersion\": \"networking.k8s.io/v1\",\n  \"kind\": \"Ingress\",\n  \"metadata\": {\"name\": \"web\", \
                \"namespace\": \"staging\"},\n  \"spec\": {\"ingressClassName\": \"nginx\", \"tls\": [{\"hosts\": [\"a.example.com\"]}]}\n}\n";
    std::fs::write(&file, json).unwrap();
    let run = check(&["--fix", "--write", file.to_str().unwrap()], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        json.replace(
            "\"namespace\": \"staging\"}",
            "\"namespace\": \"staging\", \"annotations\": {\"nginx.ingress.kubernetes.io/force-ssl-redirect\": \"true\"}}"
        )
    );

    // metadata through a YAML alias: the document is written again, and the run says so.
    let aliased = "# kept\nx-meta: &meta {name: web, namespace: staging}\napiVersion: networking.k8s.io/v1\nkind: Ingress\n\
                   metadata: *meta\nspec: {ingressClassName: nginx, tls: [{hosts: [a.example.com]}]}\n";
    let run = check(&["--fix", "-"], Some(aliased));
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            0,
            "# kept\nx-meta:\n  name: web\n  namespace: staging\napiVersion: networking.k8s.io/v1\nkind: Ingress\n\
             metadata:\n  name: web\n  namespace: staging\n  annotations:\n    \
             nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"\nspec:\n  ingressClassName: nginx\n  tls:\n  \
             - hosts:\n    - a.example.com\n"
        )
    );
    assert!(
        run.stderr.ends_with(
            "portcullis check: -: document 1: cannot add the annotations in place: it uses a YAML alias there; \
             written again from its patched value, without its comments and layout\n"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn mutations_are_credited_to_the_policy_behind_each_operation() {
    let text = check(&[GRPC], None);
    assert_eq!(text.code, 0, "{}", text.stderr);
    let fixes: Vec<&str> = text.stdout.lines().filter(|line| line.trim_start().starts_with("fix")).collect();
    assert_eq!(
        fixes,
        [
            "    fix     [grpc-backend-protocol] would add annotation nginx.ingress.kubernetes.io/backend-protocol: \"GRPC\" (--fix applies it)",
            "    fix     [https-redirect] would add annotation nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\" (--fix applies it)",
        ]
    );

    let report: Value = serde_json::from_str(&check(&["-o", "json", GRPC], None).stdout).unwrap();
    assert_eq!(
        report["results"][0]["patch"],
        json!([
            {"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1backend-protocol", "value": "GRPC",
             "policy": "grpc-backend-protocol"},
            {"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect", "value": "true",
             "policy": "https-redirect"},
        ])
    );
    // Still an RFC 6902 patch: appliers ignore the policy member.
    let patch: json_patch::Patch = serde_json::from_value(report["results"][0]["patch"].clone()).unwrap();
    assert_eq!(patch.0.len(), 2);

    let sarif: Value = serde_json::from_str(&check(&["-o", "sarif", GRPC], None).stdout).unwrap();
    let notes: Vec<(&str, &str)> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["level"] == "note" && r["ruleId"] != "portcullis")
        .map(|r| (r["ruleId"].as_str().unwrap(), r["message"]["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        notes,
        [
            (
                "grpc-backend-protocol",
                "[grpc-backend-protocol] Ingress staging/orders: would add annotation \
                 nginx.ingress.kubernetes.io/backend-protocol: \"GRPC\""
            ),
            (
                "https-redirect",
                "[https-redirect] Ingress staging/orders: would add annotation \
                 nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\""
            ),
        ]
    );

    // The annotations map two policies need is created once, credited to the first.
    let bare = std::fs::read_to_string(repo(GRPC)).unwrap().replace(
        "  annotations: {team: payments, 'nginx.ingress.kubernetes.io/whitelist-source-range': \"203.0.113.0/24\"}\n",
        "",
    );
    let report: Value = serde_json::from_str(&check(&["-o", "json", "-"], Some(&bare)).stdout).unwrap();
    let owners: Vec<(&str, &str)> = report["results"][0]["patch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| (op["path"].as_str().unwrap(), op["policy"].as_str().unwrap()))
        .collect();
    assert_eq!(
        owners,
        [
            ("/metadata/annotations", "grpc-backend-protocol"),
            ("/metadata/annotations/nginx.ingress.kubernetes.io~1backend-protocol", "grpc-backend-protocol"),
            ("/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect", "https-redirect"),
        ]
    );
}

#[test]
fn the_readme_shows_the_fix_example_as_it_runs() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let block = |command: &str| -> String {
        let start = readme.find(&format!("  $ {command}\n")).unwrap_or_else(|| panic!("README lacks {command}"));
        readme[start..]
            .lines()
            .skip(1)
            .take_while(|line| !line.starts_with("  $ ") && *line != "  ```")
            .map(|line| format!("{}\n", line.strip_prefix("  ").unwrap_or(line)))
            .collect()
    };
    let report = check(&[GRPC], None);
    assert_eq!(block(&format!("portcullis check {GRPC}")), report.stdout);

    // The diff of --fix: one line, the annotations.
    let original = std::fs::read_to_string(repo(GRPC)).unwrap();
    let fixed = check(&["--fix", GRPC], None).stdout;
    let changed: Vec<(usize, &str, &str)> = original
        .lines()
        .zip(fixed.lines())
        .enumerate()
        .filter(|(_, (before, after))| before != after)
        .map(|(index, (before, after))| (index + 1, before, after))
        .collect();
    assert_eq!((original.lines().count(), changed.len()), (fixed.lines().count(), 1));
    let (line, before, after) = changed[0];
    assert_eq!(
        block(&format!("portcullis check --fix {GRPC} 2>/dev/null | diff {GRPC} -")),
        format!("{line}c{line}\n< {before}\n---\n> {after}\n")
    );
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

/// An empty directory of its own under the system's temporary directory.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const NO_POLICY: &str = "no policy matches this kind";

#[test]
fn lists_what_no_policy_matches_and_files_without_objects_and_strict_refuses_them() {
    let (other, empty, comments) =
        (format!("{DIR}/other-kinds.yaml"), format!("{DIR}/empty.yaml"), format!("{DIR}/comments.yaml"));
    let expected = format!(
        "{other}\n\
         \x20 document 1 (line 2): not checked: Deployment shop/web (apps/v1): {NO_POLICY}\n\
         \x20 document 2 (line 10): not checked: CustomResourceDefinition widgets.example.com \
         (apiextensions.k8s.io/v1): {NO_POLICY}\n\
         \x20 document 3 (line 16): not checked: Gateway istio-system/public (networking.istio.io/v1): {NO_POLICY} \
         (policies match the Gateway of gateway.networking.k8s.io)\n\
         \x20 document 5, item 1 (line 34): not checked: Pod shop/debug (v1): {NO_POLICY}\n\
         {empty}\n\
         \x20 not checked: empty file\n\
         {comments}\n\
         \x20 not checked: no Kubernetes object in the file (only comments, empty documents or empty Lists)\n\
         policies: ./policies\n\
         1 objects, 0 denied, 0 warned, 6 not checked\n"
    );
    // Listed, never passed over; the Namespace is read (its labels), not listed.
    let listed = check(&[&other, &empty, &comments], None);
    assert_eq!((listed.code, listed.stdout.as_str(), listed.stderr.as_str()), (0, expected.as_str(), ""));
    // --strict: anything not checked makes the exit code 2.
    let strict = check(&["--strict", &other, &empty, &comments], None);
    assert_eq!(
        (strict.code, strict.stdout.as_str(), strict.stderr.as_str()),
        (2, expected.as_str(), "portcullis check: --strict: 6 not checked (see the report)\n")
    );
    // A clean file passes --strict.
    assert_eq!(check(&["--strict", &format!("{DIR}/clean.yaml")], None).code, 0);

    let report: Value = serde_json::from_str(&check(&["-o", "json", &other, &empty], None).stdout).unwrap();
    let entry = |file: &str, document: Value, item: Value, line: Value, reason: String| json!({"file": file, "document": document, "item": item, "line": line, "reason": reason, "inputError": false});
    assert_eq!(
        report["notChecked"],
        json!([
            entry(&other, json!(1), json!(null), json!(2), format!("Deployment shop/web (apps/v1): {NO_POLICY}")),
            entry(
                &other,
                json!(2),
                json!(null),
                json!(10),
                format!("CustomResourceDefinition widgets.example.com (apiextensions.k8s.io/v1): {NO_POLICY}")
            ),
            entry(
                &other,
                json!(3),
                json!(null),
                json!(16),
                format!(
                    "Gateway istio-system/public (networking.istio.io/v1): {NO_POLICY} (policies match the Gateway \
                     of gateway.networking.k8s.io)"
                )
            ),
            entry(&other, json!(5), json!(1), json!(34), format!("Pod shop/debug (v1): {NO_POLICY}")),
            entry(&empty, json!(null), json!(null), json!(null), "empty file".to_owned()),
        ])
    );
    assert_eq!(report["summary"], json!({"objects": 1, "denied": 0, "warned": 0, "mutated": 0, "notChecked": 5}));
    assert_eq!(report["labelsUnknown"], json!([]), "shop's labels come from the Namespace in the input");

    let sarif: Value = serde_json::from_str(&check(&["-o", "sarif", &other, &empty], None).stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(
        results[3],
        json!({"ruleId": "portcullis", "level": "note",
               "message": {"text": format!("document 5, item 1: not checked: Pod shop/debug (v1): {NO_POLICY}")},
               "locations": [{"physicalLocation": {"artifactLocation": {"uri": other},
                                                   "region": {"startLine": 34}}}]})
    );
    assert_eq!(
        results[4],
        json!({"ruleId": "portcullis", "level": "note", "message": {"text": "not checked: empty file"},
               "locations": [{"physicalLocation": {"artifactLocation": {"uri": empty}}}]})
    );
}

#[test]
fn an_empty_directory_or_input_is_not_checked() {
    let dir = temp_dir("empty");
    let name = dir.display().to_string();
    let run = check(&[&name], None);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            0,
            format!(
                "{name}\n  not checked: no *.yaml, *.yml or *.json file in the directory\npolicies: ./policies\n\
                 0 objects, 0 denied, 0 warned, 1 not checked\n"
            )
            .as_str()
        )
    );
    let stdin = check(&["--strict"], Some(""));
    assert_eq!(
        (stdin.code, stdin.stdout.as_str(), stdin.stderr.as_str()),
        (
            2,
            "-\n  not checked: empty input\npolicies: ./policies\n0 objects, 0 denied, 0 warned, 1 not checked\n",
            "portcullis check: --strict: 1 not checked (see the report)\n"
        )
    );
    // An empty List holds no object either.
    let list = check(&[], Some("apiVersion: v1\nkind: List\nitems: []\n"));
    assert_eq!(
        list.stdout,
        "-\n  not checked: no Kubernetes object in the input (only comments, empty documents or empty Lists)\n\
         policies: ./policies\n0 objects, 0 denied, 0 warned, 1 not checked\n"
    );
}

const NODEPORT_IN_PRD: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: prd}\nspec: {type: NodePort, ports: [{port: 80}]}\n";

#[test]
fn says_which_namespaces_were_judged_by_name() {
    // prd is not production by name; its labels could make it so.
    let unknown = check(&[], Some(NODEPORT_IN_PRD));
    assert_eq!(
        (unknown.code, unknown.stdout.as_str()),
        (0, "namespace prd: labels unknown, judged by name\npolicies: ./policies\n1 objects, 0 denied, 0 warned\n")
    );
    let denied = format!(
        "-\n  document 1 (line 1): Service prd/web\n    error   [no-nodeport-in-production] Service prd/web: {NODEPORT}\n\
         policies: ./policies\n1 objects, 1 denied, 0 warned\n"
    );
    // Labels from a file, or a Namespace in the input: known, no note.
    let dir = temp_dir("labels");
    let labels = dir.join("labels.yaml");
    std::fs::write(&labels, "prd: {environment: production}\n").unwrap();
    let from_file = check(&["--namespace-labels", labels.to_str().unwrap()], Some(NODEPORT_IN_PRD));
    assert_eq!((from_file.code, from_file.stdout.as_str()), (1, denied.as_str()));
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: prd, labels: {team: web}}\n---\n";
    let from_input = check(&[], Some(&format!("{namespace}{NODEPORT_IN_PRD}")));
    assert_eq!(
        (from_input.code, from_input.stdout.as_str()),
        (0, "policies: ./policies\n1 objects, 0 denied, 0 warned\n")
    );
    let report: Value = serde_json::from_str(&check(&["-o", "json"], Some(NODEPORT_IN_PRD)).stdout).unwrap();
    assert_eq!(report["labelsUnknown"], json!(["prd"]));
}

#[test]
fn uses_the_bundled_policies_outside_the_repository() {
    let dir = temp_dir("outside");
    std::fs::write(dir.join("svc.yaml"), NODEPORT_IN_PRD.replace("prd", "prod")).unwrap();
    let denied = |policies: &str| {
        format!(
            "svc.yaml\n  document 1 (line 1): Service prod/web\n    error   [no-nodeport-in-production] Service \
             prod/web: {NODEPORT}\npolicies: {policies}\n1 objects, 1 denied, 0 warned\n"
        )
    };
    let outside = check_in(&dir, &["svc.yaml"], "");
    assert_eq!((outside.code, outside.stdout.as_str()), (1, denied("bundled (built in)").as_str()));
    // A directory named explicitly is used, and must exist.
    let policies = repo("policies").display().to_string();
    let named = check_in(&dir, &["--policies", &policies, "svc.yaml"], "");
    assert_eq!((named.code, named.stdout.as_str()), (1, denied(&policies).as_str()));
    let missing = check_in(&dir, &["--policies", "policies", "svc.yaml"], "");
    assert_eq!(
        (missing.code, missing.stdout.as_str(), missing.stderr.as_str()),
        (2, "", "portcullis check: --policies policies: no such directory\n")
    );
    let from_env = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "svc.yaml"])
        .current_dir(&dir)
        .env("PORTCULLIS_POLICIES", "mine")
        .output()
        .unwrap();
    assert_eq!(
        (from_env.status.code(), String::from_utf8(from_env.stderr).unwrap()),
        (Some(2), "portcullis check: PORTCULLIS_POLICIES mine: no such directory\n".to_owned())
    );
    // ./policies, when it is a directory, is the default (its action written in lower case).
    std::fs::create_dir(dir.join("policies")).unwrap();
    let policy = "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\n\
                  spec: {action: warn, rule: {serviceType: {forbidden: [NodePort]}}}\n";
    std::fs::write(dir.join("policies/p.yaml"), policy).unwrap();
    let local = check_in(&dir, &["svc.yaml"], "");
    assert_eq!(
        (local.code, local.stdout.as_str()),
        (
            0,
            format!(
                "svc.yaml\n  document 1 (line 1): Service prod/web\n    warning [p] Service prod/web: {NODEPORT}\n\
                 policies: ./policies\n1 objects, 0 denied, 1 warned\n"
            )
            .as_str()
        )
    );
}

/// `api` served over plain HTTP on 127.0.0.1 until the test ends, and a
/// kubeconfig in `dir` that points at it.
async fn serve_on_tcp(api: &common::fake_api::FakeApi, dir: &std::path::Path) -> (String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = api.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (kubeconfig(dir, &url), url)
}

/// A kubeconfig in `dir` for the API server at `url`, without credentials.
fn kubeconfig(dir: &std::path::Path, url: &str) -> String {
    let path = dir.join(format!("kubeconfig-{}", url.rsplit(':').next().unwrap()));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{url}\"}}\nusers:\n\
         - name: nobody\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: nobody}}\n\
         current-context: fake\n"
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// [`check`], off the async runtime (which serves the fake API server meanwhile).
async fn check_async(args: Vec<String>, stdin: String) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        check(&args, Some(&stdin))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_namespace_labels_from_the_cluster_through_a_kubeconfig() {
    use common::fake_api::{FakeApi, Health, Resource};
    let api = FakeApi::new(&[Resource::NAMESPACES], true);
    let namespace = |name: &str, labels: Value| {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels,
               "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    };
    api.put_object(Resource::NAMESPACES, namespace("payments", json!({"environment": "production"})), false);
    api.put_object(Resource::NAMESPACES, namespace("shop", json!({"team": "web"})), false);
    let dir = temp_dir("cluster");
    let (config, url) = serve_on_tcp(&api, &dir).await;
    let services: String = ["payments", "shop", "new"]
        .iter()
        .map(|namespace| NODEPORT_IN_PRD.replace("prd", namespace))
        .collect::<Vec<_>>()
        .join("---\n");
    let args = |extra: &[&str]| {
        let mut args: Vec<String> =
            vec!["--namespace-labels-from-cluster".into(), "--kubeconfig".into(), config.clone()];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    };

    // payments is production by its labels in the cluster; shop's are known
    // (and not production); new is not in the cluster, so judged by name.
    let run = check_async(args(&[]), services.clone()).await;
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (
            1,
            format!(
                "-\n  document 1 (line 1): Service payments/web\n    error   [no-nodeport-in-production] Service \
                 payments/web: {NODEPORT}\nnamespace new: labels unknown, judged by name\npolicies: ./policies\n\
                 3 objects, 1 denied, 0 warned\n"
            )
            .as_str(),
            ""
        )
    );
    // One read-only list, of metadata only.
    assert_eq!(api.accepts("list"), ["application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"]);
    assert_eq!((api.accepts("watch").len(), api.gets()), (0, 0));

    // --namespace-labels wins over the cluster.
    let file = dir.join("labels.yaml");
    std::fs::write(&file, "payments: {}\n").unwrap();
    let run = check_async(args(&["--namespace-labels", file.to_str().unwrap()]), services.clone()).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "namespace new: labels unknown, judged by name\npolicies: ./policies\n3 objects, 0 denied, 0 warned\n")
    );

    // A cluster that refuses, fails, never answers or is not there: exit 2, saying why.
    const FLAG: &str = "portcullis check: --namespace-labels-from-cluster";
    api.fail(Health::Forbidden);
    let run = check_async(args(&[]), services.clone()).await;
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr),
        (
            2,
            "",
            format!(
                "{FLAG}: cannot list the Namespaces of {url}: namespaces is forbidden: User \
                 \"system:serviceaccount:portcullis-system:portcullis\" cannot list resource \"namespaces\" in API group \
                 \"\" at the cluster scope (403 Forbidden)\n"
            )
        )
    );
    api.fail(Health::Unavailable);
    let run = check_async(args(&[]), services.clone()).await;
    assert_eq!(
        (run.code, run.stderr),
        (2, format!("{FLAG}: cannot list the Namespaces of {url}: the server is down (503 ServiceUnavailable)\n"))
    );

    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let silent_config = kubeconfig(&dir, &silent_url);
    let started = std::time::Instant::now();
    let run = check_async(
        vec![
            "--namespace-labels-from-cluster".into(),
            "--kubeconfig".into(),
            silent_config,
            "--cluster-timeout".into(),
            "300ms".into(),
        ],
        services.clone(),
    )
    .await;
    assert_eq!((run.code, run.stderr), (2, format!("{FLAG}: {silent_url} did not answer within 0.3s\n")));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    drop(silent);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let run = check_async(
        vec!["--namespace-labels-from-cluster".into(), "--kubeconfig".into(), kubeconfig(&dir, &closed_url)],
        services.clone(),
    )
    .await;
    assert_eq!(
        (run.code, run.stderr),
        (
            2,
            format!(
                "{FLAG}: cannot list the Namespaces of {closed_url}: ServiceError: client error (Connect): tcp connect \
                 error: Connection refused (os error 111)\n"
            )
        )
    );
    let missing = dir.join("no-such-kubeconfig");
    let run = check_async(
        vec!["--namespace-labels-from-cluster".into(), "--kubeconfig".into(), missing.display().to_string()],
        services.clone(),
    )
    .await;
    assert_eq!(
        (run.code, run.stderr),
        (
            2,
            format!(
                "{FLAG}: --kubeconfig {0}: failed to read kubeconfig from '\"{0}\"': No such file or directory (os error 2)\n",
                missing.display()
            )
        )
    );
    // --kubeconfig and --cluster-timeout only go with --namespace-labels-from-cluster.
    let usage = check_async(vec!["--kubeconfig".into(), config.clone()], String::new()).await;
    assert_eq!(usage.code, 2);
    assert!(usage.stderr.contains("--namespace-labels-from-cluster"), "{}", usage.stderr);
}
