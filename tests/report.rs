//! `portcullis report`, run as a binary: the exact table and JSON of
//! `tests/fixtures/report/`, the JSON against its schema, the HTML page in a
//! real headless Chromium, and `--cluster` against the in-process fake API
//! server, paginated.

use crate::common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_api::{FakeApi, Resource};
use common::repo;
use common::schema::schema_errors;
use serde_json::{Value, json};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `portcullis report ARGS` in the repository (where `./policies` is found).
fn report(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("report")
        .args(args)
        .current_dir(repo(""))
        .env("NO_COLOR", "1")
        .env_remove("PORTCULLIS_POLICIES")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

const FIXTURES: &str = "tests/fixtures/report";

const TABLE: &str = "\
namespace shop (production)
  STATUS       ENTRY                                        KIND/NAME             TLS                                   AUTH                                  ALLOW-LIST      CONTROLLER  VIOLATIONS
  deny         nodes:30080/TCP -> 80                        Service/web-nodeport  none                                  none                                  none            -           no-nodeport-in-production
  deny         load balancer:443/TCP                        Service/api           none                                  none                                  none            -           restrict-loadbalancer-source-ranges,warn-loadbalancer-in-production
  warn         load balancer:443/TCP                        Service/reports       none                                  none                                  10.20.0.0/16    -           warn-loadbalancer-in-production
  protected    checkout.example.com via infra/public:https  HTTPRoute/checkout    certificateRefs wildcard-tls          ExternalAuth filter                   none            eg          -
  protected    shop.example.com/                            Ingress/storefront    cert-manager letsencrypt -> shop-tls  nginx.ingress.kubernetes.io/auth-url  203.0.113.0/24  nginx       -
  protected    shop.example.com/api                         Ingress/storefront    cert-manager letsencrypt -> shop-tls  nginx.ingress.kubernetes.io/auth-url  203.0.113.0/24  nginx       -

namespace staging
  STATUS       ENTRY                                        KIND/NAME             TLS                                   AUTH                                  ALLOW-LIST      CONTROLLER  VIOLATIONS
  deny         <script>alert('x')</script>.example.com/     Ingress/preview       none                                  none                                  none            nginx       ingress-source-allow-list,require-ingress-tls,warn-ingress-auth
  deny         203.0.113.10:8080/TCP                        Service/legacy        none                                  none                                  none            -           no-external-ips

namespace infra
  STATUS       ENTRY                                        KIND/NAME             TLS                                   AUTH                                  ALLOW-LIST      CONTROLLER  VIOLATIONS
  unprotected  http HTTP:80 *                               Gateway/public        none                                  -                                     none            eg          -
  protected    https HTTPS:443 *.example.com                Gateway/public        certificateRefs wildcard-tls          -                                     none            eg          -

source: tests/fixtures/report
policies: ./policies
10 entry points (4 deny, 1 warn, 1 unprotected, 4 protected): 9 public, 6 without TLS, 5 without auth, 5 with violations
";

#[test]
fn the_table_groups_entry_points_by_namespace_worst_first() {
    let run = report(&[FIXTURES], "");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{}", run.stderr);
    assert_eq!(run.stdout, TABLE);
}

fn json_report() -> Value {
    let run = report(&["-o", "json", FIXTURES], "");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    serde_json::from_str(&run.stdout).expect("JSON")
}

#[test]
fn json_lists_every_entry_point_with_its_protections_and_violations() {
    let report = json_report();
    assert_eq!(
        (&report["version"], &report["source"], &report["policies"]),
        (&json!(1), &json!(FIXTURES), &json!("./policies"))
    );
    assert_eq!(
        report["summary"],
        json!({"entryPoints": 10, "public": 9, "withoutTls": 6, "withoutAuth": 5, "withViolations": 5,
               "deny": 4, "warn": 1, "unprotected": 1, "protected": 4})
    );
    let entries = report["entries"].as_array().unwrap();
    let order: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{} {}/{} {}",
                e["namespace"].as_str().unwrap(),
                e["kind"].as_str().unwrap(),
                e["name"].as_str().unwrap(),
                e["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            "shop Service/web-nodeport deny",
            "shop Service/api deny",
            "shop Service/reports warn",
            "shop HTTPRoute/checkout protected",
            "shop Ingress/storefront protected",
            "shop Ingress/storefront protected",
            "staging Ingress/preview deny",
            "staging Service/legacy deny",
            "infra Gateway/public unprotected",
            "infra Gateway/public protected",
        ]
    );
    assert_eq!(
        entries[2],
        json!({
            "namespace": "shop", "kind": "Service", "name": "reports", "type": "loadBalancer",
            "address": "load balancer:443/TCP", "reach": "internal",
            "internalBy": "azure: service.beta.kubernetes.io/azure-load-balancer-internal: \"true\"",
            "tls": {"source": "none", "detail": "passed through to the Pods"},
            "auth": {"method": "none"},
            "allowList": {"kind": "ranges", "from": "spec.loadBalancerSourceRanges", "ranges": ["10.20.0.0/16"]},
            "environments": ["production"],
            "violations": [{"policy": "warn-loadbalancer-in-production", "severity": "warn",
                "message": "internal load balancer (azure: service.beta.kubernetes.io/azure-load-balancer-internal: \"true\") has no routing or TLS; prefer ClusterIP behind an Ingress"}],
            "status": "warn"
        })
    );
    assert_eq!(
        entries[4],
        json!({
            "namespace": "shop", "kind": "Ingress", "name": "storefront", "type": "ingressRule",
            "address": "shop.example.com/", "reach": "public",
            "tls": {"source": "certManager", "detail": "letsencrypt -> shop-tls"},
            "auth": {"method": "annotations", "detail": "nginx.ingress.kubernetes.io/auth-url"},
            "allowList": {"kind": "ranges", "from": "nginx.ingress.kubernetes.io/whitelist-source-range", "ranges": ["203.0.113.0/24"]},
            "controller": "nginx",
            "environments": ["production"],
            "violations": [],
            "status": "protected"
        })
    );
}

#[test]
fn json_output_follows_the_documented_schema() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("docs/report-output.schema.json")).unwrap()).unwrap();
    let report = json_report();
    assert_eq!(schema_errors(&schema, &report), [""; 0]);
    // The schema rejects what it does not describe, so the check above can fail.
    let mut broken = report.clone();
    broken["entries"][0]["tls"]["source"] = json!("magic");
    broken["summary"]["extra"] = json!(1);
    assert_eq!(
        schema_errors(&schema, &broken),
        [
            "/summary: {\"entryPoints\":10,\"public\":9,\"withoutTls\":6,\"withoutAuth\":5,\"withViolations\":5,\"deny\":4,\"warn\":1,\"unprotected\":1,\"protected\":4,\"extra\":1} fails additionalProperties: false".to_owned(),
            "/entries/0/tls/source: \"magic\" fails enum: [\"none\",\"secret\",\"certManager\",\"annotation\",\"defaultCertificate\",\"certificateRefs\",\"passthrough\"]".to_owned(),
        ]
    );
}

#[test]
fn exit_codes_say_whether_the_report_was_produced() {
    // Violations do not fail the report, unless asked.
    assert_eq!(report(&[FIXTURES], "").code, 0);
    let failing = report(&["--fail-on-violations", FIXTURES], "");
    assert_eq!((failing.code, failing.stdout.as_str()), (1, TABLE));
    // Input that cannot be read: said, and exit 2 unless --skip-unknown.
    let broken = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: [1, 2\n";
    let run = report(&["-"], broken);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "portcullis report: cannot read -: document 1 (line 1): YAML error on line 4: unclosed bracket '['\n\
         portcullis report: 1 cannot be read (the report leaves them out); --skip-unknown accepts that\n"
    );
    assert_eq!(report(&["--skip-unknown", "-"], broken).code, 0);
    let usage = report(&["--cluster", FIXTURES], "");
    assert_eq!(
        (usage.code, usage.stderr.as_str()),
        (2, "portcullis report: --cluster reads the cluster: give no PATH with it\n")
    );
}

/// Debian's chromium; `make test` installs it (`make browser`).
const CHROMIUM: &str = "/usr/bin/chromium";

/// The DOM of `page` (with `fragment`) after its scripts ran, in headless
/// Chromium, bounded in time: killed after 60 s.
fn dump_dom(page: &Path, fragment: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `make browser` (as root it installs Debian's chromium), or make test"
    );
    let profile = temp_dir("chromium-profile");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}{fragment}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        stdout.read_to_string(&mut dom).map(|_| dom)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("chromium did not finish within 60 s: killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&profile);
    reader.join().unwrap().expect("chromium's DOM is UTF-8")
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-report-{what}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The text of every element whose opening tag is exactly `open`, in order.
fn texts<'a>(dom: &'a str, open: &str) -> Vec<&'a str> {
    dom.match_indices(open)
        .map(|(at, _)| {
            let rest = &dom[at + open.len()..];
            &rest[..rest.find('<').unwrap()]
        })
        .collect()
}

#[test]
fn the_html_page_shows_counts_rows_and_fixes_in_chromium_and_sorts_by_a_column() {
    let run = report(&["-o", "html", FIXTURES], "");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let html = run.stdout;
    // Self-contained: nothing is fetched.
    assert!(!html.contains("http://") && !html.contains("https://cdn") && !html.contains("src="), "{html}");
    // Hostile object text is escaped, never markup.
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;.example.com/"));
    let dir = temp_dir("html");
    let page = dir.join("report.html");
    std::fs::write(&page, &html).unwrap();

    let dom = dump_dom(&page, "");
    let count = |id: &str| texts(&dom, &format!("<dd id=\"count-{id}\">"))[0].to_owned();
    let counts: Vec<String> =
        ["entryPoints", "public", "withoutTls", "withoutAuth", "withViolations"].map(count).to_vec();
    assert_eq!(counts, ["10", "9", "6", "5", "5"]);
    // The hostile host is text in the DOM: the page's script did not run it.
    assert_eq!(dom.matches("<script>").count(), 1, "only the page's own script");
    // One row, read cell by cell: the NodePort Service, first (worst first).
    let body = &dom[dom.find("<tbody>").unwrap()..];
    let first = &body[..body.find("</tr>").unwrap()];
    assert_eq!(texts(first, "<td data-column=\"namespace\">"), ["shop"]);
    assert_eq!(texts(first, "<td data-column=\"entry\">"), ["nodes:30080/TCP -&gt; 80"]);
    assert_eq!(texts(first, "<td data-column=\"object\">"), ["Service/web-nodeport"]);
    assert_eq!(texts(first, "<td data-column=\"tls\">"), ["none"]);
    assert_eq!(texts(first, "<td data-column=\"allowList\">"), ["none"]);
    assert_eq!(texts(first, "<code class=\"policy\">"), ["no-nodeport-in-production"]);
    assert_eq!(
        texts(first, "<span class=\"message\">"),
        [
            "type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS"
        ]
    );

    // Sorted by a column through the URL fragment, as a click on its header does.
    let sorted = dump_dom(&page, "#sort=entry");
    assert!(sorted.contains("<table id=\"entries\" data-sorted=\"entry\">"), "{sorted}");
    assert_eq!(
        texts(&sorted, "<td data-column=\"entry\">"),
        [
            "203.0.113.10:8080/TCP",
            "&lt;script&gt;alert('x')&lt;/script&gt;.example.com/",
            "checkout.example.com via infra/public:https",
            "http HTTP:80 *",
            "https HTTPS:443 *.example.com",
            "load balancer:443/TCP",
            "load balancer:443/TCP",
            "nodes:30080/TCP -&gt; 80",
            "shop.example.com/",
            "shop.example.com/api",
        ]
    );
    let descending = dump_dom(&page, "#sort=-status");
    assert_eq!(texts(&descending, "<td data-column=\"status\" class=\"status\" data-sort=\"3\">").len(), 4);
    let statuses: Vec<&str> = descending
        .match_indices("class=\"status\" data-sort=\"")
        .map(|(at, m)| &descending[at + m.len()..at + m.len() + 1])
        .collect();
    assert_eq!(statuses, ["3", "3", "3", "3", "2", "1", "0", "0", "0", "0"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fake API server on 127.0.0.1, and a kubeconfig naming it.
fn serve(api: &FakeApi, dir: &Path) -> (tokio::runtime::Runtime, PathBuf) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = api.router();
    runtime.spawn(async move { axum::serve(listener, router).await });
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n\
             users: [{{name: reader, user: {{token: t}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: reader}}}}]\ncurrent-context: fake\n"
        ),
    )
    .unwrap();
    (runtime, kubeconfig)
}

#[test]
fn cluster_report_lists_every_kind_page_by_page() {
    let api =
        FakeApi::new(&[Resource::NAMESPACES, Resource::INGRESS_CLASSES, Resource::SERVICES, Resource::INGRESSES], true);
    api.put_object(
        Resource::NAMESPACES,
        json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "payments", "labels": {"environment": "production"}}}),
        false,
    );
    // 1,001 Services: three pages of at most 500.
    for index in 0..1000 {
        api.put_object(
            Resource::SERVICES,
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("internal-{index:04}"), "namespace": "payments"},
            "spec": {"ports": [{"port": 80}]}}),
            false,
        );
    }
    api.put_object(
        Resource::SERVICES,
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "zz-nodeport", "namespace": "payments"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}}),
        false,
    );
    let dir = temp_dir("cluster");
    let (runtime, kubeconfig) = serve(&api, &dir);

    let run = report(&["--cluster", "--kubeconfig", kubeconfig.to_str().unwrap(), "-o", "json"], "");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(report["source"].as_str().unwrap().starts_with("cluster http://127.0.0.1:"));
    assert_eq!(report["summary"]["entryPoints"], 1);
    let entry = &report["entries"][0];
    assert_eq!(
        (&entry["name"], &entry["address"], &entry["environments"], &entry["violations"][0]["policy"]),
        (
            &json!("zz-nodeport"),
            &json!("nodes:30080/TCP -> 80"),
            &json!(["production"]),
            &json!("no-nodeport-in-production")
        )
    );
    let service_lists: Vec<(Option<usize>, Option<String>)> = api
        .lists()
        .into_iter()
        .filter(|(plural, ..)| *plural == "services")
        .map(|(_, limit, token)| (limit, token))
        .collect();
    assert_eq!(
        service_lists,
        [(Some(500), None), (Some(500), Some("500".to_owned())), (Some(500), Some("1000".to_owned()))]
    );
    // Every kind is listed in pages; the Gateway API is not installed here, so not listed.
    let plurals: Vec<&str> = api.lists().into_iter().map(|(plural, ..)| plural).collect();
    assert_eq!(plurals, ["namespaces", "ingressclasses", "services", "services", "services", "ingresses"]);
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
}
