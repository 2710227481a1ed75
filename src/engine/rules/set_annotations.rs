//! `setAnnotations` (mutating): adds annotations that are absent, when the
//! object meets every condition of an entry: the ingress controller family,
//! TLS present, every backend port named like `grpc`/`grpc-*`, or opt-in
//! annotations. A value the user set is never overwritten, so a second pass over
//! the patched object adds nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use serde::Deserialize;

use super::Subject;
use crate::engine::controller::Family;
use crate::engine::glob::Globs;
use crate::engine::object::Object;
use crate::engine::patch::PatchBuilder;

#[derive(Debug, Deserialize)]
#[serde(try_from = "Vec<Entry>")]
pub struct SetAnnotations(Vec<Entry>);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    when: When,
    /// Annotations to add when absent.
    add: BTreeMap<String, String>,
}

/// Conditions; all that are given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct When {
    /// The Ingress's controller family is one of these.
    #[serde(default)]
    controllers: Vec<Family>,
    /// The Ingress has (true) or lacks (false) a `spec.tls` entry with hosts.
    #[serde(default)]
    tls: Option<bool>,
    /// Every backend of the Ingress refers to its Service port by a name
    /// matching one of these globs.
    #[serde(default)]
    backend_port_names: Globs,
    /// The object carries these annotations with these exact values (opt-in).
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl TryFrom<Vec<Entry>> for SetAnnotations {
    type Error = String;
    fn try_from(entries: Vec<Entry>) -> Result<Self, String> {
        if entries.is_empty() {
            return Err("setAnnotations: list at least one entry".into());
        }
        if let Some(entry) = entries.iter().find(|entry| entry.add.is_empty()) {
            return Err(format!("setAnnotations: an entry adds nothing (when: {:?})", entry.when));
        }
        Ok(SetAnnotations(entries))
    }
}

fn backends(ingress: &Ingress) -> impl Iterator<Item = &IngressBackend> {
    let spec = ingress.spec.as_ref();
    spec.and_then(|spec| spec.default_backend.as_ref()).into_iter().chain(
        spec.and_then(|spec| spec.rules.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|rule| rule.http.as_ref())
            .flat_map(|http| http.paths.iter().map(|path| &path.backend)),
    )
}

impl When {
    fn holds(&self, subject: &Subject<'_>) -> bool {
        let Some(metadata) = subject.object.metadata() else {
            return false;
        };
        let ingress = match subject.object {
            Object::Ingress(ingress) => Some(ingress.as_ref()),
            _ => None,
        };
        let annotations_hold = self
            .annotations
            .iter()
            .all(|(key, value)| metadata.annotations.as_ref().and_then(|map| map.get(key)) == Some(value));
        let controller_holds =
            self.controllers.is_empty() || subject.controller.is_some_and(|family| self.controllers.contains(&family));
        let tls_holds = self.tls.is_none_or(|wanted| {
            let has_tls = ingress
                .and_then(|i| i.spec.as_ref())
                .and_then(|spec| spec.tls.as_ref())
                .is_some_and(|tls| tls.iter().any(|entry| entry.hosts.as_ref().is_some_and(|h| !h.is_empty())));
            has_tls == wanted
        });
        let ports_hold = self.backend_port_names.is_empty()
            || ingress.is_some_and(|ingress| {
                let mut all = backends(ingress).peekable();
                all.peek().is_some()
                    && all.all(|backend| {
                        backend
                            .service
                            .as_ref()
                            .and_then(|service| service.port.as_ref())
                            .and_then(|port| port.name.as_deref())
                            .is_some_and(|name| self.backend_port_names.matches(name))
                    })
            });
        annotations_hold && controller_holds && tls_holds && ports_hold
    }
}

impl SetAnnotations {
    pub fn mutate(&self, subject: &Subject<'_>, patch: &mut PatchBuilder) {
        let Some(metadata) = subject.object.metadata() else {
            return;
        };
        for entry in self.0.iter().filter(|entry| entry.when.holds(subject)) {
            for (key, value) in &entry.add {
                patch.add_annotation(metadata, key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::controller::ControllerMap;
    use crate::engine::rules::testing::*;
    use serde_json::{Value, json};

    fn patch_for(rule: &crate::engine::rules::Rule, object: &Object) -> Value {
        let controller = match object {
            Object::Ingress(ingress) => ControllerMap::default().family_of(ingress),
            _ => None,
        };
        let mut patch = PatchBuilder::default();
        rule.mutate(
            &Subject {
                object,
                controller,
                namespace: "shop",
                gateways: &crate::engine::gateway::view::EMPTY,
                request: None,
            },
            &mut patch,
        );
        serde_json::to_value(patch.build()).unwrap()
    }

    fn redirect() -> crate::engine::rules::Rule {
        rule(json!({"setAnnotations": [
            {"when": {"controllers": ["nginx"], "tls": true},
             "add": {"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}},
            {"when": {"controllers": ["gce", "contour"], "tls": true},
             "add": {"kubernetes.io/ingress.allow-http": "false"}},
        ]}))
    }

    fn tls_ingress(class: &str, annotations: Value) -> Object {
        ingress(json!({"metadata": {"name": "web", "annotations": annotations},
                       "spec": {"ingressClassName": class, "rules": [{"host": "a.example.com"}],
                                "tls": [{"hosts": ["a.example.com"], "secretName": "a"}]}}))
    }

    #[test]
    fn adds_the_redirect_for_the_controller_in_use() {
        assert_eq!(
            patch_for(&redirect(), &tls_ingress("nginx", json!({"x": "y"}))),
            json!([{"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect", "value": "true"}])
        );
        assert_eq!(
            patch_for(&redirect(), &tls_ingress("gce", Value::Null)),
            json!([
                {"op": "add", "path": "/metadata/annotations", "value": {}},
                {"op": "add", "path": "/metadata/annotations/kubernetes.io~1ingress.allow-http", "value": "false"},
            ])
        );
        assert_eq!(patch_for(&redirect(), &tls_ingress("haproxy", json!({}))), json!([]));
        assert_eq!(
            patch_for(
                &redirect(),
                &tls_ingress("nginx", json!({"nginx.ingress.kubernetes.io/force-ssl-redirect": "false"}))
            ),
            json!([]),
            "a user's value is never overwritten"
        );
    }

    #[test]
    fn grpc_only_when_every_backend_port_is_named_grpc() {
        let grpc = rule(json!({"setAnnotations": [
            {"when": {"controllers": ["nginx"], "backendPortNames": ["grpc", "grpc-*"]},
             "add": {"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"}},
        ]}));
        let with_ports = |ports: Value| {
            let paths: Vec<Value> = ports
                .as_array()
                .unwrap()
                .iter()
                .map(|port| json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": port}}}))
                .collect();
            ingress(json!({"metadata": {"name": "api", "annotations": {}},
                           "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com", "http": {"paths": paths}}]}}))
        };
        assert_eq!(
            patch_for(&grpc, &with_ports(json!([{"name": "grpc"}, {"name": "grpc-web"}]))),
            json!([{"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1backend-protocol", "value": "GRPC"}])
        );
        assert_eq!(patch_for(&grpc, &with_ports(json!([{"name": "grpc"}, {"name": "http"}]))), json!([]));
        assert_eq!(patch_for(&grpc, &with_ports(json!([{"name": "grpc"}, {"number": 50051}]))), json!([]));
        assert_eq!(patch_for(&grpc, &with_ports(json!([]))), json!([]));
    }

    #[test]
    fn websocket_timeouts_are_opt_in() {
        let ws = rule(json!({"setAnnotations": [
            {"when": {"controllers": ["nginx"], "annotations": {"portcullis.dev/websocket": "true"}},
             "add": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
                     "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600"}},
        ]}));
        assert_eq!(patch_for(&ws, &tls_ingress("nginx", json!({}))), json!([]));
        assert_eq!(
            patch_for(
                &ws,
                &tls_ingress(
                    "nginx",
                    json!({"portcullis.dev/websocket": "true",
                                                         "nginx.ingress.kubernetes.io/proxy-send-timeout": "60"})
                )
            ),
            json!([{"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1proxy-read-timeout", "value": "3600"}])
        );
    }

    #[test]
    fn an_entry_that_adds_nothing_is_a_load_error() {
        let err = serde_json::from_value::<crate::engine::rules::Rule>(json!({"setAnnotations": []})).unwrap_err();
        assert_eq!(err.to_string(), "setAnnotations: list at least one entry");
    }
}
