//! The exposure inventory: every external entry point of a set of objects and
//! how it is protected. Pure, like the engine: no I/O, clock, logs or metrics.
//!
//! Entry points are NodePort Services (one per node port), LoadBalancer
//! Services (public or internal, with their effective source ranges), every
//! `spec.externalIPs` address of a Service, every host and path of an Ingress
//! (and its default backend), every listener of a Gateway or ListenerSet, and
//! every HTTPRoute, GRPCRoute and TLSRoute attached to a Gateway or
//! ListenerSet. A ClusterIP Service without externalIPs, an ExternalName
//! Service and a mesh route are not entry points.
//!
//! Nothing here judges on its own: the protections are read with the
//! engine's own functions (the LoadBalancer provider table and source ranges
//! of [`crate::engine::load_balancer`], the ingress controller of
//! [`crate::engine::controller`], the authentication and allow-list detection
//! of the `ingressAuth`, `gatewayAuth` and `sourceRanges` rules with the
//! parameters of the policy that applies), and the violations are the
//! findings of [`crate::check::check`], the very path `portcullis check`
//! takes, so the report and `check` cannot disagree.

mod entries;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::check::{self, Source};
use crate::engine::{PolicySet, Severity};

pub use entries::ObjectEntries;

/// How worrying an entry point is; the table and the HTML sort by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// A Deny policy fails on its object: the webhook would reject it today.
    Deny,
    /// A Warn policy fails on its object.
    Warn,
    /// No policy fails, but it lacks TLS, or both authentication and a source
    /// allow-list.
    Unprotected,
    /// TLS, and authentication or a source allow-list.
    Protected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Deny => "deny",
            Status::Warn => "warn",
            Status::Unprotected => "unprotected",
            Status::Protected => "protected",
        }
    }
}

/// What kind of entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryType {
    NodePort,
    LoadBalancer,
    ExternalIp,
    IngressRule,
    IngressDefaultBackend,
    Listener,
    Route,
}

/// From where it can be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reach {
    /// From the internet (or wherever the nodes are reachable, for a node port).
    Public,
    /// From the private network only.
    Internal,
}

/// Where an entry point's TLS certificate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TlsSource {
    /// Not encrypted by anything the objects configure.
    None,
    /// An Ingress `spec.tls[].secretName`.
    Secret,
    /// An Ingress `spec.tls[].secretName` that cert-manager fills (its
    /// `cert-manager.io/cluster-issuer` or `issuer` annotation).
    CertManager,
    /// A controller annotation (ALB `certificate-arn`, GCE `pre-shared-cert`,
    /// GKE Gateway certificate options).
    Annotation,
    /// A `spec.tls` entry without a Secret: the controller's default certificate.
    DefaultCertificate,
    /// A Gateway listener's `tls.certificateRefs` (for a route, of the
    /// listeners it attaches to).
    CertificateRefs,
    /// TLS passed through to the backend, which terminates it.
    Passthrough,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tls {
    pub source: TlsSource,
    /// The Secret, issuer, annotation or references; or why there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How clients are authenticated in front of the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthMethod {
    /// Nothing the controller or Gateway enforces.
    None,
    /// Ingress annotations of the controller's dialect (the `ingressAuth` rule's methods).
    Annotations,
    /// A route filter or policy object the Gateway enforces (the `gatewayAuth` rule's methods).
    Gateway,
    /// `portcullis.dev/auth: application`: the backend says it authenticates.
    Application,
    /// Not for this entry point: a listener (its routes carry it), a TLS route,
    /// a route that only redirects.
    NotApplicable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Auth {
    pub method: AuthMethod,
    /// The annotation keys, filters or policies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How the client addresses are restricted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AllowListKind {
    None,
    /// CIDRs: `spec.loadBalancerSourceRanges`, the cloud annotation, or the
    /// controller's allow-list annotation.
    Ranges,
    /// An approved Traefik ipAllowList middleware.
    Middleware,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AllowList {
    pub kind: AllowListKind,
    /// Where the ranges are written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<String>,
}

/// One finding of a policy against the entry point's object, as `check` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub policy: String,
    /// `deny`, `warn` or `audit`.
    pub severity: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// One external entry point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub namespace: String,
    /// The object's kind, e.g. `Service`, `HTTPRoute`.
    pub kind: &'static str,
    pub name: String,
    #[serde(rename = "type")]
    pub entry_type: EntryType,
    /// How it is reached: `nodes:30080/TCP`, `shop.example.com/api`, ...
    pub address: String,
    pub reach: Reach,
    /// For an internal load balancer, what makes it internal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_by: Option<String>,
    pub tls: Tls,
    pub auth: Auth,
    pub allow_list: AllowList,
    /// The ingress controller family, or the Gateway's class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// The environments of its namespace.
    pub environments: Vec<String>,
    pub violations: Vec<Violation>,
    pub status: Status,
}

impl Entry {
    /// `Service/web`.
    pub fn object(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    fn status_of(&self) -> Status {
        let has = |severity: &str| self.violations.iter().any(|violation| violation.severity == severity);
        if has("deny") {
            Status::Deny
        } else if has("warn") {
            Status::Warn
        } else if self.tls.source == TlsSource::None
            || (self.auth.method == AuthMethod::None && self.allow_list.kind == AllowListKind::None)
        {
            Status::Unprotected
        } else {
            Status::Protected
        }
    }
}

/// Counts over the entry points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub entry_points: usize,
    pub public: usize,
    pub without_tls: usize,
    pub without_auth: usize,
    pub with_violations: usize,
    pub deny: usize,
    pub warn: usize,
    pub unprotected: usize,
    pub protected: usize,
}

/// The inventory: entry points grouped by namespace, namespaces and entries
/// worst first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub entries: Vec<Entry>,
}

impl Inventory {
    pub fn summary(&self) -> Summary {
        let mut summary = Summary { entry_points: self.entries.len(), ..Summary::default() };
        for entry in &self.entries {
            summary.public += usize::from(entry.reach == Reach::Public);
            summary.without_tls += usize::from(entry.tls.source == TlsSource::None);
            summary.without_auth += usize::from(entry.auth.method == AuthMethod::None);
            summary.with_violations += usize::from(!entry.violations.is_empty());
            match entry.status {
                Status::Deny => summary.deny += 1,
                Status::Warn => summary.warn += 1,
                Status::Unprotected => summary.unprotected += 1,
                Status::Protected => summary.protected += 1,
            }
        }
        summary
    }

    /// The namespaces in report order, each with its entries.
    pub fn by_namespace(&self) -> Vec<(&str, Vec<&Entry>)> {
        let mut groups: Vec<(&str, Vec<&Entry>)> = Vec::new();
        for entry in &self.entries {
            match groups.iter_mut().find(|(namespace, _)| *namespace == entry.namespace) {
                Some((_, entries)) => entries.push(entry),
                None => groups.push((&entry.namespace, vec![entry])),
            }
        }
        groups
    }
}

/// The objects of a set, read as one input (the cluster's, or objects built in
/// tests): each object a document of one source.
pub fn source_of(objects: Vec<Value>) -> Source {
    let documents = objects.into_iter().map(|value| check::Document { line: 1, text: String::new(), value }).collect();
    Source {
        name: "cluster".to_owned(),
        path: None,
        format: check::Format::Json,
        documents,
        errors: Vec::new(),
        empty_directory: false,
    }
}

/// The inventory of the objects in the sources, judged by `set` with the
/// namespace labels and IngressClasses of `options` (plus the Namespaces in
/// the sources), exactly as `portcullis check` judges them.
pub fn inventory(sources: &[Source], set: &PolicySet, options: &check::Options) -> Inventory {
    let checked = check::check(sources, set, options);
    let by_location: HashMap<(usize, usize, Option<usize>), &check::Checked> =
        checked.iter().map(|c| ((c.location.source, c.location.document, c.location.item), c)).collect();
    let labels = check::namespace_labels(sources, options);
    let context = entries::Context::new(sources, set, options, &labels);
    let mut entries = Vec::new();
    for (source_index, source) in sources.iter().enumerate() {
        for (document_index, document) in source.documents.iter().enumerate() {
            for (item, object) in check::objects(&document.value) {
                let found = context.entries(object);
                if found.is_empty() {
                    continue;
                }
                let violations = by_location
                    .get(&(source_index, document_index, item))
                    .map(|checked| violations(checked, set))
                    .unwrap_or_default();
                for mut entry in found {
                    entry.violations = violations.clone();
                    entry.status = entry.status_of();
                    entries.push(entry);
                }
            }
        }
    }
    Inventory { entries: worst_first(entries) }
}

/// The policy findings of a checked object (notices about how it was judged
/// are not violations).
fn violations(checked: &check::Checked, set: &PolicySet) -> Vec<Violation> {
    checked
        .validation
        .findings
        .iter()
        .filter(|finding| finding.severity != Severity::Notice)
        .map(|finding| Violation {
            policy: finding.policy.map_or(crate::engine::PORTCULLIS, |index| set.policies()[index].name()).to_owned(),
            severity: finding.severity.as_str(),
            message: finding.text.clone(),
        })
        .collect()
}

/// Namespaces by their worst entry, then by name; entries by status, in input
/// order within one.
fn worst_first(mut entries: Vec<Entry>) -> Vec<Entry> {
    let mut worst: BTreeMap<String, Status> = BTreeMap::new();
    for entry in &entries {
        let status = worst.entry(entry.namespace.clone()).or_insert(entry.status);
        *status = (*status).min(entry.status);
    }
    entries.sort_by(|a, b| {
        (worst[&a.namespace], &a.namespace, a.status).cmp(&(worst[&b.namespace], &b.namespace, b.status))
    });
    entries
}

#[cfg(test)]
mod tests;
