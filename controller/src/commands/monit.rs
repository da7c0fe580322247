//! `pmfleet monit [file] [env…]`: PM2's monit for the whole fleet, in the terminal
//! ([`pmfleet_shared::monit`]). Every host of the environments is asked each second on a
//! connection kept for it ([`FleetSessions`]), each under its own deadline; verbs go to the
//! selected host's agent over the same mutual TLS and with the same certificate role as
//! `pmfleet app`, and each is added to the audit trail ([`view_action`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::AgentClient;
use clap::Args;
use pmfleet_shared::monit::{self, Answer, HostName, Options, Source};
use pmfleet_shared::protocol::{AgentStatus, AppSpec, Request, Response};
use tokio::sync::mpsc;

use crate::agent::sessions::FleetSessions;
use crate::agent::targets::{self as agents, AgentTarget};
use crate::audit::view_action::{self, Actor};
use crate::cli::parse_duration;
use crate::deploy::Exit;
use crate::last_ecosystem;

#[derive(Debug, Args)]
pub struct MonitArgs {
    #[arg(
        value_name = "ARGS",
        help = "[ECOSYSTEM_FILE] [ENVIRONMENT…] (every environment when none is named)"
    )]
    pub words: Vec<String>,
    /// How often each host is asked.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub refresh: Duration,
    /// How long each host may take to answer.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The ecosystem file (default: the one here, else the last one a command used).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// The agents of the environments named by `words` (a file first, as `status` takes them),
/// a client to ask them with, each answer within `timeout`, and the ecosystem file they are
/// from: what the fleet views start from.
pub(crate) fn load_fleet(
    words: &[String],
    file: Option<PathBuf>,
    timeout: Duration,
) -> Result<(Vec<AgentTarget>, AgentClient, PathBuf), String> {
    let (named, envs) = super::status::split_words(words);
    let file = file.or(named);
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let (eco, _) = last_ecosystem::load(file.as_deref(), &cwd, &last_ecosystem::memo_path())
        .map_err(|e| e.to_string())?;
    let targets = agents::targets(&eco, &envs)?;
    if targets.is_empty() {
        return Err("no host runs a pmfleet agent in these environments (`agent: false`?)".into());
    }
    Ok((targets, agents::client(timeout)?, eco.source.clone()))
}

pub async fn run(args: MonitArgs) -> Exit {
    let (targets, client, ecosystem) =
        match load_fleet(&args.words, args.file.clone(), args.timeout) {
            Ok(fleet) => fleet,
            Err(message) => {
                eprintln!("error: {message}");
                return Exit::BadConfig;
            }
        };
    let names = targets
        .iter()
        .map(|t| HostName {
            label: t.label(),
            env: t.env.clone(),
        })
        .collect();
    let actor = Actor {
        performer: format!("{} via monit", crate::deploy::who_in(ecosystem.parent())),
        view: "pmfleet monit".into(),
        ecosystem,
    };
    let source = FleetSource {
        sessions: FleetSessions::new(client, targets),
        actor,
    };
    let options = Options {
        refresh: args.refresh,
        deadline: args.timeout,
    };
    match monit::run(names, Arc::new(source), options).await {
        Ok(()) => Exit::Success,
        Err(e) => {
            eprintln!("error: monit needs a terminal: {e}");
            Exit::Failed
        }
    }
}

/// The fleet over mutual TLS.
struct FleetSource {
    sessions: FleetSessions,
    /// Who the actions are recorded for in the audit trail.
    actor: Actor,
}

impl Source for FleetSource {
    fn status(&self, host: usize) -> Answer<AgentStatus> {
        let sessions = self.sessions.clone();
        Box::pin(async move {
            match sessions.ask(host, &Request::Status).await {
                Ok(Response::Status(s)) => Ok(s),
                Ok(other) => Err(format!("unexpected answer: {other:?}")),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn request(&self, host: usize, request: Request) -> Answer<Vec<String>> {
        let sessions = self.sessions.clone();
        let actor = self.actor.clone();
        Box::pin(async move {
            match view_action::send(&sessions, host, &request, &actor).await {
                Ok(Response::Done { messages }) => Ok(messages),
                Ok(other) => Ok(vec![format!("{other:?}")]),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn describe(&self, host: usize, app: String) -> Answer<AppSpec> {
        let sessions = self.sessions.clone();
        Box::pin(async move {
            match sessions.ask(host, &Request::Show { app }).await {
                Ok(Response::App { app }) => Ok(app.spec),
                Ok(other) => Err(format!("unexpected answer: {other:?}")),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn follow_logs(&self, host: usize, app: String, lines: mpsc::Sender<String>) -> Answer<()> {
        let sessions = self.sessions.clone();
        Box::pin(async move {
            let target = sessions.targets.get(host).cloned().ok_or("no such host")?;
            let request = Request::Logs {
                app: Some(app),
                lines: 50,
                follow: true,
            };
            sessions
                .client
                .stream(
                    &target.host,
                    target.port,
                    &target.via,
                    &request,
                    |r| match r {
                        Response::Log(l) => {
                            lines.try_send(format!("{} | {}", l.file, l.line)).is_ok()
                                || !lines.is_closed()
                        }
                        _ => true,
                    },
                )
                .await
                .map_err(|e| e.to_string())
        })
    }
}
