//! `check --fix`: applies the mutating policies' patches to the manifests.
//!
//! Documents without a patch keep their exact text. Our patches only add
//! annotations, so a patched document is edited in place, not written again:
//! the new entries go into its `metadata.annotations` map (a line each in a
//! block map, at its indentation; `, key: "value"` inside the braces of a flow
//! map or JSON object), or a new `annotations` map goes at the end of its
//! `metadata`. Every other byte stays: comments, quoting, flow style, key
//! order. A key is written plain when YAML reads it back as the same string
//! (quoted in JSON, or where the map's keys are quoted), a value always
//! double-quoted with escapes. The object of a `List` item or of an
//! AdmissionReview (its `request.object`) is edited the same way.
//!
//! The edited text must read back as the patched object. A document that
//! cannot be edited so (`metadata` or `annotations` that is an alias or not a
//! map, text the parser cannot locate) is written again from its patched value
//! (YAML, or JSON for a JSON source, keeping its leading separator and comment
//! lines) and a note says so: nothing is written that does not read back as
//! the patched object.

use json_patch::{Patch, PatchOperation};
use serde_json::Value;
use serde_saphyr::Spanned;

use super::Checked;
use super::input::{Format, Source};
use crate::documents::{self, Key, Node};

/// What `--fix` makes of the sources.
#[derive(Debug, Default)]
pub struct Fixed {
    /// The new text of each source, or `None` when nothing in it changes.
    pub texts: Vec<Option<String>>,
    /// The documents written again rather than edited in place, with why:
    /// `file: document N: <why>; written again ...`.
    pub notes: Vec<String>,
}

/// One step from a document to the object a patch is for.
#[derive(Clone, Copy, Debug)]
enum Step {
    Key(&'static str),
    Index(usize),
}

/// Applies the patches of the checked objects to their sources' texts.
pub fn apply(sources: &[Source], checked: &[Checked]) -> Result<Fixed, String> {
    let mut fixed = Fixed::default();
    for (source_index, source) in sources.iter().enumerate() {
        let mut text = String::new();
        let mut changed = false;
        for (document_index, document) in source.documents.iter().enumerate() {
            let patches: Vec<&Checked> = checked
                .iter()
                .filter(|c| {
                    c.location.source == source_index
                        && c.location.document == document_index
                        && !c.mutation.patch.0.is_empty()
                })
                .collect();
            if patches.is_empty() {
                text.push_str(&document.text);
                continue;
            }
            let mut value = document.value.clone();
            // The object of an AdmissionReview is its request's.
            let review = value.get("kind").and_then(Value::as_str) == Some("AdmissionReview");
            let mut targets = Vec::new();
            for object in patches {
                let (path, target) = match object.location.item {
                    Some(index) => (vec![Step::Key("items"), Step::Index(index)], &mut value["items"][index]),
                    None if review => {
                        (vec![Step::Key("request"), Step::Key("object")], &mut value["request"]["object"])
                    }
                    None => (Vec::new(), &mut value),
                };
                json_patch::patch(target, &object.mutation.patch).map_err(|e| {
                    format!("{}: document {}: cannot apply the patch: {e}", source.name, document_index + 1)
                })?;
                targets.push((path, &object.mutation.patch));
            }
            changed = true;
            let edited = edit(&document.text, source.format, &targets)
                .and_then(|edited| reads_back(&edited, source.format, &value).map(|()| edited));
            match edited {
                Ok(edited) => text.push_str(&edited),
                Err(why) => {
                    fixed.notes.push(format!(
                        "{}: document {}: cannot add the annotations in place: {why}; written again from its \
                         patched value, without its comments and layout",
                        source.name,
                        document_index + 1
                    ));
                    text.push_str(&render(source.format, &document.text, &value)?);
                }
            }
        }
        fixed.texts.push(changed.then_some(text));
    }
    Ok(fixed)
}

/// Whether an edited document reads back as the patched value.
fn reads_back(text: &str, format: Format, expected: &Value) -> Result<(), String> {
    let documents = documents::parse("-", text, format)
        .map_err(|error| format!("the edited text would not parse ({})", error.message))?;
    match documents.as_slice() {
        [document] if document.value == *expected => Ok(()),
        _ => Err("the edited text would not read back as the patched object".into()),
    }
}

/// The annotations a patch adds, as (key, value); an error when it does
/// anything else (creating the empty `annotations` map is part of adding).
fn annotations_added(patch: &Patch) -> Result<Vec<(String, String)>, String> {
    let mut added = Vec::new();
    for op in &patch.0 {
        let PatchOperation::Add(add) = op else {
            return Err(format!("the patch does more than add annotations ({})", op.path()));
        };
        let tokens: Vec<String> = add.path.tokens().map(|t| t.decoded().into_owned()).collect();
        match (tokens.as_slice(), &add.value) {
            ([m, a], Value::Object(map)) if m == "metadata" && a == "annotations" && map.is_empty() => {}
            ([m, a, key], Value::String(value)) if m == "metadata" && a == "annotations" => {
                added.push((key.clone(), value.clone()));
            }
            _ => return Err(format!("the patch does more than add annotations ({})", add.path)),
        }
    }
    Ok(added)
}

/// The document's text with the annotations of each patch inserted into the
/// object at its path.
fn edit(text: &str, format: Format, targets: &[(Vec<Step>, &Patch)]) -> Result<String, String> {
    let nodes: Vec<Spanned<Node>> =
        serde_saphyr::from_str_multiple(text).map_err(|_| "its text cannot be read with locations".to_owned())?;
    let root =
        nodes.iter().find(|node| !matches!(node.value, Node::Scalar)).ok_or_else(|| "it holds no object".to_owned())?;
    let editor =
        Editor { text, json: format == Format::Json, newline: if text.contains("\r\n") { "\r\n" } else { "\n" } };
    let mut inserts = Vec::new();
    for (path, patch) in targets {
        let added = annotations_added(patch)?;
        let mut node = root;
        for step in path {
            let next = match (step, &node.value) {
                (Step::Key(key), Node::Map(entries)) => entry(entries, key).map(|(_, value)| value),
                (Step::Index(index), Node::Seq(items)) => items.get(*index),
                _ => None,
            };
            node = next.ok_or_else(|| "the object cannot be located in the text".to_owned())?;
        }
        inserts.push(editor.annotate(node, &added)?);
    }
    // From the end, so that each offset still points where it did.
    inserts.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let mut edited = text.to_owned();
    for (at, insert) in inserts {
        edited.insert_str(at, &insert);
    }
    Ok(edited)
}

type Entries = [(Spanned<Key>, Spanned<Node>)];

/// The entry of a map with this key (the last, as a parser keeps it).
fn entry<'n>(entries: &'n Entries, key: &str) -> Option<(&'n Spanned<Key>, &'n Spanned<Node>)> {
    entries.iter().rev().find(|(k, _)| k.value.0 == key).map(|(k, v)| (k, v))
}

/// Where a key or node starts in the text; an alias (whose text is elsewhere,
/// and shared) cannot be edited.
fn offset<T>(node: &Spanned<T>) -> Result<usize, String> {
    if node.referenced != node.defined {
        return Err("it uses a YAML alias there".into());
    }
    node.referenced.span().byte_offset().map(|at| at as usize).ok_or_else(|| "its text has no offsets".to_owned())
}

/// How entries added to a flow map are laid out: on the line of its last
/// entry, or each on a line of its own, at the last entry's indentation.
enum Layout<'t> {
    Inline,
    Lines { indent: &'t str, step: &'t str },
}

struct Editor<'t> {
    text: &'t str,
    json: bool,
    newline: &'static str,
}

impl<'t> Editor<'t> {
    /// The insertion that adds annotations to an object: (offset, text).
    fn annotate(&self, object: &Spanned<Node>, added: &[(String, String)]) -> Result<(usize, String), String> {
        let Node::Map(fields) = &object.value else {
            return Err("the object is not a map".into());
        };
        offset(object)?;
        let (metadata_key, metadata) = entry(fields, "metadata").ok_or("the object has no metadata")?;
        let Node::Map(metadata_fields) = &metadata.value else {
            return Err("metadata is not a map".into());
        };
        match entry(metadata_fields, "annotations") {
            Some((_, annotations)) => {
                let Node::Map(existing) = &annotations.value else {
                    return Err("metadata.annotations is not a map".into());
                };
                let quoted = self.quoted_keys(existing)?;
                let lines: Vec<String> =
                    added.iter().map(|(key, value)| format!("{}: {}", self.key(key, quoted), quote(value))).collect();
                if self.is_flow(annotations)? {
                    let layout = self.layout(annotations, existing)?;
                    self.flow_insert(annotations, existing, &layout, &lines)
                } else {
                    self.block_insert(existing, &lines)
                }
            }
            None => {
                let quoted = self.quoted_keys(metadata_fields)?;
                let name = self.key("annotations", quoted);
                let pairs: Vec<String> =
                    added.iter().map(|(key, value)| format!("{}: {}", self.key(key, quoted), quote(value))).collect();
                if self.is_flow(metadata)? {
                    let layout = self.layout(metadata, metadata_fields)?;
                    let map = match &layout {
                        Layout::Inline => format!("{{{}}}", pairs.join(", ")),
                        Layout::Lines { indent, step } => {
                            let nl = self.newline;
                            let inner: Vec<String> = pairs.iter().map(|pair| format!("{indent}{step}{pair}")).collect();
                            format!("{{{nl}{}{nl}{indent}}}", inner.join(&format!(",{nl}")))
                        }
                    };
                    self.flow_insert(metadata, metadata_fields, &layout, &[format!("{name}: {map}")])
                } else {
                    // At metadata's child indentation, its entries one step further.
                    let (first, _) = metadata_fields.first().ok_or("metadata is empty")?;
                    let indent = self.column(offset(first)?);
                    let step = indent.saturating_sub(self.column(offset(metadata_key)?));
                    let step = if step == 0 { 2 } else { step };
                    let mut lines = vec![format!("{name}:")];
                    lines.extend(pairs.iter().map(|pair| format!("{}{pair}", " ".repeat(step))));
                    self.block_insert(metadata_fields, &lines)
                }
            }
        }
    }

    /// Whether new keys are quoted: always in JSON, else when the map's are.
    fn quoted_keys(&self, entries: &Entries) -> Result<bool, String> {
        Ok(self.json
            || match entries.first() {
                Some((key, _)) => self.text.as_bytes().get(offset(key)?) == Some(&b'"'),
                None => false,
            })
    }

    fn key(&self, key: &str, quoted: bool) -> String {
        if !quoted && plain(key) { key.to_owned() } else { quote(key) }
    }

    /// Whether a map or list is written in flow style (`{...}`, `[...]`).
    fn is_flow(&self, node: &Spanned<Node>) -> Result<bool, String> {
        let at = offset(node)?;
        Ok(matches!(node.value, Node::Map(_) | Node::Seq(_))
            && node.referenced.span().byte_len() == Some(1)
            && matches!(self.text.as_bytes().get(at), Some(b'{' | b'[')))
    }

    /// Where the line holding an offset starts.
    fn line_start(&self, at: usize) -> usize {
        self.text[..at].rfind('\n').map_or(0, |newline| newline + 1)
    }

    /// Where the line after the one holding an offset starts (or the end).
    fn line_end(&self, at: usize) -> usize {
        self.text[at..].find('\n').map_or(self.text.len(), |newline| at + newline + 1)
    }

    /// The column (0-based, in bytes) of an offset.
    fn column(&self, at: usize) -> usize {
        at - self.line_start(at)
    }

    /// Where a node in flow context (or a flow collection) ends.
    fn end(&self, node: &Spanned<Node>) -> Result<usize, String> {
        let at = offset(node)?;
        let last = match &node.value {
            Node::Scalar => return Ok(at + node.referenced.span().byte_len().unwrap_or(0) as usize),
            _ if !self.is_flow(node)? => return Err("a block collection where a flow one was expected".into()),
            Node::Map(entries) => entries.last().map(|(_, value)| value),
            Node::Seq(items) => items.last(),
        };
        let after = match last {
            Some(last) => self.end(last)?,
            None => at + 1,
        };
        let closer = if matches!(node.value, Node::Map(_)) { b'}' } else { b']' };
        self.close(after, closer)
    }

    /// Past the bracket that closes a flow collection, from the end of its
    /// last entry: only blanks, commas and comments may come between.
    fn close(&self, mut at: usize, closer: u8) -> Result<usize, String> {
        let bytes = self.text.as_bytes();
        while let Some(&byte) = bytes.get(at) {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' | b',' => at += 1,
                b'#' => at = self.line_end(at),
                _ if byte == closer => return Ok(at + 1),
                _ => break,
            }
        }
        Err("the end of a flow collection cannot be found".into())
    }

    /// The layout of entries added to a flow map.
    fn layout(&self, map: &Spanned<Node>, entries: &Entries) -> Result<Layout<'t>, String> {
        let Some((last, _)) = entries.last() else { return Ok(Layout::Inline) };
        let (open, key) = (offset(map)?, offset(last)?);
        if self.line_start(open) == self.line_start(key) {
            return Ok(Layout::Inline);
        }
        let indent_of = |at: usize| {
            let line = &self.text[self.line_start(at)..at];
            &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
        };
        let (indent, outer) = (indent_of(key), indent_of(open));
        let step = match indent.strip_prefix(outer) {
            Some(step) if !step.is_empty() => step,
            _ => "  ",
        };
        Ok(Layout::Lines { indent, step })
    }

    /// Adds entries to a flow map after its last one (inside the braces of an empty one).
    fn flow_insert(
        &self,
        map: &Spanned<Node>,
        entries: &Entries,
        layout: &Layout<'_>,
        added: &[String],
    ) -> Result<(usize, String), String> {
        let Some((_, last)) = entries.last() else {
            return Ok((offset(map)? + 1, added.join(", ")));
        };
        let separator = match layout {
            Layout::Inline => ", ".to_owned(),
            Layout::Lines { indent, .. } => format!(",{}{indent}", self.newline),
        };
        Ok((self.end(last)?, added.iter().map(|entry| format!("{separator}{entry}")).collect()))
    }

    /// Adds lines to a block map after its last entry (with whatever belongs
    /// to it: continuation lines, nested blocks, a flow value's lines), at the
    /// indentation of its keys.
    fn block_insert(&self, entries: &Entries, added: &[String]) -> Result<(usize, String), String> {
        let ((first, _), (last_key, last_value)) = match (entries.first(), entries.last()) {
            (Some(first), Some(last)) => (first, last),
            _ => return Err("an empty block map".into()),
        };
        let indent = self.column(offset(first)?);
        let from = if self.is_flow(last_value)? { self.end(last_value)? } else { offset(last_key)? };
        let mut end = self.line_end(from);
        let mut at = end;
        while at < self.text.len() {
            let next = self.line_end(at);
            let bare = self.text[at..next].trim_end_matches(['\n', '\r']);
            let rest = bare.trim_start_matches(' ');
            let spaces = bare.len() - rest.len();
            if rest.trim().is_empty() {
                // Blank: belongs to the entry only if more of it follows.
            } else if spaces > indent || (spaces == indent && (rest == "-" || rest.starts_with("- "))) {
                end = next;
            } else {
                break;
            }
            at = next;
        }
        let mut insert = String::new();
        if !self.text[..end].ends_with('\n') {
            insert.push_str(self.newline);
        }
        for line in added {
            insert.push_str(&" ".repeat(indent));
            insert.push_str(line);
            insert.push_str(self.newline);
        }
        Ok((end, insert))
    }
}

/// Whether a key can be written plain: letters, digits and `._/-`, starting
/// with a letter, read back by YAML as the same string, and no word YAML 1.1
/// readers take for a boolean or null.
fn plain(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !matches!(lower.as_str(), "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null")
        && serde_saphyr::from_str::<Value>(&format!("{key}: x")).ok() == Some(serde_json::json!({key: "x"}))
}

/// A double-quoted string, valid in YAML and JSON alike: quotes, backslashes
/// and control or line-separating characters escaped.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A patched document written again from its value, keeping the separator
/// and comments that lead its original text (the fallback).
fn render(format: Format, original: &str, value: &Value) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(value).map(|json| json + "\n").map_err(|e| e.to_string()),
        Format::Yaml => {
            let mut out: String = original
                .split_inclusive('\n')
                .take_while(|line| {
                    let trimmed = line.trim();
                    trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---" || trimmed.starts_with("--- ")
                })
                .collect();
            out.push_str(&serde_saphyr::to_string(value).map_err(|e| e.to_string())?);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Location;
    use crate::engine::{Decision, Kind, Operation};
    use serde_json::json;

    /// A patch that adds these annotations, creating the map first when asked.
    fn adds(create: bool, annotations: &[(&str, &str)]) -> Patch {
        let mut ops = Vec::new();
        if create {
            ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
        }
        for (key, value) in annotations {
            let key = key.replace('~', "~0").replace('/', "~1");
            ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{key}"), "value": value}));
        }
        serde_json::from_value(Value::Array(ops)).unwrap()
    }

    /// `--fix` over one source: each patch for (document, item).
    fn fix(text: &str, format: Format, patches: &[(usize, Option<usize>, Patch)]) -> (String, Vec<String>) {
        let source = Source::parse("m".into(), None, text, format);
        assert!(source.errors.is_empty(), "{:?}", source.errors);
        let checked: Vec<Checked> = patches
            .iter()
            .map(|(document, item, patch)| Checked {
                location: Location { source: 0, document: *document, item: *item, line: 1 },
                kind: Kind::Ingress,
                namespace: "shop".into(),
                name: "web".into(),
                operation: Operation::Create,
                validation: Decision::default(),
                mutation: Decision { patch: patch.clone(), ..Decision::default() },
            })
            .collect();
        let fixed = apply(&[source], &checked).unwrap();
        (fixed.texts[0].clone().expect("changed"), fixed.notes)
    }

    fn fix_yaml(text: &str, patch: Patch) -> String {
        let (fixed, notes) = fix(text, Format::Yaml, &[(0, None, patch)]);
        assert_eq!(notes, [""; 0], "edited in place");
        fixed
    }

    const REDIRECT: (&str, &str) = ("nginx.ingress.kubernetes.io/force-ssl-redirect", "true");
    const GRPC: (&str, &str) = ("nginx.ingress.kubernetes.io/backend-protocol", "GRPC");

    #[test]
    fn adds_lines_to_a_block_map_after_its_last_entry_and_what_belongs_to_it() {
        let text = "kind: Ingress\nmetadata:\n  name: web # the name\n  # Ours.\n  annotations:\n    # first\n    \
                    a: 'x'   # inline\n    b: |\n      line one\n      # not a comment\n\n  labels: {app: web}\n\
                    # the spec\nspec: {}\n";
        assert_eq!(
            fix_yaml(text, adds(false, &[GRPC, REDIRECT])),
            "kind: Ingress\nmetadata:\n  name: web # the name\n  # Ours.\n  annotations:\n    # first\n    \
             a: 'x'   # inline\n    b: |\n      line one\n      # not a comment\n    \
             nginx.ingress.kubernetes.io/backend-protocol: \"GRPC\"\n    \
             nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"\n\n  labels: {app: web}\n\
             # the spec\nspec: {}\n"
        );
        // A comment at the map's indentation after its last entry stays after the new lines.
        assert_eq!(
            fix_yaml("metadata:\n  annotations:\n    a: b\n    # end\n", adds(false, &[("c", "d")])),
            "metadata:\n  annotations:\n    a: b\n    c: \"d\"\n    # end\n"
        );
    }

    #[test]
    fn adds_an_annotations_block_at_the_end_of_block_metadata() {
        let text = "# An Ingress.\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n    name: web\n    \
                    labels:\n        app: web   # kept\n    finalizers:\n    - example.com/keep\n\n# spec next\n\
                    spec:\n    rules: []\n";
        assert_eq!(
            fix_yaml(text, adds(true, &[REDIRECT])),
            "# An Ingress.\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n    name: web\n    \
             labels:\n        app: web   # kept\n    finalizers:\n    - example.com/keep\n    annotations:\n        \
             nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"\n\n# spec next\nspec:\n    rules: []\n"
        );
        // At the end of a file without a final line break.
        assert_eq!(
            fix_yaml("metadata:\n  name: web", adds(true, &[("a", "b")])),
            "metadata:\n  name: web\n  annotations:\n    a: \"b\"\n"
        );
    }

    #[test]
    fn adds_to_flow_maps_inside_their_braces() {
        assert_eq!(
            fix_yaml(
                "metadata:\n  name: web\n  annotations: {a: b, 'c': \"d\",}  # flow\nspec: {}\n",
                adds(false, &[REDIRECT])
            ),
            "metadata:\n  name: web\n  annotations: {a: b, 'c': \"d\", \
             nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\",}  # flow\nspec: {}\n"
        );
        assert_eq!(
            fix_yaml("metadata:\n  annotations: {}\n", adds(false, &[("a", "b"), ("c", "d")])),
            "metadata:\n  annotations: {a: \"b\", c: \"d\"}\n"
        );
        // metadata in flow style, with and without annotations.
        assert_eq!(
            fix_yaml("kind: Ingress\nmetadata: {name: web, labels: {app: web}}  # flow\n", adds(true, &[REDIRECT])),
            "kind: Ingress\nmetadata: {name: web, labels: {app: web}, annotations: \
             {nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"}}  # flow\n"
        );
        assert_eq!(
            fix_yaml("metadata: {name: web, annotations: {x: [y]}}\n", adds(false, &[("a", "b")])),
            "metadata: {name: web, annotations: {x: [y], a: \"b\"}}\n"
        );
        // A flow map over several lines: a line per entry, at their indentation.
        assert_eq!(
            fix_yaml("metadata: {\n    name: web,  # the name\n    labels: {}\n}\n", adds(true, &[("a", "b")])),
            "metadata: {\n    name: web,  # the name\n    labels: {},\n    annotations: {\n        a: \"b\"\n    }\n}\n"
        );
    }

    #[test]
    fn quotes_keys_and_values_as_yaml_reads_them_back() {
        let odd = [("on", "yes"), ("with space", "a \"quoted\"\nvalue\\"), ("1.0", "\u{7}\u{2028}é"), ("x/y", "#")];
        assert_eq!(
            fix_yaml("metadata:\n  annotations:\n    a: b\n", adds(false, &odd)),
            "metadata:\n  annotations:\n    a: b\n    \"on\": \"yes\"\n    \"with space\": \
             \"a \\\"quoted\\\"\\nvalue\\\\\"\n    \"1.0\": \"\\u0007\\u2028é\"\n    x/y: \"#\"\n"
        );
        // Where the map's keys are quoted, so are the new ones.
        assert_eq!(
            fix_yaml("metadata: {\"name\": \"web\"}\n", adds(true, &[("a", "b")])),
            "metadata: {\"name\": \"web\", \"annotations\": {\"a\": \"b\"}}\n"
        );
    }

    #[test]
    fn edits_only_the_documents_and_items_with_a_patch() {
        let text = "# one\nkind: A\n---\napiVersion: v1\nkind: List\nitems:\n- kind: Ingress\n  metadata:\n    \
                    name: a\n- kind: Ingress  # two\n  metadata:\n    name: b\n    annotations:\n      x: y\n\
                    ---\n# three\nkind: C\n";
        let (fixed, notes) = fix(
            text,
            Format::Yaml,
            &[(1, Some(0), adds(true, &[("a", "1")])), (1, Some(1), adds(false, &[("b", "2")]))],
        );
        assert_eq!(notes, [""; 0]);
        assert_eq!(
            fixed,
            "# one\nkind: A\n---\napiVersion: v1\nkind: List\nitems:\n- kind: Ingress\n  metadata:\n    \
             name: a\n    annotations:\n      a: \"1\"\n- kind: Ingress  # two\n  metadata:\n    name: b\n    \
             annotations:\n      x: y\n      b: \"2\"\n---\n# three\nkind: C\n"
        );
    }

    #[test]
    fn edits_json_in_place_in_its_layout() {
        let pretty = "{\n  \"kind\": \"Ingress\",\n  \"metadata\": {\n    \"name\": \"web\"\n  },\n  \"spec\": {}\n}\n";
        let (fixed, notes) = fix(pretty, Format::Json, &[(0, None, adds(true, &[REDIRECT]))]);
        assert_eq!(notes, [""; 0]);
        assert_eq!(
            fixed,
            "{\n  \"kind\": \"Ingress\",\n  \"metadata\": {\n    \"name\": \"web\",\n    \"annotations\": {\n      \
             \"nginx.ingress.kubernetes.io/force-ssl-redirect\": \"true\"\n    }\n  },\n  \"spec\": {}\n}\n"
        );
        let annotated = "{\"kind\": \"Ingress\",\n \"metadata\": {\"name\": \"web\",\n\t\"annotations\": {\n\t\t\"a\": \"b\"\n\t}}}";
        let (fixed, _) = fix(annotated, Format::Json, &[(0, None, adds(false, &[("on", "c")]))]);
        assert_eq!(
            fixed,
            "{\"kind\": \"Ingress\",\n \"metadata\": {\"name\": \"web\",\n\t\"annotations\": {\n\t\t\"a\": \"b\",\n\t\t\
             \"on\": \"c\"\n\t}}}"
        );
        // An AdmissionReview's object is its request's.
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                            "request": {"uid": "u", "object": {"kind": "Ingress", "metadata": {"name": "web"}}}})
        .to_string();
        let (fixed, notes) = fix(&review, Format::Json, &[(0, None, adds(true, &[("a", "b")]))]);
        assert_eq!(notes, [""; 0]);
        assert_eq!(fixed, review.replace("{\"name\":\"web\"}", "{\"name\":\"web\", \"annotations\": {\"a\": \"b\"}}"));
    }

    #[test]
    fn keeps_crlf_line_breaks() {
        assert_eq!(
            fix_yaml("metadata:\r\n  name: web\r\nspec: {}\r\n", adds(true, &[("a", "b")])),
            "metadata:\r\n  name: web\r\n  annotations:\r\n    a: \"b\"\r\nspec: {}\r\n"
        );
    }

    #[test]
    fn writes_again_what_it_cannot_edit_in_place_and_says_why() {
        let cases = [
            ("base: &meta {name: web}\nmetadata: *meta\n", adds(true, &[("a", "b")]), "it uses a YAML alias there"),
            (
                "metadata:\n  name: web\n  annotations:\n",
                adds(true, &[("a", "b")]),
                "metadata.annotations is not a map",
            ),
            // Inserted before the kept blank line, the new line would end the
            // block scalar early: caught when the edit is read back.
            (
                "metadata:\n  name: web\n  annotations:\n    keep: |+\n      x\n\nspec: {}\n",
                adds(false, &[("a", "b")]),
                "the edited text would not read back as the patched object",
            ),
        ];
        for (text, patch, why) in cases {
            let (fixed, notes) = fix(text, Format::Yaml, &[(0, None, patch)]);
            assert_eq!(
                notes,
                [format!(
                    "m: document 1: cannot add the annotations in place: {why}; written again from its patched value, \
                     without its comments and layout"
                )]
            );
            let value: Value = serde_saphyr::from_str(&fixed).unwrap();
            assert_eq!(value["metadata"]["annotations"]["a"], "b", "{fixed}");
            assert_eq!(value["metadata"]["name"], "web", "{fixed}");
        }
        // A patch that does more than add annotations.
        let other: Patch = serde_json::from_value(json!([{"op": "add", "path": "/spec", "value": {"a": 1}}])).unwrap();
        let (fixed, notes) = fix("# kept\nmetadata: {name: web}\n", Format::Yaml, &[(0, None, other)]);
        assert_eq!(
            (fixed.as_str(), notes[0].as_str()),
            (
                "# kept\nmetadata:\n  name: web\nspec:\n  a: 1\n",
                "m: document 1: cannot add the annotations in place: the patch does more than add annotations \
                 (/spec); written again from its patched value, without its comments and layout"
            )
        );
    }
}
