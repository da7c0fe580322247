//! Why a supervisor verb failed: [`SupervisorError`], each variant carrying what a person
//! needs to act on it, and its [`ErrorKind`] on the wire.

use pmfleet_shared::protocol::ErrorKind;

use super::persist::StateError;
use super::ready::NotReady;
use super::spec;

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
        "reload of `{app}` failed: the new instance {slot} {reason}; it was stopped and the old one keeps serving{logs}"
    )]
    ReloadFailed {
        app: String,
        slot: u32,
        reason: NotReady,
        logs: LastLines,
    },
    #[error(
        "reload of `{app}` failed: with every instance replaced, the app {reason}; {}",
        if *undone { "the previous release was put back" } else { "the previous instances are gone (the same release was reloaded, there is none to put back)" }
    )]
    NotServing {
        app: String,
        reason: NotReady,
        undone: bool,
    },
    #[error("app `{app}`: instance {slot} {reason}; it was stopped{logs}")]
    StartFailed {
        app: String,
        slot: u32,
        reason: NotReady,
        logs: LastLines,
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

/// The last lines an instance wrote to its log files, shown when it failed its gate: what a
/// person needs to see why, without logging in to the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastLines(pub Vec<String>);

/// How many lines of a failing instance's logs a message carries.
pub const LAST_LINES: usize = 10;

impl std::fmt::Display for LastLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("\n  its last log lines:")?;
        for line in &self.0 {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
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
            | SupervisorError::NotServing { .. }
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
