//! Reading manifests for `portcullis check`: files, directories (recursively,
//! `*.yaml`, `*.yml`, `*.json`) and standard input; multi-document YAML split
//! into documents whose original text is kept, so that `--fix` can leave
//! untouched documents byte-identical. Finding, splitting and parsing live in
//! [`crate::documents`]; this module adds standard input and the sources.

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
    pub documents: Vec<Document>,
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
        for file in files(Path::new(path))? {
            let text = documents::read_file(&file)?;
            let format = Format::of_path(&file);
            let name = file.display().to_string();
            let documents = parse(&name, &text, format)?;
            sources.push(Source { name, path: Some(file), format, documents });
        }
    }
    Ok(sources)
}

fn read_stdin(stdin: &mut dyn Read) -> Result<Source, InputError> {
    let mut text = String::new();
    stdin.read_to_string(&mut text).map_err(|source| InputError::Read { path: "-".into(), source })?;
    let format = Format::sniff(&text);
    let documents = parse("-", &text, format)?;
    Ok(Source { name: "-".into(), path: None, format, documents })
}

/// A named file is read whatever its extension; a directory is searched.
fn files(path: &Path) -> Result<Vec<PathBuf>, InputError> {
    let metadata = std::fs::metadata(path).map_err(|source| InputError::Read { path: path.to_owned(), source })?;
    if metadata.is_dir() { Ok(MANIFESTS.find(path)?) } else { Ok(vec![path.to_owned()]) }
}

/// Splits and parses a source's text ([`documents::parse`]).
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
    fn parses_json_as_one_document() {
        let docs = parse("s.json", "{\"kind\": \"List\", \"items\": []}", Format::Json).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].value["kind"], "List");
        let err = parse("s.json", "{\n\"kind\": }", Format::Json).unwrap_err();
        assert_eq!(err.to_string(), "s.json:2: expected value");
    }
}
