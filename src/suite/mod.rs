//! Declarative policy test suites (`portcullis test DIR`).
//!
//! A suite is a directory of YAML files, conventionally `policies/tests/`, with
//! one sub-directory per policy under test: `policies/tests/<policy>/*.yaml`
//! (the policy loader skips sub-directories, so the cases never disturb policy
//! loading). Every file holds one or more `PolicyTest` documents:
//!
//! ```yaml
//! apiVersion: portcullis.dev/v1alpha1
//! kind: PolicyTest
//! metadata:
//!   name: denies-nodeport-in-production   # a DNS label, unique per policy
//! spec:
//!   description: optional text
//!   operation: CREATE                     # CREATE (default), UPDATE or DELETE
//!   namespace: production                 # default "default"
//!   namespaceLabels: {environment: production}   # default: no labels
//!   user: {username: alice, groups: [developers]}
//!   object: {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {type: NodePort}}
//!   oldObject: {...}                      # UPDATE only
//!   expect:
//!     allowed: false
//!     messages: ["[no-nodeport-in-production] Service production/web: type NodePort"]
//!     warnings: []
//! ```
//!
//! - The policy under test is the name of the directory holding the file; it must
//!   exist in the policy set.
//! - A case with `expect.patch` is a mutate case: it is evaluated at
//!   [`Stage::Mutate`] and the merged RFC 6902 patch of all mutating policies
//!   must equal `expect.patch` exactly (`[]`: no patch). A non-empty patch must
//!   hold an operation of the policy under test.
//! - Any other case is a validate case (`expect.allowed` is required), evaluated
//!   at [`Stage::Validate`] against the whole set: `allowed` must match; each of
//!   `messages` must be a substring of some denial line, and a denied case with
//!   `messages` needs a denial line of the policy under test; each of `warnings`
//!   must be a substring of some warning line, and `warnings: []` means none.
//! - The request is built as the API server would send it, by
//!   [`Review::from_manifest`], the way `portcullis check` builds its requests and
//!   with the same object parser the webhook uses. For DELETE, `object` is the
//!   deleted object and the request carries none. Without `user`, the request
//!   comes from `portcullis-offline` in the group `system:authenticated`.
//! - Unknown fields are errors naming the file and the document (counted from 1,
//!   empty documents not counted).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::admission::{DEFAULT_NAMESPACE, Requester, Review};
use crate::engine::{self, MAX_WARNING_CHARS, NamespaceLabels, Operation, PolicySet, Severity, Stage};
use crate::policy::API_VERSION;

/// The `kind` of a test case document.
pub const KIND: &str = "PolicyTest";

/// Why a suite could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
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

impl From<CaseUser> for Requester {
    fn from(user: CaseUser) -> Requester {
        Requester { username: user.username, groups: user.groups }
    }
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
    /// `<policy>/<name>`, as printed by [`render`].
    pub fn id(&self) -> String {
        format!("{}/{}", self.policy, self.name)
    }

    /// [`Stage::Mutate`] when the case expects a patch, else [`Stage::Validate`].
    pub fn stage(&self) -> Stage {
        if self.spec.expect.patch.is_some() { Stage::Mutate } else { Stage::Validate }
    }

    /// The request the API server would send for this case, built like every
    /// other review from a manifest ([`Review::from_manifest`]).
    pub fn request(&self) -> Review {
        let spec = &self.spec;
        let requester = spec.user.clone().map(Requester::from).unwrap_or_default();
        let object = spec.object.as_ref().unwrap_or(&Value::Null);
        let review = Review::from_manifest(object, &spec.namespace, spec.operation, requester);
        match &spec.old_object {
            Some(old) => review.with_old_object(old),
            None => review,
        }
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
    let values: Vec<Value> = serde_saphyr::from_str_multiple(text)
        .map_err(|e| SuiteError::Yaml { file: file.to_owned(), message: e.to_string().replace('\n', " ") })?;
    let mut cases: Vec<Case> = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
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
fn case_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), SuiteError> {
    let io = |source| SuiteError::Io { path: dir.to_owned(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            case_files(&path, files)?;
        } else if (name.ends_with(".yaml") || name.ends_with(".yml")) && path.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

/// Loads every case under `dir` (searched recursively), in file name order. A
/// case's policy is the name of the directory holding its file, so `dir` may be
/// a whole suite (`policies/tests`) or one policy's directory.
pub fn load_cases(dir: &Path) -> Result<Vec<Case>, SuiteError> {
    let mut files = Vec::new();
    case_files(dir, &mut files)?;
    files.sort();
    let mut cases: Vec<Case> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| SuiteError::Io { path: file.clone(), source })?;
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

/// How one case came out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    pub policy: String,
    pub name: String,
    pub file: PathBuf,
    pub document: usize,
    /// What differed; `None` when the case passed.
    pub failure: Option<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// `<policy>/<name>`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.policy, self.name)
    }
}

/// Runs every case against the policy set. Pure: no I/O.
pub fn run(cases: &[Case], set: &PolicySet) -> Vec<CaseResult> {
    cases.iter().map(|case| run_case(case, set)).collect()
}

/// Runs one case against the policy set.
pub fn run_case(case: &Case, set: &PolicySet) -> CaseResult {
    CaseResult {
        policy: case.policy.clone(),
        name: case.name.clone(),
        file: case.file.clone(),
        document: case.document,
        failure: judge(case, set).err(),
    }
}

fn judge(case: &Case, set: &PolicySet) -> Result<(), String> {
    let policy = &case.policy;
    let index = set
        .policies()
        .iter()
        .position(|p| p.name() == policy)
        .ok_or_else(|| format!("no policy named {policy:?} in the policy set"))?;
    let stage = case.stage();
    match (set.policies()[index].rule().stage(), stage) {
        (Stage::Validate, Stage::Mutate) => {
            return Err(format!(
                "{policy} is a validating policy; expect allowed, messages and warnings instead of a patch"
            ));
        }
        (Stage::Mutate, Stage::Validate) => return Err(format!("{policy} is a mutating policy; expect a patch")),
        _ => {}
    }
    let review = case.request();
    let decision = engine::evaluate(&review.input(stage), set, NamespaceLabels::Known(&case.spec.namespace_labels));
    let expect = &case.spec.expect;
    let mut problems: Vec<String> = Vec::new();

    if let Some(expected) = &expect.patch {
        let actual = serde_json::to_value(&decision.patch).expect("a patch always serializes");
        if &actual != expected {
            problems.push(format!("expected patch {expected}, got patch {actual}"));
        } else if !decision.patch.0.is_empty() && !decision.mutated_by.contains(&index) {
            problems.push(format!("no patch operation from {policy}"));
        }
        return if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) };
    }

    let about = review.about();
    let denials = decision.lines(Severity::Deny, about, set);
    let warnings = decision.warnings(about, set);
    if let Some(allowed) = expect.allowed
        && allowed != decision.allowed()
    {
        problems.push(format!("expected allowed={allowed}, got allowed={}", decision.allowed()));
    }
    if let Some(messages) = &expect.messages {
        for message in messages {
            if !denials.iter().any(|line| line.contains(message.as_str())) {
                problems.push(format!("no denial line contains {message:?}"));
            }
        }
        if expect.allowed == Some(false) && !decision.allowed() && !decision.denying_policies().any(|p| p == index) {
            problems.push(format!("no denial line from {policy}"));
        }
    }
    for line in &warnings {
        let length = line.chars().count();
        if length > MAX_WARNING_CHARS {
            problems.push(format!(
                "a warning of {length} characters; the API server keeps at most {MAX_WARNING_CHARS}: {line:?}"
            ));
        }
    }
    if let Some(expected) = &expect.warnings {
        if expected.is_empty() && !warnings.is_empty() {
            problems.push("expected no warnings".into());
        }
        for warning in expected {
            if !warnings.iter().any(|line| line.contains(warning.as_str())) {
                problems.push(format!("no warning line contains {warning:?}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; messages: {denials:?}; warnings: {warnings:?}", problems.join("; ")))
    }
}

/// One line per case (`PASS <policy>/<case>` or `FAIL <policy>/<case>: <what
/// differed>`), then `<N> passed, <N> failed`.
pub fn render(results: &[CaseResult]) -> String {
    let mut out = String::new();
    for result in results {
        let _ = match &result.failure {
            None => writeln!(out, "PASS {}", result.id()),
            Some(failure) => writeln!(out, "FAIL {}: {failure}", result.id()),
        };
    }
    let passed = results.iter().filter(|r| r.passed()).count();
    let _ = writeln!(out, "{passed} passed, {} failed", results.len() - passed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Kind, Object};

    const POLICIES: &str = r#"
apiVersion: portcullis.dev/v1alpha1
kind: Environment
metadata: {name: production}
spec:
  namespaceSelector: {matchLabels: {environment: production}}
  namespaces: [production]
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: no-nodeport}
spec:
  action: Deny
  existingViolations: Warn
  match: {environments: [production]}
  exceptions: [{users: [break-glass]}]
  rule: {serviceType: {forbidden: [NodePort]}}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: no-external-ips}
spec:
  rule: {externalIPs: {}}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: warn-loadbalancer}
spec:
  action: Warn
  rule: {serviceType: {forbidden: [LoadBalancer]}}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: redirect}
spec:
  rule:
    setAnnotations:
      - when: {controllers: [nginx], tls: true}
        add: {nginx.ingress.kubernetes.io/force-ssl-redirect: "true"}
"#;

    const NODEPORT: &str = "type NodePort opens a port on every node; set spec.type: ClusterIP and expose it \
                            through an Ingress with TLS";

    fn set() -> PolicySet {
        crate::policy::load_sources(&[(PathBuf::from("p.yaml"), POLICIES.to_owned())]).unwrap()
    }

    fn parse(policy: &str, text: &str) -> Result<Vec<Case>, String> {
        parse_cases(&Path::new("tests").join(policy).join("cases.yaml"), text).map_err(|e| e.to_string())
    }

    /// One case document with the given spec (indented by two spaces).
    fn doc(name: &str, spec: &str) -> String {
        format!("apiVersion: portcullis.dev/v1alpha1\nkind: PolicyTest\nmetadata: {{name: {name}}}\nspec:\n{spec}")
    }

    const NODEPORT_SVC: &str = "  object: {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {type: NodePort, ports: [{port: 80}]}}\n";

    fn run_one(policy: &str, spec: &str) -> Option<String> {
        let cases = parse(policy, &doc("case", spec)).unwrap();
        run_case(&cases[0], &set()).failure
    }

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
    fn builds_the_request_the_api_server_sends() {
        let spec = "  operation: UPDATE\n  namespace: production\n  user: {username: bob, groups: [ops]}\n  \
                    object: {apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: shop}, spec: {}}\n  \
                    oldObject: {apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: shop}}\n  \
                    expect: {allowed: true}\n";
        let case = &parse("p", &doc("c", spec)).unwrap()[0];
        let review = case.request();
        assert_eq!(
            (review.kind, review.name.as_str(), review.namespace.as_str()),
            (Kind::Ingress, "shop", "production")
        );
        assert_eq!(
            (review.operation, review.username.as_str(), review.groups.as_slice()),
            (Operation::Update, "bob", &["ops".to_owned()][..])
        );
        assert!(matches!(review.object, Some(Object::Ingress(_))));
        assert!(matches!(review.old_object, Some(Object::Ingress(_))));
        // DELETE: the deleted object is not under review.
        let delete =
            &parse("p", &doc("d", &format!("  operation: DELETE\n{NODEPORT_SVC}  expect: {{allowed: true}}\n")))
                .unwrap()[0];
        let review = delete.request();
        assert_eq!((review.kind, review.operation), (Kind::Service, Operation::Delete));
        assert!(review.object.is_none());
        assert_eq!(review.username, crate::admission::OFFLINE_USERNAME);
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
             `description`, `operation`, `namespace`, `namespaceLabels`, `user`, `object`, `oldObject`, `expect`"
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
        assert_eq!(
            parse("p", "apiVersion: v1\nkind: PolicyTest\n").unwrap_err(),
            "tests/p/cases.yaml: document 1: apiVersion must be portcullis.dev/v1alpha1, not \"v1\""
        );
        assert!(parse("p", "key: [unclosed\n").unwrap_err().starts_with("tests/p/cases.yaml: YAML: "));
        assert_eq!(
            parse_cases(Path::new("cases.yaml"), &good).unwrap_err().to_string(),
            "cases.yaml: document 1: cannot tell the policy under test; put the file in a directory named after \
             the policy"
        );
    }

    #[test]
    fn validate_cases_compare_verdict_messages_and_warnings() {
        let denied = format!("  namespace: production\n{NODEPORT_SVC}");
        let expected_line = format!("[no-nodeport] Service production/web: {NODEPORT}");
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!("{denied}  expect: {{allowed: false, messages: [\"{expected_line}\"], warnings: []}}\n")
            ),
            None
        );
        assert_eq!(
            run_one("no-nodeport", &format!("{denied}  expect: {{allowed: true}}\n")),
            Some(format!("expected allowed=true, got allowed=false; messages: [\"{expected_line}\"]; warnings: []"))
        );
        assert_eq!(
            run_one("no-nodeport", &format!("{denied}  expect: {{allowed: false, messages: [LoadBalancer]}}\n")),
            Some(format!("no denial line contains \"LoadBalancer\"; messages: [\"{expected_line}\"]; warnings: []"))
        );
        // By namespace labels, by exception, and an UPDATE of an existing violation.
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!(
                    "  namespace: shop\n  namespaceLabels: {{environment: production}}\n{NODEPORT_SVC}  \
                     expect: {{allowed: false, messages: [NodePort]}}\n"
                )
            ),
            None
        );
        assert_eq!(
            run_one("no-nodeport", &format!("  namespace: shop\n{NODEPORT_SVC}  expect: {{allowed: true}}\n")),
            None
        );
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!("{denied}  user: {{username: break-glass}}\n  expect: {{allowed: true}}\n")
            ),
            None
        );
        let old = "  oldObject: {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {type: NodePort}}\n";
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!(
                    "  operation: UPDATE\n{denied}{old}  expect: {{allowed: true, warnings: [\"allowed for now\"]}}\n"
                )
            ),
            None
        );
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!("  operation: UPDATE\n{denied}{old}  expect: {{allowed: true, warnings: []}}\n")
            ),
            Some(format!(
                "expected no warnings; messages: []; warnings: [\"{expected_line} (pre-existing, allowed for now)\"]"
            ))
        );
        assert_eq!(
            run_one(
                "no-nodeport",
                &format!("  operation: DELETE\n{denied}  expect: {{allowed: true, warnings: []}}\n")
            ),
            None
        );
        // Warnings are substrings of some warning line.
        let lb = "  object: {apiVersion: v1, kind: Service, metadata: {name: lb}, spec: {type: LoadBalancer}}\n";
        assert_eq!(
            run_one(
                "warn-loadbalancer",
                &format!(
                    "{lb}  expect: {{allowed: true, warnings: [\"[warn-loadbalancer] Service default/lb: type LoadBalancer\"]}}\n"
                )
            ),
            None
        );
        assert_eq!(
            run_one("warn-loadbalancer", &format!("{lb}  expect: {{allowed: true, warnings: [NodePort]}}\n")),
            Some(
                "no warning line contains \"NodePort\"; messages: []; warnings: [\"[warn-loadbalancer] Service \
                 default/lb: type LoadBalancer costs a public IP per Service and has no routing or TLS; prefer \
                 ClusterIP behind an Ingress\"]"
                    .into()
            )
        );
    }

    #[test]
    fn a_warning_longer_than_the_api_server_keeps_fails_the_case() {
        let (namespace, name) = ("n".repeat(63), "s".repeat(63));
        let spec = format!(
            "  namespace: {namespace}\n  object: {{apiVersion: v1, kind: Service, metadata: {{name: {name}}}, \
             spec: {{type: LoadBalancer}}}}\n  expect: {{allowed: true}}\n"
        );
        let failure = run_one("warn-loadbalancer", &spec).expect("a 266-character warning fails");
        assert!(
            failure.starts_with("a warning of 266 characters; the API server keeps at most 256: \"[warn-loadbalancer]"),
            "{failure}"
        );
        // The same warning with short names passes.
        assert_eq!(
            run_one(
                "warn-loadbalancer",
                "  object: {apiVersion: v1, kind: Service, metadata: {name: lb}, spec: {type: LoadBalancer}}\n  \
                 expect: {allowed: true}\n"
            ),
            None
        );
    }

    #[test]
    fn a_denial_must_come_from_the_policy_under_test_when_messages_are_given() {
        let both = "  namespace: production\n  object: {apiVersion: v1, kind: Service, metadata: {name: web}, \
                    spec: {type: NodePort, externalIPs: [198.51.100.20]}}\n";
        assert_eq!(
            run_one("no-external-ips", &format!("{both}  expect: {{allowed: false, messages: [NodePort]}}\n")),
            None
        );
        let only_ips = "  object: {apiVersion: v1, kind: Service, metadata: {name: web}, \
                        spec: {type: NodePort, externalIPs: [198.51.100.20]}}\n";
        assert_eq!(
            run_one("no-nodeport", &format!("{only_ips}  expect: {{allowed: false, messages: [externalIPs]}}\n")),
            Some(
                "no denial line from no-nodeport; messages: [\"[no-external-ips] Service default/web: spec.externalIPs \
                 198.51.100.20 can intercept cluster traffic (CVE-2020-8554); remove spec.externalIPs and expose the \
                 Service through an Ingress\"]; warnings: []"
                    .into()
            )
        );
        // Without messages, only the verdict counts.
        assert_eq!(run_one("no-nodeport", &format!("{only_ips}  expect: {{allowed: false}}\n")), None);
    }

    const TLS_INGRESS: &str = "  object:\n    apiVersion: networking.k8s.io/v1\n    kind: Ingress\n    \
                               metadata: {name: shop}\n    spec:\n      ingressClassName: nginx\n      \
                               rules: [{host: shop.example.com}]\n      \
                               tls: [{hosts: [shop.example.com], secretName: shop-tls}]\n";

    #[test]
    fn mutate_cases_compare_the_exact_patch() {
        let patch = r#"[{op: add, path: /metadata/annotations, value: {}}, {op: add, path: "/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect", value: "true"}]"#;
        assert_eq!(run_one("redirect", &format!("{TLS_INGRESS}  expect: {{patch: {patch}}}\n")), None);
        assert_eq!(
            run_one("redirect", &format!("{TLS_INGRESS}  expect: {{patch: []}}\n")),
            Some(
                "expected patch [], got patch [{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{}},\
                 {\"op\":\"add\",\"path\":\"/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect\",\
                 \"value\":\"true\"}]"
                    .into()
            )
        );
        let no_tls = TLS_INGRESS.replace("      tls: [{hosts: [shop.example.com], secretName: shop-tls}]\n", "");
        assert!(!no_tls.contains("tls:"));
        assert_eq!(run_one("redirect", &format!("{no_tls}  expect: {{patch: []}}\n")), None);
    }

    #[test]
    fn the_policy_must_exist_and_fit_the_stage() {
        assert_eq!(
            run_one("no-such-policy", &format!("{NODEPORT_SVC}  expect: {{allowed: true}}\n")),
            Some("no policy named \"no-such-policy\" in the policy set".into())
        );
        assert_eq!(
            run_one("redirect", &format!("{TLS_INGRESS}  expect: {{allowed: true}}\n")),
            Some("redirect is a mutating policy; expect a patch".into())
        );
        assert_eq!(
            run_one("no-nodeport", &format!("{NODEPORT_SVC}  expect: {{patch: []}}\n")),
            Some("no-nodeport is a validating policy; expect allowed, messages and warnings instead of a patch".into())
        );
    }

    #[test]
    fn renders_one_line_per_case_and_a_summary() {
        let result = |name: &str, failure: Option<&str>| CaseResult {
            policy: "no-nodeport".into(),
            name: name.into(),
            file: PathBuf::from("x.yaml"),
            document: 1,
            failure: failure.map(str::to_owned),
        };
        assert_eq!(
            render(&[result("denies", None), result("allows", Some("expected allowed=true, got allowed=false"))]),
            "PASS no-nodeport/denies\nFAIL no-nodeport/allows: expected allowed=true, got allowed=false\n\
             1 passed, 1 failed\n"
        );
        assert_eq!(render(&[]), "0 passed, 0 failed\n");
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
