//! [`DeployRoot`]: what an agent's `status` says about each deploy root `setup` registered on
//! its host — where `current` points, the rollout record and the deploy lock as the host holds
//! them, and which release each app of that root runs — so `pmfleet status` can tell a fleet
//! split by an interrupted rollout, or a host whose `current` and apps disagree.
//!
//! Everything here is read from files the controller wrote over SSH (`<root>/current`,
//! `<root>/.pmfleet/rollout.json`, `<root>/.pmfleet/lock`) and from what the agent runs. The
//! agent only reads and reports them, bounded in size, with a reason when a file cannot be
//! read; nothing in them is acted on. Every field may be absent (an older agent sends none).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The largest rollout record or lock file an agent reads.
pub const MAX_ROOT_FILE_LEN: u64 = 64 * 1024;

/// The most deploy roots one `status` answer describes.
pub const MAX_ROOTS: usize = 64;

/// One deploy root of the host, as its agent sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRoot {
    /// The root as `setup` registered it in `<agent home>/roots` (absolute, `~` expanded and
    /// symlinks resolved on the host).
    pub path: PathBuf,
    /// The release id `<root>/current` points at; `None` before the first deploy, or when it
    /// points at something else (then `current_error` says what).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_error: Option<String>,
    /// `<root>/.pmfleet/rollout.json`: the last rollout that began on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSeen>,
    /// Why the rollout record could not be read (too large, not JSON, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_error: Option<String>,
    /// `<root>/.pmfleet/lock`, while a deploy or revert holds it (or a dead one left it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockSeen>,
    /// The apps the agent runs from this root's releases, by name.
    #[serde(default)]
    pub apps: Vec<RootApp>,
    /// `<root>/.pmfleet/pending`: a switch its rollout has not confirmed yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<super::Pending>,
    /// What the agent will do about it, in its words ("goes back to r1 by itself in 12 s
    /// unless its rollout is confirmed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_note: Option<String>,
    /// `<root>/.pmfleet/auto-reverted`: the last time the host undid a rollout by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_reverted: Option<super::AutoReverted>,
}

/// The rollout record as the host holds it (the format is in docs/deploy.md): which rollout
/// began there, by whom and when, its target, and whether it finished.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutSeen {
    /// The run's id: its lock's `deploy_id`.
    #[serde(default)]
    pub id: String,
    /// `deploy` or `revert`.
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub who: String,
    /// When it began (RFC 3339, UTC, the controller's clock).
    #[serde(default)]
    pub started: String,
    /// The release every host was to serve at the end.
    #[serde(default)]
    pub release: String,
    /// Every host of the rollout, as the controller named them.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// What this host served when the rollout began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// `running`, then `finished`.
    #[serde(default)]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

impl RolloutSeen {
    /// Began and never finished.
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// The deploy lock as the host holds it: who took it, for which run, and how old its
/// heartbeat (the file's mtime) is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockSeen {
    #[serde(default)]
    pub holder: String,
    /// The run holding it (a rollout record's `id`).
    #[serde(default)]
    pub deploy_id: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub pid: u32,
    /// The controller's host name.
    #[serde(default)]
    pub machine: String,
    /// Seconds since the holder last touched the file.
    #[serde(default)]
    pub heartbeat_age_secs: u64,
    /// A lock taken on purpose (`pmfleet deploy ENV lock`): a freeze, with no heartbeat.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
    /// Why it was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why its content could not be read (the lock is held all the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One app the agent runs from a root's releases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootApp {
    pub name: String,
    /// The release its spec runs from (the directory under `<root>/releases/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Its instances online, out of `total`.
    #[serde(default)]
    pub online: u32,
    #[serde(default)]
    pub total: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape docs/protocol.md shows, and what an older agent (no field at all) reads as.
    #[test]
    fn a_deploy_root_reads_as_documented() {
        let root: DeployRoot = serde_json::from_str(
            r#"{"path":"/srv/app","current":"20260101-120000",
                "rollout":{"id":"5b0c","action":"deploy","who":"alice@laptop",
                           "started":"2026-01-01T12:00:00Z","release":"20260101-120000",
                           "hosts":["web1","web2"],"previous":"20251231-090000","state":"running"},
                "lock":{"holder":"alice@laptop","deploy_id":"5b0c","action":"deploy",
                        "since":"2026-01-01T12:00:00Z","pid":4242,"machine":"laptop",
                        "heartbeat_age_secs":3},
                "apps":[{"name":"api","release":"20251231-090000","online":2,"total":2}]}"#,
        )
        .unwrap();
        assert_eq!(root.current.as_deref(), Some("20260101-120000"));
        assert!(root.rollout.as_ref().is_some_and(RolloutSeen::is_running));
        assert_eq!(root.lock.as_ref().map(|l| l.pid), Some(4242));
        assert_eq!(root.apps[0].release.as_deref(), Some("20251231-090000"));
        let back: DeployRoot =
            serde_json::from_value(serde_json::to_value(&root).unwrap()).unwrap();
        assert_eq!(back, root);

        let bare: DeployRoot = serde_json::from_str(r#"{"path":"/srv/app"}"#).unwrap();
        assert_eq!(
            bare,
            DeployRoot {
                path: "/srv/app".into(),
                ..DeployRoot::default()
            }
        );
        let odd: RolloutSeen = serde_json::from_str(r#"{"id":"x","extra":1}"#).unwrap();
        assert!(!odd.is_running());
    }
}
