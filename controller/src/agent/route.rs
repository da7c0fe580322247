//! How the controller reaches one agent: its port dialled directly, or (`agent.via: "ssh"`)
//! a channel forwarded over the SSH connection to its host, to the loopback address the agent
//! listens on there. Either way the stream then carries the same mutual TLS, with the same
//! certificate checks and roles: SSH only replaces the network path.

use std::fmt;
use std::sync::Arc;

use pmfleet_shared::ecosystem::{AgentSettings, AgentVia};
use tokio::sync::OnceCell;

use crate::ssh::{ConnectSpec, Connection, Connector, SshError};
use crate::transport::HostConn;

/// The path to one agent's mutual-TLS port.
#[derive(Clone, Default)]
pub enum Via {
    /// A TCP connection to the host's address.
    #[default]
    Direct,
    /// A channel of an SSH connection to the host, to `to` (an address of the host's own).
    Ssh { tunnel: Arc<Tunnel>, to: String },
}

impl Via {
    /// Through `conn`, the connection a deploy already has to the host.
    pub fn through(conn: &Connection, host: &str) -> Via {
        Via::Ssh {
            tunnel: Arc::new(Tunnel {
                connection: OnceCell::new_with(Some(Ok(conn.clone()))),
                dial: None,
            }),
            to: loopback_for(host),
        }
    }

    /// Through an SSH connection made on first use (`status`, `app`, `logs`).
    pub fn dialled(connector: &Connector, spec: ConnectSpec) -> Via {
        let to = loopback_for(&spec.host);
        Via::Ssh {
            tunnel: Arc::new(Tunnel {
                connection: OnceCell::new(),
                dial: Some((connector.clone(), spec)),
            }),
            to,
        }
    }

    /// The path an environment's settings ask for to `host` (`localhost` is always direct:
    /// there is no SSH connection to it).
    pub fn wanted(settings: &AgentSettings, host: &str) -> bool {
        settings.via == AgentVia::Ssh && host != "localhost"
    }

    /// The path to the agent of a host a deploy is connected to (`host`: as dialled).
    pub fn for_member(settings: &AgentSettings, host: &str, conn: &HostConn) -> Via {
        match conn {
            HostConn::Ssh(conn) if Via::wanted(settings, host) => Via::through(conn, host),
            _ => Via::Direct,
        }
    }
}

impl fmt::Debug for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Direct => f.write_str("Direct"),
            Via::Ssh { to, .. } => write!(f, "Ssh(to {to})"),
        }
    }
}

impl PartialEq for Via {
    fn eq(&self, other: &Via) -> bool {
        match (self, other) {
            (Via::Direct, Via::Direct) => true,
            (Via::Ssh { to: a, .. }, Via::Ssh { to: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl Eq for Via {}

/// One SSH connection to a host, shared by every request through it, made at most once.
pub struct Tunnel {
    connection: OnceCell<Result<Connection, String>>,
    dial: Option<(Connector, ConnectSpec)>,
}

impl Tunnel {
    /// A new channel to `to:port` on the host.
    pub async fn open(
        &self,
        to: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<russh::client::Msg>, TunnelError> {
        let connection = self
            .connection
            .get_or_init(|| async {
                match &self.dial {
                    Some((connector, spec)) => {
                        connector.connect(spec).await.map_err(|e| e.to_string())
                    }
                    None => Err("no SSH connection to the host".to_owned()),
                }
            })
            .await
            .as_ref()
            .map_err(|e| TunnelError::Connect(e.clone()))?;
        Ok(connection.forward(to, port).await?)
    }
}

/// Why a tunnel to an agent could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("no SSH connection to the host: {0}")]
    Connect(String),
    #[error(transparent)]
    Forward(#[from] SshError),
}

/// The address an agent reached over SSH listens on, as its host sees it: the host's own
/// address when that is a loopback one (hosts that share this machine's network, as test
/// fleets do), else `127.0.0.1`.
pub fn loopback_for(host: &str) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => ip.to_string(),
        _ => "127.0.0.1".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_an_agent_reached_over_ssh_listens_on() {
        for (host, want) in [
            ("web1.example.com", "127.0.0.1"),
            ("10.0.0.5", "127.0.0.1"),
            ("127.0.0.7", "127.0.0.7"),
            ("::1", "::1"),
            ("localhost", "127.0.0.1"),
        ] {
            assert_eq!(loopback_for(host), want, "{host}");
        }
    }
}
