//! `portcullis check`: the webhook's engine and policies run offline over
//! manifests, so CI gets the same verdicts and messages the cluster would give.
//! Every Service and Ingress is evaluated as a CREATE by its namespace
//! (`metadata.namespace`, else `--namespace`, else `default`); namespace labels
//! come from Namespace objects in the input and from `--namespace-labels`.

pub mod fix;
pub mod input;
pub mod output;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::admission::{Requester, Review};
use crate::engine::{self, Decision, Kind, NamespaceLabels, Operation, PolicySet, Stage};

pub use input::{Document, Format, InputError, Source};

/// Where an object sits in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Index into the sources.
    pub source: usize,
    /// 0-based document index within the source.
    pub document: usize,
    /// Index within a `List` document's `items`.
    pub item: Option<usize>,
    /// 1-based line where the document's content starts.
    pub line: usize,
}

/// The verdict on one Service or Ingress.
#[derive(Clone, Debug)]
pub struct Checked {
    pub location: Location,
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// What `/validate` would answer.
    pub validation: Decision,
    /// What `/mutate` would answer (only its patch matters).
    pub mutation: Decision,
}

impl Checked {
    /// The object a message line is about.
    pub fn about(&self) -> engine::About<'_> {
        engine::About { kind: self.kind, namespace: &self.namespace, name: &self.name }
    }

    /// The message line of one of its validation findings.
    pub fn line(&self, finding: &engine::PolicyFinding, set: &PolicySet) -> String {
        self.validation.line(finding, self.about(), set)
    }
}

/// Options of `check`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Namespace of objects that name none (default `default`).
    pub namespace: Option<String>,
    /// Labels per namespace, from `--namespace-labels`.
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// The objects of a document: itself, or the items of a `List`.
pub fn objects(value: &Value) -> Vec<(Option<usize>, &Value)> {
    let is_list = value.get("kind").and_then(Value::as_str).is_some_and(|kind| kind.ends_with("List"));
    match value.get("items").and_then(Value::as_array) {
        Some(items) if is_list => items.iter().enumerate().map(|(index, item)| (Some(index), item)).collect(),
        _ if value.is_object() => vec![(None, value)],
        _ => Vec::new(),
    }
}

fn kind_of(value: &Value) -> Option<&str> {
    value.get("kind").and_then(Value::as_str)
}

fn metadata_str<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get("metadata")?.get(field)?.as_str().filter(|s| !s.is_empty())
}

/// Evaluates every Service and Ingress in the sources.
pub fn check(sources: &[Source], set: &PolicySet, options: &Options) -> Vec<Checked> {
    // Namespace objects in the input add to (and win over) --namespace-labels.
    let mut labels = options.namespace_labels.clone();
    for source in sources {
        for document in &source.documents {
            for (_, object) in objects(&document.value) {
                if kind_of(object).is_some_and(|k| k.eq_ignore_ascii_case("Namespace"))
                    && let Some(name) = metadata_str(object, "name")
                {
                    let found: BTreeMap<String, String> = object
                        .pointer("/metadata/labels")
                        .and_then(|l| serde_json::from_value(l.clone()).ok())
                        .unwrap_or_default();
                    labels.entry(name.to_owned()).or_default().extend(found);
                }
            }
        }
    }
    let mut checked = Vec::new();
    for (source_index, source) in sources.iter().enumerate() {
        for (document_index, document) in source.documents.iter().enumerate() {
            for (item, value) in objects(&document.value) {
                if Kind::parse(kind_of(value).unwrap_or_default()) == Kind::Other {
                    continue;
                }
                let namespace = Review::namespace_of(value, options.namespace.as_deref());
                let review = Review::from_manifest(value, namespace, Operation::Create, Requester::default());
                let namespace_labels = NamespaceLabels::from(labels.get(namespace));
                let validation = engine::evaluate(&review.input(Stage::Validate), set, namespace_labels);
                let mutation = engine::evaluate(&review.input(Stage::Mutate), set, namespace_labels);
                checked.push(Checked {
                    location: Location { source: source_index, document: document_index, item, line: document.line },
                    kind: review.kind,
                    namespace: review.namespace,
                    name: review.name,
                    validation,
                    mutation,
                });
            }
        }
    }
    checked
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub objects: usize,
    pub denied: usize,
    pub warned: usize,
    pub mutated: usize,
}

pub fn summarize(checked: &[Checked]) -> Summary {
    Summary {
        objects: checked.len(),
        denied: checked.iter().filter(|c| !c.validation.allowed()).count(),
        warned: checked.iter().filter(|c| c.validation.has_warnings()).count(),
        mutated: checked.iter().filter(|c| !c.mutation.patch.0.is_empty()).count(),
    }
}

/// Report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Sarif,
}

/// Everything `portcullis check` was asked to do.
#[derive(Clone, Debug)]
pub struct Run {
    pub paths: Vec<String>,
    pub policies: std::path::PathBuf,
    pub namespace: Option<String>,
    pub namespace_labels: Option<std::path::PathBuf>,
    pub output: OutputFormat,
    pub fix: bool,
    pub write: bool,
    pub color: bool,
}

/// Exit codes: no denial (warnings allowed), at least one denial, usage or input error.
pub const EXIT_CLEAN: u8 = 0;
pub const EXIT_DENIED: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

/// Runs `check`; returns the exit code. The report goes to `out`, or with
/// `--fix` (which prints the fixed manifests on `out`) to `err`.
pub fn run(run: &Run, stdin: &mut dyn std::io::Read, out: &mut dyn std::io::Write, err: &mut dyn std::io::Write) -> u8 {
    match run_inner(run, stdin, out, err) {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(err, "portcullis check: {message}");
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
    let set = crate::policy::load_dir(&run.policies).map_err(|e| e.to_string())?;
    let mut options = Options { namespace: run.namespace.clone(), ..Options::default() };
    if let Some(path) = &run.namespace_labels {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        options.namespace_labels = serde_saphyr::from_str(&text).map_err(|e| {
            format!("{}: expected a map of namespace to labels: {}", path.display(), e.without_snippet())
        })?;
    }
    let mut sources = input::read(&run.paths, stdin).map_err(|e| e.to_string())?;
    let mut checked = check(&sources, &set, &options);

    let report_to: &mut dyn std::io::Write = if run.fix {
        let fixed = fix::apply(&sources, &checked)?;
        for (source, text) in sources.iter_mut().zip(fixed) {
            let text = text.unwrap_or_else(|| source.documents.iter().map(|d| d.text.as_str()).collect());
            match (&source.path, run.write) {
                (Some(path), true) => {
                    if text != source.documents.iter().map(|d| d.text.as_str()).collect::<String>() {
                        std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
                    }
                }
                _ => {
                    out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
                    if !text.is_empty() && !text.ends_with('\n') {
                        out.write_all(b"\n").map_err(|e| e.to_string())?;
                    }
                }
            }
            source.documents = input::parse(&source.name, &text, source.format).map_err(|e| e.to_string())?;
        }
        // What is left after the fixes needs a human.
        checked = check(&sources, &set, &options);
        err
    } else {
        out
    };
    let rendered = match run.output {
        OutputFormat::Text => output::text(&sources, &checked, &set, output::Style { color: run.color }),
        OutputFormat::Json => format!("{:#}\n", output::json(&sources, &checked, &set)),
        OutputFormat::Sarif => format!("{:#}\n", output::sarif(&sources, &checked, &set)),
    };
    report_to.write_all(rendered.as_bytes()).map_err(|e| e.to_string())?;
    Ok(if summarize(&checked).denied > 0 { EXIT_DENIED } else { EXIT_CLEAN })
}
