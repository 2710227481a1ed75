//! `annotationValues`: one table of annotation keys (globs) and the grammar
//! their values must have, so that no value carries controller configuration
//! syntax. ingress-nginx pastes many annotation values into `nginx.conf`, some
//! unquoted: a `;`, `{`, `}`, `#`, a quote, a backslash or a newline ends the
//! directive and starts the attacker's own (CVE-2021-25742, CVE-2023-5044,
//! CVE-2025-24514, CVE-2025-1097, CVE-2025-1098).
//!
//! Every value of a listed annotation is judged in two steps:
//!
//! 1. **nginx syntax**: no control character (newline, tab, ...), `;`, `{`,
//!    `}`, `#`, quote or backslash, and no `$` except in an nginx variable
//!    (`$name`, `${name}`, `$1`) where the entry allows `variables`. A `regex`
//!    value may also escape a character with a backslash (`\.`, `\d`) and end
//!    with a `$` anchor.
//! 2. **grammar**: the value parses as what the annotation holds: URLs and
//!    paths with the `url` crate (the WHATWG URL parser), hosts with
//!    [`url::Host::parse`], CIDRs with `ipnet`, and small hand-written parsers
//!    for numbers, sizes, booleans, durations, keywords, object names and
//!    regular expressions. Variables are replaced by a placeholder first.
//!
//! The first entry whose `key` matches an annotation decides; annotations no
//! entry matches, and empty values, are not judged.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::LazyLock;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use url::{Host, Position, Url};

use crate::engine::Finding;
use crate::engine::glob::Globs;
use crate::engine::object::parse_go_bool;

#[derive(Debug, Deserialize)]
#[serde(try_from = "Params")]
pub struct AnnotationValues {
    entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Params {
    annotations: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    /// Annotation keys (globs).
    key: Globs,
    /// The grammar of the value.
    value: Grammar,
    /// Whether the value may hold nginx variables (`$host`, `${name}`, `$1`).
    #[serde(default)]
    variables: bool,
    /// Values accepted as they are (compared case-insensitively), besides
    /// the grammar; for `keyword`, the only values accepted.
    #[serde(default)]
    keywords: Vec<String>,
    /// Why nginx syntax in this value matters (such as a CVE), shown with
    /// the finding.
    #[serde(default)]
    reason: Option<String>,
}

/// What a value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Grammar {
    /// An absolute `http://` or `https://` URL with a host.
    Url,
    /// A URL, or a path starting with `/`.
    UrlOrPath,
    /// A path starting with `/` (or with a variable), with an optional query,
    /// already in the form a URL parser keeps (nothing to percent-encode, no
    /// dot segments).
    Path,
    /// A DNS name or an IP address, with an optional `:port`.
    Host,
    /// Comma-separated DNS names, each may start with `*.`.
    HostList,
    /// Comma-separated CIDRs or addresses.
    CidrList,
    /// An integer.
    Number,
    /// An nginx size: digits with an optional `b`, `k`, `m` or `g`.
    Size,
    /// A boolean as Go's `strconv.ParseBool` reads it.
    Boolean,
    /// A duration such as `30s`, `1m30s` or `500ms`.
    Duration,
    /// One of `keywords`.
    Keyword,
    /// A Kubernetes object name, or `namespace/name`.
    Name,
    /// A regular expression (balanced groups and classes).
    Regex,
    /// Any text without nginx syntax.
    FreeText,
    /// Not judged: left to another policy (such as snippets, which
    /// `forbiddenAnnotations` denies outright).
    Any,
}

impl Grammar {
    /// What the value should be, for messages: `value is not <noun>`.
    fn noun(self) -> &'static str {
        match self {
            Grammar::Url => "a URL",
            Grammar::UrlOrPath => "a URL or path",
            Grammar::Path => "a path",
            Grammar::Host => "a host",
            Grammar::HostList => "a host list",
            Grammar::CidrList => "a CIDR list",
            Grammar::Number => "a number",
            Grammar::Size => "a size",
            Grammar::Boolean => "a boolean",
            Grammar::Duration => "a duration",
            Grammar::Keyword => "an allowed keyword",
            Grammar::Name => "an object name",
            Grammar::Regex => "a regex",
            Grammar::FreeText | Grammar::Any => "text",
        }
    }

    /// How to write a value that parses (`keyword` lists its keywords).
    fn fix(self) -> &'static str {
        match self {
            Grammar::Url => "set an absolute http(s) URL",
            Grammar::UrlOrPath => "set an http(s) URL or a path starting with /",
            Grammar::Path => "set a path starting with /",
            Grammar::Host => "set a DNS name or IP address",
            Grammar::HostList => "set comma-separated DNS names",
            Grammar::CidrList => "set comma-separated CIDRs or addresses",
            Grammar::Number => "set an integer",
            Grammar::Size => "set a size such as 8m",
            Grammar::Boolean => "set true or false",
            Grammar::Duration => "set a duration such as 30s",
            Grammar::Keyword => "set one of",
            Grammar::Name => "set a name or namespace/name",
            Grammar::Regex => "balance its parentheses and brackets",
            Grammar::FreeText | Grammar::Any => "change the value",
        }
    }

    /// Whether values of this grammar can hold nginx variables at all.
    fn takes_variables(self) -> bool {
        matches!(self, Grammar::Url | Grammar::UrlOrPath | Grammar::Path | Grammar::Host | Grammar::FreeText)
    }

    /// Checks a value that holds no nginx syntax (variables replaced by a
    /// placeholder). `Err` carries what is wrong, when there is more to say
    /// than the noun.
    fn parse(self, value: &str, starts_with_variable: bool) -> Result<(), Option<Cow<'static, str>>> {
        match self {
            Grammar::Url => url(value),
            Grammar::UrlOrPath if value.starts_with('/') && !value.starts_with("//") => path(value, false),
            Grammar::UrlOrPath => url(value),
            Grammar::Path => path(value, starts_with_variable),
            Grammar::Host => host_and_port(value),
            Grammar::HostList => list(value, |item| host(item.strip_prefix("*.").unwrap_or(item))),
            Grammar::CidrList => list(value, |item| {
                let cidr = item.parse::<IpNet>().is_ok() || item.parse::<IpAddr>().is_ok();
                if cidr { Ok(()) } else { Err(Some("an entry is not a CIDR or address".into())) }
            }),
            Grammar::Number => ok_if(number(value.strip_prefix(['-', '+']).unwrap_or(value))),
            Grammar::Size => {
                ok_if(number(value.strip_suffix(['b', 'B', 'k', 'K', 'm', 'M', 'g', 'G']).unwrap_or(value)))
            }
            Grammar::Boolean => ok_if(parse_go_bool(value).is_some()),
            Grammar::Duration => ok_if(duration(value)),
            Grammar::Keyword => Err(None),
            Grammar::Name => ok_if(object_name(value)),
            Grammar::Regex => regex(value),
            Grammar::FreeText | Grammar::Any => Ok(()),
        }
    }
}

impl TryFrom<Params> for AnnotationValues {
    type Error = String;
    fn try_from(params: Params) -> Result<Self, String> {
        if params.annotations.is_empty() {
            return Err("annotationValues.annotations: list at least one entry".into());
        }
        for (index, entry) in params.annotations.iter().enumerate() {
            let field = |name: &str| format!("annotationValues.annotations[{index}].{name}");
            if entry.key.is_empty() {
                return Err(format!("{}: list at least one key", field("key")));
            }
            if entry.value == Grammar::Keyword && entry.keywords.is_empty() {
                return Err(format!("{}: a keyword value needs at least one keyword", field("keywords")));
            }
            if let Some(keyword) = entry
                .keywords
                .iter()
                .find(|k| k.is_empty() || k.contains(char::is_whitespace) || nginx_syntax(k, false, false).is_some())
            {
                return Err(format!("{}: {keyword:?} is not a plain word", field("keywords")));
            }
            if entry.variables && !entry.value.takes_variables() {
                return Err(format!(
                    "{}: only url, urlOrPath, path, host and freeText values can hold nginx variables",
                    field("variables")
                ));
            }
        }
        Ok(AnnotationValues { entries: params.annotations })
    }
}

impl AnnotationValues {
    pub fn check(&self, metadata: &ObjectMeta, findings: &mut Vec<Finding>) {
        let Some(annotations) = &metadata.annotations else {
            return;
        };
        for (key, value) in annotations {
            if let Some(entry) = self.entries.iter().find(|entry| entry.key.matches(key))
                && let Some(text) = entry.judge(key, value)
            {
                findings.push(Finding::Violation(text));
            }
        }
    }
}

impl Entry {
    /// The finding's text when the value is not safe, else `None`.
    fn judge(&self, key: &str, value: &str) -> Option<String> {
        if self.value == Grammar::Any || value.is_empty() || self.keywords.iter().any(|k| k.eq_ignore_ascii_case(value))
        {
            return None;
        }
        let noun = self.value.noun();
        if let Some(found) = nginx_syntax(value, self.variables, self.value == Grammar::Regex) {
            let mut text = format!(
                "annotation {key}: value is not {noun} without nginx syntax (contains {}); remove {}",
                found.contained(),
                found.the()
            );
            if let Some(reason) = &self.reason {
                let _ = write!(text, " ({reason})");
            }
            return Some(text);
        }
        let placeheld = if self.variables { substitute_variables(value) } else { Cow::Borrowed(value) };
        let detail = self.value.parse(&placeheld, self.variables && value.starts_with('$')).err()?;
        let mut text = format!("annotation {key}: value is not {noun}");
        if let Some(detail) = detail {
            let _ = write!(text, " ({detail})");
        }
        let _ = write!(text, "; {}", self.value.fix());
        if !self.keywords.is_empty() {
            let or = if self.value == Grammar::Keyword { ":" } else { ", or one of:" };
            let _ = write!(text, "{or} {}", self.keywords.join(", "));
        }
        Some(text)
    }
}

/// Configuration syntax found in a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Syntax {
    /// `;`, `{`, `}` or `#`, or a `$` that starts no allowed variable.
    Char(char),
    Quote,
    Backslash,
    Newline,
    Control,
}

impl Syntax {
    /// As in `contains ...`.
    fn contained(self) -> String {
        match self {
            Syntax::Char(c) => format!("'{c}'"),
            Syntax::Quote => "a quote".into(),
            Syntax::Backslash => "a backslash".into(),
            Syntax::Newline => "a newline".into(),
            Syntax::Control => "a control character".into(),
        }
    }

    /// As in `remove ...`.
    fn the(self) -> String {
        match self {
            Syntax::Char(c) => format!("the '{c}'"),
            Syntax::Quote => "the quote".into(),
            Syntax::Backslash => "the backslash".into(),
            Syntax::Newline => "the newline".into(),
            Syntax::Control => "the control character".into(),
        }
    }
}

/// The first nginx syntax in `value`: a control character, `;`, `{`, `}`,
/// `#`, a quote, a backslash, or a `$` outside an allowed variable. With
/// `regex`, a backslash may escape a letter, a digit or a regex
/// metacharacter, and `$` may anchor the end (of the value, a group or an
/// alternative).
fn nginx_syntax(value: &str, variables: bool, regex: bool) -> Option<Syntax> {
    let bytes = value.as_bytes();
    let mut chars = value.char_indices();
    while let Some((at, c)) = chars.next() {
        let found = match c {
            '\n' | '\r' => Syntax::Newline,
            c if c.is_control() => Syntax::Control,
            ';' | '{' | '}' | '#' => Syntax::Char(c),
            '"' | '\'' => Syntax::Quote,
            '\\' if regex
                && bytes.get(at + 1).is_some_and(|&b| b.is_ascii_alphanumeric() || b".^$*+?()[]|/-".contains(&b)) =>
            {
                chars.next();
                continue;
            }
            '\\' => Syntax::Backslash,
            '$' => {
                if variables && let Some(len) = variable_len(&value[at..]) {
                    // Skip the rest of the variable (all ASCII).
                    for _ in 1..len {
                        chars.next();
                    }
                    continue;
                }
                if regex && matches!(bytes.get(at + 1), None | Some(b'|' | b')')) {
                    continue;
                }
                Syntax::Char('$')
            }
            _ => continue,
        };
        return Some(found);
    }
    None
}

/// The length of the nginx variable `text` starts with (`$name`, `${name}`,
/// `$1`), if it starts with one.
fn variable_len(text: &str) -> Option<usize> {
    let name = |s: &str| s.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
    let rest = text.strip_prefix('$')?;
    if let Some(braced) = rest.strip_prefix('{') {
        let len = name(braced);
        return (len > 0 && braced[len..].starts_with('}')).then_some(len + 3);
    }
    let len = name(rest);
    (len > 0).then_some(len + 1)
}

/// The value with each nginx variable replaced by a placeholder that parses in
/// any position: `0` (a path segment, a host label, a port, a number), or
/// `http` for a variable that stands for the scheme (`$scheme://...`).
fn substitute_variables(value: &str) -> Cow<'_, str> {
    if !value.contains('$') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let len = variable_len(&rest[at..]).unwrap_or(1);
        let after = &rest[at + len..];
        out.push_str(if out.is_empty() && after.starts_with("://") { "http" } else { "0" });
        rest = after;
    }
    out.push_str(rest);
    Cow::Owned(out)
}

type Parsed = Result<(), Option<Cow<'static, str>>>;

fn ok_if(ok: bool) -> Parsed {
    if ok { Ok(()) } else { Err(None) }
}

fn no_whitespace(value: &str) -> Parsed {
    if value.contains(char::is_whitespace) { Err(Some("contains a space".into())) } else { Ok(()) }
}

fn url(value: &str) -> Parsed {
    no_whitespace(value)?;
    let url = Url::parse(value).map_err(|error| Some(error.to_string().into()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Some("the scheme is not http or https".into()));
    }
    match url.host() {
        Some(Host::Domain(domain)) => dns_name(domain),
        Some(_) => Ok(()),
        None => Err(Some("no host".into())),
    }
}

/// The base that paths are resolved against.
static BASE: LazyLock<Url> = LazyLock::new(|| Url::parse("http://portcullis.invalid/").expect("a valid base URL"));

fn path(value: &str, starts_with_variable: bool) -> Parsed {
    no_whitespace(value)?;
    if value.starts_with("//") {
        return Err(Some("starts with //, which names a host".into()));
    }
    if !value.starts_with('/') && !starts_with_variable {
        return Err(Some("does not start with /".into()));
    }
    let url = BASE.join(value).map_err(|error| Some(error.to_string().into()))?;
    if url.host() != BASE.host() || url.scheme() != BASE.scheme() {
        return Err(Some("names a host".into()));
    }
    // Already in the form the parser keeps: nothing was percent-encoded or
    // resolved away.
    let kept = &url[Position::BeforePath..];
    if kept != value && kept.strip_prefix('/') != Some(value) {
        return Err(Some("needs percent-encoding or has dot segments".into()));
    }
    Ok(())
}

fn host_and_port(value: &str) -> Parsed {
    no_whitespace(value)?;
    let (name, port) = match value.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((address, "")) => (&value[..address.len() + 2], None),
            Some((address, after)) => (&value[..address.len() + 2], Some(after.strip_prefix(':').ok_or(None)?)),
            None => return Err(Some("invalid IPv6 address".into())),
        },
        None => match value.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (value, None),
        },
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err())
    {
        return Err(Some("invalid port number".into()));
    }
    host(name)
}

fn host(value: &str) -> Parsed {
    no_whitespace(value)?;
    match Host::parse(value).map_err(|error| Some(error.to_string().into()))? {
        Host::Domain(domain) => dns_name(&domain),
        Host::Ipv4(_) | Host::Ipv6(_) => Ok(()),
    }
}

/// A parsed (lowercase, punycode) domain holds only DNS name characters in
/// non-empty labels (the URL parser lets `*`, `!`, `,` and the like through).
fn dns_name(domain: &str) -> Parsed {
    let labels = domain.strip_suffix('.').unwrap_or(domain);
    let ok = labels
        .split('.')
        .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    if ok { Ok(()) } else { Err(Some("not a DNS name".into())) }
}

/// Comma-separated items (spaces around commas allowed), none empty.
fn list(value: &str, item: impl Fn(&str) -> Parsed) -> Parsed {
    value.split(',').try_for_each(|entry| match entry.trim() {
        "" => Err(Some("an entry is empty".into())),
        entry => item(entry),
    })
}

/// 1 to 18 ASCII digits (what fits a Go `int` on any platform).
fn number(digits: &str) -> bool {
    (1..=18).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `0`, or one or more `<number><unit>` (units of Go and nginx: `ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`, `d`, `w`, `M`, `y`), the number may have a
/// fraction.
fn duration(value: &str) -> bool {
    if value == "0" {
        return true;
    }
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        if digits == 0 || rest[..digits].split('.').count() > 2 || rest[..digits].split('.').any(str::is_empty) {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) =
            ["ns", "us", "µs", "ms", "s", "m", "h", "d", "w", "M", "y"].iter().find(|u| rest.starts_with(*u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    !value.is_empty()
}

/// `name` or `namespace/name`: a DNS-1123 label, then a DNS-1123 subdomain.
fn object_name(value: &str) -> bool {
    let label = |s: &str| {
        (1..=63).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    let subdomain = |s: &str| s.len() <= 253 && s.split('.').all(label);
    match value.split_once('/') {
        Some((namespace, name)) => label(namespace) && subdomain(name),
        None => subdomain(value),
    }
}

/// Groups and classes balanced, no dangling escape, no whitespace.
fn regex(value: &str) -> Parsed {
    no_whitespace(value)?;
    let (mut depth, mut class) = (0usize, false);
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => {
                bytes.next();
            }
            b'[' if !class => class = true,
            b']' if class => class = false,
            b'(' if !class => depth += 1,
            b')' if !class => depth = depth.checked_sub(1).ok_or(Some("unbalanced parentheses".into()))?,
            _ => {}
        }
    }
    match (depth, class) {
        (0, false) => Ok(()),
        (_, true) => Err(Some("unclosed bracket".into())),
        _ => Err(Some("unbalanced parentheses".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::*;
    use serde_json::json;

    const P: &str = "nginx.ingress.kubernetes.io";

    fn table() -> crate::engine::rules::Rule {
        rule(json!({"annotationValues": {"annotations": [
            {"key": [format!("{P}/*-snippet")], "value": "any"},
            {"key": [format!("{P}/auth-url"), format!("{P}/mirror-target")], "value": "url", "variables": true,
             "reason": "CVE-2025-24514"},
            {"key": [format!("{P}/auth-signin")], "value": "urlOrPath", "variables": true},
            {"key": [format!("{P}/permanent-redirect")], "value": "urlOrPath", "reason": "CVE-2023-5044"},
            {"key": [format!("{P}/proxy-redirect-from")], "value": "urlOrPath", "keywords": ["off", "default"]},
            {"key": [format!("{P}/rewrite-target")], "value": "path", "variables": true},
            {"key": [format!("{P}/upstream-vhost")], "value": "host", "variables": true},
            {"key": [format!("{P}/mirror-host")], "value": "host"},
            {"key": [format!("{P}/server-alias")], "value": "hostList"},
            {"key": [format!("{P}/whitelist-source-range")], "value": "cidrList"},
            {"key": [format!("{P}/proxy-read-timeout")], "value": "number"},
            {"key": [format!("{P}/proxy-body-size")], "value": "size"},
            {"key": [format!("{P}/use-regex")], "value": "boolean"},
            {"key": [format!("{P}/global-rate-limit-window")], "value": "duration"},
            {"key": [format!("{P}/backend-protocol")], "value": "keyword", "keywords": ["HTTP", "HTTPS", "GRPC"]},
            {"key": [format!("{P}/auth-secret")], "value": "name"},
            {"key": [format!("{P}/auth-tls-match-cn")], "value": "regex", "reason": "CVE-2025-1097"},
            {"key": [format!("{P}/upstream-hash-by")], "value": "freeText", "variables": true},
            {"key": [format!("{P}/*")], "value": "freeText"},
        ]}}))
    }

    fn judge(key: &str, value: &str) -> Vec<Finding> {
        let object = ingress(json!({"metadata": {"name": "web", "annotations": {format!("{P}/{key}"): value}}}));
        check(&table(), &object)
    }

    fn denied(key: &str, value: &str) -> String {
        match judge(key, value).as_slice() {
            [Finding::Violation(text)] => text.clone(),
            other => panic!("{key}: {value:?} gave {other:?}"),
        }
    }

    fn assert_allowed(key: &str, values: &[&str]) {
        for value in values {
            assert_eq!(judge(key, value), vec![], "{key}: {value:?}");
        }
    }

    #[test]
    fn real_values_are_allowed() {
        assert_allowed(
            "auth-url",
            &[
                "https://oauth2-proxy.auth.svc.cluster.local/oauth2/auth",
                "https://$host/oauth2/auth",
                "http://auth.example.com:8080/verify?x=1&y=2",
                "https://[2001:db8::1]/auth",
            ],
        );
        assert_allowed(
            "auth-signin",
            &[
                "https://$host/oauth2/start?rd=$escaped_request_uri",
                "$scheme://$host/oauth2/start?rd=${request_uri}",
                "/oauth2/start",
            ],
        );
        assert_allowed("mirror-target", &["https://test.env.com/$request_uri", "http://mirror.shop.svc$request_uri"]);
        assert_allowed("permanent-redirect", &["https://shop.example.com/new", "/new-home?from=old"]);
        assert_allowed("proxy-redirect-from", &["off", "Default", "http://backend/", "/internal/"]);
        assert_allowed("rewrite-target", &["/", "/$2", "/api/$1?version=2", "$1", "/%7Euser"]);
        assert_allowed("upstream-vhost", &["shop.default.svc.cluster.local", "example.com:8080", "$service_name.svc"]);
        assert_allowed("mirror-host", &["mirror.example.com", "10.0.0.7", "[::1]:8443"]);
        assert_allowed("server-alias", &["www.example.com", "a.example.com, *.example.org"]);
        assert_allowed("whitelist-source-range", &["10.0.0.0/8", "10.0.0.0/8, 192.168.1.7,2001:db8::/32"]);
        assert_allowed("proxy-read-timeout", &["3600", "-1"]);
        assert_allowed("proxy-body-size", &["0", "8m", "1024M", "16k"]);
        assert_allowed("use-regex", &["true", "False", "1"]);
        assert_allowed("global-rate-limit-window", &["1m", "1h30m", "500ms", "1.5s", "0"]);
        assert_allowed("backend-protocol", &["GRPC", "https"]);
        assert_allowed("auth-secret", &["basic-auth", "auth/basic-auth.v2"]);
        assert_allowed("auth-tls-match-cn", &["CN=client.example.com", r"CN=(alice|bob)\.example\.com$"]);
        assert_allowed("upstream-hash-by", &["$request_uri", "${request_uri}-text-value", "$remote_addr$host"]);
        assert_allowed("configuration-snippet", &["more_set_headers \"X: 1\";"]);
        assert_allowed("custom-http-errors", &["404,415", "any text, with spaces"]);
        assert_allowed("auth-url", &[""]);
        // Not in the table at all.
        let other = ingress(json!({"metadata": {"name": "web", "annotations": {"example.com/x": "a;b{c}"}}}));
        assert_eq!(check(&table(), &other), vec![]);
        assert_eq!(check(&table(), &ingress(json!({"metadata": {"name": "web"}}))), vec![]);
    }

    #[test]
    fn nginx_syntax_is_denied_and_named() {
        let syntax = |key: &str, noun: &str, contains: &str, the: &str, reason: &str| {
            format!(
                "annotation {P}/{key}: value is not {noun} without nginx syntax (contains {contains}); remove {the}{reason}"
            )
        };
        assert_eq!(
            denied("auth-url", "http://auth.example.com/verify#;\nload_module /tmp/x.so;"),
            syntax("auth-url", "a URL", "'#'", "the '#'", " (CVE-2025-24514)")
        );
        assert_eq!(
            denied("auth-url", "https://auth.example.com/;proxy_pass http://evil"),
            syntax("auth-url", "a URL", "';'", "the ';'", " (CVE-2025-24514)")
        );
        assert_eq!(
            denied("mirror-target", "https://m.example.com/\"; include /etc/passwd; \""),
            syntax("mirror-target", "a URL", "a quote", "the quote", " (CVE-2025-24514)")
        );
        assert_eq!(
            denied("permanent-redirect", "https://shop.example.com; more_clear_headers Server"),
            syntax("permanent-redirect", "a URL or path", "';'", "the ';'", " (CVE-2023-5044)")
        );
        assert_eq!(
            denied("permanent-redirect", "https://shop.example.com/$request_uri"),
            syntax("permanent-redirect", "a URL or path", "'$'", "the '$'", " (CVE-2023-5044)")
        );
        assert_eq!(denied("rewrite-target", "/$2}"), syntax("rewrite-target", "a path", "'}'", "the '}'", ""));
        assert_eq!(denied("rewrite-target", "/${x"), syntax("rewrite-target", "a path", "'$'", "the '$'", ""));
        assert_eq!(denied("rewrite-target", "/$"), syntax("rewrite-target", "a path", "'$'", "the '$'", ""));
        assert_eq!(
            denied("mirror-host", "m.example.com\\"),
            syntax("mirror-host", "a host", "a backslash", "the backslash", "")
        );
        assert_eq!(
            denied("server-alias", "a.example.com\rb"),
            syntax("server-alias", "a host list", "a newline", "the newline", "")
        );
        assert_eq!(
            denied("use-regex", "true\u{7}"),
            syntax("use-regex", "a boolean", "a control character", "the control character", "")
        );
        assert_eq!(
            denied("auth-tls-match-cn", "CN=x) {\n}"),
            syntax("auth-tls-match-cn", "a regex", "'{'", "the '{'", " (CVE-2025-1097)")
        );
        assert_eq!(
            denied("auth-tls-match-cn", "CN=x\\"),
            syntax("auth-tls-match-cn", "a regex", "a backslash", "the backslash", " (CVE-2025-1097)")
        );
        assert_eq!(
            denied("auth-tls-match-cn", "CN=x$y"),
            syntax("auth-tls-match-cn", "a regex", "'$'", "the '$'", " (CVE-2025-1097)")
        );
        assert_eq!(
            denied("future-annotation", "x' y"),
            syntax("future-annotation", "text", "a quote", "the quote", "")
        );
        assert_eq!(
            denied("backend-protocol", "GRPC;"),
            syntax("backend-protocol", "an allowed keyword", "';'", "the ';'", "")
        );
    }

    #[test]
    fn values_that_do_not_parse_are_denied_with_the_reason() {
        let cases = [
            ("auth-url", "auth.example.com/verify", "a URL (relative URL without a base); set an absolute http(s) URL"),
            (
                "auth-url",
                "ftp://files.example.com/",
                "a URL (the scheme is not http or https); set an absolute http(s) URL",
            ),
            ("auth-url", "https://a*b.example.com/", "a URL (not a DNS name); set an absolute http(s) URL"),
            ("auth-url", "https://a b/", "a URL (contains a space); set an absolute http(s) URL"),
            ("auth-url", "https://$host:99999/", "a URL (invalid port number); set an absolute http(s) URL"),
            (
                "auth-signin",
                "//evil.example.com/x",
                "a URL or path (relative URL without a base); set an http(s) URL or a path starting with /",
            ),
            (
                "proxy-redirect-from",
                "sometimes",
                "a URL or path (relative URL without a base); set an http(s) URL or a path starting with /, or one of: off, default",
            ),
            (
                "rewrite-target",
                "/a/../etc",
                "a path (needs percent-encoding or has dot segments); set a path starting with /",
            ),
            (
                "rewrite-target",
                "/caf\u{e9}",
                "a path (needs percent-encoding or has dot segments); set a path starting with /",
            ),
            (
                "rewrite-target",
                "//evil.example.com/",
                "a path (starts with //, which names a host); set a path starting with /",
            ),
            ("rewrite-target", "api/v1", "a path (does not start with /); set a path starting with /"),
            ("upstream-vhost", "a,b.example.com", "a host (not a DNS name); set a DNS name or IP address"),
            ("mirror-host", "example.com:http", "a host (invalid port number); set a DNS name or IP address"),
            ("mirror-host", "[::1", "a host (invalid IPv6 address); set a DNS name or IP address"),
            ("mirror-host", "a%3Bb.example.com", "a host (not a DNS name); set a DNS name or IP address"),
            (
                "server-alias",
                "a.example.com,,b.example.com",
                "a host list (an entry is empty); set comma-separated DNS names",
            ),
            ("server-alias", "*.*.example.com", "a host list (not a DNS name); set comma-separated DNS names"),
            ("server-alias", "~^www", "a host list (invalid international domain name); set comma-separated DNS names"),
            (
                "whitelist-source-range",
                "10.0.0.0/33",
                "a CIDR list (an entry is not a CIDR or address); set comma-separated CIDRs or addresses",
            ),
            ("proxy-read-timeout", "60s", "a number; set an integer"),
            ("proxy-body-size", "8mb", "a size; set a size such as 8m"),
            ("use-regex", "yes", "a boolean; set true or false"),
            ("global-rate-limit-window", "1 minute", "a duration; set a duration such as 30s"),
            ("global-rate-limit-window", "m", "a duration; set a duration such as 30s"),
            ("backend-protocol", "AJP", "an allowed keyword; set one of: HTTP, HTTPS, GRPC"),
            ("auth-secret", "Auth_Secret", "an object name; set a name or namespace/name"),
            ("auth-tls-match-cn", "CN=(a|b", "a regex (unbalanced parentheses); balance its parentheses and brackets"),
            ("auth-tls-match-cn", "CN=[a-z", "a regex (unclosed bracket); balance its parentheses and brackets"),
        ];
        for (key, value, expected) in cases {
            assert_eq!(
                denied(key, value),
                format!("annotation {P}/{key}: value is not {expected}"),
                "{key}: {value:?}"
            );
        }
    }

    #[test]
    fn the_first_matching_entry_decides_and_every_annotation_is_judged() {
        let object = ingress(json!({"metadata": {"name": "web", "annotations": {
            format!("{P}/server-snippet"): "location / { return 200; }",
            format!("{P}/rewrite-target"): "/;",
            format!("{P}/use-regex"): "maybe",
        }}}));
        assert_eq!(
            check(&table(), &object),
            vec![
                violation(&format!(
                    "annotation {P}/rewrite-target: value is not a path without nginx syntax (contains ';'); remove the ';'"
                )),
                violation(&format!("annotation {P}/use-regex: value is not a boolean; set true or false")),
            ]
        );
        let lb = service(json!({"metadata": {"name": "lb", "annotations": {format!("{P}/auth-url"): "x;"}}}));
        assert_eq!(check(&table(), &lb).len(), 1, "annotations of any kind are judged");
    }

    #[test]
    fn variables_are_read_whole() {
        assert_eq!(variable_len("$host/x"), Some(5));
        assert_eq!(variable_len("${host}x"), Some(7));
        assert_eq!(variable_len("$1"), Some(2));
        assert_eq!(variable_len("${host"), None);
        assert_eq!(variable_len("${}"), None);
        assert_eq!(variable_len("$-"), None);
        assert_eq!(substitute_variables("$scheme://$host:$port/${a}b$1"), "http://0:0/0b0");
        assert_eq!(substitute_variables("/plain"), "/plain");
    }

    #[test]
    fn bad_tables_are_load_errors() {
        let error = |entry: serde_json::Value| {
            serde_json::from_value::<crate::engine::rules::Rule>(json!({"annotationValues": {"annotations": [entry]}}))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(json!({"key": ["a"], "value": "keyword"})),
            "annotationValues.annotations[0].keywords: a keyword value needs at least one keyword"
        );
        assert_eq!(
            error(json!({"key": ["a"], "value": "keyword", "keywords": ["on;"]})),
            "annotationValues.annotations[0].keywords: \"on;\" is not a plain word"
        );
        assert_eq!(
            error(json!({"key": ["a"], "value": "number", "variables": true})),
            "annotationValues.annotations[0].variables: only url, urlOrPath, path, host and freeText values can hold nginx variables"
        );
        assert_eq!(
            error(json!({"key": [], "value": "url"})),
            "annotationValues.annotations[0].key: list at least one key"
        );
        assert!(error(json!({"key": ["a"], "value": "email"})).starts_with("unknown variant `email`"));
        assert!(error(json!({"key": ["a"], "value": "url", "extra": 1})).starts_with("unknown field `extra`"));
        let empty =
            serde_json::from_value::<crate::engine::rules::Rule>(json!({"annotationValues": {"annotations": []}}));
        assert_eq!(empty.unwrap_err().to_string(), "annotationValues.annotations: list at least one entry");
    }
}
