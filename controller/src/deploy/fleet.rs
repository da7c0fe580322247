//! The hosts of one environment, connected: one connection per host, reused for every step,
//! and the helpers that run a step on every host at once.

use std::sync::Arc;
use std::time::Instant;

use pmfleet_shared::ecosystem::{DeployEnv, HostSpec};
use tokio::task::JoinSet;

use super::error::HostError;
use super::report::{HostReport, Status};
pub use crate::concurrent::each;
use crate::output::Output;
use crate::shell::Script;
use crate::ssh::{ConnectSpec, Connector, SshError, Stream};
use crate::transport::{Captured, HostConn};

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
    /// Runs a script; a non-zero exit becomes [`HostError::Exit`] with the best one-line
    /// reason.
    pub async fn run(&self, script: &Script) -> Result<Captured, HostError> {
        self.run_with_stdin(script, None).await
    }

    /// [`Member::run`], with `stdin` streamed into the script.
    pub async fn run_with_stdin(
        &self,
        script: &Script,
        stdin: Option<crate::transport::Stdin>,
    ) -> Result<Captured, HostError> {
        let captured = self
            .conn
            .run_with_stdin(script, stdin)
            .await
            .map_err(HostError::transport)?;
        if captured.success() {
            Ok(captured)
        } else {
            Err(HostError::Exit {
                status: captured.status,
                reason: captured.reason(),
            })
        }
    }

    /// Runs a script whose output the user should see line by line (hooks, `exec`).
    pub async fn run_visible(
        &self,
        out: &Output,
        step: &'static str,
        script: &Script,
    ) -> Result<(), HostError> {
        self.run_visible_with_stdin(out, step, script, None).await
    }

    /// [`Member::run_visible`], with `stdin` streamed into the script (a hook's secrets).
    pub async fn run_visible_with_stdin(
        &self,
        out: &Output,
        step: &'static str,
        script: &Script,
        stdin: Option<crate::transport::Stdin>,
    ) -> Result<(), HostError> {
        let label = self.label.clone();
        let captured = self
            .conn
            .run_lines(script, stdin, &mut |_stream: Stream, line: &str| {
                out.line(&label, step, line)
            })
            .await
            .map_err(HostError::transport)?;
        if captured.success() {
            Ok(())
        } else {
            Err(HostError::Hook {
                hook: step,
                status: captured.status,
            })
        }
    }
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

/// One host of an environment after trying to connect to it.
pub struct Connected {
    pub label: String,
    pub result: Result<Arc<Member>, SshError>,
    /// How long connecting took.
    pub elapsed: std::time::Duration,
}

/// Connects to every host of `env` in parallel (the connector caps concurrent starts); the
/// results are in the order of `env.hosts`.
pub async fn connect_all(
    env: &DeployEnv,
    connector: &Connector,
    out: &Arc<Output>,
) -> Vec<Connected> {
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
            let result = result.map(|conn| {
                let host = match &conn {
                    HostConn::Ssh(ssh) => ssh.host_name().to_string(),
                    HostConn::Local => host,
                };
                Arc::new(Member {
                    label: label.clone(),
                    host,
                    conn,
                })
            });
            (
                index,
                Connected {
                    label,
                    result,
                    elapsed: started.elapsed(),
                },
            )
        });
    }
    let mut hosts = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(v) => hosts.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    hosts.sort_by_key(|(index, _)| *index);
    hosts.into_iter().map(|(_, c)| c).collect()
}

impl Fleet {
    /// Connects to every host of `env` in parallel; hosts that could not be connected to are
    /// reported (and shown) as `Unreachable` or `Failed`.
    pub async fn connect(env: &DeployEnv, connector: &Connector, out: &Arc<Output>) -> Fleet {
        let mut members = Vec::new();
        let mut not_connected = Vec::new();
        for host in connect_all(env, connector, out).await {
            match host.result {
                Ok(member) => members.push(member),
                Err(err) => {
                    let status = if err.is_unreachable() {
                        Status::Unreachable
                    } else {
                        Status::Failed
                    };
                    let message = format!("{err}");
                    out.done(&host.label, false, &message);
                    let mut report = HostReport::new(&host.label, status, message);
                    report.elapsed = host.elapsed;
                    not_connected.push(report);
                }
            }
        }
        Fleet {
            members,
            not_connected,
        }
    }
}
