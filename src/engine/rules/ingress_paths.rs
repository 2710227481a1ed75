//! `ingressPaths`: Ingress paths that reach the controller's own files or break
//! out of its configuration. ingress-nginx writes each path into nginx.conf, as
//! `location /path {` or, when regexes are on, `location ~* "^/path" {`: a path
//! holding nginx syntax injects directives (CVE-2021-25748, CVE-2022-4886), and
//! one pointing into `/var/run/secrets` was how the controller's token leaked
//! (CVE-2021-25745).
//!
//! A plain path (`Exact`, `Prefix`, or `ImplementationSpecific` without regexes)
//! must match `^/[A-Za-z0-9/._~%!$&'()*+,;=:@-]*$` (RFC 3986 path characters).
//! A regex path (`ImplementationSpecific` on a controller whose regex switch is
//! on, see [`REGEX_SWITCHES`]) may also hold `^ [ ] ? |`, braces only as a
//! `{n}`, `{n,}` or `{n,m}` quantifier and `\` only before punctuation or one of
//! `d D w W s S b B` (never at the end, where it would escape the closing quote).
//! Then neither may contain `..` nor start with `/etc`, `/var/run/secrets` or
//! `/root`, read segment by segment (empty and `.` segments skipped, ASCII case
//! ignored) after percent-decoding a plain path or dropping the `\` of a regex
//! path's escapes. For a regex this is a textual check: `/(etc)` is not read as
//! `/etc`. An absent or empty path means `/`.

use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;

use super::Subject;
use crate::engine::Finding;
use crate::engine::controller::Family;
use crate::engine::object::{annotation, parse_go_bool};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressPaths {}

/// ingress-nginx reads the Ingress's paths as regexes when this is true.
pub const USE_REGEX: &str = "nginx.ingress.kubernetes.io/use-regex";
/// ingress-nginx also reads them as regexes when a rewrite target is set.
pub const REWRITE_TARGET: &str = "nginx.ingress.kubernetes.io/rewrite-target";

/// An annotation that makes a controller read `ImplementationSpecific` paths as
/// regexes.
#[derive(Debug)]
pub enum RegexSwitch {
    /// The annotation is true (as Go's `strconv.ParseBool` reads it).
    True(&'static str),
    /// The annotation is set and not empty.
    Set(&'static str),
}

/// The controller families that read paths as regexes, and their switches.
pub const REGEX_SWITCHES: &[(Family, &[RegexSwitch])] =
    &[(Family::Nginx, &[RegexSwitch::True(USE_REGEX), RegexSwitch::Set(REWRITE_TARGET)])];

/// Where a path must not point, with what the controller keeps there.
const FORBIDDEN: &[(&str, &str)] = &[
    ("/etc", "the controller's configuration"),
    ("/var/run/secrets", "the controller's service account token"),
    ("/root", "the controller's root home"),
];

/// The characters of a URL path: `A-Za-z0-9` and these.
const PATH_PUNCTUATION: &[u8] = b"/._~%!$&'()*+,;=:@-";
const PATH: [bool; 256] = table(&[PATH_PUNCTUATION], true);
/// What a regex path may hold besides the path characters (braces and `\` are
/// read separately).
const REGEX: [bool; 256] = table(&[b"^[]?|"], false);
/// What may follow a `\` in a regex path: punctuation, or a character class.
const ESCAPED: [bool; 256] = table(&[PATH_PUNCTUATION, b"^[]?|\\", b"dDwWsSbB"], false);

/// The longest part of a path a message shows, in characters as displayed.
const SHOWN: usize = 40;

const fn table(sets: &[&[u8]], alphanumeric: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = alphanumeric && (byte as u8).is_ascii_alphanumeric();
        byte += 1;
    }
    let mut set = 0;
    while set < sets.len() {
        let mut i = 0;
        while i < sets[set].len() {
            table[sets[set][i] as usize] = true;
            i += 1;
        }
        set += 1;
    }
    table
}

/// What is wrong with one path.
#[derive(Debug, PartialEq, Eq)]
enum Problem {
    NotAbsolute,
    /// A character outside the allowed ones.
    Character(char),
    /// A `{` or `}` that is not part of a quantifier.
    Brace,
    /// A `\` before a character it may not escape.
    Escape(char),
    /// A `\` at the end.
    TrailingBackslash,
    /// `..`; `encoded` when only the percent-decoded (or, for a regex, unescaped)
    /// path has it.
    ParentStep {
        encoded: bool,
    },
    /// Starts with a forbidden directory: the index into [`FORBIDDEN`].
    Reaches(usize),
}

impl IngressPaths {
    pub fn check(&self, ingress: &Ingress, subject: &Subject<'_>, findings: &mut Vec<Finding>) {
        let Some(spec) = &ingress.spec else { return };
        let regex_on = regex_switched_on(ingress, subject);
        let nginx = subject.families().contains(&Family::Nginx);
        for (r, rule) in spec.rules.iter().flatten().enumerate() {
            for (p, entry) in rule.http.iter().flat_map(|http| &http.paths).enumerate() {
                let Some(path) = entry.path.as_deref().filter(|path| !path.is_empty()) else { continue };
                let regex = regex_on && matches!(entry.path_type.as_str(), "ImplementationSpecific" | "");
                if let Some(problem) = problem(path, regex) {
                    let at = format!("spec.rules[{r}].http.paths[{p}].path {}", shown(path));
                    findings.push(Finding::Violation(message(&at, &problem, regex, nginx)));
                }
            }
        }
    }
}

/// Whether a controller that may serve the Ingress reads its paths as regexes.
fn regex_switched_on(ingress: &Ingress, subject: &Subject<'_>) -> bool {
    let families = subject.families();
    REGEX_SWITCHES.iter().filter(|(family, _)| families.contains(family)).flat_map(|(_, switches)| *switches).any(
        |switch| match *switch {
            RegexSwitch::True(key) => annotation(&ingress.metadata, key).and_then(parse_go_bool) == Some(true),
            RegexSwitch::Set(key) => annotation(&ingress.metadata, key).is_some_and(|value| !value.is_empty()),
        },
    )
}

fn problem(path: &str, regex: bool) -> Option<Problem> {
    let syntax = if regex { regex_syntax(path) } else { plain_syntax(path) };
    if syntax.is_some() {
        return syntax;
    }
    if has_parent_step(literal(path, regex)) {
        return Some(Problem::ParentStep { encoded: !path.contains("..") });
    }
    FORBIDDEN
        .iter()
        .position(|(directory, _)| starts_with_directory(literal(path, regex), directory))
        .map(Problem::Reaches)
}

/// The character at byte `index` (a character boundary: every earlier byte is ASCII).
fn char_at(path: &str, index: usize) -> char {
    path.get(index..).and_then(|rest| rest.chars().next()).unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn plain_syntax(path: &str) -> Option<Problem> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Some(Problem::NotAbsolute);
    }
    bytes.iter().position(|&byte| !PATH[usize::from(byte)]).map(|index| Problem::Character(char_at(path, index)))
}

fn regex_syntax(path: &str) -> Option<Problem> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Some(Problem::NotAbsolute);
    }
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        i = match byte {
            b'\\' => match bytes.get(i + 1) {
                None => return Some(Problem::TrailingBackslash),
                Some(&next) if ESCAPED[usize::from(next)] => i + 2,
                Some(_) => return Some(Problem::Escape(char_at(path, i + 1))),
            },
            b'{' => match quantifier_end(bytes, i) {
                Some(end) => end,
                None => return Some(Problem::Brace),
            },
            b'}' => return Some(Problem::Brace),
            _ if PATH[usize::from(byte)] || REGEX[usize::from(byte)] => i + 1,
            _ => return Some(Problem::Character(char_at(path, i))),
        };
    }
    None
}

/// The index after the quantifier `{n}`, `{n,}` or `{n,m}` that starts at `open`.
fn quantifier_end(bytes: &[u8], open: usize) -> Option<usize> {
    let digits = |from: usize| bytes[from..].iter().take_while(|byte| byte.is_ascii_digit()).count();
    let mut i = open + 1;
    let first = digits(i);
    if first == 0 {
        return None;
    }
    i += first;
    if bytes.get(i) == Some(&b',') {
        i += 1;
        i += digits(i);
    }
    (bytes.get(i) == Some(&b'}')).then_some(i + 1)
}

/// The path as the controller compares it to a URI: a plain path with its
/// `%XX` escapes decoded, a regex path without the `\` of its escapes.
fn literal(path: &str, regex: bool) -> impl Iterator<Item = u8> + '_ {
    let bytes = path.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let byte = *bytes.get(i)?;
        i += 1;
        if regex && byte == b'\\' {
            let escaped = bytes.get(i).copied();
            i += 1;
            return escaped;
        }
        if !regex && byte == b'%' {
            let hex = |at: usize| bytes.get(at).and_then(|&digit| char::from(digit).to_digit(16));
            if let (Some(high), Some(low)) = (hex(i), hex(i + 1)) {
                i += 2;
                return u8::try_from((high << 4) | low).ok();
            }
        }
        Some(byte)
    })
}

fn has_parent_step(mut bytes: impl Iterator<Item = u8>) -> bool {
    let mut dot = false;
    bytes.any(|byte| {
        let twice = dot && byte == b'.';
        dot = byte == b'.';
        twice
    })
}

/// Whether the path's first segments are those of `directory`, skipping empty
/// and `.` segments and ignoring ASCII case.
fn starts_with_directory(path: impl Iterator<Item = u8>, directory: &str) -> bool {
    let mut wanted = directory.split('/').filter(|segment| !segment.is_empty()).map(str::as_bytes);
    let mut want = wanted.next();
    let (mut len, mut first, mut same) = (0, 0, true);
    for byte in path.chain(std::iter::once(b'/')) {
        let Some(segment) = want else { return true };
        if byte != b'/' {
            if len == 0 {
                first = byte;
            }
            same &= segment.get(len).is_some_and(|expected| expected.eq_ignore_ascii_case(&byte));
            len += 1;
            continue;
        }
        let skipped = len == 0 || (len == 1 && first == b'.');
        if !skipped {
            if !same || len != segment.len() {
                return false;
            }
            want = wanted.next();
        }
        (len, same) = (0, true);
    }
    want.is_none()
}

/// The path quoted with Rust's escapes, cut after [`SHOWN`] displayed characters.
fn shown(path: &str) -> String {
    let mut text = String::from('"');
    let mut width = 0;
    for c in path.chars() {
        let escaped = c.escape_debug();
        width += escaped.len();
        if width > SHOWN {
            text.push('…');
            break;
        }
        text.extend(escaped);
    }
    text.push('"');
    text
}

fn message(at: &str, problem: &Problem, regex: bool, nginx: bool) -> String {
    match *problem {
        Problem::NotAbsolute => format!("{at} does not start with /; make it an absolute path"),
        Problem::Character(c) if regex => format!(
            "{at} has {c:?}, outside a safe regex path; use letters, digits, /._~%!$&'()*+,;=:@-, ^[]?|, {{n,m}} \
             and \\ escapes"
        ),
        Problem::Character(c) => {
            let fix = if nginx && "^[]?|\\{}".contains(c) {
                "for a regex set pathType ImplementationSpecific and nginx use-regex: \"true\""
            } else {
                "use only letters, digits and /._~%!$&'()*+,;=:@-"
            };
            format!("{at} has {c:?}, outside the URL path characters; {fix}")
        }
        Problem::Brace => format!("{at} has a brace outside a {{n}} or {{n,m}} quantifier; use braces only there"),
        Problem::Escape(c) => {
            format!("{at} escapes {c:?}, which a regex path must not; escape only punctuation or \\d \\w \\s \\b")
        }
        Problem::TrailingBackslash => {
            format!("{at} ends in \\, which escapes the controller's closing quote; remove it")
        }
        Problem::ParentStep { encoded } => format!(
            "{at} contains ..{} (CVE-2021-25745); remove the parent step",
            match (encoded, regex) {
                (false, _) => "",
                (true, false) => " once percent-decoded",
                (true, true) => " once unescaped",
            }
        ),
        Problem::Reaches(index) => {
            let (directory, what) = FORBIDDEN[index];
            format!("{at} points into {directory} ({what}, CVE-2021-25745); choose a path outside it")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::*;
    use serde_json::json;

    fn paths_rule() -> crate::engine::rules::Rule {
        rule(json!({"ingressPaths": {}}))
    }

    /// An nginx Ingress with one rule holding the paths `(path, pathType)`.
    fn ing(annotations: serde_json::Value, paths: &[(&str, &str)]) -> crate::engine::Object {
        ing_class("nginx", annotations, paths)
    }

    fn ing_class(class: &str, annotations: serde_json::Value, paths: &[(&str, &str)]) -> crate::engine::Object {
        let paths: Vec<serde_json::Value> = paths
            .iter()
            .map(|(path, path_type)| {
                json!({"path": path, "pathType": path_type,
                       "backend": {"service": {"name": "web", "port": {"number": 80}}}})
            })
            .collect();
        ingress(json!({"metadata": {"name": "web", "annotations": annotations},
                       "spec": {"ingressClassName": class,
                                "rules": [{"host": "a.example.com", "http": {"paths": paths}}]}}))
    }

    /// The finding for one path in regex mode or not.
    fn one(path: &str, path_type: &str, annotations: serde_json::Value) -> Vec<crate::engine::Finding> {
        check(&paths_rule(), &ing(annotations, &[(path, path_type)]))
    }

    const AT: &str = "spec.rules[0].http.paths[0].path";

    #[allow(non_snake_case)]
    fn REGEX_ON() -> serde_json::Value {
        json!({"nginx.ingress.kubernetes.io/use-regex": "true"})
    }

    /// The text of the one violation found.
    fn text(found: Vec<crate::engine::Finding>) -> String {
        match found.as_slice() {
            [crate::engine::Finding::Violation(text)] => text.clone(),
            other => panic!("not one violation: {other:?}"),
        }
    }

    #[test]
    fn allows_url_paths() {
        for path in [
            "/",
            "/api/v1",
            "/a;b=c",
            "/~user/x.html",
            "/%41pi",
            "/etcetera",
            "/rooted",
            "/var/run/secretsx",
            "/a.b/c.",
        ] {
            for path_type in ["Exact", "Prefix", "ImplementationSpecific"] {
                assert_eq!(one(path, path_type, json!({})), vec![], "{path} {path_type}");
            }
        }
        // An absent or empty path means `/`.
        let object = ingress(json!({"metadata": {"name": "web"}, "spec": {"rules": [{"host": "a.example.com",
            "http": {"paths": [{"pathType": "ImplementationSpecific", "path": "",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                               {"pathType": "ImplementationSpecific",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}));
        assert_eq!(check(&paths_rule(), &object), vec![]);
        assert_eq!(check(&paths_rule(), &ingress(json!({"metadata": {"name": "web"}}))), vec![]);
    }

    #[test]
    fn denies_characters_outside_a_url_path() {
        assert_eq!(
            one("/api/ { return 200; #", "Prefix", json!({})),
            vec![violation(&format!(
                "{AT} \"/api/ {{ return 200; #\" has ' ', outside the URL path characters; use only letters, \
                 digits and /._~%!$&'()*+,;=:@-"
            ))]
        );
        // CVE-2021-25748: a newline bypassed ingress-nginx's own sanitizing.
        assert_eq!(
            one("/x\nalias /var/run/secrets/;", "ImplementationSpecific", json!({})),
            vec![violation(&format!(
                "{AT} \"/x\\nalias /var/run/secrets/;\" has '\\n', outside the URL path characters; use only \
                 letters, digits and /._~%!$&'()*+,;=:@-"
            ))]
        );
        for (path, c) in [("/a\"b", "'\"'"), ("/a#b", "'#'"), ("/café", "'é'"), ("/a\tb", "'\\t'"), ("/a`b", "'`'")] {
            let text = text(one(path, "Exact", json!({})));
            assert!(text.contains(&format!("has {c}, outside the URL path characters")), "{path}: {text}");
        }
    }

    #[test]
    fn a_regex_character_in_a_plain_path_says_how_to_write_a_regex() {
        assert_eq!(
            one("/api(/|$)(.*)", "Prefix", REGEX_ON()),
            vec![violation(&format!(
                "{AT} \"/api(/|$)(.*)\" has '|', outside the URL path characters; for a regex set pathType \
                 ImplementationSpecific and nginx use-regex: \"true\""
            ))]
        );
        // Traefik reads no nginx annotation: the path stays plain, and no nginx advice.
        assert_eq!(
            check(&paths_rule(), &ing_class("traefik", REGEX_ON(), &[("/api(/|$)(.*)", "ImplementationSpecific")])),
            vec![violation(&format!(
                "{AT} \"/api(/|$)(.*)\" has '|', outside the URL path characters; use only letters, \
                 digits and /._~%!$&'()*+,;=:@-"
            ))]
        );
    }

    #[test]
    fn denies_relative_paths() {
        assert_eq!(
            one("api", "ImplementationSpecific", json!({})),
            vec![violation(&format!("{AT} \"api\" does not start with /; make it an absolute path"))]
        );
        assert_eq!(
            one("^/api", "ImplementationSpecific", REGEX_ON()),
            vec![violation(&format!("{AT} \"^/api\" does not start with /; make it an absolute path"))]
        );
    }

    #[test]
    fn denies_parent_steps_plain_or_encoded() {
        assert_eq!(
            one("/static/../../etc/passwd", "Prefix", json!({})),
            vec![violation(&format!(
                "{AT} \"/static/../../etc/passwd\" contains .. (CVE-2021-25745); remove the parent step"
            ))]
        );
        assert_eq!(
            one("/%2e%2E/%2e%2e/etc/passwd", "Exact", json!({})),
            vec![violation(&format!(
                "{AT} \"/%2e%2E/%2e%2e/etc/passwd\" contains .. once percent-decoded (CVE-2021-25745); remove the \
                 parent step"
            ))]
        );
        assert_eq!(one("/a.%2e", "Exact", json!({})).len(), 1);
        assert_eq!(one("/a..b", "Prefix", json!({})).len(), 1);
    }

    #[test]
    fn denies_paths_into_controller_directories() {
        let into = |path: &str, directory: &str, what: &str| {
            violation(&format!(
                "{AT} {path:?} points into {directory} ({what}, CVE-2021-25745); choose a path outside it"
            ))
        };
        let etc = "the controller's configuration";
        let secrets = "the controller's service account token";
        for path in
            ["/etc", "/etc/", "/etc/nginx/nginx.conf", "/ETC/passwd", "//etc//passwd", "/./etc", "/%65tc/passwd"]
        {
            assert_eq!(one(path, "Exact", json!({})), vec![into(path, "/etc", etc)], "{path}");
        }
        let token = "/var/run/secrets/kubernetes.io/serviceaccount/token";
        assert_eq!(
            one(token, "Prefix", json!({})),
            vec![violation(&format!(
                "{AT} \"/var/run/secrets/kubernetes.io/serviceac…\" points into /var/run/secrets ({secrets}, \
                 CVE-2021-25745); choose a path outside it"
            ))]
        );
        assert_eq!(
            one("/var/run/secrets", "Prefix", json!({})),
            vec![into("/var/run/secrets", "/var/run/secrets", secrets)]
        );
        for path in ["/root", "/root/.ssh/id_rsa", "/Root/"] {
            assert_eq!(
                one(path, "ImplementationSpecific", json!({})),
                vec![into(path, "/root", "the controller's root home")],
                "{path}"
            );
        }
    }

    #[test]
    fn allows_safe_regex_paths_when_nginx_reads_regexes() {
        for path in [
            "/api(/|$)(.*)",
            "/static/.*\\.js$",
            "/v[0-9]{1,3}/items/[^/]+",
            "/a{2}/b{2,}/c{1,4}",
            "/a\\/b\\-c\\d+\\w*",
            "/x?y|z",
        ] {
            assert_eq!(one(path, "ImplementationSpecific", REGEX_ON()), vec![], "{path}");
            // rewrite-target makes ingress-nginx read regexes too.
            let rewrite = json!({"nginx.ingress.kubernetes.io/rewrite-target": "/$2"});
            assert_eq!(one(path, "ImplementationSpecific", rewrite), vec![], "{path}");
            // Only ImplementationSpecific paths are regexes (and pathType may be left out).
            assert_eq!(one(path, "", REGEX_ON()), vec![], "{path}");
            assert_eq!(one(path, "Prefix", REGEX_ON()).len(), 1, "{path}");
        }
        // A textual check: the regex /(etc)/x is not read as /etc.
        assert_eq!(one("/(etc)/x", "ImplementationSpecific", REGEX_ON()), vec![]);
        // Go's ParseBool: "1" and "True" are true, "false" and "yes" are not.
        let switch = |value: &str| json!({"nginx.ingress.kubernetes.io/use-regex": value});
        assert_eq!(one("/a|b", "ImplementationSpecific", switch("1")), vec![]);
        assert_eq!(one("/a|b", "ImplementationSpecific", switch("True")), vec![]);
        assert_eq!(one("/a|b", "ImplementationSpecific", switch("false")).len(), 1);
        assert_eq!(one("/a|b", "ImplementationSpecific", switch("yes")).len(), 1);
        // An unknown class may be nginx: its switch counts.
        assert_eq!(check(&paths_rule(), &ing_class("mine", REGEX_ON(), &[("/a|b", "ImplementationSpecific")])), vec![]);
    }

    #[test]
    fn denies_unsafe_regex_paths() {
        let regex = |path: &str| one(path, "ImplementationSpecific", REGEX_ON());
        // CVE-2022-4886 style: a location block smuggled into a regex path.
        assert_eq!(
            regex("/api/ { return 200; #"),
            vec![violation(&format!(
                "{AT} \"/api/ {{ return 200; #\" has ' ', outside a safe regex path; use letters, digits, \
                 /._~%!$&'()*+,;=:@-, ^[]?|, {{n,m}} and \\ escapes"
            ))]
        );
        assert_eq!(
            regex("/a\"{alias /etc/;}"),
            vec![violation(&format!(
                "{AT} \"/a\\\"{{alias /etc/;}}\" has '\"', outside a safe regex path; use letters, digits, \
                 /._~%!$&'()*+,;=:@-, ^[]?|, {{n,m}} and \\ escapes"
            ))]
        );
        assert_eq!(
            regex("/x\\"),
            vec![violation(&format!(
                "{AT} \"/x\\\\\" ends in \\, which escapes the controller's closing quote; remove it"
            ))]
        );
        assert_eq!(
            regex("/\\x2e\\x2e/etc"),
            vec![violation(&format!(
                "{AT} \"/\\\\x2e\\\\x2e/etc\" escapes 'x', which a regex path must not; escape only punctuation or \\d \
                 \\w \\s \\b"
            ))]
        );
        for path in ["/a{", "/a{x}", "/a{1", "/a}", "/a{,3}", "/a\\{2}"] {
            let found = regex(path);
            let expected = if path.contains('\\') {
                format!(
                    "{AT} {path:?} escapes '{{', which a regex path must not; escape only punctuation or \\d \\w \\s \\b"
                )
            } else {
                format!("{AT} {path:?} has a brace outside a {{n}} or {{n,m}} quantifier; use braces only there")
            };
            assert_eq!(found, vec![violation(&expected)], "{path}");
        }
        assert_eq!(
            regex("/static/\\.\\./x"),
            vec![violation(&format!(
                "{AT} \"/static/\\\\.\\\\./x\" contains .. once unescaped (CVE-2021-25745); remove the parent step"
            ))]
        );
        assert_eq!(
            regex("/etc/.*"),
            vec![violation(&format!(
                "{AT} \"/etc/.*\" points into /etc (the controller's configuration, CVE-2021-25745); choose a path \
                 outside it"
            ))]
        );
        assert_eq!(
            text(regex("/\\/var/run/secrets")),
            format!(
                "{AT} \"/\\\\/var/run/secrets\" points into /var/run/secrets (the controller's service account token, \
                 CVE-2021-25745); choose a path outside it"
            )
        );
        assert_eq!(regex("/ROOT.*").len(), 0, "ROOT.* is one segment, not /root");
    }

    #[test]
    fn one_finding_per_path_in_order() {
        let object = ingress(json!({"metadata": {"name": "web"}, "spec": {"rules": [
            {"host": "a.example.com", "http": {"paths": [
                {"path": "/ok", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "/etc", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
            {"host": "b.example.com"},
            {"host": "c.example.com", "http": {"paths": [
                {"path": "/a b", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}));
        let found: Vec<String> = check(&paths_rule(), &object)
            .into_iter()
            .map(|finding| match finding {
                crate::engine::Finding::Violation(text) => text,
                other => panic!("not a violation: {other:?}"),
            })
            .collect();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].starts_with("spec.rules[0].http.paths[1].path \"/etc\" points into /etc"), "{}", found[0]);
        assert!(found[1].starts_with("spec.rules[2].http.paths[0].path \"/a b\" has ' '"), "{}", found[1]);
    }

    #[test]
    fn long_paths_are_cut_and_every_message_fits_a_warning_line() {
        assert_eq!(shown("/short"), "\"/short\"");
        assert_eq!(shown(&format!("/{}", "a".repeat(39))), format!("\"/{}\"", "a".repeat(39)));
        assert_eq!(shown(&format!("/{}", "a".repeat(40))), format!("\"/{}…\"", "a".repeat(39)));
        assert_eq!(shown("/\n\n"), "\"/\\n\\n\"");
        // The text of every message, for a long hostile path at a two-digit index, stays
        // within 200 characters, leaving room for the policy and object in 256.
        let long = format!("/{}", "\u{1}".repeat(300));
        let at = format!("spec.rules[10].http.paths[10].path {}", shown(&long));
        let problems = [
            Problem::NotAbsolute,
            Problem::Character('|'),
            Problem::Brace,
            Problem::Escape('x'),
            Problem::TrailingBackslash,
            Problem::ParentStep { encoded: true },
            Problem::Reaches(1),
        ];
        for problem in &problems {
            for (regex, nginx) in [(false, false), (false, true), (true, true)] {
                let text = message(&at, problem, regex, nginx);
                assert!(text.chars().count() <= 200, "{} characters: {text}", text.chars().count());
            }
        }
    }

    #[test]
    fn reads_segments_decoded_and_case_blind() {
        let starts = |path: &str, directory| starts_with_directory(literal(path, false), directory);
        assert!(starts("/var/run/secrets/x", "/var/run/secrets"));
        assert!(starts("/var//run/./secrets", "/var/run/secrets"));
        assert!(starts("/var/run/%73ecrets", "/var/run/secrets"));
        assert!(!starts("/var/run/secret", "/var/run/secrets"));
        assert!(!starts("/var/run", "/var/run/secrets"));
        assert!(!starts("/x/var/run/secrets", "/var/run/secrets"));
        assert!(!starts("/", "/etc"));
        assert_eq!(literal("/%zz%4", false).collect::<Vec<u8>>(), b"/%zz%4");
        assert_eq!(literal("/%2F%ff", false).collect::<Vec<u8>>(), b"//\xff");
        assert_eq!(literal("/\\.\\", true).collect::<Vec<u8>>(), b"/.");
    }
}
