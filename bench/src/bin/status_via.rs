//! What reaching the agents through SSH (`agent.via: "ssh"`) costs `pmfleet status` against
//! dialling their port directly (`via: "tls"`): N real sshd hosts on this machine, each with
//! a real agent installed by `setup`, then the real `pmfleet status --json`, alternating the
//! two paths, a few runs each.
//!
//! `cargo run --release -p pmfleet-bench --bin status_via [-- RUNS [SIZES]]`, e.g.
//! `-- 5 50,200` (as root: each host is an sshd in its own mount namespace).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pmfleet_bench::{median, runs_and_sizes};
use pmfleet_testkit::free_port;
use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::Project;
use pmfleet_testkit::sshd::{Fleet, missing_sshd};
use serde_json::{Value, json};

const SIZES: [usize; 2] = [50, 200];
const VIAS: [&str; 2] = ["tls", "ssh"];

fn main() -> anyhow::Result<()> {
    if let Some(why) = missing_sshd() {
        bail!("cannot start sshd hosts: {why}");
    }
    let (runs, sizes) = runs_and_sizes(5, &SIZES);
    let mut rows = Vec::new();
    for &size in &sizes {
        let times = measure(size, runs).with_context(|| format!("{size} hosts"))?;
        rows.push((size, times));
    }
    println!(
        "\npmfleet status --json, {runs} runs per path, real sshd hosts and agents on loopback"
    );
    println!(
        "{:>6}  {:<4}  {:>9}  {:>9}  {:>9}  {:>8}",
        "hosts", "via", "median", "min", "max", "vs tls"
    );
    for (size, times) in &rows {
        let direct = median(&times[0]).as_secs_f64();
        for (via, runs) in VIAS.iter().zip(times) {
            let mut sorted = runs.clone();
            sorted.sort();
            let m = median(runs).as_secs_f64();
            println!(
                "{:>6}  {:<4}  {:>8.3}s  {:>8.3}s  {:>8.3}s  {:>7.1}x",
                size,
                via,
                m,
                sorted.first().map_or(0.0, Duration::as_secs_f64),
                sorted.last().map_or(0.0, Duration::as_secs_f64),
                m / direct
            );
        }
    }
    println!(
        "\ntls: the agents' port dialled directly; ssh: an SSH connection per host, then a forwarded channel"
    );
    Ok(())
}

/// Times of each path in [`VIAS`] order.
fn measure(size: usize, runs: usize) -> anyhow::Result<Vec<Vec<Duration>>> {
    let started = Instant::now();
    let fleet = Fleet::start(size);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    let hosts = fleet.hosts_json();
    let port = free_port();
    // The agent listens on the host's own (loopback) address either way, so both paths
    // reach the same agents.
    let file = |via: &str| {
        json!({"deploy": {"production": {
            "host": hosts, "ref": "main", "repo": repo.url(), "path": "/srv/app",
            "agent": {"port": port, "home": "/srv/agent", "via": via},
        }}})
        .to_string()
    };
    for via in VIAS {
        std::fs::write(project.path().join(format!("{via}.json")), file(via))?;
    }
    project.write_ecosystem(&serde_json::from_str::<Value>(&file("ssh"))?);
    for args in [&["ca", "init"][..], &["deploy", "production", "setup"]] {
        let run = project.pmfleet(args);
        if run.code != 0 {
            bail!("{args:?} failed:\n{}", run.all());
        }
    }
    eprintln!(
        "{size} hosts set up with agents in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let mut times = vec![Vec::new(); VIAS.len()];
    for run in 0..runs {
        for (i, via) in VIAS.iter().enumerate() {
            let file = format!("{via}.json");
            let started = Instant::now();
            let out = project.pmfleet(&["status", "--file", &file, "--json"]);
            let elapsed = started.elapsed();
            let parsed: Value = serde_json::from_str(&out.stdout)
                .with_context(|| format!("status output: {}", out.all()))?;
            let answered = parsed
                .as_array()
                .map_or(0, |a| a.iter().filter(|h| h["agent"].is_object()).count());
            if answered != size {
                bail!(
                    "via {via}: only {answered} of {size} agents answered:\n{}",
                    out.all()
                );
            }
            eprintln!(
                "{size} hosts, via {via}, run {}: {:.3}s",
                run + 1,
                elapsed.as_secs_f64()
            );
            times[i].push(elapsed);
        }
    }
    Ok(times)
}
