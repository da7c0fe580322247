//! Deploy time against fleet size: `pmfleet deploy` of a new commit to 1, 5 and 20 real
//! OpenSSH hosts on this machine, a few runs each; prints the median wall time of each size
//! and how 20 hosts compare with 1.
//!
//! `cargo run --release -p pmfleet-bench --bin deploy_fanout [-- RUNS]` (as root: each host is
//! an sshd in its own mount namespace).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pmfleet_tests::git_repo::GitRepo;
use pmfleet_tests::project::Project;
use pmfleet_tests::sshd::{Fleet, sshd_available};
use serde_json::json;

const SIZES: [usize; 3] = [1, 5, 20];

fn main() -> anyhow::Result<()> {
    if !sshd_available() {
        bail!("sshd is not installed: apt-get install openssh-server");
    }
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let mut rows = Vec::new();
    for &size in &SIZES {
        for fetch in ["host", "push"] {
            let times = measure(size, fetch, runs)
                .with_context(|| format!("{size} hosts, fetch {fetch}"))?;
            rows.push((size, fetch, median(times.clone()), times));
        }
    }
    println!(
        "\npmfleet deploy (update to a new commit), {runs} runs per row, real sshd hosts on loopback"
    );
    println!(
        "{:>6}  {:<6}  {:>10}  {:>12}  runs",
        "hosts", "fetch", "median", "vs 1 host"
    );
    for (size, fetch, median, times) in &rows {
        let base = rows
            .iter()
            .find(|(s, f, _, _)| *s == 1 && f == fetch)
            .map(|(_, _, m, _)| *m)
            .unwrap_or(*median);
        let all: Vec<String> = times
            .iter()
            .map(|t| format!("{:.2}", t.as_secs_f64()))
            .collect();
        println!(
            "{size:>6}  {fetch:<6}  {:>9.2}s  {:>11.2}x  {}",
            median.as_secs_f64(),
            median.as_secs_f64() / base.as_secs_f64(),
            all.join(" ")
        );
    }
    println!("\ngoal: 20 hosts within 1.5x the time of 1 host");
    Ok(())
}

fn measure(size: usize, fetch: &str, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let fleet = Fleet::start(size);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    let hosts: Vec<_> = fleet
        .hosts
        .iter()
        .map(|h| json!({"host": h.address(), "port": h.port(), "user": "root"}))
        .collect();
    project.write_ecosystem(&json!({"deploy": {"production": {
        "host": hosts, "ref": "main", "repo": repo.url(), "path": "/srv/app",
        "fetch": fetch, "post-deploy": "./app.sh > built.txt", "keep_releases": 3,
    }}}));
    let setup = project.pmfleet(&["deploy", "production", "setup"]);
    if setup.code != 0 {
        bail!("setup failed:\n{}", setup.all());
    }
    let warmup = project.pmfleet(&["deploy", "production"]);
    if warmup.code != 0 {
        bail!("deploy failed:\n{}", warmup.all());
    }
    let mut times = Vec::new();
    for run in 0..runs {
        repo.commit_file("VERSION", &format!("{}\n", run + 2), "bench");
        let started = Instant::now();
        let result = project.pmfleet(&["deploy", "production"]);
        let elapsed = started.elapsed();
        if result.code != 0 {
            bail!("deploy failed:\n{}", result.all());
        }
        eprintln!(
            "{size} hosts, fetch {fetch}, run {}: {:.2}s",
            run + 1,
            elapsed.as_secs_f64()
        );
        times.push(elapsed);
    }
    Ok(times)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}
