//! The fleet views against many agents: for each fleet size, starts that many real
//! `pmfleet-agent` daemons on this machine (127.0.0.2, …, each with its own home, a certificate
//! from a fresh fleet CA, and its metrics served on its mutual-TLS port), then prints
//! `pmfleet status` wall time, the dashboard's time to a fleet page where every host has
//! answered, the dashboard's RSS once it polls them all, the fleet page's time to content in a
//! real browser (headless Chromium through chromedriver: navigation start to the frame after
//! the one that drew the grid with every host), `monit`'s refresh period as its header shows it
//! (in a tmux window), and the agents' RSS with metrics on: idle (after `status`), then after
//! the dashboard and monit have polled them every second.
//!
//! `cargo build-agent` first: the agents are the binary as it ships (`$PMFLEET_AGENT_BIN`).
//! `cargo run --release -p pmfleet-bench --bin fleet_views [-- 50,100,200]` (needs tmux; without
//! chromium and chromedriver the browser column says so and the others are still measured).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pmfleet_bench::agents::{LoopbackAgents, rss_kib};
use pmfleet_bench::median;
use pmfleet_testkit::binaries::pmfleet_bin;
use pmfleet_testkit::tmux::{Tmux, shell_line};
use pmfleet_testkit::wait::poll_for;
use pmfleet_testkit::webdriver::{Browser, http};
use serde_json::{Value, json};

/// The agents, and the views' commands against them.
struct Fleet(LoopbackAgents);

fn start(agents: usize) -> anyhow::Result<Fleet> {
    let address = |i: usize| format!("127.0.{}.{}", 20 + i / 250, i % 250 + 2);
    LoopbackAgents::start("views-bench-", agents, address, Some("tls")).map(Fleet)
}

impl Fleet {
    /// The agents' average VmRSS, in KiB.
    fn agents_rss_kib(&self) -> u64 {
        let rss: Vec<u64> = self
            .0
            .homes
            .iter()
            .filter_map(|h| std::fs::read_to_string(h.join("agent.pid")).ok())
            .filter_map(|p| rss_kib(p.trim().parse().ok()?))
            .collect();
        rss.iter().sum::<u64>() / rss.len().max(1) as u64
    }

    fn project(&self) -> PathBuf {
        self.0.project()
    }

    fn pmfleet(&self, args: &[&str]) -> Command {
        let mut c = Command::new(pmfleet_bin());
        c.args(args)
            .current_dir(self.project())
            .env("PMFLEET_CA_DIR", &self.0.ca_dir)
            .env("HOME", self.0.work.path())
            .env_remove("CI");
        c
    }
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
    Ok(median(&times))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the dashboard measured: the time from its start to a fleet page with every host
/// answered (plain HTTP), its RSS after 10 more seconds of polling them all, and the fleet page
/// loaded in a real browser (or why it could not be).
struct Dashboard {
    ready: Duration,
    rss_kib: u64,
    browser: Result<PageLoads, String>,
}

fn dashboard(fleet: &Fleet, agents: usize) -> anyhow::Result<Dashboard> {
    let db = fleet.0.work.path().join("dashboard.sqlite");
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
    let ready = started.elapsed();
    std::thread::sleep(Duration::from_secs(10));
    let rss_kib = rss_kib(pid).unwrap_or(0);
    let browser = page_loads(&url, port, agents);
    drop(out);
    Ok(Dashboard {
        ready,
        rss_kib,
        browser,
    })
}

/// How many times the browser loads the fleet page; the median is printed.
const LOADS: usize = 5;

/// Evaluated in every document the browser opens, before the page's own script and while it
/// is still being parsed: it notes (in `performance.now()` time, whose origin is the
/// navigation's start) when the fleet grid holds every host (`WANT` rows, none waiting, the last
/// row as wide as the header), then when the frame after the one that drew it begins — the
/// grid is on screen by then (a stylesheet still loading holds frames back, so it counts too).
const GRID_WATCH: &str = r#"(() => {
  const want = WANT;
  let seen = false;
  const width = (row) => Array.from(row.cells).reduce((n, c) => n + c.colSpan, 0);
  const complete = () => {
    const grid = document.getElementById("fleet");
    if (!grid) return false;
    const rows = grid.querySelectorAll("tr[data-host]");
    if (rows.length !== want || grid.querySelector('[data-state="waiting"]')) return false;
    return width(rows[rows.length - 1]) === width(grid.rows[0]);
  };
  const check = () => {
    if (seen || !complete()) return;
    seen = true;
    window.__pmfleetGrid = performance.now();
    requestAnimationFrame(() => requestAnimationFrame(() => {
      window.__pmfleetOnScreen = performance.now();
    }));
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", check);
})();"#;

/// Run once a load has finished: waits for the grid watch's note of the frame after the grid
/// was drawn and answers with it, the grid's time, and what the page's Navigation and Paint
/// Timing say (the page's last byte, the document parsed, the first contentful paint).
const READ_LOAD: &str = r##"const done = arguments[arguments.length - 1];
const asked = performance.now();
const read = () => {
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  // The paint entry comes once the frame is presented, which may be a little later.
  const waiting = window.__pmfleetOnScreen === undefined || (!paint && performance.now() - asked < 1000);
  if (waiting) { setTimeout(read, 10); return; }
  const nav = performance.getEntriesByType("navigation")[0];
  done({
    onScreen: window.__pmfleetOnScreen,
    grid: window.__pmfleetGrid,
    responseEnd: nav ? nav.responseEnd : null,
    parsed: nav ? nav.domInteractive : null,
    firstPaint: paint ? paint.startTime : null,
    hosts: document.querySelectorAll("#fleet tr[data-host]").length,
  });
};
read();"##;

/// The fleet page in the browser, medians over [`LOADS`] loads, each from its navigation start:
/// the last byte of the page received, the document parsed (`domInteractive`), the first
/// contentful paint, the grid with every host in the document, the grid on screen.
struct PageLoads {
    response: Duration,
    parsed: Duration,
    /// Missing when Chromium reported no first contentful paint in any load.
    first_paint: Option<Duration>,
    grid: Duration,
    on_screen: Duration,
}

/// Open the dashboard in headless Chromium (the address with the token sets its cookie), then
/// load the fleet page [`LOADS`] times, reading each load's times in the page.
fn page_loads(url: &str, port: u16, agents: usize) -> Result<PageLoads, String> {
    let browser = Browser::try_start()?;
    browser.on_every_document(&GRID_WATCH.replace("WANT", &agents.to_string()))?;
    browser.goto(url);
    let millis = |v: &Value| {
        v.as_f64()
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
    };
    let mut loads = Vec::new();
    for _ in 0..LOADS {
        browser.goto(&format!("http://127.0.0.1:{port}/"));
        let load = browser.execute_async(READ_LOAD, json!([]))?;
        if load["hosts"].as_u64() != Some(agents as u64) {
            return Err(format!("the browser's fleet page: {load}"));
        }
        let times: Vec<Option<Duration>> =
            ["responseEnd", "parsed", "firstPaint", "grid", "onScreen"]
                .iter()
                .map(|key| millis(&load[key]))
                .collect();
        // Only the first contentful paint may be missing (Chromium did not report it in time).
        if times.iter().enumerate().any(|(i, t)| i != 2 && t.is_none()) {
            return Err(format!("the browser's times: {load}"));
        }
        loads.push(times);
    }
    let at = |i: usize| {
        let seen: Vec<Duration> = loads
            .iter()
            .filter_map(|l| l.get(i).copied().flatten())
            .collect();
        (!seen.is_empty()).then(|| median(&seen))
    };
    Ok(PageLoads {
        response: at(0).unwrap_or_default(),
        parsed: at(1).unwrap_or_default(),
        first_paint: at(2),
        grid: at(3).unwrap_or_default(),
        on_screen: at(4).unwrap_or_default(),
    })
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
        "{:>6}  {:>10}  {:>16}  {:>14}  {:>16}  {:>14}  {:>16}  {:>16}",
        "agents",
        "status",
        "dashboard ready",
        "dashboard RSS",
        "browser content",
        "monit refresh",
        "agent RSS idle",
        "agent RSS polled"
    );
    let mut loads = Vec::new();
    for agents in sizes {
        if agents == 0 || agents > 1000 {
            bail!("between 1 and 1000 agents");
        }
        let fleet = start(agents)?;
        let status = status_time(&fleet, agents)?;
        // Idle, metrics on: each agent has answered `status` over mutual TLS, and nothing
        // asks it anything for a few seconds.
        std::thread::sleep(std::time::Duration::from_secs(3));
        let idle = fleet.agents_rss_kib();
        let dash = dashboard(&fleet, agents)?;
        let refresh = monit_refresh(&fleet, agents)?;
        let polled = fleet.agents_rss_kib();
        let content = match &dash.browser {
            Ok(page) => format!("{:.3}s", page.on_screen.as_secs_f64()),
            Err(_) => "-".into(),
        };
        println!(
            "{agents:>6}  {:>9.3}s  {:>15.3}s  {:>10.1} MiB  {content:>16}  {:>14}  {:>12.1} MiB  {:>12.1} MiB",
            status.as_secs_f64(),
            dash.ready.as_secs_f64(),
            dash.rss_kib as f64 / 1024.0,
            refresh,
            idle as f64 / 1024.0,
            polled as f64 / 1024.0,
        );
        loads.push((agents, dash.browser));
    }
    println!(
        "browser content: headless Chromium, navigation start to the frame after the grid with every host was drawn, median of {LOADS} loads"
    );
    for (agents, page) in loads {
        match page {
            Ok(p) => println!(
                "  {agents:>4} agents: page received {:.3}s, parsed {:.3}s, first contentful paint {}, grid in the document {:.3}s, grid on screen {:.3}s",
                p.response.as_secs_f64(),
                p.parsed.as_secs_f64(),
                p.first_paint
                    .map_or("-".into(), |t| format!("{:.3}s", t.as_secs_f64())),
                p.grid.as_secs_f64(),
                p.on_screen.as_secs_f64()
            ),
            Err(e) => println!("  {agents:>4} agents: not measured: {e}"),
        }
    }
    println!(
        "goals: status and the dashboard's fleet page under 1 s at 200; monit refreshing each second; agents idle with metrics on under 6 MiB"
    );
    Ok(())
}
