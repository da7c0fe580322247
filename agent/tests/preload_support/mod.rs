//! What the preload and sample-app tests share: starting an app on an inherited listening
//! socket with a readiness pipe, and a keep-alive HTTP load that counts every failed request.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The preload file the agent injects with `NODE_OPTIONS=--require`.
pub fn preload() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("preload/cluster.js")
}

/// A sample app under `agent/tests/apps/`.
pub fn app(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps")
        .join(name)
}

/// How to start one instance.
pub struct Launch<'a> {
    pub program: &'a str,
    pub args: Vec<String>,
    pub env: Vec<(&'a str, String)>,
    /// Passed as fd 3 with `LISTEN_FDS=1`.
    pub listener: Option<&'a TcpListener>,
    /// Set `LISTEN_PID` to the app's own pid (through a `sh` shim that execs the app).
    pub listen_pid: bool,
    /// Load the Node preload.
    pub preload: bool,
}

impl<'a> Launch<'a> {
    pub fn node(script: &str, listener: &'a TcpListener) -> Launch<'a> {
        Launch {
            program: "node",
            args: vec![app(script).display().to_string()],
            env: vec![(
                "PORT",
                listener.local_addr().expect("addr").port().to_string(),
            )],
            listener: Some(listener),
            listen_pid: false,
            preload: true,
        }
    }

    pub fn env(mut self, key: &'a str, value: impl Into<String>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    pub fn listen_pid(mut self) -> Self {
        self.listen_pid = true;
        self
    }
}

/// A running instance; killed with its process group when dropped.
pub struct Instance {
    pub child: Child,
    lines: Receiver<String>,
    pub output: Arc<Mutex<String>>,
    started: Instant,
}

/// The fd the readiness pipe is passed on.
pub const READY_FD: RawFd = 4;

pub fn start(launch: Launch<'_>) -> Instance {
    let (ready_read, ready_write) = pipe();
    let mut cmd = if launch.listen_pid {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
            .arg(launch.program);
        c
    } else {
        Command::new(launch.program)
    };
    cmd.args(&launch.args)
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("NODE_OPTIONS")
        .env("PMFLEET_READY_FD", READY_FD.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if launch.preload {
        cmd.env("NODE_OPTIONS", format!("--require {}", preload().display()));
    }
    if launch.listener.is_some() {
        cmd.env("LISTEN_FDS", "1");
    }
    for (k, v) in &launch.env {
        cmd.env(k, v);
    }
    let listen_fd = launch.listener.map(|l| l.as_raw_fd());
    let ready_fd = ready_write.as_raw_fd();
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Move the sources out of the way first, so that placing one cannot clobber the
            // other; the copies are close-on-exec, dup2's targets are not.
            let high = |fd: RawFd| -> io::Result<RawFd> {
                let r = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                if r < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(r)
                }
            };
            let ready = high(ready_fd)?;
            let listen = match listen_fd {
                Some(fd) => Some(high(fd)?),
                None => None,
            };
            if let Some(fd) = listen
                && libc::dup2(fd, 3) < 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::dup2(ready, READY_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn app");
    drop(ready_write);

    let (tx, lines) = channel();
    let ready_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(File::from(ready_read)).lines() {
            let Ok(line) = line else { break };
            if ready_tx.send(line).is_err() {
                break;
            }
        }
    });
    let output = Arc::new(Mutex::new(String::new()));
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let mut o = out.lock().expect("lock");
                o.push_str(&line);
                o.push('\n');
            }
        });
    }
    Instance {
        child,
        lines,
        output,
        started: Instant::now(),
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills in two new descriptors, owned from here on.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Instance {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for `READY=1` on the readiness pipe; returns the time since the start.
    pub fn wait_ready(&self, timeout: Duration) -> Option<Duration> {
        self.wait_line("READY=1", timeout)
    }

    /// Waits for `line` on the readiness pipe; returns the time since the start.
    pub fn wait_line(&self, line: &str, timeout: Duration) -> Option<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(l) if l == line => return Some(self.started.elapsed()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill only sends a signal.
        unsafe { libc::kill(self.pid() as i32, sig) };
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().expect("lock").clone()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill only sends a signal, to the group this test created.
            unsafe { libc::kill(-(self.pid() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// Describes an exit for assertion messages.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "unknown".into(),
    }
}

/// What a load run saw.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub ok: u64,
    pub failures: u64,
    /// The first failures, with their reasons.
    pub errors: Vec<String>,
    /// Successful responses by the pid that sent them.
    pub by_pid: HashMap<u32, u64>,
    /// Connections opened.
    pub connects: u64,
}

/// Keep-alive HTTP/1.1 clients hammering `addr` until stopped. A connection is reused until
/// the server answers with `Connection: close`; every I/O error, early close or non-200
/// status is a failed request.
pub struct Load {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<Stats>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// `clients` connections; every `slow_every`-th request is `/slow?ms=100` (0: never).
    pub fn start(addr: SocketAddr, clients: usize, slow_every: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, stats) = (stop.clone(), stats.clone());
                std::thread::spawn(move || client(addr, slow_every, &stop, &stats))
            })
            .collect();
        Load {
            stop,
            stats,
            threads,
        }
    }

    pub fn snapshot(&self) -> Stats {
        self.stats.lock().expect("lock").clone()
    }

    pub fn finish(self) -> Stats {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        self.stats.lock().expect("lock").clone()
    }
}

fn client(addr: SocketAddr, slow_every: u64, stop: &AtomicBool, stats: &Mutex<Stats>) {
    let mut conn: Option<TcpStream> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let path = if slow_every > 0 && n.is_multiple_of(slow_every) {
            "/slow?ms=100"
        } else {
            "/"
        };
        let result = (|| -> io::Result<(u16, bool, String)> {
            if conn.is_none() {
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.set_write_timeout(Some(Duration::from_secs(5)))?;
                s.set_nodelay(true)?;
                stats.lock().expect("lock").connects += 1;
                conn = Some(s);
            }
            let s = conn
                .as_mut()
                .ok_or_else(|| io::Error::other("no connection"))?;
            get(s, path)
        })();
        let mut st = stats.lock().expect("lock");
        match result {
            Ok((200, close, body)) => {
                st.ok += 1;
                if let Some(pid) = pid_of(&body) {
                    *st.by_pid.entry(pid).or_default() += 1;
                }
                if close {
                    conn = None;
                }
            }
            Ok((status, _, body)) => {
                st.failures += 1;
                if st.errors.len() < 20 {
                    st.errors.push(format!("status {status}: {body:?}"));
                }
                conn = None;
            }
            Err(e) => {
                st.failures += 1;
                if st.errors.len() < 20 {
                    st.errors.push(format!("{path}: {e}"));
                }
                conn = None;
            }
        }
    }
}

/// "hello from 1234 instance -" → 1234
fn pid_of(body: &str) -> Option<u32> {
    body.split_whitespace().find_map(|w| w.parse().ok())
}

/// One GET on a keep-alive connection: (status, server closes, body).
pub fn get(s: &mut TcpStream, path: &str) -> io::Result<(u16, bool, String)> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())?;
    let mut buf = Vec::with_capacity(512);
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed after {} bytes of response", buf.len()),
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
    let mut length = 0usize;
    let mut close = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        if k == "content-length" {
            length = v.parse().map_err(io::Error::other)?;
        } else if k == "connection" && v == "close" {
            close = true;
        }
    }
    let body_start = head_end + 4;
    while buf.len() < body_start + length {
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed in the middle of the body",
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let body = String::from_utf8_lossy(&buf[body_start..body_start + length]).to_string();
    Ok((status, close, body))
}

/// A listening socket on a free loopback port, like the one the agent binds for an app.
pub fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind")
}
