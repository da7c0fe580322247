//! What the controller asks of the supervisor: `status` (the whole agent in one answer) and
//! `apply_release` (run a release that is unpacked on the host).
//!
//! Applying a release resolves every app of its ecosystem file with the release directory as
//! base, then per app: not known → start it and wait until every instance is ready; known and
//! running the very same spec → nothing; cluster mode on the same port → replace the spec and
//! roll through the instances exactly like `reload` (so a release that never becomes ready
//! leaves the previous instances serving, and the slots already replaced go back to the
//! previous release); otherwise (fork mode, another port or exec mode) → stop and start. The
//! state file records the new spec as soon as it runs, so a restarted daemon (or
//! `resurrect`) runs the new release too.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pmfleet_shared::protocol::{
    AgentStatus, AppSpec, AppliedAction, AppliedApp, ApplyDir, ApplyReport, EventKind,
    ExecModeSpec, Status,
};

use super::app::{AppRuntime, Slot, lock};
use super::apply_plan::{self, AppPlan, Current};
use super::release_source::{ecosystem_in, host_env, release_dir};
use super::scaling::ScalePlan;
use super::slots::Replace;
use super::{Inner, Supervisor, SupervisorError, spec};

/// The end of an apply's time budget.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Instant,
    timeout_ms: u64,
}

impl Deadline {
    fn new(timeout_ms: u64) -> Option<Deadline> {
        (timeout_ms > 0).then(|| Deadline {
            at: Instant::now() + Duration::from_millis(timeout_ms),
            timeout_ms,
        })
    }
}

/// How long the next step may take: `Ok(None)` without a deadline, an error once it passed.
fn time_left(deadline: Option<Deadline>, app: &str) -> Result<Option<Duration>, SupervisorError> {
    let Some(d) = deadline else {
        return Ok(None);
    };
    match d.at.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(Some(left)),
        _ => Err(SupervisorError::OutOfTime {
            app: app.to_string(),
            timeout_ms: d.timeout_ms,
        }),
    }
}

impl Supervisor {
    /// `status`: version, host, uptime, the release last applied, every instance, and whether
    /// an `apply_release` is under way.
    pub fn status(&self) -> AgentStatus {
        AgentStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default(),
            uptime_secs: self.inner.started.elapsed().as_secs(),
            release: lock(&self.inner.release).clone(),
            processes: self.list(),
            // Filled by the API, which reads the deploy roots SSH registered.
            roots: Vec::new(),
            applying: self.inner.apply_lock.try_lock().is_err(),
            // Filled by the API, which reads it for `status` only.
            host: None,
        }
    }

    /// `apply_release`: start or reload every app of the release's ecosystem file (see the
    /// module documentation). A request that cannot be applied at all (no such directory, an
    /// ecosystem file with errors) is an error and changes nothing; otherwise the report says,
    /// per app, what was done and whether it is ready.
    pub async fn apply_release(&self, req: ApplyDir) -> Result<ApplyReport, SupervisorError> {
        let _one_at_a_time = self.inner.apply_lock.lock().await;
        let dir = release_dir(&req.release_dir)?;
        let file = match &req.ecosystem {
            Some(rel) => ecosystem_in(&dir, rel)?,
            None => pmfleet_shared::ecosystem::locate(&dir)
                .map_err(|e| SupervisorError::Ecosystem(e.to_string()))?,
        };
        let load_path = file.clone();
        let eco = tokio::task::spawn_blocking(move || pmfleet_shared::ecosystem::load(&load_path))
            .await
            .map_err(|e| SupervisorError::Ecosystem(format!("{}: {e}", file.display())))?
            .map_err(|e| SupervisorError::Ecosystem(format!("{e}")))?;
        let mut env = host_env();
        env.extend(req.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        // Resolve every app before touching any: a bad one leaves everything as it was.
        let mut specs = Vec::new();
        let mut errors = Vec::new();
        for app in &eco.apps {
            match spec::resolve(app, &dir, &env, req.env_name.as_deref()) {
                Ok(mut s) => {
                    s.secrets_file = req.secrets_file.clone();
                    specs.push(s);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            return Err(SupervisorError::Ecosystem(errors.join("\n")));
        }
        let warnings: Vec<String> = eco.warnings.iter().map(|w| w.to_string()).collect();

        let deadline = Deadline::new(req.timeout_ms);
        let mut apps = Vec::new();
        for spec in specs {
            let name = spec.name.clone();
            let release = format!("release {}", dir.display());
            let inner = &self.inner;
            inner.emit(&name, None, None, EventKind::ReleaseStarted, &*release);
            let (action, result) = self.apply_app(spec, deadline).await;
            let (ok, message) = match result {
                Ok(m) => (true, m),
                Err(e) => (false, e.report()),
            };
            let outcome = format!("{release}: {action}: {message}");
            if ok {
                tracing::info!(app = %name, %action, release = %dir.display(), "{message}");
                inner.emit(&name, None, None, EventKind::ReleaseApplied, outcome);
            } else {
                tracing::warn!(app = %name, %action, release = %dir.display(), "{message}");
                inner.emit(&name, None, None, EventKind::ReleaseFailed, outcome);
            }
            apps.push(AppliedApp {
                name,
                action,
                ok,
                message,
            });
        }
        let report = ApplyReport { apps, warnings };
        if report.ok() {
            *lock(&self.inner.release) = Some(dir);
            self.inner.mark_dirty();
        }
        Ok(report)
    }

    /// One app of a release: what was done ([`apply_plan::plan`]), and whether it worked.
    pub(super) async fn apply_app(
        &self,
        spec: AppSpec,
        deadline: Option<Deadline>,
    ) -> (AppliedAction, Result<String, SupervisorError>) {
        let inner = &self.inner;
        let name = spec.name.clone();
        let existing = lock(&inner.apps).get(&name).cloned();
        let _op = match &existing {
            Some(app) => Some(app.op.lock().await),
            None => None,
        };
        let old = existing.as_ref().map(|a| a.spec());
        let current = existing
            .as_ref()
            .zip(old.as_ref())
            .map(|(app, spec)| Current {
                spec,
                count: app.count(),
                running: app.is_running(),
                all_online: inner.all_online(app),
            });
        let plan = apply_plan::plan(current, &spec, inner.cpus);
        let action = plan.action();
        if !matches!(plan, AppPlan::Unchanged { .. })
            && let Err(e) = time_left(deadline, &name)
        {
            return (action, Err(e));
        }
        let result = match (plan, existing.clone()) {
            (AppPlan::Start { count, .. }, None) => {
                let app = Arc::new(AppRuntime::new(spec, count));
                let _op = app.op.lock().await;
                lock(&inner.apps).insert(name.clone(), app.clone());
                let result = inner.start_app_ready(&app, deadline).await;
                inner.mark_dirty();
                result.map(|()| started_message(&app))
            }
            (AppPlan::Start { count, .. }, Some(app)) => {
                set_spec(&app, spec, count);
                let result = inner.start_app_ready(&app, deadline).await;
                result.map(|()| started_message(&app))
            }
            (AppPlan::Unchanged { count }, _) => Ok(format!(
                "{name}: already running this release ({count} instance(s) online)"
            )),
            (AppPlan::Restart { count, why }, Some(app)) => {
                inner.stop_app(&app, true).await;
                set_spec(&app, spec, count);
                let result = inner.start_app_ready(&app, deadline).await;
                result.map(|()| format!("{name}: restarted with the release ({why})"))
            }
            (
                AppPlan::Reload {
                    reload,
                    from,
                    to,
                    scale,
                },
                Some(app),
            ) => {
                let old = app.spec();
                let what = format!("rolling reload of {from} instance(s) to the release");
                inner.emit(&name, None, None, EventKind::ReloadStarted, what);
                let result = inner
                    .roll(
                        &app,
                        Roll {
                            old,
                            from,
                            spec,
                            to,
                            reload,
                            scale,
                        },
                        deadline,
                    )
                    .await;
                match &result {
                    Ok(m) => inner.emit(&name, None, None, EventKind::ReloadFinished, &**m),
                    Err(e) => inner.emit(&name, None, None, EventKind::ReloadFailed, e.report()),
                }
                result
            }
            // Only a new app has nothing running; the plan never restarts or reloads one.
            (_, None) => Err(SupervisorError::NotFound(name)),
        };
        (action, result)
    }
}

/// One rolling reload of a release: the app's spec and count before and after, the slots to
/// replace one at a time, and how the count changes after.
struct Roll {
    old: AppSpec,
    from: u32,
    spec: AppSpec,
    to: u32,
    reload: u32,
    scale: ScalePlan,
}

impl Inner {
    /// Start every slot of `app` with its current spec, one at a time, each waited for until
    /// ready. If one is not, everything of the app is stopped again (it stays listed, stopped).
    async fn start_app_ready(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
        deadline: Option<Deadline>,
    ) -> Result<(), SupervisorError> {
        self.bind_listener(app)?;
        self.resume_maintenance(app);
        app.running.store(true, Ordering::SeqCst);
        let count = app.count();
        self.ensure_slots(app, count);
        for slot in 0..count {
            let step = match time_left(deadline, &app.name) {
                Ok(cap) => self.replace_slot(app, slot, Replace::Fresh, cap).await,
                Err(e) => Err(e),
            };
            if let Err(e) = step {
                self.stop_app(app, true).await;
                return Err(e);
            }
        }
        self.arm(app);
        Ok(())
    }

    /// The rolling reload of a release: the slots below `reload` one at a time with the new
    /// spec, then as many more or fewer slots as the new count says. When a new instance is
    /// not ready, the slots already replaced go back to `old` and the error is returned.
    async fn roll(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
        roll: Roll,
        deadline: Option<Deadline>,
    ) -> Result<String, SupervisorError> {
        let name = app.name.clone();
        let Roll {
            old,
            from,
            spec,
            to,
            reload,
            scale,
        } = roll;
        let slots: Vec<u32> = lock(&app.slots)
            .keys()
            .copied()
            .filter(|s| *s < reload)
            .collect();
        set_spec(app, spec, from);
        let mut replaced = Vec::new();
        let mut proofs = Vec::new();
        let mut failed = None;
        for slot in &slots {
            let step = match time_left(deadline, &name) {
                Ok(cap) => self.replace_slot(app, *slot, Replace::Reload, cap).await,
                Err(e) => Err(e),
            };
            match step {
                Ok(proof) => {
                    proofs.push(proof);
                    replaced.push(*slot);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none()
            && let Err(reason) = self.check_app(app).await
        {
            failed = Some(SupervisorError::NotServing {
                app: name.clone(),
                reason,
                undone: true,
            });
        }
        if let Some(e) = failed {
            set_spec(app, old, from);
            for back in replaced {
                if let Err(e) = self.replace_slot(app, back, Replace::Reload, None).await {
                    tracing::error!(app = %name, slot = back, "cannot go back to the previous release: {e}");
                }
            }
            self.mark_dirty();
            return Err(e);
        }
        app.count.store(to, Ordering::SeqCst);
        match scale {
            ScalePlan::Keep | ScalePlan::Trim { .. } => {}
            ScalePlan::Add(new) => {
                self.ensure_slots(app, to);
                for slot in new {
                    let step = match time_left(deadline, &name) {
                        Ok(cap) => self.replace_slot(app, slot, Replace::Fresh, cap).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = step {
                        // The release runs, on fewer instances than asked for.
                        app.count.store(slot, Ordering::SeqCst);
                        lock(&app.slots).retain(|k, _| *k < slot);
                        self.mark_dirty();
                        return Err(e);
                    }
                }
            }
            ScalePlan::Remove { from } => self.remove_slots(app, from).await,
        }
        // The file watcher follows the new release's paths.
        lock(&app.run_cancel).cancel();
        self.arm(app);
        Ok(format!(
            "{name}: reloaded {} instance(s) with zero downtime{}{}",
            slots.len(),
            if to == from {
                String::new()
            } else {
                format!(", scaled from {from} to {to}")
            },
            super::slots::unverified_note(&proofs, &app.spec()),
        ))
    }

    /// Slots `0..count` exist (new ones with fresh ids) and no other.
    pub(super) fn ensure_slots(&self, app: &AppRuntime, count: u32) {
        let mut slots = lock(&app.slots);
        slots.retain(|k, _| *k < count);
        for slot in 0..count {
            slots.entry(slot).or_insert_with(|| Slot {
                id: self.next_id.fetch_add(1, Ordering::SeqCst),
                restarts: Default::default(),
                runner: None,
            });
        }
    }

    /// Every one of the app's instances is online.
    fn all_online(&self, app: &AppRuntime) -> bool {
        let procs = self.processes(app);
        procs.len() == app.count() as usize && procs.iter().all(|p| p.status == Status::Online)
    }
}

/// Replace the app's spec and count; its open log files are dropped when the new spec logs
/// elsewhere or otherwise, so the next instance opens them with the new settings.
fn set_spec(app: &AppRuntime, spec: AppSpec, count: u32) {
    let logs_changed = {
        let old = lock(&app.spec);
        (
            &old.out_file,
            &old.error_file,
            old.merge_logs,
            old.exec_mode,
            old.time,
            &old.log_date_format,
        ) != (
            &spec.out_file,
            &spec.error_file,
            spec.merge_logs,
            spec.exec_mode,
            spec.time,
            &spec.log_date_format,
        )
    };
    *lock(&app.spec) = spec;
    app.count.store(count, Ordering::SeqCst);
    if logs_changed {
        app.drop_sinks();
    }
}

fn started_message(app: &AppRuntime) -> String {
    let spec = app.spec();
    format!(
        "{}: started {} instance(s) in {} mode{}, all ready",
        app.name,
        app.count(),
        spec.exec_mode,
        match (spec.exec_mode, spec.port) {
            (ExecModeSpec::Cluster, Some(p)) => format!(", sharing port {p}"),
            _ => String::new(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_runs_out() {
        assert!(time_left(None, "a").unwrap().is_none());
        let d = Deadline {
            at: Instant::now(),
            timeout_ms: 5,
        };
        let err = time_left(Some(d), "api").unwrap_err();
        assert_eq!(
            err.to_string(),
            "app `api`: not applied, the release ran out of its 5 ms"
        );
        assert!(time_left(Deadline::new(60_000), "a").unwrap().is_some());
    }
}
