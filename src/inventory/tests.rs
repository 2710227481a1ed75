//! Each entry-point kind with its protections, from the fixtures in
//! `tests/fixtures/report/`, judged by the bundled policies.

use super::*;
use crate::check::{Format, Options};

fn bundled() -> &'static PolicySet {
    static SET: std::sync::OnceLock<PolicySet> = std::sync::OnceLock::new();
    SET.get_or_init(crate::policy::bundled::load)
}

fn source(name: &str, text: &str) -> Source {
    Source::parse(name.to_owned(), None, text, Format::Yaml)
}

const NAMESPACES: &str = include_str!("../../tests/fixtures/report/namespaces.yaml");
const SERVICES: &str = include_str!("../../tests/fixtures/report/services.yaml");
const INGRESSES: &str = include_str!("../../tests/fixtures/report/ingresses.yaml");
const GATEWAY: &str = include_str!("../../tests/fixtures/report/gateway.yaml");

/// The inventory of the fixtures, the Namespaces and IngressClass always included.
fn of(texts: &[&str]) -> Inventory {
    let mut sources = vec![source("namespaces.yaml", NAMESPACES)];
    sources.extend(texts.iter().map(|text| source("input.yaml", text)));
    inventory(&sources, bundled(), &Options { ingress_classes: edge(), ..Options::default() })
}

/// The IngressClass of the fixtures, as the report reads it.
fn edge() -> crate::engine::input::ClassControllers {
    [("edge".to_owned(), "k8s.io/ingress-nginx".to_owned())].into()
}

fn entry<'a>(inventory: &'a Inventory, name: &str, address: &str) -> &'a Entry {
    inventory
        .entries
        .iter()
        .find(|entry| entry.name == name && entry.address == address)
        .unwrap_or_else(|| panic!("no entry {name} {address} in {:#?}", inventory.entries))
}

fn tls(source: TlsSource, detail: Option<&str>) -> Tls {
    Tls { source, detail: detail.map(str::to_owned) }
}

fn auth(method: AuthMethod, detail: Option<&str>) -> Auth {
    Auth { method, detail: detail.map(str::to_owned) }
}

fn none_allowed() -> AllowList {
    AllowList { kind: AllowListKind::None, from: None, ranges: vec![] }
}

fn policies(entry: &Entry) -> Vec<(&str, &str)> {
    entry.violations.iter().map(|v| (v.policy.as_str(), v.severity)).collect()
}

#[test]
fn a_nodeport_service_is_one_entry_per_node_port_denied_in_production() {
    let inventory = of(&[SERVICES]);
    let web = entry(&inventory, "web-nodeport", "nodes:30080/TCP -> 80");
    assert_eq!(
        (web.entry_type, web.reach, web.kind, web.namespace.as_str()),
        (EntryType::NodePort, Reach::Public, "Service", "shop")
    );
    assert_eq!(web.tls, tls(TlsSource::None, Some("passed through to the Pods")));
    assert_eq!(web.auth, auth(AuthMethod::None, None));
    assert_eq!(web.allow_list, none_allowed());
    assert_eq!(web.environments, ["production"]);
    assert_eq!(policies(web), [("no-nodeport-in-production", "deny")]);
    assert_eq!(
        web.violations[0].message,
        "type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS"
    );
    assert_eq!(web.status, Status::Deny);
    // A ClusterIP Service without externalIPs is no entry point.
    assert!(inventory.entries.iter().all(|entry| entry.name != "cache"));
}

#[test]
fn load_balancers_are_public_or_internal_with_their_effective_source_ranges() {
    let inventory = of(&[SERVICES]);
    let api = entry(&inventory, "api", "load balancer:443/TCP");
    assert_eq!((api.entry_type, api.reach, api.internal_by.as_deref()), (EntryType::LoadBalancer, Reach::Public, None));
    assert_eq!(api.allow_list, none_allowed());
    assert_eq!(
        policies(api),
        [("restrict-loadbalancer-source-ranges", "deny"), ("warn-loadbalancer-in-production", "warn")]
    );
    let reports = entry(&inventory, "reports", "load balancer:443/TCP");
    assert_eq!(
        (reports.reach, reports.internal_by.as_deref()),
        (Reach::Internal, Some("azure: service.beta.kubernetes.io/azure-load-balancer-internal: \"true\""))
    );
    assert_eq!(
        reports.allow_list,
        AllowList {
            kind: AllowListKind::Ranges,
            from: Some("spec.loadBalancerSourceRanges".into()),
            ranges: vec!["10.20.0.0/16".into()]
        }
    );
    assert_eq!((policies(reports), reports.status), (vec![("warn-loadbalancer-in-production", "warn")], Status::Warn));
    // The annotation counts when the field is empty, as sourceRanges reads it.
    let annotated = SERVICES.replace("  loadBalancerSourceRanges: [10.20.0.0/16]\n", "").replace(
        "    service.beta.kubernetes.io/azure-load-balancer-internal: \"true\"\n",
        "    service.beta.kubernetes.io/load-balancer-source-ranges: \"198.51.100.0/24, 203.0.113.0/24\"\n",
    );
    let inventory = of(&[&annotated]);
    let reports = entry(&inventory, "reports", "load balancer:443/TCP");
    assert_eq!(
        (reports.reach, reports.allow_list.ranges.clone()),
        (Reach::Public, vec!["198.51.100.0/24".to_owned(), "203.0.113.0/24".to_owned()])
    );
    assert_eq!(reports.allow_list.from.as_deref(), Some("service.beta.kubernetes.io/load-balancer-source-ranges"));
}

#[test]
fn every_external_ip_is_an_entry_and_private_ones_are_internal() {
    let inventory = of(&[SERVICES]);
    let legacy = entry(&inventory, "legacy", "203.0.113.10:8080/TCP");
    assert_eq!((legacy.entry_type, legacy.reach), (EntryType::ExternalIp, Reach::Public));
    assert_eq!((policies(legacy), legacy.environments.len()), (vec![("no-external-ips", "deny")], 0));
    let private = SERVICES.replace("externalIPs: [203.0.113.10]", "externalIPs: [10.1.2.3, 2001:db8::1]");
    let inventory = of(&[&private]);
    assert_eq!(entry(&inventory, "legacy", "10.1.2.3:8080/TCP").reach, Reach::Internal);
    assert_eq!(entry(&inventory, "legacy", "2001:db8::1:8080/TCP").reach, Reach::Public);
}

#[test]
fn ingress_hosts_and_paths_with_certificate_auth_and_allow_list_of_their_controller() {
    let inventory = of(&[INGRESSES]);
    for path in ["/", "/api"] {
        let storefront = entry(&inventory, "storefront", &format!("shop.example.com{path}"));
        assert_eq!(storefront.entry_type, EntryType::IngressRule);
        // Class `edge` is ingress-nginx by its IngressClass's spec.controller.
        assert_eq!(storefront.controller.as_deref(), Some("nginx"));
        assert_eq!(storefront.tls, tls(TlsSource::CertManager, Some("letsencrypt -> shop-tls")));
        assert_eq!(storefront.auth, auth(AuthMethod::Annotations, Some("nginx.ingress.kubernetes.io/auth-url")));
        assert_eq!(
            storefront.allow_list,
            AllowList {
                kind: AllowListKind::Ranges,
                from: Some("nginx.ingress.kubernetes.io/whitelist-source-range".into()),
                ranges: vec!["203.0.113.0/24".into()]
            }
        );
        assert_eq!((storefront.violations.len(), storefront.status), (0, Status::Protected));
    }
    let preview = entry(&inventory, "preview", "<script>alert('x')</script>.example.com/");
    assert_eq!(preview.tls, tls(TlsSource::None, Some("host not in spec.tls")));
    assert_eq!((preview.auth.method, preview.allow_list.kind), (AuthMethod::None, AllowListKind::None));
    assert_eq!(
        policies(preview),
        [("ingress-source-allow-list", "warn"), ("require-ingress-tls", "deny"), ("warn-ingress-auth", "warn")]
    );

    // Without the IngressClass, class `edge` is unknown: no annotation counts.
    let sources = [source("namespaces.yaml", NAMESPACES), source("ingresses.yaml", INGRESSES)];
    let unknown = inventory_of(&sources);
    let storefront = entry(&unknown, "storefront", "shop.example.com/");
    assert_eq!((storefront.controller.as_deref(), storefront.auth.method), (None, AuthMethod::None));
    assert_eq!(storefront.status, Status::Deny);
}

fn inventory_of(sources: &[Source]) -> Inventory {
    inventory(sources, bundled(), &Options::default())
}

#[test]
fn the_certificate_source_of_an_ingress_host() {
    let ingress = |annotations: &str, tls: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: i\n  namespace: dev\n  \
             annotations: {annotations}\nspec:\n  ingressClassName: {{class}}\n  tls: {tls}\n  rules:\n    - host: a.example.com\n"
        )
    };
    let tls_of = |class: &str, annotations: &str, tls: &str| {
        let text = ingress(annotations, tls).replace("{class}", class);
        entry(&of(&[&text]), "i", "a.example.com").tls.clone()
    };
    assert_eq!(tls_of("nginx", "{}", "[{hosts: [a.example.com], secretName: a}]"), tls(TlsSource::Secret, Some("a")));
    assert_eq!(tls_of("nginx", "{}", "[{hosts: ['*.example.com']}]"), tls(TlsSource::DefaultCertificate, None));
    assert_eq!(
        tls_of("alb", "{alb.ingress.kubernetes.io/certificate-arn: 'arn:aws:acm:x'}", "[{hosts: [a.example.com]}]"),
        tls(TlsSource::Annotation, Some("alb.ingress.kubernetes.io/certificate-arn"))
    );
    assert_eq!(
        tls_of("nginx", "{}", "[{hosts: [b.example.com], secretName: b}]"),
        tls(TlsSource::None, Some("host not in spec.tls"))
    );
    // A declared application authentication is said as such.
    let text = ingress("{portcullis.dev/auth: application}", "[]").replace("{class}", "nginx");
    assert_eq!(
        entry(&of(&[&text]), "i", "a.example.com").auth,
        auth(AuthMethod::Application, Some("portcullis.dev/auth"))
    );
}

#[test]
fn gateway_listeners_and_the_routes_attached_to_them() {
    let inventory = of(&[GATEWAY]);
    let https = entry(&inventory, "public", "https HTTPS:443 *.example.com");
    assert_eq!(
        (https.entry_type, https.kind, https.controller.as_deref()),
        (EntryType::Listener, "Gateway", Some("eg"))
    );
    assert_eq!(https.tls, tls(TlsSource::CertificateRefs, Some("wildcard-tls")));
    assert_eq!((https.auth.method, https.status), (AuthMethod::NotApplicable, Status::Protected));
    let http = entry(&inventory, "public", "http HTTP:80 *");
    assert_eq!((http.tls.clone(), http.status), (tls(TlsSource::None, Some("HTTP listener")), Status::Unprotected));

    let checkout = entry(&inventory, "checkout", "checkout.example.com via infra/public:https");
    assert_eq!((checkout.entry_type, checkout.kind), (EntryType::Route, "HTTPRoute"));
    assert_eq!(checkout.tls, tls(TlsSource::CertificateRefs, Some("wildcard-tls")));
    assert_eq!(checkout.auth, auth(AuthMethod::Gateway, Some("ExternalAuth filter")));
    assert_eq!((checkout.controller.as_deref(), checkout.status), (Some("eg"), Status::Protected));

    // On the plain HTTP listener, without the filter: no TLS, no auth, denied in production.
    let plain = GATEWAY.replace("sectionName: https", "sectionName: http").replace(
        "    - filters:\n        - type: ExternalAuth\n          externalAuth: {protocol: HTTP, backendRef: {name: auth, port: 8080}}\n      backendRefs",
        "    - backendRefs",
    );
    let inventory = of(&[&plain]);
    let checkout = entry(&inventory, "checkout", "checkout.example.com via infra/public:http");
    assert_eq!(checkout.tls, tls(TlsSource::None, Some("HTTP listener http")));
    assert_eq!(checkout.auth.method, AuthMethod::None);
    assert_eq!(policies(checkout), [("require-gateway-auth", "deny"), ("require-route-tls", "deny")]);

    // Without its Gateway the route attaches to an unknown parent, judged strictly.
    let route_only = &GATEWAY[GATEWAY.find("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute").unwrap()..];
    let inventory = of(&[route_only]);
    let checkout = entry(&inventory, "checkout", "checkout.example.com via infra/public (unknown)");
    assert_eq!(checkout.tls, tls(TlsSource::None, Some("Gateway unknown")));
    assert_eq!(checkout.status, Status::Deny);
}

#[test]
fn namespaces_and_entries_come_worst_first_and_the_summary_counts_them() {
    let inventory = of(&[GATEWAY, INGRESSES, SERVICES]);
    let order: Vec<(&str, Status)> =
        inventory.entries.iter().map(|entry| (entry.namespace.as_str(), entry.status)).collect();
    assert_eq!(
        order,
        [
            ("shop", Status::Deny),
            ("shop", Status::Deny),
            ("shop", Status::Warn),
            ("shop", Status::Protected),
            ("shop", Status::Protected),
            ("shop", Status::Protected),
            ("staging", Status::Deny),
            ("staging", Status::Deny),
            ("infra", Status::Unprotected),
            ("infra", Status::Protected),
        ]
    );
    assert_eq!(
        inventory.summary(),
        Summary {
            entry_points: 10,
            public: 9,
            without_tls: 6,
            without_auth: 5,
            with_violations: 5,
            deny: 4,
            warn: 1,
            unprotected: 1,
            protected: 4
        }
    );
}

#[test]
fn the_objects_of_a_cluster_are_one_source() {
    let objects: Vec<Value> =
        SERVICES.split("\n---\n").map(|text| serde_saphyr::from_str::<Value>(text).unwrap()).collect();
    let inventory = inventory(&[source_of(objects)], bundled(), &Options::default());
    // Without the Namespace, shop is production by its labels only: not here.
    let web = entry(&inventory, "web-nodeport", "nodes:30080/TCP -> 80");
    assert_eq!((web.environments.len(), web.status), (0, Status::Unprotected));
    assert_eq!(inventory.entries.len(), 4);
}
