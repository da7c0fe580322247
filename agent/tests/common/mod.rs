//! What every agent integration test shares: an agent home of its own whose daemon is
//! killed when the test ends (pass or fail), free ports, an HTTP client and a load generator.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One agent home and its daemon. Dropping it runs `pmfleet-agent kill`.
pub struct Agent {
    pub home: tempfile::TempDir,
    /// A scratch directory for the test's apps and files.
    pub work: tempfile::TempDir,
}

impl Agent {
    pub fn new() -> Agent {
        Agent {
            home: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
        }
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pmfleet-agent"));
        c.env("PMFLEET_AGENT_HOME", self.home.path())
            .current_dir(self.work.path());
        c
    }

    /// Run a verb; returns the output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Run a verb that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`pmfleet-agent {}` failed: {}\n{}\n--- agent log ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.daemon_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run a verb that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "`pmfleet-agent {}` should have failed",
            args.join(" ")
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn list(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.ok(&["list", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The instances of `app` in `list --json`.
    pub fn procs(&self, app: &str) -> Vec<Value> {
        self.list()
            .into_iter()
            .filter(|p| p["name"] == app)
            .collect()
    }

    pub fn pids(&self, app: &str) -> Vec<u32> {
        self.procs(app)
            .iter()
            .filter_map(|p| p["pid"].as_u64())
            .map(|p| p as u32)
            .collect()
    }

    /// Wait until every one of `n` instances of `app` is online.
    pub fn wait_online(&self, app: &str, n: usize) {
        wait_until(
            Duration::from_secs(20),
            &format!("{n} instance(s) of {app} online"),
            || {
                let p = self.procs(app);
                p.len() == n && p.iter().all(|p| p["status"] == "online")
            },
        );
    }

    /// The running daemon's pid, from `agent.pid`.
    pub fn daemon_pid(&self) -> u32 {
        std::fs::read_to_string(self.home.path().join("agent.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("agent.log")).unwrap_or_default()
    }

    /// Copy a fixture into the work directory (a per-test path, so its processes can be
    /// told from every other test's).
    pub fn fixture(&self, name: &str) -> PathBuf {
        let to = self.work.path().join(name);
        std::fs::copy(fixtures().join(name), &to).unwrap();
        to
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let to = self.work.path().join(name);
        std::fs::write(&to, text).unwrap();
        to
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.run(&["kill"]);
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn pid_alive(pid: u32) -> bool {
    // A zombie is dead for our purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        })
        .unwrap_or(false)
}

/// Every live process whose command line mentions `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(needle) && pid_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// One HTTP/1.1 GET on a new connection; the body.
pub fn get(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    if !buf.starts_with("HTTP/1.1 200") {
        return Err(format!("bad response: {buf:?}"));
    }
    Ok(buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

/// The pids that answered `n` requests on new connections.
pub fn answering_pids(port: u16, n: usize) -> std::collections::BTreeSet<String> {
    (0..n)
        .filter_map(|_| get(port).ok())
        .filter_map(|b| b.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The outcome of a load run.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub ok: u64,
    /// Requests retried because a reused keep-alive connection was closed before any byte.
    pub retried: u64,
    pub failed: u64,
    pub errors: Vec<String>,
}

/// An HTTP/1.1 load client: `workers` threads, half on keep-alive connections (up to 50
/// requests each), half opening a new connection per request, until `stop` is set, `max`
/// requests were made, or `deadline` passed.
///
/// Like every HTTP client (RFC 9112 §9.3.1), a GET sent on a *reused* keep-alive connection
/// that the server closed before sending a single byte of response is retried once on a new
/// connection: that is a connection that was already finished, not a failed request. Any
/// other error — a refused or reset new connection, a partial or non-200 response — counts.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

impl Load {
    pub fn start(port: u16, workers: usize, max: u64, deadline: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let end = Instant::now() + deadline;
        let threads = (0..workers)
            .map(|w| {
                let (stop, ok) = (stop.clone(), ok.clone());
                let keep_alive = w % 2 == 0;
                std::thread::spawn(move || {
                    let mut failed = 0;
                    let mut errors = Vec::new();
                    let mut conn: Option<(TcpStream, u32)> = None;
                    while !stop.load(Ordering::Relaxed)
                        && Instant::now() < end
                        && ok.load(Ordering::Relaxed) < max
                    {
                        match one_request(port, keep_alive, &mut conn) {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed += 1;
                                if errors.len() < 10 {
                                    errors.push(e);
                                }
                                conn = None;
                            }
                        }
                    }
                    (failed, errors)
                })
            })
            .collect();
        Load { stop, ok, threads }
    }

    pub fn ok_so_far(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    pub fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut r = LoadReport {
            ok: self.ok.load(Ordering::Relaxed),
            ..Default::default()
        };
        for t in self.threads {
            let (f, e) = t.join().unwrap();
            r.failed += f;
            r.errors.extend(e);
        }
        r
    }
}

static RETRIED: AtomicU64 = AtomicU64::new(0);

fn one_request(
    port: u16,
    keep_alive: bool,
    conn: &mut Option<(TcpStream, u32)>,
) -> Result<(), String> {
    let reused = conn.is_some();
    if !reused {
        let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        *conn = Some((s, 0));
    }
    let Some((stream, count)) = conn.as_mut() else {
        unreachable!()
    };
    let req: &[u8] = if keep_alive {
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    };
    match exchange(stream, req) {
        Ok(close) => {
            *count += 1;
            if close || !keep_alive || *count >= 50 {
                *conn = None;
            }
            Ok(())
        }
        Err((0, e)) if reused => {
            // Closed by the server before any response byte: retry on a new connection.
            *conn = None;
            let _ = e;
            RETRIED.fetch_add(1, Ordering::Relaxed);
            one_request(port, keep_alive, conn)
        }
        Err((n, e)) => {
            *conn = None;
            Err(format!("{e} (after {n} response bytes, reused={reused})"))
        }
    }
}

/// Send `req`, read one full response. Ok(close) says the server asked to close.
fn exchange(s: &mut TcpStream, req: &[u8]) -> Result<bool, (usize, String)> {
    s.write_all(req).map_err(|e| (0, format!("write: {e}")))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err((
                    buf.len(),
                    format!("status: {}", head.lines().next().unwrap_or("")),
                ));
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or((buf.len(), "no content-length".to_string()))?;
            let close = head
                .lines()
                .any(|l| l.starts_with("connection:") && l.contains("close"));
            while buf.len() < end + 4 + len {
                let n = s
                    .read(&mut chunk)
                    .map_err(|e| (buf.len(), format!("read body: {e}")))?;
                if n == 0 {
                    return Err((buf.len(), "eof in body".into()));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(close);
        }
        let n = s
            .read(&mut chunk)
            .map_err(|e| (buf.len(), format!("read: {e}")))?;
        if n == 0 {
            return Err((buf.len(), "eof before response".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
