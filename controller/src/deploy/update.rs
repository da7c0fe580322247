//! `pmfleet deploy <env>` (PM2's `update`): resolve `ref` to one commit on the controller,
//! run `pre-deploy-local`, connect, then hand the hosts to the rollout (prepared on every
//! host, switched on every host or on none; see [`super::rollout`]).

use std::sync::Arc;

use pmfleet_shared::ecosystem::{DeployEnv, FetchMode};

use super::error::{DeployError, LocalHookError};
use super::fleet;
use super::prepare::NewRelease;
use super::remote::{self, Settings};
use super::report::{HostReport, Status};
use super::revision::{RepoCache, Revision};
use super::rollout::driver::{Run, drive};
use super::rollout::{Config, Plan, ReleaseVars, Rollout};
use super::{Context, archive, new_release_id};
use crate::agent::apply::Agents;

pub async fn update(ctx: &Context, env: &DeployEnv, ref_override: Option<&str>) -> Vec<HostReport> {
    match run(ctx, env, ref_override).await {
        Ok(reports) => reports,
        Err(e) => env
            .hosts
            .iter()
            .map(|h| HostReport::new(&fleet::label(h), Status::Failed, e.to_string()))
            .collect(),
    }
}

async fn run(
    ctx: &Context,
    env: &DeployEnv,
    ref_override: Option<&str>,
) -> Result<Vec<HostReport>, DeployError> {
    let out = &ctx.out;
    let git_ref = ref_override.unwrap_or(&env.git_ref).to_string();
    out.info(&format!("fetching {} to resolve `{git_ref}`", env.repo));
    let (revision, archive) = {
        let cache_root = ctx.cache_root.clone();
        let repo = env.repo.clone();
        let git_ref = git_ref.clone();
        let push = env.fetch == FetchMode::Push;
        tokio::task::spawn_blocking(
            move || -> Result<(Revision, Option<archive::Archive>), DeployError> {
                let cache = RepoCache::fetch(&cache_root, &repo)?;
                let revision = cache.resolve(&git_ref)?;
                let archive = if push {
                    let commit = cache.commit(&revision.sha)?;
                    Some(
                        archive::archive_commit(cache.repository(), &commit).map_err(|source| {
                            DeployError::Archive {
                                sha: revision.sha.clone(),
                                source,
                            }
                        })?,
                    )
                } else {
                    None
                };
                Ok((revision, archive))
            },
        )
        .await??
    };
    out.info(&format!(
        "`{git_ref}` is {} \"{}\": deploying it to {} host(s)",
        revision.short_sha(),
        revision.summary,
        env.hosts.len()
    ));
    if let Some(archive) = &archive {
        for path in &archive.skipped_submodules {
            out.info(&format!(
                "submodule {path} is not part of the pushed archive"
            ));
        }
    }

    let id = new_release_id();
    let mut hook_env: Vec<(String, String)> = env
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    hook_env.extend([
        ("PMFLEET_ENV".to_string(), env.name.clone()),
        ("PMFLEET_RELEASE".to_string(), id.clone()),
        ("PMFLEET_SHA".to_string(), revision.sha.clone()),
        ("PMFLEET_REF".to_string(), git_ref.clone()),
    ]);

    if let Some(hook) = &env.hooks.pre_deploy_local {
        out.step("local", "pre-deploy-local");
        run_local_hook(ctx, hook, &hook_env).await?;
    }
    let agents = Agents::for_env(env)?;

    let vars = ReleaseVars {
        release: id.clone(),
        sha: Some(revision.sha.clone()),
        git_ref: Some(revision.git_ref.clone()),
    };
    let run = Run::new(ctx, &env.name, "deploy");
    let settings = Arc::new(Settings {
        run: run.deploy_id.clone(),
        env: env.clone(),
        out: out.clone(),
        agents,
        release: Some(Arc::new(NewRelease {
            id,
            revision,
            archive: archive.map(|a| Arc::new(a.bytes)),
            hook_env,
        })),
    });
    let machine = Rollout::new(Config {
        plan: Plan::Deploy {
            release: vars,
            batch: env.batch,
            max_fail: env.max_fail,
        },
        env: env.name.clone(),
        labels: env.hosts.iter().map(fleet::label).collect(),
        // After each switch the host runs the apps of its new `current`: its agent does,
        // or, without agents, the `published` hook.
        agents: settings.agents.is_some() || env.hooks.published.is_some(),
        lock_wait: ctx.lock_wait.is_some(),
        keep_releases: env.keep_releases,
    });
    let hosts = remote::connect(&ctx.connector, &settings).await;
    Ok(drive(machine, hosts, &run).await)
}

async fn run_local_hook(
    ctx: &Context,
    hook: &str,
    env: &[(String, String)],
) -> Result<(), LocalHookError> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(hook)
        .current_dir(&ctx.workdir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(LocalHookError::Exit(status))
    }
}
