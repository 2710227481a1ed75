//! The case documents: their types, reading them from files (found and split
//! by the shared [`documents`] reader), and what a case must get right before
//! it runs (see the [module documentation](super) for the format).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::admission::DEFAULT_NAMESPACE;
use crate::documents::{self, Finder, Format, ParseError, ReadError, YAML_EXTENSIONS};
use crate::engine::{Operation, Stage};
use crate::policy::API_VERSION;

/// The `kind` of a test case document.
pub const KIND: &str = "PolicyTest";

/// Why a suite could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// (The I/O error is part of the message, not its source, so that a
    /// report of the error chain says it once.)
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{file}: YAML: {message}")]
    Yaml { file: PathBuf, message: String },
    #[error("{file}: document {document}{}: {message}", subject(.name))]
    Invalid {
        file: PathBuf,
        /// Counted from 1.
        document: usize,
        /// `metadata.name`, when the document has one.
        name: Option<String>,
        message: String,
    },
    #[error("{dir}: no {KIND} documents found")]
    Empty { dir: PathBuf },
}

impl From<ReadError> for SuiteError {
    fn from(error: ReadError) -> SuiteError {
        SuiteError::Io { path: error.path, error: error.source }
    }
}

impl SuiteError {
    /// Our wording for the shared reader's `file:line: message`.
    fn yaml(file: &Path, error: ParseError) -> SuiteError {
        SuiteError::Yaml { file: file.to_owned(), message: format!("line {}: {}", error.line, error.message) }
    }
}

fn subject(name: &Option<String>) -> String {
    name.as_ref().map(|name| format!(" ({KIND} {name:?})")).unwrap_or_default()
}

/// `spec.user`: who sends the request.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaseUser {
    pub username: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `spec.expect`: the verdict the policy set must give.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    /// Required for validate cases.
    #[serde(default)]
    pub allowed: Option<bool>,
    /// Each a substring of some denial line.
    #[serde(default)]
    pub messages: Option<Vec<String>>,
    /// Each a substring of some warning line; `[]` means no warning at all.
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    /// The exact RFC 6902 patch of the mutating policies; makes a mutate case.
    #[serde(default)]
    pub patch: Option<Value>,
}

/// `spec` of a `PolicyTest` document.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaseSpec {
    #[serde(default)]
    pub description: String,
    #[serde(default = "create")]
    pub operation: Operation,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The labels of the namespace; none when omitted.
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub user: Option<CaseUser>,
    /// The object under review (for DELETE: the object deleted).
    #[serde(default)]
    pub object: Option<Value>,
    /// The object before an UPDATE.
    #[serde(default)]
    pub old_object: Option<Value>,
    /// Gateways, ListenerSets and policies with `targetRefs` that exist when
    /// the request is made (as the webhook's caches would hold them), in
    /// `namespace` unless they name one; none when omitted.
    #[serde(default)]
    pub gateways: Vec<Value>,
    pub expect: Expect,
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

fn create() -> Operation {
    Operation::Create
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: Metadata,
    spec: CaseSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

/// One test case.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// The file it was read from.
    pub file: PathBuf,
    /// Its document in the file, counted from 1.
    pub document: usize,
    /// The policy under test: the name of the file's directory.
    pub policy: String,
    /// `metadata.name`.
    pub name: String,
    pub spec: CaseSpec,
}

impl Case {
    /// `<policy>/<name>`, as printed by [`render`](fn@super::render).
    pub fn id(&self) -> String {
        format!("{}/{}", self.policy, self.name)
    }

    /// [`Stage::Mutate`] when the case expects a patch, else [`Stage::Validate`].
    pub fn stage(&self) -> Stage {
        if self.spec.expect.patch.is_some() { Stage::Mutate } else { Stage::Validate }
    }
}

/// What a case must get right beyond the schema.
fn check_spec(spec: &CaseSpec) -> Result<(), String> {
    let expect = &spec.expect;
    if let Some(patch) = &expect.patch {
        if expect.allowed.is_some() || expect.messages.is_some() || expect.warnings.is_some() {
            return Err("expect.patch (a mutate case) cannot be combined with allowed, messages or warnings".into());
        }
        serde_json::from_value::<json_patch::Patch>(patch.clone())
            .map_err(|e| format!("expect.patch is not an RFC 6902 patch: {e}"))?;
    } else {
        match (expect.allowed, expect.messages.as_deref()) {
            (None, _) => return Err("expect.allowed is required (or expect.patch for a mutate case)".into()),
            (Some(true), Some(messages)) if !messages.is_empty() => {
                return Err("expect.messages lists denial lines, but expect.allowed is true".into());
            }
            (Some(false), Some([])) => return Err("expect.messages is empty, but expect.allowed is false".into()),
            _ => {}
        }
    }
    if spec.namespace.is_empty() {
        return Err("spec.namespace must not be empty".into());
    }
    let Some(object) = &spec.object else {
        return Err("spec.object is required (for DELETE: the object deleted)".into());
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    if !object.is_object() || text("apiVersion").is_none() || text("kind").is_none() {
        return Err("spec.object must be a manifest with apiVersion and kind".into());
    }
    if let Some(namespace) = object.pointer("/metadata/namespace").and_then(Value::as_str)
        && namespace != spec.namespace
    {
        return Err(format!(
            "spec.object.metadata.namespace {namespace:?} differs from spec.namespace {:?}",
            spec.namespace
        ));
    }
    if spec.operation == Operation::Connect {
        return Err("spec.operation CONNECT carries no object; use CREATE, UPDATE or DELETE".into());
    }
    if spec.old_object.is_some() && spec.operation != Operation::Update {
        return Err(format!(
            "spec.oldObject is only sent with UPDATE, not {} (for DELETE, give the deleted object as spec.object)",
            spec.operation.as_str()
        ));
    }
    Ok(())
}

/// The policy under test for a case file: the name of its directory.
fn policy_of(file: &Path) -> Option<String> {
    file.parent()?.file_name()?.to_str().map(str::to_owned)
}

/// Parses the cases of one file; the policy under test is the name of the
/// directory `file` is in (e.g. `policies/tests/https-redirect/tls.yaml`).
pub fn parse_cases(file: &Path, text: &str) -> Result<Vec<Case>, SuiteError> {
    let policy = policy_of(file).ok_or_else(|| SuiteError::Invalid {
        file: file.to_owned(),
        document: 1,
        name: None,
        message: "cannot tell the policy under test; put the file in a directory named after the policy".into(),
    })?;
    parse_with_policy(file, &policy, text)
}

fn parse_with_policy(file: &Path, policy: &str, text: &str) -> Result<Vec<Case>, SuiteError> {
    let documents = documents::parse(&file.display().to_string(), text, Format::Yaml)
        .map_err(|error| SuiteError::yaml(file, error))?;
    let mut cases: Vec<Case> = Vec::new();
    // Empty (null) documents are not counted.
    for (index, value) in documents.into_iter().map(|d| d.value).filter(|v| !v.is_null()).enumerate() {
        let document = index + 1;
        let name = value.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned);
        let invalid =
            |message: String| SuiteError::Invalid { file: file.to_owned(), document, name: name.clone(), message };
        let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        if api_version != API_VERSION {
            return Err(invalid(format!("apiVersion must be {API_VERSION}, not {api_version:?}")));
        }
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind != KIND {
            return Err(invalid(format!("kind must be {KIND}, not {kind:?}")));
        }
        let doc: Document = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        crate::policy::check_name(&doc.metadata.name).map_err(&invalid)?;
        check_spec(&doc.spec).map_err(&invalid)?;
        cases.push(Case {
            file: file.to_owned(),
            document,
            policy: policy.to_owned(),
            name: doc.metadata.name,
            spec: doc.spec,
        });
    }
    Ok(cases)
}

/// The `*.yaml` / `*.yml` files under `dir`, recursively, sorted; hidden files
/// and directories are skipped.
const CASE_FILES: Finder = Finder::new(YAML_EXTENSIONS).recursive(true);

/// Loads every case under `dir` (searched recursively), in file name order. A
/// case's policy is the name of the directory holding its file, so `dir` may be
/// a whole suite (`policies/tests`) or one policy's directory.
pub fn load_cases(dir: &Path) -> Result<Vec<Case>, SuiteError> {
    let files = CASE_FILES.find(dir)?;
    let mut cases: Vec<Case> = Vec::new();
    for file in files {
        let text = documents::read_file(&file)?;
        // `dir` itself may be `.`, which names no policy.
        let policy = policy_of(&file)
            .or_else(|| std::fs::canonicalize(file.parent()?).ok().as_deref().and_then(policy_of_dir))
            .unwrap_or_default();
        for case in parse_with_policy(&file, &policy, &text)? {
            if let Some(first) = cases.iter().find(|c| c.policy == case.policy && c.name == case.name) {
                return Err(SuiteError::Invalid {
                    file: case.file.clone(),
                    document: case.document,
                    name: Some(case.name.clone()),
                    message: format!(
                        "a case {} is already defined in {} document {}",
                        case.id(),
                        first.file.display(),
                        first.document
                    ),
                });
            }
            cases.push(case);
        }
    }
    if cases.is_empty() {
        return Err(SuiteError::Empty { dir: dir.to_owned() });
    }
    Ok(cases)
}

fn policy_of_dir(dir: &Path) -> Option<String> {
    dir.file_name()?.to_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::fixtures::{NODEPORT_SVC, doc, parse, set};
    use crate::suite::{render, run};

    #[test]
    fn parses_defaults_and_takes_the_policy_from_the_directory() {
        let text = format!(
            "{}---\n{}",
            doc("first", &format!("{NODEPORT_SVC}  expect: {{allowed: true}}\n")),
            doc(
                "second",
                &format!(
                    "  operation: UPDATE\n  namespace: shop\n  namespaceLabels: {{environment: production}}\n  \
                     user: {{username: bob}}\n{NODEPORT_SVC}  oldObject: {{apiVersion: v1, kind: Service, metadata: {{name: web}}}}\n  \
                     expect: {{allowed: false, messages: [NodePort], warnings: []}}\n"
                )
            )
        );
        let cases = parse("no-nodeport", &text).unwrap();
        assert_eq!(cases.len(), 2);
        let first = &cases[0];
        assert_eq!((first.policy.as_str(), first.name.as_str(), first.document), ("no-nodeport", "first", 1));
        assert_eq!(first.id(), "no-nodeport/first");
        assert_eq!(first.spec.operation, Operation::Create);
        assert_eq!(first.spec.namespace, "default");
        assert!(first.spec.namespace_labels.is_empty());
        assert_eq!(first.spec.user, None);
        assert_eq!(first.stage(), Stage::Validate);
        let second = &cases[1];
        assert_eq!(second.document, 2);
        assert_eq!(second.spec.operation, Operation::Update);
        assert_eq!(second.spec.namespace_labels.get("environment").map(String::as_str), Some("production"));
        assert_eq!(second.spec.user, Some(CaseUser { username: "bob".into(), groups: vec![] }));
        assert_eq!(second.spec.expect.warnings, Some(vec![]));
    }

    #[test]
    fn errors_name_the_file_and_the_document() {
        let good = doc("good", &format!("{NODEPORT_SVC}  expect: {{allowed: true}}\n"));
        let err = |spec: &str| parse("p", &format!("{good}---\n{}", doc("bad", spec))).unwrap_err();
        assert_eq!(
            err(&format!("{NODEPORT_SVC}  expect: {{allowd: true}}\n")),
            "tests/p/cases.yaml: document 2 (PolicyTest \"bad\"): unknown field `allowd`, expected one of \
             `allowed`, `messages`, `warnings`, `patch`"
        );
        assert_eq!(
            err(&format!("{NODEPORT_SVC}  namespaces: prod\n  expect: {{allowed: true}}\n")),
            "tests/p/cases.yaml: document 2 (PolicyTest \"bad\"): unknown field `namespaces`, expected one of \
             `description`, `operation`, `namespace`, `namespaceLabels`, `user`, `object`, `oldObject`, `gateways`, `expect`"
        );
        assert_eq!(
            err(&format!("  operation: PATCH\n{NODEPORT_SVC}  expect: {{allowed: true}}\n")),
            "tests/p/cases.yaml: document 2 (PolicyTest \"bad\"): unknown variant `PATCH`, expected one of \
             `CREATE`, `UPDATE`, `DELETE`, `CONNECT`"
        );
        assert_eq!(
            err(&format!("{NODEPORT_SVC}  expect: {{}}\n")),
            "tests/p/cases.yaml: document 2 (PolicyTest \"bad\"): expect.allowed is required (or expect.patch for \
             a mutate case)"
        );
        assert_eq!(
            err(&format!("{NODEPORT_SVC}  expect: {{allowed: true, patch: []}}\n")),
            "tests/p/cases.yaml: document 2 (PolicyTest \"bad\"): expect.patch (a mutate case) cannot be combined \
             with allowed, messages or warnings"
        );
        assert!(err(&format!("{NODEPORT_SVC}  expect: {{patch: [{{op: add}}]}}\n")).starts_with(
            "tests/p/cases.yaml: document 2 (PolicyTest \"bad\"): expect.patch is not an RFC 6902 patch: "
        ));
        assert_eq!(
            err(&format!("{NODEPORT_SVC}  expect: {{allowed: true, messages: [x]}}\n")),
            "tests/p/cases.yaml: document 2 (PolicyTest \"bad\"): expect.messages lists denial lines, but \
             expect.allowed is true"
        );
        assert_eq!(
            err("  expect: {allowed: true}\n"),
            "tests/p/cases.yaml: document 2 (PolicyTest \"bad\"): spec.object is required (for DELETE: the object \
             deleted)"
        );
        assert_eq!(
            err("  object: {metadata: {name: web}}\n  expect: {allowed: true}\n"),
            "tests/p/cases.yaml: document 2 (PolicyTest \"bad\"): spec.object must be a manifest with apiVersion \
             and kind"
        );
        assert_eq!(
            err(&format!("{NODEPORT_SVC}  oldObject: {{}}\n  expect: {{allowed: true}}\n")),
            "tests/p/cases.yaml: document 2 (PolicyTest \"bad\"): spec.oldObject is only sent with UPDATE, not \
             CREATE (for DELETE, give the deleted object as spec.object)"
        );
        assert_eq!(
            err(
                "  namespace: dev\n  object: {apiVersion: v1, kind: Service, metadata: {name: web, namespace: prod}}\n  \
                 expect: {allowed: true}\n"
            ),
            "tests/p/cases.yaml: document 2 (PolicyTest \"bad\"): spec.object.metadata.namespace \"prod\" differs \
             from spec.namespace \"dev\""
        );
        assert_eq!(
            parse("p", &format!("{good}---\n{}", doc("Bad_Name", "  expect: {allowed: true}\n"))).unwrap_err(),
            "tests/p/cases.yaml: document 2 (PolicyTest \"Bad_Name\"): metadata.name \"Bad_Name\" must be a DNS \
             label (lowercase letters, digits and '-', at most 63)"
        );
        assert_eq!(
            parse("p", &good.replace("PolicyTest", "Policy")).unwrap_err(),
            "tests/p/cases.yaml: document 1 (PolicyTest \"good\"): kind must be PolicyTest, not \"Policy\""
        );
        // Empty documents are not counted.
        assert_eq!(
            parse(
                "p",
                &format!("---\n# none\n---\nnull\n---\n{good}---\n~\n---\n{}", good.replace("PolicyTest", "Policy"))
            )
            .unwrap_err(),
            "tests/p/cases.yaml: document 2 (PolicyTest \"good\"): kind must be PolicyTest, not \"Policy\""
        );
        assert_eq!(
            parse("p", "apiVersion: v1\nkind: PolicyTest\n").unwrap_err(),
            "tests/p/cases.yaml: document 1: apiVersion must be portcullis.dev/v1alpha1, not \"v1\""
        );
        assert_eq!(
            parse("p", &format!("{good}---\nkey: [unclosed\n")).unwrap_err(),
            "tests/p/cases.yaml: YAML: line 8: unclosed bracket '['"
        );
        assert_eq!(
            parse_cases(Path::new("cases.yaml"), &good).unwrap_err().to_string(),
            "cases.yaml: document 1: cannot tell the policy under test; put the file in a directory named after \
             the policy"
        );
    }

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("portcullis-suite-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn loads_case_files_recursively_in_order() {
        let scratch = Scratch::new("load");
        let case = |name: &str| doc(name, &format!("{NODEPORT_SVC}  expect: {{allowed: true}}\n"));
        scratch.write("no-nodeport/b.yaml", &case("b"));
        scratch.write("no-nodeport/a.yml", &format!("{}---\n{}", case("a1"), case("a2")));
        scratch.write("no-external-ips/nested/deeper/c.yaml", &case("a1"));
        scratch.write("no-nodeport/notes.txt", "not a case");
        scratch.write("no-nodeport/.hidden.yaml", "not: [valid");
        scratch.write(".git/x.yaml", "not: [valid");
        let cases = load_cases(&scratch.0).unwrap();
        let ids: Vec<String> = cases.iter().map(Case::id).collect();
        assert_eq!(ids, ["deeper/a1", "no-nodeport/a1", "no-nodeport/a2", "no-nodeport/b"]);
        assert_eq!(cases[2].document, 2);
        // One policy's directory on its own.
        let ids: Vec<String> = load_cases(&scratch.0.join("no-nodeport")).unwrap().iter().map(Case::id).collect();
        assert_eq!(ids, ["no-nodeport/a1", "no-nodeport/a2", "no-nodeport/b"]);
        let results = run(&cases, &set());
        assert_eq!(
            render(&results),
            "FAIL deeper/a1: no policy named \"deeper\" in the policy set\nPASS no-nodeport/a1\n\
             PASS no-nodeport/a2\nPASS no-nodeport/b\n3 passed, 1 failed\n"
        );
    }

    #[test]
    fn rejects_duplicate_names_and_empty_suites() {
        let scratch = Scratch::new("dup");
        let case = doc("same", &format!("{NODEPORT_SVC}  expect: {{allowed: true}}\n"));
        scratch.write("no-nodeport/a.yaml", &case);
        scratch.write("no-external-ips/a.yaml", &case);
        assert_eq!(load_cases(&scratch.0).unwrap().len(), 2, "the same name under two policies is fine");
        scratch.write("no-nodeport/b.yaml", &case);
        let err = load_cases(&scratch.0).unwrap_err().to_string();
        let dir = scratch.0.join("no-nodeport");
        assert_eq!(
            err,
            format!(
                "{}: document 1 (PolicyTest \"same\"): a case no-nodeport/same is already defined in {} document 1",
                dir.join("b.yaml").display(),
                dir.join("a.yaml").display()
            )
        );
        let empty = Scratch::new("empty");
        assert_eq!(
            load_cases(&empty.0).unwrap_err().to_string(),
            format!("{}: no PolicyTest documents found", empty.0.display())
        );
        assert!(matches!(load_cases(&empty.0.join("missing")), Err(SuiteError::Io { .. })));
    }
}
