//! `ingressTls`: every host an Ingress serves is covered by TLS with a
//! certificate, nothing answers for arbitrary host names, and plain HTTP is not
//! switched back on through the controller's annotations.
//!
//! A `spec.tls` entry without `secretName` is served with the controller's
//! default certificate (ingress-nginx `--default-ssl-certificate`, often a
//! wildcard): accepted only for the controller families the policy lists in
//! `defaultCertificate`, since only the cluster's operator knows whether that
//! certificate is a real one.

use k8s_openapi::api::networking::v1::{Ingress, IngressTLS};
use serde::Deserialize;

use super::Subject;
use crate::engine::Finding;
use crate::engine::controller::{Family, PlainHttp};
use crate::engine::object::{annotation, parse_go_bool};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressTls {
    /// Controller families configured with a default certificate, which serves
    /// a `spec.tls` entry that has no `secretName`. Default: none, so such an
    /// entry is a violation (unless the controller takes the certificate from
    /// an annotation, such as the ALB's `certificate-arn`).
    #[serde(default)]
    default_certificate: Vec<Family>,
}

/// Whether a TLS host (possibly `*.example.com`) covers a rule host. A wildcard
/// covers exactly one DNS label.
pub fn covers(tls_host: &str, host: &str) -> bool {
    if tls_host.eq_ignore_ascii_case(host) {
        return true;
    }
    match (tls_host.strip_prefix("*."), host.split_once('.')) {
        (Some(suffix), Some((label, rest))) => !label.is_empty() && label != "*" && rest.eq_ignore_ascii_case(suffix),
        _ => false,
    }
}

fn entry_covers(entry: &IngressTLS, host: &str) -> bool {
    entry.hosts.iter().flatten().any(|tls_host| covers(tls_host, host))
}

/// Plain HTTP switched back on through one of the controller's switches.
fn plain_http(ingress: &Ingress, switch: &PlainHttp) -> Option<String> {
    let get = |key| annotation(&ingress.metadata, key);
    match *switch {
        PlainHttp::RedirectOff(key) => {
            let value = get(key)?;
            (parse_go_bool(value) == Some(false))
                .then(|| format!("{key}: {value:?} serves the hosts over plain HTTP; remove the annotation"))
        }
        PlainHttp::AllowHttp(key) => {
            let value = get(key)?;
            (parse_go_bool(value) == Some(true))
                .then(|| format!("{key}: {value:?} serves the hosts over plain HTTP; set it to \"false\""))
        }
        PlainHttp::EntryPoints { key, plain, secure } => get(key)?
            .split(',')
            .any(|entrypoint| entrypoint.trim() == plain)
            .then(|| format!("{key} includes {plain} (plain HTTP); use {secure} only")),
        PlainHttp::HttpListener { key, redirect, redirect_to } => {
            let ports: Vec<std::collections::BTreeMap<String, serde_json::Value>> =
                serde_json::from_str(get(key)?).ok()?;
            (ports.iter().any(|port| port.contains_key("HTTP")) && get(redirect).is_none())
                .then(|| format!("{key} listens on HTTP without a redirect; set {redirect}: {redirect_to:?}"))
        }
    }
}

fn list(hosts: &[&str]) -> String {
    hosts.join(", ")
}

impl IngressTls {
    pub fn check(&self, ingress: &Ingress, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let Some(spec) = &ingress.spec else { return };
        let tls = spec.tls.as_deref().unwrap_or_default();

        if spec.default_backend.is_some() {
            findings.push(Finding::Violation(
                "spec.defaultBackend answers any host name without a certificate; remove it and route hosts in spec.rules"
                    .into(),
            ));
        }
        let mut hosts: Vec<&str> = Vec::new();
        for (index, rule) in spec.rules.iter().flatten().enumerate() {
            match rule.host.as_deref().filter(|host| !host.is_empty()) {
                Some(host) => {
                    if !hosts.contains(&host) {
                        hosts.push(host);
                    }
                }
                None => findings.push(Finding::Violation(format!(
                    "spec.rules[{index}] has no host, so it answers any host name without a certificate; \
                     set spec.rules[{index}].host and list it in spec.tls"
                ))),
            }
        }

        let uncovered: Vec<&str> =
            hosts.iter().copied().filter(|host| !tls.iter().any(|entry| entry_covers(entry, host))).collect();
        match uncovered.as_slice() {
            [] => {}
            [host] => findings.push(Finding::Violation(format!(
                "host {host} is not covered by spec.tls, so it is served over plain HTTP; add it to spec.tls[].hosts with a secretName"
            ))),
            many => findings.push(Finding::Violation(format!(
                "hosts {} are not covered by spec.tls, so they are served over plain HTTP; add them to spec.tls[].hosts with a secretName",
                list(many)
            ))),
        }

        let families = subject.families();
        let certificate_elsewhere = families
            .iter()
            .flat_map(|family| family.dialect().certificate_annotations)
            .any(|key| annotation(&ingress.metadata, key).is_some_and(|v| !v.is_empty()));
        let default_certificate = subject.controller.is_some_and(|family| self.default_certificate.contains(&family));
        if !certificate_elsewhere && !default_certificate {
            for (index, entry) in tls.iter().enumerate() {
                let served: Vec<&str> = hosts.iter().copied().filter(|host| entry_covers(entry, host)).collect();
                if !served.is_empty() && entry.secret_name.as_deref().is_none_or(str::is_empty) {
                    findings.push(Finding::Violation(format!(
                        "spec.tls[{index}] has no secretName, so {} gets the default certificate of {}, which this \
                         policy rejects; set spec.tls[{index}].secretName to a TLS Secret",
                        list(&served),
                        subject.controller_name()
                    )));
                }
            }
        }

        for switch in families.iter().flat_map(|family| family.dialect().plain_http) {
            if let Some(problem) = plain_http(ingress, switch) {
                // Families may share a switch (gce and contour): say it once.
                let problem = Finding::Violation(problem);
                if !findings.contains(&problem) {
                    findings.push(problem);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::*;
    use serde_json::json;

    fn ing(spec: serde_json::Value, annotations: serde_json::Value) -> crate::engine::Object {
        ingress(json!({"metadata": {"name": "web", "annotations": annotations}, "spec": spec}))
    }

    fn tls_rule() -> crate::engine::rules::Rule {
        rule(json!({"ingressTls": {}}))
    }

    #[test]
    fn wildcards_cover_exactly_one_label() {
        assert!(covers("*.example.com", "a.example.com"));
        assert!(covers("*.Example.com", "A.example.COM"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(covers("a.example.com", "a.example.com"));
        assert!(!covers("a.example.com", "b.example.com"));
        assert!(covers("*.example.com", "*.example.com"));
    }

    #[test]
    fn allows_fully_covered_hosts() {
        let object = ing(
            json!({"ingressClassName": "nginx",
                   "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}],
                   "tls": [{"hosts": ["*.example.com"], "secretName": "wild"}]}),
            json!({}),
        );
        assert_eq!(check(&tls_rule(), &object), vec![]);
    }

    #[test]
    fn rejects_uncovered_hosts_and_names_each() {
        let object = ing(
            json!({"ingressClassName": "nginx",
                   "rules": [{"host": "a.example.com"}, {"host": "a.b.example.com"}, {"host": "c.example.org"}],
                   "tls": [{"hosts": ["*.example.com"], "secretName": "wild"}]}),
            json!({}),
        );
        assert_eq!(
            check(&tls_rule(), &object),
            vec![violation(
                "hosts a.b.example.com, c.example.org are not covered by spec.tls, so they are served over plain HTTP; add them to spec.tls[].hosts with a secretName"
            )]
        );
    }

    #[test]
    fn tls_entry_without_hosts_covers_nothing() {
        let object =
            ing(json!({"ingressClassName": "nginx", "rules": [{"host": "a.example.com"}], "tls": [{}]}), json!({}));
        assert_eq!(
            check(&tls_rule(), &object),
            vec![violation(
                "host a.example.com is not covered by spec.tls, so it is served over plain HTTP; add it to spec.tls[].hosts with a secretName"
            )]
        );
    }

    #[test]
    fn rejects_hostless_rules_and_default_backends() {
        let object = ing(
            json!({"ingressClassName": "nginx",
                   "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
                   "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                              "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}),
            json!({}),
        );
        assert_eq!(
            check(&tls_rule(), &object),
            vec![
                violation(
                    "spec.defaultBackend answers any host name without a certificate; remove it and route hosts in spec.rules"
                ),
                violation(
                    "spec.rules[0] has no host, so it answers any host name without a certificate; set spec.rules[0].host and list it in spec.tls"
                ),
            ]
        );
    }

    #[test]
    fn covering_entry_needs_a_secret_unless_the_controller_has_one() {
        let spec = json!({"ingressClassName": "nginx", "rules": [{"host": "a.example.com"}],
                          "tls": [{"hosts": ["a.example.com"]}]});
        assert_eq!(
            check(&tls_rule(), &ing(spec, json!({}))),
            vec![violation(
                "spec.tls[0] has no secretName, so a.example.com gets the default certificate of the nginx controller, which this policy rejects; set spec.tls[0].secretName to a TLS Secret"
            )]
        );
        let alb = json!({"ingressClassName": "alb", "rules": [{"host": "a.example.com"}],
                         "tls": [{"hosts": ["a.example.com"]}]});
        assert_eq!(
            check(
                &tls_rule(),
                &ing(
                    alb,
                    json!({"alb.ingress.kubernetes.io/certificate-arn": "arn:aws:acm:eu-west-1:1:certificate/x"})
                )
            ),
            vec![]
        );
    }

    #[test]
    fn a_declared_default_certificate_serves_entries_without_a_secret() {
        let rule = rule(json!({"ingressTls": {"defaultCertificate": ["nginx", "haproxy"]}}));
        let spec = |class: &str| {
            json!({"ingressClassName": class, "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}],
                   "tls": [{"hosts": ["a.example.com"], "secretName": "a"}, {"hosts": ["b.example.com"], "secretName": ""}]})
        };
        assert_eq!(check(&rule, &ing(spec("nginx"), json!({}))), vec![]);
        assert_eq!(check(&rule, &ing(spec("haproxy"), json!({}))), vec![]);
        assert_eq!(
            check(&rule, &ing(spec("traefik"), json!({}))),
            vec![violation(
                "spec.tls[1] has no secretName, so b.example.com gets the default certificate of the traefik controller, which this policy rejects; set spec.tls[1].secretName to a TLS Secret"
            )]
        );
        // An unknown class may have no default certificate at all.
        assert_eq!(
            check(&rule, &ing(spec("my-own"), json!({}))),
            vec![violation(
                "spec.tls[1] has no secretName, so b.example.com gets the default certificate of an unknown ingress class, which this policy rejects; set spec.tls[1].secretName to a TLS Secret"
            )]
        );
        // The default certificate covers hosts, not missing TLS.
        let uncovered = json!({"ingressClassName": "nginx", "rules": [{"host": "c.example.com"}], "tls": [{}]});
        assert_eq!(
            check(&rule, &ing(uncovered, json!({}))),
            vec![violation(
                "host c.example.com is not covered by spec.tls, so it is served over plain HTTP; add it to spec.tls[].hosts with a secretName"
            )]
        );
    }

    #[test]
    fn default_certificate_names_controller_families() {
        let error = serde_json::from_value::<crate::engine::rules::Rule>(
            json!({"ingressTls": {"defaultCertificate": ["nginx", "apache"]}}),
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("unknown variant `apache`, expected one of `nginx`"), "{error}");
        let error = serde_json::from_value::<crate::engine::rules::Rule>(json!({"ingressTls": {"defaultCert": []}}))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("unknown field `defaultCert`"), "{error}");
    }

    #[test]
    fn a_switch_shared_by_two_families_is_reported_once() {
        // gce and contour both read kubernetes.io/ingress.allow-http; an unknown class tries both.
        let spec = json!({"ingressClassName": "my-own", "rules": [{"host": "a.example.com"}],
                          "tls": [{"hosts": ["a.example.com"], "secretName": "a"}]});
        assert_eq!(
            check(&tls_rule(), &ing(spec, json!({"kubernetes.io/ingress.allow-http": "true"}))),
            vec![violation(
                "kubernetes.io/ingress.allow-http: \"true\" serves the hosts over plain HTTP; set it to \"false\""
            )]
        );
    }

    #[test]
    fn rejects_plain_http_reenabled_per_controller() {
        let covered = |class: &str| {
            json!({"ingressClassName": class, "rules": [{"host": "a.example.com"}],
                   "tls": [{"hosts": ["a.example.com"], "secretName": "a"}]})
        };
        assert_eq!(
            check(&tls_rule(), &ing(covered("nginx"), json!({"nginx.ingress.kubernetes.io/ssl-redirect": "false"}))),
            vec![violation(
                "nginx.ingress.kubernetes.io/ssl-redirect: \"false\" serves the hosts over plain HTTP; remove the annotation"
            )]
        );
        assert_eq!(
            check(&tls_rule(), &ing(covered("gce"), json!({"kubernetes.io/ingress.allow-http": "T"}))),
            vec![violation(
                "kubernetes.io/ingress.allow-http: \"T\" serves the hosts over plain HTTP; set it to \"false\""
            )]
        );
        assert_eq!(check(&tls_rule(), &ing(covered("gce"), json!({"kubernetes.io/ingress.allow-http": "F"}))), vec![]);
        assert_eq!(
            check(
                &tls_rule(),
                &ing(covered("traefik"), json!({"traefik.ingress.kubernetes.io/router.entrypoints": "web,websecure"}))
            ),
            vec![violation(
                "traefik.ingress.kubernetes.io/router.entrypoints includes web (plain HTTP); use websecure only"
            )]
        );
        assert_eq!(
            check(&tls_rule(), &ing(covered("haproxy"), json!({"haproxy.org/ssl-redirect": "0"}))),
            vec![violation("haproxy.org/ssl-redirect: \"0\" serves the hosts over plain HTTP; remove the annotation")]
        );
        assert_eq!(
            check(
                &tls_rule(),
                &ing(
                    covered("alb"),
                    json!({"alb.ingress.kubernetes.io/listen-ports": "[{\"HTTP\": 80}, {\"HTTPS\": 443}]"})
                )
            ),
            vec![violation(
                "alb.ingress.kubernetes.io/listen-ports listens on HTTP without a redirect; set alb.ingress.kubernetes.io/ssl-redirect: \"443\""
            )]
        );
        // Another controller's annotation means nothing to nginx.
        assert_eq!(check(&tls_rule(), &ing(covered("nginx"), json!({"haproxy.org/ssl-redirect": "false"}))), vec![]);
    }
}
