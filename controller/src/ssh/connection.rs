//! Connections: starting them (bounded, timed out, host key checked, authenticated) and running
//! commands on them over capped session channels.
//!
//! One [`Connection`] per host is reused for every deploy step: a handshake costs far more CPU
//! than a channel. OpenSSH limits both sides of that: `MaxStartups` (unauthenticated
//! connections in flight, 10 by default) and `MaxSessions` (channels per connection, 10), so the
//! [`Connector`] caps connection starts and each connection caps its open channels.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect, Sig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::auth::{AuthPlan, authenticate};
use super::config::Target;
use super::error::SshError;
use super::known_hosts::{self, HostKeyStatus};
use super::{ClientSettings, ConnectSpec};

/// Key exchange methods in order of preference: curve25519 first — OpenSSH 9.2's default
/// (sntrup761x25519) is not available in russh, and curve25519 costs about half the CPU of the
/// alternatives, which matters when connecting to many hosts at once.
const KEX_ORDER: &[russh::kex::Name] = &[
    russh::kex::CURVE25519,
    russh::kex::CURVE25519_PRE_RFC_8731,
    russh::kex::MLKEM768X25519_SHA256,
    russh::kex::DH_GEX_SHA256,
    russh::kex::DH_G16_SHA512,
    russh::kex::DH_G14_SHA256,
    russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];

/// Retries of a refused session channel open (about 1.6 s in all).
const CHANNEL_OPEN_RETRIES: u32 = 8;

/// How many keepalives may go unanswered before the connection is considered dead.
const KEEPALIVE_MAX: usize = 3;

/// Starts connections. Cheap to clone; clones share the cap on concurrent connection starts.
#[derive(Clone)]
pub struct Connector {
    inner: Arc<ConnectorInner>,
}

struct ConnectorInner {
    settings: ClientSettings,
    /// Connection starts in flight (TCP connect through authentication).
    starts: Semaphore,
    /// The local user name, the last fallback for the remote user.
    local_user: Option<String>,
}

impl Connector {
    pub fn new(settings: ClientSettings) -> Connector {
        let starts = Semaphore::new(settings.max_concurrent_starts.max(1));
        Connector {
            inner: Arc::new(ConnectorInner {
                settings,
                starts,
                local_user: local_user_name(),
            }),
        }
    }

    /// Connects, checks the host key and authenticates, all within the connect timeout (time
    /// spent waiting for a start slot does not count). Missing known_hosts entries, changed keys
    /// and refused keys are errors; see [`SshError`].
    pub async fn connect(&self, spec: &ConnectSpec) -> Result<Connection, SshError> {
        let settings = &self.inner.settings;
        let target = Target::resolve(spec, settings, self.inner.local_user.as_deref())?;
        let destination = target.destination();
        let _permit = self
            .inner
            .starts
            .acquire()
            .await
            .map_err(|_| SshError::Disconnected {
                destination: destination.clone(),
                phase: "connection start",
                message: "the connector was shut down".into(),
            })?;
        let started = Instant::now();
        let (handle, jumps) = tokio::time::timeout(target.connect_timeout, self.establish(&target))
            .await
            .map_err(|_| SshError::Timeout {
                destination: destination.clone(),
                after: target.connect_timeout,
            })??;
        tracing::debug!(
            %destination,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "connected"
        );
        Ok(Connection {
            inner: Arc::new(ConnectionInner {
                handle,
                _jumps: jumps,
                channels: Semaphore::new(settings.max_channels_per_connection.max(1)),
                host_name: target.hostname.clone(),
                destination,
                command_timeout: settings.command_timeout,
            }),
        })
    }

    /// Connects to `target` (through its jump hosts, each connected the same way), checks its
    /// host key and authenticates. Returns its handle and those of the jump hosts, which must
    /// stay open as long as it does.
    fn establish<'a>(
        &'a self,
        target: &'a Target,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Established, SshError>> + Send + 'a>,
    > {
        Box::pin(async move {
            let destination = target.destination();
            let (stream, jumps): (Box<dyn Transport>, Vec<Handle<ClientHandler>>) =
                match target.jump.as_deref() {
                    None => (
                        Box::new(tcp_connect(target, &destination).await?),
                        Vec::new(),
                    ),
                    Some(jump) => {
                        let (via, mut jumps) = self.establish(jump).await?;
                        let channel = via
                            .channel_open_direct_tcpip(
                                target.hostname.clone(),
                                u32::from(target.port),
                                "127.0.0.1",
                                0,
                            )
                            .await
                            .map_err(|e| SshError::Jump {
                                jump: jump.destination(),
                                destination: destination.clone(),
                                message: e.to_string(),
                            })?;
                        jumps.push(via);
                        (Box::new(channel.into_stream()), jumps)
                    }
                };
            let handle = self.handshake(target, &destination, stream).await?;
            Ok((handle, jumps))
        })
    }

    /// The SSH handshake, host key check and authentication over `stream`.
    async fn handshake(
        &self,
        target: &Target,
        destination: &str,
        stream: Box<dyn Transport>,
    ) -> Result<Handle<ClientHandler>, SshError> {
        let settings = &self.inner.settings;
        let recorded =
            known_hosts::recorded_algorithms(&target.hostname, target.port, &target.known_hosts);
        let defaults = russh::Preferred::default();
        let preferred = russh::Preferred {
            kex: KEX_ORDER.into(),
            key: known_hosts::prefer_recorded(&defaults.key, &recorded).into(),
            ..defaults
        };
        let keepalive = settings.keepalive_interval.max(Duration::from_secs(1));
        let config = client::Config {
            preferred,
            keepalive_interval: Some(keepalive),
            keepalive_max: KEEPALIVE_MAX,
            // Longer than the keepalive interval times the unanswered keepalives allowed, so a
            // quiet command on a live connection is never cut off.
            inactivity_timeout: Some(keepalive * (KEEPALIVE_MAX as u32 + 2)),
            nodelay: true,
            ..client::Config::default()
        };

        let verdict = Arc::new(Mutex::new(None));
        let handler = ClientHandler {
            host: target.hostname.clone(),
            port: target.port,
            known_hosts: target.known_hosts.clone(),
            accept_new: target.accept_new_host_keys,
            verdict: Arc::clone(&verdict),
        };
        let mut handle = client::connect_stream(Arc::new(config), stream, handler)
            .await
            .map_err(|error| {
                let refused = verdict
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .take();
                match refused {
                    Some(refusal) => refusal,
                    None => handshake_error(destination, "SSH handshake", error),
                }
            })?;

        authenticate(
            &mut handle,
            &AuthPlan {
                user: &target.user,
                destination,
                identity_files: &target.identity_files,
                explicit_files: target.explicit_identity_files,
            },
        )
        .await?;
        Ok(handle)
    }
}

/// A connected host's handle, and those of the jump hosts it is reached through.
type Established = (Handle<ClientHandler>, Vec<Handle<ClientHandler>>);

/// What SSH runs over: a TCP stream, or a channel forwarded by a jump host.
trait Transport: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Transport for T {}

/// Resolves the host and connects to its addresses in turn, like OpenSSH.
async fn tcp_connect(target: &Target, destination: &str) -> Result<TcpStream, SshError> {
    let addresses: Vec<_> = tokio::net::lookup_host((target.hostname.as_str(), target.port))
        .await
        .map_err(|error| SshError::Resolve {
            host: target.hostname.clone(),
            message: error.to_string(),
        })?
        .collect();
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%destination, "set_nodelay failed: {error}");
                }
                return Ok(stream);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(match last_error {
        Some(source) => SshError::Connect {
            destination: destination.to_string(),
            source,
        },
        None => SshError::Resolve {
            host: target.hostname.clone(),
            message: "no addresses".into(),
        },
    })
}

/// Classifies a russh failure before the connection was established: a dropped or broken
/// connection means the host is not there; anything else is a protocol problem.
fn handshake_error(destination: &str, phase: &'static str, source: russh::Error) -> SshError {
    match source {
        russh::Error::Disconnect
        | russh::Error::HUP
        | russh::Error::IO(_)
        | russh::Error::ConnectionTimeout
        | russh::Error::KeepaliveTimeout
        | russh::Error::InactivityTimeout
        | russh::Error::SendError => SshError::Disconnected {
            destination: destination.to_string(),
            phase,
            message: source.to_string(),
        },
        source => SshError::Protocol {
            destination: destination.to_string(),
            source,
        },
    }
}

/// The user this process runs as: `$USER`, then the password database.
fn local_user_name() -> Option<String> {
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        return Some(user);
    }
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|user| user.name)
}

/// russh callbacks: only the host key check is ours.
pub(crate) struct ClientHandler {
    host: String,
    port: u16,
    known_hosts: Vec<std::path::PathBuf>,
    accept_new: bool,
    /// Why the host key was refused, for the error returned by `connect`.
    verdict: Arc<Mutex<Option<SshError>>>,
}

impl ClientHandler {
    fn verify(&self, key: &PublicKey) -> Result<(), SshError> {
        let fingerprint = known_hosts::fingerprint(key);
        match known_hosts::check(&self.host, self.port, key, &self.known_hosts)? {
            HostKeyStatus::Known => Ok(()),
            HostKeyStatus::Changed { path, line } => Err(SshError::HostKeyChanged {
                host: self.host.clone(),
                port: self.port,
                fingerprint,
                known_hosts_path: path,
                line,
            }),
            HostKeyStatus::Unknown => {
                let Some(learn_into) = self.known_hosts.first() else {
                    return Err(SshError::HostKeyUnknown {
                        host: self.host.clone(),
                        port: self.port,
                        fingerprint,
                        known_hosts: std::path::PathBuf::new(),
                    });
                };
                if !self.accept_new {
                    return Err(SshError::HostKeyUnknown {
                        host: self.host.clone(),
                        port: self.port,
                        fingerprint,
                        known_hosts: learn_into.clone(),
                    });
                }
                known_hosts::learn(&self.host, self.port, key, learn_into)?;
                tracing::warn!(
                    host = %self.host,
                    port = self.port,
                    %fingerprint,
                    known_hosts = %learn_into.display(),
                    "learned a new host key"
                );
                Ok(())
            }
        }
    }
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Host certificates are not requested; should one arrive, its key is checked like a
        // plain key (no certificate authority is trusted).
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(certificate) => {
                PublicKey::from(certificate.public_key().clone())
            }
        };
        match self.verify(&key) {
            Ok(()) => Ok(true),
            Err(refusal) => {
                // Kept for `connect` to return: russh only reports `UnknownKey`.
                *self
                    .verdict
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(refusal);
                Err(russh::Error::UnknownKey)
            }
        }
    }
}

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

    #[test]
    fn dropped_connections_are_unreachable() {
        assert!(handshake_error("d", "SSH handshake", russh::Error::Disconnect).is_unreachable());
        assert!(handshake_error("d", "SSH handshake", russh::Error::HUP).is_unreachable());
        assert!(
            !handshake_error("d", "SSH handshake", russh::Error::WrongServerSig).is_unreachable()
        );
    }
}
