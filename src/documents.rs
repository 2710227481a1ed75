//! Reading YAML and JSON documents, shared by the policy loader, `portcullis
//! check` and `portcullis test`:
//!
//! - [`Finder`]: which files of a directory to read (recursively or not, by
//!   extension, skipping hidden files and given names, following symlinks as a
//!   ConfigMap volume needs);
//! - [`parse`]: a source split into [`Document`]s, each with the line it starts
//!   on, its text exactly as read (the texts concatenate back to the source) and
//!   its parsed [`Value`]; a syntax error is a [`ParseError`] rendered
//!   `file:line: message`;
//! - [`from_value`]: a document's value deserialized into a typed struct, the
//!   error naming the [`FieldPath`] it is about (`spec.rule.serviceType.forbidden[1]`),
//!   which [`Document::line_of`] turns into a line of the source.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, Unexpected, Visitor};
use serde_json::{Map, Value};

/// `*.yaml` and `*.yml`.
pub const YAML_EXTENSIONS: &[&str] = &["yaml", "yml"];
/// `*.yaml`, `*.yml` and `*.json`.
pub const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// A file or directory that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Reads a whole file as UTF-8.
pub fn read_file(path: &Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path).map_err(|source| ReadError { path: path.to_owned(), source })
}

/// Which files of a directory to read. By default: the files directly in the
/// directory with one of the extensions, skipping hidden ones (names starting
/// with `.`), following symbolic links.
#[derive(Clone, Copy, Debug)]
pub struct Finder {
    extensions: &'static [&'static str],
    recursive: bool,
    skip_hidden: bool,
    skip_names: &'static [&'static str],
    follow_symlinks: bool,
}

impl Finder {
    /// Files whose name ends in `.` and one of `extensions` (`"yaml"`).
    pub const fn new(extensions: &'static [&'static str]) -> Finder {
        Finder { extensions, recursive: false, skip_hidden: true, skip_names: &[], follow_symlinks: true }
    }

    /// Descend into sub-directories too (default: no).
    pub const fn recursive(self, recursive: bool) -> Finder {
        Finder { recursive, ..self }
    }

    /// Skip files and directories whose name starts with `.` (default: yes),
    /// which also skips the `..data` machinery of a ConfigMap volume.
    pub const fn skip_hidden(self, skip_hidden: bool) -> Finder {
        Finder { skip_hidden, ..self }
    }

    /// File names never taken, such as `kustomization.yaml` (default: none).
    pub const fn skip_names(self, skip_names: &'static [&'static str]) -> Finder {
        Finder { skip_names, ..self }
    }

    /// Follow symbolic links to files and directories (default: yes, as a
    /// ConfigMap volume needs: its files are links through `..data`); when
    /// off, links are skipped.
    pub const fn follow_symlinks(self, follow_symlinks: bool) -> Finder {
        Finder { follow_symlinks, ..self }
    }

    /// The files in `dir`, sorted by path (depth first when recursive: a
    /// directory's files come where its name sorts). An entry that vanishes
    /// while the directory is read, or a dangling link, is skipped.
    pub fn find(&self, dir: &Path) -> Result<Vec<PathBuf>, ReadError> {
        let mut files = Vec::new();
        self.walk(dir, &mut files)?;
        Ok(files)
    }

    fn walk(&self, dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), ReadError> {
        fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
            move |source| ReadError { path: path.to_owned(), source }
        }
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !(self.skip_hidden && name.starts_with('.')) {
                entries.push(path);
            }
        }
        entries.sort();
        for path in entries {
            let metadata =
                if self.follow_symlinks { std::fs::metadata(&path) } else { std::fs::symlink_metadata(&path) };
            let metadata = match metadata {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io(&path)(error)),
            };
            if metadata.is_dir() {
                if self.recursive {
                    self.walk(&path, files)?;
                }
            } else if metadata.is_file() && self.wants(&path) {
                files.push(path);
            }
        }
        Ok(())
    }

    fn wants(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        self.extensions.contains(&extension) && !self.skip_names.contains(&name)
    }
}

/// How a source is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One or more documents separated by `---`.
    Yaml,
    /// One document.
    Json,
}

impl Format {
    /// JSON for a `*.json` file, else YAML.
    pub fn of_path(path: &Path) -> Format {
        if path.extension().is_some_and(|e| e == "json") { Format::Json } else { Format::Yaml }
    }

    /// JSON when the text starts with `{` or `[` (for standard input), else YAML.
    pub fn sniff(text: &str) -> Format {
        if text.trim_start().starts_with(['{', '[']) { Format::Json } else { Format::Yaml }
    }
}

/// One YAML document (or a whole JSON source).
#[derive(Clone, Debug)]
pub struct Document {
    /// 1-based line of the document's first content line in its source.
    pub line: usize,
    /// The document's text exactly as read, including a leading `---` line
    /// and comments.
    pub text: String,
    /// The parsed document; `Null` for an empty one.
    pub value: Value,
}

/// A source that is not valid YAML or JSON: `file:line: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ParseError {
    /// As shown to the user (a path, or `-` for standard input).
    pub file: String,
    /// 1-based line in the whole source.
    pub line: usize,
    pub message: String,
}

/// Splits and parses a source's text. `name` is what errors call it.
///
/// ```
/// use portcullis::documents::{Format, parse};
///
/// let text = "kind: Service\n---\n# the second\nkind: Ingress\n";
/// let documents = parse("input.yaml", text, Format::Yaml).unwrap();
/// let lines: Vec<usize> = documents.iter().map(|document| document.line).collect();
/// assert_eq!(lines, [1, 4]);
/// assert_eq!(documents[1].value["kind"], "Ingress");
/// // The texts, comments and separators included, concatenate back to the source.
/// assert_eq!(documents.iter().map(|document| document.text.as_str()).collect::<String>(), text);
///
/// let error = parse("input.yaml", "a: 1\n---\nb: [1,\n", Format::Yaml).unwrap_err();
/// assert_eq!(error.to_string(), "input.yaml:3: unclosed bracket '['");
/// ```
pub fn parse(name: &str, text: &str, format: Format) -> Result<Vec<Document>, ParseError> {
    match format {
        Format::Json => {
            let value = serde_json::from_str(text).map_err(|e| ParseError {
                file: name.to_owned(),
                line: e.line(),
                message: e.to_string().rsplit_once(" at line ").map_or(e.to_string(), |(head, _)| head.to_owned()),
            })?;
            Ok(vec![Document { line: 1, text: text.to_owned(), value }])
        }
        Format::Yaml => {
            // Error locations are relative to a chunk: count lines from where it starts.
            let mut next_line = 1;
            split_yaml(text)
                .into_iter()
                .map(|(line, chunk)| {
                    let chunk_line = next_line;
                    next_line += chunk.matches('\n').count();
                    let values: Vec<Value> = serde_saphyr::from_str_multiple(chunk).map_err(|e| {
                        let message = e.without_snippet().to_string();
                        ParseError {
                            file: name.to_owned(),
                            line: chunk_line + e.location().map_or(1, |l| l.line() as usize).saturating_sub(1),
                            message: message
                                .rsplit_once(" at line ")
                                .map_or(message.clone(), |(head, _)| head.to_owned()),
                        }
                    })?;
                    // A chunk holds at most one document with content (empty ones may precede it).
                    let value = values.into_iter().find(|v| !v.is_null()).unwrap_or(Value::Null);
                    Ok(Document { line, text: chunk.to_owned(), value })
                })
                .collect()
        }
    }
}

/// Whether a line (without its line break) starts a document's content: not
/// blank, a comment, a `---` separator, a `...` end marker or a `%` directive.
fn is_content(bare: &str) -> bool {
    if is_separator(bare) {
        // `--- {a: 1}` or `--- text`: the document starts on the separator line.
        let rest = bare[3..].trim_start();
        return !rest.is_empty() && !rest.starts_with('#');
    }
    let trimmed = bare.trim_start();
    !(trimmed.is_empty() || trimmed.starts_with('#') || is_separator(bare) || bare == "..." || bare.starts_with('%'))
}

fn is_separator(bare: &str) -> bool {
    bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t")
}

/// Splits YAML text into documents at `---` lines and after `...` lines.
/// Every byte belongs to exactly one chunk (separators, directives and comments
/// go with the document that follows, trailing ones with the last), so the
/// chunks concatenate back to the text. Returns each chunk with the 1-based
/// line of its first content line.
pub fn split_yaml(text: &str) -> Vec<(usize, &str)> {
    // (line of the first content, start offset, end offset) of each chunk.
    let mut chunks: Vec<(usize, usize, usize)> = Vec::new();
    let mut start = 0;
    let mut content_line: Option<usize> = None;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let (true, Some(first)) = (is_separator(bare), content_line) {
            chunks.push((first, start, offset));
            (start, content_line) = (offset, None);
        }
        offset += line.len();
        if bare == "..." {
            if let Some(first) = content_line {
                chunks.push((first, start, offset));
                (start, content_line) = (offset, None);
            }
        } else if content_line.is_none() && is_content(bare) {
            content_line = Some(index + 1);
        }
    }
    match content_line {
        Some(first) => chunks.push((first, start, text.len())),
        None => {
            if let Some(last) = chunks.last_mut() {
                last.2 = text.len();
            }
        }
    }
    chunks.into_iter().map(|(line, from, to)| (line, &text[from..to])).collect()
}

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key (or an enum variant written as one, such as a rule type).
    Key(String),
    /// A list index, from 0.
    Index(usize),
}

/// Where in a document a value sits, shown as `spec.rule.serviceType.forbidden[1]`
/// (a key that is not a plain name is shown quoted in brackets:
/// `metadata.annotations["example.com/x"]`). Empty for the document itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    pub fn new() -> FieldPath {
        FieldPath::default()
    }

    /// The path with a key appended.
    pub fn key(mut self, key: impl Into<String>) -> FieldPath {
        self.0.push(Segment::Key(key.into()));
        self
    }

    /// The path with a list index appended.
    pub fn index(mut self, index: usize) -> FieldPath {
        self.0.push(Segment::Index(index));
        self
    }

    /// This path followed by `other`.
    pub fn join(mut self, other: &FieldPath) -> FieldPath {
        self.0.extend(other.0.iter().cloned());
        self
    }

    /// Parses the dotted form of plain names and indexes (`match.kinds`,
    /// `items[0].metadata`); `None` for anything else.
    ///
    /// ```
    /// use portcullis::documents::FieldPath;
    ///
    /// let path = FieldPath::parse("spec.rules[0].hosts").unwrap();
    /// assert_eq!(path, FieldPath::new().key("spec").key("rules").index(0).key("hosts"));
    /// assert_eq!(path.parent().to_string(), "spec.rules[0]");
    /// // A key that is not a plain name is shown quoted in brackets.
    /// let annotation = FieldPath::new().key("metadata").key("annotations").key("example.com/x");
    /// assert_eq!(annotation.to_string(), r#"metadata.annotations["example.com/x"]"#);
    /// assert_eq!(FieldPath::parse("spec..rules"), None);
    /// ```
    pub fn parse(text: &str) -> Option<FieldPath> {
        let mut path = FieldPath::new();
        for part in text.split('.') {
            let (name, mut indexes) = part.split_once('[').map_or((part, ""), |(name, rest)| (name, rest));
            if !is_plain(name) {
                return None;
            }
            path = path.key(name);
            if !indexes.is_empty() {
                indexes = indexes.strip_suffix(']')?;
                for index in indexes.split("][") {
                    path = path.index(index.parse().ok()?);
                }
            }
        }
        Some(path)
    }

    /// The path without its last segment (empty for an empty path).
    pub fn parent(&self) -> FieldPath {
        FieldPath(self.0[..self.0.len().saturating_sub(1)].to_vec())
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A name shown bare in a path: starts with a letter, then letters, digits, `_` and `-`.
fn is_plain(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if is_plain(key) && position == 0 => f.write_str(key)?,
                Segment::Key(key) if is_plain(key) => write!(f, ".{key}")?,
                Segment::Key(key) => write!(f, "[{key:?}]")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A value that does not deserialize into the type asked for: the field it is
/// about (empty for the document itself) and serde's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct FieldError {
    pub path: FieldPath,
    pub message: String,
}

/// Deserializes a value like `serde_json::from_value`, with the same messages,
/// but an error also names the field it is about: the innermost key, index or
/// enum variant being read when it happened. An unknown field or variant is
/// named itself (`spec.actoin`); a missing field, or a value that a
/// `try_from` conversion refuses, names the mapping that lacks or holds it.
///
/// ```
/// use portcullis::documents::{Format, from_value, parse};
///
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Spec {
///     action: String,
/// }
/// #[derive(Debug, serde::Deserialize)]
/// struct Policy {
///     spec: Spec,
/// }
///
/// let text = "# a policy\nspec:\n  actoin: Deny\n";
/// let document = &parse("policy.yaml", text, Format::Yaml).unwrap()[0];
/// let error = from_value::<Policy>(&document.value).unwrap_err();
/// assert_eq!(error.to_string(), "spec.actoin: unknown field `actoin`, expected `action`");
/// assert_eq!(error.path.to_string(), "spec.actoin");
/// assert_eq!(document.line_of(&error.path), Some(3));
/// ```
pub fn from_value<'v, T: Deserialize<'v>>(value: &'v Value) -> Result<T, FieldError> {
    let track = RefCell::new(Vec::new());
    // On an error the segments entered are left in place: the path to it.
    T::deserialize(At { value, track: &track }).map_err(|error| FieldError {
        path: FieldPath(
            track
                .into_inner()
                .into_iter()
                .map(|step| match step {
                    Step::Key(key) => Segment::Key(key.to_owned()),
                    Step::Index(index) => Segment::Index(index),
                })
                .collect(),
        ),
        message: error.to_string(),
    })
}

impl Document {
    /// The 1-based line in the source of the field at `path`: the line of its
    /// key (a mapping entry) or of the item (a list index). When the path
    /// leads further than the text goes (a missing field), the line of the
    /// deepest part that is written; `None` when not even the first is.
    pub fn line_of(&self, path: &FieldPath) -> Option<usize> {
        let first_content = self.text.split_inclusive('\n').position(|l| is_content(l.trim_end_matches(['\n', '\r'])));
        // The line the text starts on (a JSON source starts on line 1 whatever leads it).
        let start = (self.line + 1).saturating_sub(first_content? + 1).max(1);
        let nodes: Vec<serde_saphyr::Spanned<Node>> = serde_saphyr::from_str_multiple(&self.text).ok()?;
        let mut node = &nodes.into_iter().find(|n| !matches!(n.value, Node::Scalar))?.value;
        let mut line = None;
        for segment in path.segments() {
            let found = match (segment, node) {
                (Segment::Key(key), Node::Map(entries)) => {
                    entries.iter().find(|(k, _)| k.value.0 == *key).map(|(k, v)| (k.referenced.line(), &v.value))
                }
                (Segment::Index(index), Node::Seq(items)) => {
                    items.get(*index).map(|item| (item.referenced.line(), &item.value))
                }
                _ => None,
            };
            let Some((at, next)) = found else { break };
            if at > 0 {
                line = Some(start + at as usize - 1);
            }
            node = next;
        }
        line
    }
}

/// A YAML node with the locations of its keys and items, for [`Document::line_of`]
/// and the in-place edits of `check --fix`.
pub(crate) enum Node {
    Map(Vec<(serde_saphyr::Spanned<Key>, serde_saphyr::Spanned<Node>)>),
    Seq(Vec<serde_saphyr::Spanned<Node>>),
    Scalar,
}

/// A mapping key as text, whatever its YAML type.
pub(crate) struct Key(pub(crate) String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        Ok(Key(match Value::deserialize(deserializer)? {
            Value::String(key) => key,
            other => other.to_string(),
        }))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
                Node::deserialize(deserializer)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Node::Map(entries))
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

// The deserializer behind `from_value`: serde_json's `&Value` deserializer,
// keeping track of the path it is at.

/// A step of the path being read, borrowed from the value.
enum Step<'v> {
    Key(&'v str),
    Index(usize),
}

type Track<'v> = RefCell<Vec<Step<'v>>>;

/// Runs `read` with `step` entered; the step is left in place on an error.
fn within<'v, T>(
    track: &Track<'v>,
    step: Step<'v>,
    read: impl FnOnce() -> Result<T, serde_json::Error>,
) -> Result<T, serde_json::Error> {
    track.borrow_mut().push(step);
    let result = read()?;
    track.borrow_mut().pop();
    Ok(result)
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

#[derive(Clone, Copy)]
struct At<'v, 't> {
    value: &'v Value,
    track: &'t Track<'v>,
}

impl<'v, 't> At<'v, 't> {
    fn visit_array<V: Visitor<'v>>(self, items: &'v [Value], visitor: V) -> Result<V::Value, serde_json::Error> {
        let mut seq = SeqAt { items: items.iter(), index: 0, track: self.track };
        let value = visitor.visit_seq(&mut seq)?;
        match seq.items.len() {
            0 => Ok(value),
            _ => Err(de::Error::invalid_length(items.len(), &"fewer elements in array")),
        }
    }

    fn visit_object<V: Visitor<'v>>(
        self,
        entries: &'v Map<String, Value>,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        let mut map = MapAt { entries: entries.iter(), pending: None, track: self.track };
        let value = visitor.visit_map(&mut map)?;
        match map.entries.len() {
            0 => Ok(value),
            _ => Err(de::Error::invalid_length(entries.len(), &"fewer elements in map")),
        }
    }
}

impl<'v> Deserializer<'v> for At<'v, '_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                _ => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => self.visit_array(items, visitor),
            Value::Object(entries) => self.visit_object(entries, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'v>>(self, _: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'v>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let (variant, value) = match self.value {
            Value::Object(entries) => {
                let mut iter = entries.iter();
                match (iter.next(), iter.next()) {
                    (Some((variant, value)), None) => (variant.as_str(), Some(value)),
                    _ => return Err(de::Error::invalid_value(Unexpected::Map, &"map with a single key")),
                }
            }
            Value::String(variant) => (variant.as_str(), None),
            other => return Err(de::Error::invalid_type(unexpected(other), &"string or map")),
        };
        visitor.visit_enum(EnumAt { variant, value, track: self.track })
    }

    fn deserialize_ignored_any<V: Visitor<'v>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    // The rest reads what is there and lets the visitor refuse what it does
    // not expect, with the messages serde_json gives.
    serde::forward_to_deserialize_any! {
        <W: Visitor<'v>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct SeqAt<'v, 't> {
    items: std::slice::Iter<'v, Value>,
    index: usize,
    track: &'t Track<'v>,
}

impl<'v> de::SeqAccess<'v> for SeqAt<'v, '_> {
    type Error = serde_json::Error;

    fn next_element_seed<S: DeserializeSeed<'v>>(&mut self, seed: S) -> Result<Option<S::Value>, Self::Error> {
        let Some(value) = self.items.next() else { return Ok(None) };
        let index = self.index;
        self.index += 1;
        within(self.track, Step::Index(index), || seed.deserialize(At { value, track: self.track })).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAt<'v, 't> {
    entries: serde_json::map::Iter<'v>,
    pending: Option<(&'v str, &'v Value)>,
    track: &'t Track<'v>,
}

impl<'v> de::MapAccess<'v> for MapAt<'v, '_> {
    type Error = serde_json::Error;

    fn next_key_seed<S: DeserializeSeed<'v>>(&mut self, seed: S) -> Result<Option<S::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        self.pending = Some((key, value));
        // Entered while the key is read, so an unknown field is named itself.
        within(self.track, Step::Key(key), || seed.deserialize(BorrowedStrDeserializer::new(key))).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'v>>(&mut self, seed: S) -> Result<S::Value, Self::Error> {
        let (key, value) = self.pending.take().ok_or_else(|| de::Error::custom("value is missing"))?;
        within(self.track, Step::Key(key), || seed.deserialize(At { value, track: self.track }))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumAt<'v, 't> {
    variant: &'v str,
    /// The variant's content, when written as `{variant: content}`.
    value: Option<&'v Value>,
    track: &'t Track<'v>,
}

impl<'v, 't> de::EnumAccess<'v> for EnumAt<'v, 't> {
    type Error = serde_json::Error;
    type Variant = VariantAt<'v, 't>;

    fn variant_seed<S: DeserializeSeed<'v>>(self, seed: S) -> Result<(S::Value, Self::Variant), Self::Error> {
        let read = |seed: S| seed.deserialize(BorrowedStrDeserializer::<serde_json::Error>::new(self.variant));
        let variant = match self.value {
            // `{variant: content}` is a key: entered until the content is read.
            Some(_) => {
                self.track.borrow_mut().push(Step::Key(self.variant));
                read(seed)?
            }
            None => read(seed)?,
        };
        Ok((variant, VariantAt { value: self.value, track: self.track }))
    }
}

struct VariantAt<'v, 't> {
    value: Option<&'v Value>,
    track: &'t Track<'v>,
}

impl<'v> VariantAt<'v, '_> {
    /// Reads the content; on success leaves the key entered by `variant_seed`.
    fn content<T>(
        self,
        read: impl FnOnce(Option<&'v Value>) -> Result<T, serde_json::Error>,
    ) -> Result<T, serde_json::Error> {
        let result = read(self.value)?;
        if self.value.is_some() {
            self.track.borrow_mut().pop();
        }
        Ok(result)
    }
}

impl<'v> de::VariantAccess<'v> for VariantAt<'v, '_> {
    type Error = serde_json::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        let track = self.track;
        self.content(|value| match value {
            Some(value) => <()>::deserialize(At { value, track }),
            None => Ok(()),
        })
    }

    fn newtype_variant_seed<S: DeserializeSeed<'v>>(self, seed: S) -> Result<S::Value, Self::Error> {
        let track = self.track;
        self.content(|value| match value {
            Some(value) => seed.deserialize(At { value, track }),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"newtype variant")),
        })
    }

    fn tuple_variant<V: Visitor<'v>>(self, _: usize, visitor: V) -> Result<V::Value, Self::Error> {
        let track = self.track;
        self.content(|value| match value {
            Some(Value::Array(items)) if items.is_empty() => visitor.visit_unit(),
            Some(value @ Value::Array(items)) => At { value, track }.visit_array(items, visitor),
            Some(other) => Err(de::Error::invalid_type(unexpected(other), &"tuple variant")),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"tuple variant")),
        })
    }

    fn struct_variant<V: Visitor<'v>>(self, _: &'static [&'static str], visitor: V) -> Result<V::Value, Self::Error> {
        let track = self.track;
        self.content(|value| match value {
            Some(value @ Value::Object(entries)) => At { value, track }.visit_object(entries, visitor),
            Some(other) => Err(de::Error::invalid_type(unexpected(other), &"struct variant")),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"struct variant")),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("portcullis-documents-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_document_may_start_on_its_separator_line() {
        let text = "a: 1\n--- {b: 2}\n--- # only a comment\nc: 3\n";
        let docs = parse("m.yaml", text, Format::Yaml).unwrap();
        let values: Vec<&Value> = docs.iter().map(|d| &d.value).collect();
        assert_eq!(values, [&json!({"a": 1}), &json!({"b": 2}), &json!({"c": 3})]);
        assert_eq!(docs.iter().map(|d| d.line).collect::<Vec<_>>(), [1, 2, 4]);
        assert_eq!(docs.iter().map(|d| d.text.as_str()).collect::<String>(), text);
        let scalars = parse("m.yaml", "--- a\n--- b\n", Format::Yaml).unwrap();
        assert_eq!(scalars.iter().map(|d| d.value.clone()).collect::<Vec<_>>(), [json!("a"), json!("b")]);
    }

    #[test]
    fn finds_files_by_extension_in_name_order_skipping_hidden_and_named_ones() {
        let dir = temp_dir("find");
        for file in [
            "b.yaml",
            "a.yml",
            "c.json",
            "notes.txt",
            ".hidden.yaml",
            "kustomization.yaml",
            "sub/d.yaml",
            ".git/e.yaml",
        ] {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "a: 1\n").unwrap();
        }
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::write(dir.join("a/z.yaml"), "").unwrap();
        let names = |files: Vec<PathBuf>| -> Vec<String> {
            files.iter().map(|f| f.strip_prefix(&dir).unwrap().display().to_string()).collect()
        };
        let flat = Finder::new(YAML_EXTENSIONS).skip_names(&["kustomization.yaml"]);
        assert_eq!(names(flat.find(&dir).unwrap()), ["a.yml", "b.yaml"]);
        let tree = Finder::new(MANIFEST_EXTENSIONS).recursive(true);
        assert_eq!(
            names(tree.find(&dir).unwrap()),
            ["a/z.yaml", "a.yml", "b.yaml", "c.json", "kustomization.yaml", "sub/d.yaml"]
        );
        let everything = Finder::new(YAML_EXTENSIONS).recursive(true).skip_hidden(false);
        assert!(names(everything.find(&dir).unwrap()).contains(&".git/e.yaml".to_owned()));
        let err = flat.find(&dir.join("missing")).unwrap_err();
        assert_eq!(err.path, dir.join("missing"));
        assert!(err.to_string().starts_with(&format!("{}: ", dir.join("missing").display())), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn follows_symlinks_like_a_config_map_volume_and_skips_dangling_ones() {
        let dir = temp_dir("links");
        std::fs::create_dir_all(dir.join("..2026_01_01")).unwrap();
        std::fs::write(dir.join("..2026_01_01/p.yaml"), "a: 1\n").unwrap();
        std::os::unix::fs::symlink("..2026_01_01", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/p.yaml", dir.join("p.yaml")).unwrap();
        std::os::unix::fs::symlink("..data/gone.yaml", dir.join("gone.yaml")).unwrap();
        let finder = Finder::new(YAML_EXTENSIONS);
        assert_eq!(finder.find(&dir).unwrap(), [dir.join("p.yaml")]);
        assert_eq!(finder.follow_symlinks(false).find(&dir).unwrap(), Vec::<PathBuf>::new());
    }

    // Splitting itself is tested through `check` (src/check/input.rs), its first user.

    #[test]
    fn directives_go_with_the_document_they_lead() {
        let text = "%YAML 1.2\n---\nkind: A\n...\n%YAML 1.2\n---\nkind: B\n";
        assert_eq!(split_yaml(text), vec![(3, "%YAML 1.2\n---\nkind: A\n...\n"), (7, "%YAML 1.2\n---\nkind: B\n")]);
        let docs = parse("d.yaml", text, Format::Yaml).unwrap();
        assert_eq!(docs.iter().map(|d| d.value["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["A", "B"]);
    }

    #[test]
    fn errors_carry_the_file_and_the_line_in_the_whole_source() {
        let err = parse("m.yaml", "kind: A\n---\nkind: B\nspec: [1, 2\nother: 3\n", Format::Yaml).unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("m.yaml", 5));
        assert_eq!(err.to_string(), "m.yaml:5: illegal placement of ':' indicator");
        assert_eq!(parse("-", "{\n\"kind\": }", Format::Json).unwrap_err().to_string(), "-:2: expected value");
        assert_eq!(Format::sniff("  [1]"), Format::Json);
        assert_eq!(Format::of_path(Path::new("x.yml")), Format::Yaml);
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        #[serde(default)]
        items: Vec<Inner>,
        #[serde(default)]
        choice: Option<Choice>,
        #[serde(default)]
        labels: BTreeMap<String, u8>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
        #[serde(default)]
        count: u8,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    enum Choice {
        Plain,
        Wrapped(Vec<u8>),
        Pair(u8, u8),
        Fields { size: u8 },
    }

    fn path_of(value: Value) -> (String, String) {
        let err = from_value::<Outer>(&value).unwrap_err();
        // The same message serde_json gives.
        assert_eq!(err.message, serde_json::from_value::<Outer>(value).unwrap_err().to_string());
        (err.path.to_string(), err.message)
    }

    #[test]
    fn deserializes_like_serde_json_and_names_the_field_of_an_error() {
        let ok = json!({"items": [{"name": "a", "count": 3}], "choice": {"fields": {"size": 1}}, "labels": {"x": 1}});
        let outer: Outer = from_value(&ok).unwrap();
        assert_eq!((outer.items.len(), outer.labels["x"]), (1, 1));
        for choice in [json!("plain"), json!({"wrapped": [1]}), json!({"pair": [1, 2]}), json!(null)] {
            from_value::<Outer>(&json!({"choice": choice})).unwrap();
        }

        let cases = [
            (json!({"itmes": []}), "itmes"),
            (json!({"items": [{"name": "a"}, {"name": "b", "cuont": 1}]}), "items[1].cuont"),
            (json!({"items": [{"name": "a"}, {"count": 1}]}), "items[1]"),
            (json!({"items": [{"name": "a", "count": 300}]}), "items[0].count"),
            (json!({"items": {"name": "a"}}), "items"),
            (json!({"choice": "other"}), "choice"),
            (json!({"choice": {"other": 1}}), "choice.other"),
            (json!({"choice": {"wrapped": ["x"]}}), "choice.wrapped[0]"),
            (json!({"choice": {"pair": [1]}}), "choice.pair"),
            (json!({"choice": {"fields": {"size": -1}}}), "choice.fields.size"),
            (json!({"choice": "wrapped"}), "choice"),
            (json!({"choice": {"plain": 1}}), "choice.plain"),
            (json!({"choice": {"a": 1, "b": 2}}), "choice"),
            (json!({"labels": {"example.com/x": "1"}}), "labels[\"example.com/x\"]"),
            (json!("outer"), ""),
        ];
        for (value, path) in cases {
            assert_eq!(path_of(value.clone()).0, path, "{value}");
        }
        assert_eq!(
            path_of(json!({"items": [{"name": "a", "count": 300}]})),
            ("items[0].count".into(), "invalid value: integer `300`, expected u8".into())
        );
        let err = from_value::<Outer>(&json!({"items": [{"name": 1}]})).unwrap_err();
        assert_eq!(err.to_string(), "items[0].name: invalid type: integer `1`, expected a string");
    }

    #[test]
    fn field_paths_parse_and_print() {
        let path = FieldPath::parse("spec.rule.serviceType.forbidden[1]").unwrap();
        assert_eq!(path, FieldPath::new().key("spec").key("rule").key("serviceType").key("forbidden").index(1));
        assert_eq!(path.to_string(), "spec.rule.serviceType.forbidden[1]");
        assert_eq!(path.parent().to_string(), "spec.rule.serviceType.forbidden");
        assert_eq!(FieldPath::parse("items[0][2].name").unwrap().to_string(), "items[0][2].name");
        for text in ["", "a b", "a.", "a[x]", "a[1", "invalid glob \"x\""] {
            assert_eq!(FieldPath::parse(text), None, "{text}");
        }
    }

    #[test]
    fn finds_the_line_of_a_field() {
        let text = "# leading\nkind: A\n---\n# comment\nkind: B\nspec:\n  rule: {x: [1, 2]}\n  list:\n    - a\n    - name: b\n      value: 2\n";
        let docs = parse("m.yaml", text, Format::Yaml).unwrap();
        let line = |path: &str| docs[1].line_of(&FieldPath::parse(path).unwrap());
        assert_eq!(docs[1].line, 5);
        assert_eq!(line("kind"), Some(5));
        assert_eq!(line("spec.rule.x[1]"), Some(7));
        assert_eq!(line("spec.list[1].value"), Some(11));
        assert_eq!(line("spec.list[1].missing"), Some(10), "the deepest part written");
        assert_eq!(line("other"), None);
        assert_eq!(docs[0].line_of(&FieldPath::parse("kind").unwrap()), Some(2));

        let json = parse("s.json", "\n\n{\"kind\": \"A\",\n \"spec\": {\"x\": 1}}", Format::Json).unwrap();
        assert_eq!(json[0].line_of(&FieldPath::parse("spec.x").unwrap()), Some(4));
    }
}
