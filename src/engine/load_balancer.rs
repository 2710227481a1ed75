//! LoadBalancer Services: which provider builds the load balancer, whether it
//! is internal (reachable from the private network only) or public, and which
//! client ranges it admits.
//!
//! Kubernetes leaves the load balancer to a provider, and each provider reads
//! its own `spec.loadBalancerClass` and annotations. One static [`Cloud`] per
//! provider below says which Services it serves and how it reads the scheme;
//! [`exposure`] asks them and says whether a Service is internal and why, so
//! the rules (`sourceRanges`, `serviceType`) hold no per-provider knowledge.
//!
//! Who serves a Service:
//!
//! - A Service with a `spec.loadBalancerClass` is served by the provider of
//!   that class only. Since Kubernetes 1.24 the cloud-controller-managers
//!   (in-tree AWS, GKE's annotations, Azure, DigitalOcean, OpenStack, Oracle)
//!   leave such Services alone, so their annotations do not apply to it.
//! - A Service without a class is served by the AWS Load Balancer Controller
//!   when its own annotations select it ([`Unclassed::Selected`]), else by the
//!   cluster's cloud-controller-manager. portcullis cannot see which cloud that
//!   is: the Service is internal when any of the providers a policy trusts
//!   reads it as internal. A policy narrows `providers` to its cloud so that
//!   another cloud's annotation, which the real provider ignores, cannot pass
//!   for internal.
//!
//! How each provider reads its annotations (the first present decides, in the
//! provider's order; the values are those every version of it takes as internal):
//!
//! | provider | serves | internal when | otherwise |
//! | --- | --- | --- | --- |
//! | `aws-lbc` (AWS Load Balancer Controller ≥ v2.2) | class `service.k8s.aws/nlb`, or `aws-load-balancer-type: nlb-ip`, or `external` with `aws-load-balancer-nlb-target-type: ip\|instance` | `aws-load-balancer-scheme: internal`, else `aws-load-balancer-internal` true (Go `ParseBool`) | internal by default |
//! | `aws` (in-tree / cloud-provider-aws) | no class, not the types above | `aws-load-balancer-internal` set to any value but `false` | public |
//! | `gke` | class `networking.gke.io/l4-regional-internal` (internal), `l4-regional-external` (public); no class | `networking.gke.io/load-balancer-type`, else `cloud.google.com/load-balancer-type`, is `Internal` or `internal` | public |
//! | `azure` | no class | `azure-load-balancer-internal: "true"` | public |
//! | `digitalocean` | no class | `do-loadbalancer-network: INTERNAL` | public |
//! | `openstack` | no class | `openstack-internal-load-balancer: "true"` | public |
//! | `oracle` | no class | `oci-load-balancer-internal` true (Go `ParseBool`), or for `oci.oraclecloud.com/load-balancer-type: nlb` `oci-network-load-balancer.oraclecloud.com/internal` true | public |
//!
//! # Adding a provider
//!
//! A variant in [`Provider`] and [`Provider::ALL`], a `Cloud` constant
//! returned by [`Provider::cloud`], a row in the table above and in README.md
//! (rule catalogue, `sourceRanges`), and test cases in
//! `policies/tests/restrict-loadbalancer-source-ranges/` for each of its
//! internal annotations. `clouds_are_complete` checks the table.

use std::fmt;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::object::{annotation, parse_go_bool};

/// The cloud-provider annotation equivalent to `spec.loadBalancerSourceRanges`
/// (comma-separated), read when the field is empty.
pub const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

/// Values shown in messages are cut to this many characters (an annotation
/// value can be anything, e.g. for in-tree AWS any value but "false" counts).
const SHOWN_VALUE_CHARS: usize = 20;

/// A load-balancer provider, as policies write it (`providers: [aws-lbc, gke]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    AwsLbc,
    Aws,
    Gke,
    Azure,
    Digitalocean,
    Openstack,
    Oracle,
}

impl Provider {
    /// Every provider, in the order their annotations are tried.
    pub const ALL: [Provider; 7] = [
        Provider::AwsLbc,
        Provider::Aws,
        Provider::Gke,
        Provider::Azure,
        Provider::Digitalocean,
        Provider::Openstack,
        Provider::Oracle,
    ];

    /// How the provider reads a Service.
    pub const fn cloud(self) -> &'static Cloud {
        match self {
            Provider::AwsLbc => &AWS_LBC,
            Provider::Aws => &AWS,
            Provider::Gke => &GKE,
            Provider::Azure => &AZURE,
            Provider::Digitalocean => &DIGITALOCEAN,
            Provider::Openstack => &OPENSTACK,
            Provider::Oracle => &ORACLE,
        }
    }

    /// The provider's name as policies write it, e.g. `aws-lbc`.
    pub fn as_str(self) -> &'static str {
        self.cloud().name
    }
}

/// How one provider decides whether a load balancer is internal: static facts
/// [`exposure`] queries. See the module documentation for how to add one.
#[derive(Debug)]
pub struct Cloud {
    pub provider: Provider,
    /// As policies write it (the `Provider` variant's serde name).
    pub name: &'static str,
    /// The `spec.loadBalancerClass` values the provider serves, and what each means.
    pub classes: &'static [(&'static str, ByClass)],
    /// Which Services without a class it serves.
    pub unclassed: Unclassed,
    /// The annotations that set the scheme, in the order the provider reads
    /// them: the first one present (whose condition holds) decides.
    pub switches: &'static [Switch],
    /// Whether the load balancer is internal when no switch is present.
    pub internal_by_default: bool,
}

/// What a load-balancer class says about the scheme.
#[derive(Debug, PartialEq, Eq)]
pub enum ByClass {
    Internal,
    Public,
    /// The provider's annotations decide, as for a Service without a class.
    Annotations,
}

/// Which Services without a `spec.loadBalancerClass` a provider serves.
#[derive(Debug)]
pub enum Unclassed {
    /// Every one (a cloud-controller-manager), except those that carry one of
    /// these annotation values (handed to another controller).
    All { except: &'static [Is] },
    /// Those where every condition of one of the selectors holds.
    Selected(&'static [&'static [Is]]),
}

/// An annotation set to exactly one of the values.
#[derive(Debug)]
pub struct Is {
    pub key: &'static str,
    pub values: &'static [&'static str],
}

/// An annotation that sets the scheme.
#[derive(Debug)]
pub struct Switch {
    pub key: &'static str,
    /// The values that make the load balancer internal; any other is public.
    pub internal: Values,
    /// When the provider reads this annotation at all.
    pub when: When,
}

/// Which annotation values mean internal.
#[derive(Debug)]
pub enum Values {
    /// Exactly one of these.
    OneOf(&'static [&'static str]),
    /// Any non-empty value but these.
    AnyBut(&'static [&'static str]),
    /// True as Go's `strconv.ParseBool` reads it.
    GoTrue,
}

/// When a provider reads a [`Switch`].
#[derive(Debug)]
pub enum When {
    Always,
    /// The annotation `key`, lowercased, is `value`.
    Lowercase {
        key: &'static str,
        value: &'static str,
    },
    /// The annotation `key`, lowercased, is not `value` (or is absent).
    NotLowercase {
        key: &'static str,
        value: &'static str,
    },
}

const AWS_LB_TYPE: &str = "service.beta.kubernetes.io/aws-load-balancer-type";
const AWS_INTERNAL: &str = "service.beta.kubernetes.io/aws-load-balancer-internal";
const AWS_LBC_CLASS: &str = "service.k8s.aws/nlb";
const ORACLE_LB_TYPE: &str = "oci.oraclecloud.com/load-balancer-type";

/// AWS Load Balancer Controller (v2.2 and later: internal unless told
/// otherwise; earlier versions defaulted to internet-facing). The controller
/// also keeps the scheme of a load balancer it already built when the
/// annotation is removed, which a review cannot see.
const AWS_LBC: Cloud = Cloud {
    provider: Provider::AwsLbc,
    name: "aws-lbc",
    classes: &[(AWS_LBC_CLASS, ByClass::Annotations)],
    unclassed: Unclassed::Selected(&[
        &[Is { key: AWS_LB_TYPE, values: &["nlb-ip"] }],
        &[
            Is { key: AWS_LB_TYPE, values: &["external"] },
            Is { key: "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type", values: &["ip", "instance"] },
        ],
    ]),
    switches: &[
        Switch {
            key: "service.beta.kubernetes.io/aws-load-balancer-scheme",
            internal: Values::OneOf(&["internal"]),
            when: When::Always,
        },
        Switch { key: AWS_INTERNAL, internal: Values::GoTrue, when: When::Always },
    ],
    internal_by_default: true,
};

/// The in-tree AWS provider and cloud-provider-aws (classic ELB or NLB); it
/// leaves the AWS Load Balancer Controller's types alone.
const AWS: Cloud = Cloud {
    provider: Provider::Aws,
    name: "aws",
    classes: &[],
    unclassed: Unclassed::All { except: &[Is { key: AWS_LB_TYPE, values: &["nlb-ip", "external"] }] },
    switches: &[Switch { key: AWS_INTERNAL, internal: Values::AnyBut(&["false"]), when: When::Always }],
    internal_by_default: false,
};

const GKE_INTERNAL: Values = Values::OneOf(&["Internal", "internal"]);

const GKE: Cloud = Cloud {
    provider: Provider::Gke,
    name: "gke",
    classes: &[
        ("networking.gke.io/l4-regional-internal", ByClass::Internal),
        ("networking.gke.io/l4-regional-external", ByClass::Public),
    ],
    unclassed: Unclassed::All { except: &[] },
    switches: &[
        Switch { key: "networking.gke.io/load-balancer-type", internal: GKE_INTERNAL, when: When::Always },
        Switch { key: "cloud.google.com/load-balancer-type", internal: GKE_INTERNAL, when: When::Always },
    ],
    internal_by_default: false,
};

/// cloud-provider-azure; recent versions also take "True", older ones only "true".
const AZURE: Cloud = Cloud {
    provider: Provider::Azure,
    name: "azure",
    classes: &[],
    unclassed: Unclassed::All { except: &[] },
    switches: &[Switch {
        key: "service.beta.kubernetes.io/azure-load-balancer-internal",
        internal: Values::OneOf(&["true"]),
        when: When::Always,
    }],
    internal_by_default: false,
};

const DIGITALOCEAN: Cloud = Cloud {
    provider: Provider::Digitalocean,
    name: "digitalocean",
    classes: &[],
    unclassed: Unclassed::All { except: &[] },
    switches: &[Switch {
        key: "service.beta.kubernetes.io/do-loadbalancer-network",
        internal: Values::OneOf(&["INTERNAL"]),
        when: When::Always,
    }],
    internal_by_default: false,
};

/// cloud-provider-openstack (its cloud config may force every load balancer
/// internal with `internal-lb = true`, which a review cannot see).
const OPENSTACK: Cloud = Cloud {
    provider: Provider::Openstack,
    name: "openstack",
    classes: &[],
    unclassed: Unclassed::All { except: &[] },
    switches: &[Switch {
        key: "service.beta.kubernetes.io/openstack-internal-load-balancer",
        internal: Values::OneOf(&["true"]),
        when: When::Always,
    }],
    internal_by_default: false,
};

/// oci-cloud-controller-manager: the load balancer's annotation, or the
/// network load balancer's when `oci.oraclecloud.com/load-balancer-type` is `nlb`.
const ORACLE: Cloud = Cloud {
    provider: Provider::Oracle,
    name: "oracle",
    classes: &[],
    unclassed: Unclassed::All { except: &[] },
    switches: &[
        Switch {
            key: "oci-network-load-balancer.oraclecloud.com/internal",
            internal: Values::GoTrue,
            when: When::Lowercase { key: ORACLE_LB_TYPE, value: "nlb" },
        },
        Switch {
            key: "service.beta.kubernetes.io/oci-load-balancer-internal",
            internal: Values::GoTrue,
            when: When::NotLowercase { key: ORACLE_LB_TYPE, value: "nlb" },
        },
    ],
    internal_by_default: false,
};

/// The providers a policy trusts to say that a load balancer is internal
/// (`providers: [aws-lbc, aws]`); every provider by default.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Providers(Vec<Provider>);

impl Default for Providers {
    fn default() -> Self {
        Providers(Provider::ALL.to_vec())
    }
}

impl Providers {
    pub fn as_slice(&self) -> &[Provider] {
        &self.0
    }
}

/// Whether a Service is of type LoadBalancer.
pub fn is_load_balancer(service: &Service) -> bool {
    service.spec.as_ref().and_then(|spec| spec.type_.as_deref()).is_some_and(|t| t.eq_ignore_ascii_case("LoadBalancer"))
}

/// The client ranges a LoadBalancer Service admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceRanges<'s> {
    /// `spec.loadBalancerSourceRanges`, when not empty.
    Spec(&'s [String]),
    /// Else the [`SOURCE_RANGES_ANNOTATION`], when not blank (comma-separated).
    Annotation(&'s str),
    /// Neither: open to every client that can reach it.
    Open,
}

/// The effective source ranges: the field, else the annotation, else open.
pub fn source_ranges(service: &Service) -> SourceRanges<'_> {
    let field = service.spec.as_ref().and_then(|spec| spec.load_balancer_source_ranges.as_deref());
    match (field, annotation(&service.metadata, SOURCE_RANGES_ANNOTATION)) {
        (Some(ranges), _) if !ranges.is_empty() => SourceRanges::Spec(ranges),
        (_, Some(ranges)) if !ranges.trim().is_empty() => SourceRanges::Annotation(ranges),
        _ => SourceRanges::Open,
    }
}

/// Whether a LoadBalancer is internal, and what says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure<'s> {
    /// Reachable from the private network only.
    Internal(Evidence<'s>),
    /// Reachable from the internet. `Some` names a setting that asks for an
    /// internal load balancer but does not count, and why.
    Public(Option<Ignored<'s>>),
}

impl Exposure<'_> {
    pub fn is_internal(&self) -> bool {
        matches!(self, Exposure::Internal(_))
    }
}

/// What made a load balancer internal: `<provider>: <setting>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence<'s> {
    pub provider: Provider,
    pub setting: Setting<'s>,
    /// The provider's default: no switch was set (`setting` is what selected the provider).
    pub by_default: bool,
}

/// A Service setting, as messages show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting<'s> {
    /// A class of the table (shown whole).
    Class(&'s str),
    /// An annotation key and its value (cut when long).
    Annotation(&'static str, &'s str),
}

/// An internal-looking setting that does not make the load balancer internal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ignored<'s> {
    pub setting: Setting<'s>,
    pub why: Why<'s>,
}

/// Why an internal-looking setting does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why<'s> {
    /// The provider is not among those the policy trusts.
    Untrusted(Provider),
    /// Only the provider's own class makes it read the setting.
    NeedsClass(&'static str),
    /// The Service's class hands it to another controller.
    OtherClass(&'s str),
}

impl fmt::Display for Setting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Setting::Class(class) => write!(f, "spec.loadBalancerClass: {class}"),
            Setting::Annotation(key, value) => write!(f, "{key}: \"{}\"", Shown(value)),
        }
    }
}

impl fmt::Display for Evidence<'_> {
    /// `azure: service.beta.kubernetes.io/azure-load-balancer-internal: "true"`,
    /// `aws-lbc default for spec.loadBalancerClass: service.k8s.aws/nlb`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.by_default {
            true => write!(f, "{} default for {}", self.provider.as_str(), self.setting),
            false => write!(f, "{}: {}", self.provider.as_str(), self.setting),
        }
    }
}

impl fmt::Display for Ignored<'_> {
    /// `<setting> ignored: <why>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ignored: ", self.setting)?;
        match self.why {
            Why::Untrusted(provider) => write!(f, "{} is not among the policy's providers", provider.as_str()),
            Why::NeedsClass(class) => write!(f, "it needs spec.loadBalancerClass: {class}"),
            Why::OtherClass(class) => write!(f, "spec.loadBalancerClass is {}", Shown(class)),
        }
    }
}

/// A user-written value, cut to [`SHOWN_VALUE_CHARS`].
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(SHOWN_VALUE_CHARS) {
            Some((cut, _)) => write!(f, "{}...", &self.0[..cut]),
            None => f.write_str(self.0),
        }
    }
}

/// Whether a LoadBalancer Service is internal, reading only the settings of the
/// `trusted` providers (see the module documentation). Only meaningful for
/// `type: LoadBalancer`.
pub fn exposure<'s>(service: &'s Service, trusted: &[Provider]) -> Exposure<'s> {
    let metadata = &service.metadata;
    let class =
        service.spec.as_ref().and_then(|spec| spec.load_balancer_class.as_deref()).filter(|class| !class.is_empty());

    if let Some(class) = class {
        let served = Provider::ALL.iter().find_map(|provider| {
            let (_, by_class) = provider.cloud().classes.iter().find(|(name, _)| *name == class)?;
            Some((*provider, by_class))
        });
        let Some((provider, by_class)) = served else {
            // Another controller's class: no provider here reads the annotations.
            return Exposure::Public(ignored(metadata, |_| Some(Why::OtherClass(class))));
        };
        let setting = Setting::Class(class);
        return match (trusted.contains(&provider), by_class) {
            (_, ByClass::Public) => Exposure::Public(None),
            (false, _) => Exposure::Public(Some(Ignored { setting, why: Why::Untrusted(provider) })),
            (true, ByClass::Internal) => Exposure::Internal(Evidence { provider, setting, by_default: false }),
            (true, ByClass::Annotations) => serve(metadata, provider, setting),
        };
    }

    // A provider its own annotations select serves the Service alone.
    for provider in Provider::ALL {
        if let Unclassed::Selected(selectors) = provider.cloud().unclassed
            && let Some(key) = selected_by(metadata, selectors)
        {
            let setting = Setting::Annotation(key, annotation(metadata, key).unwrap_or_default());
            return match trusted.contains(&provider) {
                true => serve(metadata, provider, setting),
                false => Exposure::Public(Some(Ignored { setting, why: Why::Untrusted(provider) })),
            };
        }
    }

    // The cluster's cloud-controller-manager: internal if a trusted one says so.
    for provider in trusted {
        if let Unclassed::All { except } = provider.cloud().unclassed
            && !except.iter().any(|is| is.holds(metadata))
            && let Read::Internal(setting) = read(metadata, provider.cloud())
        {
            return Exposure::Internal(Evidence { provider: *provider, setting, by_default: false });
        }
    }
    Exposure::Public(ignored(metadata, |provider| match provider.cloud().unclassed {
        _ if !trusted.contains(&provider) => Some(Why::Untrusted(provider)),
        Unclassed::Selected(_) => provider.cloud().classes.first().map(|(class, _)| Why::NeedsClass(class)),
        Unclassed::All { .. } => None,
    }))
}

/// What a provider's switches say.
enum Read<'s> {
    Internal(Setting<'s>),
    Public,
    /// None of them is set.
    Unset,
}

/// The first switch present (whose condition holds) decides.
fn read<'s>(metadata: &'s ObjectMeta, cloud: &Cloud) -> Read<'s> {
    for switch in cloud.switches.iter().filter(|switch| switch.when.holds(metadata)) {
        if let Some(value) = annotation(metadata, switch.key) {
            return match switch.internal.accepts(value) {
                true => Read::Internal(Setting::Annotation(switch.key, value)),
                false => Read::Public,
            };
        }
    }
    Read::Unset
}

/// The verdict of the provider that serves the Service: its switches, else its
/// default (`selected`, what made it serve the Service, is shown for a default).
fn serve<'s>(metadata: &'s ObjectMeta, provider: Provider, selected: Setting<'s>) -> Exposure<'s> {
    match read(metadata, provider.cloud()) {
        Read::Internal(setting) => Exposure::Internal(Evidence { provider, setting, by_default: false }),
        Read::Unset if provider.cloud().internal_by_default => {
            Exposure::Internal(Evidence { provider, setting: selected, by_default: true })
        }
        Read::Public | Read::Unset => Exposure::Public(None),
    }
}

/// The first switch of any provider that is set to an internal value but did
/// not count, for which `why` gives a reason (`None`: it was read and did not
/// make the Service internal).
fn ignored<'s>(metadata: &'s ObjectMeta, why: impl Fn(Provider) -> Option<Why<'s>>) -> Option<Ignored<'s>> {
    Provider::ALL.iter().find_map(|provider| {
        let why = why(*provider)?;
        provider.cloud().switches.iter().filter(|switch| switch.when.holds(metadata)).find_map(|switch| {
            let value = annotation(metadata, switch.key).filter(|value| switch.internal.accepts(value))?;
            Some(Ignored { setting: Setting::Annotation(switch.key, value), why })
        })
    })
}

/// The key of the first condition of the first selector whose conditions all hold.
fn selected_by(metadata: &ObjectMeta, selectors: &[&[Is]]) -> Option<&'static str> {
    selectors.iter().find(|all| all.iter().all(|is| is.holds(metadata))).map(|all| all[0].key)
}

impl Is {
    fn holds(&self, metadata: &ObjectMeta) -> bool {
        annotation(metadata, self.key).is_some_and(|value| self.values.contains(&value))
    }
}

impl When {
    fn holds(&self, metadata: &ObjectMeta) -> bool {
        let is = |key, value: &str| annotation(metadata, key).is_some_and(|v| v.eq_ignore_ascii_case(value));
        match *self {
            When::Always => true,
            When::Lowercase { key, value } => is(key, value),
            When::NotLowercase { key, value } => !is(key, value),
        }
    }
}

impl Values {
    fn accepts(&self, value: &str) -> bool {
        match *self {
            Values::OneOf(values) => values.contains(&value),
            Values::AnyBut(values) => !value.is_empty() && !values.contains(&value),
            Values::GoTrue => parse_go_bool(value) == Some(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lb(class: Option<&str>, annotations: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "annotations": annotations},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": class, "ports": [{"port": 443}]}
        }))
        .unwrap()
    }

    /// The verdict with every provider trusted, as messages show it.
    fn shown(service: &Service) -> String {
        shown_with(service, &Provider::ALL)
    }

    fn shown_with(service: &Service, trusted: &[Provider]) -> String {
        match exposure(service, trusted) {
            Exposure::Internal(evidence) => format!("internal ({evidence})"),
            Exposure::Public(None) => "public".to_owned(),
            Exposure::Public(Some(ignored)) => format!("public ({ignored})"),
        }
    }

    const SCHEME: &str = "service.beta.kubernetes.io/aws-load-balancer-scheme";

    #[test]
    fn each_providers_internal_annotation() {
        let cases = [
            (
                None,
                json!({SCHEME: "internal", AWS_LB_TYPE: "external",
                           "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip"}),
                "internal (aws-lbc: service.beta.kubernetes.io/aws-load-balancer-scheme: \"internal\")",
            ),
            (
                Some(AWS_LBC_CLASS),
                json!({SCHEME: "internal"}),
                "internal (aws-lbc: service.beta.kubernetes.io/aws-load-balancer-scheme: \"internal\")",
            ),
            (
                Some(AWS_LBC_CLASS),
                json!({AWS_INTERNAL: "1"}),
                "internal (aws-lbc: service.beta.kubernetes.io/aws-load-balancer-internal: \"1\")",
            ),
            (
                None,
                json!({AWS_INTERNAL: "0.0.0.0/0"}),
                "internal (aws: service.beta.kubernetes.io/aws-load-balancer-internal: \"0.0.0.0/0\")",
            ),
            (
                None,
                json!({AWS_INTERNAL: "False"}),
                "internal (aws: service.beta.kubernetes.io/aws-load-balancer-internal: \"False\")",
            ),
            (
                None,
                json!({"networking.gke.io/load-balancer-type": "Internal"}),
                "internal (gke: networking.gke.io/load-balancer-type: \"Internal\")",
            ),
            (
                None,
                json!({"cloud.google.com/load-balancer-type": "internal"}),
                "internal (gke: cloud.google.com/load-balancer-type: \"internal\")",
            ),
            (
                Some("networking.gke.io/l4-regional-internal"),
                json!({}),
                "internal (gke: spec.loadBalancerClass: networking.gke.io/l4-regional-internal)",
            ),
            (
                None,
                json!({"service.beta.kubernetes.io/azure-load-balancer-internal": "true"}),
                "internal (azure: service.beta.kubernetes.io/azure-load-balancer-internal: \"true\")",
            ),
            (
                None,
                json!({"service.beta.kubernetes.io/do-loadbalancer-network": "INTERNAL"}),
                "internal (digitalocean: service.beta.kubernetes.io/do-loadbalancer-network: \"INTERNAL\")",
            ),
            (
                None,
                json!({"service.beta.kubernetes.io/openstack-internal-load-balancer": "true"}),
                "internal (openstack: service.beta.kubernetes.io/openstack-internal-load-balancer: \"true\")",
            ),
            (
                None,
                json!({"service.beta.kubernetes.io/oci-load-balancer-internal": "TRUE"}),
                "internal (oracle: service.beta.kubernetes.io/oci-load-balancer-internal: \"TRUE\")",
            ),
            (
                None,
                json!({ORACLE_LB_TYPE: "NLB", "oci-network-load-balancer.oraclecloud.com/internal": "true"}),
                "internal (oracle: oci-network-load-balancer.oraclecloud.com/internal: \"true\")",
            ),
        ];
        for (class, annotations, expected) in cases {
            assert_eq!(shown(&lb(class, annotations.clone())), expected, "{class:?} {annotations}");
        }
    }

    #[test]
    fn the_aws_load_balancer_controller_is_internal_by_default() {
        assert_eq!(
            shown(&lb(Some(AWS_LBC_CLASS), json!({}))),
            "internal (aws-lbc default for spec.loadBalancerClass: service.k8s.aws/nlb)"
        );
        assert_eq!(
            shown(&lb(None, json!({AWS_LB_TYPE: "nlb-ip"}))),
            "internal (aws-lbc default for service.beta.kubernetes.io/aws-load-balancer-type: \"nlb-ip\")"
        );
        // The scheme comes before the legacy annotation; either can make it public.
        assert_eq!(shown(&lb(Some(AWS_LBC_CLASS), json!({SCHEME: "internet-facing", AWS_INTERNAL: "true"}))), "public");
        assert_eq!(shown(&lb(Some(AWS_LBC_CLASS), json!({AWS_INTERNAL: "false"}))), "public");
        // An unknown scheme is an error for the controller: no internal load balancer.
        assert_eq!(shown(&lb(Some(AWS_LBC_CLASS), json!({SCHEME: "Internal"}))), "public");
        // `external` selects the controller only with a target type.
        assert_eq!(
            shown(&lb(
                None,
                json!({AWS_LB_TYPE: "external",
                                  "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "instance"})
            )),
            "internal (aws-lbc default for service.beta.kubernetes.io/aws-load-balancer-type: \"external\")"
        );
    }

    #[test]
    fn an_annotation_its_provider_does_not_read_does_not_count() {
        // The in-tree provider ignores the controller's scheme annotation.
        assert_eq!(
            shown(&lb(None, json!({SCHEME: "internal"}))),
            "public (service.beta.kubernetes.io/aws-load-balancer-scheme: \"internal\" ignored: it needs \
             spec.loadBalancerClass: service.k8s.aws/nlb)"
        );
        // `external` without a target type: neither AWS provider serves it.
        assert_eq!(
            shown(&lb(None, json!({AWS_LB_TYPE: "external", AWS_INTERNAL: "true"}))),
            "public (service.beta.kubernetes.io/aws-load-balancer-internal: \"true\" ignored: it needs \
             spec.loadBalancerClass: service.k8s.aws/nlb)"
        );
        // Another controller's class: the cloud's annotations do not apply.
        assert_eq!(
            shown(&lb(
                Some("example.com/metal"),
                json!({"service.beta.kubernetes.io/azure-load-balancer-internal": "true"})
            )),
            "public (service.beta.kubernetes.io/azure-load-balancer-internal: \"true\" ignored: \
             spec.loadBalancerClass is example.com/metal)"
        );
        assert_eq!(shown(&lb(Some("example.com/metal"), json!({}))), "public");
        assert_eq!(
            shown(&lb(Some("example.com/a-very-long-class-name"), json!({AWS_INTERNAL: "true"}))),
            "public (service.beta.kubernetes.io/aws-load-balancer-internal: \"true\" ignored: spec.loadBalancerClass \
             is example.com/a-very-l...)"
        );
        // A class decides over the annotations.
        assert_eq!(
            shown(&lb(
                Some("networking.gke.io/l4-regional-external"),
                json!({"networking.gke.io/load-balancer-type": "Internal"})
            )),
            "public"
        );
        // Oracle reads the annotation of the load balancer type it builds.
        assert_eq!(shown(&lb(None, json!({"oci-network-load-balancer.oraclecloud.com/internal": "true"}))), "public");
        assert_eq!(
            shown(&lb(
                None,
                json!({ORACLE_LB_TYPE: "nlb", "service.beta.kubernetes.io/oci-load-balancer-internal": "true"})
            )),
            "public"
        );
    }

    #[test]
    fn values_a_provider_does_not_take_as_internal_are_public() {
        for annotations in [
            json!({AWS_INTERNAL: "false"}),
            json!({AWS_INTERNAL: ""}),
            json!({"service.beta.kubernetes.io/azure-load-balancer-internal": "True"}),
            json!({"service.beta.kubernetes.io/do-loadbalancer-network": "internal"}),
            json!({"service.beta.kubernetes.io/openstack-internal-load-balancer": "1"}),
            json!({"service.beta.kubernetes.io/oci-load-balancer-internal": "yes"}),
            // The current GKE annotation comes first, even when it says External.
            json!({"networking.gke.io/load-balancer-type": "External", "cloud.google.com/load-balancer-type": "Internal"}),
            json!({}),
        ] {
            assert_eq!(shown(&lb(None, annotations.clone())), "public", "{annotations}");
        }
    }

    #[test]
    fn only_trusted_providers_count() {
        let azure = json!({"service.beta.kubernetes.io/azure-load-balancer-internal": "true"});
        assert_eq!(
            shown_with(&lb(None, azure.clone()), &[Provider::Aws, Provider::AwsLbc]),
            "public (service.beta.kubernetes.io/azure-load-balancer-internal: \"true\" ignored: azure is not among \
             the policy's providers)"
        );
        assert_eq!(shown_with(&lb(None, azure), &[Provider::Azure]).split(' ').next(), Some("internal"));
        assert_eq!(
            shown_with(&lb(Some(AWS_LBC_CLASS), json!({})), &[Provider::Aws]),
            "public (spec.loadBalancerClass: service.k8s.aws/nlb ignored: aws-lbc is not among the policy's providers)"
        );
        assert_eq!(
            shown_with(&lb(None, json!({AWS_LB_TYPE: "nlb-ip"})), &[]),
            "public (service.beta.kubernetes.io/aws-load-balancer-type: \"nlb-ip\" ignored: aws-lbc is not among \
             the policy's providers)"
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        // Cut by characters, not bytes.
        let value = "é".repeat(21);
        assert_eq!(
            shown(&lb(None, json!({AWS_INTERNAL: value}))),
            format!("internal (aws: service.beta.kubernetes.io/aws-load-balancer-internal: \"{}...\")", "é".repeat(20))
        );
        let value = "é".repeat(20);
        assert_eq!(
            shown(&lb(None, json!({AWS_INTERNAL: value.clone()}))),
            format!("internal (aws: service.beta.kubernetes.io/aws-load-balancer-internal: \"{value}\")")
        );
    }

    #[test]
    fn source_ranges_are_the_field_else_the_annotation() {
        let service = |ranges: serde_json::Value, annotation: Option<&str>| -> Service {
            serde_json::from_value(json!({
                "metadata": {"name": "web", "annotations": annotation.map(|a| json!({SOURCE_RANGES_ANNOTATION: a}))},
                "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ranges}
            }))
            .unwrap()
        };
        let both = service(json!(["203.0.113.0/24"]), Some("198.51.100.0/24"));
        assert_eq!(source_ranges(&both), SourceRanges::Spec(&["203.0.113.0/24".to_owned()]));
        assert_eq!(
            source_ranges(&service(json!([]), Some("198.51.100.0/24"))),
            SourceRanges::Annotation("198.51.100.0/24")
        );
        assert_eq!(source_ranges(&service(json!(null), Some(" "))), SourceRanges::Open);
        assert_eq!(source_ranges(&service(json!(null), None)), SourceRanges::Open);
        assert!(is_load_balancer(&both));
        assert!(!is_load_balancer(&serde_json::from_value(json!({"spec": {"type": "NodePort"}})).unwrap()));
    }

    /// The provider names serde accepts, read from its error for an unknown one.
    fn serde_names() -> Vec<String> {
        let error = serde_json::from_str::<Provider>("\"?\"").unwrap_err().to_string();
        let (_, expected) = error.split_once("expected one of").expect(&error);
        expected.split('`').skip(1).step_by(2).map(str::to_owned).collect()
    }

    /// A qualified annotation key, `prefix/name`.
    fn is_key(key: &str) -> bool {
        key.split_once('/').is_some_and(|(prefix, name)| prefix.contains('.') && !name.is_empty())
    }

    #[test]
    fn clouds_are_complete() {
        let names: Vec<&str> = Provider::ALL.iter().map(|provider| provider.as_str()).collect();
        assert_eq!(serde_names(), names, "Provider::ALL must list every Provider, in declaration order");
        let mut classes = std::collections::BTreeSet::new();
        for provider in Provider::ALL {
            let cloud = provider.cloud();
            let name = cloud.name;
            assert_eq!(cloud.provider, provider, "{name}: the cloud of {provider:?} names another provider");
            for (class, _) in cloud.classes {
                assert!(is_key(class), "{name}: class {class:?} is not domain-prefixed");
                assert!(classes.insert(*class), "{name}: class {class} belongs to two providers");
            }
            match cloud.unclassed {
                Unclassed::All { except } => assert!(except.iter().all(|is| is_key(is.key) && !is.values.is_empty())),
                Unclassed::Selected(selectors) => {
                    assert!(!selectors.is_empty() && selectors.iter().all(|all| !all.is_empty()), "{name}");
                    assert!(
                        selectors.iter().flat_map(|all| all.iter()).all(|is| is_key(is.key) && !is.values.is_empty())
                    );
                    // Messages tell how to select it by class.
                    assert!(!cloud.classes.is_empty(), "{name}: a selected provider needs a class for its advice");
                }
            }
            assert!(!cloud.switches.is_empty(), "{name}: name the annotations that make it internal");
            for switch in cloud.switches {
                assert!(is_key(switch.key), "{name}: {:?} is not an annotation key", switch.key);
                if let Values::OneOf(values) | Values::AnyBut(values) = switch.internal {
                    assert!(!values.is_empty(), "{name}: {}", switch.key);
                }
            }
            // Without annotations only a default can make it internal.
            let bare = lb(cloud.classes.first().map(|(class, _)| *class), json!({}));
            let by_class = cloud.classes.first().is_some_and(|(_, by)| *by == ByClass::Internal);
            assert_eq!(
                exposure(&bare, &[provider]).is_internal(),
                by_class || (cloud.internal_by_default && !cloud.classes.is_empty()),
                "{name}"
            );
        }
    }
}
