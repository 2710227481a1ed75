//! Gateway API objects under the bundled policies, from AdmissionReview bodies in
//! the shape the API server sends for custom resources (`tests/fixtures/gateway-api/`:
//! `kind.group gateway.networking.k8s.io`, `resource gateways`, CRD defaults filled
//! in): exact verdicts, messages and warnings. Routes are judged against the
//! Gateways the webhook would know; an unknown one is judged fail-safe.

use crate::common;

use common::http::post_review;
use common::{bundled, fixture};
use portcullis::admission::Review;
use portcullis::engine::gateway::GatewayView;
use portcullis::engine::{self, NamespaceLabels, PolicySet, Stage};
use portcullis::webhook::{AppState, webhook_router};
use serde_json::{Value, json};

/// What the API server would see.
#[derive(Debug, PartialEq)]
struct Verdict {
    allowed: bool,
    message: String,
    warnings: Vec<String>,
}

fn body(name: &str) -> Value {
    fixture(&format!("gateway-api/{name}.json"))
}

/// The verdict on a review body, with the Gateways of `gateways` known.
fn judge_with(set: &PolicySet, body: &Value, gateways: &GatewayView) -> Verdict {
    let review = Review::decode(&serde_json::to_vec(body).unwrap()).unwrap();
    let input = engine::Input { gateways, ..review.input(Stage::Validate) };
    let decision = engine::evaluate(&input, set, NamespaceLabels::none());
    let about = review.about();
    Verdict {
        allowed: decision.allowed(),
        message: decision.message(about, set),
        warnings: decision.client_warnings(about, set),
    }
}

fn judge(name: &str, gateways: &GatewayView) -> Verdict {
    judge_with(&bundled(), &body(name), gateways)
}

/// The Gateway of `gateway-create-https.json` (production/public: listener `http`
/// on :80 and `https` on :443, both `*.example.com`), as the webhook's cache holds it.
fn public_gateway() -> GatewayView {
    let mut view = GatewayView::default();
    assert!(view.insert_manifest(&body("gateway-create-https")["request"]["object"], "production"));
    view
}

fn allowed() -> Verdict {
    Verdict { allowed: true, message: String::new(), warnings: vec![] }
}

fn denied(lines: &[&str], warnings: &[&str]) -> Verdict {
    Verdict { allowed: false, message: lines.join("\n"), warnings: warnings.iter().map(|w| (*w).to_owned()).collect() }
}

const NO_AUTH: &str = "no authentication the Gateway enforces; add an ExternalAuth filter, an approved Middleware \
                       ExtensionRef or a SecurityPolicy/AuthPolicy on the route or its Gateway, or \
                       portcullis.dev/auth: application";

#[test]
fn denies_an_http_listener_that_admits_routes_from_every_namespace_in_production() {
    assert_eq!(
        judge("gateway-create-http-from-all", &GatewayView::default()),
        denied(
            &["[restrict-gateway-allowed-routes] Gateway production/public: listener \"http\" (HTTP, port 80) admits \
               routes from every namespace (allowedRoutes.namespaces.from: All); set from: Same, or Selector with a \
               selector naming the namespaces"],
            &[]
        )
    );
}

#[test]
fn warns_an_http_listener_that_admits_routes_from_every_namespace_elsewhere() {
    let review = common::in_namespace(body("gateway-create-http-from-all"), "staging");
    assert_eq!(
        judge_with(&bundled(), &review, &GatewayView::default()),
        Verdict {
            allowed: true,
            message: String::new(),
            warnings: vec![
                "[warn-gateway-allowed-routes] Gateway staging/public: listener \"http\" (HTTP, port 80) admits routes \
                 from every namespace (allowedRoutes.namespaces.from: All); set from: Same, or Selector with a \
                 selector naming the namespaces"
                    .to_owned()
            ],
        }
    );
}

#[test]
fn denies_an_https_listener_without_certificate_refs() {
    assert_eq!(
        judge("gateway-create-https-without-certificate", &GatewayView::default()),
        denied(
            &["[require-gateway-tls] Gateway production/public: listener \"https\" (HTTPS, port 443) has no \
               tls.certificateRefs, so it has no certificate to serve; add tls.certificateRefs naming the Secret \
               with its certificate"],
            &[]
        )
    );
}

#[test]
fn allows_an_https_listener_with_a_certificate_next_to_the_redirect_listener() {
    assert_eq!(judge("gateway-create-https", &GatewayView::default()), allowed());
}

#[test]
fn allows_a_passthrough_tls_listener_only_when_the_policy_says_so() {
    let passthrough = "[require-gateway-tls] Gateway production/public: listener \"tls\" (TLS, port 443) passes TLS \
                       through to the backend (tls.mode: Passthrough), which this policy forbids; use tls.mode: \
                       Terminate with tls.certificateRefs";
    assert_eq!(judge("gateway-create-tls-passthrough", &GatewayView::default()), denied(&[passthrough], &[]));

    let allowing = portcullis::policy::load_sources(&[(
        "passthrough.yaml".into(),
        "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: require-gateway-tls}\n\
         spec: {action: Deny, rule: {gatewayListeners: {allowPassthrough: true}}}\n"
            .to_owned(),
    )])
    .unwrap();
    assert_eq!(judge_with(&allowing, &body("gateway-create-tls-passthrough"), &GatewayView::default()), allowed());
}

#[test]
fn denies_a_route_on_the_plain_http_listener_unless_it_redirects_to_https() {
    let gateways = public_gateway();
    assert_eq!(
        judge("httproute-create-on-http-listener", &gateways),
        denied(
            &[
                "[require-gateway-auth] HTTPRoute production/web: no authentication the Gateway enforces; add an \
                 ExternalAuth filter, an approved Middleware ExtensionRef or a SecurityPolicy/AuthPolicy on the route \
                 or its Gateway, or portcullis.dev/auth: application",
                "[require-route-tls] HTTPRoute production/web: attached to listener \"http\" (HTTP, port 80) of \
                 Gateway production/public, which serves plain HTTP, so requests and credentials travel unencrypted; \
                 set parentRefs[0].sectionName to an HTTPS listener, or make every rule a RequestRedirect with scheme \
                 https",
            ],
            &[]
        )
    );
    assert_eq!(judge("httproute-create-https-redirect", &gateways), allowed());
}

#[test]
fn denies_a_grpc_route_on_the_plain_http_listener() {
    let verdict = judge("grpcroute-create-on-http-listener", &public_gateway());
    assert!(!verdict.allowed);
    assert!(
        verdict.message.contains(
            "[require-route-tls] GRPCRoute production/api: attached to listener \"http\" (HTTP, port 80) of Gateway \
             production/public, which serves plain HTTP"
        ),
        "{}",
        verdict.message
    );
}

#[test]
fn denies_a_route_hostname_a_wildcard_listener_covers_only_as_a_suffix() {
    let mut review = body("httproute-create-uncovered-hostname");
    // With authentication, so that the hostname is the one problem.
    review["request"]["object"]["metadata"]["annotations"]["portcullis.dev/auth"] = json!("application");
    assert_eq!(
        judge_with(&bundled(), &review, &public_gateway()),
        denied(
            &["[restrict-route-hostnames] HTTPRoute production/web: hostname a.b.example.com is not covered by \
               *.example.com of listener \"https\" (HTTPS, port 443) of Gateway production/public: a wildcard covers \
               exactly one label, as in a TLS certificate; attach to a listener whose hostname covers it, or use one \
               label under example.com"],
            &[]
        )
    );
}

#[test]
fn denies_a_production_route_without_authentication_and_allows_one_with_an_external_auth_filter() {
    let gateways = public_gateway();
    assert_eq!(
        judge("httproute-create-without-auth", &gateways),
        denied(&[&format!("[require-gateway-auth] HTTPRoute production/web: {NO_AUTH}")], &[])
    );
    assert_eq!(judge("httproute-create-external-auth", &gateways), allowed());
}

#[test]
fn denies_a_reference_grant_that_opens_secrets_to_every_namespace() {
    assert_eq!(
        judge("referencegrant-create-secrets-from-any", &GatewayView::default()),
        denied(
            &["[restrict-reference-grants] ReferenceGrant production/certificates: spec.from[0] opens all Secrets of \
               this namespace to Gateways of every namespace (namespace \"*\"); name each namespace that needs them \
               in a from entry of its own"],
            &[]
        )
    );
}

#[test]
fn judges_a_route_to_an_unknown_gateway_fail_safe_and_says_so() {
    let notice = "[portcullis] HTTPRoute production/web: Gateway infra/elsewhere is unknown, so the route was judged as \
                  if it attached to a plain HTTP listener without hostname";
    let mut review = body("httproute-create-unknown-gateway");
    review["request"]["object"]["metadata"]["annotations"]["portcullis.dev/auth"] = json!("application");
    assert_eq!(
        judge_with(&bundled(), &review, &public_gateway()),
        denied(
            &[
                "[require-route-tls] HTTPRoute production/web: Gateway infra/elsewhere is unknown, so parentRefs[0] may \
               attach to a plain HTTP listener; apply the Gateway first, or make every rule a RequestRedirect with \
               scheme https"
            ],
            &[notice]
        )
    );
}

/// The same bodies through the webhook's router, as the API server posts them
/// (no cluster: every Gateway is unknown to the webhook).
#[tokio::test]
async fn the_webhook_answers_gateway_api_reviews() {
    let router = webhook_router(AppState::new(bundled()));
    let gateway = body("gateway-create-https-without-certificate");
    let answer = post_review(&router, "/validate", &gateway).await;
    assert_eq!(answer["response"]["uid"], gateway["request"]["uid"]);
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 403);
    assert_eq!(
        answer["response"]["status"]["message"],
        "[require-gateway-tls] Gateway production/public: listener \"https\" (HTTPS, port 443) has no \
         tls.certificateRefs, so it has no certificate to serve; add tls.certificateRefs naming the Secret with its \
         certificate"
    );

    let route = body("httproute-create-external-auth");
    let answer = post_review(&router, "/validate", &route).await;
    assert_eq!(answer["response"]["allowed"], false, "the Gateway is unknown to a webhook without a cluster");
    assert_eq!(
        answer["response"]["warnings"],
        json!([
            "[portcullis] HTTPRoute production/web: Gateway production/public is unknown, so the route was judged \
                as if it attached to a plain HTTP listener without hostname"
        ])
    );

    // Nothing to mutate in a Gateway API object.
    let answer = post_review(&router, "/mutate", &body("gateway-create-https")).await;
    assert_eq!(answer["response"], json!({"uid": body("gateway-create-https")["request"]["uid"], "allowed": true}));

    // An Istio Gateway is not ours, whatever its kind says.
    let mut istio = body("gateway-create-http-from-all");
    istio["request"]["kind"]["group"] = json!("networking.istio.io");
    istio["request"]["object"]["apiVersion"] = json!("networking.istio.io/v1");
    let answer = post_review(&router, "/validate", &istio).await;
    assert_eq!(answer["response"]["allowed"], true);
}

/// A Gateway API object that does not fit its schema is denied with a clear message.
#[test]
fn denies_an_unreadable_gateway() {
    let mut review = body("gateway-create-https");
    review["request"]["object"]["spec"]["listeners"][1]["port"] = json!("https");
    assert_eq!(
        judge_with(&bundled(), &review, &GatewayView::default()),
        denied(
            &["[portcullis] Gateway production/public: the object cannot be read as a Gateway: \
               spec.listeners[1].port: invalid type: string \"https\", expected i32; correct the manifest"],
            &[]
        )
    );
}
