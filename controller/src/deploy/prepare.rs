//! Preparing a release on one host, step by step: check the layout (and remove what a deploy
//! that died left), `pre-deploy`, fetch the commit into `releases/<id>`, link the shared paths,
//! `post-deploy`, mark it complete. A step that fails removes the new release.

use pmfleet_shared::protocol::PreparedRelease;
use std::sync::Arc;

use pmfleet_shared::ecosystem::DeployEnv;

use super::error::{HostError, Step, StepFailure};
use super::fleet::Member;
use super::revision::Revision;
use super::rollout::Prepared;
use super::scripts::{self, HookDir, Pm2};
use crate::output::Output;
use crate::secrets::references::split_hook_env;
use crate::transport::SharedBytes;

/// What every host gets: the same release id and commit.
pub struct NewRelease {
    pub id: String,
    pub revision: Revision,
    /// The commit's tree as a tar, for `fetch: push`.
    pub archive: Option<Arc<Vec<u8>>>,
    /// The hooks' environment: `deploy.<env>.env` and the `PMFLEET_*` variables (a secret's
    /// value given on the hook's stdin, see [`hook`]).
    pub hook_env: Vec<(String, String)>,
    /// What the apps run with, in the release marker: `deploy.<env>.env` (secrets named,
    /// not given) and `PMFLEET_ENV`, `PMFLEET_RELEASE`, `PMFLEET_SHA`, `PMFLEET_REF`.
    pub app_env: Vec<(String, String)>,
    /// The environment's secrets: written to `<root>/.pmfleet/secrets` before the release
    /// is marked complete.
    pub secrets: Arc<crate::secrets::Resolved>,
}

/// One hook of a release: its step name, where it runs, its command, and whether a `pm2`
/// in it is skipped.
pub(super) struct Hook<'a> {
    pub step: &'static str,
    pub dir: HookDir<'a>,
    pub command: &'a str,
    pub pm2: Pm2,
}

/// Runs a hook of `release` on `member`, its secrets on stdin.
pub(super) async fn hook(
    member: &Member,
    out: &Output,
    hook: Hook<'_>,
    root: &str,
    release: &NewRelease,
    run: &str,
) -> Result<(), HostError> {
    let Hook {
        step,
        dir,
        command,
        pm2,
    } = hook;
    let (plain, hidden) = split_hook_env(&release.hook_env, &release.secrets);
    if hidden.is_empty() {
        let script = scripts::run_hook(root, dir, command, &plain, Some(run), pm2);
        return member.run_visible(out, step, &script).await;
    }
    let (script, input) =
        scripts::run_hook_with_secrets(root, dir, command, &plain, &hidden, Some(run), pm2);
    let stdin: crate::transport::Stdin = Box::new(std::io::Cursor::new(input));
    member
        .run_visible_with_stdin(out, step, &script, Some(stdin))
        .await
}

/// Prepares `release` on `member`; returns what it left and the deploy root with `~` expanded.
pub async fn prepare(
    member: &Member,
    env: &DeployEnv,
    release: &NewRelease,
    run: &str,
    out: &Output,
) -> Result<(Prepared, Option<String>), StepFailure> {
    let root = &env.path;
    let host = &member.label;

    out.step(host, "check");
    let cleanup = member
        .run(&scripts::cleanup(root, run))
        .await
        .map_err(|e| StepFailure::new(Step::Check)(e.lock_checked()))?;
    if cleanup.stdout.starts_with("NOSETUP") {
        return Err(StepFailure {
            step: Step::Check,
            error: HostError::NotSetUp {
                env: env.name.clone(),
            },
        });
    }
    let mut lines = cleanup.stdout.lines();
    let expanded = lines
        .next()
        .and_then(|l| l.strip_prefix("root="))
        .map(str::to_string);
    for leftover in lines {
        out.line(
            host,
            "cleanup",
            &format!("removed incomplete release {leftover}"),
        );
    }
    if let Some(hook) = &env.hooks.pre_deploy {
        out.step(host, "pre-deploy");
        let pre = Hook {
            step: "pre-deploy",
            dir: HookDir::Current,
            command: hook,
            pm2: Pm2::for_env(env),
        };
        self::hook(member, out, pre, root, release, run)
            .await
            .map_err(StepFailure::new(Step::PreDeploy))?;
    }

    let result = build(member, env, release, run, out).await;
    if let Err(failure) = &result {
        out.line(
            host,
            failure.step.name(),
            &format!("failed: {}; removing release {}", failure.error, release.id),
        );
        // What cannot be removed now is removed by the next deploy's cleanup.
        let _ = member.run(&scripts::discard(root, run, &release.id)).await;
    }
    result.map(|prepared| (prepared, expanded))
}

/// Fetch, link shared, `post-deploy`, mark complete.
async fn build(
    member: &Member,
    env: &DeployEnv,
    release: &NewRelease,
    run: &str,
    out: &Output,
) -> Result<Prepared, StepFailure> {
    let root = &env.path;
    let host = &member.label;

    out.step(host, "fetch");
    match &release.archive {
        Some(bytes) => {
            let stdin = SharedBytes::stdin(bytes);
            member
                .run_with_stdin(&scripts::fetch_push(root, &release.id), Some(stdin))
                .await
                .map_err(StepFailure::new(Step::Fetch))?;
        }
        None => {
            let script = scripts::fetch_host(root, &env.repo, &release.revision.sha, &release.id);
            member
                .run(&script)
                .await
                .map_err(StepFailure::new(Step::Fetch))?;
        }
    }
    if !env.shared_dirs.is_empty() || !env.shared_files.is_empty() {
        out.step(host, "link shared");
        let script = scripts::link_shared(root, &release.id, &env.shared_dirs, &env.shared_files);
        member
            .run(&script)
            .await
            .map_err(StepFailure::new(Step::LinkShared))?;
    }
    if let Some(hook) = &env.hooks.post_deploy {
        out.step(host, "post-deploy");
        let post = Hook {
            step: "post-deploy",
            dir: HookDir::Release(&release.id),
            command: hook,
            pm2: Pm2::for_env(env),
        };
        self::hook(member, out, post, root, release, run)
            .await
            .map_err(StepFailure::new(Step::PostDeploy))?;
    }
    // The secrets the apps name, over stdin into the one 0600 file of the deploy root.
    let stdin: crate::transport::Stdin =
        Box::new(std::io::Cursor::new(release.secrets.host_file()));
    member
        .run_with_stdin(&scripts::write_secrets(root, run), Some(stdin))
        .await
        .map_err(|e| StepFailure::new(Step::Finish)(e.lock_checked()))?;
    // What the agent runs the release's apps with, written here over SSH (never sent to it).
    let prepared = PreparedRelease {
        env_name: env.name.clone(),
        env: release.app_env.iter().cloned().collect(),
    };
    let marked = member
        .run(&scripts::mark_prepared(root, run, &release.id, &prepared))
        .await
        .map_err(|e| StepFailure::new(Step::Finish)(e.lock_checked()))?;
    out.step(host, "ready to switch");
    Ok(Prepared {
        has_apps: marked.stdout.contains("ecosystem="),
    })
}
