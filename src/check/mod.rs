//! `portcullis check`: the webhook's engine and policies run offline over
//! manifests, so CI gets the same verdicts and messages the cluster would give.
//! Every Service and Ingress is evaluated as a CREATE by its namespace
//! (`metadata.namespace`, else `--namespace`, else `default`); namespace labels
//! come from Namespace objects in the input and from `--namespace-labels`. An
//! `AdmissionReview` is evaluated as the webhook would evaluate it: its
//! `request.object` with its namespace, operation, user and old object.
//!
//! What `check` cannot use is never passed over in silence: a document that is
//! not valid YAML, is not a Kubernetes object, holds Helm template syntax or is
//! an AdmissionReview that cannot be decoded is [`Skipped`], with why, and
//! makes the exit code 2 unless `--skip-unknown` is given.

pub mod fix;
pub mod input;
pub mod output;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::admission::{Requester, Review};
use crate::engine::gateway::GatewayView;
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

/// The verdict on one object of a kind the policies judge.
#[derive(Clone, Debug)]
pub struct Checked {
    pub location: Location,
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// CREATE for a manifest; the request's for an AdmissionReview.
    pub operation: Operation,
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

/// A document, or an item of a `List`, that `check` cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub location: Location,
    /// Why, e.g. `not a Kubernetes object: no apiVersion and kind`.
    pub reason: String,
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

/// What `check` makes of one object of a document.
enum Use<'a> {
    /// A manifest of a kind the policies judge (Service, Ingress, Gateway API).
    Manifest(&'a Value),
    /// An `AdmissionReview`: the request it carries.
    Review(&'a Value),
    /// Another kind of Kubernetes object: nothing to check.
    Other,
    Skip(String),
}

/// The objects of a parsed document and what `check` makes of each, with the
/// index of a `List` item.
fn uses(value: &Value) -> Vec<(Option<usize>, Use<'_>)> {
    match value {
        Value::Null => Vec::new(), // An empty document, such as a trailing `---`.
        Value::Object(_) => objects(value).into_iter().map(|(item, object)| (item, use_of(object))).collect(),
        _ => vec![(None, Use::Skip(not_an_object(value)))],
    }
}

fn use_of(object: &Value) -> Use<'_> {
    let text = |field| object.get(field).and_then(Value::as_str).filter(|text| !text.is_empty());
    let (api_version, kind) = match (text("apiVersion"), text("kind")) {
        (Some(api_version), Some(kind)) if object.is_object() => (api_version, kind),
        _ => return Use::Skip(not_an_object(object)),
    };
    if kind == "AdmissionReview" && api_version.starts_with("admission.k8s.io/") {
        return Use::Review(object);
    }
    if Kind::of_manifest(api_version, kind) == Kind::Other {
        return Use::Other;
    }
    match template_action(object) {
        Some(action) => Use::Skip(helm(&action)),
        None => Use::Manifest(object),
    }
}

/// An AdmissionReview decoded as the webhook decodes its body.
fn decode(value: &Value) -> Result<Review, String> {
    let body = serde_json::to_vec(value).map_err(|error| error.to_string())?;
    Review::decode(&body).map_err(|error| error.to_string())
}

/// Why a value is not a Kubernetes object.
fn not_an_object(value: &Value) -> String {
    let what = match value {
        Value::Object(fields) => match (fields.contains_key("apiVersion"), fields.contains_key("kind")) {
            (false, false) => "no apiVersion and kind",
            (true, false) => "no kind",
            (false, true) => "no apiVersion",
            (true, true) => "apiVersion and kind must be non-empty strings",
        },
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "an empty item",
    };
    format!("not a Kubernetes object: {what}")
}

/// The first Go template action (`{{ ... }}`) in a text.
fn action_in(text: &str) -> Option<&str> {
    let start = text.find("{{")?;
    let end = start + 2 + text[start + 2..].find("}}")? + 2;
    Some(&text[start..end])
}

/// The first template action in the object's keys or string values: an
/// unrendered Helm template, whose values are not known yet.
fn template_action(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => action_in(text).map(str::to_owned),
        Value::Array(items) => items.iter().find_map(template_action),
        Value::Object(fields) => {
            fields.iter().find_map(|(key, value)| action_in(key).map(str::to_owned).or_else(|| template_action(value)))
        }
        _ => None,
    }
}

/// Why a document holding template syntax is skipped, quoting (the start of) the action.
fn helm(action: &str) -> String {
    const LONGEST: usize = 40;
    let action = match action.char_indices().nth(LONGEST) {
        Some((end, _)) => format!("{}...", &action[..end]),
        None => action.to_owned(),
    };
    format!("Helm template syntax {action}; render the chart (helm template) and check the output")
}

/// Why a document that cannot be parsed is skipped: its template syntax, if it
/// has some (the likely cause), else the parse error.
fn unparsable(document: &Document, error: &str) -> String {
    match action_in(&document.text) {
        Some(action) => helm(action),
        None => error.to_owned(),
    }
}

fn metadata_str<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get("metadata")?.get(field)?.as_str().filter(|s| !s.is_empty())
}

/// Evaluates every object of a kind the policies judge in the sources.
pub fn check(sources: &[Source], set: &PolicySet, options: &Options) -> Vec<Checked> {
    // Namespace objects in the input add to (and win over) --namespace-labels;
    // Gateways, ListenerSets and policies with targetRefs in the input are
    // what the routes in it attach to and are protected by.
    let mut labels = options.namespace_labels.clone();
    let mut gateways = GatewayView::default();
    for source in sources {
        for document in &source.documents {
            for (_, object) in objects(&document.value) {
                gateways.insert_manifest(object, Review::namespace_of(object, options.namespace.as_deref()));
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
            for (item, used) in uses(&document.value) {
                let review = match used {
                    Use::Manifest(value) => {
                        let namespace = Review::namespace_of(value, options.namespace.as_deref());
                        Review::from_manifest(value, namespace, Operation::Create, Requester::default())
                    }
                    // The webhook's own decoding: namespace, operation, user, old object.
                    Use::Review(value) => match decode(value) {
                        Ok(review) if review.kind != Kind::Other => review,
                        _ => continue,
                    },
                    Use::Other | Use::Skip(_) => continue,
                };
                let namespace_labels = NamespaceLabels::from(labels.get(&review.namespace));
                let input = |stage| engine::Input { gateways: &gateways, ..review.input(stage) };
                let validation = engine::evaluate(&input(Stage::Validate), set, namespace_labels);
                let mutation = engine::evaluate(&input(Stage::Mutate), set, namespace_labels);
                checked.push(Checked {
                    location: Location { source: source_index, document: document_index, item, line: document.line },
                    kind: review.kind,
                    namespace: review.namespace,
                    name: review.name,
                    operation: review.operation,
                    validation,
                    mutation,
                });
            }
        }
    }
    checked
}

/// Every document, or `List` item, of the sources that `check` cannot use, with why.
pub fn skipped(sources: &[Source]) -> Vec<Skipped> {
    let mut skipped = Vec::new();
    for (source_index, source) in sources.iter().enumerate() {
        for (document_index, document) in source.documents.iter().enumerate() {
            let at = |item| Location { source: source_index, document: document_index, item, line: document.line };
            if let Some(error) = source.error(document_index) {
                skipped.push(Skipped { location: at(None), reason: unparsable(document, error) });
                continue;
            }
            for (item, used) in uses(&document.value) {
                let reason = match used {
                    Use::Skip(reason) => reason,
                    Use::Review(value) => match decode(value) {
                        Ok(_) => continue,
                        Err(error) => format!("an AdmissionReview that cannot be decoded: {error}"),
                    },
                    Use::Manifest(_) | Use::Other => continue,
                };
                skipped.push(Skipped { location: at(item), reason });
            }
        }
    }
    skipped
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub objects: usize,
    pub denied: usize,
    pub warned: usize,
    pub mutated: usize,
    pub skipped: usize,
}

pub fn summarize(checked: &[Checked], skipped: &[Skipped]) -> Summary {
    Summary {
        objects: checked.len(),
        denied: checked.iter().filter(|c| !c.validation.allowed()).count(),
        warned: checked.iter().filter(|c| c.validation.has_warnings()).count(),
        mutated: checked.iter().filter(|c| !c.mutation.patch.0.is_empty()).count(),
        skipped: skipped.len(),
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
    /// Report what cannot be used as skipped without making the exit code 2.
    pub skip_unknown: bool,
}

/// Exit codes: no denial (warnings allowed), at least one denial, usage or
/// input error (including a skipped document, unless `--skip-unknown`).
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
            let text = text.unwrap_or_else(|| source.text());
            match (&source.path, run.write) {
                (Some(path), true) => {
                    if text != source.text() {
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
            *source = Source::parse(source.name.clone(), source.path.clone(), &text, source.format);
        }
        // What is left after the fixes needs a human.
        checked = check(&sources, &set, &options);
        &mut *err
    } else {
        &mut *out
    };
    let skipped = skipped(&sources);
    let rendered = match run.output {
        OutputFormat::Text => output::text(&sources, &checked, &skipped, &set, output::Style { color: run.color }),
        OutputFormat::Json => format!("{:#}\n", output::json(&sources, &checked, &skipped, &set)),
        OutputFormat::Sarif => format!("{:#}\n", output::sarif(&sources, &checked, &skipped, &set)),
    };
    report_to.write_all(rendered.as_bytes()).map_err(|e| e.to_string())?;
    if !skipped.is_empty() && !run.skip_unknown {
        let _ = writeln!(
            err,
            "portcullis check: {} skipped, not checked (see the report); --skip-unknown accepts that",
            skipped.len()
        );
        return Ok(EXIT_ERROR);
    }
    Ok(if summarize(&checked, &skipped).denied > 0 { EXIT_DENIED } else { EXIT_CLEAN })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reason(value: &Value) -> Option<String> {
        match use_of(value) {
            Use::Skip(reason) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn says_why_a_value_is_not_a_kubernetes_object() {
        let not = |value: Value| reason(&value).unwrap();
        assert_eq!(not(json!({"replicas": 2})), "not a Kubernetes object: no apiVersion and kind");
        assert_eq!(not(json!({"apiVersion": "v1"})), "not a Kubernetes object: no kind");
        assert_eq!(not(json!({"kind": "Service"})), "not a Kubernetes object: no apiVersion");
        assert_eq!(
            not(json!({"apiVersion": "v1", "kind": ""})),
            "not a Kubernetes object: apiVersion and kind must be non-empty strings"
        );
        assert_eq!(not(json!([1])), "not a Kubernetes object: a list");
        assert_eq!(not(json!(7)), "not a Kubernetes object: a number");
        assert_eq!(not(json!(true)), "not a Kubernetes object: a boolean");
        assert_eq!(not(Value::Null), "not a Kubernetes object: an empty item");
        assert!(matches!(use_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"})), Use::Other));
        assert!(matches!(use_of(&json!({"apiVersion": "v1", "kind": "service"})), Use::Manifest(_)));
        let review = json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"});
        assert!(matches!(use_of(&review), Use::Review(_)));
        // An empty document is nothing; an empty List holds nothing.
        assert!(uses(&Value::Null).is_empty());
        assert!(uses(&json!({"apiVersion": "v1", "kind": "List", "items": []})).is_empty());
    }

    #[test]
    fn finds_template_actions_in_keys_and_values_and_quotes_their_start() {
        let service = |metadata: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata});
        const RENDER: &str = "; render the chart (helm template) and check the output";
        assert_eq!(
            reason(&service(json!({"labels": {"{{ .Values.key }}": "x"}}))),
            Some(format!("Helm template syntax {{{{ .Values.key }}}}{RENDER}"))
        );
        let long = "{{ include \"a-very-long-chart-name.fullname\" . | trunc 63 }}";
        assert_eq!(
            reason(&service(json!({"name": format!("x-{long}-y")}))),
            Some(format!("Helm template syntax {{{{ include \"a-very-long-chart-name.fulln...{RENDER}"))
        );
        // Braces that open no action, or never close, are no template.
        assert_eq!(reason(&service(json!({"annotations": {"a": "{ x }", "b": "{{ open"}}))), None);
    }
}
