//! `<path>/.pmfleet/history.jsonl`: one record per deploy or revert on a host (records of the
//! same shape for each `setup`, manual lock, unlock and app command go to `.pmfleet/audit.jsonl`, for the audit
//! trail), and the "release line" replayed from it, which is what `revert N`, `current` and
//! `previous` count on.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Deploy,
    Revert,
    /// `setup` ran on the host (no release: `release`, `sha` and `ref` are empty).
    Setup,
    /// `unlock` broke a lock on the host, or released a manual one.
    Unlock,
    /// `lock` took a manual lock (a freeze) on the host; `message` says why.
    Lock,
    /// The host's agent did an app command a client certificate asked for over mutual TLS
    /// (written by the agent; `message` is the command and its answer, `who` the
    /// certificate's name and role).
    App,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// `current` now points at `release`.
    Success,
    /// This host failed; `current` was not changed.
    Failed,
    /// This host was ready, but the rollout stopped because of other hosts.
    Aborted,
    /// Switched, then switched back because the rollout stopped.
    RolledBack,
}

/// One line of the history file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The deploy's id, the same on every host of one run.
    pub id: String,
    pub action: Action,
    pub release: String,
    /// What `current` pointed at before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub who: String,
    /// RFC 3339, UTC.
    pub when: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Record {
    /// A record of `action` that switches nothing (setup, unlock, lock).
    pub fn event(id: &str, action: Action, who: &str, outcome: Outcome, message: &str) -> Record {
        Record {
            id: id.to_owned(),
            action,
            release: String::new(),
            previous: None,
            sha: String::new(),
            git_ref: String::new(),
            who: who.to_owned(),
            when: super::now_rfc3339(),
            outcome,
            message: (!message.is_empty()).then(|| message.to_owned()),
        }
    }

    /// A successful record of `action` on `release`, for the tables of the decisions that read
    /// histories.
    #[cfg(test)]
    pub fn of(action: Action, release: &str) -> Record {
        Record {
            id: "x".into(),
            action,
            release: release.into(),
            previous: None,
            sha: String::new(),
            git_ref: String::new(),
            who: "t".into(),
            when: "t".into(),
            outcome: Outcome::Success,
            message: None,
        }
    }

    /// The record as one line of the history file.
    pub fn to_line(&self) -> String {
        // Strings and enums always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Parses the history file, skipping lines it cannot read (a torn last line, say).
pub fn parse(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The releases that were switched to, oldest first, with every release that a revert went
/// back from removed: after deploys A, B, C the line is [A, B, C]; `revert 1` makes it [A, B],
/// so a second `revert 1` goes to A.
pub fn release_line(records: &[Record]) -> Vec<String> {
    let mut line: Vec<String> = Vec::new();
    for record in records.iter().filter(|r| r.outcome == Outcome::Success) {
        match record.action {
            Action::Deploy => {
                line.retain(|r| r != &record.release);
                line.push(record.release.clone());
            }
            Action::Revert => {
                if let Some(pos) = line.iter().rposition(|r| r == &record.release) {
                    line.truncate(pos + 1);
                } else {
                    line.push(record.release.clone());
                }
            }
            Action::Setup | Action::Unlock | Action::Lock | Action::App => {}
        }
    }
    line
}

/// The successful deploy that made `release` (its SHA, ref, author and time).
pub fn latest_for<'a>(records: &'a [Record], release: &str) -> Option<&'a Record> {
    let successful = |r: &&Record| r.release == release && r.outcome == Outcome::Success;
    records
        .iter()
        .rev()
        .filter(successful)
        .find(|r| r.action == Action::Deploy)
        .or_else(|| records.iter().rev().find(successful))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(action: Action, release: &str, outcome: Outcome) -> Record {
        Record {
            id: "x".into(),
            action,
            release: release.into(),
            previous: None,
            sha: "0".repeat(40),
            git_ref: "main".into(),
            who: "t".into(),
            when: "2026-01-01T00:00:00Z".into(),
            outcome,
            message: None,
        }
    }

    use Action::*;
    use Outcome::*;

    #[test]
    fn line_table() {
        let rows: Vec<(Vec<Record>, Vec<&str>)> = vec![
            (vec![], vec![]),
            (
                vec![rec(Deploy, "a", Success), rec(Deploy, "b", Success)],
                vec!["a", "b"],
            ),
            (
                vec![rec(Deploy, "a", Success), rec(Deploy, "b", Failed)],
                vec!["a"],
            ),
            (
                vec![rec(Deploy, "a", Success), rec(Deploy, "b", Aborted)],
                vec!["a"],
            ),
            (
                vec![
                    rec(Deploy, "a", Success),
                    rec(Deploy, "b", Success),
                    rec(Deploy, "c", Success),
                    rec(Revert, "b", Success),
                ],
                vec!["a", "b"],
            ),
            (
                vec![
                    rec(Deploy, "a", Success),
                    rec(Deploy, "b", Success),
                    rec(Deploy, "c", Success),
                    rec(Revert, "b", Success),
                    rec(Revert, "a", Success),
                ],
                vec!["a"],
            ),
            (
                vec![
                    rec(Deploy, "a", Success),
                    rec(Deploy, "b", Success),
                    rec(Deploy, "c", Success),
                    rec(Revert, "a", Success),
                    rec(Deploy, "d", Success),
                ],
                vec!["a", "d"],
            ),
            (
                vec![
                    rec(Deploy, "a", Success),
                    rec(Deploy, "b", Success),
                    rec(Revert, "a", RolledBack),
                ],
                vec!["a", "b"],
            ),
            (
                vec![
                    rec(Deploy, "a", Success),
                    rec(Setup, "", Success),
                    rec(Unlock, "", Success),
                ],
                vec!["a"],
            ),
        ];
        for (records, expected) in rows {
            assert_eq!(release_line(&records), expected, "{records:?}");
        }
    }

    #[test]
    fn parse_skips_torn_lines() {
        let good = serde_json::to_string(&rec(Deploy, "a", Success)).unwrap();
        let text = format!("{good}\n{{\"id\": \"tor");
        assert_eq!(parse(&text).len(), 1);
        assert!(good.contains("\"ref\":\"main\""));
    }
}
