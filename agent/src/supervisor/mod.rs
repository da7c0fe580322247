//! The supervisor: apps, their instances, and what happens to them.
//!
//! [`Supervisor`] is the one interface to it: a cheap, cloneable handle whose async methods
//! are the verbs (`start`, `reload`, `scale`, `list` …). The local socket calls it for the CLI
//! and the controller's mutual-TLS API calls the same methods, so both behave identically.
//!
//! Inside, each app (`app::AppRuntime`) owns its slots; each slot's process is owned by one
//! runner task (`instance`) that applies the pure restart policy ([`policy`]). The edges
//! are [`process`] (spawn, signals), [`ready`] (readiness), [`state`] (persistence) and
//! [`watch`]. Every task runs on one [`TaskTracker`] and ends on its cancel token.
//!
//! Status changes, reloads and releases are also published as [`events`], for subscribers
//! ([`Supervisor::subscribe`]).

mod app;
mod child;
mod cron;
pub mod events;
pub mod handover;
mod instance;
pub mod policy;
pub mod process;
pub mod ready;
mod release;
pub mod spec;
pub mod state;
pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use pmfleet_shared::protocol::{
    AgentEvent, AppDetail, AppSpec, ErrorKind, EventKind, ExecModeSpec, ProcessInfo, ScaleTo,
    StartRequest, StartSource, Target,
};
use socket2::{Domain, Socket, Type};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::home::AgentHome;
use crate::metrics::{Sample, Sampler};
use app::{AppRuntime, Slot, lock};
use events::EventStream;
use instance::{kill_signal, kill_timeout};
use process::{cpu_count, signal_group};
use ready::{NotReady, NotifySocket, Readiness};
use state::{STATE_VERSION, SavedApp, SavedProcess, SavedState, StateError};

/// Why a verb failed. Each variant carries what a person needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error("{0}")]
    Ecosystem(String),
    #[error("no app named `{0}`")]
    NotFound(String),
    #[error("app `{app}`: cannot listen on port {port}: {source}")]
    Port {
        app: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("app `{app}`: cannot start `{program}`: {source}")]
    Spawn {
        app: String,
        program: String,
        source: std::io::Error,
    },
    #[error(
        "reload of `{app}` failed: the new instance {slot} {reason}; it was stopped and the old one keeps serving"
    )]
    ReloadFailed {
        app: String,
        slot: u32,
        reason: NotReady,
    },
    #[error("app `{app}`: instance {slot} {reason}; it was stopped")]
    StartFailed {
        app: String,
        slot: u32,
        reason: NotReady,
    },
    #[error("app `{app}`: not applied, the release ran out of its {timeout_ms} ms")]
    OutOfTime { app: String, timeout_ms: u64 },
    #[error("{0}")]
    Release(String),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("the agent is shutting down")]
    ShuttingDown,
    #[error("{}", .failed.join("\n"))]
    Partial {
        done: Vec<String>,
        failed: Vec<String>,
    },
}

impl SupervisorError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SupervisorError::Spec(_)
            | SupervisorError::Ecosystem(_)
            | SupervisorError::Release(_)
            | SupervisorError::Port { .. } => ErrorKind::Invalid,
            SupervisorError::NotFound(_) => ErrorKind::NotFound,
            SupervisorError::Spawn { .. }
            | SupervisorError::ReloadFailed { .. }
            | SupervisorError::StartFailed { .. }
            | SupervisorError::OutOfTime { .. }
            | SupervisorError::Partial { .. } => ErrorKind::Failed,
            SupervisorError::State(_) | SupervisorError::ShuttingDown => ErrorKind::Internal,
        }
    }

    /// The full text for a person: for a partial failure, what succeeded too.
    pub fn report(&self) -> String {
        match self {
            SupervisorError::Partial { done, failed } => done
                .iter()
                .chain(failed)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            e => e.to_string(),
        }
    }
}

/// Lines saying what a verb did.
pub type Messages = Vec<String>;

/// The handle every caller uses. Cloning is cheap; all clones drive the same apps.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    home: AgentHome,
    apps: Mutex<BTreeMap<String, Arc<AppRuntime>>>,
    next_id: AtomicU32,
    tasks: TaskTracker,
    /// Cancelled last, once every app is stopped: ends the monitor, watchers and log pumps.
    tasks_cancel: CancellationToken,
    /// Something persisted changed; the persister rewrites the state file.
    dirty: Notify,
    /// Set when the daemon begins to shut down: from then on nothing is spawned.
    closing: std::sync::atomic::AtomicBool,
    /// Held while a snapshot is taken and written, so the file always ends with the latest.
    persist_lock: Mutex<()>,
    /// The latest CPU/RSS sample of every running pid.
    samples: Mutex<HashMap<u32, Sample>>,
    cpus: u32,
    /// When the daemon started, for `status`.
    started: std::time::Instant,
    /// One `apply_release` at a time: two deploys racing on one host must not both decide
    /// that an app is new and start it twice.
    apply_lock: tokio::sync::Mutex<()>,
    /// The release directory last applied in full (persisted).
    release: Mutex<Option<PathBuf>>,
    /// Lifecycle events, for `events` subscribers; bounded, and never waited for.
    events: tokio::sync::broadcast::Sender<AgentEvent>,
    /// Cancelled when the apps are being handed to a new agent binary: runners hand back
    /// their processes and log pumps stop reading ([`handover`]). Replaced if that fails.
    handover: Mutex<CancellationToken>,
}

impl Supervisor {
    /// Start the supervisor in `home`: stop whatever a previous daemon left running (recorded
    /// pid + start time), then start the recorded apps again, fresh. Background tasks
    /// (persister, resource monitor) run on `tasks`.
    pub async fn start(home: AgentHome, tasks: TaskTracker) -> Supervisor {
        let sup = Supervisor {
            inner: Inner::new(home, tasks),
        };
        sup.restore().await;
        Supervisor::run(sup.inner)
    }

    /// Start the background tasks (persister, resource monitor) of a restored supervisor.
    fn run(inner: Arc<Inner>) -> Supervisor {
        inner.tasks.spawn(persister(inner.clone()));
        inner.tasks.spawn(monitor(inner.clone()));
        inner.mark_dirty();
        Supervisor { inner }
    }

    /// Lifecycle events of `app` (of every app when `None`) from now on. The app need not
    /// exist yet: a subscriber may watch an app being started.
    pub fn subscribe(&self, app: Option<String>) -> EventStream {
        EventStream::new(&self.inner.events, app)
    }

    /// `start`: every app of an ecosystem file, or one script.
    pub async fn start_apps(&self, req: StartRequest) -> Result<Messages, SupervisorError> {
        let (specs, warnings) = self.resolve(&req)?;
        let mut done: Vec<String> = warnings
            .into_iter()
            .map(|w| format!("warning: {w}"))
            .collect();
        let mut failed = Vec::new();
        for spec in specs {
            match self.start_one(spec).await {
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
    fn resolve(&self, req: &StartRequest) -> Result<(Vec<AppSpec>, Vec<String>), SupervisorError> {
        let env_name = req.env_name.as_deref();
        match &req.source {
            StartSource::Script(s) => {
                let app = spec::app_from_script(s)?;
                Ok((
                    vec![spec::resolve(&app, &req.cwd, &req.env, env_name)?],
                    Vec::new(),
                ))
            }
            StartSource::Ecosystem { path } => {
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
    async fn start_one(&self, spec: AppSpec) -> Result<Messages, SupervisorError> {
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

    fn targets(&self, target: &Target) -> Result<Vec<Arc<AppRuntime>>, SupervisorError> {
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
            let result = if spec.exec_mode == ExecModeSpec::Fork || !app.is_running() {
                let why = if spec.exec_mode == ExecModeSpec::Fork {
                    "fork mode has no rolling reload"
                } else {
                    "it was not running"
                };
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
                let mut result = Ok(());
                for slot in &slots {
                    result = inner.reload_slot(&app, *slot).await;
                    if result.is_err() {
                        break;
                    }
                }
                result
                    .map(|()| format!("{}: reloaded {n} instance(s) with zero downtime", app.name))
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
        let want = match to {
            ScaleTo::Exactly(n) => n,
            ScaleTo::Up(n) => now.saturating_add(n),
            ScaleTo::Down(n) => now.saturating_sub(n),
            ScaleTo::Max => self.inner.cpus,
        }
        .max(1);
        app.count.store(want, Ordering::SeqCst);
        if app.is_running() {
            if want > now {
                for slot in now..want {
                    if let Err(e) = self.inner.start_slot(&app, slot) {
                        app.count.store(slot, Ordering::SeqCst);
                        self.inner.mark_dirty();
                        return Err(e);
                    }
                }
            } else {
                let extra: Vec<Slot> = {
                    let mut slots = lock(&app.slots);
                    let keys: Vec<u32> = slots.range(want..).map(|(k, _)| *k).collect();
                    keys.iter().filter_map(|k| slots.remove(k)).collect()
                };
                for mut s in extra {
                    if let Some(r) = &mut s.runner {
                        r.stop.cancel();
                        if let Some(j) = r.join.take() {
                            let _ = j.await;
                        }
                    }
                }
            }
        } else {
            lock(&app.slots).retain(|k, _| *k < want);
        }
        self.inner.mark_dirty();
        Ok(vec![format!(
            "{name}: scaled from {now} to {want} instance(s)"
        )])
    }

    pub fn list(&self) -> Vec<ProcessInfo> {
        let apps: Vec<_> = lock(&self.inner.apps).values().cloned().collect();
        apps.iter().flat_map(|a| self.inner.processes(a)).collect()
    }

    pub fn show(&self, name: &str) -> Result<AppDetail, SupervisorError> {
        let app = self.targets(&Target::App(name.to_string()))?.remove(0);
        let (out_logs, err_logs) = app.all_log_paths(self.inner.home.root());
        Ok(AppDetail {
            spec: app.spec(),
            processes: self.inner.processes(&app),
            out_logs,
            err_logs,
        })
    }

    /// The log files of `app` (of every app when `None`), by app name.
    pub fn log_files(&self, app: Option<&str>) -> Result<Vec<(String, PathBuf)>, SupervisorError> {
        let target = app.map_or(Target::All, |a| Target::App(a.to_string()));
        let mut out = Vec::new();
        for a in self.targets(&target)? {
            let (outs, errs) = a.all_log_paths(self.inner.home.root());
            out.extend(outs.into_iter().chain(errs).map(|p| (a.name.clone(), p)));
        }
        Ok(out)
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

    /// Restore what the state file lists (see [`Supervisor::start`]).
    async fn restore(&self) {
        let path = self.inner.home.state_file();
        let saved = match SavedState::load(&path) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}; starting with an empty process list");
                let _ = std::fs::rename(&path, path.with_extension("json.bad"));
                SavedState::default()
            }
        };
        reap_survivors(&saved).await;
        *lock(&self.inner.release) = saved.release.clone();
        let max_id = saved
            .apps
            .iter()
            .flat_map(|a| a.processes.iter().map(|p| p.id + 1))
            .max();
        self.inner
            .next_id
            .store(max_id.unwrap_or(0), Ordering::SeqCst);
        for a in saved.apps {
            let name = a.spec.name.clone();
            let app = Arc::new(AppRuntime::new(a.spec, a.instances.max(1)));
            {
                let mut slots = lock(&app.slots);
                for p in &a.processes {
                    slots.insert(
                        p.slot,
                        Slot {
                            id: p.id,
                            restarts: Default::default(),
                            runner: None,
                        },
                    );
                }
                if !a.running {
                    // Listed as stopped, one row per instance, as before the restart.
                    for slot in 0..app.count() {
                        slots.entry(slot).or_insert_with(|| Slot {
                            id: self.inner.next_id.fetch_add(1, Ordering::SeqCst),
                            restarts: Default::default(),
                            runner: None,
                        });
                    }
                }
            }
            lock(&self.inner.apps).insert(name.clone(), app.clone());
            if a.running {
                let _op = app.op.lock().await;
                match self.inner.start_app(&app) {
                    Ok(()) => tracing::info!(app = %name, "restored"),
                    Err(e) => tracing::error!(app = %name, "cannot restore: {e}"),
                }
            }
        }
        self.inner.mark_dirty();
    }
}

/// Stop the processes a previous daemon left behind: each recorded group whose leader is
/// still the recorded process (same pid *and* start time) gets its kill signal, then SIGKILL.
/// Adopting them instead is not possible: their output pipes ended with the old daemon.
async fn reap_survivors(saved: &SavedState) {
    let mut alive: Vec<(SavedProcess, Signal, Duration)> = Vec::new();
    for a in &saved.apps {
        for p in &a.processes {
            if state::still_running(p) {
                tracing::warn!(app = %a.spec.name, pid = p.pid, "stopping a process left by a previous agent");
                signal_group(p.pid, kill_signal(&a.spec));
                alive.push((*p, kill_signal(&a.spec), kill_timeout(&a.spec)));
            }
        }
    }
    let deadline = alive.iter().map(|a| a.2).max().unwrap_or_default();
    let start = std::time::Instant::now();
    while alive.iter().any(|(p, ..)| state::still_running(p)) && start.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (p, ..) in &alive {
        // The group id cannot be handed to a new process while any member is alive.
        if state::still_running(p) || group_exists(p.pid) {
            signal_group(p.pid, Signal::SIGKILL);
        }
    }
    if !alive.is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether any process still belongs to process group `pgid`.
fn group_exists(pgid: u32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

impl Inner {
    fn new(home: AgentHome, tasks: TaskTracker) -> Arc<Inner> {
        Arc::new(Inner {
            home,
            apps: Mutex::new(BTreeMap::new()),
            next_id: AtomicU32::new(0),
            tasks,
            tasks_cancel: CancellationToken::new(),
            dirty: Notify::new(),
            persist_lock: Mutex::new(()),
            closing: Default::default(),
            samples: Mutex::new(HashMap::new()),
            cpus: cpu_count(),
            started: std::time::Instant::now(),
            apply_lock: tokio::sync::Mutex::new(()),
            release: Mutex::new(None),
            events: events::channel(),
            handover: Mutex::new(CancellationToken::new()),
        })
    }

    pub(crate) fn handover_token(&self) -> CancellationToken {
        lock(&self.handover).clone()
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// Write the process list to the state file.
    fn persist(&self) -> Result<(), StateError> {
        let _serial = lock(&self.persist_lock);
        self.snapshot().store(&self.home.state_file())
    }

    fn snapshot(&self) -> SavedState {
        let apps: Vec<_> = lock(&self.apps).values().cloned().collect();
        SavedState {
            version: STATE_VERSION,
            release: lock(&self.release).clone(),
            apps: apps
                .iter()
                .map(|a| {
                    let processes = lock(&a.slots)
                        .iter()
                        .filter_map(|(slot, s)| {
                            let v = lock(&s.runner.as_ref()?.view).clone();
                            Some(SavedProcess {
                                id: s.id,
                                slot: *slot,
                                pid: v.pid?,
                                start_time: v.start_time?,
                            })
                        })
                        .collect();
                    SavedApp {
                        spec: a.spec(),
                        running: a.is_running(),
                        instances: a.count(),
                        processes,
                    }
                })
                .collect(),
        }
    }

    fn processes(&self, app: &AppRuntime) -> Vec<ProcessInfo> {
        let spec = app.spec();
        let samples = lock(&self.samples);
        lock(&app.slots)
            .iter()
            .map(|(slot, s)| {
                let v = s
                    .runner
                    .as_ref()
                    .map(|r| lock(&r.view).clone())
                    .unwrap_or_else(app::View::stopped);
                let sample = v.pid.and_then(|p| samples.get(&p));
                ProcessInfo {
                    id: s.id,
                    name: app.name.clone(),
                    namespace: spec.namespace.clone(),
                    mode: spec.exec_mode,
                    instance: *slot,
                    pid: v.pid,
                    status: v.status,
                    uptime_ms: v
                        .started
                        .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(0)),
                    restarts: s.restarts.load(Ordering::SeqCst),
                    cpu_percent: sample.map(|s| s.cpu_percent),
                    rss_bytes: sample.map(|s| s.rss_bytes),
                    release: spec.env.get("PMFLEET_RELEASE").cloned(),
                    sha: spec.env.get("PMFLEET_SHA").cloned(),
                }
            })
            .collect()
    }

    /// Bind the app's port (cluster mode) and start every slot. On failure nothing is left
    /// running.
    fn start_app(self: &Arc<Self>, app: &Arc<AppRuntime>) -> Result<(), SupervisorError> {
        self.bind_listener(app)?;
        app.running.store(true, Ordering::SeqCst);
        let count = app.count();
        lock(&app.slots).retain(|k, _| *k < count);
        for slot in 0..count {
            if let Err(e) = self.start_slot(app, slot) {
                // Leave nothing half-started.
                for s in lock(&app.slots).values_mut() {
                    if let Some(r) = &s.runner {
                        r.stop.cancel();
                    }
                }
                app.running.store(false, Ordering::SeqCst);
                *lock(&app.listener) = None;
                return Err(e);
            }
        }
        self.arm(app);
        Ok(())
    }

    /// What a running app has besides its processes: a fresh cancel token for this run, its
    /// file watcher and its `cron_restart` schedule.
    fn arm(self: &Arc<Self>, app: &Arc<AppRuntime>) {
        let cancel = self.tasks_cancel.child_token();
        *lock(&app.run_cancel) = cancel.clone();
        if !app.spec().watch.is_empty() {
            self.tasks
                .spawn(watcher(self.clone(), app.clone(), cancel.clone()));
        }
        self.tasks
            .spawn(cron::cron_restarts(self.clone(), app.clone(), cancel));
        self.mark_dirty();
    }

    /// The address cluster-mode apps listen on: `<home>/bind-address` when it holds an IP
    /// address (a bad one is logged and ignored), else every interface.
    fn bind_address(&self) -> Option<std::net::IpAddr> {
        let text = std::fs::read_to_string(self.home.bind_address()).ok()?;
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        match text.trim_matches(['[', ']']).parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                tracing::warn!(
                    "{}: `{text}` is not an IP address; listening on every interface",
                    self.home.bind_address().display()
                );
                None
            }
        }
    }

    /// Bind a cluster app's port unless its socket is already open; a busy port is an error.
    fn bind_listener(&self, app: &AppRuntime) -> Result<(), SupervisorError> {
        let spec = app.spec();
        if let (ExecModeSpec::Cluster, Some(port)) = (spec.exec_mode, spec.port) {
            let mut listener = lock(&app.listener);
            if listener.is_none() {
                let address = self.bind_address();
                *listener = Some(bind(address, port).map_err(|source| SupervisorError::Port {
                    app: app.name.clone(),
                    port,
                    source,
                })?);
            }
        }
        Ok(())
    }

    /// Spawn a fresh process in `slot` (creating the slot if needed) under a new runner.
    fn start_slot(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
        slot: u32,
    ) -> Result<(), SupervisorError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(SupervisorError::ShuttingDown);
        }
        let (id, restarts) = {
            let mut slots = lock(&app.slots);
            let s = slots.entry(slot).or_insert_with(|| Slot {
                id: self.next_id.fetch_add(1, Ordering::SeqCst),
                restarts: Default::default(),
                runner: None,
            });
            (s.id, s.restarts.clone())
        };
        let proc = self
            .launch(app, slot, id, None)
            .map_err(|source| SupervisorError::Spawn {
                app: app.name.clone(),
                program: app.spec().program,
                source,
            })?;
        let pid = proc.pid;
        let runner = self.spawn_runner(app.clone(), slot, id, restarts, proc);
        if let Some(s) = lock(&app.slots).get_mut(&slot) {
            s.runner = Some(runner);
        }
        self.emit(
            &app.name,
            Some(slot),
            Some(pid),
            EventKind::Online,
            "running",
        );
        Ok(())
    }

    /// Stop every process of `app` (in parallel) and close its socket. `user` records that
    /// it should stay stopped.
    async fn stop_app(&self, app: &AppRuntime, user: bool) {
        if user {
            app.running.store(false, Ordering::SeqCst);
        }
        lock(&app.run_cancel).cancel();
        let joins: Vec<_> = lock(&app.slots)
            .values_mut()
            .filter_map(|s| {
                let r = s.runner.as_mut()?;
                r.stop.cancel();
                r.join.take()
            })
            .collect();
        for j in joins {
            let _ = j.await;
        }
        *lock(&app.listener) = None;
        self.mark_dirty();
    }

    async fn restart_app(self: &Arc<Self>, app: &Arc<AppRuntime>) -> Result<(), SupervisorError> {
        let counts: Vec<_> = lock(&app.slots)
            .values()
            .map(|s| s.restarts.clone())
            .collect();
        self.stop_app(app, true).await;
        for c in counts {
            c.fetch_add(1, Ordering::SeqCst);
        }
        self.start_app(app)
    }

    /// Replace the process of one slot without a gap: spawn the new one, wait until it is
    /// ready, then stop the old one. If the new one is not ready in time, it is stopped and
    /// the old one stays.
    async fn reload_slot(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
        slot: u32,
    ) -> Result<(), SupervisorError> {
        self.replace_slot(app, slot, Replace::Reload, None).await
    }

    /// Spawn a process for `slot` with the app's current spec, wait until it is ready (at
    /// most its `listen_timeout`, and at most `cap`), then hand it a runner and stop the
    /// slot's previous process, if any. A process not ready in time is stopped and the
    /// previous one stays.
    async fn replace_slot(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
        slot: u32,
        how: Replace,
        cap: Option<Duration>,
    ) -> Result<(), SupervisorError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(SupervisorError::ShuttingDown);
        }
        let spec = app.spec();
        let Some((id, restarts)) = lock(&app.slots)
            .get(&slot)
            .map(|s| (s.id, s.restarts.clone()))
        else {
            return Ok(());
        };
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let notify_path = self
            .home
            .run_dir()
            .join(format!("{id}-{seq}-{}.sock", std::process::id()));
        let has_listener = lock(&app.listener).is_some();
        // The process's own signal: `wait_ready`, or the Node preload's READY on listen.
        let notify = if spec.wait_ready || (spec.node && has_listener) {
            Some(
                NotifySocket::bind(&notify_path).map_err(|source| SupervisorError::Spawn {
                    app: app.name.clone(),
                    program: "NOTIFY_SOCKET".into(),
                    source,
                })?,
            )
        } else {
            None
        };
        let probe = match (&spec.healthcheck, spec.port) {
            (Some(hc), Some(port)) => {
                // Where the shared socket listens, when bound to one address.
                let ip = lock(&app.listener)
                    .as_ref()
                    .and_then(|l| l.local_addr().ok())
                    .and_then(|a| a.as_socket())
                    .map(|a| a.ip())
                    .filter(|ip| !ip.is_unspecified())
                    .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
                Some(((ip, port).into(), ready::probe_kind(hc)))
            }
            _ => None,
        };
        let readiness = Readiness { notify, probe };
        let notify = readiness.notify.as_ref();
        let mut proc =
            self.launch(app, slot, id, notify)
                .map_err(|source| SupervisorError::Spawn {
                    app: app.name.clone(),
                    program: spec.program.clone(),
                    source,
                })?;
        let timeout = Duration::from_millis(spec.listen_timeout_ms);
        let timeout = cap.map_or(timeout, |c| c.min(timeout));
        let waited = std::time::Instant::now();
        if let Err(reason) = ready::wait_ready(&readiness, &mut proc.child, timeout).await {
            tracing::warn!(app = %app.name, slot, "new instance {reason}");
            process::stop_child(&mut proc.child, kill_signal(&spec), kill_timeout(&spec)).await;
            let why = format!("the new process {reason}; it was stopped");
            self.emit(
                &app.name,
                Some(slot),
                Some(proc.pid),
                EventKind::Stopped,
                why,
            );
            let app = app.name.clone();
            return Err(match how {
                Replace::Reload => SupervisorError::ReloadFailed { app, slot, reason },
                Replace::Fresh => SupervisorError::StartFailed { app, slot, reason },
            });
        }
        drop(readiness);
        let pid = proc.pid;
        let ready_in = format!("ready after {}", events::took(waited.elapsed()));
        let runner = self.spawn_runner(app.clone(), slot, id, restarts.clone(), proc);
        self.emit(
            &app.name,
            Some(slot),
            Some(pid),
            EventKind::Online,
            ready_in,
        );
        let old = lock(&app.slots)
            .get_mut(&slot)
            .and_then(|s| s.runner.replace(runner));
        if how == Replace::Reload {
            restarts.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(mut old) = old {
            old.stop.cancel();
            if let Some(j) = old.join.take() {
                let _ = j.await;
            }
        }
        self.mark_dirty();
        Ok(())
    }

    /// Restart one slot gracefully (memory limit): a reload in cluster mode, else stop + start.
    async fn restart_slot(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
        slot: u32,
    ) -> Result<(), SupervisorError> {
        if !app.is_running() {
            return Ok(());
        }
        if app.spec().exec_mode == ExecModeSpec::Cluster {
            return self.reload_slot(app, slot).await;
        }
        let join = lock(&app.slots).get_mut(&slot).and_then(|s| {
            let r = s.runner.as_mut()?;
            r.stop.cancel();
            r.join.take()
        });
        if let Some(j) = join {
            let _ = j.await;
        }
        if let Some(s) = lock(&app.slots).get(&slot) {
            s.restarts.fetch_add(1, Ordering::SeqCst);
        }
        self.start_slot(app, slot)
    }
}

/// What [`Inner::replace_slot`] does to a slot: count a restart and report a failure as a
/// reload's, or start it for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replace {
    Reload,
    Fresh,
}

/// Bind a cluster app's port once: SO_REUSEADDR (a restarted agent must not wait out
/// TIME_WAIT), backlog 1024. On `address` when the home names one (`bind-address`), else on
/// all interfaces, dual-stack where IPv6 exists, like Node's `listen(PORT)`.
fn bind(address: Option<std::net::IpAddr>, port: u16) -> std::io::Result<Socket> {
    if let Some(ip) = address {
        let s = Socket::new(Domain::for_address((ip, port).into()), Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        s.bind(&std::net::SocketAddr::from((ip, port)).into())?;
        s.listen(1024)?;
        return Ok(s);
    }
    let v6 = || -> std::io::Result<Socket> {
        let s = Socket::new(Domain::IPV6, Type::STREAM, None)?;
        s.set_only_v6(false)?;
        s.set_reuse_address(true)?;
        s.bind(&std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)).into())?;
        Ok(s)
    };
    let s = match v6() {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(e),
        Err(_) => {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            s.set_reuse_address(true)?;
            s.bind(&std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)).into())?;
            s
        }
    };
    s.listen(1024)?;
    Ok(s)
}

/// Rewrites the state file whenever something changed, coalescing bursts.
async fn persister(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = inner.dirty.notified() => {}
            _ = inner.tasks_cancel.cancelled() => return,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Err(e) = inner.persist() {
            tracing::error!("{e}");
        }
    }
}

/// Samples CPU and RSS of every running instance each second for `list`, and restarts an
/// instance gracefully when its process tree passes `max_memory_restart`.
async fn monitor(inner: Arc<Inner>) {
    let mut sampler = Sampler::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = inner.tasks_cancel.cancelled() => return,
        }
        let apps: Vec<_> = lock(&inner.apps).values().cloned().collect();
        let mut samples = HashMap::new();
        for app in apps {
            let limit = lock(&app.spec).max_memory_restart;
            let pids: Vec<(u32, u32)> = lock(&app.slots)
                .iter()
                .filter_map(|(slot, s)| Some((*slot, lock(&s.runner.as_ref()?.view).pid?)))
                .collect();
            for (slot, pid) in pids {
                let Some(sample) = sampler.sample(pid) else {
                    continue;
                };
                samples.insert(pid, sample);
                if limit.is_some_and(|l| sample.rss_bytes > l)
                    && lock(&app.memory_restarts).insert(slot)
                {
                    tracing::warn!(app = %app.name, slot, rss = sample.rss_bytes, "over max_memory_restart; restarting");
                    let why = format!(
                        "{} bytes in memory, over max_memory_restart",
                        sample.rss_bytes
                    );
                    inner.emit(&app.name, Some(slot), Some(pid), EventKind::Restarting, why);
                    let (inner, app) = (inner.clone(), app.clone());
                    inner.clone().tasks.spawn(async move {
                        {
                            let _op = app.op.lock().await;
                            if let Err(e) = inner.restart_slot(&app, slot).await {
                                tracing::error!(app = %app.name, slot, "memory restart: {e}");
                            }
                        }
                        lock(&app.memory_restarts).remove(&slot);
                    });
                }
            }
        }
        let gone: Vec<u32> = lock(&inner.samples)
            .keys()
            .filter(|p| !samples.contains_key(p))
            .copied()
            .collect();
        for pid in gone {
            sampler.forget(pid);
        }
        *lock(&inner.samples) = samples;
    }
}

/// Restarts `app` when its watched files change and then stay quiet for one poll.
async fn watcher(inner: Arc<Inner>, app: Arc<AppRuntime>, cancel: CancellationToken) {
    let spec = app.spec();
    let skip = inner.home.root().to_path_buf();
    let scan = move || watch::fingerprint(&spec.watch, &spec.ignore_watch, &skip);
    let mut last = scan();
    let mut changed = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(watch::POLL) => {}
            _ = cancel.cancelled() => return,
        }
        let now = scan();
        if now != last {
            last = now;
            changed = true;
            continue;
        }
        if changed {
            tracing::info!(app = %app.name, "watched files changed; restarting");
            let why = "watched files changed";
            inner.emit(&app.name, None, None, EventKind::Restarting, why);
            let (inner, app) = (inner.clone(), app.clone());
            // The restart cancels this watcher and starts a new one.
            inner.clone().tasks.spawn(async move {
                let _op = app.op.lock().await;
                if let Err(e) = inner.restart_app(&app).await {
                    tracing::error!(app = %app.name, "watch restart: {e}");
                }
            });
            return;
        }
    }
}
