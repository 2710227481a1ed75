//! End-to-end tests against a real control plane: Debian's etcd and a kube-apiserver built
//! from Debian's `kubernetes` source package, on loopback (`tests/e2e/cluster.sh`), with the
//! real `portcullis serve` registered through the repository's own webhook configurations, and
//! kubectl from the same source package driving it. What is asserted is what a user sees:
//! kubectl's exit code and output, objects read back, and the metrics as Prometheus reports them.
//!
//! Run by `make e2e` (`cluster.sh run -- cargo test --test e2e`); the target is `test = false`,
//! so a plain `cargo test` neither builds nor runs it. The scenarios share one cluster and run
//! in order (some stop portcullis or the API server), each reported as `scenario NAME ... ok`,
//! ending with `e2e: N passed, N failed`.

#[allow(unused_imports)]
#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The webhook names of `manifests/` (kubectl quotes them in every denial).
const VALIDATE: &str = "validate.portcullis.dev";
const MUTATE: &str = "mutate.portcullis.dev";
/// The label every API server from v1.21 on puts on each namespace, and which the webhooks'
/// `namespaceSelector` uses to skip kube-system and portcullis-system by name.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// What `no-nodeport-in-production` says after `[no-nodeport-in-production] Service NS/NAME: `.
const NODEPORT_TEXT: &str =
    "type NodePort opens a port on every node; set spec.type: ClusterIP and expose it through an Ingress with TLS";
const INGRESS_TLS_TEXT: &str = "host shop.example.com is not covered by spec.tls, so it is served over plain HTTP; \
     add it to spec.tls[].hosts with a secretName";
const SNIPPET_TEXT: &str = "annotation nginx.ingress.kubernetes.io/configuration-snippet is not allowed (snippets \
     inject raw nginx configuration into the shared controller (CVE-2021-25742)); remove it";

fn main() -> ExitCode {
    common::install_crypto();
    let mut e2e = match E2e::from_env() {
        Ok(e2e) => e2e,
        Err(message) => {
            eprintln!("e2e: {message}; run `make e2e` (tests/e2e/cluster.sh run -- cargo test --test e2e)");
            return ExitCode::FAILURE;
        }
    };
    type Scenario = (&'static str, fn(&mut E2e));
    let scenarios: &[Scenario] = &[
        ("setup: cluster, portcullis serve, webhooks from manifests/, prometheus", E2e::setup),
        ("kube-system and portcullis-system are not intercepted", E2e::system_namespaces_not_intercepted),
        ("a namespace labelled portcullis.dev/webhook=disabled is not intercepted", E2e::opt_out_not_intercepted),
        ("portcullis stopped: intercepted namespaces fail closed, kube-system works", E2e::fail_closed),
        ("apply NodePort in production denied; relabel allows it", E2e::nodeport_denied_then_relabel),
        ("--dry-run=server denied the same, nothing stored", E2e::dry_run_denied),
        ("kubectl patch to NodePort denied", E2e::patch_denied),
        ("kubectl create service nodeport denied", E2e::create_service_nodeport_denied),
        ("unrelated update of an existing violation allowed with a Warning", E2e::existing_violation_warns),
        ("Ingress without TLS denied", E2e::ingress_without_tls_denied),
        ("secure Ingress stored with the mutation's annotations", E2e::secure_ingress_mutated),
        ("kubectl annotate with a snippet denied", E2e::snippet_annotation_denied),
        ("API server down a minute: last snapshot serves, the watch resumes", E2e::api_server_outage),
        (
            "API server unreachable (packets dropped): outage noticed, recovery within seconds",
            E2e::api_server_unreachable,
        ),
        ("rejection metrics in Prometheus match the denials; alert rules loaded", E2e::prometheus_metrics),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, scenario) in scenarios {
        println!("scenario {name} ...");
        let started = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| scenario(&mut e2e))) {
            Ok(()) => {
                passed += 1;
                println!("scenario {name} ... ok ({:.1}s)", started.elapsed().as_secs_f64());
            }
            Err(_) => {
                failed += 1;
                println!("scenario {name} ... FAILED");
                if passed == 0 {
                    // Without the setup nothing else can run.
                    break;
                }
            }
        }
    }
    e2e.stop_all();
    if !e2e.measured.is_empty() {
        println!("measured:");
        for line in &e2e.measured {
            println!("  {line}");
        }
    }
    println!("e2e: {passed} passed, {failed} failed");
    if failed == 0 && passed == scenarios.len() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// What a command printed and how it ended.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// One series of `portcullis_admission_rejections_total`: policy, kind, operation, namespace, dry_run.
type Rejection = (String, String, String, String, String);

struct E2e {
    /// The run's state directory (cluster.sh's `E2E_DIR`): certificates, logs, PID files.
    dir: PathBuf,
    kubectl: PathBuf,
    cluster_sh: PathBuf,
    webhook_port: u16,
    admin_port: u16,
    prometheus_port: u16,
    portcullis: Option<Child>,
    prometheus: Option<Child>,
    /// The rejections the running portcullis should have counted.
    expected: BTreeMap<Rejection, u64>,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    /// Trusts the webhook's CA, for reviews sent straight to portcullis.
    webhook_client: Option<reqwest::Client>,
    measured: Vec<String>,
}

impl E2e {
    fn from_env() -> Result<E2e, String> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        let dir = PathBuf::from(var("E2E_DIR")?);
        var("KUBECONFIG")?;
        Ok(E2e {
            dir,
            kubectl: PathBuf::from(var("E2E_KUBECTL")?),
            cluster_sh: PathBuf::from(var("E2E_CLUSTER_SH")?),
            webhook_port: free_port(),
            admin_port: free_port(),
            prometheus_port: free_port(),
            portcullis: None,
            prometheus: None,
            expected: BTreeMap::new(),
            // A worker thread of its own, so that idle connections answer portcullis' GOAWAY
            // while no request is running (else its graceful shutdown waits for them).
            runtime: tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap(),
            http: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap(),
            webhook_client: None,
            measured: Vec::new(),
        })
    }

    // -----------------------------------------------------------------------
    // kubectl

    fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = Command::new(&self.kubectl);
        command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.kubectl.display()));
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn kubectl(&self, args: &[&str]) -> Run {
        self.kubectl_in(args, None)
    }

    /// kubectl that must succeed with exactly `stdout` and nothing on standard error.
    #[track_caller]
    fn kubectl_ok(&self, args: &[&str], stdout: &str) {
        let run = self.kubectl(args);
        assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (0, stdout, ""), "kubectl {args:?}");
    }

    /// kubectl that must fail (exit 1) with exactly `stderr` and nothing on standard output.
    #[track_caller]
    fn kubectl_fails(&self, args: &[&str], stderr: &str) {
        let run = self.kubectl(args);
        assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (1, "", stderr), "kubectl {args:?}");
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        let run = self.kubectl(&args);
        assert_eq!(run.code, 0, "kubectl {args:?}: {}", run.stderr);
        serde_json::from_str(&run.stdout).unwrap()
    }

    /// Writes a manifest under the state directory; its path, as kubectl quotes it.
    fn manifest(&self, name: &str, yaml: &str) -> String {
        let dir = self.dir.join("manifests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, yaml).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let mut yaml = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    {NAME_LABEL}: {name}\n"
        );
        for (key, value) in labels {
            writeln!(yaml, "    {key}: \"{value}\"").unwrap();
        }
        let path = self.manifest(&format!("namespace-{name}.yaml"), &yaml);
        self.kubectl_ok(&["apply", "-f", &path], &format!("namespace/{name} created\n"));
    }

    fn expect_rejection(&mut self, policy: &str, kind: &str, operation: &str, namespace: &str, dry_run: bool) {
        let key = (policy.into(), kind.into(), operation.into(), namespace.into(), dry_run.to_string());
        *self.expected.entry(key).or_default() += 1;
    }

    /// A denied UPDATE of an object the API server's watch cache holds is reviewed twice: the
    /// first attempt runs on the cached copy and, when it fails, the API server reads the object
    /// from etcd and tries again (etcd3 store's GuaranteedUpdate, "It's possible we were working
    /// with stale data"), so the counter counts two rejections for one denied request.
    fn expect_denied_update(&mut self, policy: &str, kind: &str, namespace: &str) {
        self.expect_rejection(policy, kind, "UPDATE", namespace, false);
        self.expect_rejection(policy, kind, "UPDATE", namespace, false);
    }

    /// Waits until the API server's watch cache holds the object (a GET with resourceVersion=0
    /// is answered from it), so that an update starts from the cached copy.
    fn in_watch_cache(&self, path: &str) {
        let url = format!("{path}?resourceVersion=0");
        eventually(&format!("{path} is in the watch cache"), Duration::from_secs(10), || {
            (self.kubectl(&["get", "--raw", &url]).code == 0).then_some(())
        });
    }

    // -----------------------------------------------------------------------
    // portcullis and prometheus

    fn pid_file(&self, name: &str) -> PathBuf {
        self.dir.join("pids").join(format!("{name}.pid"))
    }

    fn spawn(&self, name: &str, command: &mut Command) -> Child {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{name}.log"))).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        // cluster.sh stops whatever is recorded here, also when this test dies.
        std::fs::write(self.pid_file(name), child.id().to_string()).unwrap();
        child
    }

    fn start_portcullis(&mut self) {
        let pki = self.dir.join("webhook-pki");
        let mut command = Command::new(portcullis_bin());
        command
            .arg("serve")
            .arg("--kubeconfig")
            .arg(std::env::var("KUBECONFIG").unwrap())
            .arg("--policies")
            .arg(common::repo("policies"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.webhook_port))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{}", self.admin_port))
            .arg("--tls-cert")
            .arg(pki.join("tls.crt"))
            .arg("--tls-key")
            .arg(pki.join("tls.key"))
            .env("RUST_LOG", "info,kube_runtime=error,portcullis::cluster=debug");
        self.portcullis = Some(self.spawn("portcullis", &mut command));
        // A fresh process counts from zero.
        self.expected.clear();
        let url = self.admin_url("/readyz");
        eventually("portcullis /readyz answers 200", Duration::from_secs(30), || {
            self.get(&url).ok().filter(|(status, _)| *status == 200)
        });
    }

    /// SIGTERM, then wait for the exit.
    fn stop(&mut self, name: &str) {
        let child = match name {
            "portcullis" => self.portcullis.take(),
            _ => self.prometheus.take(),
        };
        if let Some(mut child) = child {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(25);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.wait();
            let _ = std::fs::remove_file(self.pid_file(name));
        }
    }

    fn stop_all(&mut self) {
        self.stop("prometheus");
        self.stop("portcullis");
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    fn get(&self, url: &str) -> Result<(u16, String), reqwest::Error> {
        self.runtime.block_on(async {
            let response = self.http.get(url).send().await?;
            let status = response.status().as_u16();
            Ok((status, response.text().await?))
        })
    }

    /// One sample of portcullis' /metrics, by its full series name (`name{labels}`).
    fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get(&self.admin_url("/metrics")).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map(|value| value.trim().parse().unwrap())
    }

    /// The sum of every sample of a counter family on /metrics.
    fn metric_sum(&self, family: &str) -> f64 {
        let (_, text) = self.get(&self.admin_url("/metrics")).expect("/metrics answers");
        text.lines()
            .filter(|line| line.starts_with(&format!("{family}{{")) || line.starts_with(&format!("{family} ")))
            .map(|line| line.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
            .sum()
    }

    fn review_directly(&self, review: &Value) -> Value {
        let client = self.webhook_client.as_ref().unwrap();
        let url = format!("https://127.0.0.1:{}/validate?timeout=5s", self.webhook_port);
        self.runtime.block_on(async {
            let response = client.post(&url).json(review).send().await.expect("portcullis answers");
            assert_eq!(response.status().as_u16(), 200);
            response.json::<Value>().await.unwrap()
        })
    }

    // -----------------------------------------------------------------------
    // Scenarios

    fn setup(&mut self) {
        let version = self.kubectl(&["version", "--short"]);
        assert_eq!(version.code, 0, "{version:?}");
        println!("{}", version.stdout.trim_end());
        assert!(version.stdout.contains("Client Version: v1.20.2"), "kubectl from the same source: {version:?}");
        assert!(version.stdout.contains("Server Version: v1.20.2"), "{version:?}");

        // kube-apiserver v1.20 does not label namespaces with their name yet (v1.21 does, on
        // every namespace); the webhooks select on that label to skip kube-system and
        // portcullis-system, so it is set here as a newer API server would set it.
        let kube_system = self.json(&["get", "namespace", "kube-system"]);
        assert!(kube_system["metadata"]["labels"][NAME_LABEL].is_null(), "v1.20 sets no name label");
        for name in ["kube-system", "kube-public", "kube-node-lease", "default"] {
            self.kubectl_ok(
                &["label", "namespace", name, &format!("{NAME_LABEL}={name}")],
                &format!("namespace/{name} labeled\n"),
            );
        }
        self.namespace("portcullis-system", &[]);
        // The test namespaces. `shop` and `moving` are production by label only (their names
        // match none of the Environment's globs), so only the namespace cache makes them so.
        self.namespace("shop", &[("environment", "production")]);
        self.namespace("moving", &[("environment", "production")]);
        self.namespace("web", &[]);
        self.namespace("sandbox", &[("environment", "production"), ("portcullis.dev/webhook", "disabled")]);
        let ingress_class = self.manifest(
            "ingressclass-nginx.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\nspec:\n  controller: k8s.io/ingress-nginx\n",
        );
        self.kubectl_ok(&["apply", "-f", &ingress_class], "ingressclass.networking.k8s.io/nginx created\n");

        // The webhook's serving certificate from `portcullis certs`, for 127.0.0.1.
        let pki = self.dir.join("webhook-pki");
        let certs = Command::new(portcullis_bin())
            .args(["certs", "--dns", "localhost", "--ip", "127.0.0.1", "--out"])
            .arg(&pki)
            .output()
            .unwrap();
        assert!(certs.status.success(), "portcullis certs: {}", String::from_utf8_lossy(&certs.stderr));
        let ca_bundle = String::from_utf8(certs.stdout).unwrap().trim().to_owned();
        let ca_pem = std::fs::read(pki.join("ca.crt")).unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.encode(&ca_pem), ca_bundle);
        let ca = reqwest::Certificate::from_pem(&ca_pem).unwrap();
        self.webhook_client = Some(
            reqwest::Client::builder().tls_certs_only([ca]).no_proxy().timeout(Duration::from_secs(5)).build().unwrap(),
        );

        self.start_portcullis();
        let synced = std::fs::read_to_string(self.dir.join("portcullis.log")).unwrap();
        assert!(synced.contains("namespace cache synced"), "{synced}");
        assert_eq!(self.metric("portcullis_namespace_cache_stale"), Some(0.0));

        // The repository's webhook configurations, with clientConfig pointing at 127.0.0.1.
        let rendered = common::manifests::webhooks().0;
        let docs = rendered.iter().map(|doc| self.to_loopback(doc, &ca_bundle)).collect::<Vec<_>>();
        let kinds = docs.iter().map(|doc| doc["kind"].as_str().unwrap()).collect::<Vec<_>>();
        assert_eq!(kinds, ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": docs});
        let path = self.manifest("webhooks.json", &serde_json::to_string_pretty(&list).unwrap());
        self.kubectl_ok(
            &["apply", "-f", &path],
            "mutatingwebhookconfiguration.admissionregistration.k8s.io/portcullis created\n\
             validatingwebhookconfiguration.admissionregistration.k8s.io/portcullis created\n",
        );
        // The API server picks new configurations up from its informer: wait until a
        // denial shows they are in force.
        let probe = self.nodeport_manifest("probe", "shop");
        let (_, took) = eventually("the webhooks are in force", Duration::from_secs(30), || {
            let run = self.kubectl(&["apply", "--dry-run=server", "-f", &probe]);
            (run.code == 1 && run.stderr.contains(VALIDATE)).then_some(())
        });
        println!("webhooks in force {:.2}s after kubectl apply", took.as_secs_f64());

        self.start_prometheus();
    }

    /// A rendered webhook configuration with each `clientConfig.service` replaced by the
    /// `url` of the same path on 127.0.0.1 and the CA of `portcullis certs`; nothing else changes.
    fn to_loopback(&self, doc: &Value, ca_bundle: &str) -> Value {
        let mut doc = doc.clone();
        for webhook in doc["webhooks"].as_array_mut().expect("webhooks") {
            let service = &webhook["clientConfig"]["service"];
            assert_eq!(service["namespace"], "portcullis-system");
            assert_eq!(service["name"], "portcullis");
            let path = service["path"].as_str().expect("service.path");
            webhook["clientConfig"] =
                json!({"url": format!("https://127.0.0.1:{}{path}", self.webhook_port), "caBundle": ca_bundle});
        }
        doc
    }

    fn nodeport_manifest(&self, name: &str, namespace: &str) -> String {
        self.manifest(
            &format!("service-{namespace}-{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  \
                 type: NodePort\n  selector:\n    app: {name}\n  ports:\n    - name: http\n      port: 80\n      \
                 targetPort: 8080\n"
            ),
        )
    }

    fn clusterip_manifest(&self, name: &str, namespace: &str) -> String {
        self.manifest(
            &format!("service-{namespace}-{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  \
                 selector:\n    app: {name}\n  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n"
            ),
        )
    }

    fn ingress_manifest(&self, name: &str, namespace: &str, tls: bool) -> String {
        let tls = if tls { "  tls:\n    - hosts: [shop.example.com]\n      secretName: shop-tls\n" } else { "" };
        self.manifest(
            &format!("ingress-{namespace}-{name}.yaml"),
            &format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: \
                 {namespace}\nspec:\n  ingressClassName: nginx\n{tls}  rules:\n    - host: shop.example.com\n      \
                 http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n  \
                 \x20            service:\n                name: web\n                port:\n                  \
                 number: 80\n"
            ),
        )
    }

    fn denial(&self, creating: &str, policy: &str, object: &str, text: &str) -> String {
        format!(
            "Error from server (Forbidden): error when creating \"{creating}\": admission webhook \"{VALIDATE}\" \
             denied the request: [{policy}] {object}: {text}\n"
        )
    }

    /// Reviews answered so far (every webhook, every verdict).
    fn reviews(&self) -> f64 {
        self.metric_sum("portcullis_admission_requests_total")
    }

    fn system_namespaces_not_intercepted(&mut self) {
        let before = self.reviews();
        for namespace in ["kube-system", "portcullis-system"] {
            let nodeport = self.nodeport_manifest("e2e-nodeport", namespace);
            self.kubectl_ok(&["apply", "-f", &nodeport], "service/e2e-nodeport created\n");
            let ingress = self.ingress_manifest("e2e-plain", namespace, false);
            self.kubectl_ok(&["apply", "-f", &ingress], "ingress.networking.k8s.io/e2e-plain created\n");
        }
        assert_eq!(self.reviews(), before, "no review reached portcullis");
    }

    fn opt_out_not_intercepted(&mut self) {
        let before = self.reviews();
        // `sandbox` is production by label, where a NodePort is denied, but opted out.
        let nodeport = self.nodeport_manifest("web", "sandbox");
        self.kubectl_ok(&["apply", "-f", &nodeport], "service/web created\n");
        let ingress = self.ingress_manifest("plain", "sandbox", false);
        self.kubectl_ok(&["apply", "-f", &ingress], "ingress.networking.k8s.io/plain created\n");
        assert_eq!(self.reviews(), before, "no review reached portcullis");
    }

    fn fail_closed(&mut self) {
        self.stop("portcullis");
        let port = self.webhook_port;
        let refused = |webhook: &str, path: &str| {
            format!(
                "Internal error occurred: failed calling webhook \"{webhook}\": Post \
                 \"https://127.0.0.1:{port}{path}?timeout=5s\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        };
        let service = self.clusterip_manifest("while-down", "shop");
        self.kubectl_fails(
            &["apply", "-f", &service],
            &format!(
                "Error from server (InternalError): error when creating \"{service}\": {}\n",
                refused(VALIDATE, "/validate")
            ),
        );
        let ingress = self.ingress_manifest("while-down", "web", true);
        self.kubectl_fails(
            &["apply", "-f", &ingress],
            &format!(
                "Error from server (InternalError): error when creating \"{ingress}\": {}\n",
                refused(MUTATE, "/mutate")
            ),
        );
        let get = self.kubectl(&["get", "service", "while-down", "-n", "shop"]);
        assert_eq!(get.stderr, "Error from server (NotFound): services \"while-down\" not found\n");
        // No lock-out: what the webhooks skip still works.
        for namespace in ["kube-system", "portcullis-system"] {
            let service = self.clusterip_manifest("while-down", namespace);
            self.kubectl_ok(&["apply", "-f", &service], "service/while-down created\n");
        }
        self.start_portcullis();
        self.kubectl_ok(&["apply", "-f", &service], "service/while-down created\n");
    }

    fn nodeport_denied_then_relabel(&mut self) {
        let path = self.nodeport_manifest("web", "moving");
        self.kubectl_fails(
            &["apply", "-f", &path],
            &self.denial(&path, "no-nodeport-in-production", "Service moving/web", NODEPORT_TEXT),
        );
        self.expect_rejection("no-nodeport-in-production", "Service", "CREATE", "moving", false);

        // Relabelled, the namespace is no longer production once the reflector has the change.
        let took = self.relabel("moving", "staging", true);
        self.measured.push(format!("relabel production -> staging followed (NodePort allowed) after {took:.2}s"));
        self.kubectl_ok(&["apply", "-f", &path], "service/web created\n");
    }

    /// Labels `namespace` with `environment=<environment>` and polls a server-side dry run of a
    /// NodePort until it is allowed (`allowed`) or denied; the seconds that took.
    fn relabel(&mut self, namespace: &str, environment: &str, allowed: bool) -> f64 {
        let probe = self.nodeport_manifest("relabel-probe", namespace);
        let started = Instant::now();
        self.kubectl_ok(
            &["label", "namespace", namespace, &format!("environment={environment}"), "--overwrite"],
            &format!("namespace/{namespace} labeled\n"),
        );
        let mut denials = 0;
        let result = eventually(
            &format!("a NodePort in {namespace} is {}", if allowed { "allowed" } else { "denied" }),
            Duration::from_secs(30),
            || {
                let run = self.kubectl(&["apply", "--dry-run=server", "-f", &probe]);
                match run.code {
                    0 => {
                        assert_eq!(run.stdout, "service/relabel-probe created (server dry run)\n");
                        allowed.then_some(())
                    }
                    _ => {
                        assert!(run.stderr.contains("[no-nodeport-in-production]"), "{run:?}");
                        denials += 1;
                        (!allowed).then_some(())
                    }
                }
            },
        );
        let took = started.elapsed().as_secs_f64();
        let _ = result;
        for _ in 0..denials {
            self.expect_rejection("no-nodeport-in-production", "Service", "CREATE", namespace, true);
        }
        took
    }

    fn dry_run_denied(&mut self) {
        let path = self.nodeport_manifest("web", "shop");
        self.kubectl_fails(
            &["apply", "--dry-run=server", "-f", &path],
            &self.denial(&path, "no-nodeport-in-production", "Service shop/web", NODEPORT_TEXT),
        );
        self.expect_rejection("no-nodeport-in-production", "Service", "CREATE", "shop", true);
        let get = self.kubectl(&["get", "service", "web", "-n", "shop"]);
        assert_eq!((get.code, get.stderr.as_str()), (1, "Error from server (NotFound): services \"web\" not found\n"));
    }

    fn patch_denied(&mut self) {
        let path = self.clusterip_manifest("api", "shop");
        self.kubectl_ok(&["apply", "-f", &path], "service/api created\n");
        self.in_watch_cache("/api/v1/namespaces/shop/services/api");
        self.kubectl_fails(
            &["patch", "service", "api", "-n", "shop", "-p", r#"{"spec":{"type":"NodePort"}}"#],
            &format!(
                "Error from server (Forbidden): admission webhook \"{VALIDATE}\" denied the request: \
                 [no-nodeport-in-production] Service shop/api: {NODEPORT_TEXT}\n"
            ),
        );
        self.expect_denied_update("no-nodeport-in-production", "Service", "shop");
        let stored = self.json(&["get", "service", "api", "-n", "shop"]);
        assert_eq!(stored["spec"]["type"], "ClusterIP");
    }

    fn create_service_nodeport_denied(&mut self) {
        self.kubectl_fails(
            &["create", "service", "nodeport", "np", "--tcp=80:8080", "-n", "shop"],
            &format!(
                "error: failed to create NodePort service: admission webhook \"{VALIDATE}\" denied the request: \
                 [no-nodeport-in-production] Service shop/np: {NODEPORT_TEXT}\n"
            ),
        );
        self.expect_rejection("no-nodeport-in-production", "Service", "CREATE", "shop", false);
    }

    fn existing_violation_warns(&mut self) {
        // moving/web is a NodePort, allowed while `moving` was staging; production again now.
        let took = self.relabel("moving", "production", false);
        self.measured.push(format!("relabel staging -> production followed (NodePort denied) after {took:.2}s"));
        let run = self.kubectl(&["label", "service", "web", "-n", "moving", "tier=frontend"]);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (
                0,
                "service/web labeled\n",
                format!(
                    "Warning: [no-nodeport-in-production] Service moving/web: {NODEPORT_TEXT} (pre-existing, allowed \
                     for now)\n"
                )
                .as_str()
            )
        );
        let stored = self.json(&["get", "service", "web", "-n", "moving"]);
        assert_eq!(stored["metadata"]["labels"]["tier"], "frontend");
    }

    fn ingress_without_tls_denied(&mut self) {
        let path = self.ingress_manifest("plain", "web", false);
        self.kubectl_fails(
            &["apply", "-f", &path],
            &self.denial(&path, "require-ingress-tls", "Ingress web/plain", INGRESS_TLS_TEXT),
        );
        self.expect_rejection("require-ingress-tls", "Ingress", "CREATE", "web", false);
    }

    fn secure_ingress_mutated(&mut self) {
        let path = self.ingress_manifest("secure", "web", true);
        let run = self.kubectl(&["apply", "-f", &path]);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (
                0,
                "ingress.networking.k8s.io/secure created\n",
                "Warning: [ingress-source-allow-list] Ingress web/secure: no source allow-list, so any client can \
                 reach it; set nginx.ingress.kubernetes.io/whitelist-source-range to the client CIDRs\n\
                 Warning: [warn-ingress-auth] Ingress web/secure: no authentication for the nginx controller; set \
                 nginx.ingress.kubernetes.io/auth-url, auth-type+auth-secret or auth-tls-secret, or \
                 portcullis.dev/auth: application\n"
            )
        );
        let stored = self.json(&["get", "ingress", "secure", "-n", "web"]);
        let mut annotations = stored["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        assert_eq!(Value::Object(annotations), json!({"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}));
    }

    fn snippet_annotation_denied(&mut self) {
        self.in_watch_cache("/apis/networking.k8s.io/v1/namespaces/web/ingresses/secure");
        self.kubectl_fails(
            &[
                "annotate",
                "ingress",
                "secure",
                "-n",
                "web",
                "nginx.ingress.kubernetes.io/configuration-snippet=more_set_headers \"X-Debug: on\";",
            ],
            &format!(
                "Error from server (Forbidden): admission webhook \"{VALIDATE}\" denied the request: \
                 [no-configuration-snippets] Ingress web/secure: {SNIPPET_TEXT}\n"
            ),
        );
        self.expect_denied_update("no-configuration-snippets", "Ingress", "web");
        let stored = self.json(&["get", "ingress", "secure", "-n", "web"]);
        assert!(stored["metadata"]["annotations"]["nginx.ingress.kubernetes.io/configuration-snippet"].is_null());
    }

    fn api_server_outage(&mut self) {
        assert_eq!(self.metric("portcullis_namespace_cache_stale"), Some(0.0));
        let errors_before = self.metric("portcullis_namespace_watch_errors_total").unwrap();
        let killed = Instant::now();
        self.cluster("apiserver-stop");
        let (_, noticed) = eventually("portcullis_namespace_cache_stale is 1", Duration::from_secs(30), || {
            (self.metric("portcullis_namespace_cache_stale") == Some(1.0)).then_some(())
        });
        self.measured.push(format!("API server killed: cache reported stale after {:.2}s", noticed.as_secs_f64()));

        // Down for a minute; reviews meanwhile are judged on the last snapshot.
        let mut sent = 0;
        while killed.elapsed() < Duration::from_secs(60) {
            sent += 1;
            self.review_on_snapshot(sent);
            std::thread::sleep(Duration::from_secs(10).min(Duration::from_secs(60).saturating_sub(killed.elapsed())));
        }
        assert_eq!(self.metric("portcullis_namespace_cache_stale"), Some(1.0), "stale while the API server is down");
        assert!(self.metric("portcullis_namespace_watch_errors_total").unwrap() > errors_before);

        self.cluster("apiserver-start");
        let back = Instant::now();
        self.measured.push(format!(
            "API server down {:.1}s; {sent} reviews meanwhile judged on the last snapshot",
            killed.elapsed().as_secs_f64()
        ));
        let (_, current) = eventually("portcullis_namespace_cache_stale is back to 0", Duration::from_secs(60), || {
            (self.metric("portcullis_namespace_cache_stale") == Some(0.0)).then_some(())
        });
        self.measured
            .push(format!("API server ready again: cache current (stale 0) {:.2}s later", current.as_secs_f64()));
        assert!(current < Duration::from_secs(10), "stale {current:?} after the API server was back");
        let log = std::fs::read_to_string(self.dir.join("portcullis.log")).unwrap();
        assert!(log.contains("namespace watch recovered; namespace labels are current again"), "{log}");

        // A relabel made after recovery is followed within seconds: by the live watch.
        let took = self.relabel("shop", "staging", true);
        self.measured.push(format!(
            "relabel after recovery followed after {took:.2}s ({:.1}s after the API server was back)",
            back.elapsed().as_secs_f64()
        ));
        assert!(took < 5.0, "relabel after recovery took {took:.2}s");
        let took = self.relabel("shop", "production", false);
        assert!(took < 5.0, "relabel back took {took:.2}s");
    }

    /// `cluster.sh apiserver-stop` (SIGKILL) or `apiserver-start` (waits until ready).
    fn cluster(&self, command: &str) {
        let status = Command::new(&self.cluster_sh).arg(command).status().unwrap();
        assert!(status.success(), "cluster.sh {command}");
    }

    /// Nothing but portcullis can send a review while the API server is down: send it the API
    /// server's own body for a NodePort CREATE (captured from v1.20.2) in `shop`, which is
    /// production by label only, so the denial shows the last snapshot of labels is in use.
    fn review_on_snapshot(&mut self, n: u32) {
        let mut review = common::in_namespace(common::fixture("v1.20/service-create-nodeport.json"), "shop");
        review["request"]["uid"] = json!(format!("00000000-0000-0000-0000-{n:012}"));
        let answer = self.review_directly(&review);
        let response = &answer["response"];
        assert_eq!(response["uid"], review["request"]["uid"]);
        assert_eq!(response["allowed"], false, "{answer}");
        assert_eq!(
            response["status"]["message"],
            format!("[no-nodeport-in-production] Service shop/web-nodeport: {NODEPORT_TEXT}")
        );
        self.expect_rejection("no-nodeport-in-production", "Service", "CREATE", "shop", false);
        assert_eq!(self.get(&self.admin_url("/readyz")).unwrap().0, 200, "still ready on the snapshot");
    }

    /// As [`E2e::api_server_outage`], but the API server does not refuse connections while it
    /// is gone, it never answers them (its packets dropped, as when its node is gone). With
    /// kube's 30 s connect timeout one attempt then hung for 30 s: the outage was reported 30 s
    /// late, and an attempt started just before the server came back kept the cache stale for
    /// seconds after (its next SYN retransmission or its timeout): the cause of the 10 s seen by
    /// hand. The caches' client bounds a connect by `cluster::watch::CONNECT_TIMEOUT` (2 s).
    fn api_server_unreachable(&mut self) {
        assert_eq!(self.metric("portcullis_namespace_cache_stale"), Some(0.0));
        let cut = Instant::now();
        self.cluster("unreachable-on");
        self.cluster("apiserver-stop");
        let (_, noticed) = eventually("portcullis_namespace_cache_stale is 1", Duration::from_secs(45), || {
            (self.metric("portcullis_namespace_cache_stale") == Some(1.0)).then_some(())
        });
        self.measured.push(format!(
            "API server unreachable and killed: cache reported stale after {:.2}s",
            cut.elapsed().as_secs_f64()
        ));
        assert!(noticed < Duration::from_secs(8), "the outage was noticed after {noticed:?}");
        let mut sent = 100;
        while cut.elapsed() < Duration::from_secs(40) {
            sent += 1;
            self.review_on_snapshot(sent);
            std::thread::sleep(Duration::from_secs(10).min(Duration::from_secs(40).saturating_sub(cut.elapsed())));
        }
        self.cluster("unreachable-off");
        self.cluster("apiserver-start");
        let (_, current) = eventually("portcullis_namespace_cache_stale is back to 0", Duration::from_secs(60), || {
            (self.metric("portcullis_namespace_cache_stale") == Some(0.0)).then_some(())
        });
        self.measured.push(format!(
            "API server reachable and ready again after {:.1}s: cache current {:.2}s later",
            cut.elapsed().as_secs_f64() - current.as_secs_f64(),
            current.as_secs_f64()
        ));
        assert!(current < Duration::from_secs(10), "stale {current:?} after the API server was back");
        let took = self.relabel("shop", "staging", true);
        assert!(took < 5.0, "relabel after recovery took {took:.2}s");
        let took = self.relabel("shop", "production", false);
        assert!(took < 5.0, "relabel back took {took:.2}s");
    }

    fn start_prometheus(&mut self) {
        let rules = common::repo("manifests/monitoring/rules.yaml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  \
             - job_name: portcullis\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            rules.display(),
            self.admin_port
        );
        let config_path = self.dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let prometheus = std::env::var("E2E_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
        let mut command = Command::new(prometheus);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", self.dir.join("prometheus-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.prometheus_port))
            .arg("--log.level=info");
        self.prometheus = Some(self.spawn("prometheus", &mut command));
        let url = format!("http://127.0.0.1:{}/-/ready", self.prometheus_port);
        eventually("prometheus is ready", Duration::from_secs(60), || {
            self.get(&url).ok().filter(|(status, _)| *status == 200)
        });
    }

    fn prometheus_api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let url =
            url::Url::parse_with_params(&format!("http://127.0.0.1:{}{path}", self.prometheus_port), query).unwrap();
        let body: Value =
            self.runtime.block_on(async { self.http.get(url).send().await.unwrap().json().await.unwrap() });
        assert_eq!(body["status"], "success", "{path}: {body}");
        body["data"].clone()
    }

    fn prometheus_metrics(&mut self) {
        // The alert rules: every group and rule of rules.yaml loaded, evaluated without error.
        let file = std::fs::read_to_string(common::repo("manifests/monitoring/rules.yaml")).unwrap();
        let file: Value = serde_saphyr::from_str(&file).unwrap();
        let names = |groups: &Value, key: &str| -> Vec<String> {
            groups
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|group| group["rules"].as_array().unwrap().iter())
                .map(|rule| rule[key].as_str().or_else(|| rule["record"].as_str()).unwrap().to_owned())
                .collect()
        };
        let want = names(&file["groups"], "alert");
        assert!(!want.is_empty());
        let (rules, _) = eventually("every rule evaluated", Duration::from_secs(30), || {
            let rules = self.prometheus_api("/api/v1/rules", &[]);
            let all = rules["groups"].as_array()?.iter().flat_map(|g| g["rules"].as_array().unwrap().clone());
            all.clone().all(|rule| rule["health"] == "ok").then_some(rules)
        });
        assert_eq!(names(&rules["groups"], "name"), want);
        for rule in rules["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()) {
            assert!(rule.get("lastError").is_none_or(|e| e == ""), "{rule}");
        }
        let log = std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap();
        assert!(log.contains("Completed loading of configuration file"), "{log}");
        assert!(!log.contains("level=error"), "{log}");

        // The rejections, as Prometheus reports them, are exactly the denials above.
        let want = self.expected.clone();
        let started = Instant::now();
        loop {
            let data = self.prometheus_api("/api/v1/query", &[("query", "portcullis_admission_rejections_total")]);
            let seen = data["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|series| {
                    let label = |name: &str| series["metric"][name].as_str().unwrap().to_owned();
                    let key =
                        (label("policy"), label("kind"), label("operation"), label("namespace"), label("dry_run"));
                    (key, series["value"][1].as_str().unwrap().parse::<u64>().unwrap())
                })
                .collect::<BTreeMap<_, _>>();
            if seen == want {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Prometheus reports {seen:#?}, the denials were {want:#?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        for ((policy, kind, operation, namespace, dry_run), count) in &want {
            println!(
                "  portcullis_admission_rejections_total{{policy=\"{policy}\",kind=\"{kind}\",operation=\"{operation}\",namespace=\"{namespace}\",dry_run=\"{dry_run}\"}} {count}"
            );
        }
    }
}

/// The binary under test: the one cargo built with this test, or `E2E_PORTCULLIS` (say, a
/// release build).
fn portcullis_bin() -> PathBuf {
    std::env::var_os("E2E_PORTCULLIS").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_portcullis")), PathBuf::from)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Calls `check` every 100 ms until it gives a value; the value and how long that took.
/// Panics with `what` after `timeout`.
fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> (T, Duration) {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return (value, started.elapsed());
        }
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
