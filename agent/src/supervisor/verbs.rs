//! The verbs the CLI and the controller call: `start`, `stop`, `restart`, `reload`, `delete`,
//! `scale`, `flush`, `reload-logs`, `save`, `resurrect` and the daemon's `shutdown`. Each takes
//! the app's operation lock and leaves the processes to the slot lifecycle ([`super::slots`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use pmfleet_shared::protocol::{
    AppSpec, EventKind, ExecModeSpec, OnRunning, ScaleTo, StartRequest, StartSource, Target,
};

use super::app::{AppRuntime, lock};
use super::apply_plan;
use super::persist::SavedState;
use super::scaling::{self, ScalePlan};
use super::{Messages, Supervisor, SupervisorError, spec};

impl Supervisor {
    /// `start`: every app of an ecosystem file, or one script.
    pub async fn start_apps(&self, req: StartRequest) -> Result<Messages, SupervisorError> {
        let (specs, warnings) = self.resolve(&req)?;
        let (running, idle) = match &req.source {
            StartSource::Ecosystem { running, idle, .. } => (*running, idle.as_slice()),
            StartSource::Script(_) => (OnRunning::Restart, &[][..]),
        };
        let mut done: Vec<String> = warnings
            .into_iter()
            .map(|w| format!("warning: {w}"))
            .collect();
        let mut failed = Vec::new();
        for spec in specs {
            let result = if idle.contains(&spec.name) && !self.knows(&spec.name) {
                Ok(self.add_stopped(spec))
            } else if running == OnRunning::Reload {
                self.start_or_reload(spec).await
            } else {
                self.start_one(spec).await
            };
            match result {
                Ok(m) => done.extend(m),
                Err(e) => failed.push(e.to_string()),
            }
        }
        if failed.is_empty() {
            Ok(done)
        } else {
            Err(SupervisorError::Partial { done, failed })
        }
    }

    /// The specs to start, and warnings for the user (ecosystem keys pmfleet ignores).
    pub(super) fn resolve(
        &self,
        req: &StartRequest,
    ) -> Result<(Vec<AppSpec>, Vec<String>), SupervisorError> {
        let env_name = req.env_name.as_deref();
        match &req.source {
            StartSource::Script(s) => {
                let app = spec::app_from_script(s)?;
                Ok((
                    vec![spec::resolve(&app, &req.cwd, &req.env, env_name)?],
                    Vec::new(),
                ))
            }
            StartSource::Ecosystem { path, .. } => {
                let path = req.cwd.join(path);
                let eco = pmfleet_shared::ecosystem::load(&path)
                    .map_err(|e| SupervisorError::Ecosystem(format!("{e}")))?;
                let base = path
                    .parent()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| req.cwd.clone());
                let apps: Vec<_> = eco
                    .apps
                    .iter()
                    .filter(|a| {
                        req.only
                            .as_ref()
                            .is_none_or(|o| o.split(',').any(|n| n == a.name))
                    })
                    .collect();
                if apps.is_empty() {
                    return Err(SupervisorError::Ecosystem(format!(
                        "{}: no app to start{}",
                        path.display(),
                        req.only
                            .as_ref()
                            .map(|o| format!(" matching --only {o}"))
                            .unwrap_or_default()
                    )));
                }
                // Resolve every app before starting any: a bad one leaves nothing half-started.
                let mut specs = Vec::new();
                let mut errors = Vec::new();
                for app in &apps {
                    match spec::resolve(app, &base, &req.env, env_name) {
                        Ok(s) => specs.push(s),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                let warnings: Vec<String> = eco.warnings.iter().map(|w| w.to_string()).collect();
                if errors.is_empty() {
                    Ok((specs, warnings))
                } else {
                    Err(SupervisorError::Ecosystem(errors.join("\n")))
                }
            }
        }
    }

    /// Start (or, if it exists, restart with the new spec) one app.
    pub(super) async fn start_one(&self, spec: AppSpec) -> Result<Messages, SupervisorError> {
        let name = spec.name.clone();
        let count = spec.instances.resolve(self.inner.cpus);
        let existing = lock(&self.inner.apps).get(&name).cloned();
        if let Some(app) = existing {
            let _op = app.op.lock().await;
            self.inner.stop_app(&app, true).await;
            *lock(&app.spec) = spec;
            app.count.store(count, Ordering::SeqCst);
            app.drop_sinks();
            self.inner.start_app(&app)?;
            return Ok(vec![format!(
                "{name}: restarted with the new spec ({count} instance(s))"
            )]);
        }
        let app = Arc::new(AppRuntime::new(spec, count));
        let _op = app.op.lock().await;
        self.inner.start_app(&app)?;
        lock(&self.inner.apps).insert(name.clone(), app.clone());
        self.inner.mark_dirty();
        let spec = app.spec();
        Ok(vec![format!(
            "{name}: started {count} instance(s) in {} mode{}",
            spec.exec_mode,
            match (spec.exec_mode, spec.port) {
                (ExecModeSpec::Cluster, Some(p)) => format!(", sharing port {p}"),
                _ => String::new(),
            }
        )])
    }

    pub(super) fn targets(&self, target: &Target) -> Result<Vec<Arc<AppRuntime>>, SupervisorError> {
        let apps = lock(&self.inner.apps);
        let found: Vec<_> = apps
            .values()
            .filter(|a| target.matches(&a.name))
            .cloned()
            .collect();
        match (target, found.is_empty()) {
            (Target::App(n), true) => Err(SupervisorError::NotFound(n.clone())),
            _ => Ok(found),
        }
    }

    pub async fn stop(&self, target: &Target) -> Result<Messages, SupervisorError> {
        let mut out = Vec::new();
        for app in self.targets(target)? {
            let _op = app.op.lock().await;
            self.inner.stop_app(&app, true).await;
            out.push(format!("{}: stopped", app.name));
        }
        Ok(out)
    }

    pub async fn restart(&self, target: &Target) -> Result<Messages, SupervisorError> {
        let mut out = Vec::new();
        for app in self.targets(target)? {
            let _op = app.op.lock().await;
            self.inner.restart_app(&app).await?;
            out.push(format!("{}: restarted", app.name));
        }
        Ok(out)
    }

    /// Rolling reload: one instance at a time, the new one ready before the old one stops.
    pub async fn reload(&self, target: &Target) -> Result<Messages, SupervisorError> {
        let mut out = Vec::new();
        for app in self.targets(target)? {
            let _op = app.op.lock().await;
            let inner = &self.inner;
            let spec = app.spec();
            let result = if let Some(why) = apply_plan::reload_plan(&spec, app.is_running()) {
                let name = &app.name;
                inner.emit(
                    name,
                    None,
                    None,
                    EventKind::ReloadStarted,
                    format!("restart ({why})"),
                );
                inner
                    .restart_app(&app)
                    .await
                    .map(|()| format!("{name}: restarted ({why})"))
            } else {
                let slots: Vec<u32> = lock(&app.slots).keys().copied().collect();
                let n = slots.len();
                let what = format!("rolling reload of {n} instance(s)");
                inner.emit(&app.name, None, None, EventKind::ReloadStarted, what);
                let mut proofs = Vec::new();
                let mut result = Ok(());
                for slot in &slots {
                    match inner.reload_slot(&app, *slot).await {
                        Ok(proof) => proofs.push(proof),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                if result.is_ok()
                    && let Err(reason) = inner.check_app(&app).await
                {
                    // The same spec: there is no previous release to go back to.
                    result = Err(SupervisorError::NotServing {
                        app: app.name.clone(),
                        reason,
                        undone: false,
                    });
                }
                let note = super::slots::unverified_note(&proofs, &spec);
                result.map(|()| {
                    format!(
                        "{}: reloaded {n} instance(s) with zero downtime{note}",
                        app.name
                    )
                })
            };
            match result {
                Ok(message) => {
                    inner.emit(&app.name, None, None, EventKind::ReloadFinished, &*message);
                    out.push(message);
                }
                Err(e) => {
                    inner.emit(
                        &app.name,
                        None,
                        None,
                        EventKind::ReloadFailed,
                        e.to_string(),
                    );
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    pub async fn delete(&self, target: &Target) -> Result<Messages, SupervisorError> {
        let mut out = Vec::new();
        for app in self.targets(target)? {
            let _op = app.op.lock().await;
            self.inner.stop_app(&app, true).await;
            lock(&self.inner.apps).remove(&app.name);
            self.inner.mark_dirty();
            let message = format!("{}: deleted", app.name);
            self.inner
                .emit(&app.name, None, None, EventKind::Deleted, &*message);
            out.push(message);
        }
        Ok(out)
    }

    pub async fn scale(&self, name: &str, to: ScaleTo) -> Result<Messages, SupervisorError> {
        let app = self.targets(&Target::App(name.to_string()))?.remove(0);
        let _op = app.op.lock().await;
        let now = app.count();
        let want = scaling::target(now, to, self.inner.cpus);
        app.count.store(want, Ordering::SeqCst);
        match scaling::plan(now, want, app.is_running()) {
            ScalePlan::Keep => {}
            ScalePlan::Add(slots) => {
                for slot in slots {
                    if let Err(e) = self.inner.start_slot(&app, slot) {
                        app.count.store(slot, Ordering::SeqCst);
                        self.inner.mark_dirty();
                        return Err(e);
                    }
                }
            }
            ScalePlan::Remove { from } => self.inner.remove_slots(&app, from).await,
            ScalePlan::Trim { from } => lock(&app.slots).retain(|k, _| *k < from),
        }
        self.inner.mark_dirty();
        Ok(vec![format!(
            "{name}: scaled from {now} to {want} instance(s)"
        )])
    }

    /// `flush`: empty the log files.
    pub async fn flush(&self, app: Option<&str>) -> Result<Messages, SupervisorError> {
        let target = app.map_or(Target::All, |a| Target::App(a.to_string()));
        let mut out = Vec::new();
        for a in self.targets(&target)? {
            for sink in a.open_sinks() {
                if let Err(e) = sink.lock().await.flush_truncate() {
                    tracing::warn!(app = %a.name, "flush: {e}");
                }
            }
            let (outs, errs) = a.all_log_paths(self.inner.home.root());
            for path in outs.iter().chain(&errs).filter(|p| p.exists()) {
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(path);
            }
            out.push(format!("{}: logs flushed", a.name));
        }
        Ok(out)
    }

    /// `reload-logs`: reopen every log file, e.g. after an external logrotate moved them.
    pub async fn reload_logs(&self) -> Messages {
        let apps: Vec<_> = lock(&self.inner.apps).values().cloned().collect();
        let mut n = 0;
        for a in apps {
            for sink in a.open_sinks() {
                if let Err(e) = sink.lock().await.reopen() {
                    tracing::warn!(app = %a.name, "reopen log: {e}");
                }
                n += 1;
            }
        }
        vec![format!("reopened {n} log file(s)")]
    }

    /// `save`: the process list into the dump file, for `resurrect`.
    pub fn save(&self) -> Result<Messages, SupervisorError> {
        let state = self.inner.snapshot();
        let path = self.inner.home.dump_file();
        state.store(&path)?;
        Ok(vec![format!(
            "saved {} app(s) to {}",
            state.apps.len(),
            path.display()
        )])
    }

    /// `resurrect`: start every app of the dump that is not already known.
    pub async fn resurrect(&self) -> Result<Messages, SupervisorError> {
        let path = self.inner.home.dump_file();
        if !path.exists() {
            return Err(SupervisorError::Ecosystem(format!(
                "{} does not exist: run `pmfleet-agent save` first",
                path.display()
            )));
        }
        let dump = SavedState::load(&path)?;
        let mut out = Vec::new();
        for saved in dump.apps {
            if lock(&self.inner.apps).contains_key(&saved.spec.name) {
                out.push(format!("{}: already running, left as is", saved.spec.name));
                continue;
            }
            let name = saved.spec.name.clone();
            let app = Arc::new(AppRuntime::new(saved.spec, saved.instances.max(1)));
            let _op = app.op.lock().await;
            lock(&self.inner.apps).insert(name.clone(), app.clone());
            match self.inner.start_app(&app) {
                Ok(()) => out.push(format!("{name}: resurrected")),
                Err(e) => out.push(format!("{name}: {e}")),
            }
            self.inner.mark_dirty();
        }
        Ok(out)
    }

    /// Stop every app. With `forget`, also empty the process list (`kill`), so the next
    /// daemon starts with nothing; without it (the daemon got SIGTERM, e.g. at shutdown) the
    /// list is kept and the apps come back when the daemon starts again.
    pub async fn shutdown(&self, forget: bool) {
        self.inner.closing.store(true, Ordering::SeqCst);
        let apps: Vec<_> = lock(&self.inner.apps).values().cloned().collect();
        let mut stops = Vec::new();
        for app in apps {
            let inner = self.inner.clone();
            stops.push(tokio::spawn(async move {
                let _op = app.op.lock().await;
                inner.stop_app(&app, forget).await;
            }));
        }
        for s in stops {
            let _ = s.await;
        }
        if forget {
            lock(&self.inner.apps).clear();
        }
        if let Err(e) = self.inner.persist() {
            tracing::error!("{e}");
        }
        self.inner.tasks_cancel.cancel();
    }
}
