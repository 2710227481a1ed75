//! What portcullis reads from the API server: the labels of namespaces, which
//! decide the environments a namespace belongs to, the controller of each
//! IngressClass, which decides the Ingress controller family of an Ingress,
//! and the Gateways, ListenerSets and route-targeting policies that routes
//! attach to and are authenticated by.

pub mod gateways;
pub mod ingress_classes;
pub mod namespaces;
pub mod watch;

use std::sync::Arc;

pub use gateways::GatewayCache;
pub use ingress_classes::IngressClassCache;
pub use namespaces::{Labels, Lookup, NamespaceCache};

/// The caches the webhook reads; each `None` without a cluster.
#[derive(Clone, Default)]
pub struct Caches {
    pub namespaces: Option<Arc<NamespaceCache>>,
    pub ingress_classes: Option<Arc<IngressClassCache>>,
    pub gateways: Option<Arc<GatewayCache>>,
}
