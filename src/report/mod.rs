//! `portcullis report`: the exposure inventory ([`crate::inventory`]) of
//! manifests (read exactly as `portcullis check` reads them) or of a live
//! cluster (`--cluster`: paginated lists, Gateway API kinds only when
//! discovery says their CRDs are installed), as a table, JSON or one
//! self-contained HTML page.

pub mod cluster;
pub mod render;

use std::path::PathBuf;
use std::time::Duration;

use crate::check::{self, input, namespaces};
use crate::inventory;
use crate::policy::PolicySource;

/// Report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Html,
}

/// Exit codes: the report was produced (violations or not); `--fail-on-violations`
/// and a Deny policy fails; usage or input error.
pub const EXIT_REPORTED: u8 = 0;
pub const EXIT_VIOLATIONS: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

/// Everything `portcullis report` was asked to do.
#[derive(Clone, Debug)]
pub struct Run {
    pub paths: Vec<String>,
    pub policies: Option<PathBuf>,
    /// What named the policies, for errors: `--policies` or `PORTCULLIS_POLICIES`.
    pub policies_flag: String,
    pub namespace: Option<String>,
    pub namespace_labels: Option<PathBuf>,
    /// Read the objects from the cluster instead of manifests.
    pub cluster: bool,
    pub kubeconfig: Option<PathBuf>,
    pub cluster_timeout: Duration,
    pub output: OutputFormat,
    /// Exit 1 when a Deny policy fails on an entry point.
    pub fail_on_violations: bool,
    /// Input that cannot be read does not make the exit code 2 (still said).
    pub skip_unknown: bool,
}

impl Default for Run {
    fn default() -> Run {
        Run {
            paths: Vec::new(),
            policies: None,
            policies_flag: "--policies".to_owned(),
            namespace: None,
            namespace_labels: None,
            cluster: false,
            kubeconfig: None,
            cluster_timeout: cluster::TIMEOUT,
            output: OutputFormat::Table,
            fail_on_violations: false,
            skip_unknown: false,
        }
    }
}

/// Runs `report`; returns the exit code. The report goes to `out`, problems to `err`.
pub fn run(run: &Run, stdin: &mut dyn std::io::Read, out: &mut dyn std::io::Write, err: &mut dyn std::io::Write) -> u8 {
    match run_inner(run, stdin, out, err) {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(err, "portcullis report: {message}");
            EXIT_ERROR
        }
    }
}

fn run_inner(
    run: &Run,
    stdin: &mut dyn std::io::Read,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<u8, String> {
    if run.cluster && !run.paths.is_empty() {
        return Err("--cluster reads the cluster: give no PATH with it".to_owned());
    }
    let policies = PolicySource::resolve(run.policies.as_deref(), &run.policies_flag).map_err(|e| e.to_string())?;
    let set = policies.load().map_err(|e| e.to_string())?;
    let mut options = check::Options { namespace: run.namespace.clone(), ..check::Options::default() };
    let (sources, from) = if run.cluster {
        let listed = cluster::list(run.kubeconfig.as_deref(), run.cluster_timeout, &set)?;
        tracing::info!(objects = listed.objects.len(), cluster = %listed.url, "cluster listed");
        options.ingress_classes = cluster::ingress_classes(&listed.objects);
        (vec![inventory::source_of(listed.objects)], format!("cluster {}", listed.url))
    } else {
        let sources = input::read(&run.paths, stdin).map_err(|e| e.to_string())?;
        let objects = sources.iter().flat_map(|source| &source.documents).flat_map(|d| check::objects(&d.value));
        options.ingress_classes = cluster::ingress_classes(objects.map(|(_, object)| object));
        let from = match run.paths.as_slice() {
            [] => "-".to_owned(),
            paths => paths.join(" "),
        };
        (sources, from)
    };
    if let Some(path) = &run.namespace_labels {
        options.namespace_labels.extend(namespaces::read_file(path)?);
    }
    let input_errors: Vec<String> = check::not_checked(&sources, &set)
        .into_iter()
        .filter(|not| not.input_error)
        .map(|not| {
            let source = &sources[not.source].name;
            match not.location {
                Some(at) => format!("{source}: document {} (line {}): {}", at.document + 1, at.line, not.reason),
                None => format!("{source}: {}", not.reason),
            }
        })
        .collect();
    for problem in &input_errors {
        let _ = writeln!(err, "portcullis report: cannot read {problem}");
    }
    let inventory = inventory::inventory(&sources, &set, &options);
    let context = render::Context { from: &from, policies: &policies.to_string() };
    let rendered = match run.output {
        OutputFormat::Table => render::table(&inventory, &context),
        OutputFormat::Json => format!("{:#}\n", render::json(&inventory, &context)),
        OutputFormat::Html => render::html(&inventory, &context),
    };
    out.write_all(rendered.as_bytes()).map_err(|e| e.to_string())?;
    if !input_errors.is_empty() && !run.skip_unknown {
        let _ = writeln!(
            err,
            "portcullis report: {} cannot be read (the report leaves them out); --skip-unknown accepts that",
            input_errors.len()
        );
        return Ok(EXIT_ERROR);
    }
    if run.fail_on_violations && inventory.summary().deny > 0 {
        return Ok(EXIT_VIOLATIONS);
    }
    Ok(EXIT_REPORTED)
}
