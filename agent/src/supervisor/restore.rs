//! A starting daemon's first step: stop what a previous daemon left running and start the
//! recorded apps again, fresh.
//!
//! What was running is found twice over: the state file's processes (pid *and* start time),
//! and every process carrying a mark of this home ([`super::marker`]) — so a state file that
//! cannot be read (its backup is read then) or that lags behind still leaves no orphan
//! holding a port, and each leftover is ended exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::Supervisor;
use super::app::{AppRuntime, Slot, lock};
use super::family::{self, Member};
use super::instance::{kill_signal, kill_timeout};
use super::marker;
use super::persist::{self, SavedProcess, SavedState};
use super::process::signal_group;

impl Supervisor {
    /// Restore what the state file lists (see [`Supervisor::start`]).
    pub(super) async fn restore(&self) {
        let path = self.inner.home.state_file();
        let backup = self.inner.home.state_backup();
        let saved = match SavedState::load(&path) {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::rename(&path, path.with_extension("json.bad"));
                match SavedState::load(&backup) {
                    Ok(s) => {
                        tracing::error!("{e}; restoring its copy {}", backup.display());
                        s
                    }
                    Err(b) => {
                        tracing::error!("{e}; {b}; starting with an empty process list");
                        SavedState::default()
                    }
                }
            }
        };
        reap_survivors(&saved, &self.inner.mark_key).await;
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

/// Stop the processes a previous daemon of this home (`home_key`) left behind: each recorded
/// group whose leader is still the recorded process (same pid *and* start time), and each
/// process carrying one of the home's marks, gets its app's kill signal (once: a marked
/// process in a recorded group gets the group's), then SIGKILL after the kill timeout.
/// Adopting them instead is not possible: their output pipes ended with the old daemon.
pub(super) async fn reap_survivors(saved: &SavedState, home_key: &str) {
    let mut groups: Vec<SavedProcess> = Vec::new();
    let mut deadline = Duration::ZERO;
    for a in &saved.apps {
        for p in &a.processes {
            if persist::still_running(p) {
                tracing::warn!(app = %a.spec.name, pid = p.pid, "stopping a process left by a previous agent");
                signal_group(p.pid, kill_signal(&a.spec));
                groups.push(*p);
                deadline = deadline.max(kill_timeout(&a.spec));
            }
        }
    }
    let specs: HashMap<&str, _> = saved
        .apps
        .iter()
        .map(|a| (a.spec.name.as_str(), &a.spec))
        .collect();
    let signalled: HashSet<u32> = groups.iter().map(|p| p.pid).collect();
    let default = pmfleet_shared::ecosystem::App::default();
    let mut marked: Vec<Member> = Vec::new();
    for (m, app) in family::marked(|mark| marker::of_home(mark, home_key)) {
        let spec = app.as_deref().and_then(|name| specs.get(name));
        let (signal, timeout) = match spec {
            Some(spec) => (kill_signal(spec), kill_timeout(spec)),
            None => (
                super::process::parse_signal(&default.kill_signal).unwrap_or(Signal::SIGINT),
                default.kill_timeout,
            ),
        };
        if !signalled.contains(&m.pgid) {
            tracing::warn!(
                app = app.as_deref().unwrap_or("?"),
                pid = m.pid,
                "stopping a process a previous agent left (found by its mark)"
            );
            m.signal(signal);
        }
        deadline = deadline.max(timeout);
        marked.push(m);
    }
    let start = std::time::Instant::now();
    let left = |groups: &[SavedProcess], marked: &[Member]| {
        groups.iter().any(persist::still_running) || marked.iter().any(Member::alive)
    };
    while left(&groups, &marked) && start.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in &groups {
        // The group id cannot be handed to a new process while any member is alive.
        if persist::still_running(p) || group_exists(p.pid) {
            signal_group(p.pid, Signal::SIGKILL);
        }
    }
    for m in marked.iter().filter(|m| m.alive()) {
        m.signal(Signal::SIGKILL);
    }
    if !groups.is_empty() || !marked.is_empty() {
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
