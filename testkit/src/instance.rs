//! An app instance started by hand the way the agent starts one: on an inherited listening
//! socket (fd 3, `LISTEN_FDS`), with a readiness pipe (`PMFLEET_READY_FD`), optionally with the
//! Node preload, in a process group of its own that is killed when the test ends. The preload
//! and sample-app tests drive these directly, without a daemon.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::assets::{agent_app, node_preload};
use crate::wait::poll_until;

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
    /// A sample app under `agent/tests/apps/` run by `node` with the preload, on `listener`.
    pub fn node(script: &str, listener: &'a TcpListener) -> Launch<'a> {
        Launch {
            program: "node",
            args: vec![agent_app(script).display().to_string()],
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
    /// Output streams (stdout, stderr) read to their end.
    closed: Arc<AtomicUsize>,
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
        cmd.env(
            "NODE_OPTIONS",
            format!("--require {}", node_preload().display()),
        );
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
    let closed = Arc::new(AtomicUsize::new(0));
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
        let (out, closed) = (output.clone(), closed.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let mut o = out.lock().unwrap_or_else(PoisonError::into_inner);
                o.push_str(&line);
                o.push('\n');
            }
            closed.fetch_add(1, Ordering::SeqCst);
        });
    }
    Instance {
        child,
        lines,
        output,
        closed,
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
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until stdout and stderr were read to their end (the instance and every process
    /// that inherited them are gone), so [`Instance::output`] holds all it wrote.
    pub fn wait_output_closed(&self, timeout: Duration) {
        if let Err(e) = poll_until(timeout, "the instance's output to close", || {
            self.closed.load(Ordering::SeqCst) == 2
        }) {
            panic!("{e}: {}", self.output());
        }
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

/// A listening socket on a free loopback port, like the one the agent binds for an app.
pub fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind")
}
