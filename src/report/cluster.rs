//! `report --cluster`: the objects of a live cluster, read-only. Every kind is
//! listed in pages of [`PAGE_SIZE`] (following `continue`), so a large
//! cluster is never asked for everything in one answer. The Gateway API
//! kinds and the authentication policy kinds the `gatewayAuth` policies
//! accept are listed only when discovery says their CRDs are installed, at
//! the version discovery recommends.

use std::path::Path;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::discovery;
use serde_json::Value;

use crate::engine::PolicySet;
use crate::engine::gateway::GROUP;
use crate::engine::input::ClassControllers;

/// How long the whole listing may take by default.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Objects per list call.
pub const PAGE_SIZE: u32 = 500;

/// The Gateway API kinds that make entry points (and what routes attach to).
const GATEWAY_KINDS: [&str; 5] = ["Gateway", "ListenerSet", "HTTPRoute", "GRPCRoute", "TLSRoute"];

/// What was read from the cluster.
pub struct Listed {
    /// The API server's URL, for the report.
    pub url: String,
    /// Every object, with its `apiVersion` and `kind`.
    pub objects: Vec<Value>,
}

/// Lists Namespaces, IngressClasses, Services, Ingresses and, when installed,
/// the Gateway API kinds and the accepted authentication policy kinds.
pub fn list(kubeconfig: Option<&Path>, timeout: Duration, set: &PolicySet) -> Result<Listed, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("--cluster: cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let mut config = crate::cluster::config(kubeconfig).await.map_err(|e| match kubeconfig {
            Some(path) => format!("--cluster: --kubeconfig {}: {e}", path.display()),
            None => format!("--cluster: no cluster configuration (in-cluster, KUBECONFIG or ~/.kube/config): {e}"),
        })?;
        config.default_retry = false;
        let url = config.cluster_url.to_string().trim_end_matches('/').to_owned();
        let client = kube::Client::try_from(config).map_err(|e| format!("--cluster: cannot reach {url}: {e}"))?;
        match tokio::time::timeout(timeout, list_all(client, set)).await {
            Ok(Ok(objects)) => Ok(Listed { url, objects }),
            Ok(Err(error)) => Err(format!("--cluster: cannot list the objects of {url}: {error}")),
            Err(_) => Err(format!("--cluster: {url} did not answer within {}s", timeout.as_secs_f64())),
        }
    })
}

async fn list_all(client: kube::Client, set: &PolicySet) -> Result<Vec<Value>, String> {
    use k8s_openapi::api::core::v1::{Namespace, Service};
    use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
    let mut resources = vec![
        ApiResource::erase::<Namespace>(&()),
        ApiResource::erase::<IngressClass>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<Ingress>(&()),
    ];
    let mut wanted: Vec<(String, String)> =
        GATEWAY_KINDS.iter().map(|kind| (GROUP.to_owned(), (*kind).to_owned())).collect();
    for accepted in set.targeting_policy_kinds() {
        wanted.push((accepted.group.clone().unwrap_or_default(), accepted.kind.clone()));
    }
    let mut groups: Vec<&str> = wanted.iter().map(|(group, _)| group.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    for group in groups {
        match discovery::group(&client, group).await {
            Ok(found) => {
                for (resource, _) in found.recommended_resources() {
                    if wanted.iter().any(|(g, kind)| g == group && *kind == resource.kind) {
                        resources.push(resource);
                    }
                }
            }
            // Not installed: none exist.
            Err(kube::Error::Discovery(kube::error::DiscoveryError::MissingApiGroup(_))) => {
                tracing::info!(group, "API group not served (its CRDs are not installed): none listed");
            }
            Err(error) => return Err(format!("discovery of {group}: {error}")),
        }
    }
    let mut objects = Vec::new();
    for resource in &resources {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
        let listed = pages(&api).await.map_err(|e| format!("{} {}: {e}", resource.kind, resource.api_version))?;
        tracing::debug!(kind = %resource.kind, objects = listed.len(), "listed");
        for object in listed {
            let mut value = serde_json::to_value(&object).map_err(|e| e.to_string())?;
            if let Some(fields) = value.as_object_mut() {
                fields.insert("apiVersion".into(), Value::String(resource.api_version.clone()));
                fields.insert("kind".into(), Value::String(resource.kind.clone()));
                if let Some(metadata) = fields.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.remove("managedFields");
                }
            }
            objects.push(value);
        }
    }
    Ok(objects)
}

/// Every object of a kind, page by page.
async fn pages(api: &Api<DynamicObject>) -> Result<Vec<DynamicObject>, kube::Error> {
    let mut params = ListParams::default().limit(PAGE_SIZE);
    let mut objects = Vec::new();
    loop {
        let page = api.list(&params).await?;
        objects.extend(page.items);
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(objects),
        }
    }
}

/// The IngressClasses among the objects: name to `spec.controller`.
pub fn ingress_classes<'a>(objects: impl IntoIterator<Item = &'a Value>) -> ClassControllers {
    objects
        .into_iter()
        .filter(|object| {
            object.get("kind").and_then(Value::as_str) == Some("IngressClass")
                && object.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with("networking.k8s.io/"))
        })
        .filter_map(|object| {
            let name = object.pointer("/metadata/name")?.as_str()?;
            let controller = object.pointer("/spec/controller")?.as_str()?;
            Some((name.to_owned(), controller.to_owned()))
        })
        .collect()
}
