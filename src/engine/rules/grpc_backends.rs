//! `grpcBackends`: an HTTPRoute whose backends look like gRPC services (their
//! names match `names`, default `grpc*`). An HTTPRoute may reach its backends
//! over HTTP/1.1, which breaks gRPC; a GRPCRoute tells the implementation to
//! speak HTTP/2 (gRPC) to them and needs no backend-protocol setting. The
//! Ingress mutation `grpc-backend-protocol` does not apply to routes.

use serde::Deserialize;

use super::Subject;
use crate::engine::gateway::attachment::cut;
use crate::engine::glob::Globs;
use crate::engine::{Finding, Object};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcBackends {
    /// Backend names (globs) that mark a gRPC service; default `grpc*`.
    #[serde(default = "default_names")]
    names: Globs,
}

fn default_names() -> Globs {
    Globs::new(&["grpc*"]).expect("a valid glob")
}

/// Backend names listed in a message, at most.
const LISTED: usize = 3;

impl GrpcBackends {
    pub fn check(&self, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let Object::HttpRoute(route) = subject.object else { return };
        let mut matched: Vec<&str> = Vec::new();
        for backend in route.spec.rules.iter().flat_map(|rule| &rule.backend_refs) {
            if self.names.matches(&backend.name) && !matched.contains(&backend.name.as_str()) {
                matched.push(&backend.name);
            }
        }
        let Some(first) = matched.first() else { return };
        let (subject, them) = match matched.len() {
            1 => (format!("backend {} looks", cut(first)), "it"),
            count => {
                let mut names = matched.iter().take(LISTED).map(|name| cut(name)).collect::<Vec<_>>().join(", ");
                if count > LISTED {
                    names.push_str(&format!(" and {} more", count - LISTED));
                }
                (format!("backends {names} look"), "them")
            }
        };
        findings.push(Finding::Violation(format!(
            "{subject} like gRPC; serve {them} with a GRPCRoute, which needs no backend-protocol setting \
             (grpc-backend-protocol mutates Ingresses only)"
        )));
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::Kind;
    use crate::engine::rules::testing::*;
    use serde_json::json;

    fn route(kind: Kind, backends: &[&str]) -> crate::engine::Object {
        let rules: Vec<serde_json::Value> =
            backends.iter().map(|name| json!({"backendRefs": [{"name": name, "port": 50051}]})).collect();
        gateway_api(
            kind,
            json!({"metadata": {"name": "api"}, "spec": {"parentRefs": [{"name": "public"}], "rules": rules}}),
        )
    }

    fn grpc_rule() -> crate::engine::rules::Rule {
        rule(json!({"grpcBackends": {}}))
    }

    #[test]
    fn an_http_route_to_grpc_backends_is_pointed_to_grpc_route() {
        assert_eq!(
            check(&grpc_rule(), &route(Kind::HttpRoute, &["web", "grpc-users", "grpc-users"])),
            vec![violation(
                "backend grpc-users looks like gRPC; serve it with a GRPCRoute, which needs no backend-protocol \
                 setting (grpc-backend-protocol mutates Ingresses only)"
            )]
        );
        assert_eq!(
            check(&grpc_rule(), &route(Kind::HttpRoute, &["grpc", "grpc-a", "web", "grpc-b", "grpc-c"])),
            vec![violation(
                "backends grpc, grpc-a, grpc-b and 1 more look like gRPC; serve them with a GRPCRoute, which needs \
                 no backend-protocol setting (grpc-backend-protocol mutates Ingresses only)"
            )]
        );
    }

    #[test]
    fn other_backends_and_grpc_routes_pass() {
        assert_eq!(check(&grpc_rule(), &route(Kind::HttpRoute, &["web", "api-grpc"])), vec![]);
        assert_eq!(check(&grpc_rule(), &route(Kind::HttpRoute, &[])), vec![]);
        assert_eq!(check(&grpc_rule(), &route(Kind::GrpcRoute, &["grpc-users"])), vec![]);
    }

    #[test]
    fn the_names_are_configurable() {
        let custom = rule(json!({"grpcBackends": {"names": ["*-grpc"]}}));
        assert_eq!(check(&custom, &route(Kind::HttpRoute, &["grpc-users"])), vec![]);
        assert_eq!(check(&custom, &route(Kind::HttpRoute, &["users-grpc"])).len(), 1);
        assert!(
            serde_json::from_value::<crate::engine::rules::Rule>(json!({"grpcBackends": {"names": ["[a"]}})).is_err()
        );
    }
}
