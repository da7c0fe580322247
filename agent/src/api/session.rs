//! One connection, on either endpoint: read a request, check that this endpoint accepts it,
//! answer it, repeat until the peer hangs up. `logs` and `events` answer with a stream and end
//! the connection; `kill` and `reload_tls` reach beyond the supervisor, so they are handled here.
//!
//! A frame the session cannot read (too large, another protocol version, not JSON) is answered
//! with an error, then the connection is closed: after a refused length prefix the stream is
//! no longer at a frame boundary.
//!
//! Every request is checked against the session's [`Origin`] first (for a remote client, the
//! role of its certificate), and every answer to a remote client has its env values redacted.
//! Each frame written to a remote client has a deadline, so a client that stops reading — a
//! `logs --follow` or `events` stream it no longer drains — is dropped instead of holding its
//! connection slot forever.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::protocol::{ApiError, ErrorKind, FrameError, LogLine, Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Origin, TlsControl};
use crate::supervisor::Supervisor;
use crate::upgrade::Upgrader;
use pmfleet_shared::protocol::{ConnError, read_frame_within, write_frame};

/// The most lines `logs` sends from each file before it follows (a larger `lines` is
/// clamped): enough for a person, and a bound on what one request can make the agent read.
pub const MAX_LOG_LINES: usize = 10_000;

/// What a connection needs besides its stream.
#[derive(Clone)]
pub(crate) struct Session {
    pub sup: Supervisor,
    pub shutdown: CancellationToken,
    pub origin: Origin,
    /// How long the peer may take to send its next request; `None` waits as long as it likes
    /// (the local CLI).
    pub idle_timeout: Option<Duration>,
    /// How long writing one frame may take before the peer counts as gone; `None` waits as
    /// long as it takes (the local CLI).
    pub write_timeout: Option<Duration>,
    /// The largest request frame read, in bytes.
    pub max_request: u32,
    /// Bytes of request frames all the endpoint's connections may hold at once; `None`: no
    /// bound but `max_request` per connection.
    pub budget: Option<Arc<Semaphore>>,
    /// The mutual-TLS endpoint, for `reload_tls`; `None` when this daemon has none to manage.
    pub tls: Option<TlsControl>,
    /// What `upgrade` needs; `None` where it is not served (remote clients, tests).
    pub upgrader: Option<Upgrader>,
    /// Who an app command is recorded as ([`super::app_record`]); `None` records nothing.
    pub client: Option<Caller>,
}

/// Who is on the other end of a connection, as an app command it sends is recorded.
#[derive(Clone, Debug)]
pub(crate) enum Caller {
    /// A remote client, by its certificate's name.
    Certificate(String),
    /// A user on this host, on the control socket, by uid (its name is looked up only when
    /// a command is recorded).
    HostUser(u32),
}

impl Caller {
    /// `client:ci`, or `host user alice` (`host user uid 1000` when the name cannot be read).
    fn name(&self) -> String {
        match self {
            Caller::Certificate(name) => name.clone(),
            Caller::HostUser(uid) => {
                match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(*uid)) {
                    Ok(Some(user)) => format!("host user {}", user.name),
                    _ => format!("host user uid {uid}"),
                }
            }
        }
    }
}

impl Session {
    /// Write one answer, redacted for a remote client, within the write deadline.
    async fn send<W>(&self, stream: &mut W, resp: Response) -> Result<(), ConnError>
    where
        W: AsyncWrite + Unpin,
    {
        let resp = if self.origin.redacts() {
            resp.redacted()
        } else {
            resp
        };
        match self.write_timeout {
            Some(t) => tokio::time::timeout(t, write_frame(stream, &resp))
                .await
                .unwrap_or(Err(ConnError::WriteTimeout(t))),
            None => write_frame(stream, &resp).await,
        }
    }

    /// `upgrade`: say that the handover begins, then become the new binary (this connection
    /// ends with the old one), or say why not.
    async fn upgrade<S>(
        &self,
        stream: &mut S,
        binary: &Path,
        handover: u32,
    ) -> Result<(), ConnError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let refuse = |kind, message| Response::Error(ApiError { kind, message });
        let Some(upgrader) = &self.upgrader else {
            let message = "this endpoint cannot upgrade the agent".to_string();
            return self.send(stream, refuse(ErrorKind::Invalid, message)).await;
        };
        if let Err((kind, message)) = upgrader.check(binary, handover) {
            return self.send(stream, refuse(kind, message)).await;
        }
        let begins = format!(
            "handing the apps over to {} (pid {} stays)",
            binary.display(),
            std::process::id()
        );
        self.send(
            stream,
            Response::Done {
                messages: vec![begins],
            },
        )
        .await?;
        let error = upgrader.upgrade(&self.sup, binary).await;
        let message = format!(
            "the agent could not become {}: {error}; it carries on with its apps as before",
            binary.display()
        );
        self.send(stream, refuse(ErrorKind::Failed, message)).await
    }

    /// Serve requests on `stream` until the peer hangs up, stalls, or the agent shuts down.
    pub async fn serve<S>(&self, stream: &mut S) -> Result<(), ConnError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        loop {
            let next = async {
                let read =
                    read_frame_within::<Request>(stream, self.max_request, self.budget.as_deref());
                match self.idle_timeout {
                    Some(t) => tokio::time::timeout(t, read)
                        .await
                        .unwrap_or(Err(ConnError::Timeout)),
                    None => read.await,
                }
            };
            let req = tokio::select! {
                r = next => r,
                _ = self.shutdown.cancelled() => return Ok(()),
            };
            let req = match req {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(ConnError::Frame(e)) => {
                    let kind = match e {
                        FrameError::Version { .. } => ErrorKind::Version,
                        _ => ErrorKind::Invalid,
                    };
                    let answer = Response::Error(ApiError {
                        kind,
                        message: e.to_string(),
                    });
                    let _ = self.send(stream, answer).await;
                    return Err(ConnError::Frame(e));
                }
                Err(e) => return Err(e),
            };
            if let Err(refused) = self.origin.check(&req) {
                tracing::warn!(origin = ?self.origin, "refused: {}", refused.message);
                self.send(stream, Response::Error(refused)).await?;
                continue;
            }
            match req {
                Request::Kill => {
                    self.sup.shutdown(true).await;
                    let msg = "stopped every app; the agent exits".to_string();
                    self.send(
                        stream,
                        Response::Done {
                            messages: vec![msg],
                        },
                    )
                    .await?;
                    self.shutdown.cancel();
                    return Ok(());
                }
                Request::Logs { app, lines, follow } => {
                    let lines = lines.min(MAX_LOG_LINES);
                    return self.logs(stream, app.as_deref(), lines, follow).await;
                }
                Request::Events { app } => return self.events(stream, app).await,
                Request::ReloadTls => {
                    let answer = match &self.tls {
                        Some(tls) => match tls.reload().await {
                            Ok(messages) => Response::Done { messages },
                            Err(message) => Response::Error(ApiError {
                                kind: ErrorKind::Failed,
                                message,
                            }),
                        },
                        None => Response::Error(ApiError {
                            kind: ErrorKind::Invalid,
                            message: "this agent does not manage a mutual-TLS endpoint".into(),
                        }),
                    };
                    self.send(stream, answer).await?;
                }
                Request::Upgrade { binary, handover } => {
                    return self.upgrade(stream, &binary, handover).await;
                }
                req => {
                    let recorded = self.to_record(&req);
                    let resp = super::dispatch(&self.sup, req).await;
                    if let Some((command, roots)) = recorded {
                        self.record(&command, &roots, &resp);
                    }
                    self.send(stream, resp).await?;
                }
            }
        }
    }

    /// An app command from a client with a name (a certificate's, or the host user's), and
    /// the deploy roots its app runs from (read before it runs: a deleted app is gone after).
    fn to_record(&self, req: &Request) -> Option<(String, Vec<PathBuf>)> {
        if !self.origin.redacts() && self.client.is_none() {
            return None;
        }
        let (command, app) = super::app_record::command(req)?;
        let roots = super::app_record::roots_for(&self.sup, app.as_deref());
        (!roots.is_empty()).then_some((command, roots))
    }

    /// Appends the command and its answer to each root's audit file; what cannot be written
    /// is a warning in the agent's log, never a failed command.
    fn record(&self, command: &str, roots: &[PathBuf], resp: &Response) {
        let who = format!(
            "{} ({})",
            self.client
                .as_ref()
                .map_or_else(|| "unnamed certificate".to_string(), Caller::name),
            self.origin.role_name()
        );
        let line = super::app_record::entry(
            &super::app_record::record_id(),
            command,
            &who,
            &super::app_record::now_rfc3339(),
            resp,
        );
        for root in roots {
            if let Err(e) = super::app_record::append(root, &line) {
                tracing::warn!(root = %root.display(), "could not record `{command}`: {e}");
            }
        }
    }

    /// `logs`: the last lines of each file, then (with `follow`) new lines until the client
    /// hangs up or the agent shuts down.
    async fn logs<S>(
        &self,
        stream: &mut S,
        app: Option<&str>,
        lines: usize,
        follow: bool,
    ) -> Result<(), ConnError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let files = match self.sup.log_files(app) {
            Ok(f) => f,
            Err(e) => {
                let err = ApiError {
                    kind: e.kind(),
                    message: e.report(),
                };
                return self.send(stream, Response::Error(err)).await;
            }
        };
        for (app, path) in &files {
            for line in crate::logs::tail(path, lines).unwrap_or_default() {
                self.send(stream, Response::Log(log_line(app, path, line)))
                    .await?;
            }
        }
        if !follow {
            return self.send(stream, Response::End).await;
        }
        let cancel = self.shutdown.child_token();
        let _stop_followers = cancel.clone().drop_guard();
        let (tx, mut rx) = mpsc::channel::<LogLine>(1024);
        for (app, path) in files {
            let (tx, cancel) = (tx.clone(), cancel.clone());
            tokio::spawn(async move {
                let follow_cancel = cancel.clone();
                let _ = crate::logs::follow(&path, follow_cancel, |line| {
                    // A client too slow to keep up loses lines rather than stalling the agent.
                    let _ = tx.try_send(log_line(&app, &path, line.to_string()));
                })
                .await;
            });
        }
        drop(tx);
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut probe = [0u8; 1];
        loop {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(l) => self.send(&mut wr, Response::Log(l)).await?,
                    None => return self.send(&mut wr, Response::End).await,
                },
                // The client never sends more: a read returning means it hung up.
                _ = rd.read(&mut probe) => return Ok(()),
                _ = cancel.cancelled() => return self.send(&mut wr, Response::End).await,
            }
        }
    }
}

impl Session {
    /// `events`: `done` once subscribed (every event after it is delivered), then each event
    /// as it happens until the client hangs up, or `end` when the agent shuts down. A client
    /// that does not read fast enough is told how many events it missed; the supervisor never
    /// waits for it.
    async fn events<S>(&self, stream: &mut S, app: Option<String>) -> Result<(), ConnError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let watching = match &app {
            Some(a) => format!("watching the events of `{a}`"),
            None => "watching the events of every app".to_string(),
        };
        let mut events = self.sup.subscribe(app);
        self.send(
            stream,
            Response::Done {
                messages: vec![watching],
            },
        )
        .await?;
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut probe = [0u8; 1];
        loop {
            let frame = tokio::select! {
                ev = events.next() => match ev {
                    Some(ev) => Response::Event(ev),
                    None => return self.send(&mut wr, Response::End).await,
                },
                // The client never sends more: a read returning means it hung up.
                _ = rd.read(&mut probe) => return Ok(()),
                _ = self.shutdown.cancelled() => return self.send(&mut wr, Response::End).await,
            };
            // A client that stopped reading must not keep a shutting-down agent waiting.
            tokio::select! {
                sent = self.send(&mut wr, frame) => sent?,
                _ = self.shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

fn log_line(app: &str, path: &Path, line: String) -> LogLine {
    let file = PathBuf::from(path.file_name().unwrap_or_default())
        .display()
        .to_string();
    LogLine {
        app: app.to_string(),
        file,
        line,
    }
}
