//! pmfleet-agent against PM2 on this machine, side by side in one run: the same Node hello app
//! (`agent/tests/apps/hello.js`), the same load tool (`wrk`), one table at the end.
//!
//! Measured for each process manager:
//! - requests/s and p99 latency with 2 cluster instances, keep-alive and with a new connection
//!   per request (`Connection: close`), 5 s of `wrk -t2 -c50` each after a 1 s warm-up;
//! - failed requests (wrk's socket errors plus non-2xx answers) while the app is reloaded
//!   10 times in a row under keep-alive load, and how long those reloads took;
//! - the daemon's RSS (pmfleet-agent's daemon, PM2's God daemon) idle and with 10 apps;
//! - the time from `kill -9` of the only instance to a fresh connection being answered again
//!   (median of 5);
//! - failed requests while the daemon itself is replaced by a new binary 3 times under
//!   keep-alive load (`pmfleet-agent upgrade`; PM2's `pm2 update`), and whether the apps kept
//!   their processes.
//!
//! `cargo run --release -p pmfleet-bench --bin agent_vs_pm2 [-- agent|pm2]`
//!
//! Needs `node`, `wrk` (`apt-get install wrk`) and a release build of the agent
//! (the agent as it ships, `cargo build-agent`, or `$PMFLEET_AGENT_BIN`). PM2 is taken from PATH,
//! or installed once with npm into `target/bench-tools`.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pmfleet_testkit::assets::{agent_app, workspace};
use pmfleet_testkit::free_port;
use pmfleet_testkit::http::exchange;
use pmfleet_testkit::wait::{poll_for, poll_until};

/// One wrk run, as long as the runs that are reported.
const WRK_SECONDS: u64 = 5;
const WRK_ARGS: [&str; 2] = ["-t2", "-c50"];
const RELOADS: usize = 10;
const KILL_ROUNDS: usize = 5;
const EXTRA_APPS: usize = 10;
const UPGRADES: usize = 3;

fn main() -> anyhow::Result<()> {
    let only: Option<String> = std::env::args().nth(1);
    let tools = Tools::find(only.as_deref())?;
    let app = agent_app("hello.js");
    let work = tempfile::tempdir().context("temporary directory")?;

    let mut columns: Vec<(String, Results)> = Vec::new();
    if only.as_deref() != Some("pm2") {
        let agent = Agent {
            bin: tools.agent.clone(),
            home: work.path().join("agent-home"),
        };
        let version = agent.version();
        let results = measure(&agent, &tools, &app).context("pmfleet-agent")?;
        columns.push((version, results));
    }
    if only.as_deref() != Some("agent") {
        let pm2 = Pm2 {
            bin: tools.pm2.clone().context("PM2 was not found")?,
            home: work.path().join("pm2-home"),
        };
        let version = pm2.version();
        let results = measure(&pm2, &tools, &app).context("PM2")?;
        columns.push((version, results));
    }
    print_table(&columns);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The two process managers

/// What the benchmark asks of a process manager. Both drive a real daemon through its CLI.
trait Manager {
    /// Runs the manager's CLI with `args` (and `PORT` for the app, if given); its stdout.
    fn cli(&self, args: &[&str], port: Option<u16>) -> anyhow::Result<String>;
    /// Starts the daemon with no apps.
    fn start_daemon(&self) -> anyhow::Result<()>;
    fn daemon_pid(&self) -> anyhow::Result<u32>;
    /// `instances` cluster-mode instances of `script` serving `port`.
    fn start_cluster(
        &self,
        script: &Path,
        name: &str,
        port: u16,
        instances: u32,
    ) -> anyhow::Result<()>;
    /// One fork-mode instance of `script`, which binds `port` itself.
    fn start_fork(&self, script: &Path, name: &str, port: u16) -> anyhow::Result<()> {
        let script = script.display().to_string();
        self.cli(&["start", &script, "--name", name], Some(port))
            .map(drop)
    }
    fn reload(&self, name: &str) -> anyhow::Result<()> {
        self.cli(&["reload", name], None).map(drop)
    }
    /// Pids of the online instances of `name`.
    fn pids(&self, name: &str) -> anyhow::Result<Vec<u32>>;
    fn delete_all(&self) -> anyhow::Result<()> {
        self.cli(&["delete", "all"], None).map(drop)
    }
    /// Replaces the running daemon by a new binary of itself, the way the manager does it.
    fn upgrade_daemon(&self) -> anyhow::Result<()>;
    /// Stops every app and the daemon.
    fn shutdown(&self) {
        let _ = self.cli(&["kill"], None);
    }
}

/// Runs `bin args` with its home in `home_var` and the app's `PORT`.
fn run_cli(
    bin: &Path,
    home_var: &str,
    home: &Path,
    args: &[&str],
    port: Option<u16>,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin);
    cmd.args(args).env(home_var, home);
    if let Some(p) = port {
        cmd.env("PORT", p.to_string());
    }
    run(cmd, Duration::from_secs(120))
}

struct Agent {
    bin: PathBuf,
    home: PathBuf,
}

impl Agent {
    fn version(&self) -> String {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--version");
        run(cmd, Duration::from_secs(10))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|_| "pmfleet-agent".into())
    }
}

impl Manager for Agent {
    fn cli(&self, args: &[&str], port: Option<u16>) -> anyhow::Result<String> {
        run_cli(&self.bin, "PMFLEET_AGENT_HOME", &self.home, args, port)
    }

    fn start_daemon(&self) -> anyhow::Result<()> {
        // Every verb starts the daemon on first use.
        self.cli(&["list"], None).map(drop)
    }

    fn daemon_pid(&self) -> anyhow::Result<u32> {
        let wanted = format!("PMFLEET_AGENT_HOME={}", self.home.display());
        find_process(|argv, environ| {
            argv.first()
                .is_some_and(|a| Path::new(a).file_name() == self.bin.file_name())
                && argv.get(1).is_some_and(|a| a == "daemon")
                && environ.contains(&wanted)
        })
        .context("the agent daemon is not running")
    }

    fn start_cluster(
        &self,
        script: &Path,
        name: &str,
        port: u16,
        instances: u32,
    ) -> anyhow::Result<()> {
        let (script, instances, port_arg) = (
            script.display().to_string(),
            instances.to_string(),
            port.to_string(),
        );
        self.cli(
            &[
                "start", &script, "-i", &instances, "--name", name, "--port", &port_arg,
            ],
            Some(port),
        )
        .map(drop)
    }

    fn pids(&self, name: &str) -> anyhow::Result<Vec<u32>> {
        let out = self.cli(&["list", "--json"], None)?;
        let list: serde_json::Value = serde_json::from_str(&out).context("list --json")?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] == name && p["status"] == "online")
            .filter_map(|p| p["pid"].as_u64().map(|pid| pid as u32))
            .collect())
    }

    /// `upgrade` into a copy of the binary that differs by one byte (same file name, so the
    /// daemon is found as before), and back again on the next call.
    fn upgrade_daemon(&self) -> anyhow::Result<()> {
        let dir = self.home.with_extension("next");
        let next = dir.join(self.bin.file_name().context("agent binary name")?);
        if !next.exists() {
            std::fs::create_dir_all(&dir)?;
            let mut bytes = std::fs::read(&self.bin)?;
            bytes.push(b'\n');
            std::fs::write(&next, bytes)?;
            std::fs::set_permissions(&next, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        }
        let running = std::fs::read_link(format!("/proc/{}/exe", self.daemon_pid()?))?;
        let to = if running == next { &self.bin } else { &next };
        let to = to.display().to_string();
        self.cli(&["upgrade", "--binary", &to], None).map(drop)
    }
}

struct Pm2 {
    bin: PathBuf,
    home: PathBuf,
}

impl Pm2 {
    fn version(&self) -> String {
        self.cli(&["--version"], None)
            .ok()
            .and_then(|v| v.lines().last().map(|l| format!("PM2 {}", l.trim())))
            .unwrap_or_else(|| "PM2".into())
    }
}

impl Manager for Pm2 {
    fn cli(&self, args: &[&str], port: Option<u16>) -> anyhow::Result<String> {
        run_cli(&self.bin, "PM2_HOME", &self.home, args, port)
    }

    fn start_daemon(&self) -> anyhow::Result<()> {
        self.cli(&["ping"], None).map(drop)
    }

    fn daemon_pid(&self) -> anyhow::Result<u32> {
        let text = std::fs::read_to_string(self.home.join("pm2.pid")).context("pm2.pid")?;
        text.trim().parse().context("pm2.pid")
    }

    fn start_cluster(
        &self,
        script: &Path,
        name: &str,
        port: u16,
        instances: u32,
    ) -> anyhow::Result<()> {
        let (script, instances) = (script.display().to_string(), instances.to_string());
        self.cli(
            &["start", &script, "-i", &instances, "--name", name],
            Some(port),
        )
        .map(drop)
    }

    fn pids(&self, name: &str) -> anyhow::Result<Vec<u32>> {
        let out = self.cli(&["jlist"], None)?;
        // Older versions print a banner before the JSON on first use.
        let json = out.get(out.find('[').unwrap_or(0)..).unwrap_or_default();
        let list: serde_json::Value = serde_json::from_str(json).context("pm2 jlist")?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] == name && p["pm2_env"]["status"] == "online")
            .filter_map(|p| p["pid"].as_u64().map(|pid| pid as u32))
            .filter(|pid| *pid != 0)
            .collect())
    }

    /// What PM2 runs after a new version is installed: save, kill the daemon, resurrect.
    fn upgrade_daemon(&self) -> anyhow::Result<()> {
        self.cli(&["update"], None).map(drop)
    }
}

/// Stops the manager's daemon however the measurement ends.
struct Shutdown<'a>(&'a dyn Manager);

impl Drop for Shutdown<'_> {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

// ---------------------------------------------------------------------------------------------
// The measurements

#[derive(Debug, Default)]
struct Results {
    keep_alive: Option<Wrk>,
    close: Option<Wrk>,
    reload: Option<(Wrk, Duration)>,
    rss_idle: Option<u64>,
    rss_apps: Option<u64>,
    kill_to_serving: Option<Duration>,
    /// Load during the daemon upgrades, their wall time, and whether the app's pids stayed.
    upgrade: Option<(Wrk, Duration, bool)>,
}

fn measure(m: &dyn Manager, tools: &Tools, app: &Path) -> anyhow::Result<Results> {
    let mut r = Results::default();
    let _shutdown = Shutdown(m);

    m.start_daemon().context("start the daemon")?;
    std::thread::sleep(Duration::from_secs(2));
    r.rss_idle = rss(m.daemon_pid()?);
    eprintln!("daemon idle RSS: {}", mib(r.rss_idle));

    let port = free_port();
    m.start_cluster(app, "hello", port, 2)
        .context("start 2 cluster instances")?;
    wait_serving(port, Duration::from_secs(30))?;
    wait_pids(m, "hello", 2)?;
    let url = format!("http://127.0.0.1:{port}/");

    tools.wrk(&url, 1, false)?;
    r.keep_alive = Some(tools.wrk(&url, WRK_SECONDS, false)?);
    eprintln!("keep-alive: {:?}", r.keep_alive);
    tools.wrk(&url, 1, true)?;
    r.close = Some(tools.wrk(&url, WRK_SECONDS, true)?);
    eprintln!("connection: close: {:?}", r.close);

    // Reloads under keep-alive load.
    let load = tools.wrk_background(&url)?;
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    for i in 0..RELOADS {
        m.reload("hello")
            .with_context(|| format!("reload {}", i + 1))?;
    }
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let during = load.stop()?;
    eprintln!("{RELOADS} reloads in {took:?}: {during:?}");
    r.reload = Some((during, took));

    // The daemon replaced by a new binary, under keep-alive load.
    let before = wait_pids(m, "hello", 2)?;
    let load = tools.wrk_background(&url)?;
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    for i in 0..UPGRADES {
        m.upgrade_daemon()
            .with_context(|| format!("daemon upgrade {}", i + 1))?;
        wait_pids(m, "hello", 2)?;
    }
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let during = load.stop()?;
    let kept = wait_pids(m, "hello", 2)? == before;
    eprintln!("{UPGRADES} daemon upgrades in {took:?}: {during:?}; app processes kept: {kept}");
    r.upgrade = Some((during, took, kept));

    // kill -9 of the only instance until a new connection is answered.
    m.delete_all()?;
    let port = free_port();
    m.start_cluster(app, "solo", port, 1)
        .context("start 1 cluster instance")?;
    wait_serving(port, Duration::from_secs(30))?;
    let mut times = Vec::new();
    for _ in 0..KILL_ROUNDS {
        let pids = wait_pids(m, "solo", 1)?;
        // Past min_uptime, so the policy sees a crash after a stable run.
        std::thread::sleep(Duration::from_millis(1500));
        let pid = *pids.first().context("no instance")?;
        // SAFETY: kill only sends a signal, to an app this benchmark started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let killed = Instant::now();
        let served = wait_serving_except(port, pid, Duration::from_secs(30))?;
        times.push(served.duration_since(killed));
        // Let the manager record the new instance before the next round.
        poll_until(
            Duration::from_secs(30),
            "a new instance of solo after kill -9",
            || {
                m.pids("solo")
                    .is_ok_and(|pids| pids.iter().any(|p| *p != pid))
            },
        )?;
    }
    times.sort();
    r.kill_to_serving = times.get(times.len() / 2).copied();
    eprintln!("kill -9 → serving: {times:?}");

    // Daemon memory with 10 apps.
    m.delete_all()?;
    let mut ports = Vec::new();
    for i in 0..EXTRA_APPS {
        let port = free_port();
        m.start_fork(app, &format!("app{i}"), port)
            .with_context(|| format!("start app{i}"))?;
        ports.push(port);
    }
    for port in ports {
        wait_serving(port, Duration::from_secs(30))?;
    }
    std::thread::sleep(Duration::from_secs(3));
    r.rss_apps = rss(m.daemon_pid()?);
    eprintln!("daemon RSS with {EXTRA_APPS} apps: {}", mib(r.rss_apps));
    m.delete_all()?;
    Ok(r)
}

fn wait_pids(m: &dyn Manager, name: &str, n: usize) -> anyhow::Result<Vec<u32>> {
    let what = format!("{n} online instance(s) of {name}");
    Ok(poll_for(Duration::from_secs(30), &what, || {
        m.pids(name).ok().filter(|pids| pids.len() == n)
    })?)
}

/// One request on a new connection: the pid in the body when the answer is 200.
fn probe(port: u16, timeout: Duration) -> Option<u32> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let answer = exchange(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n",
    )
    .ok()?;
    if answer.status != 200 {
        return None;
    }
    answer.body.split_whitespace().find_map(|w| w.parse().ok())
}

fn wait_serving(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let what = format!("an answer on port {port}");
    Ok(poll_until(timeout, &what, || {
        probe(port, Duration::from_secs(2)).is_some()
    })?)
}

/// Waits until a process other than `dead` answers a new connection; returns when that
/// answer arrived. A new connection is opened every 5 ms and each may wait up to 3 s, so a
/// connection that hangs (handed to the dead instance) does not hide a later one that is
/// answered, and one that waits in the listen queue counts from when it is answered.
fn wait_serving_except(port: u16, dead: u32, timeout: Duration) -> anyhow::Result<Instant> {
    let (tx, rx) = std::sync::mpsc::channel();
    let deadline = Instant::now() + timeout;
    loop {
        let tx = tx.clone();
        std::thread::spawn(move || {
            if probe(port, Duration::from_secs(3)).is_some_and(|pid| pid != dead) {
                let _ = tx.send(Instant::now());
            }
        });
        if let Ok(at) = rx.recv_timeout(Duration::from_millis(5)) {
            return Ok(at);
        }
        if Instant::now() > deadline {
            bail!("port {port} not served again after kill -9");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// wrk

#[derive(Debug, Clone, Default)]
struct Wrk {
    requests: u64,
    rps: f64,
    p99: Option<Duration>,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx answers.
    errors: u64,
}

impl Wrk {
    fn parse(out: &str) -> anyhow::Result<Wrk> {
        let mut w = Wrk::default();
        for line in out.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("Requests/sec:") {
                w.rps = v.trim().parse().context("Requests/sec")?;
            } else if let Some(v) = line.strip_prefix("99%") {
                w.p99 = parse_latency(v.trim());
            } else if line.contains(" requests in ") {
                w.requests = line
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("Socket errors:") {
                // connect 0, read 12, write 0, timeout 0
                w.errors += v
                    .split(',')
                    .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum::<u64>();
            } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
                w.errors += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
        if w.requests == 0 {
            bail!("no requests in wrk's output:\n{out}");
        }
        Ok(w)
    }
}

/// `1.23ms`, `850.00us`, `1.02s`
fn parse_latency(v: &str) -> Option<Duration> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = v.split_at(split);
    let n: f64 = num.trim().parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

struct Background {
    child: Child,
    output: JoinHandle<String>,
}

impl Background {
    /// Stops wrk with SIGINT, after which it prints its summary.
    fn stop(mut self) -> anyhow::Result<Wrk> {
        // SAFETY: kill only sends a signal, to the wrk this benchmark started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait().context("wait for wrk")?;
        let out = self
            .output
            .join()
            .map_err(|_| anyhow::anyhow!("wrk output"))?;
        Wrk::parse(&out)
    }
}

// ---------------------------------------------------------------------------------------------
// Tools and helpers

struct Tools {
    wrk: PathBuf,
    agent: PathBuf,
    pm2: Option<PathBuf>,
}

impl Tools {
    fn find(only: Option<&str>) -> anyhow::Result<Tools> {
        let wrk = which("wrk").context("wrk is not installed: apt-get install wrk")?;
        which("node").context("node is not installed")?;
        let agent = std::env::var_os("PMFLEET_AGENT_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                target_dir().join(format!(
                    "{}-unknown-linux-gnu/agent/pmfleet-agent",
                    std::env::consts::ARCH
                ))
            });
        if only != Some("pm2") && !agent.exists() {
            bail!(
                "{} does not exist: run `cargo build-agent` (or set PMFLEET_AGENT_BIN)",
                agent.display()
            );
        }
        let pm2 = if only == Some("agent") {
            None
        } else {
            Some(find_or_install_pm2()?)
        };
        eprintln!(
            "wrk {}, agent {}, pm2 {}",
            wrk.display(),
            agent.display(),
            pm2.as_deref()
                .map(Path::display)
                .map(|d| d.to_string())
                .unwrap_or_default()
        );
        Ok(Tools { wrk, agent, pm2 })
    }

    fn wrk_command(&self, url: &str, seconds: u64, close: bool) -> Command {
        let mut cmd = Command::new(&self.wrk);
        cmd.args(WRK_ARGS)
            .arg(format!("-d{seconds}s"))
            .arg("--latency");
        if close {
            cmd.args(["-H", "Connection: close"]);
        }
        cmd.arg(url);
        cmd
    }

    fn wrk(&self, url: &str, seconds: u64, close: bool) -> anyhow::Result<Wrk> {
        let out = run(
            self.wrk_command(url, seconds, close),
            Duration::from_secs(seconds + 30),
        )?;
        Wrk::parse(&out)
    }

    /// A long keep-alive wrk run, stopped with [`Background::stop`].
    fn wrk_background(&self, url: &str) -> anyhow::Result<Background> {
        let mut cmd = self.wrk_command(url, 600, false);
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().context("start wrk")?;
        let mut stdout = child.stdout.take().context("wrk stdout")?;
        let output = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        Ok(Background { child, output })
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `pm2` from PATH, else from `target/bench-tools`, installing it there with npm once.
fn find_or_install_pm2() -> anyhow::Result<PathBuf> {
    if let Some(p) = which("pm2") {
        return Ok(p);
    }
    let prefix = target_dir().join("bench-tools");
    let bin = prefix.join("node_modules/.bin/pm2");
    if !bin.exists() {
        eprintln!("installing pm2 into {} ...", prefix.display());
        std::fs::create_dir_all(&prefix)?;
        let mut cmd = Command::new("npm");
        cmd.args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg("pm2@latest");
        run(cmd, Duration::from_secs(600)).context("npm install pm2 (is npm installed?)")?;
    }
    Ok(bin)
}

/// Runs `cmd` to completion within `timeout`; its stdout, or an error with both streams.
fn run(mut cmd: Command, timeout: Duration) -> anyhow::Result<String> {
    let desc = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawn {desc}"))?;
    let read = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let status = wait_timeout(&mut child, timeout).with_context(|| format!("{desc} timed out"))?;
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        bail!("{desc} failed ({status}):\n{out}{err}");
    }
    Ok(out)
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> anyhow::Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("no exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Resident memory of one process (not its children), in bytes.
fn rss(pid: u32) -> Option<u64> {
    pmfleet_bench::agents::rss_kib(pid).map(|kib| kib * 1024)
}

/// The first process whose argv and environment satisfy `pred`.
fn find_process(pred: impl Fn(&[String], &[String]) -> bool) -> Option<u32> {
    let split = |bytes: Vec<u8>| -> Vec<String> {
        bytes
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let argv = split(std::fs::read(format!("/proc/{pid}/cmdline")).ok()?);
        let environ = split(std::fs::read(format!("/proc/{pid}/environ")).ok()?);
        pred(&argv, &environ).then_some(pid)
    })
}

// ---------------------------------------------------------------------------------------------
// Output

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0))
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    })
}

fn print_table(columns: &[(String, Results)]) {
    let mut rows: BTreeMap<usize, (String, Vec<String>)> = BTreeMap::new();
    let mut row = |i: usize, label: &str, value: String| {
        rows.entry(i)
            .or_insert_with(|| (label.to_string(), Vec::new()))
            .1
            .push(value);
    };
    for (_, r) in columns {
        let rps = |w: &Option<Wrk>| w.as_ref().map_or("-".into(), |w| format!("{:.0}", w.rps));
        let p99 = |w: &Option<Wrk>| ms(w.as_ref().and_then(|w| w.p99));
        let errors = |w: &Option<Wrk>| w.as_ref().map_or("-".into(), |w| w.errors.to_string());
        row(0, "req/s, 2 instances, keep-alive", rps(&r.keep_alive));
        row(1, "p99, keep-alive", p99(&r.keep_alive));
        row(2, "errors, keep-alive", errors(&r.keep_alive));
        row(3, "req/s, 2 instances, Connection: close", rps(&r.close));
        row(4, "p99, Connection: close", p99(&r.close));
        row(5, "errors, Connection: close", errors(&r.close));
        let (reload, took) = match &r.reload {
            Some((w, took)) => (Some(w.clone()), Some(*took)),
            None => (None, None),
        };
        row(
            6,
            &format!("failed requests, {RELOADS} reloads under load"),
            reload
                .as_ref()
                .map_or("-".into(), |w| format!("{} of {}", w.errors, w.requests)),
        );
        row(
            7,
            &format!("time for {RELOADS} reloads"),
            took.map_or("-".into(), |t| format!("{:.1} s", t.as_secs_f64())),
        );
        row(8, "daemon RSS, idle", mib(r.rss_idle));
        row(
            9,
            &format!("daemon RSS, {EXTRA_APPS} apps"),
            mib(r.rss_apps),
        );
        row(
            10,
            &format!("kill -9 → serving again (median of {KILL_ROUNDS})"),
            ms(r.kill_to_serving),
        );
        row(
            11,
            &format!("failed requests, {UPGRADES} daemon upgrades under load"),
            r.upgrade.as_ref().map_or("-".into(), |(w, ..)| {
                format!("{} of {}", w.errors, w.requests)
            }),
        );
        row(
            12,
            &format!("time for {UPGRADES} daemon upgrades"),
            r.upgrade
                .as_ref()
                .map_or("-".into(), |(_, t, _)| format!("{:.1} s", t.as_secs_f64())),
        );
        row(
            13,
            "app processes kept through the upgrades",
            r.upgrade.as_ref().map_or("-".into(), |(.., kept)| {
                if *kept { "yes" } else { "no" }.into()
            }),
        );
    }
    let width = rows.values().map(|(l, _)| l.len()).max().unwrap_or(0);
    let col = 22;
    println!(
        "\nSame Node app (agent/tests/apps/hello.js), wrk {} {}, {WRK_SECONDS} s per run, on this machine ({} CPUs)\n",
        WRK_ARGS[0],
        WRK_ARGS[1],
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print!("{:width$}", "");
    for (name, _) in columns {
        print!("  {name:>col$}");
    }
    println!();
    for (label, values) in rows.values() {
        print!("{label:width$}");
        for v in values {
            print!("  {v:>col$}");
        }
        println!();
    }
}
