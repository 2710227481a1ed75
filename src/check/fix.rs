//! `check --fix`: applies the mutating policies' patches to the manifests.
//! Documents without a patch keep their exact text; a patched document is
//! written again (YAML, or JSON for a JSON source), keeping its leading
//! separator and comment lines.

use serde_json::Value;

use super::Checked;
use super::input::{Format, Source};

/// The new text of each source, or `None` when nothing in it changes.
pub fn apply(sources: &[Source], checked: &[Checked]) -> Result<Vec<Option<String>>, String> {
    let mut fixed = Vec::with_capacity(sources.len());
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
            for object in patches {
                let target = match object.location.item {
                    Some(index) => &mut value["items"][index],
                    None if review => &mut value["request"]["object"],
                    None => &mut value,
                };
                json_patch::patch(target, &object.mutation.patch).map_err(|e| {
                    format!("{}: document {}: cannot apply the patch: {e}", source.name, document_index + 1)
                })?;
            }
            changed = true;
            text.push_str(&render(source.format, &document.text, &value)?);
        }
        fixed.push(changed.then_some(text));
    }
    Ok(fixed)
}

/// A patched document, keeping the separator and comments that lead its original text.
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
