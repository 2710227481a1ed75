//! The bundled policies (`policies/*.yaml`), built into the binary, and where
//! `check`, `test` and `policies` take their policy set from: the directory
//! named by `--policies` (or `PORTCULLIS_POLICIES`), else `./policies` when it
//! is a directory, else the bundled set, so that `portcullis check` works
//! outside a checkout of this repository.
//!
//! [`FILES`] is the one list of the bundled files: the fuzzers load it too, and
//! a test keeps it equal to the directory and to `policies/kustomization.yaml`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::errors::LoadError;
use crate::engine::PolicySet;

/// Every bundled policy file, by name, in load order (the order of
/// [`super::policy_files`]: by name).
pub const FILES: &[(&str, &str)] = &[
    ("environments.yaml", include_str!("../../policies/environments.yaml")),
    ("grpc-backend-protocol.yaml", include_str!("../../policies/grpc-backend-protocol.yaml")),
    ("https-redirect.yaml", include_str!("../../policies/https-redirect.yaml")),
    ("ingress-controllers.yaml", include_str!("../../policies/ingress-controllers.yaml")),
    ("ingress-source-allow-list.yaml", include_str!("../../policies/ingress-source-allow-list.yaml")),
    ("no-configuration-snippets.yaml", include_str!("../../policies/no-configuration-snippets.yaml")),
    ("no-external-ips.yaml", include_str!("../../policies/no-external-ips.yaml")),
    ("no-nodeport-in-production.yaml", include_str!("../../policies/no-nodeport-in-production.yaml")),
    ("prefer-grpc-routes.yaml", include_str!("../../policies/prefer-grpc-routes.yaml")),
    ("require-gateway-auth.yaml", include_str!("../../policies/require-gateway-auth.yaml")),
    ("require-gateway-tls.yaml", include_str!("../../policies/require-gateway-tls.yaml")),
    ("require-ingress-auth.yaml", include_str!("../../policies/require-ingress-auth.yaml")),
    ("require-ingress-tls.yaml", include_str!("../../policies/require-ingress-tls.yaml")),
    ("require-route-tls.yaml", include_str!("../../policies/require-route-tls.yaml")),
    ("restrict-external-names.yaml", include_str!("../../policies/restrict-external-names.yaml")),
    ("restrict-gateway-allowed-routes.yaml", include_str!("../../policies/restrict-gateway-allowed-routes.yaml")),
    (
        "restrict-loadbalancer-source-ranges.yaml",
        include_str!("../../policies/restrict-loadbalancer-source-ranges.yaml"),
    ),
    ("restrict-reference-grants.yaml", include_str!("../../policies/restrict-reference-grants.yaml")),
    ("restrict-route-hostnames.yaml", include_str!("../../policies/restrict-route-hostnames.yaml")),
    ("safe-annotation-values.yaml", include_str!("../../policies/safe-annotation-values.yaml")),
    ("safe-ingress-paths.yaml", include_str!("../../policies/safe-ingress-paths.yaml")),
    ("warn-gateway-allowed-routes.yaml", include_str!("../../policies/warn-gateway-allowed-routes.yaml")),
    ("warn-gateway-auth.yaml", include_str!("../../policies/warn-gateway-auth.yaml")),
    ("warn-ingress-auth.yaml", include_str!("../../policies/warn-ingress-auth.yaml")),
    ("warn-loadbalancer-in-production.yaml", include_str!("../../policies/warn-loadbalancer-in-production.yaml")),
    ("warn-wildcard-hosts.yaml", include_str!("../../policies/warn-wildcard-hosts.yaml")),
    ("websocket-timeouts.yaml", include_str!("../../policies/websocket-timeouts.yaml")),
];

/// The directory used when none is named and it exists.
pub const DEFAULT_DIR: &str = "policies";

/// The bundled files as `(file name, text)` pairs for [`super::load_sources`].
pub fn sources() -> Vec<(PathBuf, String)> {
    FILES.iter().map(|(name, text)| (PathBuf::from(name), (*text).to_owned())).collect()
}

/// The bundled policy set (a test makes sure it loads).
pub fn load() -> PolicySet {
    super::load_sources(&sources()).expect("the bundled policies load")
}

/// Where a policy set comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicySource {
    Dir(PathBuf),
    /// [`FILES`], built into the binary.
    Bundled,
}

impl PolicySource {
    /// The set to use: the directory `named` by `flag` (`--policies`, or
    /// `PORTCULLIS_POLICIES` when the variable set it), which must exist; with
    /// none named, `./policies` when it is a directory, else the bundled set.
    pub fn resolve(named: Option<&Path>, flag: &str) -> Result<PolicySource, LoadError> {
        match named {
            Some(dir) => match std::fs::metadata(dir) {
                Ok(metadata) if metadata.is_dir() => Ok(PolicySource::Dir(dir.to_owned())),
                Ok(_) => Err(LoadError::NotADirectory { flag: flag.to_owned(), dir: dir.to_owned(), missing: false }),
                Err(_) => Err(LoadError::NotADirectory { flag: flag.to_owned(), dir: dir.to_owned(), missing: true }),
            },
            None if Path::new(DEFAULT_DIR).is_dir() => Ok(PolicySource::Dir(PathBuf::from(DEFAULT_DIR))),
            None => Ok(PolicySource::Bundled),
        }
    }

    /// Loads and validates the set.
    pub fn load(&self) -> Result<PolicySet, LoadError> {
        match self {
            PolicySource::Dir(dir) => super::load_dir(dir),
            PolicySource::Bundled => super::load_sources(&sources()),
        }
    }
}

/// As reports name it: `bundled (built in)`, or the directory (`./policies`
/// for a relative path written without `./`).
impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::Bundled => f.write_str("bundled (built in)"),
            PolicySource::Dir(dir) if dir.is_relative() && !dir.starts_with(".") && !dir.starts_with("..") => {
                write!(f, "./{}", dir.display())
            }
            PolicySource::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    fn names(files: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut names: Vec<String> = files.into_iter().collect();
        names.sort();
        names
    }

    #[test]
    fn every_policy_file_is_bundled_and_in_the_kustomization() {
        let on_disk = names(
            super::super::policy_files(&repo("policies"))
                .unwrap()
                .iter()
                .map(|path| path.file_name().unwrap().to_str().unwrap().to_owned()),
        );
        let bundled: Vec<String> = FILES.iter().map(|(name, _)| (*name).to_owned()).collect();
        assert_eq!(bundled, on_disk, "add new policy files to policy::bundled::FILES, in name order");
        let kustomization: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(repo("policies/kustomization.yaml")).unwrap()).unwrap();
        let listed = names(
            kustomization["configMapGenerator"][0]["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|file| file.as_str().unwrap().to_owned()),
        );
        assert_eq!(listed, on_disk, "list every policy file in policies/kustomization.yaml");
        for (name, text) in FILES {
            assert_eq!(*text, std::fs::read_to_string(repo("policies").join(name)).unwrap(), "{name}");
        }
    }

    #[test]
    fn the_bundled_set_is_the_directory_set() {
        let bundled = load();
        let dir = super::super::load_dir(&repo("policies")).unwrap();
        let names = |set: &PolicySet| set.policies().iter().map(|p| p.name().to_owned()).collect::<Vec<_>>();
        assert_eq!(names(&bundled), names(&dir));
        assert_eq!(bundled.environments().len(), dir.environments().len());
    }

    #[test]
    fn a_named_directory_must_exist_and_is_named_by_its_flag() {
        let missing = PolicySource::resolve(Some(Path::new("no/such/dir")), "--policies").unwrap_err();
        assert_eq!(missing.to_string(), "--policies no/such/dir: no such directory");
        let file = repo("Cargo.toml");
        let not_dir = PolicySource::resolve(Some(&file), "PORTCULLIS_POLICIES").unwrap_err();
        assert_eq!(not_dir.to_string(), format!("PORTCULLIS_POLICIES {}: not a directory", file.display()));
        let dir = PolicySource::resolve(Some(&repo("policies")), "--policies").unwrap();
        assert_eq!(dir, PolicySource::Dir(repo("policies")));
    }

    #[test]
    fn reports_name_the_set() {
        assert_eq!(PolicySource::Bundled.to_string(), "bundled (built in)");
        assert_eq!(PolicySource::Dir("policies".into()).to_string(), "./policies");
        assert_eq!(PolicySource::Dir("./policies".into()).to_string(), "./policies");
        assert_eq!(PolicySource::Dir("../p".into()).to_string(), "../p");
        assert_eq!(PolicySource::Dir("/etc/portcullis/policies".into()).to_string(), "/etc/portcullis/policies");
    }
}
