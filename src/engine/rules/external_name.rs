//! `externalName`: where a Service of type ExternalName points. The cluster DNS
//! answers its name with a CNAME to `spec.externalName`, and ingress
//! controllers and other proxies that follow ExternalName Services connect to
//! that name themselves. So a name of the proxy's own host, a cloud metadata
//! endpoint or another namespace's Service lets whoever may create Services in
//! one namespace reach what that namespace cannot (the CVE-2021-25740 class):
//!
//! - `localhost` (and `*.localhost`), a loopback or unspecified address: the
//!   proxy's own ports, such as its admin and metrics endpoints;
//! - a link-local address (169.254.0.0/16, fe80::/10) or a cloud metadata
//!   endpoint (`metadata.google.internal`, AWS' `fd00:ec2::254`, ...): the
//!   node's credentials;
//! - an in-cluster name (`<name>.<namespace>.svc[.<cluster domain>]`, anything
//!   under the cluster domain) of another namespace than the Service's own
//!   (`metadata.namespace`, which the API server always sets; a manifest
//!   checked without one counts as another namespace), unless the policy
//!   allows that namespace.
//!
//! Any other IP address is a warning: ExternalName takes a DNS name. Addresses
//! are also recognised in the legacy forms `inet_aton` and so many resolvers
//! accept (`127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::Service;
use serde::Deserialize;

use crate::engine::Finding;
use crate::engine::glob::Globs;

/// Names of the local host (RFC 6761 reserves `localhost` and every name under it).
const LOOPBACK_NAMES: &[&str] = &["localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"];

/// Cloud metadata endpoints by name: GCE (`metadata` through its search
/// domain), AWS EC2.
const METADATA_NAMES: &[&str] =
    &["metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"];

/// Cloud metadata and host endpoints outside the link-local ranges: AWS EC2's
/// IPv6 instance metadata, Alibaba Cloud's metadata, Azure's WireServer.
const METADATA_ADDRESSES: &[IpAddr] = &[
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
];

const FIX: &str = "point it at an external DNS name";

#[derive(Debug, Deserialize)]
#[serde(try_from = "Config")]
pub struct ExternalName {
    /// Lowercase, without leading or trailing dots.
    cluster_domains: Vec<String>,
    allowed_namespaces: Globs,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// The cluster's DNS domains (kubelet `clusterDomain`).
    #[serde(default = "default_cluster_domains")]
    cluster_domains: Vec<String>,
    /// Namespaces (globs) whose in-cluster names any namespace may point at.
    #[serde(default)]
    allowed_namespaces: Globs,
}

fn default_cluster_domains() -> Vec<String> {
    vec!["cluster.local".to_owned()]
}

impl TryFrom<Config> for ExternalName {
    type Error = String;
    fn try_from(config: Config) -> Result<Self, String> {
        let cluster_domains = config
            .cluster_domains
            .iter()
            .map(|domain| {
                let trimmed = domain.trim_matches('.');
                let valid = !trimmed.is_empty()
                    && trimmed.split('.').all(|label| {
                        !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                match valid {
                    true => Ok(trimmed.to_ascii_lowercase()),
                    false => Err(format!("externalName.clusterDomains: {domain:?} is not a DNS domain")),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(ExternalName { cluster_domains, allowed_namespaces: config.allowed_namespaces })
    }
}

/// What an external name is.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    /// An IP address; `legacy` when not written in the standard form.
    Address {
        ip: IpAddr,
        legacy: bool,
    },
    LoopbackName,
    MetadataName,
    /// A name under the cluster's DNS, with its namespace when the name has one.
    InCluster(Option<&'a str>),
    /// Any other DNS name.
    Other,
}

impl ExternalName {
    pub fn check(&self, service: &Service, findings: &mut Vec<Finding>) {
        let Some(spec) = &service.spec else { return };
        if !spec.type_.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("ExternalName")) {
            return;
        }
        let Some(written) = spec.external_name.as_deref().filter(|name| !name.trim().is_empty()) else {
            return;
        };
        let own = service.metadata.namespace.as_deref();
        let finding = match self.target(written) {
            Target::Address { ip, legacy } => {
                let shown = || if legacy { format!("{written} ({ip})") } else { written.to_owned() };
                match classify(ip) {
                    Some(kind) => Finding::Violation(format!("spec.externalName {} {kind}; {FIX}", shown())),
                    None => Finding::Warning(format!(
                        "spec.externalName {} is an IP address, but ExternalName takes a DNS name; use a DNS name, \
                         or a Service without selector and an EndpointSlice",
                        shown()
                    )),
                }
            }
            Target::LoopbackName => Finding::Violation(format!("spec.externalName {written} {LOOPBACK}; {FIX}")),
            Target::MetadataName => Finding::Violation(format!("spec.externalName {written} {METADATA}; {FIX}")),
            Target::InCluster(Some(namespace))
                if own.is_some_and(|own| own.eq_ignore_ascii_case(namespace)) || self.allows(namespace) =>
            {
                return;
            }
            Target::InCluster(namespace) => {
                let what = match namespace {
                    Some(namespace) => format!("is a Service name of namespace {namespace}"),
                    None => "is an in-cluster name of no known namespace".to_owned(),
                };
                Finding::Violation(format!(
                    "spec.externalName {written} {what}: proxies following it cross namespaces (CVE-2021-25740); \
                     name a Service of this namespace or an external host"
                ))
            }
            Target::Other => return,
        };
        findings.push(finding);
    }

    /// Whether the policy allows names of the namespace (namespaces are lowercase).
    fn allows(&self, namespace: &str) -> bool {
        match namespace.bytes().any(|b| b.is_ascii_uppercase()) {
            true => self.allowed_namespaces.matches(&namespace.to_ascii_lowercase()),
            false => self.allowed_namespaces.matches(namespace),
        }
    }

    /// What `written` names (case-insensitively, without one trailing dot).
    fn target<'a>(&self, written: &'a str) -> Target<'a> {
        let name = written.trim();
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some((ip, legacy)) = ip_literal(name) {
            return Target::Address { ip, legacy };
        }
        if LOOPBACK_NAMES.iter().any(|local| local.eq_ignore_ascii_case(name)) || ends_with_label(name, "localhost") {
            return Target::LoopbackName;
        }
        if METADATA_NAMES.iter().any(|metadata| metadata.eq_ignore_ascii_case(name)) {
            return Target::MetadataName;
        }
        for domain in &self.cluster_domains {
            if name.eq_ignore_ascii_case(domain) {
                return Target::InCluster(None);
            }
            if let Some(rest) = strip_label_suffix(name, domain) {
                return Target::InCluster(namespace_of(rest));
            }
        }
        // `<name>.<namespace>.svc`, completed by the cluster's search path.
        match strip_label_suffix(name, "svc") {
            Some(rest) => Target::InCluster(rest.rsplit('.').next().filter(|namespace| !namespace.is_empty())),
            None => Target::Other,
        }
    }
}

const LOOPBACK: &str = "is the local host: a proxy following it reaches its own ports";
const METADATA: &str = "is a cloud metadata endpoint: a proxy following it can leak node credentials";

/// Why an address must not be an external name, if it must not.
fn classify(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if METADATA_ADDRESSES.contains(&ip) {
        return Some(METADATA);
    }
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() || v4.octets()[0] == 0 => Some(LOOPBACK),
        IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified() => Some(LOOPBACK),
        IpAddr::V4(v4) if v4.is_link_local() => {
            Some("is link-local, where cloud metadata endpoints answer: a proxy following it can leak node credentials")
        }
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            Some("is link-local, where metadata endpoints answer: a proxy following it can leak node credentials")
        }
        _ => None,
    }
}

/// An IP address in `name`: standard IPv4 or IPv6 (bracketed or with a zone
/// too), or IPv4 in a legacy `inet_aton` form (`legacy` is then true).
fn ip_literal(name: &str) -> Option<(IpAddr, bool)> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Some((ip, false));
    }
    let bare = name.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(name);
    let bare = bare.split_once('%').map_or(bare, |(address, _zone)| address);
    if let Ok(v6) = bare.parse::<Ipv6Addr>() {
        return Some((IpAddr::V6(v6), false));
    }
    inet_aton(name).map(|v4| (IpAddr::V4(v4), true))
}

/// IPv4 as glibc's `inet_aton` reads it: one to four parts, each decimal,
/// octal (leading `0`) or hexadecimal (`0x`); the last part fills the bytes
/// the others leave (`127.1` is 127.0.0.1, `2130706433` too).
fn inet_aton(name: &str) -> Option<Ipv4Addr> {
    let mut parts = [0u32; 4];
    let mut count = 0;
    for part in name.split('.') {
        if count == 4 {
            return None;
        }
        let (digits, radix) = match part.get(..2) {
            Some("0x" | "0X") => (&part[2..], 16),
            _ if part.len() > 1 && part.starts_with('0') => (&part[1..], 8),
            _ => (part, 10),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        parts[count] = u32::from_str_radix(digits, radix).ok()?;
        count += 1;
    }
    let (leading, last) = parts[..count].split_at(count - 1);
    if leading.iter().any(|part| *part > 0xff) || last[0] > u32::MAX >> (8 * leading.len()) {
        return None;
    }
    let address = leading.iter().enumerate().fold(last[0], |address, (i, part)| address | part << (24 - 8 * i));
    Some(Ipv4Addr::from(address))
}

/// `name` without `.<suffix>` at its end (whole labels, any case).
fn strip_label_suffix<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = name.len().checked_sub(suffix.len() + 1)?;
    let (rest, tail) = (name.get(..cut)?, name.get(cut..)?);
    (tail.starts_with('.') && tail[1..].eq_ignore_ascii_case(suffix) && !rest.is_empty()).then_some(rest)
}

/// Whether the last label of `name` is `label` (any case).
fn ends_with_label(name: &str, label: &str) -> bool {
    strip_label_suffix(name, label).is_some()
}

/// The namespace of a name under the cluster domain: `<...>.<namespace>.svc`
/// and `<...>.<namespace>.pod`.
fn namespace_of(rest: &str) -> Option<&str> {
    let mut labels = rest.rsplit('.');
    match labels.next() {
        Some(kind) if kind.eq_ignore_ascii_case("svc") || kind.eq_ignore_ascii_case("pod") => {
            labels.next().filter(|namespace| !namespace.is_empty())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::*;
    use serde_json::json;

    fn svc(namespace: Option<&str>, name: &str) -> crate::engine::Object {
        service(json!({"metadata": {"name": "db", "namespace": namespace},
                       "spec": {"type": "ExternalName", "externalName": name}}))
    }

    fn judge(name: &str) -> Vec<Finding> {
        check(&rule(json!({"externalName": {}})), &svc(Some("shop"), name))
    }

    const LOCAL: &str =
        "is the local host: a proxy following it reaches its own ports; point it at an external DNS name";
    const CLOUD: &str = "is a cloud metadata endpoint: a proxy following it can leak node credentials; point it at an external DNS name";

    #[test]
    fn the_local_host_is_denied() {
        for name in [
            "localhost",
            "LOCALHOST.",
            "api.localhost",
            "localhost.localdomain",
            "ip6-localhost",
            "127.0.0.1",
            "127.53.0.9",
            "0.0.0.0",
            "::1",
            "[::1]",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(judge(name), vec![violation(&format!("spec.externalName {name} {LOCAL}"))], "{name}");
        }
    }

    #[test]
    fn legacy_address_forms_are_read_as_inet_aton_does() {
        for (name, address) in [
            ("127.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0x7F000001", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
        ] {
            assert_eq!(judge(name), vec![violation(&format!("spec.externalName {name} ({address}) {LOCAL}"))]);
        }
        assert_eq!(
            judge("0xa9.254.169.254"),
            vec![violation(
                "spec.externalName 0xa9.254.169.254 (169.254.169.254) is link-local, where cloud metadata endpoints \
                 answer: a proxy following it can leak node credentials; point it at an external DNS name"
            )]
        );
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("256.1"), None);
        assert_eq!(inet_aton("1.16777216"), None);
        assert_eq!(inet_aton("1.16777215"), Some(Ipv4Addr::new(1, 255, 255, 255)));
        assert_eq!(inet_aton("4294967296"), None);
        assert_eq!(inet_aton("08.1.1.1"), None);
        assert_eq!(inet_aton("0x"), None);
        assert_eq!(inet_aton("1..2"), None);
        assert_eq!(inet_aton("db"), None);
        assert_eq!(inet_aton(""), None);
    }

    #[test]
    fn metadata_endpoints_are_denied() {
        assert_eq!(
            judge("169.254.169.254"),
            vec![violation(
                "spec.externalName 169.254.169.254 is link-local, where cloud metadata endpoints answer: a proxy \
                 following it can leak node credentials; point it at an external DNS name"
            )]
        );
        assert_eq!(
            judge("fe80::a9fe:a9fe"),
            vec![violation(
                "spec.externalName fe80::a9fe:a9fe is link-local, where metadata endpoints answer: a proxy following \
                 it can leak node credentials; point it at an external DNS name"
            )]
        );
        for name in ["metadata.google.internal", "Metadata.Google.Internal.", "metadata", "instance-data.ec2.internal"]
        {
            assert_eq!(judge(name), vec![violation(&format!("spec.externalName {name} {CLOUD}"))], "{name}");
        }
        for name in ["fd00:ec2::254", "100.100.100.200", "168.63.129.16"] {
            assert_eq!(judge(name), vec![violation(&format!("spec.externalName {name} {CLOUD}"))], "{name}");
        }
    }

    #[test]
    fn another_namespaces_service_is_denied() {
        let crossing = |name: &str, what: &str| {
            vec![violation(&format!(
                "spec.externalName {name} {what}: proxies following it cross namespaces (CVE-2021-25740); name a \
                 Service of this namespace or an external host"
            ))]
        };
        for (name, namespace) in [
            ("kubernetes.default.svc.cluster.local", "default"),
            ("kubernetes.default.svc.cluster.local.", "default"),
            ("kubernetes.default.svc", "default"),
            ("postgres.payments.svc", "payments"),
            ("_https._tcp.api.payments.svc.cluster.local", "payments"),
            ("pod-0.db.payments.svc.cluster.local", "payments"),
            ("10-1-2-3.payments.pod.cluster.local", "payments"),
            ("ingress-nginx-controller-admission.ingress-nginx.SVC.Cluster.Local", "ingress-nginx"),
        ] {
            assert_eq!(judge(name), crossing(name, &format!("is a Service name of namespace {namespace}")), "{name}");
        }
        for name in
            ["cluster.local", "foo.cluster.local", "db.payments.cluster.local", "db..svc.cluster.local", "db..svc"]
        {
            assert_eq!(judge(name), crossing(name, "is an in-cluster name of no known namespace"), "{name}");
        }
    }

    #[test]
    fn its_own_namespace_allowed_namespaces_and_external_names_are_allowed() {
        for name in [
            "db.shop.svc.cluster.local",
            "db.SHOP.svc",
            "db.example.com",
            "svc.example.com",
            "my.svc.example.com",
            "cluster.local.example.com",
            "localhost.example.com",
            "metadata.example.com",
            "1.2.3.4.example.com",
            "0x7f.example.com",
        ] {
            assert_eq!(judge(name), vec![], "{name}");
        }
        let allowing = rule(json!({"externalName": {"allowedNamespaces": ["shared-*"]}}));
        assert_eq!(check(&allowing, &svc(Some("shop"), "postgres.shared-db.svc.cluster.local")), vec![]);
        assert_eq!(check(&allowing, &svc(Some("shop"), "postgres.payments.svc.cluster.local")).len(), 1);
        // Another type: the field is not used.
        let clusterip = service(json!({"metadata": {"name": "db", "namespace": "shop"},
                                       "spec": {"type": "ClusterIP", "externalName": "localhost"}}));
        assert_eq!(judge_object(&clusterip), vec![]);
        assert_eq!(judge(""), vec![]);
    }

    fn judge_object(object: &crate::engine::Object) -> Vec<Finding> {
        check(&rule(json!({"externalName": {}})), object)
    }

    #[test]
    fn without_a_namespace_every_in_cluster_name_is_another_namespaces() {
        assert_eq!(judge_object(&svc(None, "db.shop.svc.cluster.local")).len(), 1);
        assert_eq!(judge_object(&svc(None, "db.example.com")), vec![]);
    }

    #[test]
    fn custom_cluster_domains() {
        let custom = rule(json!({"externalName": {"clusterDomains": [".corp.internal.", "cluster.local"]}}));
        assert_eq!(
            check(&custom, &svc(Some("shop"), "db.payments.svc.corp.internal")),
            vec![violation(
                "spec.externalName db.payments.svc.corp.internal is a Service name of namespace payments: proxies \
                 following it cross namespaces (CVE-2021-25740); name a Service of this namespace or an external host"
            )]
        );
        assert_eq!(check(&custom, &svc(Some("shop"), "db.shop.svc.corp.internal")), vec![]);
        let err = serde_json::from_value::<crate::engine::rules::Rule>(
            json!({"externalName": {"clusterDomains": ["cluster..local"]}}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "externalName.clusterDomains: \"cluster..local\" is not a DNS domain");
    }

    #[test]
    fn other_addresses_are_warned() {
        for (name, shown) in [
            ("203.0.113.10", "203.0.113.10"),
            ("10.0.0.5", "10.0.0.5"),
            ("10.1", "10.1 (10.0.0.1)"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            assert_eq!(
                judge(name),
                vec![Finding::Warning(format!(
                    "spec.externalName {shown} is an IP address, but ExternalName takes a DNS name; use a DNS name, \
                     or a Service without selector and an EndpointSlice"
                ))],
                "{name}"
            );
        }
    }
}
