//! Running the cases: the request each case stands for, and the policy set's
//! decision compared with what the case expects.

use std::path::PathBuf;

use serde_json::Value;

use super::cases::{Case, CaseUser};
use crate::admission::{Requester, Review};
use crate::engine::gateway::GatewayView;
use crate::engine::{self, MAX_WARNING_CHARS, NamespaceLabels, PolicySet, Severity, Stage};

impl From<CaseUser> for Requester {
    fn from(user: CaseUser) -> Requester {
        Requester { username: user.username, groups: user.groups }
    }
}

impl Case {
    /// The request the API server would send for this case, built like every
    /// other review from a manifest ([`Review::from_manifest`]).
    pub fn request(&self) -> Review {
        let spec = &self.spec;
        let requester = spec.user.clone().map(Requester::from).unwrap_or_default();
        let object = spec.object.as_ref().unwrap_or(&Value::Null);
        let review = Review::from_manifest(object, &spec.namespace, spec.operation, requester);
        match &spec.old_object {
            Some(old) => review.with_old_object(old),
            None => review,
        }
    }
}

/// How one case came out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    pub policy: String,
    pub name: String,
    pub file: PathBuf,
    pub document: usize,
    /// What differed; `None` when the case passed.
    pub failure: Option<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// `<policy>/<name>`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.policy, self.name)
    }
}

/// Runs every case against the policy set. Pure: no I/O.
pub fn run(cases: &[Case], set: &PolicySet) -> Vec<CaseResult> {
    cases.iter().map(|case| run_case(case, set)).collect()
}

/// Runs one case against the policy set.
pub fn run_case(case: &Case, set: &PolicySet) -> CaseResult {
    CaseResult {
        policy: case.policy.clone(),
        name: case.name.clone(),
        file: case.file.clone(),
        document: case.document,
        failure: judge(case, set).err(),
    }
}

fn judge(case: &Case, set: &PolicySet) -> Result<(), String> {
    let policy = &case.policy;
    let index = set
        .policies()
        .iter()
        .position(|p| p.name() == policy)
        .ok_or_else(|| format!("no policy named {policy:?} in the policy set"))?;
    let stage = case.stage();
    match (set.policies()[index].rule().stage(), stage) {
        (Stage::Validate, Stage::Mutate) => {
            return Err(format!(
                "{policy} is a validating policy; expect allowed, messages and warnings instead of a patch"
            ));
        }
        (Stage::Mutate, Stage::Validate) => return Err(format!("{policy} is a mutating policy; expect a patch")),
        _ => {}
    }
    let review = case.request();
    let mut gateways = GatewayView::default();
    for (index, manifest) in case.spec.gateways.iter().enumerate() {
        if !gateways.insert_manifest(manifest, &case.spec.namespace) {
            return Err(format!(
                "gateways[{index}] is not a Gateway, ListenerSet or policy with targetRefs that can be read"
            ));
        }
    }
    let input = engine::Input { gateways: &gateways, ..review.input(stage) };
    let decision = engine::evaluate(&input, set, NamespaceLabels::Known(&case.spec.namespace_labels));
    let expect = &case.spec.expect;
    let mut problems: Vec<String> = Vec::new();

    if let Some(expected) = &expect.patch {
        let actual = serde_json::to_value(&decision.patch).expect("a patch always serializes");
        if &actual != expected {
            problems.push(format!("expected patch {expected}, got patch {actual}"));
        } else if !decision.patch.0.is_empty() && !decision.mutated_by.contains(&index) {
            problems.push(format!("no patch operation from {policy}"));
        }
        return if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) };
    }

    let about = review.about();
    let denials = decision.lines(Severity::Deny, about, set);
    let warnings = decision.warnings(about, set);
    if let Some(allowed) = expect.allowed
        && allowed != decision.allowed()
    {
        problems.push(format!("expected allowed={allowed}, got allowed={}", decision.allowed()));
    }
    if let Some(messages) = &expect.messages {
        for message in messages {
            if !denials.iter().any(|line| line.contains(message.as_str())) {
                problems.push(format!("no denial line contains {message:?}"));
            }
        }
        if expect.allowed == Some(false) && !decision.allowed() && !decision.denying_policies().any(|p| p == index) {
            problems.push(format!("no denial line from {policy}"));
        }
    }
    for line in &warnings {
        let length = line.chars().count();
        if length > MAX_WARNING_CHARS {
            problems.push(format!(
                "a warning of {length} characters; the API server keeps at most {MAX_WARNING_CHARS}: {line:?}"
            ));
        }
    }
    if let Some(expected) = &expect.warnings {
        if expected.is_empty() && !warnings.is_empty() {
            problems.push("expected no warnings".into());
        }
        for warning in expected {
            if !warnings.iter().any(|line| line.contains(warning.as_str())) {
                problems.push(format!("no warning line contains {warning:?}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; messages: {denials:?}; warnings: {warnings:?}", problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Kind, Object, Operation};
    use crate::suite::fixtures::{NODEPORT_SVC, doc, parse, set};

    const NODEPORT: &str = "type NodePort opens a port on every node; set spec.type: ClusterIP and expose it \
                            through an Ingress with TLS";

    fn run_one(policy: &str, spec: &str) -> Option<String> {
        let cases = parse(policy, &doc("case", spec)).unwrap();
        run_case(&cases[0], &set()).failure
    }

    #[test]
    fn builds_the_request_the_api_server_sends() {
        let spec = "  operation: UPDATE\n  namespace: production\n  user: {username: bob, groups: [ops]}\n  \
                    object: {apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: shop}, spec: {}}\n  \
                    oldObject: {apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: shop}}\n  \
                    expect: {allowed: true}\n";
        let case = &parse("p", &doc("c", spec)).unwrap()[0];
        let review = case.request();
        assert_eq!(
            (review.kind, review.name.as_str(), review.namespace.as_str()),
            (Kind::Ingress, "shop", "production")
        );
        assert_eq!(
            (review.operation, review.username.as_str(), review.groups.as_slice()),
            (Operation::Update, "bob", &["ops".to_owned()][..])
        );
        assert!(matches!(review.object, Some(Object::Ingress(_))));
        assert!(matches!(review.old_object, Some(Object::Ingress(_))));
        // DELETE: the deleted object is not under review.
        let delete =
            &parse("p", &doc("d", &format!("  operation: DELETE\n{NODEPORT_SVC}  expect: {{allowed: true}}\n")))
                .unwrap()[0];
        let review = delete.request();
        assert_eq!((review.kind, review.operation), (Kind::Service, Operation::Delete));
        assert!(review.object.is_none());
        assert_eq!(review.username, crate::admission::OFFLINE_USERNAME);
    }

    #[test]
    fn validate_cases_compare_verdict_messages_and_warnings() {
        let denied = format!("  namespace: production\n{NODEPORT_SVC}");
        let expected_line = format!("[no-nodeport] Service production/web: {NODEPORT}");
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!("{denied}  expect: {{allowed: false, messages: [\"{expected_line}\"], warnings: []}}\n")
            ),
            None
        );
        assert_eq!(
            run_one("no-nodeport", &format!("{denied}  expect: {{allowed: true}}\n")),
            Some(format!("expected allowed=true, got allowed=false; messages: [\"{expected_line}\"]; warnings: []"))
        );
        assert_eq!(
            run_one("no-nodeport", &format!("{denied}  expect: {{allowed: false, messages: [LoadBalancer]}}\n")),
            Some(format!("no denial line contains \"LoadBalancer\"; messages: [\"{expected_line}\"]; warnings: []"))
        );
        // By namespace labels, by exception, and an UPDATE of an existing violation.
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!(
                    "  namespace: shop\n  namespaceLabels: {{environment: production}}\n{NODEPORT_SVC}  \
                     expect: {{allowed: false, messages: [NodePort]}}\n"
                )
            ),
            None
        );
        assert_eq!(
            run_one("no-nodeport", &format!("  namespace: shop\n{NODEPORT_SVC}  expect: {{allowed: true}}\n")),
            None
        );
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!("{denied}  user: {{username: break-glass}}\n  expect: {{allowed: true}}\n")
            ),
            None
        );
        let old = "  oldObject: {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {type: NodePort}}\n";
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!(
                    "  operation: UPDATE\n{denied}{old}  expect: {{allowed: true, warnings: [\"allowed for now\"]}}\n"
                )
            ),
            None
        );
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!("  operation: UPDATE\n{denied}{old}  expect: {{allowed: true, warnings: []}}\n")
            ),
            Some(format!(
                "expected no warnings; messages: []; warnings: [\"{expected_line} (pre-existing, allowed for now)\"]"
            ))
        );
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!("  operation: DELETE\n{denied}  expect: {{allowed: true, warnings: []}}\n")
            ),
            None
        );
        // Warnings are substrings of some warning line.
        let lb = "  object: {apiVersion: v1, kind: Service, metadata: {name: lb}, spec: {type: LoadBalancer}}\n";
        assert_eq!(
            run_one(
                "warn-loadbalancer",
                &format!(
                    "{lb}  expect: {{allowed: true, warnings: [\"[warn-loadbalancer] Service default/lb: type LoadBalancer\"]}}\n"
                )
            ),
            None
        );
        assert_eq!(
            run_one("warn-loadbalancer", &format!("{lb}  expect: {{allowed: true, warnings: [NodePort]}}\n")),
            Some(
                "no warning line contains \"NodePort\"; messages: []; warnings: [\"[warn-loadbalancer] Service \
                 default/lb: type LoadBalancer costs a public IP per Service and has no routing or TLS; prefer \
                 ClusterIP behind an Ingress\"]"
                    .into()
            )
        );
    }

    #[test]
    fn a_warning_longer_than_the_api_server_keeps_fails_the_case() {
        let (namespace, name) = ("n".repeat(63), "s".repeat(63));
        let spec = format!(
            "  namespace: {namespace}\n  object: {{apiVersion: v1, kind: Service, metadata: {{name: {name}}}, \
             spec: {{type: LoadBalancer}}}}\n  expect: {{allowed: true}}\n"
        );
        let failure = run_one("warn-loadbalancer", &spec).expect("a 266-character warning fails");
        assert!(
            failure.starts_with("a warning of 266 characters; the API server keeps at most 256: \"[warn-loadbalancer]"),
            "{failure}"
        );
        // The same warning with short names passes.
        assert_eq!(
            run_one(
                "warn-loadbalancer",
                "  object: {apiVersion: v1, kind: Service, metadata: {name: lb}, spec: {type: LoadBalancer}}\n  \
                 expect: {allowed: true}\n"
            ),
            None
        );
    }

    #[test]
    fn a_denial_must_come_from_the_policy_under_test_when_messages_are_given() {
        let both = "  namespace: production\n  object: {apiVersion: v1, kind: Service, metadata: {name: web}, \
                    spec: {type: NodePort, externalIPs: [198.51.100.20]}}\n";
        assert_eq!(
            run_one("no-external-ips", &format!("{both}  expect: {{allowed: false, messages: [NodePort]}}\n")),
            None
        );
        let only_ips = "  object: {apiVersion: v1, kind: Service, metadata: {name: web}, \
                        spec: {type: NodePort, externalIPs: [198.51.100.20]}}\n";
        assert_eq!(
            run_one("no-nodeport", &format!("{only_ips}  expect: {{allowed: false, messages: [externalIPs]}}\n")),
            Some(
                "no denial line from no-nodeport; messages: [\"[no-external-ips] Service default/web: spec.externalIPs \
                 198.51.100.20 can intercept cluster traffic (CVE-2020-8554); remove spec.externalIPs and expose the \
                 Service through an Ingress\"]; warnings: []"
                    .into()
            )
        );
        // Without messages, only the verdict counts.
        assert_eq!(run_one("no-nodeport", &format!("{only_ips}  expect: {{allowed: false}}\n")), None);
    }

    const TLS_INGRESS: &str = "  object:\n    apiVersion: networking.k8s.io/v1\n    kind: Ingress\n    \
                               metadata: {name: shop}\n    spec:\n      ingressClassName: nginx\n      \
                               rules: [{host: shop.example.com}]\n      \
                               tls: [{hosts: [shop.example.com], secretName: shop-tls}]\n";

    #[test]
    fn mutate_cases_compare_the_exact_patch() {
        let patch = r#"[{op: add, path: /metadata/annotations, value: {}}, {op: add, path: "/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect", value: "true"}]"#;
        assert_eq!(run_one("redirect", &format!("{TLS_INGRESS}  expect: {{patch: {patch}}}\n")), None);
        assert_eq!(
            run_one("redirect", &format!("{TLS_INGRESS}  expect: {{patch: []}}\n")),
            Some(
                "expected patch [], got patch [{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{}},\
                 {\"op\":\"add\",\"path\":\"/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect\",\
                 \"value\":\"true\"}]"
                    .into()
            )
        );
        let no_tls = TLS_INGRESS.replace("      tls: [{hosts: [shop.example.com], secretName: shop-tls}]\n", "");
        assert!(!no_tls.contains("tls:"));
        assert_eq!(run_one("redirect", &format!("{no_tls}  expect: {{patch: []}}\n")), None);
    }

    #[test]
    fn the_policy_must_exist_and_fit_the_stage() {
        assert_eq!(
            run_one("no-such-policy", &format!("{NODEPORT_SVC}  expect: {{allowed: true}}\n")),
            Some("no policy named \"no-such-policy\" in the policy set".into())
        );
        assert_eq!(
            run_one("redirect", &format!("{TLS_INGRESS}  expect: {{allowed: true}}\n")),
            Some("redirect is a mutating policy; expect a patch".into())
        );
        assert_eq!(
            run_one("no-nodeport", &format!("{NODEPORT_SVC}  expect: {{patch: []}}\n")),
            Some("no-nodeport is a validating policy; expect allowed, messages and warnings instead of a patch".into())
        );
    }
}
