//! Every integration test, in one test binary: each file of `tests/` is one
//! module here, `tests/common/` their shared helpers. One binary links once
//! and takes ~100 MB of `target/` where one binary per file took ~30 links
//! and 2 GB. (The end-to-end tests, `tests/e2e/`, are a binary of their own
//! that `make e2e` runs against a real kube-apiserver.)

#[path = "common/mod.rs"]
mod common;

#[path = "audit.rs"]
mod audit;
#[path = "bad_input.rs"]
mod bad_input;
#[path = "bundled_policies.rs"]
mod bundled_policies;
#[path = "cel.rs"]
mod cel;
#[path = "check.rs"]
mod check;
#[path = "cli.rs"]
mod cli;
#[path = "fuzz_regressions.rs"]
mod fuzz_regressions;
#[path = "gateway_api.rs"]
mod gateway_api;
#[path = "gateways.rs"]
mod gateways;
#[path = "http.rs"]
mod http;
#[path = "image_context.rs"]
mod image_context;
#[path = "ingress_classes.rs"]
mod ingress_classes;
#[path = "makefile.rs"]
mod makefile;
#[path = "manifests_certificates.rs"]
mod manifests_certificates;
#[path = "manifests_deployment.rs"]
mod manifests_deployment;
#[path = "manifests_image.rs"]
mod manifests_image;
#[path = "manifests_install.rs"]
mod manifests_install;
#[path = "manifests_monitoring.rs"]
mod manifests_monitoring;
#[path = "manifests_policies.rs"]
mod manifests_policies;
#[path = "manifests_rbac.rs"]
mod manifests_rbac;
#[path = "manifests_render.rs"]
mod manifests_render;
#[path = "manifests_webhooks.rs"]
mod manifests_webhooks;
#[path = "namespaces.rs"]
mod namespaces;
#[path = "one_way_in.rs"]
mod one_way_in;
#[path = "reload.rs"]
mod reload;
#[path = "repo_files.rs"]
mod repo_files;
#[path = "report.rs"]
mod report;
#[path = "suite.rs"]
mod suite;
#[path = "tls.rs"]
mod tls;
#[path = "vap.rs"]
mod vap;
