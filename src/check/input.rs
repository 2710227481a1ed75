//! Reading manifests for `portcullis check`: files, directories (recursively,
//! `*.yaml`, `*.yml`, `*.json`) and standard input; multi-document YAML split
//! into documents whose original text is kept, so that `--fix` can leave
//! untouched documents byte-identical. Finding, splitting and parsing live in
//! [`crate::documents`]; this module adds standard input and the sources.
//!
//! A document that is not valid YAML (or a JSON source that is not valid
//! JSON) does not stop the others: it is kept, text and all, with its error
//! in [`Source::errors`], and `check` reports it as skipped.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::documents::{self, Finder, MANIFEST_EXTENSIONS, ParseError, ReadError};

pub use crate::documents::{Document, Format, split_yaml};

/// Why the input could not be read (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// `file:line: message`.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

impl From<ReadError> for InputError {
    fn from(error: ReadError) -> InputError {
        InputError::Read { path: error.path, source: error.source }
    }
}

/// One input: a file or standard input.
#[derive(Clone, Debug)]
pub struct Source {
    /// As shown to the user: the path, or `-` for standard input.
    pub name: String,
    /// The file to rewrite with `--fix --write`; `None` for standard input.
    pub path: Option<PathBuf>,
    pub format: Format,
    /// Every document; one that cannot be parsed has a `Null` value.
    pub documents: Vec<Document>,
    /// The documents that cannot be parsed, by index, with why:
    /// `YAML error on line 10: ...` (the line in the whole source).
    pub errors: Vec<(usize, String)>,
    /// Stands for a directory named on the command line that holds no
    /// manifest file (so `check` can say so): no path, no documents.
    pub empty_directory: bool,
}

impl Source {
    /// Splits and parses a source's text; a document that is not valid YAML
    /// (or JSON) is kept with a `Null` value and its error in `errors`.
    pub fn parse(name: String, path: Option<PathBuf>, text: &str, format: Format) -> Source {
        let mut source =
            Source { name, path, format, documents: Vec::new(), errors: Vec::new(), empty_directory: false };
        match format {
            Format::Json => match documents::parse(&source.name, text, format) {
                Ok(documents) => source.documents = documents,
                Err(error) => {
                    source.unparsable(1, text, format!("JSON error on line {}: {}", error.line, error.message))
                }
            },
            Format::Yaml => {
                let mut start = 1;
                for (line, chunk) in split_yaml(text) {
                    // One chunk holds one document: its lines count from the chunk's first.
                    match documents::parse(&source.name, chunk, format) {
                        Ok(documents) => source
                            .documents
                            .extend(documents.into_iter().map(|d| Document { line: start + d.line - 1, ..d })),
                        Err(error) => {
                            let at = start + error.line - 1;
                            source.unparsable(line, chunk, format!("YAML error on line {at}: {}", error.message));
                        }
                    }
                    start += chunk.matches('\n').count();
                }
                // Only comments, blank lines and separators: no chunk holds them,
                // but the source keeps them (for --fix), as an empty document.
                if source.documents.is_empty() && !text.is_empty() {
                    let value = serde_json::Value::Null;
                    source.documents.push(Document { line: 1, text: text.to_owned(), value });
                }
            }
        }
        source
    }

    fn unparsable(&mut self, line: usize, text: &str, why: String) {
        self.errors.push((self.documents.len(), why));
        self.documents.push(Document { line, text: text.to_owned(), value: serde_json::Value::Null });
    }

    /// Why a document could not be parsed, if it could not.
    pub fn error(&self, document: usize) -> Option<&str> {
        self.errors.iter().find(|(index, _)| *index == document).map(|(_, why)| why.as_str())
    }

    /// The whole text, as read (or as fixed).
    pub fn text(&self) -> String {
        self.documents.iter().map(|document| document.text.as_str()).collect()
    }
}

/// Inside directories: `*.yaml`, `*.yml` and `*.json` files, recursively, in
/// name order, skipping hidden files and directories.
const MANIFESTS: Finder = Finder::new(MANIFEST_EXTENSIONS).recursive(true);

/// Reads every path (`-` is standard input; no path at all means standard input).
pub fn read(paths: &[String], stdin: &mut dyn Read) -> Result<Vec<Source>, InputError> {
    let mut sources = Vec::new();
    if paths.is_empty() {
        return Ok(vec![read_stdin(stdin)?]);
    }
    for path in paths {
        if path == "-" {
            sources.push(read_stdin(stdin)?);
            continue;
        }
        let found = files(Path::new(path))?;
        if found.is_empty() {
            // Only a directory finds nothing.
            let mut empty = Source::parse(path.clone(), None, "", Format::Yaml);
            empty.empty_directory = true;
            sources.push(empty);
        }
        for file in found {
            let text = documents::read_file(&file)?;
            let format = Format::of_path(&file);
            sources.push(Source::parse(file.display().to_string(), Some(file), &text, format));
        }
    }
    Ok(sources)
}

fn read_stdin(stdin: &mut dyn Read) -> Result<Source, InputError> {
    let mut text = String::new();
    stdin.read_to_string(&mut text).map_err(|source| InputError::Read { path: "-".into(), source })?;
    let format = Format::sniff(&text);
    Ok(Source::parse("-".into(), None, &text, format))
}

/// A named file is read whatever its extension; a directory is searched.
fn files(path: &Path) -> Result<Vec<PathBuf>, InputError> {
    let metadata = std::fs::metadata(path).map_err(|source| InputError::Read { path: path.to_owned(), source })?;
    if metadata.is_dir() { Ok(MANIFESTS.find(path)?) } else { Ok(vec![path.to_owned()]) }
}

/// Splits and parses a source's text ([`documents::parse`]); the first
/// document that cannot be parsed is an error.
pub fn parse(name: &str, text: &str, format: Format) -> Result<Vec<Document>, InputError> {
    Ok(documents::parse(name, text, format)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_keeping_their_text_and_lines() {
        let text = "# leading comment\napiVersion: v1\nkind: A\n---\nkind: B\n--- # c\nkind: C\n...\n---\n\n---\nkind: D\n# trailing\n";
        let chunks = split_yaml(text);
        assert_eq!(
            chunks,
            vec![
                (2, "# leading comment\napiVersion: v1\nkind: A\n"),
                (5, "---\nkind: B\n"),
                (7, "--- # c\nkind: C\n...\n"),
                (12, "---\n\n---\nkind: D\n# trailing\n"),
            ]
        );
        assert_eq!(chunks.iter().map(|(_, c)| *c).collect::<String>(), text);
        let docs = parse("m.yaml", text, Format::Yaml).unwrap();
        let kinds: Vec<&str> = docs.iter().map(|d| d.value["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["A", "B", "C", "D"]);
    }

    #[test]
    fn reports_the_line_of_a_yaml_error_in_the_whole_file() {
        let text = "kind: A\n---\nkind: B\nspec: [1, 2\nother: 3\n";
        let err = parse("m.yaml", text, Format::Yaml).unwrap_err();
        assert_eq!(err.to_string(), "m.yaml:5: illegal placement of ':' indicator");
    }

    #[test]
    fn a_document_that_cannot_be_parsed_is_kept_with_its_error() {
        let text = "kind: A\n---\n# two\nkind: B\nspec: [1, 2\nother: 3\n---\nkind: C\n";
        let source = Source::parse("m.yaml".into(), None, text, Format::Yaml);
        let values: Vec<&serde_json::Value> = source.documents.iter().map(|d| &d.value).collect();
        assert_eq!(
            values,
            [&serde_json::json!({"kind": "A"}), &serde_json::Value::Null, &serde_json::json!({"kind": "C"})]
        );
        let lines: Vec<usize> = source.documents.iter().map(|d| d.line).collect();
        assert_eq!(lines, [1, 4, 8]);
        assert_eq!(source.errors, [(1, "YAML error on line 6: illegal placement of ':' indicator".to_owned())]);
        assert_eq!(
            (source.error(1), source.error(0)),
            (Some("YAML error on line 6: illegal placement of ':' indicator"), None)
        );
        assert_eq!(source.text(), text, "every byte is kept");

        let json = Source::parse("s.json".into(), None, "{\n\"kind\": }", Format::Json);
        assert_eq!(json.errors, [(0, "JSON error on line 2: expected value".to_owned())]);
        assert_eq!((json.documents.len(), json.text()), (1, "{\n\"kind\": }".to_owned()));
    }

    #[test]
    fn a_source_of_only_comments_keeps_its_text() {
        let text = "# nothing yet\n---\n\n";
        let source = Source::parse("c.yaml".into(), None, text, Format::Yaml);
        assert_eq!(source.documents.len(), 1);
        assert_eq!((source.documents[0].line, &source.documents[0].value), (1, &serde_json::Value::Null));
        assert_eq!((source.text(), source.errors.len()), (text.to_owned(), 0));
        assert!(Source::parse("e.yaml".into(), None, "", Format::Yaml).documents.is_empty());
    }

    #[test]
    fn parses_json_as_one_document() {
        let docs = parse("s.json", "{\"kind\": \"List\", \"items\": []}", Format::Json).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].value["kind"], "List");
        let err = parse("s.json", "{\n\"kind\": }", Format::Json).unwrap_err();
        assert_eq!(err.to_string(), "s.json:2: expected value");
    }
}
