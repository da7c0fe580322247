//! `pmfleet status` across many agents: starts N real `pmfleet-agent` daemons on this machine
//! (127.0.0.2, 127.0.0.3, …, each with its own home and a certificate from a fresh fleet CA),
//! then times the real `pmfleet status` binary asking all of them over mutual TLS.
//!
//! `cargo run --release -p pmfleet-bench --bin status_fanout [-- AGENTS [RUNS]]` (default 50, 5).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pmfleet_bench::agents::LoopbackAgents;
use pmfleet_testkit::binaries::pmfleet_bin;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    if agents == 0 || agents > 250 {
        bail!("between 1 and 250 agents (one loopback address each)");
    }
    let fleet = LoopbackAgents::start(
        "status-bench-",
        agents,
        |i| format!("127.0.0.{}", i + 2),
        None,
    )?;
    let times = measure(&fleet.project(), &fleet.ca_dir, agents, runs)?;
    drop(fleet);
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
