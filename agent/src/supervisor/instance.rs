//! One instance's process and the task that owns it.
//!
//! [`Inner::launch`] spawns a process for a slot and pipes its output into the app's log
//! files. [`Inner::spawn_runner`] hands that process to a task that waits for what happens
//! next, asks the slot's lifecycle ([`super::lifecycle`]) what to do, and does it (a timer and
//! a new spawn, or a final `stopped`/`errored`). Cancelling the runner's token stops the process gracefully —
//! whatever the runner was doing — and ends the task: that is the only way processes stop.
//! Each of these steps is published as an event ([`super::events`]).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use pmfleet_shared::protocol::{AppSpec, EventKind, ExecModeSpec, Status};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::app::{AppRuntime, Runner, View, lock};
use super::child::ChildProcess;
use super::events::took;
use super::lifecycle::{self, Action, Event, Lifecycle, State};
use super::process::{Launch, parse_signal, signal_group, spawn, stop_child};
use super::ready::NotifySocket;
use super::restart_policy::RestartPolicy;

/// A spawned process, not yet owned by a runner.
pub(crate) struct Proc {
    pub child: ChildProcess,
    pub pid: u32,
    pub start_time: Option<u64>,
    pub started: Instant,
    /// Its mark ([`super::marker`]), which everything it starts inherits. `None` for a
    /// process adopted from a binary that gave out no marks.
    pub mark: Option<String>,
    /// Copies of the read ends of its stdout and stderr pipes (close-on-exec), so they can be
    /// handed to a new agent binary with the process ([`super::handover`]).
    pub outputs: [Option<OwnedFd>; 2],
    /// The tasks copying its stdout and stderr into the log files. Stopped for a handover,
    /// each returns the unfinished line it held.
    pub pumps: [Option<JoinHandle<Vec<u8>>>; 2],
    /// Its own `PMFLEET_PROBE_PORT`, where its health check reaches it alone.
    pub probe_port: Option<u16>,
}

/// How a runner task ended.
pub(crate) enum RunnerEnd {
    /// The process stopped for good (stopped, errored, or stopped on request).
    Done,
    /// The agent is handing its apps over: here is the running process, untouched.
    Handed(Box<Proc>),
    /// The agent is handing its apps over while the slot waited out its restart delay.
    Waiting,
}

/// A pipe's read end, as something a log pump can read.
pub(crate) type Output = Box<dyn tokio::io::AsyncRead + Unpin + Send>;

pub(crate) fn policy_of(spec: &AppSpec) -> RestartPolicy {
    RestartPolicy {
        autorestart: spec.autorestart,
        max_restarts: spec.max_restarts,
        min_uptime: Duration::from_millis(spec.min_uptime_ms),
        restart_delay: Duration::from_millis(spec.restart_delay_ms),
        exp_backoff: spec.exp_backoff_restart_delay_ms.map(Duration::from_millis),
        stop_exit_codes: spec.stop_exit_codes.clone(),
    }
}

/// The app's stop signal; one that cannot be named (the file readers refuse those) falls
/// back to PM2's default.
pub(crate) fn kill_signal(spec: &AppSpec) -> Signal {
    parse_signal(&spec.kill_signal)
        .or_else(|| parse_signal(&pmfleet_shared::ecosystem::App::default().kill_signal))
        .unwrap_or(Signal::SIGKILL)
}

pub(crate) fn kill_timeout(spec: &AppSpec) -> Duration {
    Duration::from_millis(spec.kill_timeout_ms)
}

impl Inner {
    /// Spawn a process for `slot` of `app`, its stdout and stderr pumped into the log files.
    pub(crate) fn launch(
        &self,
        app: &AppRuntime,
        slot: u32,
        id: u32,
        notify: Option<&NotifySocket>,
        probe_port: Option<u16>,
    ) -> std::io::Result<Proc> {
        let spec = app.spec();
        let listener = lock(&app.listener).as_ref().map(|s| s.as_raw_fd());
        let preload_path = self.home.preload();
        let preload = (spec.node && spec.exec_mode == ExecModeSpec::Cluster && listener.is_some())
            .then_some(preload_path.as_path());
        let mark = super::marker::new_mark(&self.mark_key);
        let launch = Launch {
            slot,
            id,
            listener,
            notify,
            preload,
            mark: &mark,
            probe_port,
        };
        let mut child = spawn(&spec, launch)?;
        let pid = child.id().unwrap_or(0);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let outputs = [
            stdout
                .as_ref()
                .and_then(|r| r.as_fd().try_clone_to_owned().ok()),
            stderr
                .as_ref()
                .and_then(|r| r.as_fd().try_clone_to_owned().ok()),
        ];
        let readers: [Option<Output>; 2] = [
            stdout.map(|r| Box::new(r) as Output),
            stderr.map(|r| Box::new(r) as Output),
        ];
        let pumps = self.pump_output(app, slot, readers, Default::default());
        tracing::info!(app = %app.name, slot, pid, "spawned");
        let what = format!("spawned {}", spec.program);
        self.emit(&app.name, Some(slot), Some(pid), EventKind::Started, what);
        Ok(Proc {
            child: ChildProcess::Spawned(child),
            pid,
            start_time: crate::metrics::process_start_time(pid),
            started: Instant::now(),
            mark: Some(mark),
            outputs,
            pumps,
            probe_port,
        })
    }

    /// Copy `readers` (stdout, stderr of `slot`) into the slot's log files until they end,
    /// the daemon shuts down, or it hands its apps over; `carried` is what each one's previous
    /// pump left unfinished.
    pub(crate) fn pump_output(
        &self,
        app: &AppRuntime,
        slot: u32,
        readers: [Option<Output>; 2],
        carried: [Vec<u8>; 2],
    ) -> [Option<JoinHandle<Vec<u8>>>; 2] {
        let (out_path, err_path) = app.log_paths(self.home.root(), slot);
        let mut carried = carried.into_iter();
        let mut paths = [out_path, err_path].into_iter();
        readers.map(|reader| {
            let (path, carried) = (paths.next()?, carried.next().unwrap_or_default());
            let reader = reader?;
            let sink = match app.sink(path) {
                Ok(sink) => sink,
                Err(e) => {
                    tracing::warn!(app = %app.name, "cannot open a log file ({e}); output is discarded");
                    return None;
                }
            };
            let cancel = self.tasks_cancel.clone();
            let handover = self.handover_token();
            Some(self.tasks.spawn(async move {
                tokio::select! {
                    left = crate::logs::pump_until(reader, sink, &handover, carried) => {
                        left.unwrap_or_default()
                    }
                    _ = cancel.cancelled() => Vec::new(),
                }
            }))
        })
    }

    /// Hand `proc` to a new runner task.
    pub(crate) fn spawn_runner(
        self: &Arc<Self>,
        app: Arc<AppRuntime>,
        slot: u32,
        id: u32,
        restarts: Arc<AtomicU32>,
        proc: Proc,
    ) -> Runner {
        let stop = self.tasks_cancel.child_token();
        let probe_port = proc.probe_port;
        let view = Arc::new(Mutex::new(View {
            pid: Some(proc.pid),
            start_time: proc.start_time,
            started: Some(proc.started),
            status: Status::Online,
        }));
        let ctx = RunnerCtx {
            inner: self.clone(),
            app,
            slot,
            id,
            restarts,
            view: view.clone(),
            stop: stop.clone(),
            probe_port,
        };
        let join = self.tasks.spawn(ctx.run(proc, self.handover_token()));
        self.mark_dirty();
        Runner {
            stop,
            join: Some(join),
            view,
            probe_port,
        }
    }
}

struct RunnerCtx {
    inner: Arc<Inner>,
    app: Arc<AppRuntime>,
    slot: u32,
    id: u32,
    restarts: Arc<AtomicU32>,
    view: Arc<Mutex<View>>,
    stop: CancellationToken,
    /// The port its processes are told to answer health checks on; a restart keeps it.
    probe_port: Option<u16>,
}

impl RunnerCtx {
    fn set(&self, status: Status, proc: Option<&Proc>) {
        let mut v = lock(&self.view);
        v.status = status;
        if let Some(p) = proc {
            v.pid = Some(p.pid);
            v.start_time = p.start_time;
            v.started = Some(p.started);
        } else if matches!(status, Status::Stopped | Status::Errored | Status::Waiting) {
            v.pid = None;
            v.start_time = None;
            v.started = None;
        }
        drop(v);
        self.inner.mark_dirty();
    }

    fn emit(&self, pid: Option<u32>, kind: EventKind, message: impl Into<String>) {
        self.inner
            .emit(&self.app.name, Some(self.slot), pid, kind, message);
    }

    /// Record a final status and publish it.
    fn end(&self, status: Status, pid: Option<u32>, message: impl Into<String>) {
        self.set(status, None);
        let kind = match status {
            Status::Errored => EventKind::Errored,
            _ => EventKind::Stopped,
        };
        self.emit(pid, kind, message);
    }

    /// Carry out the slot's [`Lifecycle`]: wait for what happens next where the slot is,
    /// ask the lifecycle what to do, do it.
    async fn run(self, proc: Proc, handover: CancellationToken) -> RunnerEnd {
        let mut machine = Lifecycle::running();
        let mut proc = Some(proc);
        let mut delay = Duration::ZERO;
        loop {
            let event = match (machine.state, proc.as_mut()) {
                (State::Running, Some(p)) => tokio::select! {
                    status = p.child.wait() => exit_event(status.ok(), p.started.elapsed()),
                    _ = self.stop.cancelled() => Event::StopAsked,
                    _ = handover.cancelled() => Event::HandoverAsked,
                },
                (State::Waiting, _) => tokio::select! {
                    _ = tokio::time::sleep(delay) => {
                        if handover.is_cancelled() {
                            Event::HandoverAsked
                        } else {
                            Event::DelayOver { closing: self.inner.closing.load(Ordering::SeqCst) }
                        }
                    }
                    _ = self.stop.cancelled() => Event::StopAsked,
                    _ = handover.cancelled() => Event::HandoverAsked,
                },
                (State::Launching, _) => {
                    match self
                        .inner
                        .launch(&self.app, self.slot, self.id, None, self.probe_port)
                    {
                        Ok(p) => {
                            proc = Some(p);
                            Event::Launched
                        }
                        Err(e) => {
                            tracing::error!(app = %self.app.name, slot = self.slot, "cannot restart: {e}");
                            Event::LaunchFailed(e.to_string())
                        }
                    }
                }
                // Running without a process, or ended: nothing more can happen.
                _ => return RunnerEnd::Done,
            };
            let spec = self.app.spec();
            let actions = machine.handle(&policy_of(&spec), event.clone());
            let pid = proc.as_ref().map(|p| p.pid);
            if let Event::Exited { .. } = event {
                tracing::info!(app = %self.app.name, slot = self.slot, ?pid, ?event, ?actions, "instance exited");
            }
            for action in actions {
                match action {
                    Action::KillGroup => {
                        // Whatever the leader left behind goes with it: its group, and what
                        // left the group but carries its mark.
                        if let Some(pid) = pid {
                            signal_group(pid, Signal::SIGKILL);
                        }
                        super::family::end_leftovers(proc.as_ref().and_then(|p| p.mark.as_deref()));
                    }
                    Action::ReportExit(how) => self.emit(pid, EventKind::Exited, how),
                    Action::WaitToRestart { after } => {
                        self.set(Status::Waiting, None);
                        let n = self.restarts.load(Ordering::SeqCst) + 1;
                        let when = format!("restart {n} in {}", took(after));
                        self.emit(pid, EventKind::Restarting, when);
                        delay = after;
                    }
                    Action::StopGracefully => {
                        if let Some(p) = proc.as_mut() {
                            self.stop_gracefully(p).await;
                        }
                    }
                    Action::Launch => {}
                    Action::Online => {
                        let n = self.restarts.fetch_add(1, Ordering::SeqCst) + 1;
                        self.set(Status::Online, proc.as_ref());
                        self.emit(pid, EventKind::Online, format!("running (restart {n})"));
                    }
                    Action::End {
                        status,
                        why,
                        with_pid,
                    } => self.end(status, pid.filter(|_| with_pid), why),
                    Action::HandOver => {
                        if let Some(p) = proc.take() {
                            return RunnerEnd::Handed(Box::new(p));
                        }
                    }
                    Action::HandOverWaiting => return RunnerEnd::Waiting,
                }
            }
            if machine.state == State::Ended {
                return RunnerEnd::Done;
            }
        }
    }

    async fn stop_gracefully(&self, proc: &mut Proc) {
        self.set(Status::Stopping, None);
        let spec = self.app.spec();
        let (signal, timeout) = (kill_signal(&spec), kill_timeout(&spec));
        let pid = Some(proc.pid);
        let how = format!("{signal}, then SIGKILL after {}", took(timeout));
        self.emit(pid, EventKind::Stopping, how);
        let status = stop_child(&mut proc.child, proc.mark.as_deref(), signal, timeout).await;
        tracing::info!(app = %self.app.name, slot = self.slot, pid = proc.pid, "stopped");
        self.end(Status::Stopped, pid, describe_exit(status));
    }
}

fn exit_event(status: Option<ExitStatus>, uptime: Duration) -> Event {
    use std::os::unix::process::ExitStatusExt;
    Event::Exited {
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        uptime,
    }
}

/// How a process ended, for event messages (see [`lifecycle::describe_exit`]).
fn describe_exit(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    lifecycle::describe_exit(
        status.and_then(|s| s.code()),
        status.and_then(|s| s.signal()),
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn exits_are_described_with_their_code_or_signal() {
        let code = ExitStatus::from_raw(1 << 8);
        assert_eq!(describe_exit(Some(code)), "exit code 1");
        let killed = ExitStatus::from_raw(9);
        assert_eq!(describe_exit(Some(killed)), "killed by signal 9 (SIGKILL)");
        assert_eq!(describe_exit(None), "ended (status unknown)");
    }
}
