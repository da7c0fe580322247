//! The slot lifecycle: starting an app's slots, replacing one slot's process without a gap
//! (the reload step: spawn, wait until ready, then stop the old one), restarting and stopping.
//! Every process of a slot is owned by one runner task ([`super::instance`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pmfleet_shared::protocol::{EventKind, ExecModeSpec};

use super::app::{AppRuntime, Slot, lock};
use super::error::{LAST_LINES, LastLines};
use super::events::{self};
use super::instance::{kill_signal, kill_timeout};
use super::probe::{self, Aim};
use super::process::{self};
use super::readiness;
use super::ready::{self, NotReady, NotifySocket, Proof, Readiness};
use super::{Inner, SupervisorError, watch};

impl Inner {
    /// Bind the app's port (cluster mode) and start every slot. On failure nothing is left
    /// running.
    pub(super) fn start_app(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
    ) -> Result<(), SupervisorError> {
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
        self.resume_maintenance(app);
        self.arm(app);
        Ok(())
    }

    /// What a running app has besides its processes: a fresh cancel token for this run, its
    /// file watcher and its `cron_restart` schedule.
    pub(super) fn arm(self: &Arc<Self>, app: &Arc<AppRuntime>) {
        let cancel = self.tasks_cancel.child_token();
        *lock(&app.run_cancel) = cancel.clone();
        if !app.spec().watch.is_empty() {
            self.tasks
                .spawn(watch::watcher(self.clone(), app.clone(), cancel.clone()));
        }
        self.tasks.spawn(super::cron::cron_restarts(
            self.clone(),
            app.clone(),
            cancel,
        ));
        self.mark_dirty();
    }

    /// Spawn a fresh process in `slot` (creating the slot if needed) under a new runner.
    pub(super) fn start_slot(
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
        let has_listener = lock(&app.listener).is_some();
        let probe_port = readiness::plan(&app.spec(), has_listener)
            .probe_port
            .then(process::free_probe_port)
            .flatten();
        let proc = self
            .launch(app, slot, id, None, probe_port)
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
    pub(super) async fn stop_app(&self, app: &AppRuntime, user: bool) {
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
        self.pause_maintenance(app).await;
        *lock(&app.listener) = None;
        self.mark_dirty();
    }

    pub(super) async fn restart_app(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
    ) -> Result<(), SupervisorError> {
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
    pub(super) async fn reload_slot(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
        slot: u32,
    ) -> Result<Proof, SupervisorError> {
        self.replace_slot(app, slot, Replace::Reload, None).await
    }

    /// Spawn a process for `slot` with the app's current spec, wait until it is ready (at
    /// most its `listen_timeout`, and at most `cap`), then hand it a runner and stop the
    /// slot's previous process, if any. A process not ready in time is stopped and the
    /// previous one stays.
    pub(super) async fn replace_slot(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
        slot: u32,
        how: Replace,
        cap: Option<Duration>,
    ) -> Result<Proof, SupervisorError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(SupervisorError::ShuttingDown);
        }
        let spec = app.spec();
        let Some((id, restarts)) = lock(&app.slots)
            .get(&slot)
            .map(|s| (s.id, s.restarts.clone()))
        else {
            return Ok(Proof::Own);
        };
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let notify_path = self
            .home
            .run_dir()
            .join(format!("{id}-{seq}-{}.sock", std::process::id()));
        let has_listener = lock(&app.listener).is_some();
        let plan = readiness::plan(&spec, has_listener);
        // The process's own signal: `wait_ready`, or the Node preload's READY on listen.
        let notify =
            match plan.own {
                Some(_) => Some(NotifySocket::bind(&notify_path).map_err(|source| {
                    SupervisorError::Spawn {
                        app: app.name.clone(),
                        program: "NOTIFY_SOCKET".into(),
                        source,
                    }
                })?),
                None => None,
            };
        let probe_port = plan.probe_port.then(process::free_probe_port).flatten();
        let mut readiness = Readiness {
            notify,
            notify_offered: plan.own == Some(readiness::OwnSignal::Offered),
            probe: None,
        };
        let notify = readiness.notify.as_ref();
        let mut proc = self
            .launch(app, slot, id, notify, probe_port)
            .map_err(|source| SupervisorError::Spawn {
                app: app.name.clone(),
                program: spec.program.clone(),
                source,
            })?;
        readiness.probe = plan.probe.as_ref().and_then(|p| {
            let aim = probe::aim_at(&spec, p.target, bound_ip(app), probe_port, proc.pid)?;
            Some((aim, p.check.clone()))
        });
        let timeout = cap.map_or(plan.deadline, |c| c.min(plan.deadline));
        let waited = std::time::Instant::now();
        let ready = match ready::wait_ready(&readiness, &mut proc.child, timeout).await {
            Ok(proof) => ready::stays_up(&mut proc.child, proc.started, plan.stable_for)
                .await
                .map(|()| proof),
            Err(e) => Err(e),
        };
        let proof = match ready {
            Ok(proof) => proof,
            Err(reason) => {
                tracing::warn!(app = %app.name, slot, "new instance {reason}");
                process::stop_child(
                    &mut proc.child,
                    proc.mark.as_deref(),
                    kill_signal(&spec),
                    kill_timeout(&spec),
                )
                .await;
                let logs = last_lines(app, &self.home, slot, &mut proc).await;
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
                    Replace::Reload => SupervisorError::ReloadFailed {
                        app,
                        slot,
                        reason,
                        logs,
                    },
                    Replace::Fresh => SupervisorError::StartFailed {
                        app,
                        slot,
                        reason,
                        logs,
                    },
                });
            }
        };
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
        Ok(proof)
    }

    /// Restart one slot gracefully (memory limit): a reload in cluster mode, else stop + start.
    pub(super) async fn restart_slot(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
        slot: u32,
    ) -> Result<(), SupervisorError> {
        if !app.is_running() {
            return Ok(());
        }
        if app.spec().exec_mode == ExecModeSpec::Cluster {
            return self.reload_slot(app, slot).await.map(|_| ());
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

    /// Stop the processes of the slots from `from` on (in order, each waited for) and forget
    /// those slots: a scale down.
    pub(super) async fn remove_slots(&self, app: &AppRuntime, from: u32) {
        let extra: Vec<Slot> = {
            let mut slots = lock(&app.slots);
            let keys: Vec<u32> = slots.range(from..).map(|(k, _)| *k).collect();
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
}

/// What [`Inner::replace_slot`] does to a slot: count a restart and report a failure as a
/// reload's, or start it for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replace {
    Reload,
    Fresh,
}

/// The one address the app's shared socket is bound to, if it is bound to one.
pub(super) fn bound_ip(app: &AppRuntime) -> Option<std::net::IpAddr> {
    lock(&app.listener)
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .and_then(|a| a.as_socket())
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
}

/// The last lines a failed instance wrote: its output pumps are given a moment to write what
/// it said last, then its log files are read from their end.
async fn last_lines(
    app: &AppRuntime,
    home: &crate::home::AgentHome,
    slot: u32,
    proc: &mut super::instance::Proc,
) -> LastLines {
    for pump in proc.pumps.iter_mut().flatten() {
        let _ = tokio::time::timeout(Duration::from_millis(500), pump).await;
    }
    log_tail(app, home, slot)
}

/// The last [`LAST_LINES`] lines of `slot`'s log files (out, then err).
pub(super) fn log_tail(app: &AppRuntime, home: &crate::home::AgentHome, slot: u32) -> LastLines {
    let (out, err) = app.log_paths(home.root(), slot);
    let mut lines = Vec::new();
    for path in [out, err] {
        if lines.iter().any(|(p, _)| *p == path) {
            continue;
        }
        let tail = crate::logs::tail(&path, LAST_LINES).unwrap_or_default();
        lines.push((path, tail));
    }
    let mut all: Vec<String> = lines.into_iter().flat_map(|(_, t)| t).collect();
    let skip = all.len().saturating_sub(LAST_LINES);
    LastLines(all.drain(skip..).collect())
}

impl Inner {
    /// Once every instance of a reload is new: the app's probe through the shared socket,
    /// which only new instances can answer now. `Ok` when the app has no such probe.
    pub(super) async fn check_app(&self, app: &AppRuntime) -> Result<(), NotReady> {
        let spec = app.spec();
        let has_listener = lock(&app.listener).is_some();
        let plan = readiness::plan(&spec, has_listener);
        let Some((port, check)) = plan.app_probe else {
            return Ok(());
        };
        let addr = std::net::SocketAddr::new(
            bound_ip(app).unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
            port,
        );
        match ready::probe_until(&Aim::Addr(addr), &check, plan.deadline).await {
            Ok(()) => Ok(()),
            Err(last) => Err(NotReady::AppProbe {
                probe: check.describe(),
                port,
                last,
            }),
        }
    }
}

/// What a reload's message adds when some instance gave no readiness signal of its own.
pub(super) fn unverified_note(
    proofs: &[Proof],
    spec: &pmfleet_shared::protocol::AppSpec,
) -> String {
    let n = proofs
        .iter()
        .filter(|p| **p == Proof::AliveAfterTimeout)
        .count();
    if n == 0 {
        return String::new();
    }
    format!(
        " — readiness not verified for {n} instance(s): no wait_ready/sd_notify READY=1 or Node listen signal, so each was counted ready once alive after listen_timeout ({} ms)",
        spec.listen_timeout_ms
    )
}
