use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use tracing::{error, info};

use portcullis::cli::{Cli, Command, ServeArgs, policies_flag};
use portcullis::cluster::audit::{self, Audit};
use portcullis::cluster::{Caches, GatewayCache, IngressClassCache, NamespaceCache};
use portcullis::metrics::Metrics;
use portcullis::policy::{self, PolicySource, PolicyStore};
use portcullis::reload::{self, Reloaders};
use portcullis::suite;
use portcullis::webhook::{self as server, AppState, Limits, ServeConfig, certs};

/// mimalloc instead of glibc's malloc: the per-review path allocates and frees
/// small blocks from two worker threads (BENCHMARKS.md, issue 16).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // One crypto provider for the whole process, chosen explicitly.
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("no other rustls crypto provider is installed before main");
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    // What named --policies, for errors about it.
    let flag = policies_flag(matches.subcommand().map(|(_, sub)| sub));
    // kube-runtime warns on every retry of a failing watch; portcullis logs
    // an outage once (and counts the retries), so only its errors pass. `check`
    // says itself why the cluster could not be read: kube-client logs nothing.
    let filter = match cli.command {
        Command::Check(_) => "info,kube_runtime=error,kube_client=off",
        Command::Report(_) => "warn,kube_client=off",
        _ => "info,kube_runtime=error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();

    let result = match cli.command {
        Command::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
            .and_then(|runtime| runtime.block_on(serve(args))),
        Command::Certs(args) => {
            certs::generate(&args.dns, &args.ip, args.days).context("cannot generate certificates").and_then(|bundle| {
                certs::write(&args.out, &bundle)
                    .with_context(|| format!("cannot write certificates to {}", args.out.display()))?;
                eprintln!("wrote {0}/ca.crt, {0}/tls.crt and {0}/tls.key; caBundle:", args.out.display());
                println!("{}", bundle.ca_bundle());
                Ok(())
            })
        }
        Command::Check(args) => {
            let run = portcullis::check::Run {
                paths: args.paths,
                policies: args.policies,
                policies_flag: flag.to_owned(),
                namespace: Some(args.namespace),
                namespace_labels: args.namespace_labels,
                namespace_labels_from_cluster: args.namespace_labels_from_cluster,
                kubeconfig: args.kubeconfig,
                cluster_timeout: args.cluster_timeout,
                output: args.output,
                fix: args.fix,
                write: args.write,
                skip_unknown: args.skip_unknown,
                strict: args.strict,
                color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            };
            let code =
                portcullis::check::run(&run, &mut std::io::stdin(), &mut std::io::stdout(), &mut std::io::stderr());
            return ExitCode::from(code);
        }
        Command::Report(args) => {
            let run = portcullis::report::Run {
                paths: args.paths,
                policies: args.policies,
                policies_flag: flag.to_owned(),
                namespace: Some(args.namespace),
                namespace_labels: args.namespace_labels,
                cluster: args.cluster,
                kubeconfig: args.kubeconfig,
                cluster_timeout: args.cluster_timeout,
                output: args.output,
                fail_on_violations: args.fail_on_violations,
                skip_unknown: args.skip_unknown,
            };
            let code =
                portcullis::report::run(&run, &mut std::io::stdin(), &mut std::io::stdout(), &mut std::io::stderr());
            return ExitCode::from(code);
        }
        Command::Test(args) => {
            let result = PolicySource::resolve(args.policies.as_deref(), flag)
                .and_then(|source| Ok((source.load()?, source)))
                .map_err(anyhow::Error::from)
                .and_then(|(set, source)| Ok((set, source, suite::load_cases(&args.dir)?)));
            return match result {
                Ok((set, source, cases)) => {
                    let results = suite::run(&cases, &set);
                    println!("policies: {source}");
                    print!("{}", suite::render(&results));
                    if results.iter().all(suite::CaseResult::passed) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
                }
                Err(err) => {
                    eprintln!("portcullis test: {}", reason(&err));
                    ExitCode::from(2)
                }
            };
        }
        Command::Vap(args) => {
            let run =
                portcullis::vap::Run { policy: args.policy, policies: args.policies, policies_flag: flag.to_owned() };
            return ExitCode::from(portcullis::vap::run(&run, &mut std::io::stdout(), &mut std::io::stderr()));
        }
        Command::Policies(args) => PolicySource::resolve(args.policies.as_deref(), flag)
            .and_then(|source| Ok((source.load()?, source)))
            .map(|(set, source)| print!("policies: {source}\n{}", policy::describe(&set)))
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("portcullis: {}", reason(&err));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once: a cause whose text
/// the message already holds (an I/O error its wrapper quotes) is left out.
fn reason(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let sources = policy::read_sources(&args.policies)?;
    let set = policy::load_dir_sources(&args.policies, &sources)?;
    info!(policies = set.len(), dir = %args.policies.display(), "policies loaded");
    let metrics = Arc::new(Metrics::new());
    let store = PolicyStore::new(set);
    let mut client = None;
    let caches = if args.no_cluster {
        info!(
            "--no-cluster: environments match namespaces by name only, Ingress controllers by class name; routes are judged as if their Gateways were unknown"
        );
        Caches::default()
    } else {
        match portcullis::cluster::client(args.kubeconfig.as_deref()).await {
            Ok(found) => {
                client = Some(found.clone());
                Caches {
                    namespaces: Some(NamespaceCache::start(found.clone(), metrics.clone()).0),
                    ingress_classes: Some(IngressClassCache::start(found.clone()).0),
                    gateways: Some(GatewayCache::start(found, store.clone()).0),
                }
            }
            Err(err) if args.kubeconfig.is_none() => {
                info!(
                    %err,
                    "no cluster configuration found: environments match namespaces by name only, Ingress controllers by class name; routes are judged as if their Gateways were unknown"
                );
                Caches::default()
            }
            Err(err) => return Err(err.context("cannot use --kubeconfig")),
        }
    };
    // The background audit: only with a cluster and a non-zero interval; stopped when serving ends.
    let _audit = match client {
        Some(client) if !args.audit_interval.is_zero() => Some(Audit::start(
            client,
            store.clone(),
            caches.namespaces.clone(),
            caches.ingress_classes.clone(),
            metrics.clone(),
            audit::Options::new(args.audit_interval, args.audit_reports),
        )),
        Some(_) => {
            info!("--audit-interval 0: no background audit");
            None
        }
        None => {
            if !args.audit_interval.is_zero() {
                info!("no cluster: no background audit");
            }
            None
        }
    };
    let limits = Limits { max_in_flight: args.max_in_flight, request_timeout: args.request_timeout };
    let state = AppState::with_caches(store.clone(), metrics.clone(), caches, limits);
    let config = ServeConfig {
        listen: args.listen,
        admin_listen: args.admin_listen,
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
        shutdown_delay: args.shutdown_delay,
        drain_timeout: args.drain_timeout,
    };
    // Listen for SIGTERM before anything says "serving", so an early one is not lost.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let running = server::start(&config, state).await?;
    // Dropped (and so stopped) when serving ends.
    let _reloaders = (!args.reload_interval.is_zero()).then(|| {
        let certificate =
            reload::Certificate::new(args.tls_cert, args.tls_key, running.certificate.clone(), metrics.clone());
        let policies = reload::Policies::new(args.policies, sources, store, metrics);
        Reloaders::start(args.reload_interval, certificate, Some(policies))
    });
    tokio::select! {
        _ = terminate.recv() => info!(signal = "SIGTERM", "shutdown requested"),
        _ = tokio::signal::ctrl_c() => info!(signal = "SIGINT", "shutdown requested"),
    }
    running.shutdown();
    running.wait().await.inspect_err(|err| error!(%err, "shutdown failed"))?;
    Ok(())
}
