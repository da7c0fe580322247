//! Deploy time against fleet size: `pmfleet deploy` of a new commit to 1, 5 and 20 real
//! OpenSSH hosts on this machine, a few runs each; prints the median wall time of each size
//! and how 20 hosts compare with 1.
//!
//! `cargo run --release -p pmfleet-bench --bin deploy_fanout [-- RUNS [SIZES]]`, e.g.
//! `-- 3 1,5,20` (as root: each host is an sshd in its own mount namespace).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pmfleet_bench::{median, runs_and_sizes};
use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::Project;
use pmfleet_testkit::sshd::{Fleet, missing_sshd};
use serde_json::json;

const SIZES: [usize; 3] = [1, 5, 20];

/// One row: hosts, fetch mode, wall time and machine-wide CPU seconds of each run.
struct Row {
    size: usize,
    fetch: &'static str,
    times: Vec<Duration>,
    cpu: Vec<f64>,
    /// CPU seconds of the `pmfleet` process itself.
    controller_cpu: Vec<f64>,
}

fn main() -> anyhow::Result<()> {
    if let Some(why) = missing_sshd() {
        bail!("cannot start sshd hosts: {why}");
    }
    let (runs, sizes) = runs_and_sizes(3, &SIZES);
    let mut rows = Vec::new();
    for &size in &sizes {
        for fetch in ["host", "push"] {
            let (times, cpu, controller_cpu) = measure(size, fetch, runs)
                .with_context(|| format!("{size} hosts, fetch {fetch}"))?;
            rows.push(Row {
                size,
                fetch,
                times,
                cpu,
                controller_cpu,
            });
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\npmfleet deploy (update to a new commit), {runs} runs per row, real sshd hosts on loopback, {cores} CPU cores"
    );
    println!(
        "{:>6}  {:<6}  {:>9}  {:>9}  {:>9}  {:>10}  wall per run",
        "hosts", "fetch", "median", "CPU/run", "pmfleet", "vs 1 host"
    );
    for row in &rows {
        let wall = median(&row.times).as_secs_f64();
        let base = rows
            .iter()
            .find(|r| r.size == 1 && r.fetch == row.fetch)
            .map_or(wall, |r| median(&r.times).as_secs_f64());
        let cpu = mean(&row.cpu);
        let controller = mean(&row.controller_cpu);
        let all: Vec<String> = row
            .times
            .iter()
            .map(|t| format!("{:.2}", t.as_secs_f64()))
            .collect();
        println!(
            "{:>6}  {:<6}  {:>8.2}s  {:>8.2}s  {:>8.2}s  {:>9.2}x  {}",
            row.size,
            row.fetch,
            wall,
            cpu,
            controller,
            wall / base,
            all.join(" ")
        );
    }
    println!(
        "\nCPU/run: CPU time the whole machine spent during one deploy (controller, every sshd, hooks);"
    );
    println!("pmfleet: CPU time of the controller process alone.");
    println!("goal: 20 hosts within 1.5x the time of 1 host");
    Ok(())
}

type Measured = (Vec<Duration>, Vec<f64>, Vec<f64>);

fn measure(size: usize, fetch: &str, runs: usize) -> anyhow::Result<Measured> {
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
        "agent": false,
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
    let mut cpu = Vec::new();
    let mut controller_cpu = Vec::new();
    for run in 0..runs {
        repo.commit_file("VERSION", &format!("{}\n", run + 2), "bench");
        let busy = busy_seconds();
        let children = children_cpu_seconds();
        let started = Instant::now();
        let result = project.pmfleet(&["deploy", "production"]);
        let elapsed = started.elapsed();
        cpu.push(busy_seconds() - busy);
        controller_cpu.push(children_cpu_seconds() - children);
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
    Ok((times, cpu, controller_cpu))
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// User + system CPU seconds of this process's waited-for children.
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq), from the
/// first line of /proc/stat (in USER_HZ ticks, 100 per second on Linux).
fn busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    [0, 1, 2, 5, 6]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum::<f64>()
        / 100.0
}
