//! The `portcullis` binary: `policies` and `test` (which policies, and their
//! failures), `certs`, and `serve` start-up and SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::repo;

fn portcullis() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command.env("NO_COLOR", "1").env("RUST_LOG", "info").env_remove("PORTCULLIS_POLICIES");
    command
}

/// Exit code, stdout and stderr.
fn run(command: &mut Command) -> (Option<i32>, String, String) {
    let out = command.output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn policies_lists_the_bundled_set() {
    let out = portcullis().args(["policies", "--policies"]).arg(repo("policies")).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().next(), Some(format!("policies: {}", repo("policies").display()).as_str()));
    let nodeport = text.lines().find(|l| l.starts_with("no-nodeport-in-production ")).expect("listed");
    let columns: Vec<&str> = nodeport.split_whitespace().collect();
    assert_eq!(&columns[..5], ["no-nodeport-in-production", "Deny", "serviceType", "Service", "CREATE,UPDATE"]);
    assert!(nodeport.ends_with("environments production; except kube-system,portcullis-system"), "{nodeport}");
    assert_eq!(text.lines().count(), 1 + 1 + 25 + 1, "{text}");
    // Columns line up whatever the width of a cell.
    let route = text.lines().find(|l| l.starts_with("restrict-route-hostnames ")).expect("listed");
    let header = text.lines().nth(1).unwrap();
    assert_eq!(route.find("CREATE,UPDATE"), header.find("OPERATIONS"), "{text}");
    assert_eq!(nodeport.find("CREATE,UPDATE"), header.find("OPERATIONS"), "{text}");
}

#[test]
fn policies_and_test_use_the_bundled_set_outside_the_repository() {
    let dir = temp_dir("outside");
    let (code, listed, stderr) = run(portcullis().arg("policies").current_dir(&dir));
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    let (_, in_repo, _) = run(portcullis().arg("policies").current_dir(repo("")));
    assert_eq!(in_repo.lines().next(), Some("policies: ./policies"));
    assert_eq!(listed.lines().next(), Some("policies: bundled (built in)"));
    assert_eq!(listed.lines().skip(1).collect::<Vec<_>>(), in_repo.lines().skip(1).collect::<Vec<_>>());

    let (code, tested, stderr) = run(portcullis().arg("test").arg(repo("policies/tests")).current_dir(&dir));
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    assert_eq!(tested.lines().next(), Some("policies: bundled (built in)"));
    assert!(tested.ends_with(" passed, 0 failed\n"), "{tested}");
}

#[test]
fn policies_and_test_print_a_failure_reason_once() {
    let dir = temp_dir("once");
    // A --policies directory named explicitly must exist (policies exits 1, test 2).
    let (code, _, stderr) = run(portcullis().args(["policies", "--policies", "nope"]).current_dir(&dir));
    assert_eq!((code, stderr.as_str()), (Some(1), "portcullis: --policies nope: no such directory\n"));
    let (code, _, stderr) = run(portcullis().args(["test", "--policies", "nope"]).current_dir(&dir));
    assert_eq!((code, stderr.as_str()), (Some(2), "portcullis test: --policies nope: no such directory\n"));
    let (code, _, stderr) = run(portcullis().arg("policies").env("PORTCULLIS_POLICIES", "nope").current_dir(&dir));
    assert_eq!((code, stderr.as_str()), (Some(1), "portcullis: PORTCULLIS_POLICIES nope: no such directory\n"));

    // An I/O error is said once, not once more as its cause.
    let (code, _, stderr) = run(portcullis().args(["test", "no/such/tests"]).current_dir(&dir));
    assert_eq!(
        (code, stderr.as_str()),
        (Some(2), "portcullis test: no/such/tests: No such file or directory (os error 2)\n")
    );
    let (code, _, stderr) = run(portcullis()
        .args(["serve", "--no-cluster", "--tls-cert", "x.crt", "--tls-key", "x.key", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--policies"])
        .arg(repo("policies"))
        .current_dir(&dir));
    assert_eq!(code, Some(1));
    assert!(stderr.ends_with("\nportcullis: cannot read x.crt: No such file or directory (os error 2)\n"), "{stderr}");
    std::fs::create_dir(dir.join("binary")).unwrap();
    std::fs::write(dir.join("binary/p.yaml"), b"\xff\xfe").unwrap();
    let (code, _, stderr) = run(portcullis().args(["policies", "--policies", "binary"]).current_dir(&dir));
    assert_eq!((code, stderr.as_str()), (Some(1), "portcullis: binary/p.yaml: stream did not contain valid UTF-8\n"));

    // A YAML error names the policy file and the line.
    std::fs::create_dir(dir.join("yaml")).unwrap();
    std::fs::write(
        dir.join("yaml/p.yaml"),
        "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: [unclosed\n",
    )
    .unwrap();
    let (code, _, stderr) = run(portcullis().args(["policies", "--policies", "yaml"]).current_dir(&dir));
    assert_eq!((code, stderr.as_str()), (Some(1), "portcullis: yaml/p.yaml:4: unclosed bracket '['\n"));
    let (code, _, stderr) = run(portcullis().args(["test", "--policies", "yaml"]).current_dir(&dir));
    assert_eq!((code, stderr.as_str()), (Some(2), "portcullis test: yaml/p.yaml:4: unclosed bracket '['\n"));

    // An unknown environment lists the known ones.
    std::fs::create_dir(dir.join("env")).unwrap();
    std::fs::copy(repo("policies/environments.yaml"), dir.join("env/environments.yaml")).unwrap();
    std::fs::write(
        dir.join("env/p.yaml"),
        "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  action: DENY\n  \
         match: {environments: [prd]}\n  rule: {ingressTls: {}}\n",
    )
    .unwrap();
    let (code, _, stderr) = run(portcullis().args(["policies", "--policies", "env"]).current_dir(&dir));
    assert_eq!(
        (code, stderr.as_str()),
        (
            Some(1),
            "portcullis: env/p.yaml:6: Policy \"p\": spec.match.environments: unknown environment \"prd\" \
             (known: production)\n"
        )
    );
}

#[test]
fn an_invalid_policy_set_is_refused_by_policies_and_serve() {
    let dir = temp_dir("invalid");
    std::fs::write(
        dir.join("bad.yaml"),
        "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: bad}\nspec:\n  rule: {serviceTyp: {}}\n",
    )
    .unwrap();
    let expected = format!(
        "portcullis: {}:5: Policy \"bad\": spec.rule.serviceTyp: unknown variant `serviceTyp`, expected one of \
         `serviceType`, `externalIPs`, `externalName`, `sourceRanges`, `ingressTls`, `ingressAuth`, \
         `forbiddenAnnotations`, `setAnnotations`, `annotationValues`, `ingressPaths`, `wildcardHosts`, `gatewayListeners`, `gatewayAllowedRoutes`, `routeTls`, `routeHostnames`, `gatewayAuth`, `referenceGrants`, `grpcBackends`, `cel`\n",
        dir.join("bad.yaml").display()
    );
    let out = portcullis().args(["policies", "--policies"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8(out.stderr).unwrap(), expected);

    let out = portcullis()
        .args(["serve", "--tls-cert", "x.crt", "--tls-key", "x.key", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--policies"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().ends_with(&expected));
}

#[test]
fn certs_writes_a_ca_and_serving_pair_and_prints_the_ca_bundle() {
    let dir = temp_dir("certs");
    let out = portcullis()
        .args(["certs", "--out"])
        .arg(&dir)
        .args(["--dns", "portcullis.portcullis-system.svc", "--ip", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    use base64::Engine as _;
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(printed.trim()).unwrap(), ca.as_bytes());
    assert!(std::fs::read_to_string(dir.join("tls.key")).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("tls.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = temp_dir("sigterm");
    let made = portcullis().args(["certs", "--out"]).arg(&dir).args(["--dns", "localhost"]).output().unwrap();
    assert!(made.status.success());
    let mut child = portcullis()
        .args(["serve", "--no-cluster", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"))
        .arg("--policies")
        .arg(repo("policies"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    loop {
        let line = lines.next().expect("serve logs until it serves").unwrap();
        if line.contains("serving") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "serve did not start");
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}, log: {rest:?}");
    assert!(rest.iter().any(|line| line.contains("shutdown requested") && line.contains("SIGTERM")), "{rest:?}");
    assert!(rest.last().is_some_and(|line| line.contains("stopped")), "{rest:?}");
}
