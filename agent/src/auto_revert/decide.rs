//! Whether a host goes back by itself: a pure decision from a pending record and what the
//! deploy root holds now — where `current` points, whether the release before is still whole,
//! and the deploy lock (its run, whether it is a manual freeze, its heartbeat's age).

use pmfleet_shared::protocol::Pending;

/// The deploy lock as the host holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockFacts {
    pub deploy_id: String,
    /// Taken with `pmfleet deploy ENV lock`: a freeze nobody works under.
    pub manual: bool,
    /// Seconds since its holder last touched it.
    pub age_secs: u64,
}

/// Everything the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub pending: Pending,
    /// The release `current` points at.
    pub current: Option<String>,
    /// `previous` is a complete release of this root (its directory and its marker).
    pub previous_complete: bool,
    pub lock: Option<LockFacts>,
    /// Now, in seconds since the epoch (the host's clock).
    pub now: u64,
}

/// What to do about a pending record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing yet; `note` says why, for `status`.
    Wait { note: String },
    /// Switch back to `previous` now, for this reason.
    Revert { why: String },
    /// The record no longer describes the host: removed, for this reason.
    Drop { why: String },
}

/// The decision (see the module documentation and docs/deploy.md).
pub fn decide(f: &Facts) -> Decision {
    let p = &f.pending;
    if f.current.as_deref() != Some(p.release.as_str()) {
        return Decision::Drop {
            why: format!(
                "current is {}, not the pending {}: someone switched it since",
                f.current.as_deref().unwrap_or("nothing"),
                p.release
            ),
        };
    }
    if !f.previous_complete {
        return Decision::Wait {
            note: format!(
                "cannot go back by itself: {} is no longer a complete release here",
                p.previous
            ),
        };
    }
    let since_switch = f.now.saturating_sub(p.since);
    let silence = match &f.lock {
        Some(l) if l.manual => {
            return Decision::Wait {
                note: format!(
                    "a manual lock holds the environment: not going back to {} while it does",
                    p.previous
                ),
            };
        }
        Some(l) => l.age_secs.min(since_switch),
        None => since_switch,
    };
    if silence < p.quiet_secs {
        let left = p.quiet_secs - silence;
        return Decision::Wait {
            note: format!(
                "goes back to {} by itself in {left} s unless rollout {} is confirmed",
                p.previous, p.rollout
            ),
        };
    }
    let why = match &f.lock {
        Some(l) if l.deploy_id == p.rollout => format!(
            "rollout {} was not confirmed: its controller sent no heartbeat for {} s",
            p.rollout, l.age_secs
        ),
        Some(l) => format!(
            "rollout {} was not confirmed: its lock is gone, and the one there now ({}) sent no heartbeat for {} s",
            p.rollout, l.deploy_id, l.age_secs
        ),
        None => format!(
            "rollout {} was not confirmed within {} s of the switch, and no run holds the lock",
            p.rollout, p.quiet_secs
        ),
    };
    Decision::Revert { why }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            pending: Pending {
                rollout: "R".into(),
                release: "r2".into(),
                previous: "r1".into(),
                since: 1_000,
                quiet_secs: 30,
            },
            current: Some("r2".into()),
            previous_complete: true,
            lock: Some(LockFacts {
                deploy_id: "R".into(),
                manual: false,
                age_secs: 2,
            }),
            now: 1_010,
        }
    }

    fn lock(id: &str, manual: bool, age: u64) -> Option<LockFacts> {
        Some(LockFacts {
            deploy_id: id.into(),
            manual,
            age_secs: age,
        })
    }

    #[test]
    fn decisions() {
        let rows: Vec<(&str, Facts, &str)> = vec![
            (
                "the controller is alive: wait",
                facts(),
                "wait: goes back to r1 by itself in 28 s unless rollout R is confirmed",
            ),
            (
                "alive long after the switch (a long watch window): still wait",
                Facts {
                    now: 5_000,
                    ..facts()
                },
                "wait: goes back to r1 by itself in 28 s unless rollout R is confirmed",
            ),
            (
                "silent for the quiet time: back",
                Facts {
                    now: 1_100,
                    lock: lock("R", false, 31),
                    ..facts()
                },
                "revert: rollout R was not confirmed: its controller sent no heartbeat for 31 s",
            ),
            (
                "just switched, the lock already stale: the switch itself counts as a sign of life",
                Facts {
                    now: 1_005,
                    lock: lock("R", false, 40),
                    ..facts()
                },
                "wait: goes back to r1 by itself in 25 s unless rollout R is confirmed",
            ),
            (
                "no lock any more (broken by `unlock`): back once the quiet time passed",
                Facts {
                    now: 1_031,
                    lock: None,
                    ..facts()
                },
                "revert: rollout R was not confirmed within 30 s of the switch, and no run holds the lock",
            ),
            (
                "no lock, just switched: wait",
                Facts {
                    now: 1_001,
                    lock: None,
                    ..facts()
                },
                "wait: goes back to r1 by itself in 29 s unless rollout R is confirmed",
            ),
            (
                "another run holds the lock and is alive (it converges the fleet): wait",
                Facts {
                    now: 9_000,
                    lock: lock("S", false, 1),
                    ..facts()
                },
                "wait: goes back to r1 by itself in 29 s unless rollout R is confirmed",
            ),
            (
                "another run's lock, dead too: back",
                Facts {
                    now: 9_000,
                    lock: lock("S", false, 60),
                    ..facts()
                },
                "revert: rollout R was not confirmed: its lock is gone, and the one there now (S) sent no heartbeat for 60 s",
            ),
            (
                "a manual lock is a freeze: hands off",
                Facts {
                    now: 9_000,
                    lock: lock("M", true, 600),
                    ..facts()
                },
                "wait: a manual lock holds the environment: not going back to r1 while it does",
            ),
            (
                "current moved on since: the record is stale",
                Facts {
                    current: Some("r3".into()),
                    now: 9_000,
                    lock: None,
                    ..facts()
                },
                "drop: current is r3, not the pending r2: someone switched it since",
            ),
            (
                "the release before is gone: cannot go back",
                Facts {
                    previous_complete: false,
                    now: 9_000,
                    lock: None,
                    ..facts()
                },
                "wait: cannot go back by itself: r1 is no longer a complete release here",
            ),
        ];
        let mut failures = Vec::new();
        for (name, f, expected) in rows {
            let got = match decide(&f) {
                Decision::Wait { note } => format!("wait: {note}"),
                Decision::Revert { why } => format!("revert: {why}"),
                Decision::Drop { why } => format!("drop: {why}"),
            };
            if got != expected {
                failures.push(format!("{name}:\n  expected {expected}\n  got      {got}"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }
}
