//! `serviceType`: forbids Service types (NodePort, LoadBalancer, ...). An omitted
//! type is ClusterIP. Optionally flags a LoadBalancer that still allocates node
//! ports. A forbidden LoadBalancer that is internal (any provider's setting, see
//! [`crate::engine::load_balancer`]) is worded as such: it has no public IP.

use k8s_openapi::api::core::v1::Service;
use serde::Deserialize;

use crate::engine::Finding;
use crate::engine::load_balancer::{self, Exposure, Provider};

const TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

#[derive(Debug, Deserialize)]
#[serde(try_from = "Config")]
pub struct ServiceType {
    forbidden: Vec<&'static str>,
    load_balancer_node_ports: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    forbidden: Vec<String>,
    /// Also flag a LoadBalancer that does not set `allocateLoadBalancerNodePorts: false`.
    #[serde(default)]
    load_balancer_node_ports: bool,
}

impl TryFrom<Config> for ServiceType {
    type Error = String;
    fn try_from(config: Config) -> Result<Self, String> {
        let forbidden = config
            .forbidden
            .iter()
            .map(|written| {
                TYPES.iter().copied().find(|t| t.eq_ignore_ascii_case(written)).ok_or_else(|| {
                    format!(
                        "serviceType.forbidden: unknown Service type {written:?} (expected one of {})",
                        TYPES.join(", ")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if forbidden.is_empty() && !config.load_balancer_node_ports {
            return Err("serviceType: set forbidden types or loadBalancerNodePorts: true".into());
        }
        Ok(ServiceType { forbidden, load_balancer_node_ports: config.load_balancer_node_ports })
    }
}

/// What is wrong with a type and how to fix it.
fn advice(service_type: &str) -> &'static str {
    match service_type {
        "NodePort" => {
            "type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS"
        }
        "LoadBalancer" => {
            "type LoadBalancer costs a public IP per Service and has no routing or TLS; prefer ClusterIP behind an Ingress"
        }
        "ExternalName" => "type ExternalName is not allowed here; point clients at the target name directly",
        _ => "type ClusterIP is not allowed here; use a type the platform team permits",
    }
}

impl ServiceType {
    pub fn check(&self, service: &Service, findings: &mut Vec<Finding>) {
        let spec = service.spec.as_ref();
        let service_type = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
        if let Some(forbidden) = self.forbidden.iter().find(|t| t.eq_ignore_ascii_case(service_type)) {
            let text = match *forbidden {
                "LoadBalancer" => match load_balancer::exposure(service, &Provider::ALL) {
                    Exposure::Internal(evidence) => format!(
                        "internal load balancer ({evidence}) has no routing or TLS; prefer ClusterIP behind an Ingress"
                    ),
                    Exposure::Public(_) => advice(forbidden).to_owned(),
                },
                _ => advice(forbidden).to_owned(),
            };
            findings.push(Finding::Violation(text));
        } else if self.load_balancer_node_ports
            && service_type.eq_ignore_ascii_case("LoadBalancer")
            && spec.and_then(|s| s.allocate_load_balancer_node_ports) != Some(false)
        {
            findings.push(Finding::Violation(
                "type LoadBalancer also opens node ports on every node; set spec.allocateLoadBalancerNodePorts: false"
                    .into(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::testing::*;
    use serde_json::json;

    fn svc(spec: serde_json::Value) -> crate::engine::Object {
        service(json!({"metadata": {"name": "web"}, "spec": spec}))
    }

    #[test]
    fn rejects_nodeport() {
        let rule = rule(json!({"serviceType": {"forbidden": ["NodePort"]}}));
        assert_eq!(
            check(&rule, &svc(json!({"type": "NodePort", "ports": [{"port": 80}]}))),
            vec![violation(
                "type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS"
            )]
        );
    }

    #[test]
    fn omitted_type_is_cluster_ip() {
        let nodeport = rule(json!({"serviceType": {"forbidden": ["NodePort"]}}));
        assert_eq!(check(&nodeport, &svc(json!({"ports": [{"port": 80}]}))), vec![]);
        assert_eq!(check(&nodeport, &service(json!({"metadata": {"name": "bare"}}))), vec![]);
        let clusterip = rule(json!({"serviceType": {"forbidden": ["clusterip"]}}));
        assert_eq!(check(&clusterip, &svc(json!({}))).len(), 1);
    }

    #[test]
    fn load_balancer_node_ports_is_opt_in() {
        let plain = rule(json!({"serviceType": {"forbidden": ["NodePort"]}}));
        let lb = svc(json!({"type": "LoadBalancer"}));
        assert_eq!(check(&plain, &lb), vec![]);
        let strict = rule(json!({"serviceType": {"forbidden": ["NodePort"], "loadBalancerNodePorts": true}}));
        assert_eq!(
            check(&strict, &lb),
            vec![violation(
                "type LoadBalancer also opens node ports on every node; set spec.allocateLoadBalancerNodePorts: false"
            )]
        );
        assert_eq!(
            check(&strict, &svc(json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false}))),
            vec![]
        );
    }

    #[test]
    fn an_internal_load_balancer_is_worded_as_such() {
        let rule = rule(json!({"serviceType": {"forbidden": ["LoadBalancer"]}}));
        let annotated = |annotations: serde_json::Value| {
            service(json!({"metadata": {"name": "web", "annotations": annotations}, "spec": {"type": "LoadBalancer"}}))
        };
        assert_eq!(
            check(&rule, &annotated(json!({"service.beta.kubernetes.io/openstack-internal-load-balancer": "true"}))),
            vec![violation(
                "internal load balancer (openstack: service.beta.kubernetes.io/openstack-internal-load-balancer: \"true\") has no routing or TLS; prefer ClusterIP behind an Ingress"
            )]
        );
        assert_eq!(
            check(&rule, &svc(json!({"type": "LoadBalancer", "loadBalancerClass": "service.k8s.aws/nlb"}))),
            vec![violation(
                "internal load balancer (aws-lbc default for spec.loadBalancerClass: service.k8s.aws/nlb) has no routing or TLS; prefer ClusterIP behind an Ingress"
            )]
        );
        // A public one keeps the public wording.
        let public = "type LoadBalancer costs a public IP per Service and has no routing or TLS; prefer ClusterIP behind an Ingress";
        assert_eq!(
            check(&rule, &annotated(json!({"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}))),
            vec![violation(public)]
        );
        assert_eq!(check(&rule, &svc(json!({"type": "LoadBalancer"}))), vec![violation(public)]);
    }

    #[test]
    fn unknown_types_are_load_errors() {
        let err =
            serde_json::from_value::<crate::engine::rules::Rule>(json!({"serviceType": {"forbidden": ["NodePorts"]}}))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "serviceType.forbidden: unknown Service type \"NodePorts\" (expected one of ClusterIP, NodePort, LoadBalancer, ExternalName)"
        );
    }
}
