//! Reaping orphans without stealing anyone's exit status.
//!
//! The daemon is a child subreaper (and in a container it may be PID 1), so a process whose
//! parent exits — a daemonized helper of an app, the background job of a shell that ended —
//! becomes the daemon's child, and when it exits it stays a zombie until the daemon waits
//! for it. Nobody else will: tokio waits only for the pids it spawned, the handover reaper
//! ([`super::child`]) only for the pids it adopted.
//!
//! So this waits for every zombie child that is not the daemon's own, by pid, never with
//! `waitpid(-1)`: a child is the daemon's own when it is an instance the supervisor spawned
//! or adopted (registered here, pid *and* start time, before anyone could wait for it: a
//! spawn holds the [`spawn_gate`] from before the fork until its pid is registered, and a
//! sweep holds it exclusively) or when it runs in the daemon's own session — every instance
//! and everything below it runs in a session of its own, so a child in the daemon's session
//! is one the daemon started for itself (the `node` that reads an ecosystem file), which its
//! starter waits for.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::app::lock;

/// Held (shared) by every spawn of an instance until its pid is registered, and exclusively
/// by a sweep.
static GATE: RwLock<()> = RwLock::new(());

/// The daemon's own children (instances spawned or adopted): pid → start time.
static OWN: Mutex<Option<HashMap<u32, Option<u64>>>> = Mutex::new(None);

/// Hold this across a spawn and the [`own`] of its pid.
pub(crate) fn spawn_gate() -> RwLockReadGuard<'static, ()> {
    GATE.read().unwrap_or_else(|e| e.into_inner())
}

/// `pid` is the daemon's own child: someone waits for it by pid.
pub(crate) fn own(pid: u32) {
    let start = crate::metrics::process_start_time(pid);
    lock(&OWN)
        .get_or_insert_with(HashMap::new)
        .insert(pid, start);
}

/// `pid` was waited for: it is nobody's now.
pub(crate) fn disown(pid: u32) {
    if let Some(own) = lock(&OWN).as_mut() {
        own.remove(&pid);
    }
}

/// A child of the daemon, as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChildSeen {
    pub pid: u32,
    pub start_time: u64,
    pub session: u32,
    pub zombie: bool,
}

/// Whether the daemon may wait for `child`: a zombie that is neither one of its own
/// instances (`own`: pid → start time, `None` when it could not be read) nor a child it
/// started in its own `session`.
pub(crate) fn is_orphan(child: &ChildSeen, session: u32, own: &HashMap<u32, Option<u64>>) -> bool {
    let owned = match own.get(&child.pid) {
        Some(Some(start)) => *start == child.start_time,
        Some(None) => true,
        None => false,
    };
    child.zombie && child.session != session && !owned
}

fn seen(pid: u32) -> Option<ChildSeen> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .stat()
        .ok()?;
    Some(ChildSeen {
        pid,
        start_time: stat.starttime,
        session: u32::try_from(stat.session).ok()?,
        zombie: stat.state == 'Z',
    })
}

/// Wait for every orphaned zombie child now; how many there were.
pub(crate) fn reap_orphans() -> usize {
    let _sweep = GATE.write().unwrap_or_else(|e| e.into_inner());
    let Ok(session) = nix::unistd::getsid(None) else {
        return 0;
    };
    let session = u32::try_from(session.as_raw()).unwrap_or(0);
    let me = std::process::id();
    let children: Vec<ChildSeen> = crate::metrics::children(me)
        .into_iter()
        .filter_map(seen)
        .collect();
    let mut own = lock(&OWN);
    let own = own.get_or_insert_with(HashMap::new);
    // Forget own children that are gone (or whose pid now names another process).
    own.retain(|pid, start| {
        let now = crate::metrics::process_start_time(*pid);
        now.is_some() && (start.is_none() || now == *start)
    });
    let mut reaped = 0;
    for child in children.iter().filter(|c| is_orphan(c, session, own)) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.pid).unwrap_or(0));
        let flags = Some(nix::sys::wait::WaitPidFlag::WNOHANG);
        match nix::sys::wait::waitpid(pid, flags) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => {}
            Ok(status) => {
                tracing::debug!(pid = child.pid, ?status, "reaped an orphan");
                reaped += 1;
            }
        }
    }
    reaped
}

/// Make this process a child subreaper: orphans below it become its children (and are
/// reaped by [`run`]) instead of init's, so what an instance leaves is still the agent's.
pub(crate) fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!("cannot become a child subreaper: {e}; orphans go to init");
    }
}

/// Reap orphans whenever a child exits (SIGCHLD), and every few seconds in case a signal
/// was missed, until `cancel`.
pub(crate) async fn run(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut chld = signal(SignalKind::child()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            Some(()) = async { chld.as_mut()?.recv().await } => {}
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let _ = tokio::task::spawn_blocking(reap_orphans).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_orphans_outside_the_daemons_session_are_waited_for() {
        let own: HashMap<u32, Option<u64>> = [(10, Some(500)), (11, None)].into_iter().collect();
        let child = |pid, start_time, session, zombie| ChildSeen {
            pid,
            start_time,
            session,
            zombie,
        };
        let session = 1;
        let table = [
            // An orphan from an instance's session, exited.
            (child(20, 900, 7, true), true),
            // The same, still running: nothing to wait for.
            (child(20, 900, 7, false), false),
            // An instance of ours: tokio waits for it.
            (child(10, 500, 10, true), false),
            // Its pid reused by an orphan: not ours any more.
            (child(10, 501, 10, true), true),
            // Registered without a start time: ours whatever it is.
            (child(11, 42, 11, true), false),
            // A child the daemon started in its own session (`node` reading a file).
            (child(30, 900, 1, true), false),
        ];
        for (c, want) in table {
            assert_eq!(is_orphan(&c, session, &own), want, "{c:?}");
        }
    }
}
