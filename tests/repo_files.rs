//! The files a newcomer reads first say true things: the LICENSE is the
//! Apache-2.0 text `Cargo.toml` declares, BENCHMARKS.md and CHANGELOG.md name
//! only files and `make` targets that exist, and the doc tests the README
//! mentions exist and are run by `make test`.

use std::fs;
use std::path::Path;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    fs::read_to_string(repo(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// 64-bit FNV-1a, enough to pin a text byte for byte.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3))
}

#[test]
fn license_is_the_apache_2_text_cargo_toml_declares() {
    let cargo = read("Cargo.toml");
    assert!(cargo.lines().any(|line| line == r#"license = "Apache-2.0""#), "Cargo.toml's license");
    let license = fs::read(repo("LICENSE")).unwrap();
    let text = String::from_utf8(license.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!((license.len(), lines.len()), (11358, 202));
    assert_eq!(lines[1].trim(), "Apache License");
    assert_eq!(lines[2].trim(), "Version 2.0, January 2004");
    assert_eq!(lines[3].trim(), "http://www.apache.org/licenses/");
    assert_eq!(lines[176].trim(), "END OF TERMS AND CONDITIONS");
    // The text of https://www.apache.org/licenses/LICENSE-2.0.txt (and Debian's
    // /usr/share/common-licenses/Apache-2.0), unaltered.
    assert_eq!(fnv1a(&license), 0x2eb9_294a_0308_d938);
    if let Ok(debian) = fs::read("/usr/share/common-licenses/Apache-2.0") {
        assert!(debian == license, "LICENSE differs from /usr/share/common-licenses/Apache-2.0");
    }
}

/// Makefile targets: every `name:` rule (not variables, not pattern rules).
fn make_targets() -> Vec<String> {
    read("Makefile")
        .lines()
        .filter(|line| !line.starts_with(['\t', ' ', '#', '.', '$']))
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, rest)| !rest.starts_with('=') && !name.contains([' ', '?', '=', '%', '$']))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// The repository paths a Markdown text names (in prose, code or links) and
/// the `make` targets its code (between backticks) names. Build output
/// (`target/`), absolute paths and URLs are not repository paths.
fn mentions(text: &str) -> (Vec<String>, Vec<String>) {
    const EXTENSIONS: &[&str] = &[".md", ".rs", ".sh", ".json", ".yaml", ".yml", ".toml", ".txt", ".lock"];
    let top_level: Vec<String> =
        fs::read_dir(repo("")).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || "`()[]{},;\"'|<>".contains(c))
        .map(|word| word.trim_end_matches(['.', ':']))
        .filter(|word| !word.is_empty())
        .collect();
    let mut paths = Vec::new();
    for word in &words {
        if word.contains("://") || word.starts_with(['/', '~', '$', '-', '#']) || word.starts_with("target/") {
            continue;
        }
        let first = word.split('/').next().unwrap();
        let named_file = EXTENSIONS.iter().any(|extension| word.ends_with(extension)) && !word.starts_with('*');
        if named_file || (word.contains('/') && top_level.iter().any(|entry| entry == first)) {
            paths.push((*word).to_owned());
        }
    }
    // Odd pieces between backticks are code, for fenced blocks too.
    let targets = text
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|code| {
            let words: Vec<&str> = code.split_whitespace().collect();
            words
                .windows(2)
                .filter(|pair| pair[0] == "make" && pair[1].starts_with(|c: char| c.is_ascii_lowercase()))
                .map(|pair| pair[1].to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    (paths, targets)
}

/// The names of the files in the repository (build output and history left out).
fn file_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            if name != "target" && name != ".git" {
                names.extend(file_names(&entry.path()));
            }
        } else {
            names.push(name);
        }
    }
    names
}

fn assert_mentions_exist(file: &str, expected_paths: &[&str]) {
    let (paths, targets) = mentions(&read(file));
    let missing: Vec<&String> = paths
        .iter()
        .filter(|path| {
            if path.contains('*') {
                glob::glob(repo(path).to_str().unwrap()).unwrap().next().is_none()
            } else if !path.contains('/') {
                // A bare file name: a file of that name anywhere in the repository.
                !file_names(&repo("")).iter().any(|name| name == *path)
            } else {
                !repo(path).exists()
            }
        })
        .collect();
    assert_eq!(missing, Vec::<&String>::new(), "{file} names files that are not in the repository");
    for path in expected_paths {
        assert!(paths.iter().any(|found| found == path), "{file}: {path} not found among {paths:?}");
    }
    let known = make_targets();
    let unknown: Vec<&String> = targets.iter().filter(|target| !known.contains(target)).collect();
    assert_eq!(unknown, Vec::<&String>::new(), "{file} names make targets the Makefile lacks");
}

#[test]
fn mentions_are_found() {
    let (paths, targets) = mentions(
        "See DESIGN.md, `benches/load.sh` and [the schema](docs/check-output.schema.json). \
         Run `make compare-gatekeeper`, then target/release/portcullis in /tmp/base; review/service-large \
         and https://example.com/x.md are not paths; a bare `make` does not make things.\n\
         ```sh\nmake fuzz FUZZ_SECONDS=5\n```\n",
    );
    assert_eq!(paths, ["DESIGN.md", "benches/load.sh", "docs/check-output.schema.json"]);
    assert_eq!(targets, ["compare-gatekeeper", "fuzz"]);
    assert!(!repo("DESIGN.md").exists() && !make_targets().contains(&"compare-gatekeeper".to_owned()));
}

#[test]
fn benchmarks_name_only_what_exists() {
    assert_mentions_exist("BENCHMARKS.md", &["benches/load.sh", "tests/fixtures/v1.32/service-create-nodeport.json"]);
}

#[test]
fn changelog_is_keep_a_changelog_and_names_only_what_exists() {
    let changelog = read("CHANGELOG.md");
    let headings: Vec<&str> = changelog.lines().filter(|line| line.starts_with('#')).collect();
    assert_eq!(headings, ["# Changelog", "## Unreleased", "### Added", "### Changed", "### Fixed"]);
    assert!(changelog.contains("[Keep a Changelog](https://keepachangelog.com/en/1.1.0/)"));
    let version = read("Cargo.toml").lines().find_map(|line| line.strip_prefix("version = ")).unwrap().to_owned();
    assert_eq!(version, r#""0.1.0""#);
    assert!(changelog.contains("`Cargo.toml` says 0.1.0"), "the changelog names Cargo.toml's version");
    assert_mentions_exist("CHANGELOG.md", &["benches/engine.rs", ".ci/get-promtool", "tests/image_context.rs"]);
}

/// Doc-comment code blocks rustdoc runs as tests (fences with no language or
/// `rust`, not `ignore`), counted per file under `src/`.
fn doc_tests(dir: &Path, found: &mut Vec<(String, usize)>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            doc_tests(&path, found);
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let mut open = false;
        let mut count = 0;
        for line in text.lines().map(str::trim_start) {
            let Some(doc) = line.strip_prefix("///").or_else(|| line.strip_prefix("//!")) else { continue };
            let Some(info) = doc.trim().strip_prefix("```") else { continue };
            if !open {
                let runs = info.is_empty() || (info.starts_with("rust") && !info.contains("ignore"));
                count += usize::from(runs);
            }
            open = !open;
        }
        if count > 0 {
            let relative = path.strip_prefix(repo("")).unwrap().to_str().unwrap().to_owned();
            found.push((relative, count));
        }
    }
}

#[test]
fn the_doc_tests_the_readme_mentions_exist_and_make_test_runs_them() {
    let readme = read("README.md").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        readme.contains(
            "(`cargo nextest run` plus the doc tests when cargo-nextest is installed, `cargo test` otherwise)"
        ),
        "README's make test paragraph changed; keep this test in step"
    );
    let mut found = Vec::new();
    doc_tests(&repo("src"), &mut found);
    assert!(found.contains(&("src/documents.rs".to_owned(), 3)), "{found:?}");
    // cargo-nextest does not run doc tests: `make test` runs them after it
    // (plain `cargo test` runs them itself).
    let makefile = read("Makefile");
    let nextest = makefile.lines().find(|line| line.contains("nextest run")).expect("make test runs nextest");
    assert!(nextest.trim_end().ends_with("&& $(CARGO) test --doc; \\"), "{nextest}");
}

#[test]
fn the_readme_shows_the_cel_examples_and_their_cases_as_they_are() {
    let readme = read("README.md");
    let section = &readme[readme.find("## Writing your own rule").expect("the section")..];
    let examples = ["ingress-hosts-in-our-domain", "loadbalancer-cost-center"];
    for example in examples {
        for path in
            [format!("docs/examples/cel/{example}.yaml"), format!("docs/examples/cel/tests/{example}/cases.yaml")]
        {
            let file = read(&path);
            assert!(section.contains(&format!("```yaml\n{file}```\n")), "README does not show {path} as it is");
        }
    }
    let policies = fs::read_dir(repo("docs/examples/cel"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().ends_with(".yaml"))
        .count();
    assert_eq!(policies, examples.len(), "every example policy is in the README");
    assert!(
        read("Makefile").contains("test docs/examples/cel/tests --policies docs/examples/cel"),
        "make test runs them"
    );
}

#[test]
fn every_test_file_is_a_module_of_the_integration_binary() {
    // With `autotests = false`, a file left out of tests/integration.rs would
    // never be built or run.
    let integration = read("tests/integration.rs");
    let mut files: Vec<String> = fs::read_dir(repo("tests"))
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_file())
        .map(|entry| entry.file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".rs") && name != "integration.rs")
        .collect();
    files.sort();
    assert!(files.len() >= 30, "{files:?}");
    for file in files {
        let module = file.trim_end_matches(".rs");
        assert!(
            integration.contains(&format!("#[path = \"{file}\"]\nmod {module};\n")),
            "tests/{file} is not declared in tests/integration.rs"
        );
    }
}
