//! The deploy lock, `<path>/.pmfleet/lock`: who holds it, and how old its heartbeat is.
//!
//! The file is created with `O_EXCL` (`set -C`), so two controllers cannot both take it. The
//! holder touches it every [`HEARTBEAT`]; a lock whose mtime is older than [`STALE_AFTER`]
//! belongs to a controller that died, and `unlock` may break it. Only the deploy id written in
//! the file can release it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fleet::{Member, each};
use super::report::{HostReport, Status};
use super::scripts;

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

/// The lock, held on every host of a run; heartbeats until released.
pub struct Guard {
    members: Vec<Arc<Member>>,
    root: String,
    deploy_id: String,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// Takes the lock on every member. If any host refuses, the locks taken are given back and
/// each refusing host gets a report naming the holder. With `wait`, retries until it runs out.
pub async fn acquire_all(
    members: &[Arc<Member>],
    root: &str,
    env_name: &str,
    holder: &Holder,
    wait: Option<Duration>,
) -> Result<Guard, Vec<HostReport>> {
    let content = serde_json::to_string(holder).unwrap_or_default();
    let deadline = wait.map(|w| Instant::now() + w);
    loop {
        let outcomes = each(members, |m| {
            let script = scripts::lock_acquire(root, &content);
            async move { m.run(&script).await.map(|c| Acquire::parse(&c.stdout)) }
        })
        .await;
        let mut refused = Vec::new();
        let mut held_only = true;
        for (member, outcome) in members.iter().zip(&outcomes) {
            match outcome {
                Ok(Acquire::Acquired) => {}
                Ok(Acquire::NotSetUp) => {
                    held_only = false;
                    refused.push(HostReport::new(
                        &member.label,
                        Status::Failed,
                        format!("not set up: run `pmfleet deploy {env_name} setup` first"),
                    ));
                }
                Ok(Acquire::Held {
                    holder,
                    heartbeat_age,
                }) => {
                    let stale = Duration::from_secs(*heartbeat_age) >= STALE_AFTER;
                    let message = if stale {
                        format!(
                            "locked by {}; its last heartbeat was {heartbeat_age}s ago, so that deploy looks dead: break the lock with `pmfleet deploy {env_name} unlock`",
                            describe(holder.as_ref())
                        )
                    } else {
                        format!(
                            "locked by {} (heartbeat {heartbeat_age}s ago): wait for it, or pass --lock-wait 5m",
                            describe(holder.as_ref())
                        )
                    };
                    refused.push(HostReport::new(&member.label, Status::LockHeld, message));
                }
                Err(message) => {
                    held_only = false;
                    refused.push(HostReport::new(
                        &member.label,
                        Status::Failed,
                        format!("could not take the lock: {message}"),
                    ));
                }
            }
        }
        if refused.is_empty() {
            let guard = Guard {
                members: members.to_vec(),
                root: root.to_string(),
                deploy_id: holder.deploy_id.clone(),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
            };
            guard.start_heartbeat();
            return Ok(guard);
        }
        give_back(members, &outcomes, root, &holder.deploy_id).await;
        match deadline {
            Some(deadline) if held_only && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            _ => return Err(refused),
        }
    }
}

async fn give_back(
    members: &[Arc<Member>],
    outcomes: &[Result<Acquire, String>],
    root: &str,
    deploy_id: &str,
) {
    let taken: Vec<Arc<Member>> = members
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| matches!(o, Ok(Acquire::Acquired)))
        .map(|(m, _)| m.clone())
        .collect();
    each(&taken, |m| {
        let script = scripts::lock_release(root, deploy_id);
        async move {
            let _ = m.run(&script).await;
        }
    })
    .await;
}

impl Guard {
    fn start_heartbeat(&self) {
        for member in &self.members {
            let member = member.clone();
            let stop = self.stop.clone();
            let script = scripts::lock_heartbeat(&self.root, &self.deploy_id);
            self.tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(HEARTBEAT) => {}
                    }
                    if let Ok(c) = member.run(&script).await
                        && c.stdout.contains("LOST")
                    {
                        tracing::warn!(host = %member.label, "the deploy lock was broken by someone else");
                    }
                }
            });
        }
        self.tasks.close();
    }

    /// Stops the heartbeat and releases the lock on every host.
    pub async fn release(self) {
        self.stop.cancel();
        self.tasks.wait().await;
        let root = self.root.clone();
        let id = self.deploy_id.clone();
        each(&self.members, |m| {
            let script = scripts::lock_release(&root, &id);
            async move {
                let _ = m.run(&script).await;
            }
        })
        .await;
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
