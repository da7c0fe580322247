//! The edge between the rollout's driver and one host: the operations the machine's actions
//! come down to. Two implementations: the real one over a host's connection (SSH, or local
//! for `localhost`; `deploy/remote.rs`), and an in-memory host for the driver's tests that can
//! fail any step. A host knows which run it serves: every step that changes it checks, in the
//! same step, that the run still holds its lock ([`crate::deploy::error::HostError::LockLost`]).

use std::future::Future;

use super::ReleaseVars;
use crate::deploy::error::{HostError, StepFailure};
use crate::deploy::history::Record;
use crate::deploy::host_state::HostState;
use crate::deploy::lock::Acquire;
use crate::deploy::rollout_record::RolloutRecord;

/// What preparing a release left on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Something runs the apps once the release is current: the release holds an ecosystem
    /// file for the agent, or (`agent: false`) there is a `published` hook.
    pub has_apps: bool,
}

/// What a host said as the rollout began on it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Begun {
    /// The release `current` pointed at.
    pub current: Option<String>,
    /// That release, as its apps were told (from the history).
    pub serving: Option<ReleaseVars>,
    /// The rollout record this one replaced.
    pub last: Option<RolloutRecord>,
}

/// What pruning did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pruned {
    /// This many old releases were removed; those kept because a process still runs in
    /// them (release id, pid).
    Removed {
        count: usize,
        in_use: Vec<(String, String)>,
    },
    /// Nothing was removed, for this reason.
    Skipped(String),
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lock is still this run's; its heartbeat was refreshed.
    Kept,
    /// The lock is gone or someone else's.
    Lost,
}

/// What confirming a rollout on a host found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// The host keeps the release.
    Kept,
    /// The host had already gone back by itself; why.
    WentBack(String),
}

/// One host, as the rollout drives it.
pub trait RolloutHost: Send + Sync + 'static {
    /// Tries to take the deploy lock, writing `content` (the holder) into it.
    fn take_lock(&self, content: &str) -> impl Future<Output = Result<Acquire, HostError>> + Send;

    /// Refreshes the heartbeat of the lock held by run `deploy_id`.
    fn heartbeat(
        &self,
        deploy_id: &str,
    ) -> impl Future<Output = Result<Heartbeat, HostError>> + Send;

    /// Releases the lock if run `deploy_id` holds it.
    fn release_lock(&self, deploy_id: &str) -> impl Future<Output = Result<(), HostError>> + Send;

    /// Writes the rollout record as the rollout begins on this host.
    fn begin(
        &self,
        record: &RolloutRecord,
    ) -> impl Future<Output = Result<Begun, HostError>> + Send;

    /// Marks the rollout record finished.
    fn end(&self) -> impl Future<Output = Result<(), HostError>> + Send;

    /// Ends this run's hooks still running on the host, and waits until they are gone.
    fn end_hooks(&self) -> impl Future<Output = Result<(), HostError>> + Send;

    /// Puts release `release` on the host, complete and ready to switch to; a failing step
    /// removes what it made.
    fn prepare(&self, release: &str) -> impl Future<Output = Result<Prepared, StepFailure>> + Send;

    /// The host's layout, lock, last rollout and history.
    fn read_state(&self) -> impl Future<Output = Result<HostState, HostError>> + Send;

    /// Points `current` at `release` and appends `record` to the history in the same step;
    /// returns what `current` pointed at.
    fn switch(
        &self,
        release: &str,
        record: &Record,
    ) -> impl Future<Output = Result<Option<String>, HostError>> + Send;

    /// Has the host's agent run the apps of `release`, telling them `vars`; returns what it did.
    fn apply(
        &self,
        release: &str,
        vars: &ReleaseVars,
    ) -> impl Future<Output = Result<String, HostError>> + Send;

    /// Runs the `release` step (migrations) in release `release`, before any host switched.
    fn run_release(
        &self,
        release: &str,
    ) -> impl Future<Output = Result<String, StepFailure>> + Send;

    /// Has the host's agent watch the apps of `release` through the watch window; `Ok` says
    /// they stayed healthy, an error what went wrong.
    fn watch(&self, release: &str) -> impl Future<Output = Result<String, HostError>> + Send;

    /// Confirms the rollout: the host keeps `release` for good (its pending record goes).
    fn confirm(&self, release: &str) -> impl Future<Output = Result<Confirmed, HostError>> + Send;

    /// Removes `release` (never the current one).
    fn discard(&self, release: &str) -> impl Future<Output = Result<(), HostError>> + Send;

    /// Appends `record` to the history.
    fn record(&self, record: &Record) -> impl Future<Output = Result<(), HostError>> + Send;

    /// Removes old releases beyond `keep_releases`, never one in use, the `revert 1` target
    /// or `fleet_target` (where `revert` with no N would take the fleet).
    fn prune(
        &self,
        fleet_target: Option<&str>,
    ) -> impl Future<Output = Result<Pruned, HostError>> + Send;
}
