//! A user's project directory with an ecosystem file, and the real `pmfleet` binary run in it
//! with its own `$HOME` (keys, known_hosts) and cache.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

use crate::git_repo::scratch_root;

/// The `pmfleet` binary: `$PMFLEET_BIN`, else next to the test executable, built on demand.
pub fn pmfleet_bin() -> PathBuf {
    binary("pmfleet", "PMFLEET_BIN")
}

/// The `pmfleet-agent` binary, found like [`pmfleet_bin`].
pub fn agent_bin() -> PathBuf {
    binary("pmfleet-agent", "PMFLEET_AGENT_BIN")
}

fn binary(name: &str, var: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "-q",
            "-p",
            "pmfleet",
            "-p",
            "pmfleet-agent",
            "--bins",
        ]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
    });
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// What a finished `pmfleet` run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together, for assertions and failure messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
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
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
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
