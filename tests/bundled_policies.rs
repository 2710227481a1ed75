//! The bundled policies, evaluated by the engine with exact verdicts and
//! messages: the acceptance cases of the webhook, without any HTTP.

use crate::common;

use common::{bundled, review};
use portcullis::admission::Review;
use portcullis::engine::{self, NamespaceLabels, Stage};
use serde_json::{Value, json};

/// What the engine says about a review, as the API server would see it.
#[derive(Debug, PartialEq)]
struct Verdict {
    allowed: bool,
    message: String,
    warnings: Vec<String>,
}

fn judge(body: &Value) -> Verdict {
    let review = Review::decode(&serde_json::to_vec(body).unwrap()).unwrap();
    let set = bundled();
    let decision = engine::evaluate(&review.input(Stage::Validate), &set, NamespaceLabels::none());
    let about = review.about();
    Verdict {
        allowed: decision.allowed(),
        message: decision.message(about, &set),
        warnings: decision.warnings(about, &set),
    }
}

fn allowed() -> Verdict {
    Verdict { allowed: true, message: String::new(), warnings: vec![] }
}

fn denied(lines: &[&str]) -> Verdict {
    Verdict { allowed: false, message: lines.join("\n"), warnings: vec![] }
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn ingress(name: &str, annotations: Value, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": name, "annotations": annotations}, "spec": spec})
}

/// An nginx Ingress for `host` with TLS, authentication and an allow-list: passes everything.
fn good_ingress_annotations() -> Value {
    json!({"nginx.ingress.kubernetes.io/auth-url": "https://auth.example.com/oauth2/auth",
           "nginx.ingress.kubernetes.io/whitelist-source-range": "203.0.113.0/24"})
}

fn tls_spec(hosts: Value, tls: Value) -> Value {
    let rules: Vec<Value> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|host| {
            json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}})
        })
        .collect();
    json!({"ingressClassName": "nginx", "rules": rules, "tls": tls})
}

const NODEPORT: &str =
    "type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS";

#[test]
fn rejects_nodeport_in_production() {
    let svc = service("web", json!({"type": "NodePort", "ports": [{"port": 80}]}));
    for namespace in ["production", "prod", "prod-eu", "shop-prod", "shop-production"] {
        assert_eq!(
            judge(&review("CREATE", namespace, svc.clone(), None)),
            denied(&[&format!("[no-nodeport-in-production] Service {namespace}/web: {NODEPORT}")]),
        );
    }
}

#[test]
fn allows_nodeport_in_dev() {
    let svc = service("web", json!({"type": "NodePort", "ports": [{"port": 80}]}));
    assert_eq!(judge(&review("CREATE", "dev", svc.clone(), None)), allowed());
    assert_eq!(judge(&review("CREATE", "production-tools", svc, None)), allowed());
}

#[test]
fn treats_an_omitted_type_as_cluster_ip() {
    let svc = service("web", json!({"ports": [{"port": 80}]}));
    assert_eq!(judge(&review("CREATE", "production", svc, None)), allowed());
}

#[test]
fn warns_on_loadbalancer_in_production() {
    let svc = service("web", json!({"type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24"]}));
    assert_eq!(
        judge(&review("CREATE", "production", svc.clone(), None)),
        Verdict {
            allowed: true,
            message: String::new(),
            warnings: vec![
                "[warn-loadbalancer-in-production] Service production/web: type LoadBalancer costs a public IP per Service and has no routing or TLS; prefer ClusterIP behind an Ingress".into()
            ],
        }
    );
    assert_eq!(judge(&review("CREATE", "dev", svc, None)), allowed());
}

#[test]
fn rejects_world_open_loadbalancer_in_production() {
    let svc = service("web", json!({"type": "LoadBalancer", "loadBalancerSourceRanges": ["0.0.0.0/0"]}));
    let verdict = judge(&review("CREATE", "production", svc, None));
    assert_eq!(
        (verdict.allowed, verdict.message.as_str()),
        (
            false,
            "[restrict-loadbalancer-source-ranges] Service production/web: spec.loadBalancerSourceRanges includes 0.0.0.0/0, which opens it to the whole internet; list only the client CIDRs"
        )
    );
    let unrestricted = service("web", json!({"type": "LoadBalancer"}));
    assert_eq!(
        judge(&review("CREATE", "production", unrestricted, None)).message,
        "[restrict-loadbalancer-source-ranges] Service production/web: type LoadBalancer without loadBalancerSourceRanges is open to the whole internet; set spec.loadBalancerSourceRanges to the client CIDRs"
    );
}

#[test]
fn rejects_external_ips_everywhere() {
    let svc = service("web", json!({"ports": [{"port": 80}], "externalIPs": ["198.51.100.20"]}));
    assert_eq!(
        judge(&review("CREATE", "dev", svc, None)),
        denied(&[
            "[no-external-ips] Service dev/web: spec.externalIPs 198.51.100.20 can intercept cluster traffic (CVE-2020-8554); remove spec.externalIPs and expose the Service through an Ingress"
        ])
    );
}

#[test]
fn allows_a_complete_ingress_in_production() {
    assert_eq!(shop_ingress("production", good_ingress_annotations()), allowed());
}

#[test]
fn rejects_a_host_not_covered_by_tls() {
    let ing = ingress(
        "shop",
        good_ingress_annotations(),
        tls_spec(
            json!(["shop.example.com", "api.example.com"]),
            json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]),
        ),
    );
    assert_eq!(
        judge(&review("CREATE", "dev", ing, None)),
        denied(&[
            "[require-ingress-tls] Ingress dev/shop: host api.example.com is not covered by spec.tls, so it is served over plain HTTP; add it to spec.tls[].hosts with a secretName"
        ])
    );
}

#[test]
fn a_tls_entry_without_hosts_covers_nothing() {
    let ing = ingress("shop", good_ingress_annotations(), tls_spec(json!(["shop.example.com"]), json!([{}])));
    assert_eq!(
        judge(&review("CREATE", "dev", ing, None)),
        denied(&[
            "[require-ingress-tls] Ingress dev/shop: host shop.example.com is not covered by spec.tls, so it is served over plain HTTP; add it to spec.tls[].hosts with a secretName"
        ])
    );
}

#[test]
fn a_wildcard_covers_one_label_only() {
    let wildcard = json!([{"hosts": ["*.example.com"], "secretName": "wildcard-tls"}]);
    let one = ingress("shop", good_ingress_annotations(), tls_spec(json!(["a.example.com"]), wildcard.clone()));
    assert_eq!(judge(&review("CREATE", "dev", one, None)), allowed());
    let two = ingress("shop", good_ingress_annotations(), tls_spec(json!(["a.b.example.com"]), wildcard));
    assert_eq!(
        judge(&review("CREATE", "dev", two, None)),
        denied(&[
            "[require-ingress-tls] Ingress dev/shop: host a.b.example.com is not covered by spec.tls, so it is served over plain HTTP; add it to spec.tls[].hosts with a secretName"
        ])
    );
}

#[test]
fn rejects_a_hostless_rule() {
    let ing = ingress(
        "shop",
        good_ingress_annotations(),
        json!({"ingressClassName": "nginx",
               "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                          "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}),
    );
    assert_eq!(
        judge(&review("CREATE", "dev", ing, None)),
        denied(&[
            "[require-ingress-tls] Ingress dev/shop: spec.rules[0] has no host, so it answers any host name without a certificate; set spec.rules[0].host and list it in spec.tls"
        ])
    );
}

#[test]
fn rejects_nginx_ssl_redirect_false_on_a_tls_ingress() {
    let mut annotations = good_ingress_annotations();
    annotations["nginx.ingress.kubernetes.io/ssl-redirect"] = json!("false");
    assert_eq!(
        shop_ingress("dev", annotations),
        denied(&[
            "[require-ingress-tls] Ingress dev/shop: nginx.ingress.kubernetes.io/ssl-redirect: \"false\" serves the hosts over plain HTTP; remove the annotation"
        ])
    );
}

/// The verdict on a TLS-covered nginx Ingress `shop` with these annotations.
fn shop_ingress(namespace: &str, annotations: Value) -> Verdict {
    let ing = ingress(
        "shop",
        annotations,
        tls_spec(json!(["shop.example.com"]), json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}])),
    );
    judge(&review("CREATE", namespace, ing, None))
}

const NO_AUTH: &str = "no authentication for the nginx controller; set nginx.ingress.kubernetes.io/auth-url, auth-type+auth-secret or auth-tls-secret, or portcullis.dev/auth: application";

#[test]
fn rejects_an_ingress_without_authentication_in_production() {
    let allow_list = json!({"nginx.ingress.kubernetes.io/whitelist-source-range": "203.0.113.0/24"});
    assert_eq!(
        shop_ingress("production", allow_list),
        denied(&[&format!("[require-ingress-auth] Ingress production/shop: {NO_AUTH}")])
    );
}

#[test]
fn warns_on_an_ingress_without_authentication_in_dev() {
    let allow_list = json!({"nginx.ingress.kubernetes.io/whitelist-source-range": "203.0.113.0/24"});
    assert_eq!(
        shop_ingress("dev", allow_list),
        Verdict {
            allowed: true,
            message: String::new(),
            warnings: vec![format!("[warn-ingress-auth] Ingress dev/shop: {NO_AUTH}")]
        }
    );
}

#[test]
fn allows_an_ingress_with_auth_url_in_production() {
    assert_eq!(shop_ingress("production", good_ingress_annotations()), allowed());
}

#[test]
fn accepts_application_auth_with_a_warning() {
    let annotations = json!({"portcullis.dev/auth": "application",
                             "nginx.ingress.kubernetes.io/whitelist-source-range": "203.0.113.0/24"});
    assert_eq!(
        shop_ingress("production", annotations),
        Verdict {
            allowed: true,
            message: String::new(),
            warnings: vec!["[require-ingress-auth] Ingress production/shop: authentication is left to the application (portcullis.dev/auth: application); make sure every path checks credentials".into()]
        }
    );
}

#[test]
fn rejects_snippet_annotations() {
    let mut annotations = good_ingress_annotations();
    annotations["nginx.ingress.kubernetes.io/configuration-snippet"] = json!("more_set_headers \"X: y\";");
    assert_eq!(
        shop_ingress("dev", annotations),
        denied(&[
            "[no-configuration-snippets] Ingress dev/shop: annotation nginx.ingress.kubernetes.io/configuration-snippet is not allowed (snippets inject raw nginx configuration into the shared controller (CVE-2021-25742)); remove it"
        ])
    );
}

#[test]
fn honours_exceptions_by_user() {
    let svc = service("web", json!({"type": "NodePort", "ports": [{"port": 80}]}));
    let mut body = review("CREATE", "production", svc, None);
    body["request"]["userInfo"] = json!({"username": "system:serviceaccount:ops:break-glass", "groups": []});
    assert_eq!(judge(&body), allowed());
}

#[test]
fn allows_delete() {
    let svc = service("web", json!({"type": "NodePort", "externalIPs": ["198.51.100.20"]}));
    assert_eq!(judge(&review("DELETE", "production", Value::Null, Some(svc))), allowed());
}

#[test]
fn dry_run_gets_the_same_verdict() {
    let svc = service("web", json!({"type": "NodePort", "ports": [{"port": 80}]}));
    let mut body = review("CREATE", "production", svc, None);
    let wet = judge(&body);
    body["request"]["dryRun"] = json!(true);
    assert_eq!(judge(&body), wet);
    assert!(!wet.allowed);
}

#[test]
fn warns_on_update_of_an_object_that_already_violated() {
    let old = service("web", json!({"type": "NodePort", "ports": [{"port": 80}]}));
    let new = service("web", json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}));
    assert_eq!(
        judge(&review("UPDATE", "production", new, Some(old))),
        Verdict {
            allowed: true,
            message: String::new(),
            warnings: vec![format!(
                "[no-nodeport-in-production] Service production/web: {NODEPORT} (pre-existing, allowed for now)"
            )],
        }
    );
}

#[test]
fn denies_update_that_introduces_the_violation() {
    let old = service("web", json!({"type": "ClusterIP", "ports": [{"port": 80}]}));
    let new = service("web", json!({"type": "NodePort", "ports": [{"port": 80}]}));
    assert_eq!(
        judge(&review("UPDATE", "production", new, Some(old))),
        denied(&[&format!("[no-nodeport-in-production] Service production/web: {NODEPORT}")])
    );
}

/// A production LoadBalancer admitted before the policies: open to the world,
/// holding the service controller's cleanup finalizer.
fn legacy_loadbalancer(labels: Value, deletion: Option<&str>) -> Value {
    let mut svc = service("legacy-lb", json!({"type": "LoadBalancer", "ports": [{"port": 443}]}));
    svc["metadata"]["labels"] = labels;
    svc["metadata"]["finalizers"] = json!(["service.kubernetes.io/load-balancer-cleanup"]);
    if let Some(timestamp) = deletion {
        svc["metadata"]["deletionTimestamp"] = json!(timestamp);
    }
    svc
}

const OPEN_LB: &str = "[restrict-loadbalancer-source-ranges] Service production/legacy-lb: type LoadBalancer without loadBalancerSourceRanges is open to the whole internet; set spec.loadBalancerSourceRanges to the client CIDRs";
const PAID_LB: &str = "[warn-loadbalancer-in-production] Service production/legacy-lb: type LoadBalancer costs a public IP per Service and has no routing or TLS; prefer ClusterIP behind an Ingress";

#[test]
fn allows_finalizer_removal_from_a_violating_object_being_deleted() {
    let old = legacy_loadbalancer(json!({"app": "shop"}), Some("2026-12-02T10:00:00Z"));
    let mut new = old.clone();
    new["metadata"]["finalizers"] = json!([]);
    assert_eq!(judge(&review("UPDATE", "production", new, Some(old))), allowed());
    // Even a terminating object the old version of which was fine is not judged.
    let mut worse = legacy_loadbalancer(json!({}), Some("2026-12-02T10:00:00Z"));
    worse["spec"]["type"] = json!("NodePort");
    assert_eq!(judge(&review("UPDATE", "production", worse, None)), allowed());
}

#[test]
fn allows_a_label_only_update_of_a_violating_loadbalancer_with_a_warning() {
    let old = legacy_loadbalancer(json!({"app": "shop"}), None);
    let new = legacy_loadbalancer(json!({"app": "shop", "team": "payments"}), None);
    assert_eq!(
        judge(&review("UPDATE", "production", new, Some(old))),
        Verdict {
            allowed: true,
            message: String::new(),
            warnings: vec![format!("{OPEN_LB} (pre-existing, allowed for now)"), PAID_LB.to_owned()],
        }
    );
}

#[test]
fn denies_a_new_violation_in_an_update_of_a_violating_object() {
    let old = legacy_loadbalancer(json!({}), None);
    let mut new = legacy_loadbalancer(json!({}), None);
    new["spec"]["externalIPs"] = json!(["198.51.100.20"]);
    let verdict = judge(&review("UPDATE", "production", new, Some(old)));
    assert_eq!(
        verdict,
        Verdict {
            allowed: false,
            message: "[no-external-ips] Service production/legacy-lb: spec.externalIPs 198.51.100.20 can intercept cluster traffic (CVE-2020-8554); remove spec.externalIPs and expose the Service through an Ingress".into(),
            warnings: vec![format!("{OPEN_LB} (pre-existing, allowed for now)"), PAID_LB.to_owned()],
        }
    );
    // A CREATE of the same violating object is denied outright.
    let created = judge(&review("CREATE", "production", legacy_loadbalancer(json!({}), None), None));
    assert_eq!((created.allowed, created.message.as_str()), (false, OPEN_LB));
}

#[test]
fn denies_an_object_that_fails_typed_parsing_for_a_matched_kind() {
    let broken = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": "80"}});
    assert_eq!(
        judge(&review("CREATE", "dev", broken, None)),
        denied(&[
            "[portcullis] Service dev/web: the object cannot be read as a Service: spec.ports: invalid type: string \"80\", expected a sequence; correct the manifest"
        ])
    );
    // Several policies match in production: said once, under portcullis' own name, and still denied.
    let broken = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": 7}});
    assert_eq!(
        judge(&review("CREATE", "production", broken.clone(), None)),
        denied(&[
            "[portcullis] Service production/web: the object cannot be read as a Service: spec.type: invalid type: integer `7`, expected a string; correct the manifest"
        ])
    );
    // An Ingress, with its article; warn-ingress-auth and ingress-source-allow-list match too.
    let broken = ingress("web", json!({}), json!({"ingressClassName": "nginx", "rules": [{"host": ["a", "b"]}]}));
    assert_eq!(
        judge(&review("CREATE", "dev", broken, None)),
        denied(&[
            "[portcullis] Ingress dev/web: the object cannot be read as an Ingress: spec.rules[0].host: invalid type: sequence, expected a string; correct the manifest"
        ])
    );
    // No policy matches in kube-system: nothing to judge, nothing said.
    assert_eq!(
        judge(&review(
            "CREATE",
            "kube-system",
            json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": 7}}),
            None
        )),
        allowed()
    );
}

#[test]
fn names_an_object_by_its_generate_name_or_unnamed() {
    let generated = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"generateName": "web-"},
                           "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
    assert_eq!(
        judge(&review("CREATE", "production", generated, None)),
        denied(&[&format!("[no-nodeport-in-production] Service production/web-: {NODEPORT}")])
    );
    let nameless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {},
                          "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
    assert_eq!(
        judge(&review("CREATE", "production", nameless, None)),
        denied(&[&format!("[no-nodeport-in-production] Service production/(unnamed): {NODEPORT}")])
    );
    let unreadable = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"labels": []}});
    assert_eq!(
        judge(&review("CREATE", "dev", unreadable, None)),
        denied(&[
            "[portcullis] Service dev/(unnamed): the object cannot be read as a Service: metadata.labels: invalid type: sequence, expected a map; correct the manifest"
        ])
    );
}

#[test]
fn a_decision_never_repeats_a_line() {
    // An unknown class is judged by every controller's switches; gce and contour share this one.
    let spec = json!({"ingressClassName": "my-own", "rules": [{"host": "shop.example.com"}],
                      "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]});
    let verdict = judge(&review(
        "CREATE",
        "dev",
        ingress("shop", json!({"kubernetes.io/ingress.allow-http": "true"}), spec),
        None,
    ));
    let tls: Vec<&str> = verdict.message.lines().filter(|line| line.starts_with("[require-ingress-tls]")).collect();
    assert_eq!(
        tls,
        [
            "[require-ingress-tls] Ingress dev/shop: kubernetes.io/ingress.allow-http: \"true\" serves the hosts over plain HTTP; set it to \"false\""
        ]
    );
    let lines: Vec<&str> = verdict.message.lines().chain(verdict.warnings.iter().map(String::as_str)).collect();
    let unique: std::collections::BTreeSet<&&str> = lines.iter().collect();
    assert_eq!(unique.len(), lines.len(), "{lines:#?}");
}

#[test]
fn accepts_the_nginx_default_certificate_only() {
    let spec = |class: &str| json!({"ingressClassName": class, "rules": [{"host": "shop.example.com"}], "tls": [{"hosts": ["shop.example.com"]}]});
    let nginx = judge(&review("CREATE", "dev", ingress("shop", good_ingress_annotations(), spec("nginx")), None));
    assert_eq!(nginx, allowed());
    let haproxy = ingress(
        "shop",
        json!({"haproxy.org/auth-type": "basic-auth", "haproxy.org/auth-secret": "users",
               "haproxy.org/allow-list": "203.0.113.0/24"}),
        spec("haproxy"),
    );
    assert_eq!(
        judge(&review("CREATE", "dev", haproxy, None)),
        denied(&[
            "[require-ingress-tls] Ingress dev/shop: spec.tls[0] has no secretName, so shop.example.com gets the default certificate of the haproxy controller, which this policy rejects; set spec.tls[0].secretName to a TLS Secret"
        ])
    );
}

#[test]
fn allows_unknown_kinds() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "nonsense"}});
    assert_eq!(judge(&review("CREATE", "production", pod, None)), allowed());
}

#[test]
fn violations_are_listed_one_per_line_in_policy_order() {
    let ing = ingress(
        "shop",
        json!({"nginx.ingress.kubernetes.io/server-snippet": "x", "nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"}),
        json!({"ingressClassName": "nginx", "rules": [{"host": "shop.example.com"}]}),
    );
    let verdict = judge(&review("CREATE", "production", ing, None));
    let lines: Vec<&str> = verdict.message.lines().map(|l| l.split(']').next().unwrap()).collect();
    assert_eq!(lines, ["[no-configuration-snippets", "[require-ingress-auth", "[require-ingress-tls"]);
}
