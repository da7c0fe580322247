//! The SSH client the deploy engine drives hosts with, built on russh and behaving like OpenSSH
//! where users rely on it: known_hosts checked strictly (learning new hosts only when asked),
//! `~/.ssh/config` aliases, ssh-agent and key files, connect and command timeouts, keepalives.
//!
//! One [`Connection`] per host serves every step of a deploy; [`Connection::exec`] streams a
//! command's output as it arrives. Connection starts are capped across a [`Connector`] and
//! channels per connection, matching OpenSSH's `MaxStartups` and `MaxSessions` defaults.
//!
//! Jump hosts (`ProxyJump`, chains included) are connected to the same way, and the connection
//! to the host behind is forwarded through them (`direct-tcpip`); with a `ProxyCommand`, SSH
//! runs over the command's stdin and stdout (`proxy.rs`).

mod auth;
mod config;
mod connection;
mod connector;
mod error;
mod handler;
mod known_hosts;
mod proxy;

use std::path::PathBuf;
use std::time::Duration;

pub use connection::{Connection, Stream};
pub use connector::Connector;
pub use error::SshError;

/// Where and how to connect to one host, as the ecosystem file describes it. Its fields act like
/// `ssh`'s command-line flags: they win over `ssh_options`, which win over `~/.ssh/config`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectSpec {
    /// A host name, address or `~/.ssh/config` alias.
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// A private key file (the ecosystem's `key`), tried after the agent's keys.
    pub identity: Option<PathBuf>,
    /// `Key=Value` options from the ecosystem file. `Port`, `User`, `IdentityFile`,
    /// `UserKnownHostsFile`, `ConnectTimeout` and `StrictHostKeyChecking` are honoured; others
    /// are ignored with a warning.
    pub ssh_options: Vec<String>,
}

/// The name or address `spec.host` stands for: the `HostName` that its `ssh_options` or
/// `<home>/.ssh/config` give an alias, else the host as written. What a host's agent is dialled
/// at and certified for, so an alias works for the agent as it does for SSH.
pub fn host_name(spec: &ConnectSpec, home: &std::path::Path) -> String {
    config::hostname_of(spec, home)
}

/// Client-wide settings, shared by every connection a [`Connector`] starts.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Where `.ssh/` (config, keys, known_hosts) lives and what `~` means: `$HOME` by default,
    /// a temporary directory in tests.
    pub home: PathBuf,
    /// The known_hosts file; `<home>/.ssh/known_hosts` (or the config's `UserKnownHostsFile`)
    /// when unset.
    pub known_hosts: Option<PathBuf>,
    /// Learn (append) keys of hosts not in known_hosts. A *changed* key is refused regardless.
    pub accept_new_host_keys: bool,
    /// Limit for TCP connect, key exchange and authentication together.
    pub connect_timeout: Duration,
    /// Limit for each command; none by default (builds can take long).
    pub command_timeout: Option<Duration>,
    /// Silence after which a keepalive is sent; three unanswered ones drop the connection.
    pub keepalive_interval: Duration,
    /// Concurrent channels per connection; OpenSSH's `MaxSessions` defaults to 10.
    pub max_channels_per_connection: usize,
    /// Concurrent connection starts (connect to authenticated); OpenSSH starts dropping
    /// unauthenticated connections beyond `MaxStartups` 10.
    pub max_concurrent_starts: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            home: dirs::home_dir().unwrap_or_else(|| PathBuf::from("/")),
            known_hosts: None,
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(15),
            command_timeout: None,
            keepalive_interval: Duration::from_secs(15),
            max_channels_per_connection: 10,
            max_concurrent_starts: 10,
        }
    }
}
