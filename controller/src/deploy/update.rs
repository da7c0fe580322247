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
use super::rollout::{Config, Plan, Rails, ReleaseVars, Rollout};
use super::{Context, archive, new_release_id};
use crate::agent::apply::Agents;
use crate::secrets::references::split_hook_env;

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
    // What the apps run with (in the marker): secrets only named, never their values.
    let mut app_env: Vec<(String, String)> = env
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    app_env.extend([
        ("PMFLEET_ENV".to_string(), env.name.clone()),
        ("PMFLEET_RELEASE".to_string(), id.clone()),
        ("PMFLEET_SHA".to_string(), revision.sha.clone()),
        ("PMFLEET_REF".to_string(), git_ref.clone()),
    ]);
    if let Some(on_started) = &ctx.on_started {
        on_started(&super::Started {
            release: id.clone(),
            sha: revision.sha.clone(),
            git_ref: git_ref.clone(),
        });
    }
    let mut hook_env = app_env.clone();
    hook_env.extend(hook_context(ctx, env));

    if let Some(hook) = &env.hooks.pre_deploy_local {
        out.step("local", "pre-deploy-local");
        // On the controller the values go in the hook's environment (never its command line).
        let (mut plain, hidden) = split_hook_env(&hook_env, &ctx.secrets);
        plain.extend(hidden);
        run_local_hook(ctx, "pre-deploy-local", hook, &plain).await?;
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
            app_env,
            secrets: ctx.secrets.clone(),
        })),
        secrets: ctx.secrets.clone(),
    });
    let machine = Rollout::new(Config {
        plan: Plan::Deploy {
            release: vars,
            batch: env.batch,
            max_fail: env.max_fail,
            rails: Rails {
                release_step: env.hooks.release.is_some(),
                primary: env.primary,
                watch: settings.agents.is_some() && !env.watch_period.is_zero(),
                confirm: settings.agents.is_some(),
            },
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

/// What every hook is told about the run besides the release: who, which hosts, and the
/// outcome so far (`running`).
pub fn hook_context(ctx: &Context, env: &DeployEnv) -> Vec<(String, String)> {
    let hosts: Vec<String> = env.hosts.iter().map(fleet::label).collect();
    vec![
        ("PMFLEET_PERFORMER".to_string(), ctx.who.clone()),
        ("PMFLEET_HOSTS".to_string(), hosts.join(",")),
        ("PMFLEET_OUTCOME".to_string(), "running".to_string()),
    ]
}

/// Runs hook `step` on the controller in the ecosystem file's directory, `env` in its
/// environment (never on its command line); its output is shown line by line through the
/// run's output, so a secret it prints is masked like everything else.
pub async fn run_local_hook(
    ctx: &Context,
    step: &'static str,
    hook: &str,
    env: &[(String, String)],
) -> Result<(), LocalHookError> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(hook)
        .current_dir(&ctx.workdir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pump = |reader: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        let out = ctx.out.clone();
        async move {
            let Some(reader) = reader else { return };
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                out.line("local", step, &line);
            }
        }
    };
    let stdout = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let stderr = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let (_, _, status) = tokio::join!(pump(stdout), pump(stderr), child.wait());
    let status = status?;
    if status.success() {
        Ok(())
    } else {
        Err(LocalHookError::Exit(status))
    }
}
