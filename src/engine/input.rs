//! What the engine is asked: one admission request, already decoded into
//! typed objects (see `crate::admission::Review`), and the labels of its namespace.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::gateway::GatewayView;
use super::object::{Kind, Object};

/// The admission operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// Which webhook asks: validating policies answer `/validate`, mutating
/// policies answer `/mutate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Validate,
    Mutate,
}

/// The user making the request, as the API server reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct User<'a> {
    pub username: &'a str,
    pub groups: &'a [String],
}

/// Everything the engine needs about one admission request.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub stage: Stage,
    pub operation: Operation,
    /// The request's kind (`request.kind.kind`); compared case-insensitively.
    pub kind: Kind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub user: User<'a>,
    pub object: Option<&'a Object>,
    pub old_object: Option<&'a Object>,
    /// The objects' JSON as received, for the kinds read into lean types
    /// (the Gateway API kinds): what a `cel` rule sees of them. `None` for
    /// Services and Ingresses, whose typed objects are complete.
    pub object_json: Option<&'a str>,
    pub old_object_json: Option<&'a str>,
    pub dry_run: bool,
    /// The cluster's IngressClasses, which name the controller of an Ingress's
    /// class; [`IngressClasses::NONE`] without a cluster (the class table of
    /// the policies decides).
    pub ingress_classes: IngressClasses<'a>,
    /// The Gateways and ListenerSets routes attach to and the policies that
    /// target routes, as far as known ([`super::gateway::view::EMPTY`]: none).
    pub gateways: &'a GatewayView,
}

impl<'a> Input<'a> {
    /// The object the request is about, for message lines.
    pub fn about(&self) -> About<'a> {
        About { kind: self.kind, namespace: self.namespace, name: self.name }
    }
}

/// The object a message line is about: `<Kind> <namespace>/<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct About<'a> {
    pub kind: Kind,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// The labels of the request's namespace, as far as they are known.
#[derive(Clone, Copy, Debug)]
pub enum NamespaceLabels<'a> {
    Known(&'a BTreeMap<String, String>),
    /// The namespace is not (yet) known: every environment whose selector could
    /// match is assumed to match (fail safe), and a notice says so.
    Unknown,
}

static EMPTY_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl NamespaceLabels<'_> {
    /// No labels: without a cluster, namespace names alone decide.
    pub fn none() -> NamespaceLabels<'static> {
        NamespaceLabels::Known(&EMPTY_LABELS)
    }
}

impl<'a> From<Option<&'a BTreeMap<String, String>>> for NamespaceLabels<'a> {
    fn from(labels: Option<&'a BTreeMap<String, String>>) -> Self {
        NamespaceLabels::Known(labels.unwrap_or(&EMPTY_LABELS))
    }
}

/// Class name → `spec.controller` of the cluster's IngressClasses, as the
/// webhook's cache keeps them.
pub type ClassControllers = BTreeMap<String, String>;

/// The cluster's IngressClasses as far as they are known: borrowed from a
/// snapshot, so looking a class up allocates nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct IngressClasses<'a>(Option<&'a ClassControllers>);

impl<'a> IngressClasses<'a> {
    /// Unknown (no cluster, or `check` and `test`): only the class table decides.
    pub const NONE: IngressClasses<'static> = IngressClasses(None);

    pub fn new(classes: &'a ClassControllers) -> Self {
        IngressClasses(Some(classes))
    }

    /// The `spec.controller` of the IngressClass named `class`, if the cluster has it.
    pub fn controller(&self, class: &str) -> Option<&'a str> {
        self.0?.get(class).map(String::as_str)
    }
}
