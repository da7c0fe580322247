//! What `pmfleet` prints for people and programs, run as a user runs it: `status` outside the
//! project directory (the last ecosystem file used, or `--file`), a closed pipe ending it
//! quietly, errors as JSON with `--json`, and completions and man pages that name the verbs.
//! The hosts are agents that do not answer (nothing listens on their port), so `status` has
//! real rows to print without any host to set up.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A user's machine: a fleet CA, a cache directory, a project with an ecosystem file whose
/// two hosts' agents do not answer.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let m = Machine {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(m.path("project")).unwrap();
        std::fs::create_dir_all(m.path("elsewhere")).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        std::fs::write(
            m.path("project/ecosystem.json"),
            format!(
                r#"{{"apps": [{{"name": "api", "script": "server.js"}}],
                    "deploy": {{"production": {{"host": ["127.0.0.1", "127.0.0.2"], "repo": "r",
                        "path": "/srv/app", "ref": "main", "agent": {{"port": {port}}}}}}}}}"#
            ),
        )
        .unwrap();
        let out = m.pmfleet(&["ca", "init"], "project");
        assert!(out.status.success(), "{out:?}");
        m
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self, args: &[&str], cwd: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pmfleet"));
        c.args(args)
            .current_dir(self.path(cwd))
            .env("PMFLEET_CA_DIR", self.path("ca"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("HOME", self.dir.path())
            .env_remove("PMFLEET_TLS_CA")
            .env_remove("PMFLEET_TLS_CERT")
            .env_remove("PMFLEET_TLS_KEY")
            .env_remove("NO_COLOR");
        c
    }

    fn pmfleet(&self, args: &[&str], cwd: &str) -> Output {
        self.command(args, cwd).output().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn status_works_outside_the_project_with_the_last_file_used() {
    let m = Machine::new();
    // Nowhere to look yet.
    let out = m.pmfleet(&["status", "--timeout", "2s"], "elsewhere");
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let out = m.pmfleet(&["status", "--timeout", "2s"], "project");
    assert_eq!(out.status.code(), Some(3), "unreachable hosts: {out:?}");
    let table = text(&out.stdout);
    assert!(
        table.contains("127.0.0.1") && table.contains("unreachable"),
        "{table}"
    );
    assert!(!table.contains('\x1b'), "no colour in a pipe: {table:?}");
    for line in table.lines() {
        assert!(line.chars().count() <= 100, "{line}");
    }

    let out = m.pmfleet(&["status", "--timeout", "2s"], "elsewhere");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let said = text(&out.stderr);
    assert!(said.contains("the last ecosystem file used"), "{said}");
    assert!(said.contains("project/ecosystem.json"), "{said}");
    assert!(text(&out.stdout).contains("127.0.0.2"));

    // --file names one explicitly, from anywhere.
    let file = m.path("project/ecosystem.json");
    let out = m.pmfleet(
        &[
            "status",
            "--file",
            file.to_str().unwrap(),
            "--timeout",
            "2s",
            "--wide",
        ],
        "elsewhere",
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(text(&out.stdout).contains("RESTARTS"), "--wide: {out:?}");
    assert!(!text(&out.stderr).contains("last ecosystem file"));
}

#[test]
fn status_piped_into_head_ends_quietly() {
    let m = Machine::new();
    for args in [&["status", "--timeout", "2s"][..], &["completions", "bash"]] {
        let mut child = m
            .command(args, "project")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `head -0`: the reader is gone before the first line.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            out.status.signal() == Some(libc::SIGPIPE) || out.status.code().is_some(),
            "{args:?}: {:?}",
            out.status
        );
    }
}

#[test]
fn with_json_errors_are_json_too() {
    let m = Machine::new();
    let cases: [(&[&str], &str, i32); 5] = [
        (&["events", "nosuchenv", "--json"], "bad_config", 2),
        (
            &["status", "--json", "--file", "missing.json"],
            "bad_config",
            2,
        ),
        (&["status", "--json", "--bogus"], "usage", 2),
        (&["deploy", "nosuchenv", "--json"], "bad_config", 2),
        (
            &["deploy", "production", "frobnicate", "--json"],
            "usage",
            2,
        ),
    ];
    for (args, kind, code) in cases {
        let out = m.pmfleet(args, "project");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        let line = text(&out.stdout);
        let v: Value =
            serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{args:?}: {line:?}: {e}"));
        assert_eq!(v["event"], "error", "{v}");
        assert_eq!(v["kind"], kind, "{args:?}: {v}");
    }
    let out = m
        .command(&["ca", "list", "--json"], "project")
        .env("PMFLEET_CA_DIR", m.path("no-ca-here"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["event"], "error", "{v}");
}

#[test]
fn completions_and_man_pages_name_the_verbs() {
    let m = Machine::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = m.pmfleet(&["completions", shell], "project");
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = text(&out.stdout);
        for verb in ["deploy", "status", "logs", "ca"] {
            assert!(script.contains(verb), "{shell} completions lack {verb}");
        }
    }
    let dir = m.path("man");
    let out = m.pmfleet(&["man", "--dir", dir.to_str().unwrap()], "project");
    assert!(out.status.success(), "{out:?}");
    for page in [
        "pmfleet.1",
        "pmfleet-deploy.1",
        "pmfleet-status.1",
        "pmfleet-ca-init.1",
    ] {
        assert!(Path::new(&dir.join(page)).is_file(), "{page}");
    }
    let status = std::fs::read_to_string(dir.join("pmfleet-status.1")).unwrap();
    assert!(status.contains("wide"), "{status}");
}
