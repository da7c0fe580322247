//! A starting daemon's first step: stop what a previous daemon left running (recorded pid
//! *and* start time) and start the recorded apps again, fresh.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::Supervisor;
use super::app::{AppRuntime, Slot, lock};
use super::instance::{kill_signal, kill_timeout};
use super::persist::{self, SavedProcess, SavedState};
use super::process::signal_group;

impl Supervisor {
    /// Restore what the state file lists (see [`Supervisor::start`]).
    pub(super) async fn restore(&self) {
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
pub(super) async fn reap_survivors(saved: &SavedState) {
    let mut alive: Vec<(SavedProcess, Signal, Duration)> = Vec::new();
    for a in &saved.apps {
        for p in &a.processes {
            if persist::still_running(p) {
                tracing::warn!(app = %a.spec.name, pid = p.pid, "stopping a process left by a previous agent");
                signal_group(p.pid, kill_signal(&a.spec));
                alive.push((*p, kill_signal(&a.spec), kill_timeout(&a.spec)));
            }
        }
    }
    let deadline = alive.iter().map(|a| a.2).max().unwrap_or_default();
    let start = std::time::Instant::now();
    while alive.iter().any(|(p, ..)| persist::still_running(p)) && start.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (p, ..) in &alive {
        // The group id cannot be handed to a new process while any member is alive.
        if persist::still_running(p) || group_exists(p.pid) {
            signal_group(p.pid, Signal::SIGKILL);
        }
    }
    if !alive.is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether any process still belongs to process group `pgid`.
pub(super) fn group_exists(pgid: u32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    // Signal 0 only checks for existence and permission.
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}
