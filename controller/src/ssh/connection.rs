//! An established connection: commands run on it over capped session channels (OpenSSH
//! refuses more than `MaxSessions`, 10 by default, per connection), with output streamed as
//! it arrives.

use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::{ChannelMsg, Disconnect, Sig};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use super::error::SshError;
use super::handler::ClientHandler;

/// Retries of a refused session channel open (about 1.6 s in all).
const CHANNEL_OPEN_RETRIES: u32 = 8;

/// Which output stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// An authenticated connection to one host. Cheap to clone; clones share the connection and its
/// channel cap, so steps can run commands concurrently.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<ConnectionInner>,
}

struct ConnectionInner {
    handle: Handle<ClientHandler>,
    /// The jump hosts' connections, kept open as long as this one.
    _jumps: Vec<Handle<ClientHandler>>,
    /// Open session channels; OpenSSH refuses more than `MaxSessions`.
    channels: Semaphore,
    host_name: String,
    destination: String,
    command_timeout: Option<Duration>,
}

impl Connection {
    /// An authenticated connection (`jumps`: the jump hosts' handles, kept open as long as it
    /// is), with at most `channels` session channels open at once.
    pub(super) fn new(
        handle: Handle<ClientHandler>,
        jumps: Vec<Handle<ClientHandler>>,
        channels: usize,
        host_name: String,
        destination: String,
        command_timeout: Option<Duration>,
    ) -> Connection {
        Connection {
            inner: Arc::new(ConnectionInner {
                handle,
                _jumps: jumps,
                channels: Semaphore::new(channels.max(1)),
                host_name,
                destination,
                command_timeout,
            }),
        }
    }

    /// Runs `command` (passed verbatim to the remote shell) with optional stdin streamed in,
    /// calling `sink` with every chunk of output as it arrives; returns the exit status
    /// (128+signal when killed by a signal).
    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
        sink: &mut (dyn FnMut(Stream, &[u8]) + Send),
    ) -> Result<i32, SshError> {
        let destination = &self.inner.destination;
        let _permit = self
            .inner
            .channels
            .acquire()
            .await
            .map_err(|_| self.lost("the connection was closed"))?;
        let channel = self.open_session().await?;
        let (mut reader, writer) = channel.split();

        let run = async {
            writer
                .exec(true, command)
                .await
                .map_err(|error| self.lost(&error.to_string()))?;

            // Stdin is written while output is read: a command that answers as it reads would
            // otherwise stall once the windows fill up.
            let mut input = writer.make_writer();
            let feed = async {
                if let Some(mut stdin) = stdin {
                    tokio::io::copy(&mut stdin, &mut input)
                        .await
                        .map_err(|source| SshError::Stdin {
                            destination: destination.clone(),
                            source,
                        })?;
                }
                // Shutting the writer down sends EOF.
                input
                    .shutdown()
                    .await
                    .map_err(|error| self.lost(&error.to_string()))
            };
            tokio::pin!(feed);
            let mut feeding = true;
            let mut status: Option<i32> = None;
            loop {
                tokio::select! {
                    fed = &mut feed, if feeding => {
                        feeding = false;
                        match fed {
                            Ok(()) => {}
                            Err(error @ SshError::Stdin { .. }) => return Err(error),
                            // The command may exit without reading all of its input; its
                            // status tells what happened.
                            Err(error) => {
                                tracing::debug!(%destination, "stdin not fully written: {error}");
                            }
                        }
                    }
                    message = reader.wait() => match message {
                        Some(ChannelMsg::Data { data }) => sink(Stream::Stdout, &data),
                        Some(ChannelMsg::ExtendedData { data, ext: 1 }) => sink(Stream::Stderr, &data),
                        Some(ChannelMsg::ExitStatus { exit_status }) => {
                            status = Some(i32::try_from(exit_status).unwrap_or(i32::MAX));
                        }
                        Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                            status = Some(128 + signal_number(&signal_name));
                        }
                        Some(ChannelMsg::Failure) if status.is_none() => {
                            return Err(SshError::ExecRefused { destination: destination.clone() });
                        }
                        Some(_) => {}
                        None => break,
                    },
                }
            }
            status.ok_or_else(|| SshError::NoExitStatus {
                destination: destination.clone(),
            })
        };

        let outcome = match self.inner.command_timeout {
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(outcome) => outcome,
                Err(_) => Err(SshError::CommandTimeout {
                    destination: destination.clone(),
                    after: limit,
                }),
            },
            None => run.await,
        };
        if outcome.is_err() {
            // Stop the command if the server lets us, and free the channel either way. Errors
            // here mean the connection is gone, which frees it too.
            let _ = writer.signal(Sig::TERM).await;
            let _ = writer.close().await;
        }
        outcome
    }

    /// Opens a session channel. sshd frees a session slot only after it processed the close of
    /// the previous channel, which may arrive just ahead of this open; so a refused open is
    /// retried a few times with a growing pause before giving up.
    async fn open_session(&self) -> Result<russh::Channel<client::Msg>, SshError> {
        let mut pause = Duration::from_millis(10);
        let mut attempts = 0;
        loop {
            match self.inner.handle.channel_open_session().await {
                Ok(channel) => return Ok(channel),
                Err(russh::Error::ChannelOpenFailure(reason)) => {
                    attempts += 1;
                    if attempts > CHANNEL_OPEN_RETRIES {
                        return Err(SshError::ChannelOpen {
                            destination: self.inner.destination.clone(),
                            reason: format!("{reason:?}"),
                        });
                    }
                    tracing::debug!(destination = %self.inner.destination, ?reason, "session channel refused; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(other) => return Err(self.lost(&other.to_string())),
            }
        }
    }

    /// A TCP connection from the host to `host:port` as the host sees it (its own loopback,
    /// say), carried by a channel of this connection.
    pub async fn forward(
        &self,
        host: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<russh::client::Msg>, SshError> {
        let channel = self
            .inner
            .handle
            .channel_open_direct_tcpip(host.to_owned(), u32::from(port), "127.0.0.1", 0)
            .await
            .map_err(|e| SshError::Forward {
                destination: self.inner.destination.clone(),
                to: format!("{host}:{port}"),
                message: e.to_string(),
            })?;
        Ok(channel.into_stream())
    }

    /// "user@host:port", for messages.
    pub fn destination(&self) -> &str {
        &self.inner.destination
    }

    /// The name or address connected to: an alias's `HostName`, else the host as given.
    pub fn host_name(&self) -> &str {
        &self.inner.host_name
    }

    /// Disconnects. Clones of this connection stop working too.
    pub async fn close(self) {
        let _ = self
            .inner
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }

    fn lost(&self, message: &str) -> SshError {
        SshError::ConnectionLost {
            destination: self.inner.destination.clone(),
            message: message.to_string(),
        }
    }
}

/// POSIX signal numbers as Linux uses them, for the `128 + signal` exit status shells report.
fn signal_number(signal: &Sig) -> i32 {
    match signal {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(name) => match name.as_str() {
            "BUS" => 7,
            "USR2" => 12,
            "STKFLT" => 16,
            "CHLD" => 17,
            "CONT" => 18,
            "STOP" => 19,
            "TSTP" => 20,
            "TTIN" => 21,
            "TTOU" => 22,
            "URG" => 23,
            "XCPU" => 24,
            "XFSZ" => 25,
            "VTALRM" => 26,
            "PROF" => 27,
            "WINCH" => 28,
            "IO" => 29,
            "PWR" => 30,
            "SYS" => 31,
            _ => 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_numbers() {
        assert_eq!(signal_number(&Sig::TERM), 15);
        assert_eq!(signal_number(&Sig::KILL), 9);
        assert_eq!(signal_number(&Sig::Custom("USR2".into())), 12);
    }
}
