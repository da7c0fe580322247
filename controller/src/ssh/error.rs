//! What can go wrong between the controller and a host, with the facts a user needs to act on
//! it. The deploy engine only asks one question of an error: [`SshError::is_unreachable`] — was
//! the host simply not there (skip it, report it as down), or did something fail that needs a
//! human (a changed host key, a refused key, a bad config)?

use std::path::PathBuf;
use std::time::Duration;

/// Every failure of [`crate::ssh`]. Messages never contain key material or command text: commands
/// can carry secrets from the ecosystem file's `env`.
#[derive(thiserror::Error, Debug)]
pub enum SshError {
    /// The host name did not resolve (DNS failure or no address).
    #[error("cannot resolve {host}: {message}")]
    Resolve { host: String, message: String },

    /// TCP connect failed on every address of the host (refused, no route, ...).
    #[error("cannot connect to {destination}: {source}")]
    Connect {
        destination: String,
        #[source]
        source: std::io::Error,
    },

    /// TCP connect, key exchange and authentication did not finish within the connect timeout.
    #[error(
        "timed out after {}s connecting to {destination} (TCP connect, SSH handshake and authentication)",
        after.as_secs_f32()
    )]
    Timeout {
        destination: String,
        after: Duration,
    },

    /// The peer closed the connection, or it broke, before the connection was established.
    #[error("{destination} closed the connection during the {phase}: {message}")]
    Disconnected {
        destination: String,
        phase: &'static str,
        message: String,
    },

    /// The host presented a key that no known_hosts file lists for it.
    #[error(
        "the host key of {host} (port {port}) is not known: {fingerprint} is not in {}. \
         Verify the fingerprint with the host's administrator, then add it with \
         `ssh-keyscan -p {port} {host} >> {}`, or run again with --accept-new-host-key \
         (or ssh_options StrictHostKeyChecking=accept-new) to learn it",
        known_hosts.display(), known_hosts.display()
    )]
    HostKeyUnknown {
        host: String,
        port: u16,
        fingerprint: String,
        known_hosts: PathBuf,
    },

    /// The host presented a different key than the one recorded for it. Never connects.
    #[error(
        "HOST KEY CHANGED for {host} (port {port}): it now presents {fingerprint}, which does not \
         match the key recorded at {}:{line}. Someone may be intercepting the connection, or the \
         host was reinstalled. If the change is expected, remove line {line} from {} and verify \
         the new fingerprint before trusting it",
        known_hosts_path.display(), known_hosts_path.display()
    )]
    HostKeyChanged {
        host: String,
        port: u16,
        fingerprint: String,
        known_hosts_path: PathBuf,
        line: usize,
    },

    /// Unknown host keys would be learned into a file that keeps nothing (`/dev/null`): every
    /// connection would accept whatever key the host presents. Refused.
    #[error(
        "{host}: `{setting}` learns unknown host keys, and the known_hosts file is {} — which          keeps nothing, so any host key would be accepted on every connection (anyone between          here and {host} could pose as it). pmfleet refuses this. Remove          UserKnownHostsFile=/dev/null (and StrictHostKeyChecking=no) from ssh_options and run          once with --accept-new-host-key to learn the keys into ~/.ssh/known_hosts, or point          UserKnownHostsFile at a real file",
        known_hosts.display()
    )]
    BlindHostKeys {
        host: String,
        setting: String,
        known_hosts: PathBuf,
    },

    /// A known_hosts file could not be read, parsed or appended to.
    #[error("known_hosts file {}: {message}", path.display())]
    KnownHosts { path: PathBuf, message: String },

    /// Every key was refused. `tried` lists what was attempted (agent keys by fingerprint, key
    /// files by path, with why each was skipped or refused).
    #[error("authentication as {destination} failed; tried: {}", tried.join("; "))]
    Auth {
        destination: String,
        tried: Vec<String>,
    },

    /// The `ProxyCommand` could not be started, or ended before SSH could run over it.
    #[error("cannot reach {destination} through its ProxyCommand `{command}`: {message}")]
    Proxy {
        destination: String,
        command: String,
        message: String,
    },

    /// The jump host would not forward the connection to the host behind it.
    #[error(
        "cannot reach {destination} through the jump host {jump}: {message} (the jump host \
         must allow TCP forwarding: AllowTcpForwarding in its sshd_config)"
    )]
    Jump {
        jump: String,
        destination: String,
        message: String,
    },

    /// The host would not forward a channel to a port of its own (`agent.via: "ssh"`).
    #[error(
        "{destination} would not forward a connection to {to}: {message} (its sshd must allow \
         TCP forwarding: AllowTcpForwarding in sshd_config)"
    )]
    Forward {
        destination: String,
        to: String,
        message: String,
    },

    /// ~/.ssh/config or an `ssh_options` entry is invalid.
    #[error("{origin}: {message}")]
    Config { origin: String, message: String },

    /// No remote user could be determined (no `user`, no config `User`, no local user name).
    #[error("no user to log in to {host} as: set `user` in the ecosystem file")]
    NoUser { host: String },

    /// An SSH protocol failure (no common algorithm, bad signature, ...).
    #[error("SSH error with {destination}: {source}")]
    Protocol {
        destination: String,
        #[source]
        source: russh::Error,
    },

    /// The server refused to open a session channel.
    #[error("{destination} refused to open a session channel: {reason}")]
    ChannelOpen { destination: String, reason: String },

    /// The server refused to run the command.
    #[error("{destination} refused to execute the command")]
    ExecRefused { destination: String },

    /// Reading the data to send as the command's stdin failed.
    #[error("reading the input for a command on {destination}: {source}")]
    Stdin {
        destination: String,
        #[source]
        source: std::io::Error,
    },

    /// The command did not finish within the command timeout; its channel was closed.
    #[error("command on {destination} did not finish within {}s", after.as_secs_f32())]
    CommandTimeout {
        destination: String,
        after: Duration,
    },

    /// The channel closed without reporting an exit status or signal.
    #[error("{destination} closed the command's channel without an exit status")]
    NoExitStatus { destination: String },

    /// An established connection broke (host went down, keepalives unanswered). Whether the
    /// command ran is unknown.
    #[error("connection to {destination} lost: {message}")]
    ConnectionLost {
        destination: String,
        message: String,
    },
}

impl SshError {
    /// True when the host could not be reached at all: name resolution failed, the TCP connect
    /// failed or timed out, or the connection dropped before it was established. Host key and
    /// authentication failures are *not* "unreachable": the host answered and something needs
    /// fixing. A connection lost after it was established is not "unreachable" either: a
    /// command may have run half-way.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            SshError::Resolve { .. }
                | SshError::Connect { .. }
                | SshError::Timeout { .. }
                | SshError::Disconnected { .. }
                | SshError::Jump { .. }
                | SshError::Proxy { .. }
        )
    }

    /// True when an established connection went away while a command ran or was about to:
    /// the host dropped off (it went down, or its sshd was stopped). Whether the command ran
    /// is unknown.
    pub fn is_dropped(&self) -> bool {
        matches!(
            self,
            SshError::ConnectionLost { .. } | SshError::NoExitStatus { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_only_for_network_failures() {
        let refused = SshError::Connect {
            destination: "root@10.0.0.1:22".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(refused.is_unreachable());
        let timeout = SshError::Timeout {
            destination: "root@10.0.0.1:22".into(),
            after: Duration::from_secs(1),
        };
        assert!(timeout.is_unreachable());
        let auth = SshError::Auth {
            destination: "root@10.0.0.1:22".into(),
            tried: vec!["/root/.ssh/id_ed25519 (refused by the server)".into()],
        };
        assert!(!auth.is_unreachable());
        let changed = SshError::HostKeyChanged {
            host: "10.0.0.1".into(),
            port: 22,
            fingerprint: "SHA256:abc".into(),
            known_hosts_path: "/root/.ssh/known_hosts".into(),
            line: 3,
        };
        assert!(!changed.is_unreachable());
        let message = changed.to_string();
        assert!(message.contains("SHA256:abc"), "{message}");
        assert!(message.contains("/root/.ssh/known_hosts:3"), "{message}");
    }

    #[test]
    fn unknown_host_message_tells_how_to_proceed() {
        let unknown = SshError::HostKeyUnknown {
            host: "127.0.0.2".into(),
            port: 2222,
            fingerprint: "SHA256:xyz".into(),
            known_hosts: "/home/u/.ssh/known_hosts".into(),
        };
        let message = unknown.to_string();
        assert!(
            message.contains("ssh-keyscan -p 2222 127.0.0.2 >> /home/u/.ssh/known_hosts"),
            "{message}"
        );
        assert!(message.contains("--accept-new-host-key"), "{message}");
        assert!(message.contains("SHA256:xyz"), "{message}");
    }
}
