//! The command line: `portcullis serve | certs | policies | check | report | test | vap`. Every `serve` flag
//! can also be set through a `PORTCULLIS_...` environment variable.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Kubernetes admission webhook against unsafe exposure of Services, Ingresses and Gateway API routes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook (HTTPS) and the admin listener (metrics, probes).
    Serve(ServeArgs),
    /// Write ca.crt, tls.crt and tls.key for development or clusters without
    /// cert-manager, and print the base64 caBundle.
    Certs(CertsArgs),
    /// Load the policies and list each policy, its action and what it matches.
    Policies(PoliciesArgs),
    /// Evaluate manifests offline with the same engine and policies as the webhook.
    /// Exit code 0: no denial (warnings allowed); 1: at least one denial; 2: usage or input error,
    /// input that cannot be checked (unless --skip-unknown), or anything not checked with --strict.
    Check(CheckArgs),
    /// What is exposed: every external entry point of the manifests (or of the
    /// cluster, with --cluster) and how it is protected, worst first.
    /// Exit code 0: report produced (violations or not); 1: with --fail-on-violations,
    /// a Deny policy fails on an entry point; 2: usage or input error.
    Report(ReportArgs),
    /// Run the declarative policy test cases (PolicyTest documents) under DIR
    /// against the policies; prints PASS/FAIL per case and `N passed, N failed`.
    Test(TestArgs),
    /// Print a `cel` policy as a ValidatingAdmissionPolicy and its binding
    /// (admissionregistration.k8s.io/v1), named `portcullis-<policy>`, to move the rule
    /// into the API server; what they cannot express is a `# not equivalent:` comment
    /// line on top and a warning on standard error.
    /// Exit code 0: exported; 2: the policy's rule is not `cel`, or a usage or input error.
    Vap(VapArgs),
}

#[derive(Debug, Args)]
pub struct VapArgs {
    /// A policy file (every `cel` Policy in it is exported) or the name of a policy in
    /// the policy set.
    pub policy: String,
    /// Directory of policy files, for a policy by name and for the Environments a
    /// policy file refers to [default: ./policies when it is a directory, else the
    /// bundled policies built into the binary].
    #[arg(long, env = "PORTCULLIS_POLICIES")]
    pub policies: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Directory of test cases, one sub-directory per policy (`<DIR>/<policy>/*.yaml`).
    #[arg(default_value = "policies/tests")]
    pub dir: PathBuf,
    /// Directory of policy files [default: ./policies when it is a directory, else the
    /// bundled policies built into the binary].
    #[arg(long, env = "PORTCULLIS_POLICIES")]
    pub policies: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files, directories (searched for *.yaml, *.yml, *.json) or - for standard input
    /// (the default when no path is given).
    pub paths: Vec<String>,
    /// Directory of policy files [default: ./policies when it is a directory, else the
    /// bundled policies built into the binary].
    #[arg(long, env = "PORTCULLIS_POLICIES")]
    pub policies: Option<PathBuf>,
    /// Namespace of objects that name none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// YAML map of namespace name to its labels, for environment selectors
    /// (Namespace objects in the input add to it).
    #[arg(long)]
    pub namespace_labels: Option<PathBuf>,
    /// Read the labels of the cluster's Namespaces too (one read-only list of
    /// their metadata); --namespace-labels and Namespace objects in the input win.
    #[arg(long)]
    pub namespace_labels_from_cluster: bool,
    /// Kubeconfig for --namespace-labels-from-cluster (default: in-cluster
    /// config, then KUBECONFIG / ~/.kube/config).
    #[arg(long, requires = "namespace_labels_from_cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// How long --namespace-labels-from-cluster waits for the API server.
    #[arg(long, default_value = "10s", value_parser = parse_duration, requires = "namespace_labels_from_cluster")]
    pub cluster_timeout: Duration,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: crate::check::OutputFormat,
    /// Apply the mutating policies' patches and print the fixed manifests (the
    /// report goes to standard error).
    #[arg(long)]
    pub fix: bool,
    /// With --fix: rewrite the files in place instead of printing them.
    #[arg(long, requires = "fix")]
    pub write: bool,
    /// Input that cannot be checked (invalid YAML, not a Kubernetes object,
    /// Helm template syntax) is still reported but does not make the exit code 2.
    #[arg(long, conflicts_with = "strict")]
    pub skip_unknown: bool,
    /// Anything not checked (also an empty file, or an object of a kind no
    /// policy matches) makes the exit code 2.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Files, directories (searched for *.yaml, *.yml, *.json) or - for standard input
    /// (the default when no path is given and no --cluster).
    pub paths: Vec<String>,
    /// Read the objects from the cluster (read-only lists) instead of manifests.
    #[arg(long)]
    pub cluster: bool,
    /// Kubeconfig for --cluster (default: in-cluster config, then KUBECONFIG / ~/.kube/config).
    #[arg(long, requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// How long --cluster may take to list everything.
    #[arg(long, default_value = "60s", value_parser = parse_duration, requires = "cluster")]
    pub cluster_timeout: Duration,
    /// Directory of policy files [default: ./policies when it is a directory, else the
    /// bundled policies built into the binary].
    #[arg(long, env = "PORTCULLIS_POLICIES")]
    pub policies: Option<PathBuf>,
    /// Namespace of objects that name none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// YAML map of namespace name to its labels, for environment selectors
    /// (Namespace objects in the input add to it).
    #[arg(long)]
    pub namespace_labels: Option<PathBuf>,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: crate::report::OutputFormat,
    /// Exit 1 when a Deny policy fails on an entry point.
    #[arg(long)]
    pub fail_on_violations: bool,
    /// Input that cannot be read (invalid YAML, not a Kubernetes object, Helm
    /// template syntax) is said on standard error but does not make the exit code 2.
    #[arg(long)]
    pub skip_unknown: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the HTTPS webhook listener.
    #[arg(long, env = "PORTCULLIS_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP admin listener (/metrics, /healthz, /readyz).
    #[arg(long, env = "PORTCULLIS_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    pub admin_listen: SocketAddr,
    /// PEM certificate (chain) served by the webhook.
    #[arg(long, env = "PORTCULLIS_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// PEM private key of the certificate.
    #[arg(long, env = "PORTCULLIS_TLS_KEY")]
    pub tls_key: PathBuf,
    /// Directory of policy files.
    #[arg(long, env = "PORTCULLIS_POLICIES", default_value = "policies")]
    pub policies: PathBuf,
    /// Kubeconfig to reach the API server (default: in-cluster config, then
    /// KUBECONFIG / ~/.kube/config). Namespace labels are read from there.
    #[arg(long, env = "PORTCULLIS_KUBECONFIG", conflicts_with = "no_cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// Never contact an API server: environments match namespaces by name only.
    #[arg(long, env = "PORTCULLIS_NO_CLUSTER")]
    pub no_cluster: bool,
    /// How often to look for a rotated certificate and changed policy files
    /// (0s: never).
    #[arg(long, env = "PORTCULLIS_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub reload_interval: Duration,
    /// On SIGTERM, stay up but unready this long before draining (e.g. 5s), so
    /// the Service stops sending reviews to this pod first.
    #[arg(long, env = "PORTCULLIS_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// Reviews received or answered at once; beyond it requests are refused
    /// with 503 at once instead of queueing.
    #[arg(long, env = "PORTCULLIS_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// The longest one review may take, from its headers to the response (a
    /// slow body included); keep it below the webhooks' timeoutSeconds.
    #[arg(long, env = "PORTCULLIS_REQUEST_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// The longest in-flight reviews may take to finish on shutdown.
    #[arg(long, env = "PORTCULLIS_DRAIN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// How often the background audit judges the existing Services and
    /// Ingresses with the loaded policies (0s: no audit; needs a cluster).
    #[arg(long, env = "PORTCULLIS_AUDIT_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub audit_interval: Duration,
    /// Write the audit's findings as OpenReports Reports (openreports.io/v1alpha1),
    /// one per namespace; needs the Report CRD and the RBAC of
    /// manifests/components/audit-reports.
    #[arg(long, env = "PORTCULLIS_AUDIT_REPORTS")]
    pub audit_reports: bool,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, tls.crt and tls.key into.
    #[arg(long)]
    pub out: PathBuf,
    /// DNS names of the serving certificate (e.g. portcullis.portcullis-system.svc).
    #[arg(long = "dns", required = true, num_args = 1..)]
    pub dns: Vec<String>,
    /// IP addresses of the serving certificate.
    #[arg(long = "ip", num_args = 1..)]
    pub ip: Vec<IpAddr>,
    /// Validity of the serving certificate in days (the CA gets twice as long).
    #[arg(long, default_value_t = 365)]
    pub days: i64,
}

#[derive(Debug, Args)]
pub struct PoliciesArgs {
    /// Directory of policy files [default: ./policies when it is a directory, else the
    /// bundled policies built into the binary].
    #[arg(long, env = "PORTCULLIS_POLICIES")]
    pub policies: Option<PathBuf>,
}

/// What set `--policies` in a subcommand's matches, as errors name it:
/// `PORTCULLIS_POLICIES` when the environment did, else `--policies`.
pub fn policies_flag(matches: Option<&ArgMatches>) -> &'static str {
    // Only a subcommand that has the argument may be asked about it.
    let has = |m: &&ArgMatches| m.ids().any(|id| id.as_str() == "policies");
    match matches.filter(has).and_then(|m| m.value_source("policies")) {
        Some(ValueSource::EnvVariable) => "PORTCULLIS_POLICIES",
        _ => "--policies",
    }
}

/// Parses `250ms`, `5s` or `2m` (and a bare `0`: zero needs no unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 500ms, 5s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("{text:?} is not a duration like 500ms, 5s or 2m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn errors_name_what_set_the_policy_directory() {
        let flag = |args: &[&str]| {
            let matches = Cli::command().try_get_matches_from(args).unwrap();
            policies_flag(matches.subcommand().map(|(_, sub)| sub))
        };
        assert_eq!(flag(&["portcullis", "check", "--policies", "p"]), "--policies");
        assert_eq!(flag(&["portcullis", "policies"]), "--policies");
        assert_eq!(flag(&["portcullis", "certs", "--out", "o", "--dns", "d"]), "--policies");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("5"), Err("\"5\" is not a duration like 500ms, 5s or 2m".into()));
        assert!(parse_duration("s").is_err());
    }
}
