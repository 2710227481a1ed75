//! Ingress controllers: which one serves an Ingress, and what its annotations
//! mean.
//!
//! The class is read from `spec.ingressClassName` or the legacy
//! `kubernetes.io/ingress.class` annotation. With a cluster, the class's
//! IngressClass names its controller (`spec.controller`, e.g.
//! `nginx.org/ingress-controller`), which each family's dialect recognises
//! ([`Dialect::controllers`]); the webhook hands the engine a snapshot of the
//! cluster's classes ([`IngressClasses`]). Otherwise, or for a controller no
//! dialect knows, a configurable class → family table ([`ControllerMap`])
//! decides. Each family has one
//! [`Dialect`]: the static facts the Ingress rules need about its annotations
//! (how it authenticates, how it restricts client addresses, where else it takes
//! a certificate from, and how plain HTTP is switched back on). The rules ask
//! the dialect and hold no per-controller knowledge of their own; what a policy
//! decides (such as which Traefik middlewares are approved) stays in the policy.
//!
//! # Adding a controller family
//!
//! 1. A variant in [`Family`] (its lowercase name is what policies write in
//!    `controllers:` and `IngressControllers`) and in [`Family::ALL`].
//! 2. A `Dialect` constant below, returned by [`Family::dialect`]: its name, the
//!    class names it uses out of the box, the `spec.controller` values of its
//!    IngressClasses, its authentication methods and the
//!    short advice that names them ([`Dialect::auth_fix`]), its source allow-list
//!    ([`AllowList`], or [`AllowList::None`] when it has none), the annotations
//!    that supply a certificate instead of `secretName` (often none) and the
//!    annotations that re-enable plain HTTP ([`PlainHttp`]). A mechanism no
//!    existing variant describes needs a new variant of [`Require`],
//!    [`AllowList`] or [`PlainHttp`] and its handling in the rule that reads it.
//! 3. The `dialects_are_complete` test checks the table. Outside the engine:
//!    README.md (rule catalogue, `IngressControllers`) and the bundled policies
//!    that carry per-controller parameters, with their test cases: the redirect
//!    `https-redirect` adds, the snippet keys `no-configuration-snippets`
//!    forbids, approved middlewares where the controller uses them.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::glob::Globs;
use super::input::IngressClasses;
use super::object::annotation;

/// The legacy annotation that names the ingress class.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Traefik attaches middlewares (authentication, an ipAllowList) to a router
/// through this annotation.
pub const TRAEFIK_MIDDLEWARES: &str = "traefik.ingress.kubernetes.io/router.middlewares";

/// A family of ingress controllers that share an annotation vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Nginx,
    Traefik,
    Haproxy,
    Alb,
    Gce,
    Contour,
    /// The F5 NGINX Ingress Controller (`nginx.org/*`, `nginx.com/*`
    /// annotations), not to be confused with ingress-nginx ([`Family::Nginx`]).
    #[serde(rename = "f5-nginx")]
    F5Nginx,
}

impl Family {
    /// Every family, in the order an unknown controller's dialects are tried.
    pub const ALL: [Family; 7] =
        [Family::Nginx, Family::Traefik, Family::Haproxy, Family::Alb, Family::Gce, Family::Contour, Family::F5Nginx];

    /// What the family's annotations mean.
    pub const fn dialect(self) -> &'static Dialect {
        match self {
            Family::Nginx => &NGINX,
            Family::Traefik => &TRAEFIK,
            Family::Haproxy => &HAPROXY,
            Family::Alb => &ALB,
            Family::Gce => &GCE,
            Family::Contour => &CONTOUR,
            Family::F5Nginx => &F5_NGINX,
        }
    }

    /// The family's name as policies write it, e.g. `nginx`.
    pub fn as_str(self) -> &'static str {
        self.dialect().name
    }

    /// The family whose IngressClasses carry this `spec.controller`, if any
    /// dialect knows it ([`Dialect::controllers`]).
    pub fn of_controller(controller: &str) -> Option<Family> {
        Family::ALL
            .into_iter()
            .find(|family| family.dialect().controllers.iter().any(|pattern| controller_matches(pattern, controller)))
    }
}

/// Whether `controller` is `pattern`, where one `*` in the pattern stands for
/// any text (`haproxy.org/ingress-controller/*`).
fn controller_matches(pattern: &str, controller: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == controller,
        Some((prefix, suffix)) => {
            controller.len() >= prefix.len() + suffix.len()
                && controller.starts_with(prefix)
                && controller.ends_with(suffix)
        }
    }
}

/// What one controller family's annotations mean: static facts the Ingress
/// rules query. See the module documentation for how to add one.
#[derive(Debug)]
pub struct Dialect {
    pub family: Family,
    /// As policies write it (the `Family` variant's serde name).
    pub name: &'static str,
    /// Ingress class names that mean this family out of the box (the
    /// fallback of [`ControllerMap`] when the cluster's classes are unknown).
    pub classes: &'static [&'static str],
    /// The `spec.controller` values of its IngressClasses, which identify the
    /// controller whatever the class is called. One `*` stands for any text.
    pub controllers: &'static [&'static str],
    /// The ways to authenticate: an Ingress is authenticated when every
    /// requirement of one method holds. Empty: the controller has no
    /// authentication annotation.
    pub auth: &'static [&'static [Require]],
    /// How to add authentication, for `ingressAuth` messages. Short: with the
    /// policy prefix and the pre-existing suffix a line must stay within
    /// [`crate::engine::MAX_WARNING_CHARS`].
    pub auth_fix: &'static str,
    /// How the controller restricts client addresses (`sourceRanges`).
    pub allow_list: AllowList,
    /// Annotations through which the controller takes its certificate from
    /// elsewhere than a Secret, making `spec.tls[].secretName` optional.
    pub certificate_annotations: &'static [&'static str],
    /// Annotation values that make the controller serve plain HTTP again (`ingressTls`).
    pub plain_http: &'static [PlainHttp],
}

/// One requirement of an authentication method.
#[derive(Debug)]
pub enum Require {
    /// The annotation is set and not blank.
    Set(&'static str),
    /// The annotation is exactly one of the values.
    OneOf(&'static str, &'static [&'static str]),
    /// The annotation is absent or exactly one of the values.
    AbsentOrOneOf(&'static str, &'static [&'static str]),
    /// The comma-separated middleware list in the annotation names a middleware
    /// the policy approves (its `traefikMiddlewares` globs).
    ApprovedMiddleware(&'static str),
}

/// How a controller lets an Ingress restrict client addresses.
#[derive(Debug)]
pub enum AllowList {
    /// Annotations holding comma-separated CIDRs; messages suggest the first.
    Cidrs(&'static [&'static str]),
    /// A middleware in this comma-separated list annotation that the policy
    /// approves (its `traefikMiddlewares` globs) restricts sources.
    Middleware(&'static str),
    /// The controller has no allow-list annotation: sources must be restricted
    /// at the load balancer or firewall.
    None,
}

/// An annotation that makes the controller serve the hosts over plain HTTP.
#[derive(Debug)]
pub enum PlainHttp {
    /// The annotation set to false (as Go's `strconv.ParseBool` reads it) turns
    /// the controller's redirect to HTTPS off.
    RedirectOff(&'static str),
    /// The annotation set to true (as Go reads it) allows plain HTTP.
    AllowHttp(&'static str),
    /// The comma-separated entry points in `key` include `plain`, the plain-HTTP
    /// one; `secure` is the one to use instead.
    EntryPoints { key: &'static str, plain: &'static str, secure: &'static str },
    /// The JSON listen ports in `key` (a list of `{"HTTP": 80}` or `{"HTTPS":
    /// 443}` objects) include an `HTTP` listener while the `redirect`
    /// annotation, to be set to `redirect_to`, is absent.
    HttpListener { key: &'static str, redirect: &'static str, redirect_to: &'static str },
}

impl Dialect {
    /// Whether the object carries one of the controller's authentication
    /// methods; `approved` are the policy's middleware globs.
    pub fn authenticated(&self, metadata: &ObjectMeta, approved: &Globs) -> bool {
        self.auth_method(metadata, approved).is_some()
    }

    /// The first of the controller's authentication methods the object
    /// carries: the annotation keys it consists of.
    pub fn auth_method(&self, metadata: &ObjectMeta, approved: &Globs) -> Option<Vec<&'static str>> {
        self.auth
            .iter()
            .find(|method| method.iter().all(|requirement| requirement.holds(metadata, approved)))
            .map(|method| method.iter().filter(|r| r.is_present(metadata)).map(Require::key).collect())
    }

    /// The annotations holding a source allow-list of CIDRs (possibly none).
    pub fn allow_list_annotations(&self) -> &'static [&'static str] {
        match self.allow_list {
            AllowList::Cidrs(keys) => keys,
            AllowList::Middleware(_) | AllowList::None => &[],
        }
    }

    /// Whether an approved middleware restricts the object's sources.
    pub fn allow_list_middleware(&self, metadata: &ObjectMeta, approved: &Globs) -> bool {
        match self.allow_list {
            AllowList::Middleware(key) => approved_middleware(metadata, key, approved),
            AllowList::Cidrs(_) | AllowList::None => false,
        }
    }
}

impl Require {
    /// The annotation the requirement reads.
    pub fn key(&self) -> &'static str {
        match *self {
            Require::Set(key)
            | Require::OneOf(key, _)
            | Require::AbsentOrOneOf(key, _)
            | Require::ApprovedMiddleware(key) => key,
        }
    }

    fn is_present(&self, metadata: &ObjectMeta) -> bool {
        annotation(metadata, self.key()).is_some()
    }

    fn holds(&self, metadata: &ObjectMeta, approved: &Globs) -> bool {
        match *self {
            Require::Set(key) => annotation(metadata, key).is_some_and(|value| !value.trim().is_empty()),
            Require::OneOf(key, values) => annotation(metadata, key).is_some_and(|value| values.contains(&value)),
            Require::AbsentOrOneOf(key, values) => {
                annotation(metadata, key).is_none_or(|value| values.contains(&value))
            }
            Require::ApprovedMiddleware(key) => approved_middleware(metadata, key, approved),
        }
    }
}

/// Whether the comma-separated middleware list in `key` names an approved middleware.
fn approved_middleware(metadata: &ObjectMeta, key: &str, approved: &Globs) -> bool {
    annotation(metadata, key).is_some_and(|list| list.split(',').any(|middleware| approved.matches(middleware.trim())))
}

const NGINX: Dialect = Dialect {
    family: Family::Nginx,
    name: "nginx",
    classes: &["nginx", "ingress-nginx", "nginx-internal", "nginx-public"],
    // The default, and what its docs suggest for more instances (`k8s.io/internal-ingress-nginx`).
    controllers: &["k8s.io/ingress-nginx", "k8s.io/ingress-nginx-*", "k8s.io/*-ingress-nginx"],
    auth: &[
        &[Require::Set("nginx.ingress.kubernetes.io/auth-url")],
        &[
            Require::OneOf("nginx.ingress.kubernetes.io/auth-type", &["basic", "digest"]),
            Require::Set("nginx.ingress.kubernetes.io/auth-secret"),
        ],
        &[
            Require::Set("nginx.ingress.kubernetes.io/auth-tls-secret"),
            Require::AbsentOrOneOf("nginx.ingress.kubernetes.io/auth-tls-verify-client", &["on"]),
        ],
    ],
    auth_fix: "set nginx.ingress.kubernetes.io/auth-url, auth-type+auth-secret or auth-tls-secret",
    allow_list: AllowList::Cidrs(&[
        "nginx.ingress.kubernetes.io/whitelist-source-range",
        "nginx.ingress.kubernetes.io/allowlist-source-range",
    ]),
    certificate_annotations: &[],
    plain_http: &[PlainHttp::RedirectOff("nginx.ingress.kubernetes.io/ssl-redirect")],
};

const TRAEFIK: Dialect = Dialect {
    family: Family::Traefik,
    name: "traefik",
    classes: &["traefik"],
    controllers: &["traefik.io/ingress-controller"],
    auth: &[&[Require::ApprovedMiddleware(TRAEFIK_MIDDLEWARES)]],
    auth_fix: "add an approved auth middleware to traefik.ingress.kubernetes.io/router.middlewares",
    allow_list: AllowList::Middleware(TRAEFIK_MIDDLEWARES),
    certificate_annotations: &[],
    plain_http: &[PlainHttp::EntryPoints {
        key: "traefik.ingress.kubernetes.io/router.entrypoints",
        plain: "web",
        secure: "websecure",
    }],
};

const HAPROXY: Dialect = Dialect {
    family: Family::Haproxy,
    name: "haproxy",
    classes: &["haproxy"],
    // HAProxy Technologies' controller; `/<class>` when it runs with --ingress.class.
    controllers: &["haproxy.org/ingress-controller", "haproxy.org/ingress-controller/*"],
    auth: &[&[Require::OneOf("haproxy.org/auth-type", &["basic-auth"]), Require::Set("haproxy.org/auth-secret")]],
    auth_fix: "set haproxy.org/auth-type: basic-auth with haproxy.org/auth-secret",
    allow_list: AllowList::Cidrs(&["haproxy.org/allow-list", "haproxy.org/whitelist"]),
    certificate_annotations: &[],
    plain_http: &[PlainHttp::RedirectOff("haproxy.org/ssl-redirect")],
};

const ALB: Dialect = Dialect {
    family: Family::Alb,
    name: "alb",
    classes: &["alb"],
    controllers: &["ingress.k8s.aws/alb"],
    auth: &[&[Require::OneOf("alb.ingress.kubernetes.io/auth-type", &["oidc", "cognito"])]],
    auth_fix: "set alb.ingress.kubernetes.io/auth-type: oidc or cognito and its auth-idp",
    allow_list: AllowList::Cidrs(&["alb.ingress.kubernetes.io/inbound-cidrs"]),
    certificate_annotations: &["alb.ingress.kubernetes.io/certificate-arn"],
    plain_http: &[PlainHttp::HttpListener {
        key: "alb.ingress.kubernetes.io/listen-ports",
        redirect: "alb.ingress.kubernetes.io/ssl-redirect",
        redirect_to: "443",
    }],
};

/// The advice for a controller without an authentication annotation.
const NO_AUTH_ANNOTATION: &str = "it has no auth annotation, so authenticate in front of the backend";

/// `kubernetes.io/ingress.allow-http: "true"` serves plain HTTP on gce and contour.
const ALLOW_HTTP: PlainHttp = PlainHttp::AllowHttp("kubernetes.io/ingress.allow-http");

const GCE: Dialect = Dialect {
    family: Family::Gce,
    name: "gce",
    classes: &["gce", "gce-internal"],
    controllers: &["k8s.io/ingress-gce"],
    auth: &[],
    auth_fix: NO_AUTH_ANNOTATION,
    allow_list: AllowList::None,
    certificate_annotations: &["ingress.gcp.kubernetes.io/pre-shared-cert", "networking.gke.io/managed-certificates"],
    plain_http: &[ALLOW_HTTP],
};

const CONTOUR: Dialect = Dialect {
    family: Family::Contour,
    name: "contour",
    classes: &["contour"],
    controllers: &["projectcontour.io/*"],
    auth: &[],
    auth_fix: NO_AUTH_ANNOTATION,
    allow_list: AllowList::None,
    certificate_annotations: &[],
    plain_http: &[ALLOW_HTTP],
};

/// The F5 NGINX Ingress Controller. Its default class is also called `nginx`,
/// which the class table gives to ingress-nginx: with a cluster its
/// IngressClass's `spec.controller` tells them apart; without one, map the
/// class in an `IngressControllers` document. `nginx.com/*` annotations work
/// with NGINX Plus only.
const F5_NGINX: Dialect = Dialect {
    family: Family::F5Nginx,
    name: "f5-nginx",
    classes: &["nginx-plus"],
    controllers: &["nginx.org/ingress-controller"],
    auth: &[&[Require::Set("nginx.org/basic-auth-secret")], &[Require::Set("nginx.com/jwt-key")]],
    auth_fix: "set nginx.org/basic-auth-secret (or nginx.com/jwt-key with NGINX Plus)",
    // Access control is a Policy resource of its VirtualServer, not an Ingress annotation.
    allow_list: AllowList::None,
    certificate_annotations: &[],
    // Redirects HTTP to HTTPS for hosts with TLS unless this is false.
    plain_http: &[PlainHttp::RedirectOff("ingress.kubernetes.io/ssl-redirect")],
};

/// Maps ingress class names to controller families.
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerMap {
    /// The built-in names and the configured ones.
    classes: BTreeMap<String, Family>,
    /// The names an `IngressControllers` document maps: these alone may name
    /// the family of a class whose IngressClass has a controller no dialect knows.
    configured: BTreeMap<String, Family>,
    /// The family of an Ingress that names no class (the cluster's default class).
    default: Option<Family>,
}

impl Default for ControllerMap {
    /// The class names each controller uses out of the box ([`Dialect::classes`]).
    fn default() -> Self {
        let classes = Family::ALL
            .iter()
            .flat_map(|family| family.dialect().classes.iter().map(|class| ((*class).to_owned(), *family)))
            .collect();
        ControllerMap { classes, configured: BTreeMap::new(), default: None }
    }
}

impl ControllerMap {
    /// The built-in table, extended (and overridden) by `classes`.
    pub fn with(classes: BTreeMap<String, Family>, default: Option<Family>) -> Self {
        let mut map = ControllerMap::default();
        map.classes.extend(classes.clone());
        map.configured = classes;
        map.default = default;
        map
    }

    /// The class an Ingress names, if any.
    pub fn class_of(ingress: &Ingress) -> Option<&str> {
        ingress
            .spec
            .as_ref()
            .and_then(|spec| spec.ingress_class_name.as_deref())
            .or_else(|| annotation(&ingress.metadata, CLASS_ANNOTATION))
            .filter(|class| !class.is_empty())
    }

    /// The controller family serving an Ingress by the class table alone
    /// (without a cluster); `None` when unknown.
    pub fn family_of(&self, ingress: &Ingress) -> Option<Family> {
        self.resolve(ingress, IngressClasses::NONE)
    }

    /// The controller family serving an Ingress; `None` when unknown. When the
    /// cluster has an IngressClass of that name, its `spec.controller` decides
    /// if a dialect knows it, else only a configured entry of the table may (a
    /// built-in name guesses: class `haproxy` of jcmoraisjr's HAProxy Ingress
    /// does not read haproxytech's annotations). A class the cluster does not
    /// have (or without a cluster) is looked up in the whole table. An Ingress
    /// that names no class gets the table's `default`.
    pub fn resolve(&self, ingress: &Ingress, cluster: IngressClasses<'_>) -> Option<Family> {
        let Some(class) = Self::class_of(ingress) else {
            return self.default;
        };
        match cluster.controller(class) {
            Some(controller) => Family::of_controller(controller).or_else(|| self.configured.get(class).copied()),
            None => self.classes.get(class).copied(),
        }
    }

    pub fn classes(&self) -> &BTreeMap<String, Family> {
        &self.classes
    }

    pub fn default_family(&self) -> Option<Family> {
        self.default
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::IngressSpec;

    fn ingress(class: Option<&str>, annotation: Option<&str>) -> Ingress {
        let mut ingress = Ingress {
            spec: Some(IngressSpec { ingress_class_name: class.map(str::to_owned), ..Default::default() }),
            ..Default::default()
        };
        if let Some(value) = annotation {
            ingress.metadata.annotations = Some([(CLASS_ANNOTATION.to_owned(), value.to_owned())].into());
        }
        ingress
    }

    #[test]
    fn class_name_wins_over_the_legacy_annotation() {
        let map = ControllerMap::default();
        assert_eq!(map.family_of(&ingress(Some("traefik"), Some("nginx"))), Some(Family::Traefik));
        assert_eq!(map.family_of(&ingress(None, Some("gce"))), Some(Family::Gce));
    }

    #[test]
    fn unknown_and_missing_classes() {
        let map = ControllerMap::default();
        assert_eq!(map.family_of(&ingress(Some("my-own"), None)), None);
        assert_eq!(map.family_of(&ingress(None, None)), None);
        let map = ControllerMap::with([("my-own".to_owned(), Family::Haproxy)].into(), Some(Family::Nginx));
        assert_eq!(map.family_of(&ingress(Some("my-own"), None)), Some(Family::Haproxy));
        assert_eq!(map.family_of(&ingress(None, None)), Some(Family::Nginx));
        assert_eq!(map.family_of(&ingress(Some("nginx"), None)), Some(Family::Nginx));
    }

    fn class_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(class, controller)| (class.to_string(), controller.to_string())).collect()
    }

    #[test]
    fn the_clusters_ingress_class_names_the_controller() {
        let map = ControllerMap::default();
        let classes = class_map(&[
            ("nginx", "nginx.org/ingress-controller"),
            ("edge", "k8s.io/internal-ingress-nginx"),
            ("lb", "haproxy.org/ingress-controller/lb"),
            ("traefik", "example.com/own-controller"),
        ]);
        let cluster = IngressClasses::new(&classes);
        // F5 NGINX's default class is called nginx too: the cluster tells them apart.
        assert_eq!(map.resolve(&ingress(Some("nginx"), None), cluster), Some(Family::F5Nginx));
        assert_eq!(map.family_of(&ingress(Some("nginx"), None)), Some(Family::Nginx));
        assert_eq!(map.resolve(&ingress(None, Some("edge")), cluster), Some(Family::Nginx));
        assert_eq!(map.resolve(&ingress(Some("lb"), None), cluster), Some(Family::Haproxy));
        // A class the cluster lacks (GKE has no IngressClass for gce): the whole table decides.
        assert_eq!(map.resolve(&ingress(Some("alb"), None), cluster), Some(Family::Alb));
        assert_eq!(map.resolve(&ingress(Some("edge"), None), IngressClasses::NONE), None);
        // A controller no dialect knows: a built-in name is only a guess, so unknown...
        assert_eq!(map.family_of(&ingress(Some("traefik"), None)), Some(Family::Traefik));
        assert_eq!(map.resolve(&ingress(Some("traefik"), None), cluster), None);
        let other = class_map(&[("haproxy", "haproxy-ingress.github.io/controller")]);
        assert_eq!(map.resolve(&ingress(Some("haproxy"), None), IngressClasses::new(&other)), None);
        // ...unless the policies map the class.
        let mapped = ControllerMap::with(
            [("edge".to_owned(), Family::Contour), ("traefik".to_owned(), Family::Traefik)].into(),
            Some(Family::Gce),
        );
        assert_eq!(mapped.resolve(&ingress(Some("traefik"), None), cluster), Some(Family::Traefik));
        assert_eq!(mapped.resolve(&ingress(Some("edge"), None), cluster), Some(Family::Nginx), "the cluster wins");
        assert_eq!(mapped.resolve(&ingress(Some("edge"), None), IngressClasses::NONE), Some(Family::Contour));
        assert_eq!(mapped.resolve(&ingress(None, None), cluster), Some(Family::Gce));
        assert_eq!(mapped.resolve(&ingress(None, None), IngressClasses::NONE), Some(Family::Gce));
    }

    #[test]
    fn controller_names_of_every_family() {
        let known = [
            ("k8s.io/ingress-nginx", Family::Nginx),
            ("k8s.io/ingress-nginx-internal", Family::Nginx),
            ("k8s.io/internal-ingress-nginx", Family::Nginx),
            ("nginx.org/ingress-controller", Family::F5Nginx),
            ("traefik.io/ingress-controller", Family::Traefik),
            ("haproxy.org/ingress-controller", Family::Haproxy),
            ("haproxy.org/ingress-controller/prod", Family::Haproxy),
            ("ingress.k8s.aws/alb", Family::Alb),
            ("k8s.io/ingress-gce", Family::Gce),
            ("projectcontour.io/ingress-controller", Family::Contour),
        ];
        for (controller, family) in known {
            assert_eq!(Family::of_controller(controller), Some(family), "{controller}");
        }
        // jcmoraisjr's HAProxy Ingress reads other annotations than haproxytech's.
        for unknown in ["haproxy-ingress.github.io/controller", "k8s.io/ingress-nginxx", "nginx.org/other", "", "*"] {
            assert_eq!(Family::of_controller(unknown), None, "{unknown}");
        }
    }

    /// The family names serde accepts, read from its error for an unknown one:
    /// every variant, including one missing from `Family::ALL`.
    fn serde_names() -> Vec<String> {
        let error = serde_json::from_str::<Family>("\"?\"").unwrap_err().to_string();
        let (_, expected) = error.split_once("expected one of").expect(&error);
        expected.split('`').skip(1).step_by(2).map(str::to_owned).collect()
    }

    fn key_of(requirement: &Require) -> &'static str {
        requirement.key()
    }

    /// A qualified annotation key, `prefix/name`.
    fn is_key(key: &str) -> bool {
        key.split_once('/').is_some_and(|(prefix, name)| prefix.contains('.') && !name.is_empty())
    }

    /// The longest `auth_fix`: with the rest of an `ingressAuth` line it must
    /// leave room for the policy and object names within 256 characters.
    const AUTH_FIX_BUDGET: usize = 90;

    #[test]
    fn dialects_are_complete() {
        let names: Vec<&str> = Family::ALL.iter().map(|family| family.as_str()).collect();
        assert_eq!(serde_names(), names, "Family::ALL must list every Family, in declaration order");

        let mut classes = BTreeMap::new();
        for family in Family::ALL {
            let dialect = family.dialect();
            let name = dialect.name;
            assert_eq!(dialect.family, family, "{name}: the dialect of {family:?} names another family");

            assert!(!dialect.classes.is_empty(), "{name}: name the class names it uses out of the box");
            for class in dialect.classes {
                assert_eq!(classes.insert(*class, family), None, "{name}: class {class} belongs to two families");
            }

            for method in dialect.auth {
                assert!(!method.is_empty(), "{name}: an authentication method without requirements");
                for requirement in *method {
                    let key = key_of(requirement);
                    assert!(is_key(key), "{name}: {key:?} is not an annotation key");
                    if let Require::OneOf(_, values) | Require::AbsentOrOneOf(_, values) = requirement {
                        assert!(!values.is_empty(), "{name}: {key} accepts no value");
                    }
                }
            }
            let anything = Globs::new(&["*"]).unwrap();
            assert!(
                !dialect.authenticated(&ObjectMeta::default(), &anything),
                "{name}: an Ingress without annotations counts as authenticated"
            );
            assert!(dialect.auth_fix.len() <= AUTH_FIX_BUDGET, "{name}: auth_fix is too long for a warning line");
            match dialect.auth.first().and_then(|method| method.first()).map(key_of) {
                None => assert_eq!(dialect.auth_fix, NO_AUTH_ANNOTATION, "{name}: no method, so say it has none"),
                Some(key) => assert!(dialect.auth_fix.contains(key), "{name}: auth_fix should name {key}"),
            }

            match dialect.allow_list {
                AllowList::Cidrs(keys) => {
                    assert!(!keys.is_empty(), "{name}: list the allow-list annotations, or say AllowList::None");
                    assert!(keys.iter().all(|key| is_key(key)), "{name}: {keys:?}");
                }
                AllowList::Middleware(key) => assert!(is_key(key), "{name}: {key:?}"),
                AllowList::None => {}
            }

            assert!(!dialect.controllers.is_empty(), "{name}: name the spec.controller of its IngressClasses");
            for pattern in dialect.controllers {
                let (domain, path) = pattern.split_once('/').unwrap_or_default();
                assert!(domain.contains('.') && !path.is_empty(), "{name}: {pattern:?} is not a controller name");
                assert!(pattern.matches('*').count() <= 1, "{name}: {pattern:?}: one * at most");
                // An instance of the pattern means this family, not an earlier one.
                let instance = pattern.replace('*', "x");
                assert_eq!(Family::of_controller(&instance), Some(family), "{name}: {instance} is claimed twice");
            }

            let certificates = dialect.certificate_annotations;
            assert!(certificates.iter().all(|key| is_key(key)), "{name}: {certificates:?}");

            assert!(!dialect.plain_http.is_empty(), "{name}: name the annotations that re-enable plain HTTP");
            for switch in dialect.plain_http {
                let complete = match switch {
                    PlainHttp::RedirectOff(key) | PlainHttp::AllowHttp(key) => is_key(key),
                    PlainHttp::EntryPoints { key, plain, secure } => {
                        is_key(key) && !plain.is_empty() && !secure.is_empty() && plain != secure
                    }
                    PlainHttp::HttpListener { key, redirect, redirect_to } => {
                        is_key(key) && is_key(redirect) && !redirect_to.is_empty()
                    }
                };
                assert!(complete, "{name}: {switch:?}");
            }
        }
    }

    #[test]
    fn built_in_classes_come_from_the_dialects() {
        let map = ControllerMap::default();
        for family in Family::ALL {
            for class in family.dialect().classes {
                assert_eq!(map.classes().get(*class), Some(&family), "{class}");
            }
        }
        let total: usize = Family::ALL.iter().map(|family| family.dialect().classes.len()).sum();
        assert_eq!(map.classes().len(), total);
    }
}
