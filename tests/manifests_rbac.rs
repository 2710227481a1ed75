//! RBAC: the ServiceAccount the pods run as may only read namespaces and
//! IngressClasses.

mod common;

use common::manifests::{NAMESPACE, base, pod_spec, strings};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};

#[test]
fn rbac_only_reads_namespaces_and_ingress_classes() {
    let manifests = base();
    let role: ClusterRole = manifests.get("ClusterRole", "portcullis");
    assert_eq!(role.aggregation_rule, None);
    let read = |group: &str, resource: &str| PolicyRule {
        api_groups: strings(&[group]),
        resources: strings(&[resource]),
        verbs: vec!["get".into(), "list".into(), "watch".into()],
        ..Default::default()
    };
    assert_eq!(role.rules, Some(vec![read("", "namespaces"), read("networking.k8s.io", "ingressclasses")]));
    let binding: ClusterRoleBinding = manifests.get("ClusterRoleBinding", "portcullis");
    assert_eq!(
        binding.role_ref,
        RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "portcullis".into(),
        }
    );
    assert_eq!(
        binding.subjects,
        Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "portcullis".into(),
            namespace: Some(NAMESPACE.into()),
            api_group: None,
        }])
    );
    let account: ServiceAccount = manifests.get("ServiceAccount", "portcullis");
    assert_eq!(account.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(pod_spec(&manifests).service_account_name.as_deref(), Some("portcullis"));
}
