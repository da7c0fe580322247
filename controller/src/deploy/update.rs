//! `pmfleet deploy <env>` (PM2's `update`): one commit, prepared on every host in parallel,
//! then switched — on every host or on none.

use pmfleet_shared::protocol::PreparedRelease;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pmfleet_shared::ecosystem::{Batch, DeployEnv, FetchMode};

use super::apply::Agents;
use super::fleet::{Fleet, Member, each};
use super::history::{Action, Outcome, Record};
use super::lock::{self, Holder};
use super::report::{HostReport, Status};
use super::revision::{RepoCache, Revision};
use super::scripts::{self, HookDir};
use super::{Context, archive, new_release_id, now_rfc3339};
use crate::output::Output;
use crate::transport::SharedBytes;

/// Everything a host needs to prepare and switch one release.
struct Release {
    env: DeployEnv,
    id: String,
    deploy_id: String,
    revision: Revision,
    who: String,
    archive: Option<Arc<Vec<u8>>>,
    hook_env: Vec<(String, String)>,
    out: Arc<Output>,
    /// The hosts' agents, which run the apps of the release once it is current.
    agents: Option<Agents>,
    /// Each host's deploy root with `~` expanded, by host label (the agent needs real paths).
    roots: Mutex<HashMap<String, String>>,
    /// Hosts whose new release has no ecosystem file: no apps for the agent to run there.
    without_apps: Mutex<HashSet<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A step that failed on one host.
struct StepError {
    step: &'static str,
    message: String,
}

pub async fn update(ctx: &Context, env: &DeployEnv, ref_override: Option<&str>) -> Vec<HostReport> {
    let out = &ctx.out;
    let git_ref = ref_override.unwrap_or(&env.git_ref).to_string();
    out.info(&format!("fetching {} to resolve `{git_ref}`", env.repo));
    let resolved = {
        let cache_root = ctx.cache_root.clone();
        let repo = env.repo.clone();
        let git_ref = git_ref.clone();
        let push = env.fetch == FetchMode::Push;
        tokio::task::spawn_blocking(
            move || -> Result<(Revision, Option<archive::Archive>), String> {
                let cache = RepoCache::fetch(&cache_root, &repo).map_err(|e| e.to_string())?;
                let revision = cache.resolve(&git_ref).map_err(|e| e.to_string())?;
                let archive = if push {
                    let commit = cache.commit(&revision.sha).map_err(|e| e.to_string())?;
                    Some(
                        archive::archive_commit(cache.repository(), &commit)
                            .map_err(|e| format!("could not archive {}: {e}", revision.sha))?,
                    )
                } else {
                    None
                };
                Ok((revision, archive))
            },
        )
        .await
        .unwrap_or_else(|e| Err(format!("revision task failed: {e}")))
    };
    let (revision, archive) = match resolved {
        Ok(v) => v,
        Err(message) => return all_hosts(env, Status::Failed, &message),
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
    let deploy_id = uuid::Uuid::new_v4().to_string();
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
        if let Err(message) = run_local_hook(ctx, hook, &hook_env).await {
            return all_hosts(
                env,
                Status::Failed,
                &format!("pre-deploy-local failed: {message}"),
            );
        }
    }

    let agents = match Agents::for_env(env) {
        Ok(agents) => agents,
        Err(message) => return all_hosts(env, Status::Failed, &message),
    };

    let fleet = Fleet::connect(env, &ctx.connector, out).await;
    let mut reports = fleet.not_connected.clone();
    if reports.len() > env.max_fail || fleet.members.is_empty() {
        reports.extend(not_started(
            &fleet.members,
            "not deployed: another host could not be reached",
        ));
        return reports;
    }

    let holder = Holder::new(&ctx.who, &deploy_id, "deploy");
    let guard =
        match lock::acquire_all(&fleet.members, &env.path, &env.name, &holder, ctx.lock_wait).await
        {
            Ok(guard) => guard,
            Err(refused) => {
                for r in &refused {
                    out.done(&r.host, false, &r.message);
                }
                let refused_hosts: Vec<String> = refused.iter().map(|r| r.host.clone()).collect();
                reports.extend(refused);
                let others: Vec<Arc<Member>> = fleet
                    .members
                    .iter()
                    .filter(|m| !refused_hosts.contains(&m.label))
                    .cloned()
                    .collect();
                reports.extend(not_started(
                    &others,
                    "not deployed: another host is locked or not set up",
                ));
                return reports;
            }
        };

    let release = Arc::new(Release {
        env: env.clone(),
        id: id.clone(),
        deploy_id,
        revision,
        who: ctx.who.clone(),
        archive: archive.map(|a| Arc::new(a.bytes)),
        hook_env,
        out: out.clone(),
        agents,
        roots: Default::default(),
        without_apps: Default::default(),
    });

    let started = Instant::now();
    let prepared = tokio::select! {
        prepared = each(&fleet.members, |m| {
            let release = release.clone();
            async move { prepare(&release, &m).await }
        }) => Some(prepared),
        _ = ctx.cancel.cancelled() => None,
    };
    let Some(prepared) = prepared.filter(|_| !ctx.cancel.is_cancelled()) else {
        let why = "interrupted before the switch: nothing switched, the new release was removed";
        release.discard_on(&fleet.members, "interrupted").await;
        for member in &fleet.members {
            out.done(&member.label, false, why);
            reports.push(release.report(member, Status::Failed, why.to_string(), started));
        }
        guard.release().await;
        return reports;
    };

    let mut ready: Vec<Arc<Member>> = Vec::new();
    let mut failed = reports.len();
    for (member, result) in fleet.members.iter().zip(prepared) {
        match result {
            Ok(()) => ready.push(member.clone()),
            Err(err) => {
                failed += 1;
                let message = format!("{}: {}", err.step, err.message);
                out.done(&member.label, false, &message);
                let report = release.report(member, Status::Failed, message, started);
                release
                    .record(member, Outcome::Failed, None, Some(&report.message))
                    .await;
                reports.push(report);
            }
        }
    }

    if failed > env.max_fail {
        let why = format!(
            "not switched: {failed} host(s) failed and max_fail is {}; this release was removed",
            env.max_fail
        );
        release.discard_on(&ready, "another host failed").await;
        for member in &ready {
            out.done(&member.label, false, &why);
            reports.push(release.report(member, Status::Aborted, why.clone(), started));
        }
        guard.release().await;
        return reports;
    }

    reports.extend(switch_in_batches(&release, &ready, failed, started).await);
    guard.release().await;
    reports
}

impl Release {
    /// Removes the new release from `members`, which did not switch, and records why.
    async fn discard_on(self: &Arc<Self>, members: &[Arc<Member>], why: &str) {
        each(members, |m| {
            let release = self.clone();
            let why = why.to_string();
            async move {
                let _ = m
                    .run(&scripts::discard(&release.env.path, &release.id))
                    .await;
                release.record(&m, Outcome::Aborted, None, Some(&why)).await;
            }
        })
        .await;
    }

    fn report(
        &self,
        member: &Member,
        status: Status,
        message: String,
        started: Instant,
    ) -> HostReport {
        HostReport {
            host: member.label.clone(),
            status,
            release: Some(self.id.clone()),
            sha: Some(self.revision.sha.clone()),
            elapsed: started.elapsed(),
            message,
        }
    }

    async fn record(
        &self,
        member: &Member,
        outcome: Outcome,
        previous: Option<String>,
        message: Option<&str>,
    ) {
        let line = self.history_line(outcome, previous, message);
        if let Err(e) = member.run(&scripts::record(&self.env.path, &line)).await {
            self.out.line(
                &member.label,
                "history",
                &format!("could not record history: {e}"),
            );
        }
    }

    /// Records the successful switch and prunes old releases, in one command; returns how many
    /// releases were pruned.
    async fn record_success(&self, member: &Member, previous: Option<String>) -> usize {
        let line = self.history_line(Outcome::Success, previous, None);
        // Never prune a release an app still runs from (one the new release's file no
        // longer lists keeps running where it was).
        let mut protect = vec![self.id.clone()];
        if let Some(agents) = &self.agents {
            protect.extend(agents.releases_in_use(member).await);
        }
        let script =
            scripts::record_and_prune(&self.env.path, &line, self.env.keep_releases, &protect);
        match member.run(&script).await {
            Ok(c) => c.stdout.lines().count(),
            Err(e) => {
                self.out.line(
                    &member.label,
                    "history",
                    &format!("could not record history or prune: {e}"),
                );
                0
            }
        }
    }

    fn history_line(
        &self,
        outcome: Outcome,
        previous: Option<String>,
        message: Option<&str>,
    ) -> String {
        let record = Record {
            id: self.deploy_id.clone(),
            action: Action::Deploy,
            release: self.id.clone(),
            previous,
            sha: self.revision.sha.clone(),
            git_ref: self.revision.git_ref.clone(),
            who: self.who.clone(),
            when: now_rfc3339(),
            outcome,
            message: message.map(str::to_string),
        };
        serde_json::to_string(&record).unwrap_or_default()
    }
}

/// Fetch, link shared, `post-deploy`, mark complete. On failure the new release is removed.
async fn prepare(release: &Release, member: &Member) -> Result<(), StepError> {
    let out = &release.out;
    let root = &release.env.path;
    let host = &member.label;
    let fail = |step: &'static str| move |message: String| StepError { step, message };

    out.step(host, "check");
    let cleanup = member
        .run(&scripts::cleanup(root))
        .await
        .map_err(fail("check"))?;
    if cleanup.stdout.starts_with("NOSETUP") {
        return Err(StepError {
            step: "check",
            message: format!(
                "not set up: run `pmfleet deploy {} setup` first",
                release.env.name
            ),
        });
    }
    let mut lines = cleanup.stdout.lines();
    if let Some(expanded) = lines.next().and_then(|l| l.strip_prefix("root=")) {
        lock(&release.roots).insert(host.clone(), expanded.to_string());
    }
    for leftover in lines {
        out.line(
            host,
            "cleanup",
            &format!("removed incomplete release {leftover}"),
        );
    }
    if let Some(hook) = &release.env.hooks.pre_deploy {
        out.step(host, "pre-deploy");
        let script = scripts::run_hook(root, HookDir::Current, hook, &release.hook_env);
        member
            .run_visible(out, "pre-deploy", &script)
            .await
            .map_err(fail("pre-deploy"))?;
    }

    let result = build(release, member).await;
    if let Err(err) = &result {
        out.line(
            host,
            err.step,
            &format!("failed: {}; removing release {}", err.message, release.id),
        );
        let _ = member.run(&scripts::discard(root, &release.id)).await;
    }
    result
}

async fn build(release: &Release, member: &Member) -> Result<(), StepError> {
    let out = &release.out;
    let env = &release.env;
    let root = &env.path;
    let host = &member.label;
    let fail = |step: &'static str| move |message: String| StepError { step, message };

    out.step(host, "fetch");
    match &release.archive {
        Some(bytes) => {
            let stdin = SharedBytes::stdin(bytes);
            let captured = member
                .conn
                .run_with_stdin(&scripts::fetch_push(root, &release.id), Some(stdin))
                .await
                .map_err(|e| StepError {
                    step: "fetch",
                    message: format!("{e:#}"),
                })?;
            if !captured.success() {
                return Err(StepError {
                    step: "fetch",
                    message: captured.reason(),
                });
            }
        }
        None => {
            let script = scripts::fetch_host(root, &env.repo, &release.revision.sha, &release.id);
            member.run(&script).await.map_err(fail("fetch"))?;
        }
    }
    if !env.shared_dirs.is_empty() || !env.shared_files.is_empty() {
        out.step(host, "link shared");
        let script = scripts::link_shared(root, &release.id, &env.shared_dirs, &env.shared_files);
        member.run(&script).await.map_err(fail("link shared"))?;
    }
    if let Some(hook) = &env.hooks.post_deploy {
        out.step(host, "post-deploy");
        let script =
            scripts::run_hook(root, HookDir::Release(&release.id), hook, &release.hook_env);
        member
            .run_visible(out, "post-deploy", &script)
            .await
            .map_err(fail("post-deploy"))?;
    }
    // What the agent runs the release's apps with, written here over SSH (never sent to it).
    let prepared = PreparedRelease {
        env_name: env.name.clone(),
        env: release.hook_env.iter().cloned().collect(),
    };
    let marked = member
        .run(&scripts::mark_prepared(root, &release.id, &prepared))
        .await
        .map_err(fail("finish"))?;
    if !marked.stdout.contains("ecosystem=") {
        lock(&release.without_apps).insert(host.clone());
    }
    out.step(host, "ready to switch");
    Ok(())
}

/// Switches `ready` hosts batch by batch (the first batch is the canary). When failures pass
/// `max_fail`, the hosts already switched are switched back.
async fn switch_in_batches(
    release: &Arc<Release>,
    ready: &[Arc<Member>],
    mut failed: usize,
    started: Instant,
) -> Vec<HostReport> {
    let env = &release.env;
    let out = &release.out;
    let size = batch_size(env.batch, ready.len());
    let mut switched: Vec<(Arc<Member>, Option<String>)> = Vec::new();
    let mut reports = Vec::new();
    let mut stopped = false;
    for batch in ready.chunks(size) {
        if stopped {
            for member in batch {
                let why = "not switched: the rollout stopped".to_string();
                out.done(&member.label, false, &why);
                let _ = member.run(&scripts::discard(&env.path, &release.id)).await;
                release
                    .record(member, Outcome::Aborted, None, Some(&why))
                    .await;
                reports.push(release.report(member, Status::Aborted, why, started));
            }
            continue;
        }
        let results = each(batch, |m| {
            let release = release.clone();
            async move { release.switch_and_apply(&m).await }
        })
        .await;
        for (member, result) in batch.iter().zip(results) {
            match result {
                Ok(previous) => switched.push((member.clone(), previous)),
                Err(SwitchFailure::NotReady { message, previous }) => {
                    failed += 1;
                    out.done(&member.label, false, &message);
                    let _ = member.run(&scripts::discard(&env.path, &release.id)).await;
                    release
                        .record(member, Outcome::RolledBack, previous, Some(&message))
                        .await;
                    reports.push(release.report(member, Status::RolledBack, message, started));
                }
                Err(SwitchFailure::Switch(message)) => {
                    failed += 1;
                    let message = format!("switch: {message}");
                    out.done(&member.label, false, &message);
                    let _ = member.run(&scripts::discard(&env.path, &release.id)).await;
                    release
                        .record(member, Outcome::Failed, None, Some(&message))
                        .await;
                    reports.push(release.report(member, Status::Failed, message, started));
                }
            }
        }
        if failed > env.max_fail {
            stopped = true;
        }
    }

    if stopped {
        for (member, previous) in &switched {
            let why = format!(
                "switched back: {failed} host(s) failed and max_fail is {}",
                env.max_fail
            );
            if let Some(previous) = previous {
                release.switch_back(member, previous).await;
            }
            release
                .record(member, Outcome::RolledBack, previous.clone(), Some(&why))
                .await;
            out.done(&member.label, false, &why);
            reports.push(release.report(member, Status::RolledBack, why, started));
        }
        return reports;
    }

    let finished = each(
        &switched.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
        |m| {
            let release = release.clone();
            let previous = switched
                .iter()
                .find(|(s, _)| Arc::ptr_eq(s, &m))
                .and_then(|(_, p)| p.clone());
            async move {
                let pruned = release.record_success(&m, previous).await;
                let message = if pruned > 0 {
                    format!(
                        "now serving {} (pruned {pruned} old release(s))",
                        release.id
                    )
                } else {
                    format!("now serving {}", release.id)
                };
                release.out.done(&m.label, true, &message);
                message
            }
        },
    )
    .await;
    for ((member, _), message) in switched.iter().zip(finished) {
        reports.push(release.report(member, Status::Ok, message, started));
    }
    reports
}

/// Why a host did not end up serving the new release.
enum SwitchFailure {
    /// `current` could not be switched (it still points at the previous release).
    Switch(String),
    /// Switched, but the apps did not become ready: switched back to `previous`.
    NotReady {
        message: String,
        previous: Option<String>,
    },
}

impl Release {
    /// Switches `current`, then has the agent run the apps from the new release; apps that
    /// never become ready send the host back to the release it served. `Ok` has the previous
    /// release.
    async fn switch_and_apply(&self, member: &Member) -> Result<Option<String>, SwitchFailure> {
        self.out.step(&member.label, "switch");
        let previous = member
            .run(&scripts::switch(&self.env.path, &self.id))
            .await
            .map_err(SwitchFailure::Switch)?
            .stdout
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("releases/"))
            .map(str::to_string);
        if self.agents.is_some() && lock(&self.without_apps).contains(&member.label) {
            self.out.line(
                &member.label,
                "reload apps",
                "this release has no ecosystem file: no apps for the agent to run",
            );
        } else if self.agents.is_some() {
            self.out.step(&member.label, "reload apps");
            if let Err(message) = self.apply(member, &self.id).await {
                let message = match &previous {
                    Some(previous) => {
                        self.switch_back(member, previous).await;
                        format!("{message}; switched back to {previous}")
                    }
                    None => format!("{message}; no previous release to go back to"),
                };
                return Err(SwitchFailure::NotReady { message, previous });
            }
        }
        Ok(previous)
    }

    /// Points `current` back at `previous` and has the agent run its apps again.
    async fn switch_back(&self, member: &Member, previous: &str) {
        if let Err(e) = member.run(&scripts::switch(&self.env.path, previous)).await {
            self.out
                .line(&member.label, "switch back", &format!("failed: {e}"));
            return;
        }
        if self.agents.is_some()
            && let Err(e) = self.apply(member, previous).await
        {
            self.out.line(
                &member.label,
                "switch back",
                &format!("apps of {previous}: {e}"),
            );
        }
    }

    async fn apply(&self, member: &Member, release: &str) -> Result<String, String> {
        let Some(agents) = &self.agents else {
            return Ok(String::new());
        };
        let root = lock(&self.roots)
            .get(&member.label)
            .cloned()
            .unwrap_or_else(|| self.env.path.clone());
        let env = self.hook_env.iter().cloned().collect();
        let done = agents
            .apply(member, &root, release, &self.env.name, &env)
            .await?;
        self.out.line(&member.label, "reload apps", &done);
        Ok(done)
    }
}

/// Hosts per batch.
pub fn batch_size(batch: Batch, hosts: usize) -> usize {
    let size = match batch {
        Batch::All => hosts,
        Batch::Count(n) => n,
        Batch::Percent(p) => (hosts * usize::from(p)).div_ceil(100),
    };
    size.clamp(1, hosts.max(1))
}

fn all_hosts(env: &DeployEnv, status: Status, message: &str) -> Vec<HostReport> {
    env.hosts
        .iter()
        .map(|h| HostReport::new(&super::fleet::label(h), status, message))
        .collect()
}

fn not_started(members: &[Arc<Member>], message: &str) -> Vec<HostReport> {
    members
        .iter()
        .map(|m| HostReport::new(&m.label, Status::Aborted, message))
        .collect()
}

async fn run_local_hook(ctx: &Context, hook: &str, env: &[(String, String)]) -> Result<(), String> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(hook)
        .current_dir(&ctx.workdir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status()
        .await
        .map_err(|e| format!("could not run sh: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("exited with {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes() {
        assert_eq!(batch_size(Batch::All, 5), 5);
        assert_eq!(batch_size(Batch::Count(2), 5), 2);
        assert_eq!(batch_size(Batch::Count(9), 5), 5);
        assert_eq!(batch_size(Batch::Percent(25), 5), 2);
        assert_eq!(batch_size(Batch::Percent(1), 5), 1);
        assert_eq!(batch_size(Batch::All, 0), 1);
    }
}
