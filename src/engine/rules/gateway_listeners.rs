//! `gatewayListeners`: what the listeners of a Gateway or ListenerSet serve.
//! A listener that terminates TLS (`HTTPS`, or `TLS` in mode `Terminate`, the
//! default) must name its certificate in `tls.certificateRefs`; a `TLS`
//! listener in mode `Passthrough` hands the encrypted stream to the backend,
//! so the Gateway sees neither certificate nor request, and is allowed only
//! when the policy says so; a plain `HTTP` listener is allowed unless the
//! policy forbids it (it is the usual redirect listener: `routeTls` makes sure
//! only redirects attach to it). `TCP`, `UDP` and implementation-specific
//! protocols are not judged.
//!
//! Some implementations take a listener's certificate from elsewhere: GKE from
//! a `tls.options` entry (`networking.gke.io/pre-shared-certs`,
//! `networking.gke.io/cert-manager-certs`) or from the Gateway's
//! `networking.gke.io/certmap` annotation. The policy lists which option keys
//! and annotations count (`certificateOptions`, `certificateAnnotations`),
//! since only the cluster's operator knows which implementation serves it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::Subject;
use crate::engine::gateway::{Listener, TlsMode};
use crate::engine::glob::Globs;
use crate::engine::{Finding, Object};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayListeners {
    /// Allow plain `HTTP` listeners (default `true`: the redirect listener).
    #[serde(default = "yes")]
    allow_http_listeners: bool,
    /// Allow `TLS` listeners in mode `Passthrough` (default `false`).
    #[serde(default)]
    allow_passthrough: bool,
    /// `tls.options` keys (globs) that give a listener its certificate; an
    /// option with a non-empty value then stands for `certificateRefs`.
    /// Default: none.
    #[serde(default)]
    certificate_options: Globs,
    /// Annotation keys (globs) of the Gateway or ListenerSet that give every
    /// listener its certificate; one with a non-empty value stands for
    /// `certificateRefs`. Default: none.
    #[serde(default)]
    certificate_annotations: Globs,
}

fn yes() -> bool {
    true
}

/// How messages name a listener: `listener "https" (HTTPS, port 443)`.
pub fn describe(listener: &Listener) -> String {
    format!("listener {:?} ({}, port {})", listener.name, listener.protocol, listener.port)
}

/// The listeners and metadata of a Gateway or ListenerSet.
pub fn listeners(object: &Object) -> Option<(&ObjectMeta, &[Listener])> {
    match object {
        Object::Gateway(gateway) => Some((&gateway.metadata, &gateway.spec.listeners)),
        Object::ListenerSet(set) => Some((&set.metadata, &set.spec.listeners)),
        _ => None,
    }
}

impl GatewayListeners {
    pub fn check(&self, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let Some((metadata, listeners)) = listeners(subject.object) else { return };
        let annotated = metadata
            .annotations
            .iter()
            .flatten()
            .any(|(key, value)| !value.trim().is_empty() && self.certificate_annotations.matches(key));
        for listener in listeners {
            if let Some(problem) = self.judge(listener, annotated) {
                findings.push(Finding::Violation(format!("{} {problem}", describe(listener))));
            }
        }
    }

    /// What is wrong with one listener, after its description.
    fn judge(&self, listener: &Listener, annotated: bool) -> Option<String> {
        if listener.is_plain_http() {
            return (!self.allow_http_listeners).then(|| {
                "serves plain HTTP, which this policy forbids; remove it, or make it protocol HTTPS with \
                 tls.certificateRefs"
                    .to_owned()
            });
        }
        if listener.protocol == "TLS" {
            match listener.tls_mode() {
                TlsMode::Passthrough => {
                    return (!self.allow_passthrough).then(|| {
                        "passes TLS through to the backend (tls.mode: Passthrough), which this policy forbids; \
                         use tls.mode: Terminate with tls.certificateRefs"
                            .to_owned()
                    });
                }
                TlsMode::Other => {
                    let mode = listener.tls.as_ref().and_then(|tls| tls.mode.as_deref()).unwrap_or_default();
                    return Some(format!(
                        "has tls.mode {mode:?}, neither Terminate nor Passthrough; set tls.mode: Terminate with \
                         tls.certificateRefs"
                    ));
                }
                TlsMode::Terminate => {}
            }
        }
        if !listener.terminates_tls() || annotated {
            return None;
        }
        let tls = listener.tls.as_ref();
        let referenced = tls.is_some_and(|tls| !tls.certificate_refs.is_empty());
        let optioned = tls.is_some_and(|tls| {
            tls.options.iter().any(|(key, value)| !value.trim().is_empty() && self.certificate_options.matches(key))
        });
        (!referenced && !optioned).then(|| {
            "has no tls.certificateRefs, so it has no certificate to serve; add tls.certificateRefs naming the \
             Secret with its certificate"
                .to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Kind;
    use crate::engine::rules::testing::*;
    use serde_json::{Value, json};

    const NO_CERTIFICATE: &str = "has no tls.certificateRefs, so it has no certificate to serve; add \
                                  tls.certificateRefs naming the Secret with its certificate";

    fn gateway(listeners: Value) -> Object {
        gateway_api(
            Kind::Gateway,
            json!({"metadata": {"name": "public", "namespace": "infra"},
                   "spec": {"gatewayClassName": "eg", "listeners": listeners}}),
        )
    }

    fn default_rule() -> crate::engine::rules::Rule {
        rule(json!({"gatewayListeners": {}}))
    }

    fn https(tls: Value) -> Value {
        json!({"name": "https", "port": 443, "protocol": "HTTPS", "tls": tls})
    }

    #[test]
    fn describes_listeners_by_name_protocol_and_port() {
        let listener: Listener =
            serde_json::from_value(json!({"name": "https", "port": 443, "protocol": "HTTPS"})).unwrap();
        assert_eq!(describe(&listener), "listener \"https\" (HTTPS, port 443)");
    }

    #[test]
    fn allows_https_with_a_certificate_and_the_http_redirect_listener() {
        let object = gateway(json!([
            {"name": "http", "port": 80, "protocol": "HTTP"},
            https(json!({"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "public-tls"}]})),
            {"name": "tls", "port": 8443, "protocol": "TLS", "tls": {"certificateRefs": [{"name": "tls"}]}},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "raw", "port": 9000, "protocol": "TCP"},
        ]));
        assert_eq!(check(&default_rule(), &object), vec![]);
    }

    #[test]
    fn https_without_certificate_refs_is_denied() {
        let object = gateway(json!([
            {"name": "https", "port": 443, "protocol": "HTTPS"},
            {"name": "https-empty", "port": 8443, "protocol": "HTTPS", "tls": {"mode": "Terminate", "certificateRefs": []}},
        ]));
        assert_eq!(
            check(&default_rule(), &object),
            vec![
                violation(&format!("listener \"https\" (HTTPS, port 443) {NO_CERTIFICATE}")),
                violation(&format!("listener \"https-empty\" (HTTPS, port 8443) {NO_CERTIFICATE}")),
            ]
        );
        assert_eq!(
            check(&default_rule(), &gateway(json!([https(json!({}))]))),
            vec![violation(
                "listener \"https\" (HTTPS, port 443) has no tls.certificateRefs, so it has no certificate to serve; \
                 add tls.certificateRefs naming the Secret with its certificate"
            )]
        );
    }

    #[test]
    fn a_terminating_tls_listener_needs_certificate_refs_whether_or_not_the_mode_is_written() {
        let object = gateway(json!([
            {"name": "implicit", "port": 443, "protocol": "TLS", "tls": {}},
            {"name": "explicit", "port": 8443, "protocol": "TLS", "tls": {"mode": "Terminate"}},
        ]));
        assert_eq!(
            check(&default_rule(), &object),
            vec![
                violation(&format!("listener \"implicit\" (TLS, port 443) {NO_CERTIFICATE}")),
                violation(&format!("listener \"explicit\" (TLS, port 8443) {NO_CERTIFICATE}")),
            ]
        );
    }

    #[test]
    fn passthrough_is_allowed_only_when_the_policy_says_so() {
        let object = gateway(json!([
            {"name": "db", "port": 5432, "protocol": "TLS", "tls": {"mode": "Passthrough"}},
        ]));
        assert_eq!(
            check(&default_rule(), &object),
            vec![violation(
                "listener \"db\" (TLS, port 5432) passes TLS through to the backend (tls.mode: Passthrough), which \
                 this policy forbids; use tls.mode: Terminate with tls.certificateRefs"
            )]
        );
        assert_eq!(check(&rule(json!({"gatewayListeners": {"allowPassthrough": false}})), &object).len(), 1);
        assert_eq!(check(&rule(json!({"gatewayListeners": {"allowPassthrough": true}})), &object), vec![]);
        // Allowing passthrough does not excuse a terminating listener without a certificate.
        let both = gateway(json!([
            {"name": "db", "port": 5432, "protocol": "TLS", "tls": {"mode": "Passthrough"}},
            https(json!({"mode": "Terminate"})),
        ]));
        assert_eq!(
            check(&rule(json!({"gatewayListeners": {"allowPassthrough": true}})), &both),
            vec![violation(&format!("listener \"https\" (HTTPS, port 443) {NO_CERTIFICATE}"))]
        );
    }

    #[test]
    fn an_unknown_tls_mode_is_denied() {
        let object = gateway(json!([
            {"name": "tls", "port": 443, "protocol": "TLS", "tls": {"mode": "Proxy", "certificateRefs": [{"name": "a"}]}},
        ]));
        assert_eq!(
            check(&rule(json!({"gatewayListeners": {"allowPassthrough": true}})), &object),
            vec![violation(
                "listener \"tls\" (TLS, port 443) has tls.mode \"Proxy\", neither Terminate nor Passthrough; set \
                 tls.mode: Terminate with tls.certificateRefs"
            )]
        );
    }

    #[test]
    fn plain_http_listeners_are_denied_when_the_policy_forbids_them() {
        let object = gateway(json!([
            {"name": "http", "port": 80, "protocol": "HTTP"},
            https(json!({"certificateRefs": [{"name": "public-tls"}]})),
        ]));
        assert_eq!(check(&rule(json!({"gatewayListeners": {"allowHttpListeners": true}})), &object), vec![]);
        assert_eq!(
            check(&rule(json!({"gatewayListeners": {"allowHttpListeners": false}})), &object),
            vec![violation(
                "listener \"http\" (HTTP, port 80) serves plain HTTP, which this policy forbids; remove it, or make \
                 it protocol HTTPS with tls.certificateRefs"
            )]
        );
    }

    #[test]
    fn listener_sets_are_judged_like_gateways() {
        let object = gateway_api(
            Kind::ListenerSet,
            json!({"metadata": {"name": "extra", "namespace": "shop"},
                   "spec": {"parentRef": {"name": "public", "namespace": "infra"},
                            "listeners": [
                                {"name": "shop", "port": 443, "protocol": "HTTPS", "hostname": "shop.example.com"},
                                {"name": "shop-tls", "port": 443, "protocol": "HTTPS", "hostname": "b.example.com",
                                 "tls": {"certificateRefs": [{"name": "b"}]}},
                                {"name": "legacy", "port": 8080, "protocol": "HTTP"}]}}),
        );
        assert_eq!(
            check(&rule(json!({"gatewayListeners": {"allowHttpListeners": false}})), &object),
            vec![
                violation(&format!("listener \"shop\" (HTTPS, port 443) {NO_CERTIFICATE}")),
                violation(
                    "listener \"legacy\" (HTTP, port 8080) serves plain HTTP, which this policy forbids; remove it, \
                     or make it protocol HTTPS with tls.certificateRefs"
                ),
            ]
        );
    }

    #[test]
    fn listed_tls_options_stand_for_certificate_refs() {
        let rule = rule(json!({"gatewayListeners": {"certificateOptions": ["networking.gke.io/*-certs"]}}));
        let with_option =
            |key: &str, value: &str| gateway(json!([https(json!({"mode": "Terminate", "options": {key: value}}))]));
        assert_eq!(check(&rule, &with_option("networking.gke.io/pre-shared-certs", "store-example-com")), vec![]);
        assert_eq!(check(&rule, &with_option("networking.gke.io/cert-manager-certs", "app")), vec![]);
        // An empty value names no certificate; another option is not a certificate.
        let none = vec![violation(&format!("listener \"https\" (HTTPS, port 443) {NO_CERTIFICATE}"))];
        assert_eq!(check(&rule, &with_option("networking.gke.io/pre-shared-certs", " ")), none);
        assert_eq!(check(&rule, &with_option("example.com/min-tls-version", "1.3")), none);
        // Without the parameter no option counts.
        assert_eq!(check(&default_rule(), &with_option("networking.gke.io/pre-shared-certs", "store")), none);
    }

    #[test]
    fn listed_annotations_give_every_listener_its_certificate() {
        let rule = rule(json!({"gatewayListeners": {"certificateAnnotations": ["networking.gke.io/certmap"]}}));
        let annotated = |annotations: Value| {
            gateway_api(
                Kind::Gateway,
                json!({"metadata": {"name": "public", "annotations": annotations},
                       "spec": {"listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"},
                                              {"name": "db", "port": 5432, "protocol": "TLS", "tls": {"mode": "Passthrough"}}]}}),
            )
        };
        let passthrough = violation(
            "listener \"db\" (TLS, port 5432) passes TLS through to the backend (tls.mode: Passthrough), which this \
             policy forbids; use tls.mode: Terminate with tls.certificateRefs",
        );
        // The certificate map covers terminating listeners, not passthrough.
        assert_eq!(
            check(&rule, &annotated(json!({"networking.gke.io/certmap": "store-map"}))),
            vec![passthrough.clone()]
        );
        assert_eq!(
            check(&rule, &annotated(json!({"networking.gke.io/certmap": ""}))),
            vec![violation(&format!("listener \"https\" (HTTPS, port 443) {NO_CERTIFICATE}")), passthrough.clone()]
        );
        assert_eq!(
            check(&default_rule(), &annotated(json!({"networking.gke.io/certmap": "store-map"}))),
            vec![violation(&format!("listener \"https\" (HTTPS, port 443) {NO_CERTIFICATE}")), passthrough]
        );
    }

    #[test]
    fn parameters_are_checked_at_load() {
        let error = |json| serde_json::from_value::<crate::engine::rules::Rule>(json).unwrap_err().to_string();
        assert!(
            error(json!({"gatewayListeners": {"allowHTTPListeners": false}}))
                .starts_with("unknown field `allowHTTPListeners`"),
            "{}",
            error(json!({"gatewayListeners": {"allowHTTPListeners": false}}))
        );
        let text = error(json!({"gatewayListeners": {"certificateOptions": ["[a"]}}));
        assert!(text.starts_with("invalid glob \"[a\""), "{text}");
        let text = error(json!({"gatewayListeners": {"allowPassthrough": "yes"}}));
        assert!(text.starts_with("invalid type: string \"yes\", expected a boolean"), "{text}");
    }

    #[test]
    fn other_kinds_are_not_judged() {
        let route = gateway_api(Kind::HttpRoute, json!({"metadata": {"name": "web"}, "spec": {}}));
        assert_eq!(check(&rule(json!({"gatewayListeners": {"allowHttpListeners": false}})), &route), vec![]);
    }
}
