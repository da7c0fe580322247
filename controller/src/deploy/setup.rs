//! `pmfleet deploy <env> setup`: idempotent. `pre-setup`, the layout, the mirror (for
//! `fetch: host`), `post-setup`.

use std::sync::Arc;
use std::time::Instant;

use pmfleet_shared::ecosystem::{DeployEnv, FetchMode};

use super::Context;
use super::error::HostError;
use super::fleet::{Fleet, each};
use super::history::{Action, Outcome, Record};
use super::report::{HostReport, Status};
use super::scripts::{self, HookDir, Pm2};
use crate::agent::provision::{Kit, KitError, provision};

/// Sets up every host; `Err` (said once, for the whole fleet) when what the agents need is
/// missing on this machine: the fleet CA or the agent binary.
pub async fn setup(ctx: &Context, env: &DeployEnv) -> Result<Vec<HostReport>, KitError> {
    let kit = match &env.agent {
        Some(_) => Some(Arc::new(Kit::load(ctx.upgrade_agent)?)),
        None => None,
    };
    let fleet = Fleet::connect(env, &ctx.connector, &ctx.out).await;
    let mut reports = fleet.not_connected.clone();
    let hook_env: Vec<(String, String)> = env
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain([("PMFLEET_ENV".to_string(), env.name.clone())])
        .collect();
    let results = each(&fleet.members, |m| {
        let env = env.clone();
        let out = ctx.out.clone();
        let hook_env = hook_env.clone();
        let kit = kit.clone();
        let (run_id, who) = (ctx.run_id.clone(), ctx.who.clone());
        async move {
            let started = Instant::now();
            let root = &env.path;
            let host = &m.label;
            let result: Result<String, SetupError> = async {
                if let Some(hook) = &env.hooks.pre_setup {
                    out.step(host, "pre-setup");
                    let script = scripts::run_hook(
                        root,
                        HookDir::Login,
                        hook,
                        &hook_env,
                        None,
                        Pm2::for_env(&env),
                    );
                    m.run_visible(&out, "pre-setup", &script).await?;
                }
                out.step(host, "directories");
                let expanded = m.run(&scripts::setup_dirs(root)).await?;
                if env.fetch == FetchMode::Host {
                    out.step(host, "mirror");
                    m.run(&scripts::mirror(root, &env.repo))
                        .await
                        .map_err(|error| SetupError::Mirror {
                            repo: env.repo.clone(),
                            error,
                        })?;
                }
                if let Some(hook) = &env.hooks.post_setup {
                    out.step(host, "post-setup");
                    let script = scripts::run_hook(
                        root,
                        HookDir::Root,
                        hook,
                        &hook_env,
                        None,
                        Pm2::for_env(&env),
                    );
                    m.run_visible(&out, "post-setup", &script).await?;
                }
                let mut message = format!("set up in {}", expanded.stdout.trim());
                if let (Some(kit), Some(settings)) = (&kit, &env.agent) {
                    out.step(host, "agent");
                    let agent = provision(kit, settings, root, &m)
                        .await
                        .map_err(SetupError::Agent)?;
                    message = format!("{message}; {agent}");
                }
                Ok(message)
            }
            .await;
            let (status, message) = match result {
                Ok(message) => (Status::Ok, message),
                Err(e) => (e.status(), e.to_string()),
            };
            if status != Status::Unreachable {
                let outcome = if status == Status::Ok {
                    Outcome::Success
                } else {
                    Outcome::Failed
                };
                let record = Record::event(&run_id, Action::Setup, &who, outcome, &message);
                // Best effort: a host that could not be set up may have nowhere to write it.
                let _ = m.run(&scripts::record_event(root, &record.to_line())).await;
            }
            out.done(host, status == Status::Ok, &message);
            let mut report = HostReport::new(host, status, message);
            report.elapsed = started.elapsed();
            report
        }
    })
    .await;
    reports.extend(results);
    Ok(reports)
}

/// Why setting up one host failed.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("mirror of {repo}: {error}")]
    Mirror { repo: String, error: HostError },
    /// Installing, certifying or starting the agent failed.
    #[error("agent: {0}")]
    Agent(String),
}

impl SetupError {
    fn status(&self) -> Status {
        match self {
            SetupError::Host(e) | SetupError::Mirror { error: e, .. } => e.status(),
            SetupError::Agent(_) => Status::Failed,
        }
    }
}
