//! The README's install, followed as written: its commands (exactly these),
//! run in a copy of `manifests/` and `policies/` where they run without a
//! cluster, and rendered where they apply a directory. The first step installs
//! no webhook configuration, the second only them, after `rollout status`; the
//! install without cert-manager edits no tracked file; the emergency removal
//! names the webhook configurations there are; every `manifests/` path the
//! README names exists.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::manifests::{
    CA_FILE, Manifests, NAMESPACE, WEBHOOK_KINDS, base, container, files_under, mutating, render_text_at, repo_copy,
    unwrap_ca_bundles, validating, webhook_kinds_in, webhooks, without_cert_manager_webhooks,
};
use common::repo;

fn readme() -> String {
    std::fs::read_to_string(repo("README.md")).unwrap()
}

/// The first ```sh block after the heading `heading`.
fn sh_block(readme: &str, heading: &str) -> String {
    let section = &readme[readme.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("README: {heading}"))..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + section[start..].find("```\n").expect("the block's end");
    section[start..end].to_owned()
}

/// What one command of a block did when followed.
#[derive(Debug)]
enum Done {
    /// `kubectl apply -k DIR` or `kubectl kustomize DIR`: what DIR renders to.
    Rendered(String, Manifests),
    /// A `kubectl` command that needs a cluster: not run.
    NeedsCluster(String),
    /// Anything else: run, successfully.
    Ran(String),
}

/// Follows `block` in `root`: `cargo run --quiet -- ARGS` runs the portcullis
/// binary with ARGS, a heredoc and other shell commands run in `sh`, `kubectl
/// apply -k` and `kubectl kustomize` render their directory, and the other
/// `kubectl` commands are only listed (they need a cluster).
fn follow(root: &Path, block: &str) -> Vec<Done> {
    let mut done = Vec::new();
    let mut lines = block.lines();
    while let Some(line) = lines.next() {
        let dir = line.strip_prefix("kubectl apply -k ").or_else(|| line.strip_prefix("kubectl kustomize "));
        if let Some(dir) = dir {
            done.push(Done::Rendered(dir.to_owned(), Manifests::parse(&render_text_at(&root.join(dir)))));
        } else if line.starts_with("kubectl ") {
            done.push(Done::NeedsCluster(line.to_owned()));
        } else if let Some(args) = line.strip_prefix("cargo run --quiet -- ") {
            let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
                .args(args.split_whitespace())
                .current_dir(root)
                .output()
                .unwrap();
            assert!(output.status.success(), "{line}: {}", String::from_utf8_lossy(&output.stderr));
            done.push(Done::Ran(line.to_owned()));
        } else {
            let mut script = line.to_owned();
            if line.contains("<<'EOF'") {
                for body in lines.by_ref() {
                    script.push('\n');
                    script.push_str(body);
                    if body == "EOF" {
                        break;
                    }
                }
            }
            let output = Command::new("sh").args(["-e", "-c", &script]).current_dir(root).output().unwrap();
            assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
            done.push(Done::Ran(line.to_owned()));
        }
    }
    done
}

fn commands(block: &str) -> Vec<&str> {
    block.lines().collect()
}

/// The commands that ran here, and those left for a cluster, in order.
fn ran_and_not_run(done: &[Done]) -> (Vec<&str>, Vec<&str>) {
    let mut ran = Vec::new();
    let mut not_run = Vec::new();
    for step in done {
        match step {
            Done::Ran(command) => ran.push(command.as_str()),
            Done::NeedsCluster(command) => not_run.push(command.as_str()),
            Done::Rendered(..) => {}
        }
    }
    (ran, not_run)
}

/// The directories rendered, with what they rendered to, in order.
fn rendered(done: &[Done]) -> Vec<(&str, &Manifests)> {
    done.iter()
        .filter_map(|step| match step {
            Done::Rendered(dir, manifests) => Some((dir.as_str(), manifests)),
            _ => None,
        })
        .collect()
}

#[test]
fn install_with_cert_manager_registers_the_webhooks_after_the_rollout() {
    let block = sh_block(&readme(), "### Install with cert-manager");
    assert_eq!(
        commands(&block),
        [
            "kubectl apply -k manifests/base/",
            "kubectl -n portcullis-system wait --for=condition=Ready certificate/portcullis",
            "kubectl -n portcullis-system rollout status deployment/portcullis",
            "kubectl apply -k manifests/webhooks/",
        ]
    );
    let done = follow(&repo_copy("install-cert-manager"), &block);
    assert_eq!(
        ran_and_not_run(&done),
        (
            vec![],
            vec![
                "kubectl -n portcullis-system wait --for=condition=Ready certificate/portcullis",
                "kubectl -n portcullis-system rollout status deployment/portcullis",
            ]
        )
    );
    let steps = rendered(&done);
    let [(first, first_render), (second, second_render)] = steps[..] else { panic!("two applies: {done:?}") };
    assert_eq!((first, second), ("manifests/base/", "manifests/webhooks/"));
    assert_eq!(webhook_kinds_in(first_render), Vec::<String>::new());
    assert_eq!(first_render.identities(), base().identities());
    assert_eq!(webhook_kinds_in(second_render), WEBHOOK_KINDS.map(String::from));
    assert_eq!(second_render.0, webhooks().0);
}

#[test]
fn install_without_cert_manager_registers_the_webhooks_after_the_rollout_and_edits_no_tracked_file() {
    let block = sh_block(&readme(), "### Install without cert-manager");
    assert_eq!(
        commands(&block),
        [
            "cargo run --quiet -- certs --out certs --dns portcullis.portcullis-system.svc",
            "kubectl create namespace portcullis-system",
            "kubectl -n portcullis-system create secret tls portcullis-tls --cert certs/tls.crt --key certs/tls.key",
            "kubectl apply -k manifests/without-cert-manager/base/",
            "kubectl -n portcullis-system rollout status deployment/portcullis",
            "cp certs/ca.crt manifests/without-cert-manager/webhooks/ca.crt",
            "kubectl apply -k manifests/without-cert-manager/webhooks/",
        ]
    );
    let root = repo_copy("install-without-cert-manager");
    let done = follow(&root, &block);
    assert_eq!(
        ran_and_not_run(&done),
        (
            vec![
                "cargo run --quiet -- certs --out certs --dns portcullis.portcullis-system.svc",
                "cp certs/ca.crt manifests/without-cert-manager/webhooks/ca.crt",
            ],
            vec![
                "kubectl create namespace portcullis-system",
                "kubectl -n portcullis-system create secret tls portcullis-tls --cert certs/tls.crt --key certs/tls.key",
                "kubectl -n portcullis-system rollout status deployment/portcullis",
            ]
        )
    );
    let steps = rendered(&done);
    let [(first, first_render), (second, second_render)] = steps[..] else { panic!("two applies: {done:?}") };
    assert_eq!((first, second), ("manifests/without-cert-manager/base/", "manifests/without-cert-manager/webhooks/"));
    assert_eq!(webhook_kinds_in(first_render), Vec::<String>::new());
    assert_eq!(first_render.0, Manifests::render("manifests/without-cert-manager/base").0);
    assert_eq!(webhook_kinds_in(second_render), WEBHOOK_KINDS.map(String::from));

    // Both webhooks trust the CA that signed the Secret's certificate.
    let ca = std::fs::read_to_string(root.join("certs/ca.crt")).unwrap();
    let mut second_render = Manifests(second_render.0.clone());
    unwrap_ca_bundles(&mut second_render);
    assert_eq!(validating(&second_render).client_config.ca_bundle.unwrap().0, ca.as_bytes());
    assert_eq!(mutating(&second_render).client_config.ca_bundle.unwrap().0, ca.as_bytes());
    assert_eq!(second_render.0, without_cert_manager_webhooks("install-same-ca", &ca).0);

    // No tracked file changed: manifests/ and policies/ are the repository's
    // plus the copied ca.crt, and that file and certs/ are ignored by git.
    for dir in ["manifests", "policies"] {
        let mut expected: Vec<_> = files_under(&repo(dir))
            .into_iter()
            .filter(|file| Path::new(dir).join(file) != Path::new(CA_FILE))
            .map(|file| Path::new(dir).join(file))
            .collect();
        for file in &expected {
            assert_eq!(std::fs::read(root.join(file)).unwrap(), std::fs::read(repo(file.to_str().unwrap())).unwrap());
        }
        if dir == "manifests" {
            expected.push(CA_FILE.into());
            expected.sort();
        }
        let followed: Vec<_> = files_under(&root.join(dir)).into_iter().map(|file| Path::new(dir).join(file)).collect();
        assert_eq!(followed, expected, "{dir}");
    }
    assert_eq!(
        files_under(&root.join("certs")),
        ["ca.crt", "tls.crt", "tls.key"].map(std::path::PathBuf::from).to_vec()
    );
    let ignored: BTreeSet<String> =
        std::fs::read_to_string(repo(".gitignore")).unwrap().lines().map(str::to_owned).collect();
    assert!(ignored.contains("/certs/"), "{ignored:?}");
    assert!(ignored.contains(&format!("/{CA_FILE}")), "{ignored:?}");
}

#[test]
fn own_registry_image_is_set_outside_the_tracked_files() {
    let block = sh_block(&readme(), "### Container image");
    let root = repo_copy("install-own-image");
    let done = follow(&root, &block);
    assert_eq!(
        ran_and_not_run(&done),
        (vec!["mkdir -p my-portcullis", "cat > my-portcullis/kustomization.yaml <<'EOF'"], vec![])
    );
    let steps = rendered(&done);
    let [("my-portcullis/", own)] = steps[..] else { panic!("one render of my-portcullis/: {done:?}") };
    assert_eq!(container(own).image.as_deref(), Some("registry.example.com/platform/portcullis:0.1.0"));
    // Nothing else differs from the first step.
    let mut own = own.0.clone();
    for doc in own.iter_mut().filter(|doc| doc["kind"] == "Deployment") {
        doc["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/portcullis-dev/portcullis:0.1.0".into();
    }
    assert_eq!(own, base().0);
    let readme = readme();
    for cli in [
        "`kustomize create --resources ../manifests/base`",
        "`kustomize edit set image ghcr.io/portcullis-dev/portcullis=registry.example.com/platform/portcullis:0.1.0`",
    ] {
        assert!(readme.contains(cli), "README: {cli}");
    }
}

/// The README's command for taking the webhooks away in an emergency.
const REMOVE_WEBHOOKS: &str =
    "`kubectl delete validatingwebhookconfiguration/portcullis mutatingwebhookconfiguration/portcullis`";

#[test]
fn emergency_removal_names_the_webhook_configurations_the_install_creates() {
    let readme = readme();
    // In the install and in the runbook.
    assert_eq!(readme.matches(REMOVE_WEBHOOKS).count(), 2);
    let runbook = &readme[readme.find("### When portcullis is down").unwrap()..readme.find("### Upgrade").unwrap()];
    assert!(runbook.contains(REMOVE_WEBHOOKS));
    assert!(runbook.contains("`kubectl label namespace NAME portcullis.dev/webhook=disabled`"));

    let named: BTreeSet<(String, String)> = REMOVE_WEBHOOKS
        .trim_matches('`')
        .strip_prefix("kubectl delete ")
        .unwrap()
        .split(' ')
        .map(|object| {
            let (kind, name) = object.split_once('/').unwrap();
            (kind.to_owned(), name.to_owned())
        })
        .collect();
    let bundle =
        portcullis::webhook::certs::generate(&["portcullis.portcullis-system.svc".to_owned()], &[], 365).unwrap();
    for manifests in [webhooks(), without_cert_manager_webhooks("install-removal", &bundle.ca_pem)] {
        let installed: BTreeSet<(String, String)> = manifests
            .identities()
            .into_iter()
            .map(|(_, kind, namespace, name)| {
                assert_eq!(namespace, "", "cluster-scoped");
                (kind.to_lowercase(), name)
            })
            .collect();
        assert_eq!(named, installed);
    }
    // The opt-out label is the one the webhooks skip.
    let selector = validating(&webhooks()).namespace_selector.unwrap();
    let requirements = selector.match_expressions.unwrap();
    assert!(
        requirements
            .iter()
            .any(|r| r.key == "portcullis.dev/webhook" && r.values.as_deref() == Some(&["disabled".to_owned()][..]))
    );
    assert!(requirements.iter().any(|r| r.key == "kubernetes.io/metadata.name"
        && r.values.as_deref() == Some(&["kube-system".to_owned(), NAMESPACE.to_owned()][..])));
}

/// Every `manifests/...` path in `text`, as written (up to a space, backtick,
/// quote or closing parenthesis).
fn manifests_paths(text: &str) -> BTreeSet<String> {
    text.match_indices("manifests/")
        .filter(|(at, _)| {
            let before = text[..*at].chars().next_back().unwrap_or(' ');
            !(before.is_alphanumeric() || before == '_' || before == '-' || before == '.')
        })
        .map(|(at, _)| {
            text[at..].chars().take_while(|c| !c.is_whitespace() && !"`'\")],:;".contains(*c)).collect::<String>()
        })
        .map(|path| path.trim_end_matches('.').to_owned())
        .collect()
}

#[test]
fn readme_names_only_manifests_paths_that_exist() {
    let readme = readme();
    let operations = &readme[readme.find("\n## Operations\n").unwrap()..readme.find("\n## Metrics\n").unwrap()];
    assert_eq!(
        manifests_paths(operations),
        [
            "manifests/",
            "manifests/base",
            "manifests/base/",
            "manifests/base/rbac.yaml",
            "manifests/components/audit-reports",
            "manifests/monitoring/",
            "manifests/monitoring/rules.yaml",
            "manifests/webhooks/",
            "manifests/webhooks/webhooks.yaml",
            "manifests/without-cert-manager/base",
            "manifests/without-cert-manager/base/",
            "manifests/without-cert-manager/webhooks/",
            "manifests/without-cert-manager/webhooks/ca.crt",
        ]
        .map(String::from)
        .into()
    );
    for path in manifests_paths(&readme) {
        match path.as_str() {
            // The layout before the install was split in two steps: applying it
            // fails (no kustomization) instead of registering the webhooks early.
            "manifests/" => assert!(!repo("manifests/kustomization.yaml").exists()),
            // The CA you copy in (ignored by git).
            CA_FILE => assert!(repo("manifests/without-cert-manager/webhooks/kustomization.yaml").is_file()),
            file if file.ends_with(".yaml") => assert!(repo(file).is_file(), "README names {file}"),
            dir => assert!(repo(dir).join("kustomization.yaml").is_file(), "README names {dir}, no kustomization"),
        }
    }
}
