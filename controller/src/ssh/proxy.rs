//! `ProxyCommand`: SSH over the stdin and stdout of a local command (`aws ssm start-session`,
//! `cloudflared access ssh`, `gcloud compute start-iap-tunnel`, `nc`), as OpenSSH runs it —
//! `exec` through `/bin/sh -c`, its tokens already expanded and quoted
//! ([`super::config`]). The command runs in a process group of its own, ended with the
//! connection; what it writes on stderr is kept (its last 2 KiB) to say why, when it ends
//! before SSH could run over it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::error::SshError;

/// How much of the command's stderr is kept.
const STDERR_KEPT: usize = 2048;

/// The command's stdout (what SSH reads) and stdin (what SSH writes), and the command.
pub(super) struct ProxyStream {
    stdout: ChildStdout,
    stdin: ChildStdin,
    child: Child,
}

/// The last lines the command wrote on stderr, and the task reading them.
pub(super) struct Said {
    kept: Arc<Mutex<Vec<u8>>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Said {
    /// What it said, on one line (empty when nothing), once it closed its stderr (it ended)
    /// or a second passed.
    pub(super) async fn finish(mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), reader).await;
        }
        let bytes = self.kept.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Starts `command` for `destination`.
pub(super) fn spawn(command: &str, destination: &str) -> Result<(ProxyStream, Said), SshError> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SshError::Proxy {
            destination: destination.to_string(),
            command: command.to_string(),
            message: format!("cannot start it: {e}"),
        })?;
    let missing = || SshError::Proxy {
        destination: destination.to_string(),
        command: command.to_string(),
        message: "its pipes could not be set up".into(),
    };
    let stdout = child.stdout.take().ok_or_else(missing)?;
    let stdin = child.stdin.take().ok_or_else(missing)?;
    let kept = Arc::new(Mutex::new(Vec::new()));
    let reader = child.stderr.take().map(|mut stderr| {
        let kept = kept.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut kept) = kept.lock() {
                    kept.extend_from_slice(buf.get(..n).unwrap_or_default());
                    let over = kept.len().saturating_sub(STDERR_KEPT);
                    kept.drain(..over);
                }
            }
        })
    });
    let said = Said { kept, reader };
    Ok((
        ProxyStream {
            stdout,
            stdin,
            child,
        },
        said,
    ))
}

impl Drop for ProxyStream {
    fn drop(&mut self) {
        // The whole group: a command that started helpers of its own ends with them.
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}
