//! `ingressAuth`: an Ingress must put an authentication method recognised for
//! its controller in front of the backend, or declare that the application
//! authenticates by itself (`portcullis.dev/auth: application`), which a policy
//! may accept with a warning.

use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;

use super::Subject;
use crate::engine::Finding;
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
}

fn yes() -> bool {
    true
}

impl IngressAuth {
    pub fn check(&self, ingress: &Ingress, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let approved = &self.traefik_middlewares;
        if subject.families().iter().any(|family| family.dialect().authenticated(&ingress.metadata, approved)) {
            return;
        }
        let declared = annotation(&ingress.metadata, APPLICATION_AUTH) == Some("application");
        findings.push(match (declared, self.allow_application_auth) {
            (true, true) => Finding::Warning(format!(
                "authentication is left to the application ({APPLICATION_AUTH}: application); make sure every path checks credentials"
            )),
            (true, false) => {
                Finding::Violation(format!("{APPLICATION_AUTH}: application is not accepted here; {}", fix(subject)))
            }
            (false, true) => Finding::Violation(format!(
                "no authentication for {}; {}, or {APPLICATION_AUTH}: application",
                subject.controller_name(),
                fix(subject)
            )),
            (false, false) => Finding::Violation(format!(
                "no authentication for {}; {}",
                subject.controller_name(),
                fix(subject)
            )),
        });
    }
}

/// How to add authentication for the Ingress's controller. Short, like
/// [`crate::engine::controller::Dialect::auth_fix`].
fn fix(subject: &Subject<'_>) -> &'static str {
    match subject.controller {
        Some(family) => family.dialect().auth_fix,
        None => "set spec.ingressClassName to a known class and use its auth annotations",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        // Unknown class: any known method counts.
        assert_eq!(check(&auth(), &ing("custom", json!({"alb.ingress.kubernetes.io/auth-type": "oidc"}))), vec![]);
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
