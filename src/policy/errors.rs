//! Why a policy set could not be loaded. Every message is one line; one about
//! a file starts with `file:line:` so that editors and CI annotations jump to it.

use std::fmt;
use std::path::PathBuf;

use crate::documents::{FieldPath, ParseError};

/// Why a policy set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory or a file in it could not be read. (The I/O error is part
    /// of the message, not its source, so that a report of the error chain says it once.)
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    /// The directory named by `flag` (`--policies`, or `PORTCULLIS_POLICIES`) is missing or not a directory.
    #[error("{flag} {dir}: {}", if *.missing { "no such directory" } else { "not a directory" })]
    NotADirectory { flag: String, dir: PathBuf, missing: bool },
    /// A file is not valid YAML: `file:line: message`.
    #[error(transparent)]
    Yaml(#[from] ParseError),
    /// A document is not a valid policy, environment or controller table.
    #[error(transparent)]
    Invalid(Box<DocumentError>),
    #[error("{dir}: no Policy documents found")]
    Empty { dir: PathBuf },
}

impl From<DocumentError> for LoadError {
    fn from(error: DocumentError) -> LoadError {
        LoadError::Invalid(Box::new(error))
    }
}

/// A document that does not validate, rendered on one line as
/// `file:line: Kind "name": field.path: message`, for example
/// `policies/no-nodeport.yaml:7: Policy "no-nodeport": spec.actoin: unknown field ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentError {
    pub file: PathBuf,
    /// 1-based line of the document's first content line.
    pub document_line: usize,
    /// 1-based line of the field the error is about, when it is written in the file.
    pub field_line: Option<usize>,
    /// The document's number in its file, counted from 1 (empty documents not counted).
    pub document: usize,
    /// The document's `kind`, as written (may be empty).
    pub kind: String,
    /// Its `metadata.name`, when it has one.
    pub name: Option<String>,
    /// The field the error is about (`spec.match.environments`), when known.
    pub field: Option<FieldPath>,
    pub message: String,
}

impl DocumentError {
    /// The line shown: the field's when known, else the document's.
    pub fn line(&self) -> usize {
        self.field_line.unwrap_or(self.document_line)
    }
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line())?;
        match (&self.name, self.kind.as_str()) {
            (Some(name), "") => write!(f, "document {name:?}: ")?,
            (Some(name), kind) => write!(f, "{kind} {name:?}: ")?,
            (None, _) => write!(f, "document {}: ", self.document)?,
        }
        if let Some(field) = self.field.as_ref().filter(|field| !field.is_empty()) {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DocumentError {}

/// A deserialization error at `path` whose message names the field it is
/// about, as the rules' own checks do (`serviceType.forbidden: unknown Service
/// type ...` at `spec.rule.serviceType`): the path then goes down to that field
/// (`spec.rule.serviceType.forbidden`) and the message loses it.
pub(super) fn refine(path: FieldPath, message: &str) -> (FieldPath, &str) {
    match split_field(message) {
        (Some(field), rest) if !field.segments().is_empty() && field.segments().first() == path.segments().last() => {
            (path.parent().join(&field), rest)
        }
        _ => (path, message),
    }
}

/// Splits the field a validation message starts with (`match.kinds: rule
/// serviceType applies to Service, ...`), as the engine writes them, from the
/// rest of the message.
pub(super) fn split_field(message: &str) -> (Option<FieldPath>, &str) {
    message
        .split_once(": ")
        .and_then(|(field, rest)| Some((FieldPath::parse(field)?, rest)))
        .map_or((None, message), |(field, rest)| (Some(field), rest))
}
