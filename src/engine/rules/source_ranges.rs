//! `sourceRanges`: who may connect. A LoadBalancer Service must list its client
//! ranges (`spec.loadBalancerSourceRanges` or the cloud annotation) and must not
//! be world-open, unless it is internal and the policy allows internal ones
//! without (`internal: Allow`; see [`crate::engine::load_balancer`]); an Ingress
//! must carry its controller's allow-list annotation.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;

use super::Subject;
use crate::engine::Finding;
#[cfg(test)]
use crate::engine::controller::TRAEFIK_MIDDLEWARES;
use crate::engine::controller::{AllowList, Family};
use crate::engine::glob::Globs;
use crate::engine::load_balancer::{self, Exposure, Providers};
use crate::engine::object::annotation;

/// The cloud-provider annotation equivalent to `spec.loadBalancerSourceRanges`.
pub const SERVICE_ANNOTATION: &str = load_balancer::SOURCE_RANGES_ANNOTATION;

/// An Ingress's source allow-list, as [`SourceRanges::ingress_allow_list`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngressAllowList<'i> {
    /// The controller's allow-list annotation and its value (comma-separated CIDRs).
    Cidrs { key: &'static str, value: &'i str },
    /// An approved allow-list middleware.
    Middleware,
    /// None.
    None,
}

/// What a policy asks of an internal LoadBalancer Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Internal {
    /// The same source ranges as a public one.
    #[default]
    Restrict,
    /// Reachable from the private network only: no source ranges needed.
    Allow,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceRanges {
    /// Traefik middlewares (globs, e.g. `*-office-only@kubernetescrd`) that
    /// restrict source addresses: [`AllowList::Middleware`].
    #[serde(default)]
    traefik_middlewares: Globs,
    /// Services: whether an internal load balancer needs source ranges.
    #[serde(default)]
    internal: Internal,
    /// Services: the providers whose settings can make a load balancer internal.
    #[serde(default)]
    providers: Providers,
    /// ingress-nginx's allow-list annotations count on a traefik-served Ingress
    /// too (Traefik's NGINX-annotation provider). Not a rule parameter: set by
    /// the policy loader from the `IngressControllers` option `traefikNginxAnnotations`.
    #[serde(skip)]
    nginx_annotations_on_traefik: bool,
    /// Ranges that together admit more public addresses of a family than a
    /// network of this prefix length (of that family) are warned; `0` never.
    #[serde(default = "a_slash_8")]
    warn_wider_than: u8,
}

fn a_slash_8() -> u8 {
    8
}

/// Who a `/0` range admits, as [`judge`] says it, and for an internal load balancer.
const INTERNET: &str = "the whole internet";
const PRIVATE_NETWORK: &str = "the whole private network";

/// Address blocks that are not reachable from the internet, left out when
/// counting how much of it a set of ranges admits: RFC 1918, shared address
/// space (RFC 6598), loopback, link-local, IPv6 unique-local and link-local.
const NOT_PUBLIC: [&str; 9] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
];

/// The number of addresses of a network that is not a `/0`.
fn size(net: &IpNet) -> u128 {
    1u128.checked_shl(u32::from(net.max_prefix_len() - net.prefix_len())).unwrap_or(u128::MAX)
}

/// Checks a comma-separated or listed set of ranges: a range that is not a
/// CIDR, a `/0`, and ranges that together cover all of IPv4 or IPv6 (such as
/// `0.0.0.0/1` and `128.0.0.0/1`) are violations; ranges that together admit
/// more public addresses of one family than a `/warn_wider_than` network of it
/// are warned.
fn judge<'a>(field: &str, ranges: impl IntoIterator<Item = &'a str>, warn_wider_than: u8) -> Vec<Finding> {
    let mut nets = Vec::new();
    let mut written = Vec::new();
    for range in ranges.into_iter().map(str::trim).filter(|r| !r.is_empty()) {
        let net = range.parse::<IpNet>().or_else(|_| range.parse::<IpAddr>().map(IpNet::from));
        match net {
            Err(_) => {
                return vec![Finding::Violation(format!(
                    "{field} entry {range:?} is not a CIDR; write ranges like 203.0.113.0/24"
                ))];
            }
            Ok(net) if net.prefix_len() == 0 => {
                return vec![Finding::Violation(format!(
                    "{field} includes {range}, which opens it to the whole internet; list only the client CIDRs"
                ))];
            }
            Ok(net) => {
                nets.push(net.trunc());
                written.push(range);
            }
        }
    }
    let mut findings = Vec::new();
    for (family, v4) in [("IPv4", true), ("IPv6", false)] {
        let of_family: Vec<IpNet> = nets.iter().copied().filter(|net| matches!(net, IpNet::V4(_)) == v4).collect();
        let union = IpNet::aggregate(&of_family);
        let listed = || {
            let mut ranges: Vec<&str> = written
                .iter()
                .zip(&nets)
                .filter(|(_, net)| matches!(net, IpNet::V4(_)) == v4)
                .map(|(range, _)| *range)
                .collect();
            ranges.dedup();
            ranges.join(", ")
        };
        if union.iter().any(|net| net.prefix_len() == 0) {
            findings.push(Finding::Violation(format!(
                "{field} ranges {} together cover all of {family}, which opens it to the whole internet; list only \
                 the client CIDRs",
                listed()
            )));
            continue;
        }
        let bits = if v4 { 32 } else { 128 };
        let private: Vec<IpNet> = NOT_PUBLIC
            .iter()
            .map(|block| block.parse::<IpNet>().expect("a valid block"))
            .filter(|block| matches!(block, IpNet::V4(_)) == v4)
            .collect();
        // The union's networks are disjoint, as are the private blocks, and two
        // CIDRs either nest or are disjoint: subtract each nested overlap.
        let public: u128 = union
            .iter()
            .map(|net| {
                let hidden: u128 = private
                    .iter()
                    .map(|block| {
                        if net.contains(block) {
                            size(block)
                        } else if block.contains(net) {
                            size(net)
                        } else {
                            0
                        }
                    })
                    .sum();
                size(net) - hidden
            })
            .sum();
        // A /0 share (or `0`) never warns; 1 << 128 does not fit.
        let limit = 1u128.checked_shl(bits - u32::from(warn_wider_than).min(bits));
        if warn_wider_than > 0 && limit.is_some_and(|limit| public > limit) {
            findings.push(Finding::Warning(format!(
                "{field} ranges {} together admit more public {family} addresses than a /{warn_wider_than}; list only \
                 the client CIDRs",
                listed()
            )));
        }
    }
    findings
}

impl SourceRanges {
    pub fn check_service(&self, service: &Service, findings: &mut Vec<Finding>) {
        if !load_balancer::is_load_balancer(service) {
            return;
        }
        let exposure = load_balancer::exposure(service, self.providers.as_slice());
        if exposure.is_internal() && self.internal == Internal::Allow {
            return;
        }
        let found = match load_balancer::source_ranges(service) {
            load_balancer::SourceRanges::Spec(ranges) => {
                judge("spec.loadBalancerSourceRanges", ranges.iter().map(String::as_str), self.warn_wider_than)
            }
            load_balancer::SourceRanges::Annotation(ranges) => {
                judge(SERVICE_ANNOTATION, ranges.split(','), self.warn_wider_than)
            }
            load_balancer::SourceRanges::Open => vec![Finding::Violation(match exposure {
                Exposure::Public(None) => "type LoadBalancer without loadBalancerSourceRanges is open to the whole \
                                           internet; set spec.loadBalancerSourceRanges to the client CIDRs"
                    .to_owned(),
                Exposure::Public(Some(ignored)) => format!(
                    "type LoadBalancer without loadBalancerSourceRanges is open to the whole internet ({ignored}); \
                     set spec.loadBalancerSourceRanges to the client CIDRs"
                ),
                Exposure::Internal(evidence) => format!(
                    "internal load balancer ({evidence}) without loadBalancerSourceRanges is open to the whole \
                     private network; set spec.loadBalancerSourceRanges to the client CIDRs"
                ),
            })],
        };
        // An internal load balancer is open to its private network, not the
        // internet, and public addresses do not reach it.
        findings.extend(found.into_iter().filter_map(|finding| match (exposure.is_internal(), finding) {
            (true, Finding::Violation(text)) => Some(Finding::Violation(text.replace(INTERNET, PRIVATE_NETWORK))),
            (true, Finding::Warning(_)) => None,
            (_, finding) => Some(finding),
        }));
    }

    /// Lets ingress-nginx's allow-list annotations count on traefik-served
    /// Ingresses (the `IngressControllers` option `traefikNginxAnnotations`).
    pub fn count_nginx_annotations_on_traefik(&mut self) {
        self.nginx_annotations_on_traefik = true;
    }

    /// The providers whose settings can make a load balancer internal.
    pub fn providers(&self) -> &[load_balancer::Provider] {
        self.providers.as_slice()
    }

    /// The families whose allow-list annotations count for the Ingress.
    fn allow_list_families<'s>(&self, subject: &'s Subject<'_>) -> (&'s [Family], bool) {
        let traefik_reads_nginx = subject.controller == Some(Family::Traefik) && self.nginx_annotations_on_traefik;
        if traefik_reads_nginx { (&[Family::Traefik, Family::Nginx], true) } else { (subject.families(), false) }
    }

    /// The source allow-list of an Ingress as this rule reads it: the first
    /// allow-list annotation of its controller present, else an approved
    /// allow-list middleware.
    pub fn ingress_allow_list<'i>(&self, ingress: &'i Ingress, subject: &Subject<'_>) -> IngressAllowList<'i> {
        let (families, _) = self.allow_list_families(subject);
        let present = families
            .iter()
            .flat_map(|family| family.dialect().allow_list_annotations())
            .find_map(|key| annotation(&ingress.metadata, key).map(|value| (*key, value)));
        if let Some((key, value)) = present {
            return IngressAllowList::Cidrs { key, value };
        }
        if families
            .iter()
            .any(|family| family.dialect().allow_list_middleware(&ingress.metadata, &self.traefik_middlewares))
        {
            return IngressAllowList::Middleware;
        }
        IngressAllowList::None
    }

    pub fn check_ingress(&self, ingress: &Ingress, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let (_, traefik_reads_nginx) = self.allow_list_families(subject);
        match self.ingress_allow_list(ingress, subject) {
            IngressAllowList::Cidrs { key, value } => {
                if value.trim().is_empty() {
                    findings.push(Finding::Violation(format!("{key} is empty; list the client CIDRs")));
                } else {
                    findings.extend(judge(key, value.split(','), self.warn_wider_than));
                }
                return;
            }
            IngressAllowList::Middleware => return,
            IngressAllowList::None => {}
        }
        let message = match subject.controller {
            Some(family) => match family.dialect().allow_list {
                AllowList::Cidrs(keys) => {
                    format!("no source allow-list, so any client can reach it; set {} to the client CIDRs", keys[0])
                }
                AllowList::Middleware(_) if traefik_reads_nginx => "no source allow-list, so any client can reach it; \
                     add an approved ipAllowList middleware or nginx whitelist-source-range"
                    .to_owned(),
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
    fn denies_split_ranges_that_together_cover_a_whole_address_family() {
        let rule = rule(json!({"sourceRanges": {}}));
        let ranges = |list: serde_json::Value| check(&rule, &lb(json!({"loadBalancerSourceRanges": list}), json!({})));
        assert_eq!(
            ranges(json!(["0.0.0.0/1", "128.0.0.0/1"])),
            vec![violation(
                "spec.loadBalancerSourceRanges ranges 0.0.0.0/1, 128.0.0.0/1 together cover all of IPv4, which opens \
                 it to the whole internet; list only the client CIDRs"
            )]
        );
        assert_eq!(
            ranges(json!(["203.0.113.0/24", "::/1", "8000::/1"])),
            vec![violation(
                "spec.loadBalancerSourceRanges ranges ::/1, 8000::/1 together cover all of IPv6, which opens it to the \
                 whole internet; list only the client CIDRs"
            )]
        );
        assert_eq!(
            ranges(json!(["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"])),
            vec![violation(
                "spec.loadBalancerSourceRanges ranges 0.0.0.0/2, 64.0.0.0/2, 128.0.0.0/2, 192.0.0.0/2 together cover \
                 all of IPv4, which opens it to the whole internet; list only the client CIDRs"
            )]
        );
        // Host bits set count as the network they name.
        assert_eq!(ranges(json!(["1.2.3.4/1", "200.0.0.1/1"])).len(), 1);
        // Three of four /2s leave a quarter of IPv4 out: wide, warned, not denied.
        assert_eq!(
            ranges(json!(["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2"])),
            vec![Finding::Warning(
                "spec.loadBalancerSourceRanges ranges 0.0.0.0/2, 64.0.0.0/2, 128.0.0.0/2 together admit more public \
                 IPv4 addresses than a /8; list only the client CIDRs"
                    .into()
            )]
        );
    }

    #[test]
    fn warns_ranges_wider_than_a_slash_8_of_public_addresses() {
        let rule = rule(json!({"sourceRanges": {}}));
        let ranges = |list: serde_json::Value| check(&rule, &lb(json!({"loadBalancerSourceRanges": list}), json!({})));
        // Exactly a /8, or two /9s: not more than a /8.
        assert_eq!(ranges(json!(["44.0.0.0/8"])), vec![]);
        assert_eq!(ranges(json!(["44.0.0.0/9", "45.0.0.0/9"])), vec![]);
        assert_eq!(
            ranges(json!(["44.0.0.0/8", "203.0.113.0/24"])),
            vec![Finding::Warning(
                "spec.loadBalancerSourceRanges ranges 44.0.0.0/8, 203.0.113.0/24 together admit more public IPv4 \
                 addresses than a /8; list only the client CIDRs"
                    .into()
            )]
        );
        // Private networks are not the internet: RFC 1918 together is fine.
        assert_eq!(ranges(json!(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"])), vec![]);
        assert_eq!(ranges(json!(["fc00::/7", "2001:db8::/32"])), vec![]);
        assert_eq!(
            ranges(json!(["2000::/7"])),
            vec![Finding::Warning(
                "spec.loadBalancerSourceRanges ranges 2000::/7 together admit more public IPv6 addresses than a /8; \
                 list only the client CIDRs"
                    .into()
            )]
        );
        // The share is the policy's.
        let narrow = super::super::testing::rule(json!({"sourceRanges": {"warnWiderThan": 16}}));
        assert_eq!(
            check(&narrow, &lb(json!({"loadBalancerSourceRanges": ["44.0.0.0/15"]}), json!({}))),
            vec![Finding::Warning(
                "spec.loadBalancerSourceRanges ranges 44.0.0.0/15 together admit more public IPv4 addresses than a \
                 /16; list only the client CIDRs"
                    .into()
            )]
        );
        let never = super::super::testing::rule(json!({"sourceRanges": {"warnWiderThan": 0}}));
        assert_eq!(check(&never, &lb(json!({"loadBalancerSourceRanges": ["0.0.0.0/2"]}), json!({}))), vec![]);
    }

    #[test]
    fn split_ranges_in_an_ingress_allow_list_are_judged_alike() {
        let rule = rule(json!({"sourceRanges": {}}));
        let key = "nginx.ingress.kubernetes.io/whitelist-source-range";
        assert_eq!(
            check(&rule, &ing("nginx", json!({key: "0.0.0.0/1,128.0.0.0/1"}))),
            vec![violation(
                "nginx.ingress.kubernetes.io/whitelist-source-range ranges 0.0.0.0/1, 128.0.0.0/1 together cover all \
                 of IPv4, which opens it to the whole internet; list only the client CIDRs"
            )]
        );
        assert_eq!(check(&rule, &ing("nginx", json!({key: "::/1, 8000::/1"}))).len(), 1);
    }

    #[test]
    fn an_internal_load_balancer_covering_everything_is_open_to_its_private_network_and_not_warned() {
        let rule = rule(json!({"sourceRanges": {}}));
        let internal = |ranges: serde_json::Value| {
            check(
                &rule,
                &lb(
                    json!({"loadBalancerSourceRanges": ranges}),
                    json!({"networking.gke.io/load-balancer-type": "Internal"}),
                ),
            )
        };
        assert_eq!(
            internal(json!(["0.0.0.0/1", "128.0.0.0/1"])),
            vec![violation(
                "spec.loadBalancerSourceRanges ranges 0.0.0.0/1, 128.0.0.0/1 together cover all of IPv4, which opens \
                 it to the whole private network; list only the client CIDRs"
            )]
        );
        assert_eq!(internal(json!(["0.0.0.0/2"])), vec![]);
    }

    #[test]
    fn allows_restricted_load_balancers_and_other_types() {
        let rule = rule(json!({"sourceRanges": {}}));
        assert_eq!(check(&rule, &lb(json!({"loadBalancerSourceRanges": ["203.0.113.0/24"]}), json!({}))), vec![]);
        assert_eq!(check(&rule, &lb(json!({}), json!({SERVICE_ANNOTATION: "203.0.113.0/24,198.51.100.7"}))), vec![]);
        assert_eq!(check(&rule, &service(json!({"metadata": {"name": "x"}, "spec": {"type": "ClusterIP"}}))), vec![]);
    }

    const AZURE_INTERNAL: &str = "service.beta.kubernetes.io/azure-load-balancer-internal";

    #[test]
    fn internal_load_balancers_need_no_source_ranges_when_allowed() {
        let allow = rule(json!({"sourceRanges": {"internal": "Allow"}}));
        let azure = json!({AZURE_INTERNAL: "true"});
        assert_eq!(check(&allow, &lb(json!({}), azure.clone())), vec![]);
        assert_eq!(check(&allow, &lb(json!({"loadBalancerSourceRanges": ["0.0.0.0/0"]}), azure.clone())), vec![]);
        assert_eq!(check(&allow, &lb(json!({"loadBalancerClass": "service.k8s.aws/nlb"}), json!({}))), vec![]);
        // A public one keeps the rules.
        assert_eq!(
            check(&allow, &lb(json!({}), json!({AZURE_INTERNAL: "false"}))),
            vec![violation(
                "type LoadBalancer without loadBalancerSourceRanges is open to the whole internet; set spec.loadBalancerSourceRanges to the client CIDRs"
            )]
        );
        assert_eq!(
            check(&allow, &lb(json!({"loadBalancerSourceRanges": ["::/0"]}), json!({AZURE_INTERNAL: "True"}))),
            vec![violation(
                "spec.loadBalancerSourceRanges includes ::/0, which opens it to the whole internet; list only the client CIDRs"
            )]
        );
    }

    #[test]
    fn internal_load_balancers_are_restricted_by_default_in_their_own_words() {
        let rule = rule(json!({"sourceRanges": {}}));
        let gke = json!({"networking.gke.io/load-balancer-type": "Internal"});
        assert_eq!(
            check(&rule, &lb(json!({}), gke.clone())),
            vec![violation(
                "internal load balancer (gke: networking.gke.io/load-balancer-type: \"Internal\") without loadBalancerSourceRanges is open to the whole private network; set spec.loadBalancerSourceRanges to the client CIDRs"
            )]
        );
        assert_eq!(
            check(&rule, &lb(json!({}), json!({"service.beta.kubernetes.io/aws-load-balancer-type": "nlb-ip"}))),
            vec![violation(
                "internal load balancer (aws-lbc default for service.beta.kubernetes.io/aws-load-balancer-type: \"nlb-ip\") without loadBalancerSourceRanges is open to the whole private network; set spec.loadBalancerSourceRanges to the client CIDRs"
            )]
        );
        assert_eq!(
            check(
                &rule,
                &lb(
                    json!({}),
                    json!({"cloud.google.com/load-balancer-type": "Internal", SERVICE_ANNOTATION: "10.0.0.0/8,0.0.0.0/0"})
                )
            ),
            vec![violation(
                "service.beta.kubernetes.io/load-balancer-source-ranges includes 0.0.0.0/0, which opens it to the whole private network; list only the client CIDRs"
            )]
        );
        assert_eq!(check(&rule, &lb(json!({"loadBalancerSourceRanges": ["10.0.0.0/8"]}), gke)), vec![]);
    }

    #[test]
    fn an_internal_setting_that_does_not_count_is_named() {
        let allow = rule(json!({"sourceRanges": {"internal": "Allow"}}));
        assert_eq!(
            check(&allow, &lb(json!({}), json!({"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}))),
            vec![violation(
                "type LoadBalancer without loadBalancerSourceRanges is open to the whole internet (service.beta.kubernetes.io/aws-load-balancer-scheme: \"internal\" ignored: it needs spec.loadBalancerClass: service.k8s.aws/nlb); set spec.loadBalancerSourceRanges to the client CIDRs"
            )]
        );
        // Only the providers the policy names count: another cloud's annotation is ignored.
        let aws = rule(json!({"sourceRanges": {"internal": "Allow", "providers": ["aws-lbc", "aws"]}}));
        assert_eq!(
            check(&aws, &lb(json!({}), json!({AZURE_INTERNAL: "true"}))),
            vec![violation(
                "type LoadBalancer without loadBalancerSourceRanges is open to the whole internet (service.beta.kubernetes.io/azure-load-balancer-internal: \"true\" ignored: azure is not among the policy's providers); set spec.loadBalancerSourceRanges to the client CIDRs"
            )]
        );
        assert_eq!(
            check(&aws, &lb(json!({}), json!({"service.beta.kubernetes.io/aws-load-balancer-internal": "true"}))),
            vec![]
        );
    }

    #[test]
    fn unknown_internal_modes_and_providers_are_load_errors() {
        let parse = |params| serde_json::from_value::<crate::engine::rules::Rule>(json!({"sourceRanges": params}));
        assert_eq!(
            parse(json!({"internal": "allow"})).unwrap_err().to_string(),
            "unknown variant `allow`, expected `Restrict` or `Allow`"
        );
        assert_eq!(
            parse(json!({"providers": ["gcp"]})).unwrap_err().to_string(),
            "unknown variant `gcp`, expected one of `aws-lbc`, `aws`, `gke`, `azure`, `digitalocean`, `openstack`, `oracle`"
        );
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

    #[test]
    fn f5_nginx_has_no_allow_list_annotation() {
        let rule = rule(json!({"sourceRanges": {}}));
        let message = "the f5-nginx controller has no allow-list annotation, so any client can reach it; \
                       restrict sources at the load balancer or firewall";
        assert_eq!(check(&rule, &ing("nginx-plus", json!({}))), vec![violation(message)]);
        // ingress-nginx's annotation means nothing to F5 NGINX.
        let nginx = json!({"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"});
        assert_eq!(check(&rule, &ing("nginx-plus", nginx)), vec![violation(message)]);
    }

    #[test]
    fn nginx_allow_lists_count_on_traefik_only_when_traefik_reads_them() {
        let mut reading = rule(json!({"sourceRanges": {"traefikMiddlewares": ["*-office-only@kubernetescrd"]}}));
        let crate::engine::rules::Rule::SourceRanges(params) = &mut reading else { unreachable!() };
        params.count_nginx_annotations_on_traefik();
        let plain = rule(json!({"sourceRanges": {"traefikMiddlewares": ["*-office-only@kubernetescrd"]}}));
        for key in
            ["nginx.ingress.kubernetes.io/whitelist-source-range", "nginx.ingress.kubernetes.io/allowlist-source-range"]
        {
            let listed = ing("traefik", json!({key: "203.0.113.0/24"}));
            assert_eq!(check(&reading, &listed), vec![], "{key}");
            assert_eq!(
                check(&plain, &listed),
                vec![violation(&format!(
                    "no source allow-list, so any client can reach it; add an approved ipAllowList middleware to {TRAEFIK_MIDDLEWARES}"
                ))],
                "{key}"
            );
            // Only on traefik-served Ingresses.
            assert_eq!(check(&reading, &ing("haproxy", json!({key: "203.0.113.0/24"}))).len(), 1, "{key}");
        }
        // The nginx list is judged like any other.
        assert_eq!(
            check(
                &reading,
                &ing("traefik", json!({"nginx.ingress.kubernetes.io/whitelist-source-range": "0.0.0.0/0"}))
            ),
            vec![violation(
                "nginx.ingress.kubernetes.io/whitelist-source-range includes 0.0.0.0/0, which opens it to the whole internet; list only the client CIDRs"
            )]
        );
        assert_eq!(
            check(&reading, &ing("traefik", json!({TRAEFIK_MIDDLEWARES: "web-office-only@kubernetescrd"}))),
            vec![]
        );
        assert_eq!(
            check(&reading, &ing("traefik", json!({}))),
            vec![violation(
                "no source allow-list, so any client can reach it; add an approved ipAllowList middleware or nginx whitelist-source-range"
            )]
        );
    }
}
