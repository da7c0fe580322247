//! The fleet's agents as the control-plane commands (`status`, `app`, `logs`) see them: every
//! host of the chosen environments, asked concurrently, each under its own deadline.

use std::path::Path;
use std::time::Duration;

use pmfleet_shared::ecosystem::{self, Ecosystem};

use super::client::AgentClient;
use super::route::Via;
pub use crate::concurrent::each;
use crate::pki::{self, ClientIdentity};

/// One agent to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTarget {
    pub env: String,
    /// The host as written in the ecosystem file, for output.
    pub name: String,
    /// Where the agent is dialled, and what its certificate names: the `HostName` of an
    /// `~/.ssh/config` alias, else the host as written.
    pub host: String,
    pub port: u16,
    /// The path to it: direct, or through an SSH connection to the host made on first use.
    pub via: Via,
}

impl AgentTarget {
    pub fn label(&self) -> String {
        self.name.clone()
    }
}

/// Every agent of `envs` (all environments when empty), each host once; environments with
/// `agent: false` are skipped. Unknown environment names are an error.
pub fn targets(eco: &Ecosystem, envs: &[String]) -> Result<Vec<AgentTarget>, String> {
    let chosen: Vec<&str> = if envs.is_empty() {
        eco.deploy.keys().map(String::as_str).collect()
    } else {
        envs.iter().map(String::as_str).collect()
    };
    let home = crate::ssh::ClientSettings::default().home;
    // One connector (its cap on concurrent handshakes) for every tunnel.
    let connector = std::sync::OnceLock::new();
    let mut out: Vec<AgentTarget> = Vec::new();
    for name in chosen {
        let env = eco.environment(name).map_err(|e| e.to_string())?;
        let Some(agent) = &env.agent else { continue };
        for host in &env.hosts {
            let spec = crate::ssh::ConnectSpec {
                host: host.host.clone(),
                port: host.port,
                user: host.user.clone(),
                identity: env.key.clone(),
                ssh_options: env.ssh_options.clone(),
            };
            let target = AgentTarget {
                env: env.name.clone(),
                name: host.host.clone(),
                host: if host.host == "localhost" {
                    host.host.clone()
                } else {
                    crate::ssh::host_name(&spec, &home)
                },
                port: agent.port,
                via: if Via::wanted(agent, &host.host) {
                    let connector = connector.get_or_init(|| {
                        crate::ssh::Connector::new(crate::ssh::ClientSettings::default())
                    });
                    Via::dialled(connector, spec.clone())
                } else {
                    Via::Direct
                },
            };
            if !out
                .iter()
                .any(|t| t.host == target.host && t.port == target.port)
            {
                out.push(target);
            }
        }
    }
    Ok(out)
}

/// The agents of one environment and a client to reach them: what `app` and `logs` start from.
pub fn prepare(file: Option<&Path>, env: &str) -> Result<(Vec<AgentTarget>, AgentClient), String> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let eco = ecosystem::load_from(file, &cwd).map_err(|e| e.to_string())?;
    let targets = targets(&eco, &[env.to_string()])?;
    Ok((targets, client(Duration::from_secs(10))?))
}

/// `[file] <env> [app]`, the words of `logs` and `events`: the agents of that environment, a
/// client to reach them, and the app filter. `usage` is the message for wrong words.
pub fn env_and_app(
    words: &[String],
    usage: &str,
) -> Result<(Vec<AgentTarget>, AgentClient, Option<String>), String> {
    let mut words: Vec<&str> = words.iter().map(String::as_str).collect();
    let file = match words.first() {
        Some(first) if ecosystem::looks_like_ecosystem_file(first) => {
            Some(std::path::PathBuf::from(words.remove(0)))
        }
        _ => None,
    };
    let (env, app) = match words.as_slice() {
        [env] => (*env, None),
        [env, app] => (*env, Some(app.to_string())),
        _ => return Err(usage.to_string()),
    };
    let (targets, client) = prepare(file.as_deref(), env)?;
    Ok((targets, client, app))
}

/// The TLS client for agents, from `PMFLEET_TLS_*` or the fleet CA directory.
pub fn client(timeout: Duration) -> Result<AgentClient, String> {
    let dir = pki::default_dir().map_err(|e| e.to_string())?;
    let identity = ClientIdentity::from_env_or_dir(&dir).map_err(|e| e.to_string())?;
    AgentClient::new(&identity, timeout).map_err(|e| e.to_string())
}

/// Streams `request` from every agent at once, handing each answer to `print` with its host,
/// until every stream ends or the user interrupts; streams that fail are reported on stderr.
pub async fn stream_all(
    targets: &[AgentTarget],
    client: &AgentClient,
    request: &pmfleet_shared::protocol::Request,
    print: impl Fn(&str, pmfleet_shared::protocol::Response) + Clone + Send + Sync + 'static,
) -> crate::deploy::Exit {
    use crate::deploy::Exit;
    let streams = each(targets, |target| {
        let client = client.clone();
        let request = request.clone();
        let print = print.clone();
        async move {
            let host = target.label();
            let result = client
                .stream(
                    &target.host,
                    target.port,
                    &target.via,
                    &request,
                    |response| {
                        print(&host, response);
                        true
                    },
                )
                .await;
            (target, result)
        }
    });
    let results = tokio::select! {
        results = streams => results,
        _ = tokio::signal::ctrl_c() => return Exit::Success,
    };
    let mut exit = Exit::Success;
    for (target, result) in results {
        if let Err(e) = result {
            eprintln!("{} | error | {e}", target.label());
            exit = if e.is_unreachable() {
                Exit::Unreachable
            } else {
                Exit::Failed
            };
        }
    }
    exit
}
