//! portcullis: a Kubernetes admission webhook that stops Services, Ingresses and
//! Gateway API routes from being exposed to the outside world unsafely.
//!
//! From the bottom up:
//! - [`engine`]: the pure, synchronous policy engine (no I/O, no clock, no
//!   metrics): `evaluate(&Input, &PolicySet, NamespaceLabels) -> Decision`.
//! - [`admission`]: the request model, the one way into the engine: a
//!   [`admission::Review`] decoded from the wire or built from a manifest.
//! - [`documents`]: finding YAML/JSON files and reading their documents (with
//!   lines, original text and field paths for errors), shared by [`policy`],
//!   [`check`] and [`suite`].
//! - [`policy`]: loading and validating the YAML policy files into an
//!   [`engine::PolicySet`], and the [`policy::PolicyStore`] that serves one.
//! - [`metrics`]: the Prometheus metrics recorded around the engine.
//! - [`cluster`]: what portcullis reads from the API server (namespace labels).
//! - [`webhook`]: the axum HTTPS webhook and the plain-HTTP admin listener, the
//!   wire format, TLS and development certificates.
//! - [`reload`]: background reloads of the certificate and the policies.
//! - [`check`] and [`suite`]: `portcullis check` and `portcullis test`.
//! - [`inventory`] (pure) and [`report`]: the exposure inventory and `portcullis report`.
//! - [`cli`]: the command line; `main.rs` wires it all together.

pub mod admission;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod documents;
pub mod engine;
pub mod fuzzing;
pub mod inventory;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod report;
pub mod suite;
pub mod vap;
pub mod webhook;
