//! `portcullis check`: the webhook's engine and policies run offline over
//! manifests, so CI gets the same verdicts and messages the cluster would give.
//! Every object of a kind a policy matches is evaluated as a CREATE by its
//! namespace (`metadata.namespace`, else `--namespace`, else `default`);
//! namespace labels come from Namespace objects in the input, from
//! `--namespace-labels` and from `--namespace-labels-from-cluster`
//! ([`namespaces`]). An `AdmissionReview` is evaluated as the webhook would
//! evaluate it: its `request.object` with its namespace, operation, user and
//! old object.
//!
//! `check` never passes over anything in silence: whatever it does not judge
//! is [`NotChecked`], with why, in every report format. Input it cannot use (a
//! document that is not valid YAML, is not a Kubernetes object, holds Helm
//! template syntax, or is an AdmissionReview that cannot be decoded) is an
//! input error: exit code 2 unless `--skip-unknown`. The rest (an empty file, a
//! file without a Kubernetes object, an object of a kind no policy matches) is
//! only listed, unless `--strict`, which makes anything not checked exit 2.
//! Objects read for what they tell about others (Namespaces, for their
//! labels; the authentication policies `gatewayAuth` rules accept, for the
//! routes they protect) are neither judged nor listed. The report also names
//! the policy set used and the namespaces whose environments were judged by
//! name because their labels were unknown.

pub mod fix;
pub mod input;
pub mod namespaces;
pub mod output;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::admission::{Requester, Review};
use crate::engine::gateway::GatewayView;
use crate::engine::{self, Decision, Kind, NamespaceLabels, Operation, PolicySet, Stage};
use crate::policy::PolicySource;

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

/// What `check` did not judge: a document, an item of a `List`, or a whole
/// source, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotChecked {
    /// Index into the sources.
    pub source: usize,
    /// The document or `List` item; `None` for the whole source (empty, or
    /// without any Kubernetes object).
    pub location: Option<Location>,
    /// Why, e.g. `not a Kubernetes object: no apiVersion and kind` or
    /// `Deployment shop/web (apps/v1): no policy matches this kind`.
    pub reason: String,
    /// Input `check` cannot use (exit code 2 unless `--skip-unknown`), rather
    /// than nothing to judge (exit code 2 only with `--strict`).
    pub input_error: bool,
}

/// Options of `check`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Namespace of objects that name none (default `default`).
    pub namespace: Option<String>,
    /// Labels per namespace, from `--namespace-labels` (and the cluster).
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// The cluster's IngressClasses (name to `spec.controller`), as the
    /// webhook's cache holds them; empty: controllers are told by class name.
    pub ingress_classes: engine::input::ClassControllers,
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
    /// A manifest of a kind a policy matches (Service, Ingress, Gateway API).
    Manifest(&'a Value),
    /// An `AdmissionReview` of a kind a policy matches: the request it carries.
    Review(Box<Review>),
    /// Read for what it tells about others (a Namespace's labels, an
    /// authentication policy that routes attach to), not judged itself.
    Context,
    /// Not judged: input `check` cannot use, or nothing a policy matches.
    NotChecked { reason: String, input_error: bool },
}

fn unusable<'a>(reason: String) -> Use<'a> {
    Use::NotChecked { reason, input_error: true }
}

/// The objects of a parsed document and what `check` makes of each, with the
/// index of a `List` item.
fn uses<'a>(value: &'a Value, set: &PolicySet) -> Vec<(Option<usize>, Use<'a>)> {
    match value {
        Value::Null => Vec::new(), // An empty document, such as a trailing `---`.
        Value::Object(_) => objects(value).into_iter().map(|(item, object)| (item, use_of(object, set))).collect(),
        _ => vec![(None, unusable(not_an_object(value)))],
    }
}

fn use_of<'a>(object: &'a Value, set: &PolicySet) -> Use<'a> {
    let text = |field| object.get(field).and_then(Value::as_str).filter(|text| !text.is_empty());
    let (api_version, kind) = match (text("apiVersion"), text("kind")) {
        (Some(api_version), Some(kind)) if object.is_object() => (api_version, kind),
        _ => return unusable(not_an_object(object)),
    };
    if kind == "AdmissionReview" && api_version.starts_with("admission.k8s.io/") {
        let review = match decode(object) {
            Ok(review) => review,
            Err(error) => return unusable(format!("an AdmissionReview that cannot be decoded: {error}")),
        };
        if matched(set, review.kind) {
            return Use::Review(Box::new(review));
        }
        let request = |field: &str| object.pointer(&format!("/request/kind/{field}")).and_then(Value::as_str);
        let (group, version, kind) = (request("group"), request("version"), request("kind").unwrap_or_default());
        let api_version = match (group.unwrap_or_default(), version.unwrap_or_default()) {
            ("", version) => version.to_owned(),
            (group, version) => format!("{group}/{version}"),
        };
        let what = format!("{kind} {}/{} ({api_version})", review.namespace, review.name);
        let reason = format!("an AdmissionReview of {what}: {}", no_policy(set, &api_version, kind));
        return Use::NotChecked { reason, input_error: false };
    }
    if matched(set, Kind::of_manifest(api_version, kind)) {
        return match template_action(object) {
            Some(action) => unusable(helm(&action)),
            None => Use::Manifest(object),
        };
    }
    if is_context(set, api_version, kind) {
        return Use::Context;
    }
    let name = metadata_str(object, "name").or_else(|| metadata_str(object, "generateName")).unwrap_or("(unnamed)");
    let what = match metadata_str(object, "namespace") {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    };
    let reason = format!("{what} ({api_version}): {}", no_policy(set, api_version, kind));
    Use::NotChecked { reason, input_error: false }
}

/// Whether a policy of the set matches objects of this kind.
fn matched(set: &PolicySet, kind: Kind) -> bool {
    kind != Kind::Other && set.policies().iter().any(|policy| policy.matches().kinds.contains(&kind))
}

/// Why an object of another kind is not checked; for a kind of the same name
/// as one the policies match but of another group (Istio's
/// `networking.istio.io` Gateway, Knative's Service), which one they match.
fn no_policy(set: &PolicySet, api_version: &str, kind: &str) -> String {
    let same_name = Kind::parse(kind);
    if Kind::of_manifest(api_version, kind) == Kind::Other && matched(set, same_name) {
        let of = match same_name.group() {
            "" => "apiVersion v1".to_owned(),
            group => group.to_owned(),
        };
        return format!("no policy matches this kind (policies match the {} of {of})", same_name.as_str());
    }
    "no policy matches this kind".to_owned()
}

/// Whether `check` reads objects of this kind for what they tell about the
/// others: Namespaces (their labels) and the authentication policies the
/// set's `gatewayAuth` rules accept (the routes they protect).
fn is_context(set: &PolicySet, api_version: &str, kind: &str) -> bool {
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    (group.is_empty() && kind == "Namespace")
        || set.targeting_policy_kinds().iter().any(|accepted| {
            accepted.group.as_deref().unwrap_or_default() == group && accepted.kind.eq_ignore_ascii_case(kind)
        })
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

/// The labels of each namespace: `--namespace-labels` (and the cluster's),
/// added to and overridden by the Namespace objects in the input.
pub fn namespace_labels(sources: &[Source], options: &Options) -> namespaces::LabelMap {
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
    labels
}

/// Evaluates every object of a kind a policy matches in the sources.
pub fn check(sources: &[Source], set: &PolicySet, options: &Options) -> Vec<Checked> {
    // Namespace objects in the input add to (and win over) --namespace-labels;
    // Gateways, ListenerSets and policies with targetRefs in the input are
    // what the routes in it attach to and are protected by.
    let labels = namespace_labels(sources, options);
    let mut gateways = GatewayView::default();
    for source in sources {
        for document in &source.documents {
            for (_, object) in objects(&document.value) {
                gateways.insert_manifest(object, Review::namespace_of(object, options.namespace.as_deref()));
            }
        }
    }
    let mut checked = Vec::new();
    for (source_index, source) in sources.iter().enumerate() {
        for (document_index, document) in source.documents.iter().enumerate() {
            for (item, used) in uses(&document.value, set) {
                let review = match used {
                    Use::Manifest(value) => {
                        let namespace = Review::namespace_of(value, options.namespace.as_deref());
                        Review::from_manifest(value, namespace, Operation::Create, Requester::default())
                    }
                    // The webhook's own decoding: namespace, operation, user, old object.
                    Use::Review(review) => *review,
                    Use::Context | Use::NotChecked { .. } => continue,
                };
                let namespace_labels = NamespaceLabels::from(labels.get(&review.namespace));
                let classes = engine::input::IngressClasses::new(&options.ingress_classes);
                let input =
                    |stage| engine::Input { gateways: &gateways, ingress_classes: classes, ..review.input(stage) };
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

/// Everything in the sources that `check` does not judge, with why, in input
/// order: documents and `List` items, and a source with nothing in it.
pub fn not_checked(sources: &[Source], set: &PolicySet) -> Vec<NotChecked> {
    let mut not_checked = Vec::new();
    for (source_index, source) in sources.iter().enumerate() {
        let before = not_checked.len();
        // Whether the source holds anything but empty documents and Lists.
        let mut found = false;
        for (document_index, document) in source.documents.iter().enumerate() {
            let at = |item| {
                let location = Location { source: source_index, document: document_index, item, line: document.line };
                move |reason, input_error| NotChecked {
                    source: source_index,
                    location: Some(location),
                    reason,
                    input_error,
                }
            };
            if let Some(error) = source.error(document_index) {
                not_checked.push(at(None)(unparsable(document, error), true));
                continue;
            }
            for (item, used) in uses(&document.value, set) {
                found = true;
                if let Use::NotChecked { reason, input_error } = used {
                    not_checked.push(at(item)(reason, input_error));
                }
            }
        }
        if !found && not_checked.len() == before {
            let what = if source.path.is_some() { "file" } else { "input" };
            let reason = if source.empty_directory {
                "no *.yaml, *.yml or *.json file in the directory".to_owned()
            } else if source.text().trim().is_empty() {
                format!("empty {what}")
            } else {
                format!("no Kubernetes object in the {what} (only comments, empty documents or empty Lists)")
            };
            not_checked.push(NotChecked { source: source_index, location: None, reason, input_error: false });
        }
    }
    not_checked
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub objects: usize,
    pub denied: usize,
    pub warned: usize,
    pub mutated: usize,
    pub not_checked: usize,
}

pub fn summarize(checked: &[Checked], not_checked: &[NotChecked]) -> Summary {
    Summary {
        objects: checked.len(),
        denied: checked.iter().filter(|c| !c.validation.allowed()).count(),
        warned: checked.iter().filter(|c| c.validation.has_warnings()).count(),
        mutated: checked.iter().filter(|c| !c.mutation.patch.0.is_empty()).count(),
        not_checked: not_checked.len(),
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
    /// The policy directory named, if any: else `./policies` when it is a
    /// directory, else the bundled policies ([`crate::policy::PolicySource`]).
    pub policies: Option<std::path::PathBuf>,
    /// What named it, for errors: `--policies` or `PORTCULLIS_POLICIES`.
    pub policies_flag: String,
    pub namespace: Option<String>,
    pub namespace_labels: Option<std::path::PathBuf>,
    /// Read the labels of the cluster's namespaces too.
    pub namespace_labels_from_cluster: bool,
    /// The kubeconfig for that (default: in-cluster, then `KUBECONFIG` / `~/.kube/config`).
    pub kubeconfig: Option<std::path::PathBuf>,
    /// How long to wait for the cluster.
    pub cluster_timeout: std::time::Duration,
    pub output: OutputFormat,
    pub fix: bool,
    pub write: bool,
    pub color: bool,
    /// Input that cannot be used does not make the exit code 2 (still reported).
    pub skip_unknown: bool,
    /// Anything not checked makes the exit code 2.
    pub strict: bool,
}

impl Default for Run {
    fn default() -> Run {
        Run {
            paths: Vec::new(),
            policies: None,
            policies_flag: "--policies".to_owned(),
            namespace: None,
            namespace_labels: None,
            namespace_labels_from_cluster: false,
            kubeconfig: None,
            cluster_timeout: namespaces::CLUSTER_TIMEOUT,
            output: OutputFormat::Text,
            fix: false,
            write: false,
            color: false,
            skip_unknown: false,
            strict: false,
        }
    }
}

/// Exit codes: no denial (warnings allowed), at least one denial, usage or
/// input error (including input that cannot be used, unless `--skip-unknown`,
/// and anything not checked with `--strict`).
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
    let policies = PolicySource::resolve(run.policies.as_deref(), &run.policies_flag).map_err(|e| e.to_string())?;
    let set = policies.load().map_err(|e| e.to_string())?;
    let mut options = Options { namespace: run.namespace.clone(), ..Options::default() };
    if run.namespace_labels_from_cluster {
        options.namespace_labels = namespaces::from_cluster(run.kubeconfig.as_deref(), run.cluster_timeout)?;
    }
    if let Some(path) = &run.namespace_labels {
        // The file is what the user says: it wins over the cluster.
        options.namespace_labels.extend(namespaces::read_file(path)?);
    }
    let mut sources = input::read(&run.paths, stdin).map_err(|e| e.to_string())?;
    let mut checked = check(&sources, &set, &options);

    // Documents --fix wrote again rather than edited in place, with why.
    let mut fix_notes = Vec::new();
    let report_to: &mut dyn std::io::Write = if run.fix {
        let fixed = fix::apply(&sources, &checked)?;
        fix_notes = fixed.notes;
        for (source, text) in sources.iter_mut().zip(fixed.texts) {
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
            let empty_directory = source.empty_directory;
            *source = Source::parse(source.name.clone(), source.path.clone(), &text, source.format);
            source.empty_directory = empty_directory;
        }
        // What is left after the fixes needs a human.
        checked = check(&sources, &set, &options);
        &mut *err
    } else {
        &mut *out
    };
    let not_checked = not_checked(&sources, &set);
    let labels_unknown = namespaces::judged_by_name(&checked, &namespace_labels(&sources, &options), &set);
    let context = output::Context { policies: &policies, labels_unknown: &labels_unknown };
    let rendered = match run.output {
        OutputFormat::Text => {
            output::text(&sources, &checked, &not_checked, &set, &context, output::Style { color: run.color })
        }
        OutputFormat::Json => format!("{:#}\n", output::json(&sources, &checked, &not_checked, &set, &context)),
        OutputFormat::Sarif => format!("{:#}\n", output::sarif(&sources, &checked, &not_checked, &set, &context)),
    };
    report_to.write_all(rendered.as_bytes()).map_err(|e| e.to_string())?;
    for note in &fix_notes {
        let _ = writeln!(err, "portcullis check: {note}");
    }
    let input_errors = not_checked.iter().filter(|n| n.input_error).count();
    if run.strict && !not_checked.is_empty() {
        let _ = writeln!(err, "portcullis check: --strict: {} not checked (see the report)", not_checked.len());
        return Ok(EXIT_ERROR);
    }
    if input_errors > 0 && !run.skip_unknown {
        let _ = writeln!(
            err,
            "portcullis check: {input_errors} cannot be checked (see the report); --skip-unknown accepts that"
        );
        return Ok(EXIT_ERROR);
    }
    Ok(if summarize(&checked, &not_checked).denied > 0 { EXIT_DENIED } else { EXIT_CLEAN })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundled() -> &'static PolicySet {
        static SET: std::sync::OnceLock<PolicySet> = std::sync::OnceLock::new();
        SET.get_or_init(crate::policy::bundled::load)
    }

    /// Why the object is not checked, and whether that is an input error.
    fn not_checked(value: &Value) -> Option<(String, bool)> {
        match use_of(value, bundled()) {
            Use::NotChecked { reason, input_error } => Some((reason, input_error)),
            _ => None,
        }
    }

    /// Why the object is not checked, when that is an input error.
    fn reason(value: &Value) -> Option<String> {
        not_checked(value).filter(|(_, input_error)| *input_error).map(|(reason, _)| reason)
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
        assert!(matches!(use_of(&json!({"apiVersion": "v1", "kind": "service"}), bundled()), Use::Manifest(_)));
        let review = json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"});
        assert_eq!(
            reason(&review),
            Some("an AdmissionReview that cannot be decoded: AdmissionReview has no request".to_owned())
        );
        // An empty document is nothing; an empty List holds nothing.
        assert!(uses(&Value::Null, bundled()).is_empty());
        assert!(uses(&json!({"apiVersion": "v1", "kind": "List", "items": []}), bundled()).is_empty());
    }

    #[test]
    fn says_which_objects_no_policy_matches_and_reads_namespaces_and_auth_policies() {
        fn object(api_version: &str, kind: &str, metadata: Value) -> Value {
            json!({"apiVersion": api_version, "kind": kind, "metadata": metadata})
        }
        let unjudged = |value: Value| not_checked(&value).filter(|(_, input_error)| !input_error).unwrap().0;
        assert_eq!(
            unjudged(object("apps/v1", "Deployment", json!({"name": "web", "namespace": "shop"}))),
            "Deployment shop/web (apps/v1): no policy matches this kind"
        );
        assert_eq!(
            unjudged(object("apiextensions.k8s.io/v1", "CustomResourceDefinition", json!({"generateName": "crd-"}))),
            "CustomResourceDefinition crd- (apiextensions.k8s.io/v1): no policy matches this kind"
        );
        assert_eq!(unjudged(object("v1", "Pod", json!({}))), "Pod (unnamed) (v1): no policy matches this kind");
        // A kind of the same name in another group: which one the policies match.
        assert_eq!(
            unjudged(object("networking.istio.io/v1", "Gateway", json!({"name": "public"}))),
            "Gateway public (networking.istio.io/v1): no policy matches this kind (policies match the Gateway of \
             gateway.networking.k8s.io)"
        );
        assert_eq!(
            unjudged(object("serving.knative.dev/v1", "Service", json!({"name": "web"}))),
            "Service web (serving.knative.dev/v1): no policy matches this kind (policies match the Service of \
             apiVersion v1)"
        );
        // Every Gateway API kind is judged.
        for kind in ["Gateway", "ListenerSet", "HTTPRoute", "GRPCRoute", "TLSRoute", "ReferenceGrant"] {
            let value = object("gateway.networking.k8s.io/v1", kind, json!({"name": "x"}));
            assert!(matches!(use_of(&value, bundled()), Use::Manifest(_)), "{kind}");
        }
        // A kind the engine knows but no policy of the set matches.
        let services_only = crate::policy::load_sources(&[(
            "p.yaml".into(),
            "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\n\
             spec: {rule: {serviceType: {forbidden: [NodePort]}}}\n"
                .to_owned(),
        )])
        .unwrap();
        let ingress = object("networking.k8s.io/v1", "Ingress", json!({"name": "web"}));
        let Use::NotChecked { reason, input_error } = use_of(&ingress, &services_only) else { panic!("checked") };
        assert_eq!(
            (reason.as_str(), input_error),
            ("Ingress web (networking.k8s.io/v1): no policy matches this kind", false)
        );
        // Read for the others, not judged and not listed.
        assert!(matches!(use_of(&object("v1", "Namespace", json!({"name": "shop"})), bundled()), Use::Context));
        let security = object("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy", json!({"name": "auth"}));
        assert!(matches!(use_of(&security, bundled()), Use::Context));
        let traffic = object("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy", json!({"name": "t"}));
        assert!(matches!(use_of(&traffic, bundled()), Use::NotChecked { input_error: false, .. }));
        // An AdmissionReview of a kind no policy matches.
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "shop", "name": "web",
            "operation": "CREATE", "object": object("v1", "Pod", json!({"name": "web"}))}});
        assert_eq!(unjudged(review), "an AdmissionReview of Pod shop/web (v1): no policy matches this kind");
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
