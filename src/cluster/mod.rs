//! What portcullis reads from the API server: the labels of namespaces, which
//! decide the environments a namespace belongs to.

pub mod namespaces;

pub use namespaces::{Labels, Lookup, NamespaceCache};
