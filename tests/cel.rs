//! The `cel` rule end to end: policies loaded from YAML, reviews decoded as
//! the webhook decodes them, exact verdicts and messages.

use crate::common;

use common::review;
use portcullis::admission::Review;
use portcullis::engine::{self, NamespaceLabels, PolicySet, Stage};
use serde_json::{Value, json};

fn policies(rule: &str) -> PolicySet {
    let yaml = format!(
        "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{name: custom}}\n\
         spec:\n  action: Deny\n  rule:\n    cel:\n{rule}"
    );
    portcullis::policy::load_sources(&[("custom.yaml".into(), yaml)]).expect("the policy loads")
}

fn load_error(rule: &str) -> String {
    let yaml = format!(
        "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{name: custom}}\n\
         spec:\n  action: Deny\n  rule:\n    cel:\n{rule}"
    );
    portcullis::policy::load_sources(&[("custom.yaml".into(), yaml)]).unwrap_err().to_string()
}

/// The denial message, or `None` when allowed.
fn judge_with(set: &PolicySet, body: &Value, labels: NamespaceLabels<'_>) -> (Option<String>, engine::Decision) {
    let review = Review::decode(&serde_json::to_vec(body).unwrap()).unwrap();
    let decision = engine::evaluate(&review.input(Stage::Validate), set, labels);
    let message = (!decision.allowed()).then(|| decision.message(review.about(), set));
    (message, decision)
}

fn judge(set: &PolicySet, body: &Value) -> Option<String> {
    judge_with(set, body, NamespaceLabels::none()).0
}

fn service(name: &str, labels: Value, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels}, "spec": spec})
}

const COST_CENTER: &str = "      validations:
        - expression: \"object.spec.type != 'LoadBalancer' || 'cost-center' in object.metadata.labels\"
          message: \"a LoadBalancer needs a cost-center label; add metadata.labels.cost-center\"
";

#[test]
fn a_cel_rule_denies_and_allows_with_its_exact_message() {
    let set = policies(COST_CENTER);
    let lb = service("api", json!({}), json!({"type": "LoadBalancer"}));
    assert_eq!(
        judge(&set, &review("CREATE", "shop", lb, None)).as_deref(),
        Some("[custom] Service shop/api: a LoadBalancer needs a cost-center label; add metadata.labels.cost-center")
    );
    let labelled = service("api", json!({"cost-center": "4711"}), json!({"type": "LoadBalancer"}));
    assert_eq!(judge(&set, &review("CREATE", "shop", labelled, None)), None);
}

#[test]
fn message_expression_is_used_when_it_gives_a_string() {
    let set = policies(
        "      variables:
        - name: hosts
          expression: \"object.spec.rules.map(r, r.host)\"
      validations:
        - expression: \"variables.hosts.all(h, h.endsWith('.example.com'))\"
          message: \"hosts must be under example.com\"
          messageExpression: \"'hosts ' + variables.hosts.filter(h, !h.endsWith('.example.com')).join(', ') + ' are not under example.com'\"
",
    );
    let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
                         "spec": {"rules": [{"host": "a.example.com"}, {"host": "b.example.org"}, {"host": "c.test"}]}});
    assert_eq!(
        judge(&set, &review("CREATE", "shop", ingress, None)).as_deref(),
        Some("[custom] Ingress shop/web: hosts b.example.org, c.test are not under example.com")
    );
}

#[test]
fn old_object_is_the_object_before_an_update() {
    let set = policies(
        "      validations:
        - expression: \"oldObject == null || object.spec.type == oldObject.spec.type\"
          message: \"spec.type cannot change; create a new Service\"
",
    );
    let old = service("api", json!({}), json!({"type": "ClusterIP"}));
    let new = service("api", json!({}), json!({"type": "NodePort"}));
    assert_eq!(
        judge(&set, &review("UPDATE", "shop", new.clone(), Some(old.clone()))).as_deref(),
        Some("[custom] Service shop/api: spec.type cannot change; create a new Service")
    );
    assert_eq!(judge(&set, &review("UPDATE", "shop", old.clone(), Some(old))), None);
    assert_eq!(judge(&set, &review("CREATE", "shop", new, None)), None);
}

#[test]
fn namespace_object_carries_the_namespace_labels_when_known() {
    let set = policies(
        "      validations:
        - expression: \"namespaceObject.metadata.labels['team'] == object.metadata.labels['team']\"
          messageExpression: \"'team ' + object.metadata.labels['team'] + ' does not own namespace ' + namespaceObject.metadata.name\"
",
    );
    let body = review("CREATE", "shop", service("api", json!({"team": "web"}), json!({})), None);
    let labels = [("team".to_owned(), "web".to_owned())].into();
    assert_eq!(judge_with(&set, &body, NamespaceLabels::Known(&labels)).0, None);
    let other = [("team".to_owned(), "data".to_owned())].into();
    assert_eq!(
        judge_with(&set, &body, NamespaceLabels::Known(&other)).0.as_deref(),
        Some("[custom] Service shop/api: team web does not own namespace shop")
    );
    // Unknown labels: namespaceObject has no metadata.labels, so the expression
    // cannot be evaluated and the rule fails closed.
    assert_eq!(
        judge_with(&set, &body, NamespaceLabels::Unknown).0.as_deref(),
        Some(
            "[custom] Service shop/api: validation 0 (`namespaceObject.metadata.labels['team'] == \
             object.metadata.labels['team']`) cannot be evaluated: No such key: labels; correct the object or the policy"
        )
    );
}

#[test]
fn ip_cidr_and_url_functions_are_available() {
    let set = policies(
        "      validations:
        - expression: \"!has(object.spec.externalIPs) || object.spec.externalIPs.all(ip, cidr('10.0.0.0/8').containsIP(ip))\"
          message: \"external IPs must be in 10.0.0.0/8\"
        - expression: \"!has(object.metadata.annotations) || !('docs' in object.metadata.annotations) || url(object.metadata.annotations['docs']).getScheme() == 'https'\"
          message: \"the docs annotation must be an https URL\"
        - expression: \"isIP('192.0.2.1') && ip('192.0.2.1').family() == 4 && isURL('https://example.com/x')\"
          message: \"never\"
",
    );
    let good = json!({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "api", "annotations": {"docs": "https://docs.example.com/api"}},
                      "spec": {"externalIPs": ["10.1.2.3"]}});
    assert_eq!(judge(&set, &review("CREATE", "shop", good, None)), None);
    let bad = json!({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": "api", "annotations": {"docs": "http://docs.example.com/api"}},
                     "spec": {"externalIPs": ["192.0.2.7"]}});
    assert_eq!(
        judge(&set, &review("CREATE", "shop", bad, None)).as_deref(),
        Some(
            "[custom] Service shop/api: external IPs must be in 10.0.0.0/8\n\
             [custom] Service shop/api: the docs annotation must be an https URL"
        )
    );
}

#[test]
fn a_compile_error_at_load_names_file_policy_expression_and_column() {
    assert_eq!(
        load_error(
            "      validations:
        - expression: \"object.spec.type == 'LoadBalancer' && objekt.metadata.name != ''\"
"
        ),
        "custom.yaml:9: Policy \"custom\": spec.rule.cel.validations[0].expression: cannot compile \
         `object.spec.type == 'LoadBalancer' && objekt.metadata.name != ''`: column 39: undeclared reference to \
         `objekt` (variables: object, oldObject, request, namespaceObject, variables)"
    );
    let syntax = load_error(
        "      validations:
        - expression: \"object.spec.type == )\"
",
    );
    assert_eq!(
        syntax,
        "custom.yaml:9: Policy \"custom\": spec.rule.cel.validations[0].expression: cannot compile \
         `object.spec.type == )`: column 21: Syntax error: mismatched input ')' expecting {'[', '{', '(', '.', '-', \
         '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}"
    );
}

const EXPENSIVE: &str = "      validations:
        - expression: \"object.spec.ports.all(a, object.spec.ports.all(b, object.spec.ports.all(c, a.port + b.port + c.port > 0)))\"
          message: \"never\"
";

/// The CREATE of a Service with `count` ports (with 1,000, [`EXPENSIVE`]
/// would take 10^9 steps over it).
fn with_ports(count: u16) -> Value {
    let ports: Vec<Value> = (1..=count).map(|port| json!({"name": format!("p{port}"), "port": port})).collect();
    review("CREATE", "shop", service("api", json!({}), json!({"ports": ports})), None)
}

#[test]
fn an_expensive_expression_is_cut_off_and_denied_quickly() {
    let set = policies(EXPENSIVE);
    let body = with_ports(1000);
    let started = std::time::Instant::now();
    let (message, decision) = judge_with(&set, &body, NamespaceLabels::none());
    // 10^9 comprehension steps unbounded: minutes. Cut off after 1,000,000.
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(
        message.as_deref(),
        Some(
            "[custom] Service shop/api: the CEL rule exceeded its cost limit of 1000000 steps at validation 0 and \
             counts as failed; simplify the expression"
        )
    );
    assert_eq!(decision.cost_exceeded, [0]);
    let metrics = portcullis::metrics::Metrics::new();
    metrics.record_review(
        Stage::Validate,
        engine::Operation::Create,
        engine::Kind::Service,
        "shop",
        false,
        &decision,
        &set,
        std::time::Duration::from_micros(10),
    );
    let text = metrics.encode_prometheus();
    let counted: Vec<&str> = text.lines().filter(|l| l.starts_with("portcullis_cel_cost_exceeded_total")).collect();
    assert_eq!(counted, ["portcullis_cel_cost_exceeded_total{policy=\"custom\"} 1"]);
}

#[test]
fn a_cut_off_evaluation_on_update_is_denied_not_taken_for_an_existing_violation() {
    // The old object would be cut off at the same validation: the same text,
    // which `existingViolations: Warn` (the default) must not take for a
    // violation the object already had.
    let set = policies(EXPENSIVE);
    let mut body = with_ports(1000);
    body["request"]["operation"] = json!("UPDATE");
    body["request"]["oldObject"] = body["request"]["object"].clone();
    let (message, decision) = judge_with(&set, &body, NamespaceLabels::none());
    assert_eq!(
        message.as_deref(),
        Some(
            "[custom] Service shop/api: the CEL rule exceeded its cost limit of 1000000 steps at validation 0 and \
             counts as failed; simplify the expression"
        )
    );
    assert!(decision.findings.iter().all(|finding| !finding.pre_existing), "{:?}", decision.findings);
}

/// An HTTPRoute with a path match: `matches` is a field no built-in rule
/// reads, so it is not in the engine's lean HTTPRoute type.
fn route(path: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "web", "labels": {"team": "shop"}},
           "spec": {"parentRefs": [{"name": "public", "namespace": "infra"}], "hostnames": ["shop.example.com"],
                    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                               "backendRefs": [{"name": "web", "port": 80}]}]},
           "status": {"parents": []}})
}

#[test]
fn a_cel_rule_sees_the_whole_gateway_api_object_as_sent() {
    let set = policies(
        "      validations:
        - expression: \"object.spec.rules.all(r, !has(r.matches) || r.matches.all(m, !m.path.value.startsWith('/admin')))\"
          messageExpression: \"'path ' + object.spec.rules[0].matches[0].path.value + ' is internal (' + request.kind.kind + ' ' + request.kind.version + ')'\"
        - expression: \"oldObject == null || oldObject.spec.hostnames == object.spec.hostnames\"
          message: \"hostnames cannot change\"
        - expression: \"!has(object.status) && !has(object.metadata.managedFields) && object.metadata.labels.team == 'shop'\"
          message: \"status and managedFields are not kept\"
  match: {kinds: [HTTPRoute]}
",
    );
    // Read in one pass, as the webhook reads what the API server sends.
    assert_eq!(
        judge(&set, &review("CREATE", "shop", route("/admin/users"), None)).as_deref(),
        Some("[custom] HTTPRoute shop/web: path /admin/users is internal (HTTPRoute v1)")
    );
    assert_eq!(judge(&set, &review("CREATE", "shop", route("/shop"), None)), None);
    let mut moved = route("/shop");
    moved["spec"]["hostnames"] = json!(["www.example.com"]);
    assert_eq!(
        judge(&set, &review("UPDATE", "shop", moved, Some(route("/shop")))).as_deref(),
        Some("[custom] HTTPRoute shop/web: hostnames cannot change")
    );
    // Read in passes (a body the one pass does not take: `object` before
    // `kind`), and as `check` reads a manifest: the same verdict.
    let mut body = review("CREATE", "shop", route("/admin"), None);
    let request = body["request"].take();
    let mut reordered = serde_json::Map::new();
    reordered.insert("object".into(), request["object"].clone());
    for (key, value) in request.as_object().unwrap() {
        reordered.entry(key.clone()).or_insert_with(|| value.clone());
    }
    body["request"] = Value::Object(reordered);
    assert_eq!(
        judge(&set, &body).as_deref(),
        Some("[custom] HTTPRoute shop/web: path /admin is internal (HTTPRoute v1)")
    );
    let manifest = Review::from_manifest(
        &route("/admin"),
        "shop",
        engine::Operation::Create,
        portcullis::admission::Requester::default(),
    );
    let decision = engine::evaluate(&manifest.input(Stage::Validate), &set, NamespaceLabels::none());
    assert_eq!(
        decision.message(manifest.about(), &set),
        "[custom] HTTPRoute shop/web: path /admin is internal (HTTPRoute v1)"
    );
}

/// Runs `portcullis <args> -` on a LoadBalancer without a cost-center label,
/// with the policies of docs/examples/cel: exit code and standard output.
fn run_on_a_load_balancer(args: &[&str]) -> (Option<i32>, Vec<u8>) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .args(["--policies", "docs/examples/cel", "-"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec: {type: LoadBalancer}\n",
        )
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.code(), output.stdout)
}

#[test]
fn report_lists_a_cel_violation_on_the_entry_point() {
    let (code, stdout) = run_on_a_load_balancer(&["report", "-o", "json"]);
    assert_eq!(code, Some(0));
    let report: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(
        report["entries"][0]["violations"],
        json!([{"policy": "loadbalancer-cost-center", "severity": "deny",
                "message": "a LoadBalancer needs a cost-center label; add metadata.labels.cost-center (or label the namespace)"}])
    );
}

#[test]
fn check_json_and_sarif_name_the_failed_validation() {
    let run = |format: &str| -> Value {
        let (code, stdout) = run_on_a_load_balancer(&["check", "-o", format]);
        assert_eq!(code, Some(1));
        serde_json::from_slice(&stdout).unwrap()
    };
    let expression = "!has(object.spec.type) || object.spec.type != 'LoadBalancer' || (has(object.metadata.labels) && \
                      'cost-center' in object.metadata.labels) || (has(namespaceObject.metadata.labels) && \
                      'cost-center' in namespaceObject.metadata.labels)";
    let json = run("json");
    assert_eq!(json["results"][0]["findings"][0]["validation"], json!({"index": 0, "expression": expression}));
    let sarif = run("sarif");
    assert_eq!(
        sarif["runs"][0]["results"][0]["properties"],
        json!({"validation": {"index": 0, "expression": expression}})
    );
}

#[test]
fn request_name_is_empty_for_a_generated_name_as_the_api_server_sends_it() {
    let set = policies(
        "      validations:
        - expression: \"request.name == '' || request.name == object.metadata.name\"
          message: \"request.name is the object's name\"
        - expression: \"request.name != ''\"
          messageExpression: \"'generated from ' + object.metadata.generateName\"
",
    );
    let generated = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"generateName": "web-"}, "spec": {}});
    assert_eq!(
        judge(&set, &review("CREATE", "shop", generated, None)).as_deref(),
        Some("[custom] Service shop/web-: generated from web-")
    );
    assert_eq!(judge(&set, &review("CREATE", "shop", service("api", json!({}), json!({})), None)), None);
}

/// The webhook serving `set`, answering within `timeout`.
fn webhook(set: PolicySet, timeout: std::time::Duration) -> axum::Router {
    let limits = portcullis::webhook::Limits { max_in_flight: 8, request_timeout: timeout };
    let store = portcullis::policy::PolicyStore::new(set);
    let metrics = std::sync::Arc::new(portcullis::metrics::Metrics::new());
    portcullis::webhook::webhook_router(portcullis::webhook::AppState::with_limits(store, metrics, None, limits))
}

#[tokio::test]
async fn the_webhook_answers_a_cel_review_with_the_rules_message() {
    let webhook = webhook(policies(COST_CENTER), std::time::Duration::from_secs(3));
    let lb = service("api", json!({}), json!({"type": "LoadBalancer"}));
    let out = common::http::post_review(&webhook, "/validate", &review("CREATE", "shop", lb, None)).await;
    assert_eq!(out["response"]["allowed"], false, "{out}");
    assert_eq!(
        out["response"]["status"]["message"],
        "[custom] Service shop/api: a LoadBalancer needs a cost-center label; add metadata.labels.cost-center"
    );
}

/// A costly CEL evaluation runs off the runtime's workers: on this test's
/// one-thread runtime, evaluated inline it would hold the timer until it
/// finished (about a second in a debug build) and answer 200; off the
/// runtime, `--request-timeout` answers first.
#[tokio::test]
async fn a_costly_cel_review_does_not_hold_the_runtime_past_the_request_timeout() {
    let webhook = webhook(policies(EXPENSIVE), std::time::Duration::from_millis(50));
    let body = serde_json::to_vec(&with_ports(1000)).unwrap();
    let reply = common::http::post(&webhook, "/validate", Some("application/json"), body).await;
    assert_eq!(reply.status, axum::http::StatusCode::REQUEST_TIMEOUT, "{}", reply.text());
    assert_eq!(reply.text(), "review not received and answered within 0.05s\n");
}

#[test]
fn only_reviews_a_cel_policy_may_judge_get_the_small_inline_budget() {
    let yaml = "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: hosts}\n\
                spec:\n  action: Deny\n  match: {kinds: [Ingress]}\n  rule:\n    cel:\n\
                \x20     validations: [{expression: \"true\"}]\n";
    let set = portcullis::policy::load_sources(&[("hosts.yaml".into(), yaml.into())]).expect("the policy loads");
    assert!(set.runs_cel(engine::Kind::Ingress, Stage::Validate));
    assert!(!set.runs_cel(engine::Kind::Ingress, Stage::Mutate));
    assert!(!set.runs_cel(engine::Kind::Service, Stage::Validate));
    assert!(!common::bundled().runs_cel(engine::Kind::Ingress, Stage::Validate));
}

/// Two nested `all`s over 400 ports: about 480,000 steps, more than a review
/// may take on a runtime worker, less than a rule's budget.
const QUADRATIC: &str = "      validations:
        - expression: \"object.spec.ports.all(a, object.spec.ports.all(b, a.port > 0 && b.port > 0))\"
          message: \"a port is not positive\"
";

#[test]
fn a_review_given_a_smaller_budget_says_it_was_spent() {
    let set = policies(QUADRATIC);
    let review = Review::decode(&serde_json::to_vec(&with_ports(400)).unwrap()).unwrap();
    let input = review.input(Stage::Validate);
    let small = engine::evaluate_within(&input, &set, NamespaceLabels::none(), 100_000);
    assert!(small.cel_budget_spent);
    assert_eq!(small.cost_exceeded, [0]);
    let full = engine::evaluate(&input, &set, NamespaceLabels::none());
    assert!(!full.cel_budget_spent);
    assert!(full.allowed(), "{:?}", full.findings);
    assert_eq!(full.cost_exceeded, [] as [usize; 0]);
}

/// Past the steps a review may take on a runtime worker, the webhook
/// evaluates it again with the full budget: the verdict is the rule's, not a
/// cut-off.
#[tokio::test]
async fn a_review_past_the_inline_budget_gets_the_rules_own_verdict() {
    let webhook = webhook(policies(QUADRATIC), std::time::Duration::from_secs(30));
    let out = common::http::post_review(&webhook, "/validate", &with_ports(400)).await;
    assert_eq!(out["response"]["allowed"], true, "{out}");
}
