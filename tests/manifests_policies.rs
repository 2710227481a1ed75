//! The policies ConfigMap: `policies/kustomization.yaml` lists every policy file,
//! and the rendered ConfigMap holds them byte for byte and loads like `policies/`.

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::manifests::{NAMESPACE, base};
use common::repo;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

/// The `*.yaml` / `*.yml` files of `policies/` other than the kustomization.
fn policy_file_names() -> BTreeSet<String> {
    std::fs::read_dir(repo("policies"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.starts_with("kustomization."))
        .collect()
}

#[test]
fn policies_kustomization_lists_every_policy_file() {
    let text = std::fs::read_to_string(repo("policies/kustomization.yaml")).unwrap();
    let kustomization: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(kustomization["apiVersion"], "kustomize.config.k8s.io/v1beta1");
    assert_eq!(kustomization["kind"], "Kustomization");
    assert_eq!(kustomization["namespace"], NAMESPACE);
    let generators = kustomization["configMapGenerator"].as_array().unwrap();
    assert_eq!(generators.len(), 1);
    let generator = &generators[0];
    assert_eq!(generator["name"], "portcullis-policies");
    // A stable name: the kubelet updates the mounted files in place and
    // portcullis reloads them; a hashed name would need a new rollout instead.
    assert_eq!(generator["options"]["disableNameSuffixHash"], json!(true));
    let listed: Vec<String> =
        generator["files"].as_array().unwrap().iter().map(|file| file.as_str().unwrap().to_owned()).collect();
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), listed_set.len(), "a file listed twice");
    assert_eq!(listed_set, policy_file_names(), "policies/kustomization.yaml must list every policy file");
    // The same files the loader reads (it skips kustomization.yaml).
    let loaded: BTreeSet<String> = portcullis::policy::policy_files(&repo("policies"))
        .unwrap()
        .iter()
        .map(|path| path.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed_set, loaded);
}

#[test]
fn policies_configmap_holds_every_policy_file() {
    let manifests = base();
    let config_map: ConfigMap = manifests.get("ConfigMap", "portcullis-policies");
    assert_eq!(config_map.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(config_map.binary_data, None);
    let data = config_map.data.unwrap();
    assert_eq!(data.keys().cloned().collect::<BTreeSet<_>>(), policy_file_names());
    let mut sources = Vec::new();
    for (name, text) in &data {
        let file = std::fs::read_to_string(repo("policies").join(name)).unwrap();
        assert_eq!(text, &file, "ConfigMap key {name} differs from policies/{name}");
        sources.push((PathBuf::from("/etc/portcullis/policies").join(name), text.clone()));
    }
    let from_config_map = portcullis::policy::load_sources(&sources).expect("the ConfigMap's policies load");
    let from_dir = portcullis::policy::load_dir(&repo("policies")).unwrap();
    assert_eq!(from_config_map.len(), from_dir.len());
    assert_eq!(portcullis::policy::describe(&from_config_map), portcullis::policy::describe(&from_dir));
}
