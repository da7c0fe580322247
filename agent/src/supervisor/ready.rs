//! Waiting for readiness: when a freshly spawned instance may take traffic, so a reload can
//! stop the old one. Which signals apply is decided in [`super::readiness`]; this is the
//! waiting. The signals, each optional: the app says so (`wait_ready`: sd_notify `READY=1` on its
//! own `NOTIFY_SOCKET`, or `process.send('ready')` through the Node preload), the Node preload
//! reports that `listen()` happened, a probe passes (`healthcheck`). With no signal at all,
//! the instance must still be alive after `listen_timeout`.
//!
//! A probe is aimed at the instance alone ([`super::readiness`] decides where); when it
//! never passes, the wait ends in [`NotReady::Timeout`] with what the last attempt said.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pmfleet_shared::protocol::HealthCheck;
use tokio::io::AsyncBufReadExt;
use tokio::io::BufReader;
use tokio::net::{UnixDatagram, UnixListener};

use super::probe::{self, Aim};

/// How one spawn proves it is ready: first `READY=1` (when `notify` is set), then a passing
/// probe (when `probe` is set); with neither, being alive after the whole timeout.
#[derive(Debug, Default)]
pub struct Readiness {
    pub notify: Option<NotifySocket>,
    /// `READY=1` on `notify` is only offered: it proves readiness when it comes, and its
    /// absence is no failure (the instance is then ready when alive after the timeout).
    pub notify_offered: bool,
    /// The health check, and where it reaches this instance alone.
    pub probe: Option<(Aim, HealthCheck)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotReady {
    #[error("exited before becoming ready ({0})")]
    Exited(String),
    #[error("not ready within {after:?}{}", last.as_deref().map(|l| format!(" (last probe: {l})")).unwrap_or_default())]
    Timeout {
        after: Duration,
        /// What the last attempt of the health check said.
        last: Option<String>,
    },
    #[error("was ready but exited within its {window:?} stability window (min_uptime) ({status})")]
    Died { status: String, window: Duration },
    #[error("answers no {probe} probe on port {port} now that it alone serves ({last})")]
    AppProbe {
        probe: String,
        port: u16,
        last: String,
    },
}

/// The two readiness channels of one spawn, removed from the file system when dropped:
/// a datagram `NOTIFY_SOCKET` (sd_notify, for any language that has Unix datagrams) and a
/// stream `PMFLEET_READY_SOCKET` (for Node, which has none; the preload writes to it).
#[derive(Debug)]
pub struct NotifySocket {
    datagram: UnixDatagram,
    stream: UnixListener,
    datagram_path: PathBuf,
    stream_path: PathBuf,
}

impl NotifySocket {
    /// Bind both, as `<base>.dgram` and `<base>.stream`.
    pub fn bind(base: &Path) -> std::io::Result<NotifySocket> {
        let datagram_path = base.with_extension("dgram");
        let stream_path = base.with_extension("stream");
        let _ = std::fs::remove_file(&datagram_path);
        let _ = std::fs::remove_file(&stream_path);
        let datagram = UnixDatagram::bind(&datagram_path)?;
        let stream = UnixListener::bind(&stream_path)?;
        Ok(NotifySocket {
            datagram,
            stream,
            datagram_path,
            stream_path,
        })
    }

    /// `NOTIFY_SOCKET`.
    pub fn datagram_path(&self) -> &Path {
        &self.datagram_path
    }

    /// `PMFLEET_READY_SOCKET`.
    pub fn stream_path(&self) -> &Path {
        &self.stream_path
    }

    /// Wait for a `READY=1` line on either channel (sd_notify messages are newline-separated
    /// assignments; others such as `STATUS=` are ignored).
    async fn ready(&self) {
        let datagram = async {
            let mut buf = vec![0u8; 4096];
            loop {
                match self.datagram.recv(&mut buf).await {
                    Ok(n) => {
                        let msg = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                        if msg.lines().any(|l| l.trim() == "READY=1") {
                            return;
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        };
        let stream = async {
            loop {
                let Ok((conn, _)) = self.stream.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let mut lines = BufReader::new(conn).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.trim() == "READY=1" {
                        return;
                    }
                }
            }
        };
        tokio::select! {
            _ = datagram => {}
            _ = stream => {}
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.datagram_path);
        let _ = std::fs::remove_file(&self.stream_path);
    }
}

/// Wait until `child` is ready per `how`, it exits, or `timeout` passes.
pub(crate) async fn wait_ready(
    how: &Readiness,
    child: &mut super::child::ChildProcess,
    timeout: Duration,
) -> Result<Proof, NotReady> {
    let required = how.notify.as_ref().filter(|_| !how.notify_offered);
    let offered = how.notify.as_ref().filter(|_| how.notify_offered);
    let signalled = required.is_some() || how.probe.is_some();
    let last = std::sync::Mutex::new(None::<String>);
    let signal = async {
        if let Some(n) = required {
            n.ready().await;
        }
        if let Some((aim, check)) = &how.probe {
            loop {
                match probe::attempt(aim, check).await {
                    Ok(()) => break,
                    Err(why) => *super::app::lock(&last) = Some(why),
                }
                tokio::time::sleep(Duration::from_millis(check.interval_ms.max(10))).await;
            }
        }
        if !signalled {
            // Nothing is required: an offered READY=1 ends the wait early, as proof.
            match offered {
                Some(n) => n.ready().await,
                None => std::future::pending::<()>().await,
            }
        }
    };
    tokio::select! {
        _ = signal => Ok(Proof::Own),
        status = child.wait() => Err(NotReady::Exited(match status {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        })),
        _ = tokio::time::sleep(timeout) => {
            if signalled {
                Err(NotReady::Timeout { after: timeout, last: super::app::lock(&last).take() })
            } else {
                Ok(Proof::AliveAfterTimeout)
            }
        }
    }
}

/// How a new instance showed it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// By itself: its own READY, or a probe only it answers.
    Own,
    /// It gave no signal of its own; it was alive after `listen_timeout`.
    AliveAfterTimeout,
}

/// Wait until `child` has been up `window` since `started`: a process that exits before is
/// not ready, whatever it signalled.
pub(crate) async fn stays_up(
    child: &mut super::child::ChildProcess,
    started: std::time::Instant,
    window: Duration,
) -> Result<(), NotReady> {
    let left = window.saturating_sub(started.elapsed());
    tokio::select! {
        status = child.wait() => Err(NotReady::Died {
            status: match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            },
            window,
        }),
        _ = tokio::time::sleep(left) => Ok(()),
    }
}

/// Attempt `check` at `aim` until it passes or `timeout` runs out; what the last attempt
/// said when it never passed.
pub async fn probe_until(aim: &Aim, check: &HealthCheck, timeout: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let why = match probe::attempt(aim, check).await {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        let pause = Duration::from_millis(check.interval_ms.max(10));
        if tokio::time::Instant::now() + pause >= deadline {
            return Err(why);
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notify_socket_sees_ready_among_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let sock = NotifySocket::bind(&dir.path().join("n")).unwrap();
        let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
        client
            .send_to(b"STATUS=warming up", sock.datagram_path())
            .unwrap();
        client
            .send_to(b"MAINPID=1\nREADY=1\n", sock.datagram_path())
            .unwrap();
        tokio::time::timeout(Duration::from_secs(2), sock.ready())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn ready_line_on_the_stream_socket_counts_too() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let sock = NotifySocket::bind(&dir.path().join("n")).unwrap();
        let mut client = std::os::unix::net::UnixStream::connect(sock.stream_path()).unwrap();
        client.write_all(b"STATUS=x\nREADY=1\n").unwrap();
        tokio::time::timeout(Duration::from_secs(2), sock.ready())
            .await
            .unwrap();
    }
}
