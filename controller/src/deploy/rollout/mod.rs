//! The rollout as a pure state machine: every rule of `deploy` and `revert` across hosts, and
//! nothing else. [`Rollout::handle`] takes one [`Event`] (a host connected, took its lock,
//! prepared the release, switched, ran its apps, failed at some step; the user interrupted)
//! and returns the [`Action`]s that follow (take the locks, prepare, switch this host, switch
//! that one back, conclude a host, release the locks). It does no I/O: the [`driver`] performs
//! the actions on the hosts through the [`RolloutHost`] trait and feeds the results back, so
//! the rules are tested by tables of events and expected actions (`tests.rs`).
//!
//! The rules live in a few files: `gate` (connecting and locking: who may start, the lock
//! taken host by host in a fixed order, a rollout that lost its lock), `deploy` (all or
//! nothing before the switch, batches with the first as the canary, `max_fail`, rolling back
//! the hosts already switched), `release_step` (the `release` hook, once, on one host, after
//! every host prepared and before any switches), `watch` (the watch window after each batch,
//! and the fleet-wide revert a failing window starts), `confirm` (the whole rollout confirmed
//! on every host, or undone everywhere) and `revert` (one target for every host, or none
//! moves).
//!
//! Every rollout leaves a record on each host while it runs (`Begin` … `End`, see
//! [`crate::deploy::rollout_record`]); a switch writes its history record in the same step,
//! and a host whose switch is undone has its agent run what `current` points at again, so
//! `current`, the history and the running apps never disagree for longer than one step.

mod confirm;
mod deploy;
pub mod driver;
mod fleet_target;
mod gate;
mod host;
mod release_step;
mod revert;
mod watch;

#[cfg(test)]
mod double;
#[cfg(test)]
mod driver_tests;
#[cfg(test)]
mod tests;

pub use host::{Begun, Confirmed, Heartbeat, Prepared, Pruned, RolloutHost};

use pmfleet_shared::ecosystem::Batch;

use super::error::{HostError, StepFailure};
use super::history::{Action as RecordAction, Outcome};
use super::host_state::HostState;
use super::lock::Refusal;
use super::report::Status;
use super::rollout_record::RolloutRecord;

/// A host of the rollout: its index in the environment's host list.
pub type HostId = usize;

/// What the apps of a release are told about it (`PMFLEET_RELEASE`, `PMFLEET_SHA`,
/// `PMFLEET_REF`), and what a report shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseVars {
    pub release: String,
    pub sha: Option<String>,
    pub git_ref: Option<String>,
}

/// What the rollout does.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Prepare `release` on every host, then switch in batches.
    Deploy {
        release: ReleaseVars,
        batch: Batch,
        max_fail: usize,
        rails: Rails,
    },
    /// Switch every host back to one release.
    Revert { to: RevertTo },
}

/// Where a revert goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertTo {
    /// `revert N`: N releases back along each host's history.
    Steps(usize),
    /// `revert`: the newest release every host holds, other than what they serve (see
    /// [`crate::deploy::common_release`]).
    NewestCommon,
}

/// What a deploy does besides switching: pmfleet's rollout rails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rails {
    /// `release`: run the release step once before any switch.
    pub release_step: bool,
    /// Where it runs (`primary: true`); `None`: the first host.
    pub primary: Option<HostId>,
    /// `watch_period`: every batch is watched by its agents before the next one goes.
    pub watch: bool,
    /// Each switch leaves the host a pending record, which the whole rollout confirms at
    /// its end (a host whose run falls silent goes back by itself; see `confirm`).
    pub confirm: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub plan: Plan,
    /// The environment's name, for the hints in messages.
    pub env: String,
    /// Every host, as shown, in the environment's order.
    pub labels: Vec<String>,
    /// After a switch, each host must run the apps of the release switched to (its agent
    /// does, or the `published` hook of an `agent: false` environment): an apply step.
    pub agents: bool,
    /// `--lock-wait`: a held lock is waited for rather than refused.
    pub lock_wait: bool,
    /// `keep_releases`, for messages.
    pub keep_releases: usize,
}

/// Something that happened on a host (or to the whole run).
#[derive(Debug, Clone)]
pub enum Event {
    Connected(HostId),
    NotConnected(HostId, HostError),
    LockTaken(HostId),
    LockRefused(HostId, Refusal),
    /// The pause after a refused lock is over: try again.
    LockRetry,
    /// `--lock-wait` ran out.
    LockWaitOver,
    /// The rollout record is written; what the host said.
    Begun(HostId, Box<Begun>),
    BeginFailed(HostId, HostError),
    Prepared(HostId, Prepared),
    PrepareFailed(HostId, StepFailure),
    StateRead(HostId, Box<HostState>),
    StateUnread(HostId, HostError),
    /// `current` now points at the release; it pointed at the one given before.
    Switched(HostId, Option<String>),
    SwitchFailed(HostId, HostError),
    /// The agent runs the release's apps, all ready; what it did.
    Applied(HostId, String),
    ApplyFailed(HostId, HostError),
    SwitchedBack(HostId),
    SwitchBackFailed(HostId, HostError),
    AppliedBack(HostId, String),
    ApplyBackFailed(HostId, HostError),
    /// The `release` step ran on the host; what it said.
    ReleaseRan(HostId, String),
    ReleaseFailed(HostId, StepFailure),
    /// The watch window on the host is over and its apps stayed healthy; what it said.
    Watched(HostId, String),
    /// Its apps failed inside the watch window (or it could not be watched).
    WatchFailed(HostId, HostError),
    /// The host holds the release for good (its pending record is removed).
    Confirmed(HostId),
    /// The host had already gone back by itself; why.
    NotConfirmed(HostId, String),
    ConfirmFailed(HostId, HostError),
    /// Someone else broke this run's lock on the host.
    LockLost(HostId),
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    TakeLock(Vec<HostId>),
    /// Every lock is taken: keep them alive (heartbeat) until released.
    HoldLock(Vec<HostId>),
    /// Pause, then answer [`Event::LockRetry`], or [`Event::LockWaitOver`] once `--lock-wait`
    /// has run out.
    WaitForLock,
    ReleaseLock(Vec<HostId>),
    /// Write the rollout record (a rollout to `release`) on these hosts.
    Begin(Vec<HostId>, String),
    /// Mark the rollout record finished on these hosts.
    End(Vec<HostId>),
    /// End this run's hooks still running on these hosts, and wait for them.
    EndHooks(Vec<HostId>),
    /// Put the release on these hosts.
    Prepare(Vec<HostId>, String),
    /// Run the `release` step of `release` on this host.
    RunRelease(HostId, String),
    /// Have the host's agent watch the apps of `release` through the watch window.
    Watch(HostId, String),
    /// Stop watching on these hosts (the rollout stopped); nothing comes back from them.
    StopWatching(Vec<HostId>),
    /// The whole rollout went well: every one of these hosts keeps the release (its pending
    /// record is removed).
    Confirm(Vec<HostId>),
    ReadState(Vec<HostId>),
    /// Point `current` at the release, recording the switch in the same step.
    Switch(HostId, String, Entry),
    /// Have the host's agent run the apps of `release`, telling them `vars`.
    Apply {
        host: HostId,
        release: String,
        vars: ReleaseVars,
    },
    /// Point `current` back at the release, recording that in the same step.
    SwitchBack(HostId, String, Entry),
    ApplyBack {
        host: HostId,
        release: String,
        vars: ReleaseVars,
    },
    /// Stop every host operation still running.
    Cancel,
    /// A line about the whole run.
    Info(String),
    /// A line about one host's step.
    Note(HostId, &'static str, String),
    /// The host's outcome: clean up, record, report.
    Conclude(Conclusion),
    /// The run is over; every host was concluded and the locks released.
    Finish,
}

/// How one host ends the run, and what is left to do on it: remove the new release, append
/// history records (of what did not switch: a switch records itself), prune old releases;
/// then report `status` with `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conclusion {
    pub host: HostId,
    pub status: Status,
    pub message: String,
    /// The release the report names.
    pub release: Option<ReleaseVars>,
    /// Remove this release from the host first (it is not current there).
    pub discard: Option<String>,
    /// History records to append, in order.
    pub records: Vec<Entry>,
    /// Prune old releases (after a successful switch); the report says how many went.
    pub prune: bool,
}

/// A history record, less what the driver adds (the run's id, who, when).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub action: RecordAction,
    pub release: String,
    pub previous: Option<String>,
    pub sha: String,
    pub git_ref: String,
    pub outcome: Outcome,
    pub message: Option<String>,
}

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Locking,
    WaitingForLock,
    /// Writing the rollout record.
    Beginning,
    Preparing,
    Reading,
    /// Running the `release` step.
    Releasing,
    /// Switching the hosts of batch N (a revert has one batch: every host).
    Switching(usize),
    /// Every batch switched: confirming the rollout on every host.
    Confirming,
    /// The rollout stopped: the hosts already switched go back.
    Undoing,
    Done,
}

/// The lock on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lock {
    Asked,
    Taken,
    /// Taken, then broken by someone else.
    Lost,
    /// Refused: the message and status to report; `held` when another run holds it (worth
    /// waiting for).
    Refused {
        message: String,
        status: Status,
        held: bool,
    },
}

/// The host operation in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    Beginning,
    Preparing,
    Reading,
    Switching,
    Applying,
    SwitchingBack,
    ApplyingBack,
    Releasing,
    Watching,
    Confirming,
}

/// Why a host is going back to the release it served.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Undo {
    /// Deploy: its apps did not become ready on the new release.
    NotReady(String),
    /// Deploy: the rollout stopped (too many failures); `why` says so.
    Stopped(String),
    /// Deploy: its apps failed inside the watch window (the failure is counted already).
    Unhealthy(String),
    /// Revert: its own apps did not run the target; the error message.
    RevertFailed(String),
    /// Revert: another host failed; back to what it served.
    OthersFailed(String),
}

#[derive(Debug, Clone, Default)]
struct Host {
    /// Answered the connect: `Some(true)` when connected.
    connected: Option<bool>,
    lock: Option<Lock>,
    busy: Option<Busy>,
    /// The rollout record was written (it is marked finished at the end).
    begun: bool,
    /// Deploy: what the release `current` pointed at when the rollout began is, as its apps
    /// were told.
    serving: Option<ReleaseVars>,
    /// What `current` pointed at when the rollout began.
    current: Option<String>,
    /// The rollout record found when this one began, if that rollout never finished.
    last_rollout: Option<RolloutRecord>,
    prepared: Option<Prepared>,
    /// Revert: what the host holds, or why it could not be read.
    state: Option<HostState>,
    unread: Option<HostError>,
    /// What `current` pointed at before this run switched it.
    previous: Option<String>,
    /// `current` points at the release and its apps run; waiting for the end of the run.
    switched: bool,
    /// Failed in the switch phase (a revert switches the others back).
    failed: bool,
    undo: Option<Undo>,
    /// Did not keep the release when the rollout was confirmed.
    unconfirmed: bool,
    concluded: bool,
}

/// The state machine; see the module documentation.
#[derive(Debug)]
pub struct Rollout {
    cfg: Config,
    hosts: Vec<Host>,
    phase: Phase,
    /// Hosts that failed or could not be reached (what `max_fail` counts).
    failed: usize,
    interrupted: bool,
    /// Hosts whose lock someone else broke: the rollout stops.
    lost: Vec<HostId>,
    /// Hosts still to lock, in lock order.
    to_lock: Vec<HostId>,
    /// Deploy: the batches of prepared hosts, in order.
    batches: Vec<Vec<HostId>>,
    /// Revert: the release every host goes to.
    target: Option<String>,
}

impl Rollout {
    /// A run over `cfg.labels.len()` hosts, waiting for each one's connect result.
    pub fn new(cfg: Config) -> Rollout {
        let hosts = vec![Host::default(); cfg.labels.len()];
        Rollout {
            cfg,
            hosts,
            phase: Phase::Connecting,
            failed: 0,
            interrupted: false,
            lost: Vec::new(),
            to_lock: Vec::new(),
            batches: Vec::new(),
            target: None,
        }
    }

    /// The hosts of this run.
    pub fn labels(&self) -> &[String] {
        &self.cfg.labels
    }

    /// The release a deploy puts on the hosts (a revert: its target, once known).
    pub fn release_id(&self) -> String {
        match &self.cfg.plan {
            Plan::Deploy { release, .. } => release.release.clone(),
            Plan::Revert { .. } => self.target.clone().unwrap_or_default(),
        }
    }

    /// Whether the run is over.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The next actions after `event`. Events that do not fit where the run is (a late answer
    /// from a host whose operation was cancelled) change nothing.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Done {
            return out;
        }
        match event {
            Event::Connected(h) => self.connect_answered(h, None, &mut out),
            Event::NotConnected(h, e) => self.connect_answered(h, Some(e), &mut out),
            Event::LockTaken(h) => self.lock_answered(h, None, &mut out),
            Event::LockRefused(h, r) => self.lock_answered(h, Some(r), &mut out),
            Event::LockRetry => self.lock_retry(&mut out),
            Event::LockWaitOver => self.lock_wait_over(&mut out),
            Event::Begun(h, begun) => self.begin_answered(h, Ok(*begun), &mut out),
            Event::BeginFailed(h, e) => self.begin_answered(h, Err(e), &mut out),
            Event::Prepared(h, p) => self.prepare_answered(h, Ok(p), &mut out),
            Event::PrepareFailed(h, f) => self.prepare_answered(h, Err(f), &mut out),
            Event::StateRead(h, s) => self.state_answered(h, Ok(*s), &mut out),
            Event::StateUnread(h, e) => self.state_answered(h, Err(e), &mut out),
            Event::Switched(h, previous) => {
                if self.take_busy(h, Busy::Switching) {
                    if self.is_deploy() {
                        self.deploy_switched(h, previous, &mut out);
                    } else {
                        self.revert_switched(h, &mut out);
                    }
                }
            }
            Event::SwitchFailed(h, e) => {
                if self.take_busy(h, Busy::Switching) {
                    if self.is_deploy() {
                        self.deploy_switch_failed(h, e, &mut out);
                    } else {
                        self.revert_switch_failed(h, e, &mut out);
                    }
                }
            }
            Event::Applied(h, done) => {
                if self.take_busy(h, Busy::Applying) {
                    if self.is_deploy() {
                        self.deploy_applied(h, done, &mut out);
                    } else {
                        self.revert_applied(h, done, &mut out);
                    }
                }
            }
            Event::ApplyFailed(h, e) => {
                if self.take_busy(h, Busy::Applying) {
                    if self.is_deploy() {
                        self.deploy_apply_failed(h, e, &mut out);
                    } else {
                        self.revert_apply_failed(h, e, &mut out);
                    }
                }
            }
            Event::SwitchedBack(h) => {
                if self.take_busy(h, Busy::SwitchingBack) {
                    if self.is_deploy() {
                        self.deploy_switched_back(h, &mut out);
                    } else {
                        self.revert_switched_back(h, &mut out);
                    }
                }
            }
            Event::SwitchBackFailed(h, e) => {
                if self.take_busy(h, Busy::SwitchingBack) {
                    if self.is_deploy() {
                        self.deploy_switch_back_failed(h, e, &mut out);
                    } else {
                        self.revert_switch_back_failed(h, e, &mut out);
                    }
                }
            }
            Event::AppliedBack(h, done) => {
                if self.take_busy(h, Busy::ApplyingBack) {
                    if self.is_deploy() {
                        self.deploy_applied_back(h, Ok(done), &mut out);
                    } else {
                        self.revert_applied_back(h, Ok(done), &mut out);
                    }
                }
            }
            Event::ApplyBackFailed(h, e) => {
                if self.take_busy(h, Busy::ApplyingBack) {
                    if self.is_deploy() {
                        self.deploy_applied_back(h, Err(e), &mut out);
                    } else {
                        self.revert_applied_back(h, Err(e), &mut out);
                    }
                }
            }
            Event::ReleaseRan(h, said) => self.release_answered(h, Ok(said), &mut out),
            Event::ReleaseFailed(h, f) => self.release_answered(h, Err(f), &mut out),
            Event::Watched(h, said) => self.watch_answered(h, Ok(said), &mut out),
            Event::WatchFailed(h, e) => self.watch_answered(h, Err(e), &mut out),
            Event::Confirmed(h) => self.confirm_answered(h, None, &mut out),
            Event::NotConfirmed(h, why) => {
                self.confirm_answered(h, Some((Status::RolledBack, why)), &mut out)
            }
            Event::ConfirmFailed(h, e) => {
                let why = format!(
                    "not confirmed ({e}): it goes back by itself once this run is silent for {} s",
                    pmfleet_shared::protocol::QUIET_SECS
                );
                self.confirm_answered(h, Some((e.status(), why)), &mut out)
            }
            Event::LockLost(h) => self.lock_lost(h, &mut out),
            Event::Interrupted => self.interrupted(&mut out),
        }
        out
    }

    fn is_deploy(&self) -> bool {
        matches!(self.cfg.plan, Plan::Deploy { .. })
    }

    /// The connected hosts, in order.
    fn connected(&self) -> Vec<HostId> {
        (0..self.hosts.len())
            .filter(|h| self.hosts[*h].connected == Some(true))
            .collect()
    }

    /// Ends an operation: true when `h` was doing `busy`.
    fn take_busy(&mut self, h: HostId, busy: Busy) -> bool {
        match self.hosts.get_mut(h) {
            Some(host) if host.busy == Some(busy) => {
                host.busy = None;
                true
            }
            _ => false,
        }
    }

    fn any_busy(&self) -> bool {
        self.hosts.iter().any(|h| h.busy.is_some())
    }

    fn set_busy(&mut self, h: HostId, busy: Busy) {
        if let Some(host) = self.hosts.get_mut(h) {
            host.busy = Some(busy);
        }
    }

    /// Concludes `h` with a report only.
    fn conclude_bare(
        &mut self,
        h: HostId,
        status: Status,
        message: impl Into<String>,
        out: &mut Vec<Action>,
    ) {
        self.conclude(
            Conclusion {
                host: h,
                status,
                message: message.into(),
                release: None,
                discard: None,
                records: Vec::new(),
                prune: false,
            },
            out,
        );
    }

    fn conclude(&mut self, conclusion: Conclusion, out: &mut Vec<Action>) {
        let Some(host) = self.hosts.get_mut(conclusion.host) else {
            return;
        };
        if host.concluded {
            return;
        }
        host.concluded = true;
        host.busy = None;
        out.push(Action::Conclude(conclusion));
    }

    /// Marks the rollout record finished, releases the locks this run holds, and ends it.
    fn finish(&mut self, out: &mut Vec<Action>) {
        let begun: Vec<HostId> = (0..self.hosts.len())
            .filter(|h| self.hosts[*h].begun && self.hosts[*h].lock == Some(Lock::Taken))
            .collect();
        if !begun.is_empty() {
            out.push(Action::End(begun));
        }
        let held: Vec<HostId> = (0..self.hosts.len())
            .filter(|h| self.hosts[*h].lock == Some(Lock::Taken))
            .collect();
        for h in &held {
            self.hosts[*h].lock = None;
        }
        if !held.is_empty() {
            out.push(Action::ReleaseLock(held));
        }
        out.push(Action::Finish);
        self.phase = Phase::Done;
    }

    fn interrupted(&mut self, out: &mut Vec<Action>) {
        if self.interrupted {
            return;
        }
        self.interrupted = true;
        match self.phase {
            Phase::Beginning | Phase::Preparing | Phase::Reading | Phase::Releasing => {
                self.stop_before_switch(Stop::Interrupted, out)
            }
            Phase::WaitingForLock => {
                out.push(Action::Cancel);
                self.lock_refused(out);
            }
            Phase::Switching(_) | Phase::Confirming | Phase::Undoing => out.push(Action::Info(
                "the switch has begun: finishing it, so no host is left behind (interrupt again to quit at once)"
                    .into(),
            )),
            // Noticed once every lock is taken.
            Phase::Connecting | Phase::Locking | Phase::Done => {}
        }
    }

    /// Stopped before any host switched: nothing switches, the new release is removed, and
    /// the hooks still running are ended before the locks are given back — first, while their
    /// output still has somewhere to go, then the operations in flight are cancelled.
    fn stop_before_switch(&mut self, why: Stop, out: &mut Vec<Action>) {
        let locked: Vec<HostId> = self
            .connected()
            .into_iter()
            .filter(|h| matches!(self.hosts[*h].lock, Some(Lock::Taken | Lock::Lost)))
            .collect();
        if self.is_deploy() && !locked.is_empty() {
            out.push(Action::EndHooks(locked));
        }
        out.push(Action::Cancel);
        for h in self.connected() {
            self.hosts[h].busy = None;
            let lost_here = self.lost.contains(&h);
            let (status, message, record) = match why {
                Stop::Interrupted => (
                    Status::Failed,
                    if self.is_deploy() {
                        "interrupted before the switch: nothing switched, the new release was removed"
                            .to_string()
                    } else {
                        "interrupted before the switch: nothing switched".to_string()
                    },
                    "interrupted".to_string(),
                ),
                Stop::LockLost(_) if lost_here => (
                    Status::LockHeld,
                    "the deploy lock on this host was broken by someone else: stopped before any switch"
                        .to_string(),
                    "the deploy lock was broken by someone else".to_string(),
                ),
                Stop::LockLost(l) => (
                    Status::Aborted,
                    format!(
                        "stopped before any switch: the deploy lock on {} was broken by someone else",
                        self.cfg.labels.get(l).map_or("?", String::as_str)
                    ),
                    "the deploy lock of another host was broken".to_string(),
                ),
            };
            match &self.cfg.plan {
                Plan::Deploy { release, .. } => {
                    let conclusion = Conclusion {
                        host: h,
                        status,
                        message,
                        release: Some(release.clone()),
                        // A host whose lock is lost refuses to remove anything: the next
                        // deploy's cleanup does.
                        discard: (!lost_here).then(|| release.release.clone()),
                        records: vec![self.deploy_entry(Outcome::Aborted, None, &record)],
                        prune: false,
                    };
                    self.conclude(conclusion, out);
                }
                Plan::Revert { .. } => self.conclude_bare(h, status, message, out),
            }
        }
        self.finish(out);
    }
}

/// Why a rollout stops before its switch.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Interrupted,
    /// The lock on this host was broken.
    LockLost(HostId),
}
