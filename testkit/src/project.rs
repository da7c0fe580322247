//! A user's project directory with an ecosystem file, and the real `pmfleet` binary run in it
//! with its own `$HOME` (keys, known_hosts) and cache, as CI runs it (`CI=true`: plain output,
//! no prompt).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

use crate::binaries::pmfleet_bin;
use crate::git_repo::scratch_root;

/// What a finished `pmfleet` run printed.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    /// A finished command's exit code (-1 when a signal ended it) and its output, as text.
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// stdout and stderr together, for assertions and failure messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// The real `pmfleet` with `$PMFLEET_CA_DIR` at `ca_dir` (and no `PMFLEET_TLS_*` identity
/// from the test's own environment), in the test's working directory: the CA commands.
pub fn pmfleet_with_ca(ca_dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(pmfleet_bin())
        .args(args)
        .env("PMFLEET_CA_DIR", ca_dir)
        .env_remove("PMFLEET_TLS_CA")
        .env_remove("PMFLEET_TLS_CERT")
        .env_remove("PMFLEET_TLS_KEY")
        .output()
        .expect("run pmfleet");
    Run::from(out)
}

/// Fails the test, with everything `run` printed, unless it exited 0.
#[track_caller]
pub fn ok(run: &Run) {
    assert_eq!(run.code, 0, "pmfleet failed:\n{}", run.all());
}

/// The runs `pmfleet history ENV --json` lists whose action is `action` (`app reload web`),
/// oldest first: what the audit trail kept of them.
pub fn audited(project: &Project, env: &str, action: &str) -> Vec<serde_json::Value> {
    let run = project.pmfleet(&["history", env, "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "history --json is not one JSON document ({e}):\n{}",
            run.all()
        )
    });
    doc["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

pub struct Project {
    dir: TempDir,
    home: PathBuf,
}

impl Project {
    /// A project whose controller uses `home` as `$HOME`.
    pub fn new(home: &Path) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("project-")
            .tempdir_in(scratch_root())
            .expect("temp project dir");
        Project {
            dir,
            home: home.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `ecosystem.json`.
    pub fn write_ecosystem(&self, value: &serde_json::Value) {
        let text = serde_json::to_string_pretty(value).expect("json");
        std::fs::write(self.dir.path().join("ecosystem.json"), text).expect("write ecosystem");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(pmfleet_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", self.dir.path().join(".cache"))
            .env("CI", "true")
            .env("PMFLEET_ACTOR", "tester")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `pmfleet ARGS` to completion.
    pub fn pmfleet(&self, args: &[&str]) -> Run {
        self.pmfleet_with(args, &[])
    }

    /// [`Project::pmfleet`] with more environment variables.
    pub fn pmfleet_with(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Run {
        let started = std::time::Instant::now();
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        let out = cmd.output().expect("run pmfleet");
        eprintln!(
            "pmfleet {}: {} in {:.2}s",
            args.join(" "),
            out.status,
            started.elapsed().as_secs_f64()
        );
        Run::from(out)
    }

    /// Starts `pmfleet ARGS` with output piped, for tests that kill it.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pmfleet")
    }
}
