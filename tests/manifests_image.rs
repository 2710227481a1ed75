//! The image: the Dockerfile's defaults (user, ports, paths, arguments) are the
//! ones the Deployment runs.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use common::manifests::{base, container, container_args, pod_spec, serve_args};
use common::repo;

#[test]
fn dockerfile_defaults_match_the_deployment() {
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let instructions: Vec<&str> =
        dockerfile.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).collect();
    let with = |keyword: &str| -> Vec<&str> {
        instructions.iter().filter_map(|line| line.strip_prefix(keyword)?.strip_prefix(' ')).collect()
    };
    assert_eq!(with("FROM"), vec!["rust:1.95-bookworm AS builder", "gcr.io/distroless/cc-debian12:nonroot"]);
    assert!(with("RUN").iter().any(|run| run.starts_with("cargo build --release --locked")));
    assert_eq!(with("USER"), vec!["65532:65532"]);
    assert_eq!(with("EXPOSE"), vec!["8443 9090"]);
    assert_eq!(
        with("COPY")[with("COPY").len() - 2..],
        [
            "--from=builder /src/target/release/portcullis /usr/local/bin/portcullis",
            "policies/ /etc/portcullis/policies/"
        ]
    );
    let entrypoint: Vec<String> = serde_json::from_str(with("ENTRYPOINT")[0]).unwrap();
    assert_eq!(entrypoint, vec!["/usr/local/bin/portcullis"]);
    let cmd: Vec<String> = serde_json::from_str(with("CMD")[0]).unwrap();
    let defaults = serve_args(&cmd);
    assert_eq!(defaults.tls_cert, Path::new("/etc/portcullis/tls/tls.crt"));
    assert_eq!(defaults.tls_key, Path::new("/etc/portcullis/tls/tls.key"));
    assert_eq!(defaults.policies, Path::new("/etc/portcullis/policies"));

    let dockerignore = std::fs::read_to_string(repo(".dockerignore")).unwrap();
    let ignored: BTreeSet<&str> = dockerignore.lines().collect();
    assert!(["target/", ".dev-certs/", ".git/"].iter().all(|path| ignored.contains(path)));

    // The Deployment runs the same user, ports and paths.
    let manifests = base();
    let args = container_args(&manifests);
    assert_eq!(
        (args.listen, args.admin_listen, args.tls_cert, args.tls_key, args.policies),
        (defaults.listen, defaults.admin_listen, defaults.tls_cert, defaults.tls_key, defaults.policies)
    );
    let ports: Vec<String> =
        container(&manifests).ports.unwrap().iter().map(|p| p.container_port.to_string()).collect();
    assert_eq!(ports.join(" "), with("EXPOSE")[0]);
    let user = pod_spec(&manifests).security_context.unwrap();
    assert_eq!(format!("{}:{}", user.run_as_user.unwrap(), user.run_as_group.unwrap()), with("USER")[0]);
}
