//! The image builds: the Dockerfile's build stage, its COPY lines applied to the
//! repository as Docker applies them (honouring `.dockerignore`), gives a tree in
//! which `cargo metadata --locked` and `cargo check --locked --offline --bin
//! portcullis` succeed. No container engine runs here, so this is the check that
//! a file Cargo.toml or `include_str!` needs is not left out of the image.
//!
//! The check shares the test's own target directory: dependencies are already
//! checked there by `cargo clippy` (`make test` runs it first), and Cargo hashes
//! a workspace member by its path relative to the workspace root, so only
//! portcullis itself is checked again.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use glob::{MatchOptions, Pattern};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `.dockerignore` as BuildKit reads it: one pattern a line (`#` comments),
/// cleaned and relative to the context root, `!` re-includes; a path is
/// excluded when the last pattern matching it or one of its parent
/// directories is not a `!` one.
struct DockerIgnore {
    patterns: Vec<(bool, String, Pattern)>,
}

impl DockerIgnore {
    fn parse(text: &str) -> Self {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (include, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let cleaned = pattern.trim_start_matches('/').trim_end_matches('/').to_owned();
                let glob = Pattern::new(&cleaned).unwrap_or_else(|err| panic!(".dockerignore: {line}: {err}"));
                (include, cleaned, glob)
            })
            .collect();
        Self { patterns }
    }

    fn excluded(&self, path: &str) -> bool {
        let options =
            MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };
        let prefixes: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).chain([path]).collect();
        let mut excluded = false;
        for (include, _, glob) in &self.patterns {
            if prefixes.iter().any(|prefix| glob.matches_with(prefix, options)) {
                excluded = !include;
            }
        }
        excluded
    }

    /// Whether a directory can be skipped whole: excluded, and no `!` pattern
    /// could bring back something inside it.
    fn prunes(&self, dir: &str) -> bool {
        self.excluded(dir)
            && !self.patterns.iter().any(|(include, cleaned, _)| {
                *include && (cleaned.starts_with(&format!("{dir}/")) || cleaned.contains(['*', '?', '[']))
            })
    }
}

/// One stage of the Dockerfile: its name, WORKDIR and instructions (line
/// continuations joined, comments dropped).
struct Stage {
    name: Option<String>,
    workdir: String,
    instructions: Vec<(String, String)>,
}

fn stages(dockerfile: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let (keyword, rest) = (keyword.to_ascii_uppercase(), rest.trim().to_owned());
        if keyword == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                _ => None,
            };
            stages.push(Stage { name, workdir: "/".to_owned(), instructions: Vec::new() });
            continue;
        }
        let stage = stages.last_mut().expect("an instruction before FROM");
        if keyword == "WORKDIR" {
            stage.workdir = if rest.starts_with('/') { rest.clone() } else { format!("{}/{rest}", stage.workdir) };
        }
        stage.instructions.push((keyword, rest));
    }
    stages
}

/// A COPY from the build context: its sources and destination (flags such as
/// `--chown` dropped; `--from` copies are not from the context and give None).
fn context_copy(arguments: &str) -> Option<(Vec<String>, String)> {
    let mut words: Vec<String> = if arguments.starts_with('[') {
        serde_json::from_str(arguments).expect("COPY in JSON form is a JSON array")
    } else {
        arguments.split_whitespace().map(str::to_owned).collect()
    };
    if words.iter().any(|word| word.starts_with("--from=")) {
        return None;
    }
    words.retain(|word| !word.starts_with("--"));
    let destination = words.pop().expect("COPY has a destination");
    assert!(!words.is_empty(), "COPY {arguments}: no source");
    Some((words, destination))
}

/// Files (and symlinks) under `dir` in the context, as paths relative to the
/// context root, skipping what `.dockerignore` excludes.
fn context_files(root: &Path, dir: &str, ignore: &DockerIgnore, out: &mut Vec<String>) {
    let mut entries: Vec<_> = fs::read_dir(root.join(dir)).unwrap().map(|entry| entry.unwrap()).collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name().into_string().expect("UTF-8 file names");
        let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            if !ignore.prunes(&path) {
                context_files(root, &path, ignore, out);
            }
        } else if !ignore.excluded(&path) {
            out.push(path);
        }
    }
}

/// Copies the build stage's COPY sources into `into` (the stage's WORKDIR),
/// as Docker does: a directory's contents go into the destination, a file goes
/// to the destination path or into it when it ends with `/`. Returns the files
/// copied, relative to `into`.
fn assemble(stage: &Stage, ignore: &DockerIgnore, into: &Path) -> Vec<String> {
    let mut copied = Vec::new();
    for (_, arguments) in stage.instructions.iter().filter(|(keyword, _)| keyword == "COPY" || keyword == "ADD") {
        let Some((sources, destination)) = context_copy(arguments) else { continue };
        let absolute =
            if destination.starts_with('/') { destination.clone() } else { format!("{}/{destination}", stage.workdir) };
        let workdir = stage.workdir.trim_end_matches('/');
        let relative = absolute
            .strip_prefix(workdir)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .unwrap_or_else(|| panic!("COPY {arguments}: destination outside WORKDIR {workdir}"));
        let target_dir: PathBuf =
            relative.split('/').filter(|part| !part.is_empty() && *part != ".").collect::<PathBuf>();
        for source in &sources {
            assert!(!source.contains(['*', '?', '[']), "COPY {arguments}: wildcards are not handled by this test");
            let source = source.trim_start_matches("./").trim_end_matches('/');
            let source = if source == "." { "" } else { source };
            let on_disk = repo().join(source);
            let mut files = Vec::new();
            if on_disk.is_dir() {
                context_files(repo(), source, ignore, &mut files);
                for file in files {
                    let inside = if source.is_empty() { &file[..] } else { &file[source.len() + 1..] };
                    copied.push(copy_one(&file, &target_dir.join(inside), into));
                }
            } else {
                assert!(on_disk.exists(), "COPY {arguments}: {source} is not in the repository");
                assert!(!ignore.excluded(source), "COPY {arguments}: {source} is excluded by .dockerignore");
                let into_dir = destination.ends_with('/') || sources.len() > 1;
                let target =
                    if into_dir { target_dir.join(Path::new(source).file_name().unwrap()) } else { target_dir.clone() };
                copied.push(copy_one(source, &target, into));
            }
        }
    }
    copied.sort();
    copied
}

fn copy_one(source: &str, target: &Path, into: &Path) -> String {
    let from = repo().join(source);
    let to = into.join(target);
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    let metadata = fs::symlink_metadata(&from).unwrap();
    if metadata.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(&from).unwrap(), &to).unwrap();
    } else {
        fs::copy(&from, &to).unwrap();
    }
    target.to_str().unwrap().to_owned()
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs a command with a time limit; returns (success, stdout, stderr).
fn run(command: &mut Command, limit: Duration) -> (bool, String, String) {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{command:?} still running after {limit:?}: {}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.success(), out.join().unwrap(), err.join().unwrap())
}

fn builder() -> Stage {
    let dockerfile = fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut stages = stages(&dockerfile);
    let index = stages
        .iter()
        .position(|stage| stage.instructions.iter().any(|(k, r)| k == "RUN" && r.starts_with("cargo build")))
        .expect("a stage that runs cargo build");
    stages.swap_remove(index)
}

fn ignore() -> DockerIgnore {
    DockerIgnore::parse(&fs::read_to_string(repo().join(".dockerignore")).unwrap())
}

#[test]
fn dockerignore_reads_as_buildkit_does() {
    let ignore = DockerIgnore::parse("# comment\n/target/\n**/*.key\ndocs\n!docs/keep.md\nfuzz/*/\n");
    let excluded: Vec<&str> = [
        "target",
        "target/debug/portcullis",
        "src/target.rs",
        "tls.key",
        "a/b/tls.key",
        "docs/x.json",
        "docs/keep.md",
        "fuzz/target/x",
        "fuzz/Cargo.toml",
        "sub/target",
    ]
    .into_iter()
    .filter(|path| ignore.excluded(path))
    .collect();
    // A trailing `/` is cleaned away, so `fuzz/*/` excludes files too, as in BuildKit.
    assert_eq!(
        excluded,
        [
            "target",
            "target/debug/portcullis",
            "tls.key",
            "a/b/tls.key",
            "docs/x.json",
            "fuzz/target/x",
            "fuzz/Cargo.toml"
        ]
    );
    assert!(ignore.prunes("target"));
    assert!(!ignore.prunes("docs"), "docs/keep.md is brought back");
}

#[test]
fn dockerfile_copies_are_read_as_docker_reads_them() {
    let stages = stages(
        "# syntax=docker/dockerfile:1\nFROM rust AS builder\nWORKDIR /src\nCOPY Cargo.toml \\\n  Cargo.lock ./\n\
         COPY --chown=1:1 src ./src\nRUN cargo build\nFROM scratch\nCOPY --from=builder /src/x /x\n",
    );
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].name.as_deref(), Some("builder"));
    assert_eq!(stages[0].workdir, "/src");
    let copies: Vec<_> = stages[0]
        .instructions
        .iter()
        .filter(|(k, _)| k == "COPY")
        .map(|(_, arguments)| context_copy(arguments).unwrap())
        .collect();
    assert_eq!(
        copies,
        [
            (vec!["Cargo.toml".to_owned(), "Cargo.lock".to_owned()], "./".to_owned()),
            (vec!["src".to_owned()], "./src".to_owned())
        ]
    );
    assert_eq!(context_copy(&stages[1].instructions[0].1), None);
}

/// What git keeps out of the repository (build output, local certificates and
/// their keys) stays out of the image context too.
#[test]
fn dockerignore_covers_gitignore() {
    let ignore = ignore();
    let gitignore = fs::read_to_string(repo().join(".gitignore")).unwrap();
    let missing: Vec<&str> = gitignore
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .filter(|line| !ignore.excluded(line.trim_start_matches('/').trim_end_matches('/')))
        .collect();
    assert_eq!(missing, Vec::<&str>::new(), "in .gitignore but sent to the image build");
    for path in [".git", ".dev-certs/tls.key", "target/release/portcullis", "fuzz/target/x"] {
        assert!(ignore.excluded(path), "{path} is sent to the image build");
    }
}

/// Every COPY from the context, in every stage, names something the context
/// holds (Docker fails on a source that is missing or excluded).
#[test]
fn every_copy_source_is_in_the_context() {
    let dockerfile = fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let ignore = ignore();
    let mut sources = Vec::new();
    for stage in stages(&dockerfile) {
        for (_, arguments) in stage.instructions.iter().filter(|(keyword, _)| keyword == "COPY" || keyword == "ADD") {
            let Some((from, _)) = context_copy(arguments) else { continue };
            for source in from {
                let path = source.trim_start_matches("./").trim_end_matches('/').to_owned();
                assert!(
                    path == "." || repo().join(&path).exists(),
                    "COPY {arguments}: {path} is not in the repository"
                );
                assert!(
                    path == "." || !ignore.excluded(&path),
                    "COPY {arguments}: {path} is excluded by .dockerignore"
                );
                sources.push(path);
            }
        }
    }
    assert_eq!(sources, [".", "LICENSE", "policies"]);
}

/// The host's target triple, as `rustc -vV` reports it.
fn host_triple() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines().find_map(|line| line.strip_prefix("host: ")).expect("rustc -vV names the host").to_owned()
}

#[test]
fn the_build_stage_context_checks_with_cargo() {
    let stage = builder();
    assert_eq!(stage.name.as_deref(), Some("builder"));
    let run_line = &stage.instructions.iter().find(|(k, r)| k == "RUN" && r.starts_with("cargo build")).unwrap().1;
    let arguments: Vec<&str> = run_line.split_whitespace().collect();
    assert!(arguments.contains(&"--locked"), "{run_line}");
    let bin = arguments.iter().position(|a| *a == "--bin").map(|i| arguments[i + 1]);
    assert_eq!(bin, Some("portcullis"), "{run_line}");
    // The final stage copies the binary from where this stage builds it.
    assert_eq!(stage.workdir, "/src");

    let dir = TempDir(std::env::temp_dir().join(format!("portcullis-image-context-{}", std::process::id())));
    let _ = fs::remove_dir_all(&dir.0);
    let context = dir.0.join("src");
    fs::create_dir_all(&context).unwrap();
    let copied = assemble(&stage, &ignore(), &context);
    for needed in ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"] {
        assert!(copied.iter().any(|file| file == needed), "{needed} is not copied: {copied:?}");
    }
    for secret in [".dev-certs/tls.key", "certs/tls.key"] {
        assert!(!copied.iter().any(|file| file == secret), "{secret} is copied");
    }
    assert!(!copied.iter().any(|file| file.starts_with("target/") || file.starts_with(".git/")));

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Cargo drops an explicit target whose file is missing from `cargo metadata`
    // without an error, so the targets are compared with the repository's.
    let targets = |dir: &Path| -> Vec<(String, String, String)> {
        let (ok, stdout, stderr) = run(
            Command::new(&cargo)
                .args(["metadata", "--locked", "--offline", "--no-deps", "--format-version", "1"])
                .current_dir(dir),
            Duration::from_secs(120),
        );
        assert!(ok, "cargo metadata in {}: {stderr}", dir.display());
        let metadata: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let package = &metadata["packages"][0];
        let mut targets: Vec<_> = package["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|target| {
                let path = Path::new(target["src_path"].as_str().unwrap());
                (
                    target["kind"][0].as_str().unwrap().to_owned(),
                    target["name"].as_str().unwrap().to_owned(),
                    path.strip_prefix(dir).unwrap().to_str().unwrap().to_owned(),
                )
            })
            .collect();
        targets.sort();
        targets
    };
    let declared: Vec<_> = targets(repo()).into_iter().filter(|(kind, _, _)| kind != "test").collect();
    let in_context: Vec<_> = targets(&context).into_iter().filter(|(kind, _, _)| kind != "test").collect();
    assert_eq!(in_context, declared, "Cargo.toml's targets in the image context");

    // The whole locked graph resolves; packages for other platforms (Windows-only crates) are
    // left out, as `cargo build` in the image leaves them out: a fresh machine has not fetched them.
    let host = host_triple();
    let (ok, _, stderr) = run(
        Command::new(&cargo)
            .args(["metadata", "--locked", "--offline", "--format-version", "1", "--filter-platform", &host])
            .current_dir(&context),
        Duration::from_secs(120),
    );
    assert!(ok, "cargo metadata --locked: {stderr}");

    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().to_owned();
    let start = Instant::now();
    let (ok, _, stderr) = run(
        Command::new(&cargo)
            .args(["check", "--locked", "--offline", "--bin", "portcullis", "--message-format", "short"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(&context),
        Duration::from_secs(1200),
    );
    assert!(ok, "cargo check --locked --offline --bin portcullis in the image context:\n{stderr}");
    eprintln!("cargo check in the image context: {:.1?}", start.elapsed());
}
