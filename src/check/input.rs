//! Reading manifests for `portcullis check`: files, directories (recursively,
//! `*.yaml`, `*.yml`, `*.json`) and standard input; multi-document YAML split
//! into documents whose original text is kept, so that `--fix` can leave
//! untouched documents byte-identical.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why the input could not be read (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{file}:{line}: {message}")]
    Parse { file: String, line: usize, message: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
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

/// One YAML document (or a whole JSON file).
#[derive(Clone, Debug)]
pub struct Document {
    /// 1-based line of the document's first line in its source.
    pub line: usize,
    /// The document's text exactly as read, including a leading `---` line.
    pub text: String,
    /// The parsed document; `Null` for an empty one.
    pub value: Value,
}

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
        let mut files = Vec::new();
        collect(Path::new(path), true, &mut files)?;
        for file in files {
            let text =
                std::fs::read_to_string(&file).map_err(|source| InputError::Read { path: file.clone(), source })?;
            let format = if file.extension().is_some_and(|e| e == "json") { Format::Json } else { Format::Yaml };
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
    let format = if text.trim_start().starts_with(['{', '[']) { Format::Json } else { Format::Yaml };
    let documents = parse("-", &text, format)?;
    Ok(Source { name: "-".into(), path: None, format, documents })
}

/// A named file is read whatever its extension; inside directories only
/// `*.yaml`, `*.yml` and `*.json` files are, in name order, skipping hidden ones.
fn collect(path: &Path, named: bool, files: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let io = |source| InputError::Read { path: path.to_owned(), source };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if !metadata.is_dir() {
        let manifest = path.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
        if named || manifest {
            files.push(path.to_owned());
        }
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?.path();
        if !entry.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
            entries.push(entry);
        }
    }
    entries.sort();
    for entry in entries {
        collect(&entry, false, files)?;
    }
    Ok(())
}

/// Splits and parses a source's text.
pub fn parse(name: &str, text: &str, format: Format) -> Result<Vec<Document>, InputError> {
    match format {
        Format::Json => {
            let value = serde_json::from_str(text).map_err(|e| InputError::Parse {
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
                    let values: Vec<Value> = serde_saphyr::from_str_multiple(chunk).map_err(|e| InputError::Parse {
                        file: name.to_owned(),
                        line: chunk_line + e.location().map_or(1, |l| l.line() as usize).saturating_sub(1),
                        message: e
                            .without_snippet()
                            .to_string()
                            .rsplit_once(" at line ")
                            .map_or_else(|| e.without_snippet().to_string(), |(head, _)| head.to_owned()),
                    })?;
                    // A chunk holds at most one document with content (empty ones may precede it).
                    let value = values.into_iter().find(|v| !v.is_null()).unwrap_or(Value::Null);
                    Ok(Document { line, text: chunk.to_owned(), value })
                })
                .collect()
        }
    }
}

/// Splits YAML text into documents at `---` lines and after `...` lines.
/// Every byte belongs to exactly one chunk (separators and comments go with the
/// document that follows, trailing ones with the last), so the chunks
/// concatenate back to the text. Returns each chunk with the 1-based line of its
/// first content line.
pub fn split_yaml(text: &str) -> Vec<(usize, &str)> {
    // (line of the first content, start offset) of the chunk being read.
    let mut chunks: Vec<(usize, usize, usize)> = Vec::new();
    let mut start = 0;
    let mut content_line: Option<usize> = None;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let separator = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        if let (true, Some(first)) = (separator, content_line) {
            chunks.push((first, start, offset));
            (start, content_line) = (offset, None);
        }
        offset += line.len();
        let trimmed = bare.trim_start();
        if bare == "..." {
            if let Some(first) = content_line {
                chunks.push((first, start, offset));
                (start, content_line) = (offset, None);
            }
        } else if !separator && !trimmed.is_empty() && !trimmed.starts_with('#') && content_line.is_none() {
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
