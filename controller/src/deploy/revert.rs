//! `pmfleet deploy <env> revert [N]`: every host back to the release N deploys before the
//! current one, or with no N to the newest release every host holds — the same release
//! everywhere, already built, so nothing is fetched or rebuilt.
//! The rules (one target or none, every host or none) are the rollout's; see
//! [`super::rollout`].

use std::sync::Arc;

use pmfleet_shared::ecosystem::DeployEnv;

use super::Context;
use super::fleet;
use super::remote::{self, Settings};
use super::report::{HostReport, Status};
use super::rollout::driver::{Run, drive};
use super::rollout::{Config, Plan, RevertTo, Rollout};
use crate::agent::apply::Agents;

pub async fn revert(ctx: &Context, env: &DeployEnv, to: RevertTo) -> Vec<HostReport> {
    let out = &ctx.out;
    let agents = match Agents::for_env(env) {
        Ok(agents) => agents,
        Err(e) => {
            return env
                .hosts
                .iter()
                .map(|h| HostReport::new(&fleet::label(h), Status::Failed, e.to_string()))
                .collect();
        }
    };
    let run = Run::new(ctx, &env.name, "revert");
    let settings = Arc::new(Settings {
        run: run.deploy_id.clone(),
        env: env.clone(),
        out: out.clone(),
        agents,
        release: None,
        secrets: ctx.secrets.clone(),
    });
    let machine = Rollout::new(Config {
        plan: Plan::Revert { to },
        env: env.name.clone(),
        labels: env.hosts.iter().map(fleet::label).collect(),
        // After each switch the host runs the apps of its new `current`: its agent does,
        // or, without agents, the `published` hook.
        agents: settings.agents.is_some() || env.hooks.published.is_some(),
        lock_wait: ctx.lock_wait.is_some(),
        keep_releases: env.keep_releases,
    });
    let hosts = remote::connect(&ctx.connector, &settings).await;
    drive(machine, hosts, &run).await
}
