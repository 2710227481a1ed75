//! `externalIPs`: Service `spec.externalIPs` outside an allow-list. Any user who
//! can set externalIPs can intercept traffic to those addresses cluster-wide
//! (CVE-2020-8554), so the default allow-list is empty.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use serde::Deserialize;

use crate::engine::Finding;

#[derive(Debug, Deserialize)]
#[serde(try_from = "Config")]
pub struct ExternalIps {
    allowed: Vec<IpNet>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// CIDRs external IPs may come from; empty forbids all.
    #[serde(default)]
    allowed: Vec<String>,
}

impl TryFrom<Config> for ExternalIps {
    type Error = String;
    fn try_from(config: Config) -> Result<Self, String> {
        let allowed = config
            .allowed
            .iter()
            .map(|cidr| cidr.parse::<IpNet>().map_err(|_| format!("externalIPs.allowed: {cidr:?} is not a CIDR")))
            .collect::<Result<_, _>>()?;
        Ok(ExternalIps { allowed })
    }
}

impl ExternalIps {
    fn allows(&self, ip: &str) -> bool {
        ip.parse::<IpAddr>().is_ok_and(|ip| self.allowed.iter().any(|net| net.contains(&ip)))
    }

    pub fn check(&self, service: &Service, findings: &mut Vec<Finding>) {
        let Some(ips) = service.spec.as_ref().and_then(|spec| spec.external_ips.as_ref()) else {
            return;
        };
        let outside: Vec<&str> = ips.iter().map(String::as_str).filter(|ip| !self.allows(ip)).collect();
        if outside.is_empty() {
            return;
        }
        let fix = if self.allowed.is_empty() {
            "remove spec.externalIPs and expose the Service through an Ingress"
        } else {
            "use addresses from the allowed ranges or remove spec.externalIPs"
        };
        findings.push(Finding::Violation(format!(
            "spec.externalIPs {} can intercept cluster traffic (CVE-2020-8554); {fix}",
            outside.join(", ")
        )));
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::testing::*;
    use serde_json::json;

    fn svc(ips: serde_json::Value) -> crate::engine::Object {
        service(json!({"metadata": {"name": "web"}, "spec": {"externalIPs": ips}}))
    }

    #[test]
    fn rejects_external_ips_by_default() {
        let rule = rule(json!({"externalIPs": {}}));
        assert_eq!(
            check(&rule, &svc(json!(["203.0.113.10", "2001:db8::1"]))),
            vec![violation(
                "spec.externalIPs 203.0.113.10, 2001:db8::1 can intercept cluster traffic (CVE-2020-8554); remove spec.externalIPs and expose the Service through an Ingress"
            )]
        );
        assert_eq!(check(&rule, &service(json!({"metadata": {"name": "web"}, "spec": {}}))), vec![]);
        assert_eq!(check(&rule, &svc(json!([]))), vec![]);
    }

    #[test]
    fn allows_addresses_inside_the_allow_list() {
        let rule = rule(json!({"externalIPs": {"allowed": ["192.0.2.0/24"]}}));
        assert_eq!(check(&rule, &svc(json!(["192.0.2.7"]))), vec![]);
        assert_eq!(
            check(&rule, &svc(json!(["192.0.2.7", "198.51.100.1", "not-an-ip"]))),
            vec![violation(
                "spec.externalIPs 198.51.100.1, not-an-ip can intercept cluster traffic (CVE-2020-8554); use addresses from the allowed ranges or remove spec.externalIPs"
            )]
        );
    }

    #[test]
    fn a_bad_cidr_is_a_load_error() {
        let err =
            serde_json::from_value::<crate::engine::rules::Rule>(json!({"externalIPs": {"allowed": ["10.0.0.0/33"]}}))
                .unwrap_err();
        assert_eq!(err.to_string(), "externalIPs.allowed: \"10.0.0.0/33\" is not a CIDR");
    }
}
