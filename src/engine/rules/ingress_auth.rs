//! `ingressAuth`: an Ingress must put an authentication method recognised for
//! its controller in front of the backend, or declare that the application
//! authenticates by itself (`portcullis.dev/auth: application`), which a policy
//! may accept with a warning.
//!
//! Only the serving controller's methods count: an Ingress whose class maps to
//! no known controller is judged strictly (no controller's annotation counts),
//! since an annotation its real controller does not read protects nothing.

use std::borrow::Cow;

use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;

use super::Subject;
use crate::engine::Finding;
use crate::engine::controller::{ControllerMap, Family};
use crate::engine::glob::Globs;
use crate::engine::object::annotation;

/// The declaration that the backend authenticates its users itself.
pub const APPLICATION_AUTH: &str = "portcullis.dev/auth";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressAuth {
    /// Accept `portcullis.dev/auth: application`, with a warning.
    #[serde(default = "yes")]
    allow_application_auth: bool,
    /// Traefik middlewares (globs, e.g. `auth-*@kubernetescrd`) that authenticate:
    /// [`crate::engine::controller::Require::ApprovedMiddleware`].
    #[serde(default)]
    traefik_middlewares: Globs,
    /// ingress-nginx's methods count on a traefik-served Ingress too (Traefik's
    /// NGINX-annotation provider). Not a rule parameter: set by the policy
    /// loader from the `IngressControllers` option `traefikNginxAnnotations`.
    #[serde(skip)]
    nginx_annotations_on_traefik: bool,
}

fn yes() -> bool {
    true
}

/// How to add authentication on a traefik-served Ingress when Traefik reads
/// nginx annotations as well.
const TRAEFIK_NGINX_FIX: &str = "add an approved auth middleware (router.middlewares) or nginx auth annotations";

/// Class names are shown up to this many characters, so a line stays short.
const SHOWN_CLASS_CHARS: usize = 40;

impl IngressAuth {
    /// Lets ingress-nginx's methods count on traefik-served Ingresses (the
    /// `IngressControllers` option `traefikNginxAnnotations`).
    pub fn count_nginx_annotations_on_traefik(&mut self) {
        self.nginx_annotations_on_traefik = true;
    }

    /// The authentication method the Ingress carries that its controller
    /// enforces (the annotation keys it consists of), as this rule sees it;
    /// `None` when there is none (then the rule finds a violation, or
    /// accepts `portcullis.dev/auth: application` with a warning).
    pub fn method(&self, ingress: &Ingress, controller: Option<Family>) -> Option<Vec<&'static str>> {
        let approved = &self.traefik_middlewares;
        let metadata = &ingress.metadata;
        // Unknown controller: no annotation can be trusted to be enforced.
        let family = controller?;
        family.dialect().auth_method(metadata, approved).or_else(|| {
            self.nginx_on(family).then(|| Family::Nginx.dialect().auth_method(metadata, approved)).flatten()
        })
    }

    /// Whether the policy accepts `portcullis.dev/auth: application`.
    pub fn accepts_application_auth(&self) -> bool {
        self.allow_application_auth
    }

    pub fn check(&self, ingress: &Ingress, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let metadata = &ingress.metadata;
        if self.method(ingress, subject.controller).is_some() {
            return;
        }
        let declared = annotation(metadata, APPLICATION_AUTH) == Some("application");
        if declared && self.allow_application_auth {
            findings.push(Finding::Warning(format!(
                "authentication is left to the application ({APPLICATION_AUTH}: application); make sure every path checks credentials"
            )));
            return;
        }
        let (what, fix) = self.missing(ingress, subject);
        findings.push(Finding::Violation(match (declared, self.allow_application_auth) {
            (true, _) => format!("{APPLICATION_AUTH}: application is not accepted here; {fix}"),
            (false, true) => format!("{what}; {fix}, or {APPLICATION_AUTH}: application"),
            (false, false) => format!("{what}; {fix}"),
        }));
    }

    /// Whether ingress-nginx's annotations count for `family` too.
    fn nginx_on(&self, family: Family) -> bool {
        family == Family::Traefik && self.nginx_annotations_on_traefik
    }

    /// What is missing and how to add it, for the Ingress's controller. Short,
    /// like [`crate::engine::controller::Dialect::auth_fix`].
    fn missing(&self, ingress: &Ingress, subject: &Subject<'_>) -> (Cow<'static, str>, &'static str) {
        match subject.controller {
            Some(family) => {
                let fix = if self.nginx_on(family) { TRAEFIK_NGINX_FIX } else { family.dialect().auth_fix };
                (format!("no authentication for the {} controller", family.as_str()).into(), fix)
            }
            None => match ControllerMap::class_of(ingress) {
                Some(class) => (
                    format!("unknown ingress class {}: no auth annotation counts", shown(class)).into(),
                    "map it by IngressClass spec.controller or IngressControllers",
                ),
                None => (
                    "no ingress class, so no auth annotation counts".into(),
                    "set spec.ingressClassName (or a default in IngressControllers)",
                ),
            },
        }
    }
}

/// A class name for a message, quoted and cut at [`SHOWN_CLASS_CHARS`].
fn shown(class: &str) -> String {
    match class.char_indices().nth(SHOWN_CLASS_CHARS) {
        None => format!("{class:?}"),
        Some((end, _)) => format!("{:?}...", &class[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::Rule;
    use crate::engine::rules::testing::*;
    use serde_json::json;

    fn ing(class: &str, annotations: serde_json::Value) -> crate::engine::Object {
        ingress(json!({"metadata": {"name": "web", "annotations": annotations},
                       "spec": {"ingressClassName": class, "rules": [{"host": "a.example.com"}]}}))
    }

    fn auth() -> crate::engine::rules::Rule {
        rule(json!({"ingressAuth": {"traefikMiddlewares": ["auth-*@kubernetescrd"]}}))
    }

    #[test]
    fn rejects_an_ingress_without_authentication() {
        assert_eq!(
            check(&auth(), &ing("nginx", json!({}))),
            vec![violation(
                "no authentication for the nginx controller; set nginx.ingress.kubernetes.io/auth-url, \
                 auth-type+auth-secret or auth-tls-secret, or portcullis.dev/auth: application"
            )]
        );
    }

    #[test]
    fn accepts_nginx_methods() {
        let ok = [
            json!({"nginx.ingress.kubernetes.io/auth-url": "https://oauth2-proxy.auth.svc/oauth2/auth"}),
            json!({"nginx.ingress.kubernetes.io/auth-type": "basic", "nginx.ingress.kubernetes.io/auth-secret": "users"}),
            json!({"nginx.ingress.kubernetes.io/auth-tls-secret": "ns/ca"}),
            json!({"nginx.ingress.kubernetes.io/auth-tls-secret": "ns/ca", "nginx.ingress.kubernetes.io/auth-tls-verify-client": "on"}),
        ];
        for annotations in ok {
            assert_eq!(check(&auth(), &ing("nginx", annotations.clone())), vec![], "{annotations}");
        }
        let weak = [
            json!({"nginx.ingress.kubernetes.io/auth-type": "basic"}),
            json!({"nginx.ingress.kubernetes.io/auth-url": ""}),
            json!({"nginx.ingress.kubernetes.io/auth-tls-secret": "ns/ca", "nginx.ingress.kubernetes.io/auth-tls-verify-client": "optional_no_ca"}),
            json!({"alb.ingress.kubernetes.io/auth-type": "oidc"}),
        ];
        for annotations in weak {
            assert_eq!(check(&auth(), &ing("nginx", annotations.clone())).len(), 1, "{annotations}");
        }
    }

    #[test]
    fn accepts_other_controllers_methods() {
        assert_eq!(check(&auth(), &ing("alb", json!({"alb.ingress.kubernetes.io/auth-type": "cognito"}))), vec![]);
        assert_eq!(
            check(
                &auth(),
                &ing("haproxy", json!({"haproxy.org/auth-type": "basic-auth", "haproxy.org/auth-secret": "u"}))
            ),
            vec![]
        );
        let traefik = |m: &str| ing("traefik", json!({"traefik.ingress.kubernetes.io/router.middlewares": m}));
        assert_eq!(check(&auth(), &traefik("web-gzip@kubernetescrd,auth-oidc@kubernetescrd")), vec![]);
        assert_eq!(
            check(&auth(), &traefik("web-gzip@kubernetescrd")),
            vec![violation(
                "no authentication for the traefik controller; add an approved auth middleware \
                 to traefik.ingress.kubernetes.io/router.middlewares, or portcullis.dev/auth: application"
            )]
        );
    }

    #[test]
    fn accepts_f5_nginx_methods_only_for_f5_nginx() {
        for annotations in [
            json!({"nginx.org/basic-auth-secret": "users"}),
            json!({"nginx.com/jwt-key": "jwk", "nginx.com/jwt-realm": "shop"}),
        ] {
            assert_eq!(check(&auth(), &ing("nginx-plus", annotations.clone())), vec![], "{annotations}");
        }
        let f5_missing = violation(
            "no authentication for the f5-nginx controller; set nginx.org/basic-auth-secret \
             (or nginx.com/jwt-key with NGINX Plus), or portcullis.dev/auth: application",
        );
        // ingress-nginx's annotations mean nothing to F5 NGINX, and the other way round.
        let ingress_nginx = json!({"nginx.ingress.kubernetes.io/auth-url": "https://auth.example.com/check"});
        assert_eq!(check(&auth(), &ing("nginx-plus", ingress_nginx)), vec![f5_missing.clone()]);
        assert_eq!(check(&auth(), &ing("nginx-plus", json!({"nginx.org/basic-auth-secret": " "}))), vec![f5_missing]);
        assert_eq!(check(&auth(), &ing("nginx", json!({"nginx.org/basic-auth-secret": "users"}))).len(), 1);
    }

    #[test]
    fn an_unknown_class_is_judged_strictly() {
        // Before, any controller's method counted for an unknown class.
        for annotations in [
            json!({"alb.ingress.kubernetes.io/auth-type": "oidc"}),
            json!({"nginx.ingress.kubernetes.io/auth-url": "https://auth.example.com/check"}),
            json!({"haproxy.org/auth-type": "basic-auth", "haproxy.org/auth-secret": "users"}),
        ] {
            assert_eq!(
                check(&auth(), &ing("company-edge", annotations.clone())),
                vec![violation(
                    "unknown ingress class \"company-edge\": no auth annotation counts; map it by \
                     IngressClass spec.controller or IngressControllers, or portcullis.dev/auth: application"
                )],
                "{annotations}"
            );
        }
        let classless = ingress(json!({"metadata": {"name": "web", "annotations": {
            "nginx.ingress.kubernetes.io/auth-url": "https://auth.example.com/check"}}, "spec": {}}));
        assert_eq!(
            check(&auth(), &classless),
            vec![violation(
                "no ingress class, so no auth annotation counts; set spec.ingressClassName (or a default in \
                 IngressControllers), or portcullis.dev/auth: application"
            )]
        );
        let long = "a".repeat(60);
        assert_eq!(
            check(&rule(json!({"ingressAuth": {"allowApplicationAuth": false}})), &ing(&long, json!({}))),
            vec![violation(&format!(
                "unknown ingress class \"{}\"...: no auth annotation counts; map it by IngressClass \
                 spec.controller or IngressControllers",
                "a".repeat(40)
            ))]
        );
        // The application's own authentication does not depend on the controller.
        assert_eq!(
            check(&auth(), &ing("company-edge", json!({"portcullis.dev/auth": "application"}))),
            vec![Finding::Warning(
                "authentication is left to the application (portcullis.dev/auth: application); make sure every path checks credentials".into()
            )]
        );
    }

    #[test]
    fn nginx_methods_count_on_traefik_only_when_traefik_reads_them() {
        let nginx_auth = [
            json!({"nginx.ingress.kubernetes.io/auth-url": "https://auth.example.com/check"}),
            json!({"nginx.ingress.kubernetes.io/auth-type": "basic", "nginx.ingress.kubernetes.io/auth-secret": "u"}),
        ];
        let mut reading = auth();
        let Rule::IngressAuth(params) = &mut reading else { unreachable!() };
        params.count_nginx_annotations_on_traefik();
        for annotations in nginx_auth {
            assert_eq!(check(&auth(), &ing("traefik", annotations.clone())).len(), 1, "{annotations}");
            assert_eq!(check(&reading, &ing("traefik", annotations.clone())), vec![], "{annotations}");
            // Only on traefik-served Ingresses.
            assert_eq!(check(&reading, &ing("haproxy", annotations.clone())).len(), 1, "{annotations}");
        }
        let middleware = json!({"traefik.ingress.kubernetes.io/router.middlewares": "auth-oidc@kubernetescrd"});
        assert_eq!(check(&reading, &ing("traefik", middleware)), vec![]);
        assert_eq!(
            check(&reading, &ing("traefik", json!({"nginx.ingress.kubernetes.io/auth-type": "basic"}))),
            vec![violation(
                "no authentication for the traefik controller; add an approved auth middleware \
                 (router.middlewares) or nginx auth annotations, or portcullis.dev/auth: application"
            )]
        );
    }

    #[test]
    fn application_auth_is_a_warning_or_a_violation() {
        let declared = ing("nginx", json!({"portcullis.dev/auth": "application"}));
        assert_eq!(
            check(&auth(), &declared),
            vec![Finding::Warning(
                "authentication is left to the application (portcullis.dev/auth: application); make sure every path checks credentials".into()
            )]
        );
        let strict = rule(json!({"ingressAuth": {"allowApplicationAuth": false}}));
        assert_eq!(
            check(&strict, &declared),
            vec![violation(
                "portcullis.dev/auth: application is not accepted here; set nginx.ingress.kubernetes.io/auth-url, \
                 auth-type+auth-secret or auth-tls-secret"
            )]
        );
    }
}
