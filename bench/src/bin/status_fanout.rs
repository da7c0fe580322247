//! `pmfleet status` across many agents: starts N real `pmfleet-agent` daemons on this machine
//! (127.0.0.2, 127.0.0.3, …, each with its own home and a certificate from a fresh fleet CA),
//! then times the real `pmfleet status` binary asking all of them over mutual TLS.
//!
//! `cargo run --release -p pmfleet-bench --bin status_fanout [-- AGENTS [RUNS]]` (default 50, 5).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pmfleet::pki::{self, Ca};
use pmfleet_testkit::binaries::{agent_bin, pmfleet_bin};
use pmfleet_testkit::free_port;
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    if agents == 0 || agents > 250 {
        bail!("between 1 and 250 agents (one loopback address each)");
    }
    let work = tempfile::Builder::new().prefix("status-bench-").tempdir()?;
    let ca_dir = work.path().join("ca");
    let ca = Ca::init(&ca_dir).context("fleet CA")?;
    let port = free_port();
    let agent = agent_bin();
    let mut homes = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..agents {
        let address = format!("127.0.0.{}", i + 2);
        let home = work.path().join(format!("agent-{i}"));
        let tls = home.join("tls");
        std::fs::create_dir_all(&tls)?;
        let (cert, key) = pki::issue_agent_cert(&ca, std::slice::from_ref(&address), 30)?;
        std::fs::write(tls.join("agent.pem"), cert)?;
        write_private(&tls.join("agent.key"), &key)?;
        std::fs::write(tls.join("ca.pem"), ca.cert_pem())?;
        std::fs::write(tls.join("listen"), format!("{address}:{port}\n"))?;
        let status = Command::new(&agent)
            .arg("ping")
            .env("PMFLEET_AGENT_HOME", &home)
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("agent {i} did not start (see {}/agent.log)", home.display());
        }
        hosts.push(address);
        homes.push(home);
    }
    let project = work.path().join("project");
    std::fs::create_dir_all(&project)?;
    std::fs::write(
        project.join("ecosystem.json"),
        json!({"deploy": {"fleet": {
            "host": hosts, "ref": "main", "repo": "/nonexistent", "path": "/srv/app",
            "agent": {"port": port},
        }}})
        .to_string(),
    )?;
    let result = measure(&project, &ca_dir, agents, runs);
    for home in &homes {
        let _ = Command::new(&agent)
            .arg("kill")
            .env("PMFLEET_AGENT_HOME", home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let times = result?;
    let mut sorted = times.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    println!("\npmfleet status across {agents} agents (mutual TLS on loopback), {runs} runs");
    println!(
        "median {:.3}s, min {:.3}s, max {:.3}s; runs: {}",
        median.as_secs_f64(),
        sorted[0].as_secs_f64(),
        sorted[sorted.len() - 1].as_secs_f64(),
        times
            .iter()
            .map(|t| format!("{:.3}", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("goal: under 1 second");
    Ok(())
}

fn measure(
    project: &Path,
    ca_dir: &Path,
    agents: usize,
    runs: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let out = Command::new(pmfleet_bin())
            .args(["status", "--json"])
            .current_dir(project)
            .env("PMFLEET_CA_DIR", ca_dir)
            .output()?;
        let elapsed = started.elapsed();
        let parsed: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("status output: {}", String::from_utf8_lossy(&out.stderr)))?;
        let reachable = parsed
            .as_array()
            .map(|a| a.iter().filter(|h| h["agent"].is_object()).count())
            .unwrap_or(0);
        if reachable != agents {
            bail!(
                "only {reachable} of {agents} agents answered:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        times.push(elapsed);
    }
    Ok(times)
}

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
