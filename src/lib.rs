//! portcullis: a Kubernetes admission webhook that stops Services and Ingresses
//! from being exposed to the outside world unsafely.
//!
//! - [`engine`]: the pure, synchronous policy engine (no I/O, no clock, no metrics).
//! - [`policy`]: loading and validating the YAML policy files into an [`engine::PolicySet`].
//! - [`review`]: decoding `AdmissionReview` requests and encoding responses.
//! - [`server`]: the axum HTTPS webhook and the plain-HTTP admin listener.
//! - [`metrics`]: the Prometheus metrics recorded around the engine.
//! - [`certs`]: development certificates (`portcullis certs`).

pub mod certs;
pub mod check;
pub mod cli;
pub mod engine;
pub mod fuzzing;
pub mod metrics;
pub mod namespaces;
pub mod policy;
pub mod reload;
pub mod review;
pub mod server;
pub mod suite;
pub mod tls;
