//! Real `pmfleet-agent` daemons on loopback addresses, for the benchmarks that ask many
//! agents at once: each with its own home and a certificate from a fresh fleet CA, all on one
//! mutual-TLS port, and a project whose environment `fleet` lists them. Dropping it ends them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use pmfleet::pki::{self, Ca};
use pmfleet_testkit::binaries::agent_bin;
use pmfleet_testkit::free_port;
use serde_json::json;

pub struct LoopbackAgents {
    pub work: tempfile::TempDir,
    pub ca_dir: PathBuf,
    pub homes: Vec<PathBuf>,
}

impl LoopbackAgents {
    /// `n` agents, agent `i` listening on `address(i)`; with `metrics`, the contents of each
    /// home's `metrics` file (`tls`: served on the mutual-TLS port).
    pub fn start(
        prefix: &str,
        n: usize,
        address: impl Fn(usize) -> String,
        metrics: Option<&str>,
    ) -> anyhow::Result<LoopbackAgents> {
        let work = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let ca_dir = work.path().join("ca");
        let ca = Ca::init(&ca_dir).context("fleet CA")?;
        let port = free_port();
        let mut fleet = LoopbackAgents {
            work,
            ca_dir,
            homes: Vec::new(),
        };
        let mut hosts = Vec::new();
        for i in 0..n {
            let address = address(i);
            let home = fleet.work.path().join(format!("agent-{i}"));
            let tls = home.join("tls");
            std::fs::create_dir_all(&tls)?;
            let (cert, key) = pki::issue_agent_cert(&ca, std::slice::from_ref(&address), 30)?;
            std::fs::write(tls.join("agent.pem"), cert)?;
            write_private(&tls.join("agent.key"), &key)?;
            std::fs::write(tls.join("ca.pem"), ca.cert_pem())?;
            std::fs::write(tls.join("listen"), format!("{address}:{port}\n"))?;
            if let Some(metrics) = metrics {
                std::fs::write(home.join("metrics"), format!("{metrics}\n"))?;
            }
            let status = Command::new(agent_bin())
                .arg("ping")
                .env("PMFLEET_AGENT_HOME", &home)
                .stdout(Stdio::null())
                .status()?;
            // Pushed first: a failed start is ended with the others.
            fleet.homes.push(home.clone());
            if !status.success() {
                bail!("agent {i} did not start (see {}/agent.log)", home.display());
            }
            hosts.push(address);
        }
        let project = fleet.project();
        std::fs::create_dir_all(&project)?;
        std::fs::write(
            project.join("ecosystem.json"),
            json!({"deploy": {"fleet": {
                "host": hosts, "ref": "main", "repo": "/nonexistent", "path": "/srv/app",
                "agent": {"port": port},
            }}})
            .to_string(),
        )?;
        Ok(fleet)
    }

    /// The project directory, whose `ecosystem.json` names the agents.
    pub fn project(&self) -> PathBuf {
        self.work.path().join("project")
    }
}

impl Drop for LoopbackAgents {
    fn drop(&mut self) {
        for home in &self.homes {
            let _ = Command::new(agent_bin())
                .arg("kill")
                .env("PMFLEET_AGENT_HOME", home)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Writes `text` to a new file only its owner may read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

/// VmRSS of `pid` (not its children), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
