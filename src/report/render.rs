//! The report formats: a table grouped by namespace, a versioned JSON
//! document (`docs/report-output.schema.json`) and one self-contained HTML page.

use serde_json::{Value, json};

use crate::inventory::{AllowListKind, AuthMethod, Entry, Inventory, Summary, TlsSource};

/// The JSON document's version; fields are only added within a version.
pub const VERSION: u64 = 1;

/// What the report was made from.
pub struct Context<'a> {
    /// The paths read, `-`, or `cluster <url>`.
    pub from: &'a str,
    /// The policy set, as `check` names it: `./policies`, `bundled (built in)`.
    pub policies: &'a str,
}

/// The columns of the table and the HTML page, with their JSON-ish keys.
const COLUMNS: [(&str, &str); 8] = [
    ("status", "STATUS"),
    ("entry", "ENTRY"),
    ("object", "KIND/NAME"),
    ("tls", "TLS"),
    ("auth", "AUTH"),
    ("allowList", "ALLOW-LIST"),
    ("controller", "CONTROLLER"),
    ("violations", "VIOLATIONS"),
];

pub fn tls_cell(entry: &Entry) -> String {
    let detail = entry.tls.detail.as_deref().unwrap_or_default();
    match entry.tls.source {
        TlsSource::None => "none".to_owned(),
        TlsSource::Secret => format!("secret {detail}"),
        TlsSource::CertManager => format!("cert-manager {detail}"),
        TlsSource::Annotation => detail.to_owned(),
        TlsSource::DefaultCertificate => "default certificate".to_owned(),
        TlsSource::CertificateRefs => format!("certificateRefs {detail}"),
        TlsSource::Passthrough => "passthrough".to_owned(),
    }
}

pub fn auth_cell(entry: &Entry) -> String {
    match entry.auth.method {
        AuthMethod::None => "none".to_owned(),
        AuthMethod::Application => "application".to_owned(),
        AuthMethod::NotApplicable => "-".to_owned(),
        AuthMethod::Annotations | AuthMethod::Gateway => entry.auth.detail.clone().unwrap_or_default(),
    }
}

pub fn allow_list_cell(entry: &Entry) -> String {
    match entry.allow_list.kind {
        AllowListKind::None => "none".to_owned(),
        AllowListKind::Ranges => entry.allow_list.ranges.join(","),
        AllowListKind::Middleware => "middleware".to_owned(),
    }
}

fn violations_cell(entry: &Entry) -> String {
    let mut policies: Vec<&str> = Vec::new();
    for violation in &entry.violations {
        if !policies.contains(&violation.policy.as_str()) {
            policies.push(&violation.policy);
        }
    }
    if policies.is_empty() { "-".to_owned() } else { policies.join(",") }
}

fn cells(entry: &Entry) -> [String; 8] {
    [
        entry.status.as_str().to_owned(),
        entry.address.clone(),
        entry.object(),
        tls_cell(entry),
        auth_cell(entry),
        allow_list_cell(entry),
        entry.controller.clone().unwrap_or_else(|| "-".to_owned()),
        violations_cell(entry),
    ]
}

/// `10 entry points (4 deny, 1 warn, 1 unprotected, 4 protected): 9 public, 6 without TLS, ...`:
/// first each entry by its status, then how many have each trait.
pub fn summary_line(summary: &Summary) -> String {
    format!(
        "{} entry points ({} deny, {} warn, {} unprotected, {} protected): {} public, {} without TLS, {} without \
         auth, {} with violations",
        summary.entry_points,
        summary.deny,
        summary.warn,
        summary.unprotected,
        summary.protected,
        summary.public,
        summary.without_tls,
        summary.without_auth,
        summary.with_violations,
    )
}

/// The table: one block per namespace, worst first, columns as wide as their
/// widest cell; then the policy set and the summary line.
pub fn table(inventory: &Inventory, context: &Context<'_>) -> String {
    let rows: Vec<[String; 8]> = inventory.entries.iter().map(cells).collect();
    let mut widths = COLUMNS.map(|(_, title)| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::from("  ");
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[index]));
            }
        }
        text.push('\n');
        text
    };
    let mut out = String::new();
    let mut index = 0;
    for (namespace, entries) in inventory.by_namespace() {
        let environments = &entries[0].environments;
        match environments.as_slice() {
            [] => out.push_str(&format!("namespace {namespace}\n")),
            names => out.push_str(&format!("namespace {namespace} ({})\n", names.join(", "))),
        }
        out.push_str(&line(&COLUMNS.map(|(_, title)| title)));
        for _ in &entries {
            out.push_str(&line(&rows[index].each_ref().map(String::as_str)));
            index += 1;
        }
        out.push('\n');
    }
    if inventory.entries.is_empty() {
        out.push_str("no entry points\n");
    }
    out.push_str(&format!("source: {}\npolicies: {}\n", context.from, context.policies));
    out.push_str(&summary_line(&inventory.summary()));
    out.push('\n');
    out
}

/// The JSON document (`docs/report-output.schema.json`).
pub fn json(inventory: &Inventory, context: &Context<'_>) -> Value {
    json!({
        "version": VERSION,
        "source": context.from,
        "policies": context.policies,
        "summary": inventory.summary(),
        "entries": inventory.entries,
    })
}

/// Text for HTML: every character that could open markup or leave an attribute escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
.meta { color: #555; margin: 0 0 1em; }
#summary { display: flex; flex-wrap: wrap; gap: .6em; margin: 0 0 1.2em; padding: 0; }
#summary div { border: 1px solid #ccc; border-radius: 6px; padding: .4em .8em; min-width: 7em; }
#summary dt { font-size: .8em; color: #555; }
#summary dd { margin: 0; font-size: 1.5em; font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .35em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort=ascending]::after { content: " \25B2"; }
th[aria-sort=descending]::after { content: " \25BC"; }
td.status { font-weight: 600; }
tr.deny td.status { color: #b00020; }
tr.warn td.status { color: #a15c00; }
tr.unprotected td.status { color: #6a4c93; }
tr.protected td.status { color: #1e7b34; }
ul.violations { margin: 0; padding-left: 1.1em; }
ul.violations li.deny .severity { color: #b00020; }
ul.violations li.warn .severity { color: #a15c00; }
code { font-size: .95em; }
"#;

/// Sorts the table by a column when its header is clicked (again: the other
/// way), and on load by `#sort=<column>` (or `#sort=-<column>`), through the
/// same function. Status sorts worst first, by the rank in `data-sort`.
const SCRIPT: &str = r#"
(function () {
  var table = document.getElementById("entries");
  var body = table.tBodies[0];
  function key(row, column) {
    var cell = row.querySelector('td[data-column="' + column + '"]');
    if (!cell) { return ""; }
    return cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim().toLowerCase();
  }
  function sortBy(column, descending) {
    var header = table.querySelector('th[data-column="' + column + '"]');
    if (!header) { return false; }
    var rows = Array.prototype.slice.call(body.rows);
    rows.forEach(function (row, index) { row.setAttribute("data-index", index); });
    rows.sort(function (a, b) {
      var x = key(a, column), y = key(b, column);
      var order = x < y ? -1 : x > y ? 1 : (+a.getAttribute("data-index")) - (+b.getAttribute("data-index"));
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    table.setAttribute("data-sorted", (descending ? "-" : "") + column);
    return true;
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener("click", function () {
      var column = th.getAttribute("data-column");
      sortBy(column, table.getAttribute("data-sorted") === column);
    });
  });
  var wanted = /^#sort=(-?)([A-Za-z]+)$/.exec(window.location.hash);
  if (wanted) { sortBy(wanted[2], wanted[1] === "-"); }
})();
"#;

/// The HTML page: summary counts, the entry points in a table sortable by any
/// column, each entry's violations with their fix. Self-contained: inline
/// style and script, nothing fetched.
pub fn html(inventory: &Inventory, context: &Context<'_>) -> String {
    let summary = inventory.summary();
    let counts = [
        ("entryPoints", "entry points", summary.entry_points),
        ("public", "public", summary.public),
        ("withoutTls", "without TLS", summary.without_tls),
        ("withoutAuth", "without auth", summary.without_auth),
        ("withViolations", "with violations", summary.with_violations),
        ("deny", "deny", summary.deny),
        ("warn", "warn", summary.warn),
        ("unprotected", "unprotected", summary.unprotected),
        ("protected", "protected", summary.protected),
    ];
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>portcullis report: what is exposed</title>\n");
    out.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
    out.push_str("<h1>What is exposed</h1>\n");
    out.push_str(&format!(
        "<p class=\"meta\">source: <code id=\"source\">{}</code> &middot; policies: <code id=\"policies\">{}</code></p>\n",
        escape(context.from),
        escape(context.policies)
    ));
    out.push_str("<dl id=\"summary\">\n");
    for (id, label, count) in counts {
        out.push_str(&format!("<div><dt>{label}</dt><dd id=\"count-{id}\">{count}</dd></div>\n"));
    }
    out.push_str("</dl>\n<table id=\"entries\">\n<thead><tr>");
    out.push_str("<th data-column=\"namespace\">NAMESPACE</th>");
    for (key, title) in COLUMNS {
        out.push_str(&format!("<th data-column=\"{key}\">{title}</th>"));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for entry in &inventory.entries {
        let [status, address, object, tls, auth, allow_list, controller, _] = cells(entry);
        let status_class = escape(&status);
        out.push_str(&format!("<tr class=\"{status_class}\">"));
        out.push_str(&format!("<td data-column=\"namespace\">{}</td>", escape(&entry.namespace)));
        out.push_str(&format!(
            "<td data-column=\"status\" class=\"status\" data-sort=\"{}\">{status_class}</td>",
            entry.status as u8
        ));
        for (key, text) in
            [("entry", address), ("object", object), ("tls", tls), ("auth", auth), ("allowList", allow_list)]
        {
            out.push_str(&format!("<td data-column=\"{key}\">{}</td>", escape(&text)));
        }
        out.push_str(&format!("<td data-column=\"controller\">{}</td>", escape(&controller)));
        out.push_str("<td data-column=\"violations\">");
        if entry.violations.is_empty() {
            out.push('-');
        } else {
            out.push_str("<ul class=\"violations\">");
            for violation in &entry.violations {
                out.push_str(&format!(
                    "<li class=\"{0}\"><span class=\"severity\">{0}</span> <code class=\"policy\">{1}</code>: \
                     <span class=\"message\">{2}</span></li>",
                    escape(violation.severity),
                    escape(&violation.policy),
                    escape(&violation.message)
                ));
            }
            out.push_str("</ul>");
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    if inventory.entries.is_empty() {
        out.push_str("<p id=\"empty\">No entry points.</p>\n");
    }
    out.push_str(&format!("<script>{SCRIPT}</script>\n</body>\n</html>\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup_or_leave_an_attribute() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }
}
