//! `wildcardHosts`: an Ingress rule host such as `*.example.com`. The Ingress
//! then answers for every subdomain nobody else routes (nginx's `*.example.com`
//! even matches `a.b.example.com`), including names meant for other services or
//! teams, and whoever can point a DNS name under the domain gets it served.

use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;

use crate::engine::Finding;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WildcardHosts {}

/// The longest host a message shows, in characters.
const SHOWN: usize = 64;

impl WildcardHosts {
    pub fn check(&self, ingress: &Ingress, findings: &mut Vec<Finding>) {
        let Some(rules) = ingress.spec.as_ref().and_then(|spec| spec.rules.as_ref()) else { return };
        let mut seen: Vec<&str> = Vec::new();
        for host in rules.iter().filter_map(|rule| rule.host.as_deref()) {
            if !host.starts_with("*.") || seen.iter().any(|other| other.eq_ignore_ascii_case(host)) {
                continue;
            }
            seen.push(host);
            findings.push(Finding::Violation(format!(
                "host {} captures every subdomain, including names meant for other services; list each host name in \
                 spec.rules[].host instead",
                shown(host)
            )));
        }
    }
}

/// The host, cut after [`SHOWN`] characters (hosts are DNS names: nothing to escape).
fn shown(host: &str) -> String {
    match host.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &host[..end]),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::testing::*;
    use crate::engine::{NamespaceLabels, Object, Operation, Severity, Stage, evaluate};
    use serde_json::json;

    fn wildcard_rule() -> crate::engine::rules::Rule {
        rule(json!({"wildcardHosts": {}}))
    }

    fn ing(hosts: &[&str]) -> Object {
        let rules: Vec<serde_json::Value> = hosts.iter().map(|host| json!({"host": host})).collect();
        ingress(json!({"metadata": {"name": "web"},
                       "spec": {"rules": rules, "tls": [{"hosts": ["*.example.com"], "secretName": "wild"}]}}))
    }

    const CAPTURES: &str = "captures every subdomain, including names meant for other services; list each host \
                            name in spec.rules[].host instead";

    #[test]
    fn flags_each_wildcard_rule_host_once() {
        assert_eq!(
            check(
                &wildcard_rule(),
                &ing(&["*.example.com", "shop.example.com", "*.Example.com", "*.apps.example.org"])
            ),
            vec![
                violation(&format!("host *.example.com {CAPTURES}")),
                violation(&format!("host *.apps.example.org {CAPTURES}")),
            ]
        );
    }

    #[test]
    fn exact_hosts_and_wildcard_certificates_pass() {
        // The TLS entry holds *.example.com: a wildcard certificate is not a wildcard route.
        assert_eq!(check(&wildcard_rule(), &ing(&["shop.example.com", "api.example.com"])), vec![]);
        assert_eq!(check(&wildcard_rule(), &ing(&[])), vec![]);
        assert_eq!(check(&wildcard_rule(), &ingress(json!({"metadata": {"name": "web"}}))), vec![]);
        assert_eq!(
            check(&wildcard_rule(), &ingress(json!({"metadata": {"name": "web"}, "spec": {"rules": [{}]}}))),
            vec![]
        );
    }

    #[test]
    fn a_long_host_is_cut() {
        let host = format!("*.{}.example.com", "a".repeat(80));
        let expected = format!("host {}… {CAPTURES}", &host[..64]);
        assert_eq!(check(&wildcard_rule(), &ing(&[&host])), vec![violation(&expected)]);
        assert!(expected.chars().count() <= 200);
    }

    /// Decides a CREATE of an Ingress with a wildcard host in `shop` under one
    /// policy with `action`, the way the webhook does.
    fn decide(action: &str) -> Vec<(Severity, String)> {
        use crate::admission::{Requester, Review};
        let text = format!(
            "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {{name: wildcards}}\n\
             spec: {{action: {action}, rule: {{wildcardHosts: {{}}}}}}\n"
        );
        let set = crate::policy::load_sources(&[(std::path::PathBuf::from("p.yaml"), text)]).unwrap();
        let manifest = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
                              "spec": {"rules": [{"host": "*.example.com"}]}});
        let review = Review::from_manifest(&manifest, "shop", Operation::Create, Requester::default());
        let decision = evaluate(&review.input(Stage::Validate), &set, NamespaceLabels::none());
        decision
            .findings
            .iter()
            .map(|finding| (finding.severity, decision.line(finding, review.about(), &set)))
            .collect()
    }

    #[test]
    fn warned_or_denied_as_the_policy_says() {
        let line = format!("[wildcards] Ingress shop/web: host *.example.com {CAPTURES}");
        assert_eq!(decide("Warn"), [(Severity::Warn, line.clone())]);
        assert_eq!(decide("Deny"), [(Severity::Deny, line.clone())]);
        assert_eq!(decide("Audit"), [(Severity::Audit, line)]);
    }
}
