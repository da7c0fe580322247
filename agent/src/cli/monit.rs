//! `pmfleet-agent monit`: the fleet's monit screen ([`pmfleet_shared::monit`]) for this one
//! host, over the agent's local socket: its apps, their CPU and memory, logs, settings and
//! its own metrics, and restart / reload / stop after a confirmation.

use std::process::ExitCode;
use std::sync::Arc;

use pmfleet_shared::monit::{self, Answer, HostName, Options, Source};
use pmfleet_shared::protocol::{AgentStatus, AppSpec, Request, Response};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::home::AgentHome;

pub async fn run(home: &AgentHome) -> anyhow::Result<ExitCode> {
    // Start the daemon if it is not running, as every verb does.
    Client::connect(home, true).await?;
    let label = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "this host".into());
    let names = vec![HostName {
        label,
        env: String::new(),
    }];
    let source = Local { home: home.clone() };
    monit::run(names, Arc::new(source), Options::default())
        .await
        .map_err(|e| anyhow::anyhow!("monit needs a terminal: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// This host's daemon, one local connection per request.
struct Local {
    home: AgentHome,
}

async fn ask(home: AgentHome, request: Request) -> Result<Response, String> {
    let mut client = Client::connect(&home, false)
        .await
        .map_err(|e| e.to_string())?;
    match client.request(&request).await.map_err(|e| e.to_string())? {
        Response::Error(e) => Err(e.message),
        other => Ok(other),
    }
}

impl Source for Local {
    fn status(&self, _host: usize) -> Answer<AgentStatus> {
        let home = self.home.clone();
        Box::pin(async move {
            match ask(home, Request::Status).await? {
                Response::Status(s) => Ok(s),
                other => Err(format!("unexpected answer: {other:?}")),
            }
        })
    }

    fn request(&self, _host: usize, request: Request) -> Answer<Vec<String>> {
        let home = self.home.clone();
        Box::pin(async move {
            match ask(home, request).await? {
                Response::Done { messages } => Ok(messages),
                other => Ok(vec![format!("{other:?}")]),
            }
        })
    }

    fn describe(&self, _host: usize, app: String) -> Answer<AppSpec> {
        let home = self.home.clone();
        Box::pin(async move {
            match ask(home, Request::Show { app }).await? {
                Response::App { app } => Ok(app.spec),
                other => Err(format!("unexpected answer: {other:?}")),
            }
        })
    }

    fn follow_logs(&self, _host: usize, app: String, lines: mpsc::Sender<String>) -> Answer<()> {
        let home = self.home.clone();
        Box::pin(async move {
            let mut client = Client::connect(&home, false)
                .await
                .map_err(|e| e.to_string())?;
            let request = Request::Logs {
                app: Some(app),
                lines: 50,
                follow: true,
            };
            let mut next = client.request(&request).await.map_err(|e| e.to_string())?;
            loop {
                match next {
                    Response::Log(l)
                        if lines
                            .send(format!("{} | {}", l.file, l.line))
                            .await
                            .is_err() =>
                    {
                        return Ok(());
                    }
                    Response::Error(e) => return Err(e.message),
                    Response::End => return Ok(()),
                    _ => {}
                }
                next = match client.next().await.map_err(|e| e.to_string())? {
                    Some(r) => r,
                    None => return Ok(()),
                };
            }
        })
    }
}
