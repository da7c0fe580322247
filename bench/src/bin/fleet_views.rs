//! The fleet views against many agents: for each fleet size, starts that many real
//! `pmfleet-agent` daemons on this machine (127.0.0.2, …, each with its own home, a certificate
//! from a fresh fleet CA, and its metrics served on its mutual-TLS port), then prints
//! `pmfleet status` wall time, the dashboard's time to a fleet page where every host has
//! answered, the dashboard's RSS once it polls them all, `monit`'s refresh period as its header
//! shows it (in a tmux window), and the agents' idle RSS with metrics on.
//!
//! `cargo run --release -p pmfleet-bench --bin fleet_views [-- 50,100,200]` (needs tmux).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pmfleet::pki::{self, Ca};
use pmfleet_testkit::binaries::{agent_bin, pmfleet_bin};
use pmfleet_testkit::free_port;
use pmfleet_testkit::tmux::{Tmux, shell_line};
use pmfleet_testkit::wait::poll_for;
use pmfleet_testkit::webdriver::http;
use serde_json::json;

struct Fleet {
    work: tempfile::TempDir,
    ca_dir: PathBuf,
    homes: Vec<PathBuf>,
}

impl Drop for Fleet {
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

fn start(agents: usize) -> anyhow::Result<Fleet> {
    let work = tempfile::Builder::new().prefix("views-bench-").tempdir()?;
    let ca_dir = work.path().join("ca");
    let ca = Ca::init(&ca_dir).context("fleet CA")?;
    let port = free_port();
    let mut fleet = Fleet {
        work,
        ca_dir,
        homes: Vec::new(),
    };
    let mut hosts = Vec::new();
    for i in 0..agents {
        let address = format!("127.0.{}.{}", 20 + i / 250, i % 250 + 2);
        let home = fleet.work.path().join(format!("agent-{i}"));
        let tls = home.join("tls");
        std::fs::create_dir_all(&tls)?;
        let (cert, key) = pki::issue_agent_cert(&ca, std::slice::from_ref(&address), 30)?;
        std::fs::write(tls.join("agent.pem"), cert)?;
        write_private(&tls.join("agent.key"), &key)?;
        std::fs::write(tls.join("ca.pem"), ca.cert_pem())?;
        std::fs::write(tls.join("listen"), format!("{address}:{port}\n"))?;
        std::fs::write(home.join("metrics"), "tls\n")?;
        let status = Command::new(agent_bin())
            .arg("ping")
            .env("PMFLEET_AGENT_HOME", &home)
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("agent {i} did not start (see {}/agent.log)", home.display());
        }
        fleet.homes.push(home);
        hosts.push(address);
    }
    let project = fleet.work.path().join("project");
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

impl Fleet {
    fn project(&self) -> PathBuf {
        self.work.path().join("project")
    }

    fn pmfleet(&self, args: &[&str]) -> Command {
        let mut c = Command::new(pmfleet_bin());
        c.args(args)
            .current_dir(self.project())
            .env("PMFLEET_CA_DIR", &self.ca_dir)
            .env("HOME", self.work.path())
            .env_remove("CI");
        c
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// `pmfleet status --json` wall time, median of 3, every agent answering.
fn status_time(fleet: &Fleet, agents: usize) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let out = fleet.pmfleet(&["status", "--json"]).output()?;
        times.push(started.elapsed());
        let parsed: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
        let up = parsed
            .as_array()
            .map_or(0, |a| a.iter().filter(|h| h["agent"].is_object()).count());
        if up != agents {
            bail!("only {up} of {agents} agents answered status");
        }
    }
    Ok(median(times))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The dashboard: time from its start to a fleet page with every host answered, and its RSS
/// after 10 more seconds of polling them all.
fn dashboard(fleet: &Fleet, agents: usize) -> anyhow::Result<(Duration, u64)> {
    let db = fleet.work.path().join("dashboard.sqlite");
    let started = Instant::now();
    let mut child = fleet
        .pmfleet(&["dashboard", "--listen", "127.0.0.1:0", "--refresh", "1s"])
        .arg("--db")
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().context("stdout")?);
    let pid = child.id();
    let _child = Killed(child);
    let mut line = String::new();
    out.read_line(&mut line)?;
    let url = line
        .trim()
        .trim_start_matches("pmfleet dashboard: ")
        .to_string();
    let token = url.split("?token=").nth(1).context("token")?.to_string();
    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .context("port")?;
    let bearer = format!("Bearer {token}");
    poll_for(
        Duration::from_secs(120),
        "every host on the fleet page",
        || {
            let (status, page) = http(port, "GET", "/", &[("Authorization", &bearer)], "").ok()?;
            let answered = page.matches("<tr data-host=").count();
            (status == 200 && answered == agents && !page.contains("data-state=\"waiting\""))
                .then_some(())
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let content = started.elapsed();
    std::thread::sleep(Duration::from_secs(10));
    let rss = rss_kib(pid).unwrap_or(0);
    drop(out);
    Ok((content, rss))
}

/// `monit`'s refresh period, as its header says once every host answers (in tmux).
fn monit_refresh(fleet: &Fleet, agents: usize) -> anyhow::Result<String> {
    let term = Tmux::start(&shell_line(&fleet.pmfleet(&["monit"])), 200, 60);
    let want = format!("hosts {agents}/{agents} answering");
    let screen = poll_for(Duration::from_secs(120), "monit with every host", || {
        std::thread::sleep(Duration::from_millis(500));
        let s = term.screen();
        (s.contains(&want) && !s.contains("refresh -")).then_some(s)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Let it run, then read the period it measured.
    std::thread::sleep(Duration::from_secs(10));
    let screen = {
        let s = term.screen();
        if s.contains(&want) { s } else { screen }
    };
    let period = screen
        .split("refresh ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    term.keys(&["q"]);
    Ok(period)
}

fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "50,100,200".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "{:>6}  {:>10}  {:>16}  {:>14}  {:>14}  {:>16}",
        "agents", "status", "dashboard ready", "dashboard RSS", "monit refresh", "agent RSS (avg)"
    );
    for agents in sizes {
        if agents == 0 || agents > 1000 {
            bail!("between 1 and 1000 agents");
        }
        let fleet = start(agents)?;
        let status = status_time(&fleet, agents)?;
        let (ready, dash_rss) = dashboard(&fleet, agents)?;
        let refresh = monit_refresh(&fleet, agents)?;
        let rss: Vec<u64> = fleet
            .homes
            .iter()
            .filter_map(|h| std::fs::read_to_string(h.join("agent.pid")).ok())
            .filter_map(|p| rss_kib(p.trim().parse().ok()?))
            .collect();
        let avg = rss.iter().sum::<u64>() / rss.len().max(1) as u64;
        println!(
            "{agents:>6}  {:>9.3}s  {:>15.3}s  {:>10.1} MiB  {:>14}  {:>12.1} MiB",
            status.as_secs_f64(),
            ready.as_secs_f64(),
            dash_rss as f64 / 1024.0,
            refresh,
            avg as f64 / 1024.0,
        );
    }
    println!(
        "goals: status and the dashboard's fleet page under 1 s at 200; monit refreshing each second; agents under 6 MiB"
    );
    Ok(())
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
