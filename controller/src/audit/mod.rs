//! The controller's audit trail: one JSON line per command that acts on an environment
//! (deploy, revert, setup, unlock, app actions — from `pmfleet app`, `monit` or the dashboard) in `<data dir>/pmfleet/audit/<env>.jsonl`
//! (`$XDG_DATA_HOME`, else `~/.local/share`) — who, the command line, ref, SHA, release,
//! every host and its outcome, when it started and how long it took. The hosts keep their
//! own record (`history.jsonl`); [`timeline`] merges both for `pmfleet history`.

pub mod timeline;
pub mod view_action;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One host's outcome in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub host: String,
    pub outcome: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One command, as the controller saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The run's id: a deploy's or revert's is also in every host's history record.
    pub id: String,
    pub env: String,
    /// The ecosystem file (so two projects with a `production` are told apart).
    pub ecosystem: PathBuf,
    /// `deploy`, `revert`, `setup`, `unlock`, `app reload`, …
    pub action: String,
    /// The command line as typed (secrets masked).
    pub command: String,
    pub performer: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    pub hosts: Vec<HostEntry>,
    /// `succeeded`, `failed`, `rolled back`, …
    pub outcome: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub duration_ms: u64,
}

/// Where environment `env`'s records are kept.
pub fn path_for(env: &str) -> PathBuf {
    let base = dirs::data_dir().unwrap_or_else(|| PathBuf::from(".local/share"));
    base.join("pmfleet")
        .join("audit")
        .join(format!("{env}.jsonl"))
}

/// Appends `record` (one line, one write); an error says why it could not be kept.
pub fn append(path: &Path, record: &AuditRecord) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let line = serde_json::to_string(record).map_err(std::io::Error::other)?;
    let line = pmfleet_shared::redact::redact(&line).into_owned();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(format!("{line}\n").as_bytes())
}

/// Every record of `path` about `ecosystem` (unreadable lines skipped).
pub fn read(path: &Path, ecosystem: &Path) -> Vec<AuditRecord> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<AuditRecord>(l).ok())
        .filter(|r| r.ecosystem == ecosystem)
        .collect()
}

/// The command line this process was started with, secrets masked.
pub fn command_line() -> String {
    let words: Vec<String> = std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '"', '\'']) {
                crate::shell::quote(&a)
            } else {
                a
            }
        })
        .collect();
    pmfleet_shared::redact::redact(&words.join(" ")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_per_ecosystem_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/production.jsonl");
        let record = |eco: &str| AuditRecord {
            id: "r1".into(),
            env: "production".into(),
            ecosystem: PathBuf::from(eco),
            action: "deploy".into(),
            command: "pmfleet deploy production".into(),
            performer: "tester".into(),
            git_ref: Some("main".into()),
            sha: Some("abc".into()),
            release: Some("20260101-000000-000".into()),
            hosts: vec![HostEntry {
                host: "web1".into(),
                outcome: "ok".into(),
                message: String::new(),
            }],
            outcome: "succeeded".into(),
            started: "2026-01-01T00:00:00Z".into(),
            duration_ms: 1200,
        };
        append(&path, &record("/a/ecosystem.json")).unwrap();
        append(&path, &record("/b/ecosystem.json")).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{torn")
            .unwrap();
        let read = read(&path, Path::new("/a/ecosystem.json"));
        assert_eq!(read, [record("/a/ecosystem.json")]);
    }
}
