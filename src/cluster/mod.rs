//! What portcullis reads from the API server: the labels of namespaces, which
//! decide the environments a namespace belongs to, and the controller of each
//! IngressClass, which decides the Ingress controller family of an Ingress.

pub mod ingress_classes;
pub mod namespaces;
pub mod watch;

pub use ingress_classes::IngressClassCache;
pub use namespaces::{Labels, Lookup, NamespaceCache};
