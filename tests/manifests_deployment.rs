//! The Deployment and its pods: probes on the admin paths the real router
//! serves, arguments the real command line accepts, mounts where they point,
//! the restricted security context and resources, and a PodDisruptionBudget,
//! anti-affinity and zone spread that survive a node loss.

use crate::common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use common::bundled;
use common::http::get;
use common::manifests::{
    NAMESPACE, base, container, container_args, container_port, pod_labels, pod_spec, selects, strings,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use portcullis::webhook::{AppState, admin_router};

#[tokio::test]
async fn probes_point_at_admin_paths() {
    let manifests = base();
    let container = container(&manifests);
    let admin_listen = container_args(&manifests).admin_listen;
    assert_eq!(admin_listen, "0.0.0.0:9090".parse::<SocketAddr>().unwrap());
    assert_eq!(container_port(&container, "admin"), i32::from(admin_listen.port()));

    let liveness = container.liveness_probe.expect("liveness probe");
    let readiness = container.readiness_probe.expect("readiness probe");
    let path_and_port = |probe: &k8s_openapi::api::core::v1::Probe| {
        let get = probe.http_get.clone().expect("httpGet probe");
        assert_eq!(get.scheme, None, "plain HTTP");
        (get.path.unwrap(), get.port)
    };
    assert_eq!(path_and_port(&liveness), ("/healthz".to_owned(), IntOrString::String("admin".into())));
    assert_eq!(path_and_port(&readiness), ("/readyz".to_owned(), IntOrString::String("admin".into())));
    let period = readiness.period_seconds.unwrap();
    assert!((2..=5).contains(&period), "readiness periodSeconds {period}");

    let state = AppState::new(bundled());
    let admin = admin_router(state.clone());
    assert_eq!(get(&admin, "/healthz").await.status, StatusCode::OK);
    assert_eq!(get(&admin, "/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    state.set_ready(true);
    assert_eq!(get(&admin, "/readyz").await.status, StatusCode::OK);
    assert_eq!(get(&admin, "/healthz").await.status, StatusCode::OK);
}

#[test]
fn container_arguments_are_accepted_by_portcullis() {
    let manifests = base();
    let container = container(&manifests);
    assert_eq!(container.name, "portcullis");
    assert_eq!(container.image.as_deref(), Some("ghcr.io/portcullis-dev/portcullis:0.1.0"));
    assert_eq!(container.command, None, "the image's entrypoint runs");
    let args = container_args(&manifests);
    assert_eq!(args.tls_cert, Path::new("/etc/portcullis/tls/tls.crt"));
    assert_eq!(args.tls_key, Path::new("/etc/portcullis/tls/tls.key"));
    assert_eq!(args.policies, Path::new("/etc/portcullis/policies"));
    assert_eq!(args.shutdown_delay, Duration::from_secs(5));
    assert_eq!(args.drain_timeout, Duration::from_secs(20));
    assert!(!args.no_cluster, "namespace labels are read from the cluster");
    assert_eq!(args.kubeconfig, None, "in-cluster configuration");
    let env: Vec<(String, Option<String>)> = container.env.unwrap().into_iter().map(|e| (e.name, e.value)).collect();
    assert_eq!(env, vec![("RUST_LOG".to_owned(), Some("info".to_owned()))]);

    // SIGTERM: unready for the delay, then drain; all within the grace period.
    let grace = pod_spec(&manifests).termination_grace_period_seconds.unwrap();
    assert_eq!(grace, 30);
    assert!(args.shutdown_delay + args.drain_timeout < Duration::from_secs(grace as u64));
}

#[test]
fn certificate_and_policies_are_mounted_where_the_arguments_point() {
    let manifests = base();
    let spec = pod_spec(&manifests);
    let container = container(&manifests);
    let args = container_args(&manifests);
    let mounts: BTreeMap<String, (String, Option<bool>, Option<String>)> = container
        .volume_mounts
        .unwrap()
        .into_iter()
        .map(|m| (m.name, (m.mount_path, m.read_only, m.sub_path)))
        .collect();
    let tls_dir = args.tls_cert.parent().unwrap().to_str().unwrap().to_owned();
    assert_eq!(args.tls_key.parent().unwrap(), Path::new(&tls_dir));
    assert_eq!(
        mounts,
        BTreeMap::from([
            ("tls".to_owned(), (tls_dir, Some(true), None)),
            ("policies".to_owned(), (args.policies.to_str().unwrap().to_owned(), Some(true), None)),
        ])
    );
    let volumes: BTreeMap<String, _> = spec.volumes.unwrap().into_iter().map(|v| (v.name.clone(), v)).collect();
    assert_eq!(volumes.len(), 2);
    let secret = volumes["tls"].secret.clone().expect("tls is a Secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("portcullis-tls"));
    assert_eq!(secret.default_mode, Some(0o440));
    let config_map = volumes["policies"].config_map.clone().expect("policies is a ConfigMap volume");
    assert_eq!(config_map.name, "portcullis-policies");
    assert_eq!(config_map.items, None, "every policy file is mounted");
}

#[test]
fn pods_run_restricted_with_resources_set() {
    let manifests = base();
    let spec = pod_spec(&manifests);
    assert_eq!(
        spec.security_context,
        Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            fs_group: Some(65532),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..Default::default()
        })
    );
    assert_eq!(spec.service_account_name.as_deref(), Some("portcullis"));
    assert_eq!(spec.host_network, None);
    assert_eq!(spec.priority_class_name, None);
    let container = container(&manifests);
    assert_eq!(
        container.security_context,
        Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: strings(&["ALL"]), add: None }),
            ..Default::default()
        })
    );
    let quantities = |pairs: &[(&str, &str)]| {
        Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned()))).collect::<BTreeMap<_, _>>())
    };
    assert_eq!(
        container.resources,
        Some(ResourceRequirements {
            requests: quantities(&[("cpu", "50m"), ("memory", "32Mi")]),
            // No CPU limit: throttling would add latency to every review.
            limits: quantities(&[("memory", "128Mi")]),
            claims: None,
        })
    );
}

#[test]
fn deployment_survives_a_node_loss() {
    let manifests = base();
    let deployment: Deployment = manifests.get("Deployment", "portcullis");
    let spec = deployment.spec;
    assert_eq!(spec.replicas, Some(2));
    let labels = pod_labels(&manifests);
    assert_eq!(labels, BTreeMap::from([("app.kubernetes.io/name".to_owned(), "portcullis".to_owned())]));
    assert!(selects(&spec.selector, &labels));
    // A rollout never takes a pod away before its replacement is ready.
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));

    let pdb: PodDisruptionBudget = manifests.get("PodDisruptionBudget", "portcullis");
    assert_eq!(pdb.metadata.namespace.as_deref(), Some(NAMESPACE));
    let pdb = pdb.spec.unwrap();
    assert_eq!(pdb.min_available, Some(IntOrString::Int(1)));
    assert_eq!(pdb.max_unavailable, None);
    assert_eq!(pdb.selector.as_ref(), Some(&spec.selector));
    assert!(selects(pdb.selector.as_ref().unwrap(), &labels));

    let pod = spec.template.spec.unwrap();
    let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
    assert_eq!(anti.required_during_scheduling_ignored_during_execution, None);
    let preferred = anti.preferred_during_scheduling_ignored_during_execution.unwrap();
    assert_eq!(preferred.len(), 1);
    assert_eq!(preferred[0].weight, 100);
    let term = &preferred[0].pod_affinity_term;
    assert_eq!(term.topology_key, "kubernetes.io/hostname");
    assert!(selects(term.label_selector.as_ref().unwrap(), &labels));

    let spread = pod.topology_spread_constraints.unwrap();
    assert_eq!(spread.len(), 1);
    assert_eq!(spread[0].topology_key, "topology.kubernetes.io/zone");
    assert_eq!(spread[0].max_skew, 1);
    assert_eq!(spread[0].when_unsatisfiable, "ScheduleAnyway");
    assert!(selects(spread[0].label_selector.as_ref().unwrap(), &labels));
}
