//! How fast a bad release is undone across the fleet: N real sshd hosts on this machine, each
//! with a real agent running a Node app (2 cluster instances) under keep-alive and
//! new-connection HTTP load; a release passes its health gate, then its health check starts
//! failing inside the watch window, and the fleet-wide auto-revert sends every host back.
//! Prints, for each size, the time from the first failing probe (the app writes down when it
//! first answered `/health` with 500) to every host serving the previous release again, and
//! the requests that failed meanwhile.
//!
//! `cargo run --release -p pmfleet-bench --bin revert_time [-- RUNS [SIZES]]`, e.g.
//! `-- 1 3,20` (as root: each host is an sshd in its own mount namespace).

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use pmfleet_bench::{median, runs_and_sizes};
use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::Project;
use pmfleet_testkit::sshd::{Fleet, SshHost, missing_sshd};
use pmfleet_testkit::{Load, free_port, get_from};
use serde_json::json;

const SIZES: [usize; 2] = [3, 20];

/// A Node app answering `<pid> version <v>` and `/health`; a `late-sick` version answers its
/// health check with 200 for 2 s after it started, then with 500, and writes down (in
/// `/srv/first-fail`, milliseconds since the epoch) when it first did.
const SERVER_JS: &str = r#"const http = require("http");
const fs = require("fs");
const version = fs.readFileSync(__dirname + "/VERSION", "utf8").trim();
const started = Date.now();
http.createServer((req, res) => {
  if (req.url === "/health") {
    const sick = version.includes("late-sick") && Date.now() - started > 2000;
    if (sick && !fs.existsSync("/srv/first-fail")) fs.writeFileSync("/srv/first-fail", String(Date.now()));
    res.statusCode = sick ? 500 : 200;
    return res.end(sick ? "sick\n" : "ok\n");
  }
  res.end(`${process.pid} version ${version}\n`);
}).listen(process.env.PORT);
"#;

/// One size's runs: the time from the first failing probe to every host back, and the
/// requests failed meanwhile (over the whole deploy).
struct Row {
    size: usize,
    times: Vec<Duration>,
    failed: Vec<u64>,
    requests: Vec<u64>,
}

fn main() -> anyhow::Result<()> {
    if let Some(why) = missing_sshd() {
        bail!("cannot start sshd hosts: {why}");
    }
    let (runs, sizes) = runs_and_sizes(1, &SIZES);
    let mut rows = Vec::new();
    for &size in &sizes {
        rows.push(measure(size, runs).with_context(|| format!("{size} hosts"))?);
    }
    println!(
        "\nfleet-wide auto-revert: a release failing its health check inside the watch window, {runs} run(s) per size, real sshd hosts, agents and Node apps on loopback"
    );
    println!(
        "{:>6}  {:>22}  {:>16}  {:>14}",
        "hosts", "failing probe -> back", "requests failed", "requests ok"
    );
    for row in &rows {
        println!(
            "{:>6}  {:>21.2}s  {:>16}  {:>14}",
            row.size,
            median(&row.times).as_secs_f64(),
            row.failed.iter().max().copied().unwrap_or_default(),
            row.requests.iter().min().copied().unwrap_or_default(),
        );
    }
    println!(
        "\nmedian time; requests failed: the most in any run, across every host's keep-alive and new-connection load"
    );
    Ok(())
}

fn measure(size: usize, runs: usize) -> anyhow::Result<Row> {
    let started = Instant::now();
    let fleet = Fleet::start(size);
    let app_port = free_port();
    let repo = GitRepo::new();
    repo.write("server.js", SERVER_JS);
    repo.write(
        "ecosystem.json",
        &json!({"apps": [{
            "name": "web", "script": "server.js", "instances": 2, "exec_mode": "cluster",
            "listen_timeout": 3000, "deploy_timeout": "6s",
            "healthcheck": {"http": "/health", "interval": "200ms", "timeout": "1s"},
            "env": {"PORT": app_port}
        }]})
        .to_string(),
    );
    repo.commit_file("VERSION", "1\n", "web app");
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&json!({"deploy": {"production": {
        "host": fleet.hosts_json(), "ref": "main", "repo": repo.url(), "path": "/srv/app",
        "fetch": "push", "agent": {"port": free_port(), "bind": "host"},
        "watch_period": "8s",
    }}}));
    for args in [
        &["ca", "init"][..],
        &["deploy", "production", "setup"],
        &["deploy", "production"],
    ] {
        let run = project.pmfleet(args);
        if run.code != 0 {
            bail!("{args:?} failed:\n{}", run.all());
        }
    }
    wait_for(&fleet.hosts, app_port, "1", Duration::from_secs(60))?;
    eprintln!(
        "{size} hosts with agents serving version 1 in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let mut row = Row {
        size,
        times: Vec::new(),
        failed: Vec::new(),
        requests: Vec::new(),
    };
    for run in 0..runs {
        for host in &fleet.hosts {
            let _ = std::fs::remove_file(host.root().join("first-fail"));
        }
        repo.commit_file("VERSION", &format!("{} late-sick\n", run + 2), "sick later");
        let loads: Vec<Load> = fleet
            .hosts
            .iter()
            .flat_map(|h| {
                let addr = SocketAddr::new(h.address().parse().expect("an IP"), app_port);
                [
                    Load::keep_alive(addr, 1, 0),
                    Load::new_connections(addr, Duration::from_secs(600)),
                ]
            })
            .collect();
        let log_path = project.path().join(format!("deploy-{}.log", run + 1));
        let log = std::fs::File::create(&log_path)?;
        let mut deploy = project
            .command(&["deploy", "production"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        // Every host back on version 1 after a probe failed.
        let back = wait_until_back(&fleet.hosts, app_port, Duration::from_secs(120))?;
        let status = deploy.wait()?;
        let first_fail = fleet
            .hosts
            .iter()
            .filter_map(|h| std::fs::read_to_string(h.root().join("first-fail")).ok())
            .filter_map(|t| t.trim().parse::<u128>().ok())
            .min()
            .context("no host wrote down a failing probe")?;
        if status.code() != Some(1) {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the deploy was not rolled back ({status}):\n{log}");
        }
        let took = Duration::from_millis((back.saturating_sub(first_fail)) as u64);
        let (mut failed, mut ok) = (0, 0);
        for load in loads {
            let report = load.finish();
            failed += report.failed;
            ok += report.ok;
        }
        eprintln!(
            "{size} hosts, run {}: back {:.2}s after the first failing probe; {failed} of {} requests failed",
            run + 1,
            took.as_secs_f64(),
            ok + failed
        );
        row.times.push(took);
        row.failed.push(failed);
        row.requests.push(ok);
    }
    Ok(row)
}

/// The version `host` answers with on `/`.
fn version(host: &SshHost, port: u16) -> String {
    get_from(host.address(), port)
        .ok()
        .and_then(|b| b.split(" version ").nth(1).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

fn wait_for(hosts: &[SshHost], port: u16, v: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !hosts.iter().all(|h| version(h, port) == v) {
        if Instant::now() > deadline {
            bail!("not every host serves version {v}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Polls until a host went bad (every host switched by then: they switch at once, before
/// the watch window) and every host is back on version 1 (several answers in a row, so an
/// instance mid-reload does not count); returns when, in milliseconds since the epoch.
fn wait_until_back(hosts: &[SshHost], port: u16, limit: Duration) -> anyhow::Result<u128> {
    let deadline = Instant::now() + limit;
    loop {
        let went_bad = hosts.iter().any(|h| h.root().join("first-fail").exists());
        if went_bad
            && hosts
                .iter()
                .all(|h| (0..3).all(|_| version(h, port) == "1"))
        {
            return Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis());
        }
        if Instant::now() > deadline {
            bail!("the fleet did not go back within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
