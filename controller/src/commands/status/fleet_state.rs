//! What `pmfleet status` says below the table about each environment's releases: a rollout
//! that began and never finished (by whom, when, its target, which host serves which
//! release), a fleet split across releases, and a host whose `current` differs from the
//! release its apps run — each with the one command that brings every host to one release.
//!
//! The facts come from the agents ([`DeployRoot`]: `current`, the rollout record and the lock
//! as each host holds them, the release each app runs), matched to the environment by its
//! `path`. Everything here is pure and table-tested; whether a lock's holder is alive is asked
//! at the edge ([`HostView::lock`]).
//!
//! The command: `pmfleet deploy ENV revert 1` when a host's apps still run an older release
//! than its `current` (the new release never came up there, so going back is what runs), or
//! when the rollout cut short was a revert (it counts as done on every host, so the fleet goes
//! back together); `pmfleet deploy ENV` otherwise. Either is preceded by `pmfleet deploy ENV
//! unlock` when a dead run's lock is still on a host (the deploy would be refused).

use std::path::Path;

use pmfleet_shared::protocol::{DeployRoot, RolloutSeen};
use serde::Serialize;

use crate::deploy::rollout_record::{RolloutRecord, interrupted_notice};

/// One host of an environment, as its agent described the environment's deploy root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostView {
    pub host: String,
    /// The release `current` points at.
    pub current: Option<String>,
    pub rollout: Option<RolloutSeen>,
    /// The lock on the host: the run holding it, and whether that holder looks alive.
    pub lock: Option<(String, bool)>,
    /// The releases the root's apps run (apps with an instance online), each once.
    pub running: Vec<(String, Vec<String>)>,
    /// The agent is applying a release right now: `current` and the apps may differ for
    /// that one step.
    pub applying: bool,
    /// A switch its rollout has not confirmed yet, and what the agent will do about it.
    pub pending: Option<(pmfleet_shared::protocol::Pending, String)>,
    /// The last time the host undid an unconfirmed rollout by itself.
    pub auto_reverted: Option<pmfleet_shared::protocol::AutoReverted>,
}

impl HostView {
    /// The view of `root` as `host`'s agent described it; `lock_alive` says whether a lock's
    /// holder is alive.
    pub fn of(
        host: &str,
        root: &DeployRoot,
        applying: bool,
        lock_alive: impl Fn(&pmfleet_shared::protocol::LockSeen) -> bool,
    ) -> HostView {
        let mut running: Vec<(String, Vec<String>)> = Vec::new();
        for app in root.apps.iter().filter(|a| a.online > 0) {
            let Some(release) = &app.release else {
                continue;
            };
            match running.iter_mut().find(|(r, _)| r == release) {
                Some((_, apps)) => apps.push(app.name.clone()),
                None => running.push((release.clone(), vec![app.name.clone()])),
            }
        }
        HostView {
            host: host.to_string(),
            current: root.current.clone(),
            rollout: root.rollout.clone(),
            lock: root
                .lock
                .as_ref()
                .map(|l| (l.deploy_id.clone(), lock_alive(l))),
            running,
            applying,
            pending: root.pending.clone().map(|p| {
                let note = root.pending_note.clone().unwrap_or_else(|| {
                    format!(
                        "goes back to {} by itself unless its rollout is confirmed",
                        p.previous
                    )
                });
                (p, note)
            }),
            auto_reverted: root.auto_reverted.clone(),
        }
    }

    /// `current` differs from what the apps run (and no apply is under way).
    fn at_odds(&self) -> bool {
        !self.applying
            && !self.running.is_empty()
            && self
                .running
                .iter()
                .any(|(r, _)| Some(r.as_str()) != self.current.as_deref())
    }
}

/// The deploy root of `roots` that is the environment's `path`: the same path; for `~/x`, the
/// root ending in `x`; else the only root the host has (setup resolved symlinks in it).
pub fn root_for<'a>(roots: &'a [DeployRoot], path: &str) -> Option<&'a DeployRoot> {
    let trimmed = path.trim_end_matches('/');
    let path = if trimmed.is_empty() { path } else { trimmed };
    if let Some(root) = roots.iter().find(|r| r.path == Path::new(path)) {
        return Some(root);
    }
    let candidates: Vec<&DeployRoot> = match path.strip_prefix("~/") {
        Some(rest) if !rest.is_empty() => roots
            .iter()
            .filter(|r| r.path.ends_with(Path::new(rest)))
            .collect(),
        _ => Vec::new(),
    };
    match (candidates.as_slice(), roots) {
        ([only], _) => Some(only),
        ([], [only]) => Some(only),
        _ => None,
    }
}

/// Which hosts serve a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Serving {
    /// `None`: no release (never deployed, or `current` unreadable).
    pub release: Option<String>,
    pub hosts: Vec<String>,
}

/// A release a host's apps run, and which apps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Running {
    pub release: String,
    pub apps: Vec<String>,
}

/// The command that brings every host of the environment to one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Converge {
    /// `pmfleet deploy ENV` or `pmfleet deploy ENV revert 1`.
    pub command: String,
    /// A dead run's lock is still on a host: `pmfleet deploy ENV unlock` first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unlock_first: Option<String>,
}

impl Converge {
    pub fn text(&self) -> String {
        match &self.unlock_first {
            Some(unlock) => format!(
                "`{unlock}` (the run's lock is still there), then `{}`",
                self.command
            ),
            None => format!("`{}`", self.command),
        }
    }
}

/// One thing status says about an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A rollout began and never finished, and no live run holds its lock.
    InterruptedRollout {
        rollout: RolloutSeen,
        serving: Vec<Serving>,
        converge: Converge,
        message: String,
    },
    /// A rollout is running: its run holds the lock and is alive. Nothing to converge yet.
    RolloutInProgress {
        rollout: RolloutSeen,
        serving: Vec<Serving>,
        message: String,
    },
    /// The hosts serve different releases, with no rollout record saying why.
    Split {
        serving: Vec<Serving>,
        converge: Converge,
        message: String,
    },
    /// A host whose `current` is not what its apps run.
    AtOdds {
        host: String,
        current: Option<String>,
        /// The releases its apps run, with the apps.
        running: Vec<Running>,
        converge: Converge,
        message: String,
    },
    /// A host switched by a rollout that has not confirmed it yet: it goes back by itself if
    /// that rollout falls silent.
    Pending {
        host: String,
        release: String,
        previous: String,
        rollout: String,
        message: String,
    },
    /// A host undid an unconfirmed rollout by itself (its last time).
    AutoReverted {
        host: String,
        from: String,
        to: String,
        when: String,
        why: String,
        message: String,
    },
}

impl Finding {
    /// Whether it makes `status` exit non-zero: everything but a rollout in progress and what
    /// a host's agent did or will do by itself (said so that nobody wonders).
    pub fn fails(&self) -> bool {
        !matches!(
            self,
            Finding::RolloutInProgress { .. }
                | Finding::Pending { .. }
                | Finding::AutoReverted { .. }
        )
    }

    pub fn message(&self) -> &str {
        match self {
            Finding::InterruptedRollout { message, .. }
            | Finding::RolloutInProgress { message, .. }
            | Finding::Split { message, .. }
            | Finding::AtOdds { message, .. }
            | Finding::Pending { message, .. }
            | Finding::AutoReverted { message, .. } => message,
        }
    }

    pub fn converge(&self) -> Option<&Converge> {
        match self {
            Finding::InterruptedRollout { converge, .. }
            | Finding::Split { converge, .. }
            | Finding::AtOdds { converge, .. } => Some(converge),
            Finding::RolloutInProgress { .. }
            | Finding::Pending { .. }
            | Finding::AutoReverted { .. } => None,
        }
    }

    /// Whether it is about `host` (an environment-wide finding is about every host).
    pub fn concerns(&self, host: &str) -> bool {
        match self {
            Finding::AtOdds { host: h, .. }
            | Finding::Pending { host: h, .. }
            | Finding::AutoReverted { host: h, .. } => h == host,
            _ => true,
        }
    }
}

/// What to say about environment `env`, whose hosts' agents described its deploy root as
/// `hosts` (hosts that did not answer are left out).
pub fn findings(env: &str, hosts: &[HostView]) -> Vec<Finding> {
    let mut out = releases(env, hosts);
    out.extend(on_their_own(hosts));
    out
}

/// What the hosts' agents did, or will do, by themselves: pending switches and the last
/// auto-revert of each host.
fn on_their_own(hosts: &[HostView]) -> Vec<Finding> {
    let mut out = Vec::new();
    for h in hosts {
        if let Some(r) = &h.auto_reverted {
            let apps = if r.apps_back {
                ""
            } else {
                " (its apps could not be started again)"
            };
            out.push(Finding::AutoReverted {
                host: h.host.clone(),
                from: r.from.clone(),
                to: r.to.clone(),
                when: r.when.clone(),
                why: r.why.clone(),
                message: format!(
                    "{}: went back from {} to {} by itself at {}{apps}: {}",
                    h.host, r.from, r.to, r.when, r.why
                ),
            });
        }
        if let Some((p, note)) = &h.pending {
            out.push(Finding::Pending {
                host: h.host.clone(),
                release: p.release.clone(),
                previous: p.previous.clone(),
                rollout: p.rollout.clone(),
                message: format!(
                    "{}: {} is pending (rollout {}): {note}",
                    h.host, p.release, p.rollout
                ),
            });
        }
    }
    out
}

/// What the hosts' releases say: a rollout in progress or interrupted, a split, a host at odds.
fn releases(env: &str, hosts: &[HostView]) -> Vec<Finding> {
    let serving = serving(hosts);
    let mut out = Vec::new();
    let mut in_progress = false;
    let mut interrupted: Vec<&RolloutSeen> = Vec::new();
    for record in records(hosts) {
        let live = hosts
            .iter()
            .any(|h| matches!(&h.lock, Some((run, true)) if *run == record.id));
        if live {
            in_progress = true;
            out.push(Finding::RolloutInProgress {
                rollout: record.clone(),
                serving: serving.clone(),
                message: format!(
                    "{} is in progress: {}",
                    as_record(record).describe(),
                    serving_text(&serving)
                ),
            });
        } else {
            interrupted.push(record);
        }
    }
    if in_progress {
        // What the hosts serve and run moves with it: nothing to converge yet.
        return out;
    }
    let converge = converge(env, hosts, &interrupted);
    for record in &interrupted {
        let current: Vec<(&str, Option<&str>)> = hosts
            .iter()
            .map(|h| (h.host.as_str(), h.current.as_deref()))
            .collect();
        let message = interrupted_notice(&[&as_record(record)], &current)
            .into_iter()
            .next()
            .unwrap_or_default();
        out.push(Finding::InterruptedRollout {
            rollout: (*record).clone(),
            serving: serving.clone(),
            converge: converge.clone(),
            message,
        });
    }
    if interrupted.is_empty() && serving.len() > 1 {
        out.push(Finding::Split {
            serving: serving.clone(),
            converge: converge.clone(),
            message: format!("the fleet is split: {}", serving_text(&serving)),
        });
    }
    for h in hosts.iter().filter(|h| h.at_odds()) {
        let runs: Vec<String> = if h.running.len() == 1 {
            h.running.iter().map(|(r, _)| r.clone()).collect()
        } else {
            h.running
                .iter()
                .map(|(r, apps)| format!("{r} ({})", apps.join(", ")))
                .collect()
        };
        let current = h.current.as_deref().unwrap_or("no release");
        out.push(Finding::AtOdds {
            host: h.host.clone(),
            current: h.current.clone(),
            running: h
                .running
                .iter()
                .map(|(release, apps)| Running {
                    release: release.clone(),
                    apps: apps.clone(),
                })
                .collect(),
            converge: converge.clone(),
            message: format!(
                "{}: current is {current} but the apps run {}",
                h.host,
                runs.join(", ")
            ),
        });
    }
    out
}

/// The rollout records still `running`, each rollout once, oldest first.
fn records(hosts: &[HostView]) -> Vec<&RolloutSeen> {
    let mut found: Vec<&RolloutSeen> = Vec::new();
    for record in hosts.iter().filter_map(|h| h.rollout.as_ref()) {
        if record.is_running() && !found.iter().any(|r| r.id == record.id) {
            found.push(record);
        }
    }
    found.sort_by(|a, b| a.started.cmp(&b.started));
    found
}

/// The hosts by the release they serve, in the order the hosts came.
fn serving(hosts: &[HostView]) -> Vec<Serving> {
    let mut out: Vec<Serving> = Vec::new();
    for h in hosts {
        match out.iter_mut().find(|s| s.release == h.current) {
            Some(s) => s.hosts.push(h.host.clone()),
            None => out.push(Serving {
                release: h.current.clone(),
                hosts: vec![h.host.clone()],
            }),
        }
    }
    out
}

/// "web1 serves r2; web2, web3 serve r1".
fn serving_text(serving: &[Serving]) -> String {
    serving
        .iter()
        .map(|s| {
            let verb = if s.hosts.len() == 1 {
                "serves"
            } else {
                "serve"
            };
            let release = s.release.as_deref().unwrap_or("no release");
            format!("{} {verb} {release}", s.hosts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The one command for the environment (see the module documentation).
fn converge(env: &str, hosts: &[HostView], interrupted: &[&RolloutSeen]) -> Converge {
    // Release ids are UTC times, so an older release sorts first.
    let new_never_came_up = hosts.iter().any(|h| {
        h.at_odds()
            && h.current
                .as_deref()
                .is_some_and(|current| h.running.iter().all(|(r, _)| r.as_str() < current))
    });
    let last_was_revert = interrupted.last().is_some_and(|r| r.action == "revert");
    let command = if new_never_came_up || last_was_revert {
        format!("pmfleet deploy {env} revert 1")
    } else {
        format!("pmfleet deploy {env}")
    };
    let dead_lock = hosts.iter().any(|h| matches!(&h.lock, Some((_, false))));
    Converge {
        command,
        unlock_first: dead_lock.then(|| format!("pmfleet deploy {env} unlock")),
    }
}

fn as_record(seen: &RolloutSeen) -> RolloutRecord {
    RolloutRecord {
        id: seen.id.clone(),
        action: seen.action.clone(),
        who: seen.who.clone(),
        started: seen.started.clone(),
        release: seen.release.clone(),
        hosts: seen.hosts.clone(),
        previous: seen.previous.clone(),
        state: seen.state.clone(),
        finished: seen.finished.clone(),
    }
}

#[cfg(test)]
mod tests;
