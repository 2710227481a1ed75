//! Declarative policy test suites (`portcullis test DIR`).
//!
//! A suite is a directory of YAML files, conventionally `policies/tests/`, with
//! one sub-directory per policy under test: `policies/tests/<policy>/*.yaml`
//! (the policy loader skips sub-directories, so the cases never disturb policy
//! loading). Every file holds one or more `PolicyTest` documents:
//!
//! ```yaml
//! apiVersion: portcullis.dev/v1alpha1
//! kind: PolicyTest
//! metadata:
//!   name: denies-nodeport-in-production   # a DNS label, unique per policy
//! spec:
//!   description: optional text
//!   operation: CREATE                     # CREATE (default), UPDATE or DELETE
//!   namespace: production                 # default "default"
//!   namespaceLabels: {environment: production}   # default: no labels
//!   user: {username: alice, groups: [developers]}
//!   object: {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {type: NodePort}}
//!   oldObject: {...}                      # UPDATE only
//!   gateways: [{kind: Gateway, ...}]      # Gateways, ListenerSets, policies with targetRefs
//!                                         # that exist (default: none)
//!   expect:
//!     allowed: false
//!     messages: ["[no-nodeport-in-production] Service production/web: type NodePort"]
//!     warnings: []
//! ```
//!
//! - The policy under test is the name of the directory holding the file; it must
//!   exist in the policy set.
//! - A case with `expect.patch` is a mutate case: it is evaluated at
//!   [`Stage::Mutate`] and the merged RFC 6902 patch of all mutating policies
//!   must equal `expect.patch` exactly (`[]`: no patch). A non-empty patch must
//!   hold an operation of the policy under test.
//! - Any other case is a validate case (`expect.allowed` is required), evaluated
//!   at [`Stage::Validate`] against the whole set: `allowed` must match; each of
//!   `messages` must be a substring of some denial line, and a denied case with
//!   `messages` needs a denial line of the policy under test; each of `warnings`
//!   must be a substring of some warning line, and `warnings: []` means none.
//! - The request is built as the API server would send it, by
//!   [`Review::from_manifest`], the way `portcullis check` builds its requests and
//!   with the same object parser the webhook uses. For DELETE, `object` is the
//!   deleted object and the request carries none. Without `user`, the request
//!   comes from `portcullis-offline` in the group `system:authenticated`.
//! - Unknown fields are errors naming the file and the document (counted from 1,
//!   empty documents not counted).
//!
//! The parts: `cases.rs` reads and checks the case documents, `judge.rs` runs
//! them against a policy set, `render.rs` prints the report.
//!
//! [`Stage::Mutate`]: crate::engine::Stage::Mutate
//! [`Stage::Validate`]: crate::engine::Stage::Validate
//! [`Review::from_manifest`]: crate::admission::Review::from_manifest

mod cases;
#[cfg(test)]
mod fixtures;
mod judge;
mod render;

pub use cases::{Case, CaseSpec, CaseUser, Expect, KIND, SuiteError, load_cases, parse_cases};
pub use judge::{CaseResult, run, run_case};
pub use render::render;
