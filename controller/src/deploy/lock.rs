//! The deploy lock, `<path>/.pmfleet/lock`: who holds it, and how old its heartbeat is.
//!
//! The file is made complete, then linked into place (`ln`, which fails if it exists), so two
//! controllers cannot both take it and it is never empty. The holder touches it every
//! [`HEARTBEAT`]; a lock whose mtime is older than [`STALE_AFTER`] belongs to a controller
//! that died, and so does one whose holder ran on this very machine under a pid that is gone:
//! `unlock` breaks either. Only the run whose id is in the file releases it, and steps that
//! change the host check, in the same remote command, that the run still holds it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::HostError;
use super::report::Status;

pub const HEARTBEAT: Duration = Duration::from_secs(5);
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// What the lock file says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub holder: String,
    pub deploy_id: String,
    pub action: String,
    /// RFC 3339, UTC, controller clock.
    pub since: String,
    pub pid: u32,
    /// The controller's host name (empty in locks written before it was recorded).
    #[serde(default)]
    pub machine: String,
    /// A lock taken on purpose (`pmfleet deploy ENV lock`): a freeze, with no heartbeat,
    /// never stale, never waited for; `unlock` releases it. Hosts' agents leave a frozen
    /// environment alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
    /// Why it was taken (`--message`), shown to everyone it refuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
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
            machine: super::hostname().unwrap_or_default(),
            manual: false,
            message: None,
        }
    }

    /// A manual lock (a freeze) by `who`, saying why.
    pub fn manual(who: &str, deploy_id: &str, message: Option<&str>) -> Holder {
        Holder {
            manual: true,
            message: message.map(str::to_string),
            ..Holder::new(who, deploy_id, "lock")
        }
    }

    /// Whether the holder still runs, when that can be known here: `Some` only for a holder
    /// that ran on this very machine (its pid is looked up), `None` for any other.
    pub fn alive_here(&self) -> Option<bool> {
        if self.machine.is_empty() || super::hostname().as_deref() != Some(self.machine.as_str()) {
            return None;
        }
        let pid = i32::try_from(self.pid).ok()?;
        Some(!matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        ))
    }
}

/// The outcome of trying to take (or reading) the lock on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    Acquired,
    NotSetUp,
    /// No lock (when reading it).
    Free,
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
            Some("NONE") => Acquire::Free,
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

/// The outcome of breaking a lock on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// There was no lock (any more).
    NoLock,
    Broken {
        holder: Option<Holder>,
    },
    /// Another run took the lock since it was read: left as it is.
    Changed,
}

impl Break {
    pub fn parse(output: &str) -> Break {
        let mut lines = output.lines();
        match lines.next().unwrap_or("").trim() {
            "BROKEN" => Break::Broken {
                holder: lines.next().and_then(|l| serde_json::from_str(l).ok()),
            },
            "CHANGED" => Break::Changed,
            _ => Break::NoLock,
        }
    }
}

/// How a held lock looks from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Its heartbeat is fresh (or its holder runs on this machine).
    Alive,
    /// No heartbeat for [`STALE_AFTER`]: its holder is most likely dead.
    Stale,
    /// Its holder ran on this machine, and that process is gone.
    DeadHere,
}

/// How a lock with this holder and heartbeat age looks; `alive_here` is
/// [`Holder::alive_here`].
pub fn liveness(heartbeat_age: u64, alive_here: Option<bool>) -> Liveness {
    match alive_here {
        Some(false) => Liveness::DeadHere,
        _ if Duration::from_secs(heartbeat_age) >= STALE_AFTER => Liveness::Stale,
        _ => Liveness::Alive,
    }
}

/// "alice@laptop (deploy 1b2c…, since 2026-11-24T06:00:00Z, pid 4242 on laptop)".
pub fn describe(holder: Option<&Holder>) -> String {
    match holder {
        Some(h) if h.machine.is_empty() => format!(
            "{} ({} {}, since {}, pid {})",
            h.holder, h.action, h.deploy_id, h.since, h.pid
        ),
        Some(h) => format!(
            "{} ({} {}, since {}, pid {} on {})",
            h.holder, h.action, h.deploy_id, h.since, h.pid, h.machine
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
        /// [`Holder::alive_here`], asked when the refusal was made.
        alive_here: Option<bool>,
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
            Acquire::Acquired | Acquire::Free => None,
            Acquire::NotSetUp => Some(Refusal::NotSetUp {
                env: env.to_string(),
            }),
            Acquire::Held {
                holder,
                heartbeat_age,
            } => Some(Refusal::Held {
                alive_here: holder.as_ref().and_then(Holder::alive_here),
                holder,
                heartbeat_age,
                env: env.to_string(),
            }),
        }
    }

    /// Another run holds the lock: worth waiting for with `--lock-wait` (a manual lock is
    /// not: it stays until someone unlocks it).
    pub fn is_held(&self) -> bool {
        matches!(self, Refusal::Held { holder, .. } if !holder.as_ref().is_some_and(|h| h.manual))
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
                holder: Some(h),
                env,
                ..
            } if h.manual => write!(
                f,
                "locked on purpose by {} since {}{}: no deploy until `pmfleet deploy {env} unlock`",
                h.holder,
                h.since,
                h.message
                    .as_deref()
                    .map(|m| format!(": \"{m}\""))
                    .unwrap_or_default()
            ),
            Refusal::Held {
                holder,
                heartbeat_age,
                alive_here,
                env,
            } => match liveness(*heartbeat_age, *alive_here) {
                Liveness::DeadHere => write!(
                    f,
                    "locked by {}, whose process (pid {} on this machine) is gone, so that {} is dead: break the lock with `pmfleet deploy {env} unlock`",
                    describe(holder.as_ref()),
                    holder.as_ref().map_or(0, |h| h.pid),
                    holder.as_ref().map_or("deploy", |h| h.action.as_str()),
                ),
                Liveness::Stale => write!(
                    f,
                    "locked by {}; its last heartbeat was {heartbeat_age}s ago, so that deploy looks dead: break the lock with `pmfleet deploy {env} unlock`",
                    describe(holder.as_ref())
                ),
                Liveness::Alive => write!(
                    f,
                    "locked by {} (heartbeat {heartbeat_age}s ago): wait for it, or pass --lock-wait 5m",
                    describe(holder.as_ref())
                ),
            },
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

    fn holder(machine: &str, pid: u32) -> Holder {
        Holder {
            holder: "a@b".into(),
            deploy_id: "id".into(),
            action: "deploy".into(),
            since: "t".into(),
            pid,
            machine: machine.into(),
            ..Holder::default()
        }
    }

    #[test]
    fn parses_outcomes() {
        assert_eq!(Acquire::parse("ACQUIRED\n"), Acquire::Acquired);
        assert_eq!(Acquire::parse("NOSETUP\n"), Acquire::NotSetUp);
        assert_eq!(Acquire::parse("NONE\n"), Acquire::Free);
        let h = holder("", 1);
        let text = format!("HELD 42\n{}\n", serde_json::to_string(&h).unwrap());
        assert_eq!(
            Acquire::parse(&text),
            Acquire::Held {
                holder: Some(h.clone()),
                heartbeat_age: 42
            }
        );
        // A lock written before the machine was recorded still reads.
        let old = r#"{"holder":"a@b","deploy_id":"id","action":"deploy","since":"t","pid":1}"#;
        assert_eq!(serde_json::from_str::<Holder>(old).unwrap(), h);
        assert_eq!(Break::parse("NONE\n"), Break::NoLock);
        assert_eq!(Break::parse("CHANGED\n"), Break::Changed);
        assert_eq!(
            Break::parse(&format!("BROKEN\n{}\n", serde_json::to_string(&h).unwrap())),
            Break::Broken {
                holder: Some(h.clone())
            }
        );
        assert!(describe(Some(&h)).contains("a@b"));
        assert!(describe(Some(&holder("laptop", 7))).contains("pid 7 on laptop"));
    }

    #[test]
    fn liveness_table() {
        for (age, here, expected) in [
            (0, None, Liveness::Alive),
            (29, None, Liveness::Alive),
            (30, None, Liveness::Stale),
            (0, Some(true), Liveness::Alive),
            (99, Some(true), Liveness::Stale),
            (0, Some(false), Liveness::DeadHere),
            (99, Some(false), Liveness::DeadHere),
        ] {
            assert_eq!(liveness(age, here), expected, "{age} {here:?}");
        }
    }

    #[test]
    fn a_holder_is_known_dead_only_on_its_own_machine() {
        let here = crate::deploy::hostname().unwrap();
        assert_eq!(holder(&here, std::process::id()).alive_here(), Some(true));
        // A pid above the kernel's maximum is never running.
        assert_eq!(holder(&here, 4_194_305).alive_here(), Some(false));
        assert_eq!(holder("another-machine", 4_194_305).alive_here(), None);
        assert_eq!(holder("", 4_194_305).alive_here(), None);
    }

    #[test]
    fn a_holder_that_died_here_is_reported_dead_at_once() {
        let refusal = Refusal::Held {
            holder: Some(holder("laptop", 4242)),
            heartbeat_age: 2,
            alive_here: Some(false),
            env: "prod".into(),
        };
        let message = refusal.to_string();
        assert!(
            message.contains("pid 4242 on this machine) is gone"),
            "{message}"
        );
        assert!(
            message.contains("`pmfleet deploy prod unlock`"),
            "{message}"
        );
        assert_eq!(refusal.status(), Status::LockHeld);
    }

    #[test]
    fn a_manual_lock_is_a_freeze_never_waited_for_and_says_who_and_why() {
        let mut h = Holder::manual("alice@laptop", "f1", Some("release freeze until Monday"));
        h.since = "2026-11-24T06:00:00Z".into();
        let text = serde_json::to_string(&h).unwrap();
        assert!(text.contains("\"manual\":true"), "{text}");
        let back: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!(back, h);
        // An old lock has neither field.
        let old: Holder = serde_json::from_str(
            r#"{"holder":"a","deploy_id":"d","action":"deploy","since":"t","pid":1}"#,
        )
        .unwrap();
        assert!(!old.manual && old.message.is_none());
        // An hour without a heartbeat: still a freeze, not a dead deploy.
        let refusal = Refusal::from_acquire(
            Acquire::Held {
                holder: Some(h),
                heartbeat_age: 3600,
            },
            "prod",
        )
        .unwrap();
        assert!(!refusal.is_held(), "--lock-wait does not wait for a freeze");
        assert_eq!(refusal.status(), Status::LockHeld);
        assert_eq!(
            refusal.to_string(),
            "locked on purpose by alice@laptop since 2026-11-24T06:00:00Z: \"release freeze until Monday\": no deploy until `pmfleet deploy prod unlock`"
        );
    }
}
