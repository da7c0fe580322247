//! The deploy lock, `<path>/.pmfleet/lock`: who holds it, and how old its heartbeat is.
//!
//! The file is created with `O_EXCL` (`set -C`), so two controllers cannot both take it. The
//! holder touches it every [`HEARTBEAT`]; a lock whose mtime is older than [`STALE_AFTER`]
//! belongs to a controller that died, and `unlock` may break it. Only the deploy id written in
//! the file can release it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::HostError;
use super::report::Status;

pub const HEARTBEAT: Duration = Duration::from_secs(5);
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// What the lock file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub holder: String,
    pub deploy_id: String,
    pub action: String,
    /// RFC 3339, UTC, controller clock.
    pub since: String,
    pub pid: u32,
}

impl Holder {
    /// This process, about to run `action` as deploy `deploy_id`.
    pub fn new(who: &str, deploy_id: &str, action: &str) -> Holder {
        Holder {
            holder: who.to_string(),
            deploy_id: deploy_id.to_string(),
            action: action.to_string(),
            since: super::now_rfc3339(),
            pid: std::process::id(),
        }
    }
}

/// The outcome of trying to take the lock on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    Acquired,
    NotSetUp,
    Held {
        holder: Option<Holder>,
        heartbeat_age: u64,
    },
}

impl Acquire {
    pub fn parse(output: &str) -> Acquire {
        let mut lines = output.lines();
        match lines.next().map(str::trim) {
            Some("ACQUIRED") => Acquire::Acquired,
            Some("NOSETUP") => Acquire::NotSetUp,
            Some(first) => {
                let heartbeat_age = first
                    .strip_prefix("HELD ")
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                let holder = lines.next().and_then(|l| serde_json::from_str(l).ok());
                Acquire::Held {
                    holder,
                    heartbeat_age,
                }
            }
            None => Acquire::Held {
                holder: None,
                heartbeat_age: 0,
            },
        }
    }
}

/// The outcome of `unlock` on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    NoLock,
    Broken { holder: Option<Holder>, age: u64 },
    Fresh { holder: Option<Holder>, age: u64 },
}

impl Break {
    pub fn parse(output: &str) -> Break {
        let mut lines = output.lines();
        let first = lines.next().unwrap_or("").trim();
        let holder = lines.next().and_then(|l| serde_json::from_str(l).ok());
        let age = first
            .split_once(' ')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0);
        if first.starts_with("BROKEN") {
            Break::Broken { holder, age }
        } else if first.starts_with("FRESH") {
            Break::Fresh { holder, age }
        } else {
            Break::NoLock
        }
    }
}

/// "alice@laptop (deploy 1b2c…, since 2026-11-24T06:00:00Z, pid 4242)".
pub fn describe(holder: Option<&Holder>) -> String {
    match holder {
        Some(h) => format!(
            "{} ({} {}, since {}, pid {})",
            h.holder, h.action, h.deploy_id, h.since, h.pid
        ),
        None => "an unknown holder (the lock file is empty or unreadable)".to_string(),
    }
}

/// Why a host did not give this run its lock.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// Another run holds it.
    Held {
        holder: Option<Holder>,
        heartbeat_age: u64,
        env: String,
    },
    /// The host has no layout yet.
    NotSetUp { env: String },
    /// Taking it failed.
    Failed(HostError),
}

impl Refusal {
    /// What `take_lock` answered, as a refusal (`None`: the lock was taken).
    pub fn from_acquire(acquire: Acquire, env: &str) -> Option<Refusal> {
        match acquire {
            Acquire::Acquired => None,
            Acquire::NotSetUp => Some(Refusal::NotSetUp {
                env: env.to_string(),
            }),
            Acquire::Held {
                holder,
                heartbeat_age,
            } => Some(Refusal::Held {
                holder,
                heartbeat_age,
                env: env.to_string(),
            }),
        }
    }

    /// Another run holds the lock: worth waiting for with `--lock-wait`.
    pub fn is_held(&self) -> bool {
        matches!(self, Refusal::Held { .. })
    }

    pub fn status(&self) -> Status {
        match self {
            Refusal::Held { .. } => Status::LockHeld,
            Refusal::NotSetUp { .. } => Status::Failed,
            Refusal::Failed(e) => e.status(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Held {
                holder,
                heartbeat_age,
                env,
            } => {
                if Duration::from_secs(*heartbeat_age) >= STALE_AFTER {
                    write!(
                        f,
                        "locked by {}; its last heartbeat was {heartbeat_age}s ago, so that deploy looks dead: break the lock with `pmfleet deploy {env} unlock`",
                        describe(holder.as_ref())
                    )
                } else {
                    write!(
                        f,
                        "locked by {} (heartbeat {heartbeat_age}s ago): wait for it, or pass --lock-wait 5m",
                        describe(holder.as_ref())
                    )
                }
            }
            Refusal::NotSetUp { env } => {
                write!(f, "not set up: run `pmfleet deploy {env} setup` first")
            }
            Refusal::Failed(e) => write!(f, "could not take the lock: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_outcomes() {
        assert_eq!(Acquire::parse("ACQUIRED\n"), Acquire::Acquired);
        assert_eq!(Acquire::parse("NOSETUP\n"), Acquire::NotSetUp);
        let h = Holder {
            holder: "a@b".into(),
            deploy_id: "id".into(),
            action: "deploy".into(),
            since: "t".into(),
            pid: 1,
        };
        let text = format!("HELD 42\n{}\n", serde_json::to_string(&h).unwrap());
        assert_eq!(
            Acquire::parse(&text),
            Acquire::Held {
                holder: Some(h.clone()),
                heartbeat_age: 42
            }
        );
        assert_eq!(Break::parse("NONE\n"), Break::NoLock);
        assert!(matches!(
            Break::parse("BROKEN 99\n{}"),
            Break::Broken { age: 99, .. }
        ));
        assert!(matches!(
            Break::parse("FRESH 3\n"),
            Break::Fresh { age: 3, .. }
        ));
        assert!(describe(Some(&h)).contains("a@b"));
    }
}
