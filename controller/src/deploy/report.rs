//! Per-host outcomes of a run, and the process exit code they add up to.

use std::time::Duration;

use crate::output::SummaryRow;

/// How one host ended a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Did what was asked.
    Ok,
    /// Reachable, but a step failed (nothing switched on it).
    Failed,
    /// Could not be reached over SSH.
    Unreachable,
    /// Ready, but not switched because other hosts failed.
    Aborted,
    /// Switched, then switched back because the rollout stopped.
    RolledBack,
    /// Another deploy holds the lock.
    LockHeld,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Unreachable => "unreachable",
            Status::Aborted => "aborted",
            Status::RolledBack => "rolled back",
            Status::LockHeld => "lock held",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HostReport {
    pub host: String,
    pub status: Status,
    pub release: Option<String>,
    pub sha: Option<String>,
    pub elapsed: Duration,
    pub message: String,
}

impl HostReport {
    pub fn new(host: &str, status: Status, message: impl Into<String>) -> HostReport {
        HostReport {
            host: host.to_string(),
            status,
            release: None,
            sha: None,
            elapsed: Duration::ZERO,
            message: message.into(),
        }
    }

    pub fn row(&self) -> SummaryRow {
        SummaryRow {
            host: self.host.clone(),
            outcome: self.status.label().to_string(),
            release: self.release.clone().unwrap_or_else(|| "-".into()),
            sha: self
                .sha
                .as_deref()
                .map(|s| super::revision::short_sha(s).to_string())
                .unwrap_or_else(|| "-".into()),
            elapsed: self.elapsed,
            message: self.message.clone(),
        }
    }
}

/// Process exit codes (documented in docs/deploy.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Failed = 1,
    BadConfig = 2,
    Unreachable = 3,
    LockHeld = 4,
}

/// The exit code for a set of host outcomes: a held lock first, then failures, then
/// unreachable hosts.
pub fn exit_for(reports: &[HostReport]) -> Exit {
    let any = |s: Status| reports.iter().any(|r| r.status == s);
    if any(Status::LockHeld) {
        Exit::LockHeld
    } else if any(Status::Failed) || any(Status::RolledBack) {
        Exit::Failed
    } else if any(Status::Unreachable) {
        Exit::Unreachable
    } else if any(Status::Aborted) {
        Exit::Failed
    } else {
        Exit::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_table() {
        let r = |s| HostReport::new("h", s, "");
        let rows = [
            (vec![], Exit::Success),
            (vec![r(Status::Ok)], Exit::Success),
            (vec![r(Status::Ok), r(Status::Failed)], Exit::Failed),
            (
                vec![r(Status::Aborted), r(Status::Unreachable)],
                Exit::Unreachable,
            ),
            (
                vec![r(Status::Failed), r(Status::Unreachable)],
                Exit::Failed,
            ),
            (vec![r(Status::LockHeld), r(Status::Failed)], Exit::LockHeld),
            (vec![r(Status::RolledBack)], Exit::Failed),
            (vec![r(Status::Aborted)], Exit::Failed),
        ];
        for (reports, expected) in rows {
            assert_eq!(exit_for(&reports), expected, "{reports:?}");
        }
    }
}
