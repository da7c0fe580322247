//! An agent home of its own and its daemon, driven through the real `pmfleet-agent` CLI: a
//! test runs verbs, reads `list --json`, the daemon's log and its persisted process list, and
//! the daemon is killed when the test ends, pass or fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::wait::wait_until;

/// One agent home, a scratch directory for the test's apps, and the daemon they start.
/// Dropping it runs `pmfleet-agent kill`.
pub struct AgentHome {
    pub home: tempfile::TempDir,
    /// A scratch directory for the test's apps and files (the CLI's working directory).
    pub work: tempfile::TempDir,
    bin: PathBuf,
}

impl AgentHome {
    /// A new home for the agent binary under test ([`crate::binaries::agent_under_test`]).
    pub fn new() -> AgentHome {
        AgentHome::with_binary(crate::binaries::agent_under_test())
    }

    /// A new home for the agent binary at `bin`.
    pub fn with_binary(bin: impl Into<PathBuf>) -> AgentHome {
        AgentHome {
            home: tempfile::tempdir().expect("agent home"),
            work: tempfile::tempdir().expect("agent work directory"),
            bin: bin.into(),
        }
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("PMFLEET_AGENT_HOME", self.home.path())
            .current_dir(self.work.path());
        c
    }

    /// Runs a verb; returns the output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("run pmfleet-agent")
    }

    /// Runs a verb that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`pmfleet-agent {}` failed: {}\n{}\n--- agent log ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.daemon_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a verb that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "`pmfleet-agent {}` should have failed",
            args.join(" ")
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Every instance in `list --json`.
    pub fn list(&self) -> Vec<Value> {
        match serde_json::from_str::<Value>(&self.ok(&["list", "--json"])) {
            Ok(Value::Array(list)) => list,
            other => panic!("list --json is not an array: {other:?}"),
        }
    }

    /// The instances of `app` in `list --json`.
    pub fn procs(&self, app: &str) -> Vec<Value> {
        self.list()
            .into_iter()
            .filter(|p| p["name"] == app)
            .collect()
    }

    pub fn pids(&self, app: &str) -> Vec<u32> {
        self.procs(app)
            .iter()
            .filter_map(|p| p["pid"].as_u64())
            .map(|p| p as u32)
            .collect()
    }

    /// Waits until every one of `n` instances of `app` is online.
    pub fn wait_online(&self, app: &str, n: usize) {
        wait_until(
            Duration::from_secs(20),
            &format!("{n} instance(s) of {app} online"),
            || {
                let p = self.procs(app);
                p.len() == n && p.iter().all(|p| p["status"] == "online")
            },
        );
    }

    /// The running daemon's pid, from `agent.pid`.
    pub fn daemon_pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.home.path().join("agent.pid")).expect("agent.pid");
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("agent.pid {text:?}: {e}"))
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("agent.log")).unwrap_or_default()
    }

    /// The process list the daemon persisted (`state.json`), `Null` while there is none.
    pub fn saved_state(&self) -> Value {
        std::fs::read(self.home.path().join("state.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null)
    }

    /// The pids `state.json` records for `app`.
    pub fn saved_pids(&self, app: &str) -> Vec<u32> {
        self.saved_app(app)
            .map(|a| {
                a["processes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["pid"].as_u64())
                    .map(|p| p as u32)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `app`'s entry in `state.json`.
    pub fn saved_app(&self, app: &str) -> Option<Value> {
        self.saved_state()["apps"]
            .as_array()?
            .iter()
            .find(|a| a["spec"]["name"] == app)
            .cloned()
    }

    /// Copies one of the agent's test fixtures ([`crate::assets::agent_fixture`]) into the
    /// work directory (a per-test path, so its processes can be told from every other test's).
    pub fn fixture(&self, name: &str) -> PathBuf {
        let to = self.work.path().join(name);
        std::fs::copy(crate::assets::agent_fixture(name), &to)
            .unwrap_or_else(|e| panic!("copy fixture {name}: {e}"));
        to
    }

    /// Writes `text` to `name` in the work directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let to = self.work.path().join(name);
        std::fs::write(&to, text).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
        to
    }

    /// The binary this home runs.
    pub fn binary(&self) -> &Path {
        &self.bin
    }
}

impl Default for AgentHome {
    fn default() -> Self {
        AgentHome::new()
    }
}

impl Drop for AgentHome {
    fn drop(&mut self) {
        let _ = self.run(&["kill"]);
    }
}
