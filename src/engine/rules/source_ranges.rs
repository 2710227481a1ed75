//! `sourceRanges`: who may connect. A LoadBalancer Service must list its client
//! ranges (`spec.loadBalancerSourceRanges` or the cloud annotation) and must not
//! be world-open; an Ingress must carry its controller's allow-list annotation.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;

use super::Subject;
use crate::engine::Finding;
use crate::engine::controller::AllowList;
#[cfg(test)]
use crate::engine::controller::TRAEFIK_MIDDLEWARES;
use crate::engine::glob::Globs;
use crate::engine::object::annotation;

/// The cloud-provider annotation equivalent to `spec.loadBalancerSourceRanges`.
pub const SERVICE_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceRanges {
    /// Traefik middlewares (globs, e.g. `*-office-only@kubernetescrd`) that
    /// restrict source addresses: [`AllowList::Middleware`].
    #[serde(default)]
    traefik_middlewares: Globs,
}

/// Checks a comma-separated or listed set of ranges; `None` when all is well.
fn judge<'a>(field: &str, ranges: impl IntoIterator<Item = &'a str>) -> Option<String> {
    for range in ranges.into_iter().map(str::trim).filter(|r| !r.is_empty()) {
        let net = range.parse::<IpNet>().or_else(|_| range.parse::<IpAddr>().map(IpNet::from));
        match net {
            Err(_) => {
                return Some(format!("{field} entry {range:?} is not a CIDR; write ranges like 203.0.113.0/24"));
            }
            Ok(net) if net.prefix_len() == 0 => {
                return Some(format!(
                    "{field} includes {range}, which opens it to the whole internet; list only the client CIDRs"
                ));
            }
            Ok(_) => {}
        }
    }
    None
}

impl SourceRanges {
    pub fn check_service(&self, service: &Service, findings: &mut Vec<Finding>) {
        let Some(spec) = &service.spec else { return };
        if !spec.type_.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("LoadBalancer")) {
            return;
        }
        let problem = match (&spec.load_balancer_source_ranges, annotation(&service.metadata, SERVICE_ANNOTATION)) {
            (Some(ranges), _) if !ranges.is_empty() => {
                judge("spec.loadBalancerSourceRanges", ranges.iter().map(String::as_str))
            }
            (_, Some(ranges)) if !ranges.trim().is_empty() => judge(SERVICE_ANNOTATION, ranges.split(',')),
            _ => Some(
                "type LoadBalancer without loadBalancerSourceRanges is open to the whole internet; \
                 set spec.loadBalancerSourceRanges to the client CIDRs"
                    .to_owned(),
            ),
        };
        findings.extend(problem.map(Finding::Violation));
    }

    pub fn check_ingress(&self, ingress: &Ingress, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let families = subject.families();
        let present = families
            .iter()
            .flat_map(|family| family.dialect().allow_list_annotations())
            .find_map(|key| annotation(&ingress.metadata, key).map(|value| (*key, value)));
        if let Some((key, value)) = present {
            let problem = if value.trim().is_empty() {
                Some(format!("{key} is empty; list the client CIDRs"))
            } else {
                judge(key, value.split(','))
            };
            findings.extend(problem.map(Finding::Violation));
            return;
        }
        if families
            .iter()
            .any(|family| family.dialect().allow_list_middleware(&ingress.metadata, &self.traefik_middlewares))
        {
            return;
        }
        let message = match subject.controller {
            Some(family) => match family.dialect().allow_list {
                AllowList::Cidrs(keys) => {
                    format!("no source allow-list, so any client can reach it; set {} to the client CIDRs", keys[0])
                }
                AllowList::Middleware(key) => format!(
                    "no source allow-list, so any client can reach it; add an approved ipAllowList middleware to {key}"
                ),
                AllowList::None => format!(
                    "the {} controller has no allow-list annotation, so any client can reach it; restrict sources at the load balancer or firewall",
                    family.as_str()
                ),
            },
            None => "no source allow-list for an unknown ingress class; set spec.ingressClassName and the controller's allow-list annotation".to_owned(),
        };
        findings.push(Finding::Violation(message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::*;
    use serde_json::json;

    fn lb(spec_extra: serde_json::Value, annotations: serde_json::Value) -> crate::engine::Object {
        let mut spec = json!({"type": "LoadBalancer", "ports": [{"port": 443}]});
        spec.as_object_mut().unwrap().extend(spec_extra.as_object().unwrap().clone());
        service(json!({"metadata": {"name": "web", "annotations": annotations}, "spec": spec}))
    }

    fn ing(class: &str, annotations: serde_json::Value) -> crate::engine::Object {
        ingress(json!({"metadata": {"name": "web", "annotations": annotations},
                       "spec": {"ingressClassName": class, "rules": [{"host": "a.example.com"}]}}))
    }

    #[test]
    fn rejects_world_open_load_balancers() {
        let rule = rule(json!({"sourceRanges": {}}));
        assert_eq!(
            check(&rule, &lb(json!({}), json!({}))),
            vec![violation(
                "type LoadBalancer without loadBalancerSourceRanges is open to the whole internet; set spec.loadBalancerSourceRanges to the client CIDRs"
            )]
        );
        assert_eq!(
            check(&rule, &lb(json!({"loadBalancerSourceRanges": ["10.0.0.0/8", "0.0.0.0/0"]}), json!({}))),
            vec![violation(
                "spec.loadBalancerSourceRanges includes 0.0.0.0/0, which opens it to the whole internet; list only the client CIDRs"
            )]
        );
        assert_eq!(
            check(&rule, &lb(json!({}), json!({SERVICE_ANNOTATION: "203.0.113.0/24, ::/0"}))),
            vec![violation(
                "service.beta.kubernetes.io/load-balancer-source-ranges includes ::/0, which opens it to the whole internet; list only the client CIDRs"
            )]
        );
        assert_eq!(
            check(&rule, &lb(json!({"loadBalancerSourceRanges": ["office"]}), json!({}))),
            vec![violation(
                "spec.loadBalancerSourceRanges entry \"office\" is not a CIDR; write ranges like 203.0.113.0/24"
            )]
        );
    }

    #[test]
    fn allows_restricted_load_balancers_and_other_types() {
        let rule = rule(json!({"sourceRanges": {}}));
        assert_eq!(check(&rule, &lb(json!({"loadBalancerSourceRanges": ["203.0.113.0/24"]}), json!({}))), vec![]);
        assert_eq!(check(&rule, &lb(json!({}), json!({SERVICE_ANNOTATION: "203.0.113.0/24,198.51.100.7"}))), vec![]);
        assert_eq!(check(&rule, &service(json!({"metadata": {"name": "x"}, "spec": {"type": "ClusterIP"}}))), vec![]);
    }

    #[test]
    fn ingress_needs_its_controllers_allow_list() {
        let rule = rule(json!({"sourceRanges": {"traefikMiddlewares": ["*-office-only@kubernetescrd"]}}));
        assert_eq!(
            check(&rule, &ing("nginx", json!({}))),
            vec![violation(
                "no source allow-list, so any client can reach it; set nginx.ingress.kubernetes.io/whitelist-source-range to the client CIDRs"
            )]
        );
        assert_eq!(
            check(&rule, &ing("nginx", json!({"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"}))),
            vec![]
        );
        assert_eq!(
            check(&rule, &ing("nginx", json!({"nginx.ingress.kubernetes.io/whitelist-source-range": "0.0.0.0/0"}))),
            vec![violation(
                "nginx.ingress.kubernetes.io/whitelist-source-range includes 0.0.0.0/0, which opens it to the whole internet; list only the client CIDRs"
            )]
        );
        // An annotation of another controller does not count for nginx.
        assert_eq!(check(&rule, &ing("nginx", json!({"haproxy.org/allow-list": "10.0.0.0/8"}))).len(), 1);
        assert_eq!(check(&rule, &ing("haproxy", json!({"haproxy.org/allow-list": "10.0.0.0/8"}))), vec![]);
        assert_eq!(
            check(
                &rule,
                &ing(
                    "traefik",
                    json!({TRAEFIK_MIDDLEWARES: "web-compress@kubernetescrd, web-office-only@kubernetescrd"})
                )
            ),
            vec![]
        );
        assert_eq!(check(&rule, &ing("traefik", json!({TRAEFIK_MIDDLEWARES: "web-compress@kubernetescrd"}))).len(), 1);
        assert_eq!(
            check(&rule, &ing("gce", json!({}))),
            vec![violation(
                "the gce controller has no allow-list annotation, so any client can reach it; restrict sources at the load balancer or firewall"
            )]
        );
        // Unknown class: any controller's allow-list annotation counts.
        assert_eq!(
            check(&rule, &ing("custom", json!({"alb.ingress.kubernetes.io/inbound-cidrs": "10.0.0.0/8"}))),
            vec![]
        );
    }
}
