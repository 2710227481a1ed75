//! The Makefile a newcomer runs first: `make help` lists every target from its
//! `## target: text` comment, a bare `make` prints that help (it does not start
//! the blocking server), and `make promtool` gets promtool without installing
//! Debian's prometheus package (which would start a Prometheus server on port
//! 9090, the admin port). apt-get and dpkg-deb are stubs here, so nothing is
//! downloaded or installed.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("portcullis-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `make ARGS` in the repository with the Makefile's own defaults: the
/// variables it reads from the environment, and a parent make's, removed.
fn make(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new("make");
    command.arg("--no-print-directory").args(args).current_dir(repo());
    for name in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CARGO", "CERTS", "LISTEN", "ADMIN_LISTEN", "PROMTOOL", "RULES"] {
        command.env_remove(name);
    }
    command.env_remove("FUZZ_SECONDS");
    command.envs(env.iter().copied());
    // Its own process group, so that a timeout ends whatever it started.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", child.id())]).status();
            child.wait().unwrap();
            panic!("make {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    stderr.read_to_string(&mut err).unwrap();
    (status.success(), out.join().unwrap(), err)
}

/// The `## target: text` comments of the Makefile (with their `## ` continuation
/// lines), as `make help` shows them.
fn documented() -> Vec<(String, Vec<String>)> {
    let makefile = fs::read_to_string(repo().join("Makefile")).unwrap();
    let mut targets: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_doc = false;
    for line in makefile.lines() {
        let Some(doc) = line.strip_prefix("## ") else {
            in_doc = false;
            continue;
        };
        match doc.split_once(": ") {
            Some((name, text))
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) =>
            {
                targets.push((name.to_owned(), vec![text.to_owned()]));
                in_doc = true;
            }
            _ if in_doc => targets.last_mut().unwrap().1.push(doc.to_owned()),
            _ => {}
        }
    }
    targets
}

#[test]
fn make_help_lists_every_target_and_the_variables() {
    let (ok, stdout, stderr) = make(&["help", "PROMTOOL=/opt/prometheus/promtool"], &[]);
    assert!(ok, "make help: {stderr}");
    let documented = documented();
    let mut expected = vec!["Usage: make [target] [VARIABLE=value ...]".to_owned(), String::new()];
    for (name, text) in &documented {
        expected.push(format!("  {name:<14} {}", text[0]));
        expected.extend(text[1..].iter().map(|more| format!("  {:<14} {more}", "")));
    }
    expected.extend([
        String::new(),
        "Variables (current values):".to_owned(),
        "  CARGO=cargo CERTS=.dev-certs LISTEN=127.0.0.1:8443 ADMIN_LISTEN=127.0.0.1:9090".to_owned(),
        "  PROMTOOL=/opt/prometheus/promtool RULES=manifests/monitoring/rules.yaml FUZZ_SECONDS=60".to_owned(),
    ]);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected);
    assert!(
        stdout.contains(
            "\n  run            serve the bundled policies on $(LISTEN) (admin on $(ADMIN_LISTEN)) with development certificates\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n  test           everything CI runs (gets promtool and chromium first when missing)\n"),
        "{stdout}"
    );

    // Every phony target is documented, and every documented one is a target.
    let makefile = fs::read_to_string(repo().join("Makefile")).unwrap();
    let mut phony: Vec<&str> =
        makefile.lines().filter_map(|line| line.strip_prefix(".PHONY:")).flat_map(str::split_whitespace).collect();
    phony.sort();
    phony.dedup();
    let mut names: Vec<&str> = documented.iter().map(|(name, _)| name.as_str()).collect();
    names.sort();
    assert_eq!(names, phony, "documented (## name: text) and .PHONY targets");
    for name in names {
        assert!(makefile.lines().any(|line| line.starts_with(&format!("{name}:"))), "no rule for {name}");
    }
}

#[test]
fn a_bare_make_prints_the_help() {
    // First without running anything: the default goal's commands are help's.
    let (dry_help, dry_bare) = (make(&["-n", "help"], &[]), make(&["-n"], &[]));
    assert!(dry_bare.0, "make -n: {}", dry_bare.2);
    assert_eq!(dry_bare.1, dry_help.1, "a bare make runs another target than help");
    let help = make(&["help"], &[]);
    let bare = make(&[], &[]);
    assert!(bare.0, "make: {}", bare.2);
    assert_eq!(bare.1, help.1);
    assert!(bare.1.starts_with("Usage: make [target]"), "{}", bare.1);
}

/// A PATH with stub apt-get and dpkg-deb (logging their arguments to
/// `log`) in front; the stub package holds a promtool that prints a version.
struct Stubs {
    dir: TempDir,
}

impl Stubs {
    fn new(name: &str, package_lists: bool) -> Stubs {
        let dir = TempDir::new(name);
        let bin = dir.0.join("bin");
        let root = dir.0.join("root/usr/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&root).unwrap();
        let script = |path: PathBuf, text: &str| {
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(root.join("promtool"), "#!/bin/sh\necho \"promtool, version 2.42.0+ds (stub)\"\n");
        // What `dpkg-deb --fsys-tarfile` prints: the package's files as a tar stream.
        let tar = Command::new("tar")
            .args(["-cf", "data.tar", "-C", "root", "./usr/bin/promtool"])
            .current_dir(&dir.0)
            .status()
            .unwrap();
        assert!(tar.success());
        if package_lists {
            fs::write(dir.0.join("lists"), "").unwrap();
        }
        let stubs = dir.0.display();
        script(
            bin.join("apt-get"),
            &format!(
                "#!/bin/sh\necho \"apt-get $*\" >> {stubs}/log\ncase \"$1\" in\n\
                 update) touch {stubs}/lists ;;\n\
                 download) [ -e {stubs}/lists ] || {{ echo 'E: Unable to locate package prometheus' >&2; exit 100; }}\n\
                 \techo deb > prometheus_2.42.0+ds-5+deb12u1_amd64.deb ;;\n\
                 *) exit 100 ;;\nesac\n"
            ),
        );
        script(
            bin.join("dpkg-deb"),
            &format!(
                "#!/bin/sh\necho \"dpkg-deb $*\" >> {stubs}/log\n\
                 [ \"$1\" = --fsys-tarfile ] && [ -e \"$2\" ] && exec cat {stubs}/data.tar\nexit 2\n"
            ),
        );
        Stubs { dir }
    }

    fn path(&self) -> String {
        format!("{}:{}", self.dir.0.join("bin").display(), std::env::var("PATH").unwrap())
    }

    fn log(&self) -> Vec<String> {
        fs::read_to_string(self.dir.0.join("log")).unwrap_or_default().lines().map(str::to_owned).collect()
    }
}

const DOWNLOAD: &str = "apt-get download prometheus";
const EXTRACT: &str = "dpkg-deb --fsys-tarfile prometheus_2.42.0+ds-5+deb12u1_amd64.deb";

#[test]
fn make_promtool_takes_promtool_out_of_the_package_without_installing_it() {
    let stubs = Stubs::new("promtool-lists", true);
    let dest = stubs.dir.0.join("tools/promtool");
    let promtool = format!("PROMTOOL={}", dest.display());
    let (ok, stdout, stderr) = make(&["promtool", &promtool], &[("PATH", &stubs.path())]);
    assert!(ok, "make promtool: {stderr}");
    assert_eq!(stubs.log(), [DOWNLOAD, EXTRACT]);
    assert_eq!(
        stdout,
        "promtool not found: taking it out of Debian's prometheus package (not installing the package)\n\
         promtool, version 2.42.0+ds (stub)\n"
    );
    assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o755);

    // Once there, it is used as it is.
    let (ok, stdout, _) = make(&["promtool", &promtool], &[("PATH", &stubs.path())]);
    assert!(ok);
    assert_eq!((stubs.log().len(), stdout.as_str()), (2, ""));
}

#[test]
fn make_promtool_without_package_lists_updates_them_only_as_root() {
    let stubs = Stubs::new("promtool-no-lists", false);
    let dest = stubs.dir.0.join("tools/promtool");
    let (ok, _, stderr) = make(&["promtool", &format!("PROMTOOL={}", dest.display())], &[("PATH", &stubs.path())]);
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8(uid.stdout).unwrap().trim() == "0" {
        assert!(ok, "make promtool as root: {stderr}");
        assert_eq!(stubs.log(), [DOWNLOAD, "apt-get update", DOWNLOAD, EXTRACT]);
        assert!(dest.exists());
    } else {
        assert!(!ok);
        assert_eq!(stubs.log(), [DOWNLOAD]);
        assert!(stderr.contains("apt-get download prometheus failed; as root, apt-get update first\n"), "{stderr}");
        assert!(stderr.contains("make test PROMTOOL=/path/to/promtool"), "{stderr}");
        assert!(!dest.exists());
    }
}

#[test]
fn a_promtool_named_but_not_found_is_explained_not_fetched() {
    let stubs = Stubs::new("promtool-named", true);
    let (ok, stdout, stderr) =
        make(&["promtool", "PROMTOOL=promtool-not-installed-anywhere"], &[("PATH", &stubs.path())]);
    assert!(!ok);
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with("promtool not found: 'promtool-not-installed-anywhere' is not on the PATH\n"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("Do not install the prometheus package for it: that starts a Prometheus server on port 9090.\n"),
        "{stderr}"
    );
    assert_eq!(stubs.log(), Vec::<String>::new());
}

/// Nothing in the Makefile or CI installs the prometheus package (its
/// postinst enables and starts prometheus.service on port 9090).
#[test]
fn nothing_installs_the_prometheus_package() {
    for file in ["Makefile", ".ci/run", ".ci/get-promtool"] {
        let text = fs::read_to_string(repo().join(file)).unwrap();
        let installs: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .filter(|line| {
                line.contains("prometheus")
                    && ["apt-get install", "apt install", "dpkg -i", "dpkg --install"].iter().any(|c| line.contains(c))
            })
            .collect();
        assert_eq!(installs, Vec::<&str>::new(), "{file}");
    }
    let makefile = fs::read_to_string(repo().join("Makefile")).unwrap();
    assert!(makefile.contains("\t@command -v \"$(PROMTOOL)\" >/dev/null 2>&1 || .ci/get-promtool \"$(PROMTOOL)\"\n"));
}
