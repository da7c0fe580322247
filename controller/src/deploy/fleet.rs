//! The hosts of one environment, connected: one connection per host, reused for every step,
//! and the helpers that run a step on every host at once.

use std::sync::Arc;
use std::time::Instant;

use pmfleet_shared::ecosystem::{DeployEnv, HostSpec};
use tokio::task::JoinSet;

use super::report::{HostReport, Status};
pub use crate::concurrent::each;
use crate::output::Output;
use crate::shell::Script;
use crate::ssh::{ConnectSpec, Connector, Stream};
use crate::transport::{Captured, HostConn, TransportError};

/// One connected host.
pub struct Member {
    /// How the host is named in output: as written, plus `:port` when one is set.
    pub label: String,
    /// Where the host's agent is dialled, and what its certificate names: the `HostName` of an
    /// `~/.ssh/config` alias, else the host as written.
    pub host: String,
    pub conn: HostConn,
}

impl Member {
    /// Runs a script; a non-zero exit becomes `Err` with the best one-line reason.
    pub async fn run(&self, script: &Script) -> Result<Captured, String> {
        let captured = self.conn.run(script).await.map_err(transport_message)?;
        if captured.success() {
            Ok(captured)
        } else {
            Err(captured.reason())
        }
    }

    /// Runs a script whose output the user should see line by line (hooks, `exec`).
    pub async fn run_visible(
        &self,
        out: &Output,
        step: &str,
        script: &Script,
    ) -> Result<(), String> {
        let label = self.label.clone();
        let captured = self
            .conn
            .run_lines(script, &mut |_stream: Stream, line: &str| {
                out.line(&label, step, line)
            })
            .await
            .map_err(transport_message)?;
        if captured.success() {
            Ok(())
        } else {
            Err(format!("{step} exited with status {}", captured.status))
        }
    }
}

fn transport_message(err: TransportError) -> String {
    format!("{err:#}")
}

/// The reachable hosts of an environment, and reports for the others.
pub struct Fleet {
    pub members: Vec<Arc<Member>>,
    /// Hosts that could not be connected to, as `Unreachable` or `Failed` (bad host key, auth).
    pub not_connected: Vec<HostReport>,
}

pub fn label(spec: &HostSpec) -> String {
    match spec.port {
        Some(port) => format!("{}:{port}", spec.host),
        None => spec.host.clone(),
    }
}

impl Fleet {
    /// Connects to every host of `env` in parallel (the connector caps concurrent starts).
    pub async fn connect(env: &DeployEnv, connector: &Connector, out: &Arc<Output>) -> Fleet {
        let mut set = JoinSet::new();
        for (index, spec) in env.hosts.iter().enumerate() {
            let label = label(spec);
            let out = out.clone();
            let connector = connector.clone();
            let connect = ConnectSpec {
                host: spec.host.clone(),
                port: spec.port,
                user: spec.user.clone(),
                identity: env.key.clone(),
                ssh_options: env.ssh_options.clone(),
            };
            let local = spec.host == "localhost";
            let host = spec.host.clone();
            set.spawn(async move {
                out.step(&label, "connect");
                let started = Instant::now();
                let result = if local {
                    Ok(HostConn::Local)
                } else {
                    connector.connect(&connect).await.map(HostConn::Ssh)
                };
                (index, label, host, started, result)
            });
        }
        let mut members = Vec::new();
        let mut not_connected = Vec::new();
        while let Some(joined) = set.join_next().await {
            let (index, label, host, started, result) = match joined {
                Ok(v) => v,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            match result {
                Ok(conn) => {
                    let host = match &conn {
                        HostConn::Ssh(ssh) => ssh.host_name().to_string(),
                        HostConn::Local => host,
                    };
                    members.push((index, Arc::new(Member { label, host, conn })))
                }
                Err(err) => {
                    let status = if err.is_unreachable() {
                        Status::Unreachable
                    } else {
                        Status::Failed
                    };
                    let message = format!("{err}");
                    out.done(&label, false, &message);
                    let mut report = HostReport::new(&label, status, message);
                    report.elapsed = started.elapsed();
                    not_connected.push(report);
                }
            }
        }
        members.sort_by_key(|(index, _)| *index);
        Fleet {
            members: members.into_iter().map(|(_, m)| m).collect(),
            not_connected,
        }
    }
}
