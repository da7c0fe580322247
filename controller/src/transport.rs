//! Where a host's commands run: over SSH, or on this machine for a host named `localhost`
//! (as PM2 does). Both take the same rendered command line and report output the same way.

use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::shell::Script;
use crate::ssh::{Connection, SshError, Stream};

/// Input streamed into a command's stdin.
pub type Stdin = Box<dyn AsyncRead + Send + Unpin>;

/// Bytes shared by every host's upload (an archive, the agent binary), read as stdin.
pub struct SharedBytes(pub std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl SharedBytes {
    pub fn stdin(bytes: &std::sync::Arc<Vec<u8>>) -> Stdin {
        Box::new(std::io::Cursor::new(SharedBytes(bytes.clone())))
    }
}

/// A connected host.
pub enum HostConn {
    /// `localhost`: commands run through `sh -c` on the controller itself.
    Local,
    Ssh(Connection),
}

/// Why a command could not be run at all (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("could not run a local command: {0}")]
    Local(#[from] std::io::Error),
}

/// A finished command's exit status and output.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// The most useful one-line explanation of a failure: the last line of stderr, else stdout.
    pub fn reason(&self) -> String {
        let last = |s: &str| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        };
        last(&self.stderr)
            .or_else(|| last(&self.stdout))
            .unwrap_or_else(|| format!("exit status {}", self.status))
    }
}

impl HostConn {
    /// Runs `command`, feeding `stdin`, calling `sink` with output as it arrives.
    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<Stdin>,
        sink: &mut (dyn FnMut(Stream, &[u8]) + Send),
    ) -> Result<i32, TransportError> {
        match self {
            HostConn::Ssh(conn) => Ok(conn.exec(command, stdin, sink).await?),
            HostConn::Local => Ok(exec_local(command, stdin, sink).await?),
        }
    }

    /// Runs a script and collects its output.
    pub async fn run(&self, script: &Script) -> Result<Captured, TransportError> {
        self.run_with_stdin(script, None).await
    }

    /// Runs a script with `stdin` and collects its output.
    pub async fn run_with_stdin(
        &self,
        script: &Script,
        stdin: Option<Stdin>,
    ) -> Result<Captured, TransportError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let status = self
            .exec(&script.render(), stdin, &mut |stream, data| match stream {
                Stream::Stdout => stdout.extend_from_slice(data),
                Stream::Stderr => stderr.extend_from_slice(data),
            })
            .await?;
        Ok(Captured {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Runs a script with `stdin`, handing every complete output line to `on_line` as it
    /// arrives; the last few lines are kept for the error message.
    pub async fn run_lines(
        &self,
        script: &Script,
        stdin: Option<Stdin>,
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> Result<Captured, TransportError> {
        let mut pending = [Vec::new(), Vec::new()];
        let mut tail: Vec<String> = Vec::new();
        let status = {
            let mut sink = |stream: Stream, data: &[u8]| {
                let buf = match stream {
                    Stream::Stdout => &mut pending[0],
                    Stream::Stderr => &mut pending[1],
                };
                buf.extend_from_slice(data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                    on_line(stream, &text);
                    keep_tail(&mut tail, text);
                }
            };
            self.exec(&script.render(), stdin, &mut sink).await?
        };
        for (buf, stream) in pending.iter().zip([Stream::Stdout, Stream::Stderr]) {
            if !buf.is_empty() {
                let text = String::from_utf8_lossy(buf).into_owned();
                on_line(stream, &text);
                keep_tail(&mut tail, text);
            }
        }
        Ok(Captured {
            status,
            stdout: String::new(),
            stderr: tail.join("\n"),
        })
    }
}

fn keep_tail(tail: &mut Vec<String>, line: String) {
    if tail.len() == 5 {
        tail.remove(0);
    }
    tail.push(line);
}

async fn exec_local(
    command: &str,
    stdin: Option<Stdin>,
    sink: &mut (dyn FnMut(Stream, &[u8]) + Send),
) -> std::io::Result<i32> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let feeder = match (stdin, child.stdin.take()) {
        (Some(mut input), Some(mut pipe)) => Some(tokio::spawn(async move {
            // A command that exits before reading all its input is reported by its status.
            let _ = tokio::io::copy(&mut input, &mut pipe).await;
        })),
        _ => None,
    };
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let mut out_buf = vec![0u8; 16 * 1024];
    let mut err_buf = vec![0u8; 16 * 1024];
    while out.is_some() || err.is_some() {
        tokio::select! {
            n = read_some(&mut out, &mut out_buf), if out.is_some() => match n? {
                0 => out = None,
                n => sink(Stream::Stdout, &out_buf[..n]),
            },
            n = read_some(&mut err, &mut err_buf), if err.is_some() => match n? {
                0 => err = None,
                n => sink(Stream::Stderr, &err_buf[..n]),
            },
        }
    }
    let status = child.wait().await?;
    if let Some(feeder) = feeder {
        feeder.abort();
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match reader {
        Some(r) => r.read(buf).await,
        None => Ok(0),
    }
}
