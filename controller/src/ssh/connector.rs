//! Starting connections: bounded (a cap on starts in flight, matching OpenSSH's
//! `MaxStartups`), timed out, host key checked, authenticated, through jump hosts when the
//! config says so.
//!
//! One [`Connection`] per host is reused for every deploy step: a handshake costs far more CPU
//! than a channel.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::auth::{AuthPlan, authenticate};
use super::config::Target;
use super::connection::Connection;
use super::error::SshError;
use super::handler::ClientHandler;
use super::known_hosts;
use super::proxy;
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
        Ok(Connection::new(
            handle,
            jumps,
            settings.max_channels_per_connection,
            target.hostname.clone(),
            destination,
            settings.command_timeout,
        ))
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
            if let Some(command) = &target.proxy_command {
                let (stream, said) = proxy::spawn(command, &destination)?;
                return match self.handshake(target, &destination, Box::new(stream)).await {
                    Ok(handle) => Ok((handle, Vec::new())),
                    // The command ended before SSH could run over it: say what it said.
                    Err(error @ (SshError::Protocol { .. } | SshError::Disconnected { .. })) => {
                        let said = said.finish().await;
                        Err(SshError::Proxy {
                            destination: destination.clone(),
                            command: command.clone(),
                            message: if said.is_empty() {
                                error.to_string()
                            } else {
                                format!("{error}; it said: {said}")
                            },
                        })
                    }
                    Err(other) => Err(other),
                };
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_connections_are_unreachable() {
        assert!(handshake_error("d", "SSH handshake", russh::Error::Disconnect).is_unreachable());
        assert!(handshake_error("d", "SSH handshake", russh::Error::HUP).is_unreachable());
        assert!(
            !handshake_error("d", "SSH handshake", russh::Error::WrongServerSig).is_unreachable()
        );
    }
}
