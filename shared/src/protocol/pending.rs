//! A switched release the rollout has not confirmed yet, and what a host's agent did when no
//! confirmation came: the two small files of a deploy root that make a host undo a rollout
//! its controller abandoned (see docs/deploy.md, "No split fleet").
//!
//! - `<root>/.pmfleet/pending` ([`Pending`]), written over SSH by the switch itself, in the
//!   same step, and removed by the controller once the whole rollout is confirmed (or by the
//!   switch back). While it is there and the run that wrote it is silent — no heartbeat on
//!   its deploy lock — for [`Pending::quiet_secs`], the agent switches `current` back to
//!   [`Pending::previous`] and runs that release again, by itself.
//! - `<root>/.pmfleet/auto-reverted` ([`AutoReverted`]), written by the agent when it did.
//!
//! The agent only ever goes back to the release `current` pointed at before the switch,
//! named by the file SSH wrote and checked to be a complete release of that root: it may
//! undo, never invent.

use serde::{Deserialize, Serialize};

/// The pending record, relative to a deploy root.
pub const PENDING_FILE: &str = ".pmfleet/pending";
/// The agent's record of going back by itself, relative to a deploy root.
pub const AUTO_REVERTED_FILE: &str = ".pmfleet/auto-reverted";
/// How long a controller may stay silent before its hosts undo an unconfirmed switch: the
/// deploy lock's stale age (its heartbeat comes every 5 s).
pub const QUIET_SECS: u64 = 30;

/// `<root>/.pmfleet/pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The run that switched: its deploy lock's `deploy_id`, its rollout record's `id`.
    pub rollout: String,
    /// The release switched to.
    pub release: String,
    /// What `current` pointed at before: where the host goes back to.
    pub previous: String,
    /// When the switch happened (seconds since the epoch, the host's clock).
    pub since: u64,
    /// How long the run may stay silent before the host goes back by itself.
    #[serde(default = "quiet")]
    pub quiet_secs: u64,
}

fn quiet() -> u64 {
    QUIET_SECS
}

/// `<root>/.pmfleet/auto-reverted`: the last time this host undid a rollout by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoReverted {
    /// The rollout that was not confirmed.
    pub rollout: String,
    /// The release it had switched to.
    pub from: String,
    /// The release the host went back to.
    pub to: String,
    /// When (RFC 3339, UTC, the host's clock).
    pub when: String,
    /// Why, for a person.
    pub why: String,
    /// Whether the agent's apps run `to` again (false: they could not be started, `why`
    /// says so).
    #[serde(default)]
    pub apps_back: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_record_reads_as_the_switch_writes_it() {
        let p: Pending = serde_json::from_str(
            r#"{"rollout":"5b0c","release":"20261124-061530-123","previous":"20261123-000000-000","since":1767268800,"quiet_secs":30}"#,
        )
        .unwrap();
        assert_eq!(p.previous, "20261123-000000-000");
        let p: Pending =
            serde_json::from_str(r#"{"rollout":"r","release":"b","previous":"a","since":1}"#)
                .unwrap();
        assert_eq!(p.quiet_secs, QUIET_SECS);
    }
}
