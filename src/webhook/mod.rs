//! The webhook: the HTTPS listener the API server calls (`/validate`,
//! `/mutate`), the plain-HTTP admin listener (`/metrics`, `/healthz`,
//! `/readyz`), the `AdmissionReview` wire format, the serving certificate and
//! development certificates.

pub mod certs;
pub mod error;
pub mod review;
pub mod server;
pub mod tls;

pub use error::WebhookError;
pub use server::{AppState, Limits, Running, ServeConfig, ServeError, admin_router, start, webhook_router};
pub use tls::CertStore;
