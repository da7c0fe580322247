//! What can go wrong in a deploy, with its cause kept so the outcome follows from it: a host
//! whose connection dropped half-way is unreachable (exit code 3), a script that ran and failed
//! is a failure (exit code 1), naming the step, its exit status and the reason.

use std::sync::Arc;

use super::report::Status;
use super::revision::RevisionError;
use crate::agent::apply::{AgentsUnavailable, ApplyError};
use crate::ssh::SshError;
use crate::transport::TransportError;

/// Why one operation on one host did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    /// The host could not be connected to (or a key or host key was refused).
    #[error(transparent)]
    Connect(Arc<SshError>),
    /// A command could not be run, or its end never came back: the connection failed or
    /// dropped while it ran.
    #[error(transparent)]
    Transport(Arc<TransportError>),
    /// A script ran and exited with a non-zero status; `reason` is its best one-line
    /// explanation (the last line of stderr).
    #[error("{reason}")]
    Exit { status: i32, reason: String },
    /// A hook (or `exec` command) ran and exited with a non-zero status; its output was shown.
    #[error("{hook} exited with status {status}")]
    Hook { hook: &'static str, status: i32 },
    /// The host's deploy root has no layout yet.
    #[error("not set up: run `pmfleet deploy {env} setup` first")]
    NotSetUp { env: String },
    /// The host's agent did not run the release's apps.
    #[error(transparent)]
    Agent(#[from] ApplyError),
    /// This run's lock on the host was broken by someone else: the step refused to touch it.
    #[error("the deploy lock on this host was broken by someone else, so this run stopped")]
    LockLost,
}

impl HostError {
    pub fn connect(error: SshError) -> HostError {
        HostError::Connect(Arc::new(error))
    }

    pub fn transport(error: TransportError) -> HostError {
        HostError::Transport(Arc::new(error))
    }

    /// The host is not there: it could not be reached, or its connection dropped during the
    /// step. Everything else needs someone to look at the host.
    pub fn is_unreachable(&self) -> bool {
        match self {
            HostError::Connect(e) => e.is_unreachable(),
            HostError::Transport(e) => match e.as_ref() {
                TransportError::Ssh(e) => e.is_unreachable() || e.is_dropped(),
                TransportError::Local(_) => false,
            },
            HostError::Agent(ApplyError::Marker(e)) => e.is_unreachable(),
            _ => false,
        }
    }

    /// How a host that ended on this error is reported.
    pub fn status(&self) -> Status {
        if self.is_unreachable() {
            Status::Unreachable
        } else if matches!(self, HostError::LockLost) {
            Status::LockHeld
        } else {
            Status::Failed
        }
    }

    /// A script that stopped because the run no longer holds the lock is [`HostError::LockLost`].
    pub fn lock_checked(self) -> HostError {
        match self {
            HostError::Exit { status, .. } if status == super::scripts::LOCK_LOST_STATUS => {
                HostError::LockLost
            }
            other => other,
        }
    }
}

/// A step of preparing a release on a host, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The layout exists; leftovers of a deploy that died are removed.
    Check,
    PreDeploy,
    Fetch,
    LinkShared,
    PostDeploy,
    /// The release is marked complete.
    Finish,
    /// The `release` step, run once on one host before any switch.
    Release,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Check => "check",
            Step::PreDeploy => "pre-deploy",
            Step::Fetch => "fetch",
            Step::LinkShared => "link shared",
            Step::PostDeploy => "post-deploy",
            Step::Finish => "finish",
            Step::Release => "release",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Preparing a release failed at `step`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{step}: {error}")]
pub struct StepFailure {
    pub step: Step,
    #[source]
    pub error: HostError,
}

impl StepFailure {
    pub fn new(step: Step) -> impl FnOnce(HostError) -> StepFailure {
        move |error| StepFailure { step, error }
    }
}

/// Why a deploy stopped on the controller, before any host was touched.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Revision(#[from] RevisionError),
    #[error("could not archive {sha}: {source}")]
    Archive {
        sha: String,
        #[source]
        source: git2::Error,
    },
    #[error("revision task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("pre-deploy-local failed: {0}")]
    LocalHook(#[from] LocalHookError),
    #[error(transparent)]
    Agents(#[from] AgentsUnavailable),
}

/// `pre-deploy-local` did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LocalHookError {
    #[error("could not run sh: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("exited with {0}")]
    Exit(std::process::ExitStatus),
}
