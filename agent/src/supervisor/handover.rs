//! Handing the running apps to a new agent binary without stopping them.
//!
//! The daemon re-executes itself in place (same pid, see `crate::upgrade`): its instances stay
//! its children, their listening sockets and output pipes stay open across the `exec`, and the
//! new binary takes them over from an [`AppsHandover`] — nothing is restarted, no connection
//! is refused, no log line is lost.
//!
//! [`Supervisor::hand_over`] freezes the supervisor (every app's operation lock, no new spawn),
//! has each runner hand back its process and each log pump stop at a read boundary, describes
//! the lot, and calls the `exec` it was given. If the `exec` fails, everything resumes as it
//! was. [`Supervisor::resume`] is the new binary's side: the same description, turned back
//! into runners, log pumps and sockets.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pmfleet_shared::protocol::{AppSpec, Status};
use serde::{Deserialize, Serialize};
use socket2::Socket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::app::{AppRuntime, Runner, Slot, View, lock};
use super::child::ChildProcess;
use super::instance::{Output, Proc, RunnerEnd};
use super::{Inner, Supervisor};
use crate::home::AgentHome;

/// The version of [`AppsHandover`] (and of the file around it): a binary takes over only
/// from the same version. 2: the home's lock is handed over too (left open across the
/// `exec`), and the new binary must take it over rather than wait for it.
pub const HANDOVER_VERSION: u32 = 2;

/// Every app, with the descriptor numbers that stay open across the `exec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppsHandover {
    pub release: Option<PathBuf>,
    pub next_id: u32,
    pub apps: Vec<HandedApp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedApp {
    pub spec: AppSpec,
    pub running: bool,
    pub instances: u32,
    /// Cluster mode: the listening socket.
    pub listener: Option<RawFd>,
    pub slots: Vec<HandedSlot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedSlot {
    pub slot: u32,
    pub id: u32,
    pub restarts: u32,
    /// `online` with a process; `waiting restart` (started again by the new binary),
    /// `stopped` or `errored` without one.
    pub status: Status,
    pub process: Option<HandedProcess>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedProcess {
    pub pid: u32,
    pub start_time: Option<u64>,
    /// How long it had been running, so `list` keeps counting its uptime.
    pub uptime_ms: u64,
    /// Its mark (`PMFLEET_AGENT_MARK`), so its leftovers are still found once it stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
    /// The read ends of its stdout and stderr pipes.
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
    /// What the log pumps had read of a line not yet finished, to go before what follows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stdout_partial: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stderr_partial: Vec<u8>,
}

/// A process handed back by its runner, kept (so nothing reaps or closes it) until the
/// `exec`, or resumed if the `exec` fails.
struct Held {
    app: Arc<AppRuntime>,
    slot: u32,
    proc: Proc,
    partial: [Vec<u8>; 2],
}

impl Supervisor {
    /// Freeze every app and call `exec` with their description; the descriptors it names are
    /// open and inheritable while it runs. `exec` returns only if it failed: then every app
    /// resumes as it was, and its error is returned.
    pub async fn hand_over<F>(&self, exec: F) -> std::io::Error
    where
        F: FnOnce(&AppsHandover) -> std::io::Error,
    {
        let inner = &self.inner;
        let _apply = inner.apply_lock.lock().await;
        let apps: Vec<Arc<AppRuntime>> = lock(&inner.apps).values().cloned().collect();
        let mut guards = Vec::new();
        for app in &apps {
            guards.push(app.op.lock().await);
        }
        // From here nothing else changes the apps: runners hand back their processes and the
        // log pumps stop at a read boundary, leaving unread output in the pipes.
        inner.closing.store(true, Ordering::SeqCst);
        inner.handover_token().cancel();
        let mut held = Vec::new();
        let mut waiting = Vec::new();
        let mut handed_apps = Vec::new();
        for app in &apps {
            let runners: Vec<_> = lock(&app.slots)
                .iter_mut()
                .map(|(slot, s)| {
                    let (join, view) = match s.runner.as_mut() {
                        Some(r) => (r.join.take(), Some(r.view.clone())),
                        None => (None, None),
                    };
                    (*slot, s.id, s.restarts.clone(), join, view)
                })
                .collect();
            let mut slots = Vec::new();
            for (slot, id, restarts, join, view) in runners {
                let end = match join {
                    Some(j) => j.await.unwrap_or(RunnerEnd::Done),
                    None => RunnerEnd::Done,
                };
                // Read once the runner ended: a runner that stopped for good has set its status.
                let view = view.map_or_else(View::stopped, |v| lock(&v).clone());
                let restarts = restarts.load(Ordering::SeqCst);
                let (status, process) = match end {
                    RunnerEnd::Handed(mut proc) => {
                        let mut partial: [Vec<u8>; 2] = Default::default();
                        for (left, pump) in partial.iter_mut().zip(&mut proc.pumps) {
                            if let Some(pump) = pump.take() {
                                *left = pump.await.unwrap_or_default();
                            }
                        }
                        let process = HandedProcess {
                            pid: proc.pid,
                            start_time: proc.start_time,
                            uptime_ms: millis(proc.started.elapsed()),
                            mark: proc.mark.clone(),
                            stdout: proc.outputs[0].as_ref().map(|f| f.as_raw_fd()),
                            stderr: proc.outputs[1].as_ref().map(|f| f.as_raw_fd()),
                            stdout_partial: partial[0].clone(),
                            stderr_partial: partial[1].clone(),
                        };
                        held.push(Held {
                            app: app.clone(),
                            slot,
                            proc: *proc,
                            partial,
                        });
                        (Status::Online, Some(process))
                    }
                    RunnerEnd::Waiting => {
                        waiting.push((app.clone(), slot));
                        (Status::Waiting, None)
                    }
                    RunnerEnd::Done => (view.status, None),
                };
                slots.push(HandedSlot {
                    slot,
                    id,
                    restarts,
                    status,
                    process,
                });
            }
            handed_apps.push(HandedApp {
                spec: app.spec(),
                running: app.is_running(),
                instances: app.count(),
                listener: lock(&app.listener).as_ref().map(|s| s.as_raw_fd()),
                slots,
            });
        }
        let state = AppsHandover {
            release: lock(&inner.release).clone(),
            next_id: inner.next_id.load(Ordering::SeqCst),
            apps: handed_apps,
        };
        let fds = state.descriptors();
        fds.iter().for_each(|fd| set_inherited(*fd, true));
        let error = exec(&state);

        // Still here: the new binary never started. Carry on as before.
        tracing::error!("handing the apps over failed: {error}; resuming them");
        fds.iter().for_each(|fd| set_inherited(*fd, false));
        *lock(&inner.handover) = CancellationToken::new();
        inner.closing.store(false, Ordering::SeqCst);
        for Held {
            app,
            slot,
            proc,
            partial,
        } in held
        {
            inner.resume_slot(&app, slot, proc, partial);
        }
        for (app, slot) in waiting {
            if let Err(e) = inner.start_slot(&app, slot) {
                tracing::error!(app = %app.name, slot, "cannot restart: {e}");
            }
        }
        drop(guards);
        error
    }

    /// The new binary's side of [`Supervisor::hand_over`]: take over the apps it describes.
    /// A process or descriptor that cannot be taken over is logged and its slot started
    /// afresh.
    pub async fn resume(home: AgentHome, tasks: TaskTracker, state: AppsHandover) -> Supervisor {
        let inner = Inner::new(home, tasks);
        *lock(&inner.release) = state.release.clone();
        inner.next_id.store(state.next_id, Ordering::SeqCst);
        let mut fresh = Vec::new();
        for a in state.apps {
            let app = Arc::new(AppRuntime::new(a.spec, a.instances.max(1)));
            app.running.store(a.running, Ordering::SeqCst);
            // SAFETY (each from_raw_fd below): the numbers were left open for us by the
            // previous binary and nothing in this process owns them yet.
            if let Some(fd) = a.listener.filter(|fd| is_open(*fd)) {
                set_inherited(fd, false);
                *lock(&app.listener) = Some(unsafe { Socket::from_raw_fd(fd) });
            }
            lock(&inner.apps).insert(app.name.clone(), app.clone());
            for s in a.slots {
                let view = View {
                    status: s.status,
                    ..View::stopped()
                };
                lock(&app.slots).insert(
                    s.slot,
                    Slot {
                        id: s.id,
                        restarts: Arc::new(AtomicU32::new(s.restarts)),
                        runner: Some(Runner {
                            stop: CancellationToken::new(),
                            join: None,
                            view: Arc::new(std::sync::Mutex::new(view)),
                            probe_port: None,
                        }),
                    },
                );
                let partial = s
                    .process
                    .as_ref()
                    .map(|p| [p.stdout_partial.clone(), p.stderr_partial.clone()])
                    .unwrap_or_default();
                let adopted = s.process.map(|p| {
                    let outputs = [p.stdout, p.stderr].map(|fd| {
                        let fd = fd.filter(|fd| is_open(*fd))?;
                        set_inherited(fd, false);
                        Some(unsafe { OwnedFd::from_raw_fd(fd) })
                    });
                    let child = ChildProcess::adopt(p.pid)?;
                    let started = Instant::now()
                        .checked_sub(Duration::from_millis(p.uptime_ms))
                        .unwrap_or_else(Instant::now);
                    Ok::<_, std::io::Error>(Proc {
                        child,
                        pid: p.pid,
                        start_time: p.start_time,
                        started,
                        mark: p.mark,
                        outputs,
                        pumps: Default::default(),
                        // Not handed over: its health is checked again by its next spawn.
                        probe_port: None,
                    })
                });
                match adopted {
                    Some(Ok(proc)) => {
                        tracing::info!(app = %app.name, slot = s.slot, pid = proc.pid, "taken over");
                        inner.resume_slot(&app, s.slot, proc, partial);
                    }
                    Some(Err(e)) => {
                        tracing::error!(app = %app.name, slot = s.slot, "cannot take over: {e}");
                        fresh.push((app.clone(), s.slot));
                    }
                    None if s.status == Status::Waiting => fresh.push((app.clone(), s.slot)),
                    None => {}
                }
            }
            if app.is_running() {
                inner.arm(&app);
                inner.resume_maintenance(&app);
            }
        }
        for (app, slot) in fresh {
            let _op = app.op.lock().await;
            if let Err(e) = inner.start_slot(&app, slot) {
                tracing::error!(app = %app.name, slot, "cannot start: {e}");
            }
        }
        Supervisor::run(inner)
    }
}

impl AppsHandover {
    /// Every descriptor it names.
    pub fn descriptors(&self) -> Vec<RawFd> {
        self.apps
            .iter()
            .flat_map(|a| {
                a.listener.into_iter().chain(
                    a.slots
                        .iter()
                        .filter_map(|s| s.process.as_ref())
                        .flat_map(|p| p.stdout.into_iter().chain(p.stderr)),
                )
            })
            .collect()
    }
}

impl Inner {
    /// Give `proc` (handed back, or adopted) a runner in `slot` again, and pumps for its
    /// output that go on from the unfinished lines in `partial`.
    fn resume_slot(
        self: &Arc<Self>,
        app: &Arc<AppRuntime>,
        slot: u32,
        mut proc: Proc,
        partial: [Vec<u8>; 2],
    ) {
        let readers = proc.outputs.each_ref().map(|fd| {
            let copy = fd.as_ref()?.try_clone().ok()?;
            match tokio::net::unix::pipe::Receiver::from_owned_fd(copy) {
                Ok(r) => Some(Box::new(r) as Output),
                Err(e) => {
                    tracing::warn!(app = %app.name, slot, "cannot read its output: {e}");
                    None
                }
            }
        });
        proc.pumps = self.pump_output(app, slot, readers, partial);
        let Some((id, restarts)) = lock(&app.slots)
            .get(&slot)
            .map(|s| (s.id, s.restarts.clone()))
        else {
            return;
        };
        let runner = self.spawn_runner(app.clone(), slot, id, restarts, proc);
        if let Some(s) = lock(&app.slots).get_mut(&slot) {
            s.runner = Some(runner);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether `fd` is an open descriptor of this process. (Raw `fcntl`: nix's takes a
/// `BorrowedFd`, which must not name a closed descriptor — the very case asked about.)
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1
}

/// Clear (`true`) or set close-on-exec on `fd`, an open descriptor of this process.
pub(crate) fn set_inherited(fd: RawFd, inherited: bool) {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    if !is_open(fd) {
        return;
    }
    // SAFETY: `fd` is open (checked above) and stays open for this call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let Ok(bits) = fcntl(fd, FcntlArg::F_GETFD) else {
        return;
    };
    let mut flags = FdFlag::from_bits_truncate(bits);
    flags.set(FdFlag::FD_CLOEXEC, !inherited);
    let _ = fcntl(fd, FcntlArg::F_SETFD(flags));
}
