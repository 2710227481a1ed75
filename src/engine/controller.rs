//! Which ingress controller serves an Ingress: read from `spec.ingressClassName`
//! or the legacy `kubernetes.io/ingress.class` annotation, and mapped to a
//! controller family through a configurable class → family table.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;

use super::object::annotation;

/// The legacy annotation that names the ingress class.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

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
}

impl Family {
    pub const ALL: [Family; 6] =
        [Family::Nginx, Family::Traefik, Family::Haproxy, Family::Alb, Family::Gce, Family::Contour];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Nginx => "nginx",
            Family::Traefik => "traefik",
            Family::Haproxy => "haproxy",
            Family::Alb => "alb",
            Family::Gce => "gce",
            Family::Contour => "contour",
        }
    }
}

/// Maps ingress class names to controller families.
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerMap {
    classes: BTreeMap<String, Family>,
    /// The family of an Ingress that names no class (the cluster's default class).
    default: Option<Family>,
}

impl Default for ControllerMap {
    /// The class names each controller uses out of the box.
    fn default() -> Self {
        let classes = [
            ("nginx", Family::Nginx),
            ("ingress-nginx", Family::Nginx),
            ("nginx-internal", Family::Nginx),
            ("nginx-public", Family::Nginx),
            ("traefik", Family::Traefik),
            ("haproxy", Family::Haproxy),
            ("alb", Family::Alb),
            ("gce", Family::Gce),
            ("gce-internal", Family::Gce),
            ("contour", Family::Contour),
        ];
        ControllerMap {
            classes: classes.into_iter().map(|(class, family)| (class.to_owned(), family)).collect(),
            default: None,
        }
    }
}

impl ControllerMap {
    /// The built-in table, extended (and overridden) by `classes`.
    pub fn with(classes: BTreeMap<String, Family>, default: Option<Family>) -> Self {
        let mut map = ControllerMap::default();
        map.classes.extend(classes);
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

    /// The controller family serving an Ingress; `None` when unknown.
    pub fn family_of(&self, ingress: &Ingress) -> Option<Family> {
        match Self::class_of(ingress) {
            Some(class) => self.classes.get(class).copied(),
            None => self.default,
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
}
