//! RBAC: the ServiceAccount the pods run as may only read namespaces,
//! IngressClasses, Gateways and ListenerSets, the policy kinds that
//! authenticate routes, and (for the background audit) list and watch
//! Services and Ingresses; writing the audit's Reports is granted by the
//! optional component `manifests/components/audit-reports` alone.

use crate::common;

use common::bundled;
use common::manifests::{NAMESPACE, base, pod_spec, strings};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::core::{ApiResource, GroupVersionKind};

fn read(group: &str, resources: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: strings(&[group]),
        resources: strings(resources),
        verbs: vec!["get".into(), "list".into(), "watch".into()],
        ..Default::default()
    }
}

/// The background audit's rule: list and watch, never a GET per object.
fn list_watch(group: &str, resources: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: strings(&[group]),
        resources: strings(resources),
        verbs: vec!["list".into(), "watch".into()],
        ..Default::default()
    }
}

#[test]
fn rbac_only_reads_what_the_caches_watch() {
    let manifests = base();
    let role: ClusterRole = manifests.get("ClusterRole", "portcullis");
    assert_eq!(role.aggregation_rule, None);
    assert_eq!(
        role.rules,
        Some(vec![
            read("", &["namespaces"]),
            read("networking.k8s.io", &["ingressclasses"]),
            read("gateway.networking.k8s.io", &["gateways", "listenersets"]),
            read("gateway.envoyproxy.io", &["securitypolicies"]),
            read("kuadrant.io", &["authpolicies"]),
            list_watch("", &["services"]),
            list_watch("networking.k8s.io", &["ingresses"]),
        ])
    );
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

/// Whether `rules` let portcullis get, list and watch `resource` of `group`.
fn may_watch(rules: &[PolicyRule], group: &str, resource: &str) -> bool {
    ["get", "list", "watch"].iter().all(|verb| {
        rules.iter().any(|rule| {
            let has = |items: &Option<Vec<String>>, item: &str| items.iter().flatten().any(|it| it == item);
            has(&rule.api_groups, group) && has(&rule.resources, resource) && rule.verbs.iter().any(|it| it == verb)
        })
    })
}

#[test]
fn rbac_covers_the_policy_kinds_the_bundled_policies_accept_as_route_authentication() {
    let role: ClusterRole = base().get("ClusterRole", "portcullis");
    let rules = role.rules.unwrap();
    // What the Gateway API cache watches besides the parents: each targeting
    // policy kind, at its plural (every version shares it).
    for kind in bundled().targeting_policy_kinds() {
        let group = kind.group.as_deref().unwrap_or_default();
        let plural = ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", &kind.kind)).plural;
        assert!(may_watch(&rules, group, &plural), "the ClusterRole cannot watch {plural}.{group} ({})", kind.kind);
    }
    for (group, resource) in [("gateway.networking.k8s.io", "gateways"), ("gateway.networking.k8s.io", "listenersets")]
    {
        assert!(may_watch(&rules, group, resource), "{resource}.{group}");
    }
    assert!(!may_watch(&rules, "gateway.networking.k8s.io", "httproutes"), "routes come in reviews; never listed");
    let verbs: std::collections::BTreeSet<&str> =
        rules.iter().flat_map(|rule| &rule.verbs).map(String::as_str).collect();
    assert_eq!(verbs, ["get", "list", "watch"].into(), "read-only");
    assert!(rules.iter().all(|rule| rule.resource_names.is_none() && rule.non_resource_urls.is_none()));
    let wildcard = |items: &Option<Vec<String>>| items.iter().flatten().any(|item| item.contains('*'));
    assert!(rules.iter().all(|rule| !wildcard(&rule.api_groups) && !wildcard(&rule.resources)), "no wildcards");
}

#[test]
fn the_audit_reports_component_adds_exactly_the_report_rules_and_the_flag() {
    use common::manifests::{Manifests, render_text_at, repo_copy};
    let root = repo_copy("audit-reports");
    let overlay = root.join("with-reports");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../manifests/base]\n\
         components: [../manifests/components/audit-reports]\n",
    )
    .unwrap();
    let with = Manifests::parse(&render_text_at(&overlay));
    let without = base();

    let mut added = with.identities();
    added.retain(|id| !without.identities().contains(id));
    assert_eq!(
        added,
        [
            common::manifests::id("rbac.authorization.k8s.io/v1", "ClusterRole", "", "portcullis-audit-reports"),
            common::manifests::id("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "portcullis-audit-reports"),
        ]
    );
    let role: ClusterRole = with.get("ClusterRole", "portcullis-audit-reports");
    assert_eq!(
        role.rules,
        Some(vec![PolicyRule {
            api_groups: strings(&["openreports.io"]),
            resources: strings(&["reports"]),
            verbs: strings(&["get", "list", "create", "patch", "delete"]).unwrap(),
            ..Default::default()
        }])
    );
    let binding: ClusterRoleBinding = with.get("ClusterRoleBinding", "portcullis-audit-reports");
    assert_eq!(binding.role_ref.name, "portcullis-audit-reports");
    assert_eq!(
        binding.subjects,
        Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "portcullis".into(),
            namespace: Some(NAMESPACE.into()),
            api_group: None,
        }])
    );
    // The base ClusterRole is unchanged, and the one new argument is the flag.
    let base_role: ClusterRole = without.get("ClusterRole", "portcullis");
    assert_eq!(with.get::<ClusterRole>("ClusterRole", "portcullis"), base_role);
    let args = |manifests: &Manifests| pod_spec(manifests).containers[0].args.clone().unwrap();
    let mut expected = args(&without);
    expected.push("--audit-reports".into());
    assert_eq!(args(&with), expected);
}
