//! One timeline of an environment from the controller's audit records and every host's
//! `history.jsonl`, joined by run id, newest last — and where the hosts disagree: a run some
//! hosts recorded and a reachable host did not, a run whose hosts name different releases or
//! SHAs, a host whose release line ends elsewhere than the others'. A host's record of an app
//! command joins the controller's record of it by action, host and time (the agent that wrote
//! it never saw the controller's run id). Pure.

use std::collections::BTreeMap;

use serde::Serialize;

use super::AuditRecord;
use crate::deploy::history::{self, Record};

/// One run in the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: String,
    /// When it started (the controller's record), else the earliest host record.
    pub when: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    pub performer: String,
    /// The controller's word on the run, when it has a record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// What the hosts' records say of the run beyond its outcome (why a lock was taken, whose
    /// lock `unlock` released, why a host went back by itself): the first one read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Host → what its history says (its last record of the run), or what the controller saw
    /// when the host's history has no record of it.
    pub hosts: BTreeMap<String, String>,
    /// Where the hosts disagree about this run.
    pub disagreements: Vec<String>,
    /// Its place in the file it was first read from: runs started in the same second keep
    /// the order they were written in.
    #[serde(skip)]
    order: usize,
}

/// A host's history, or why it could not be read.
pub type HostHistory = (String, Result<Vec<Record>, String>);

/// The whole timeline: its runs, and notes about hosts as a whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub entries: Vec<Entry>,
    /// Hosts that could not be read, and hosts whose release line ends elsewhere.
    pub notes: Vec<String>,
}

fn outcome_word(o: history::Outcome) -> &'static str {
    match o {
        history::Outcome::Success => "ok",
        history::Outcome::Failed => "failed",
        history::Outcome::Aborted => "aborted",
        history::Outcome::RolledBack => "rolled back",
    }
}

/// What a host's record is: its action, or for an app command the command itself (`app
/// restart web`, from its message).
fn action_word(r: &Record) -> String {
    match r.action {
        history::Action::Deploy => "deploy".into(),
        history::Action::Revert => "revert".into(),
        history::Action::Setup => "setup".into(),
        history::Action::Unlock => "unlock".into(),
        history::Action::Lock => "lock".into(),
        history::Action::App => {
            let message = r.message.as_deref().unwrap_or("app");
            message.split(": ").next().unwrap_or(message).to_owned()
        }
    }
}

fn seconds(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

/// The controller's app command that a host's agent recorded as `r`: the agent does not know
/// the controller's run id, so it is the one of that action, naming that host, during which
/// (give or take [`APP_SLACK_SECS`]) the agent wrote its record.
fn app_run_of<'a>(r: &Record, host: &str, controller: &'a [AuditRecord]) -> Option<&'a str> {
    if r.action != history::Action::App {
        return None;
    }
    let when = seconds(&r.when)?;
    let action = action_word(r);
    controller
        .iter()
        .find(|c| {
            let Some(start) = seconds(&c.started) else {
                return false;
            };
            let end = start + i64::try_from(c.duration_ms / 1000).unwrap_or(i64::MAX / 2);
            c.action == action
                && c.hosts.iter().any(|h| h.host == host)
                && (start - APP_SLACK_SECS..=end + APP_SLACK_SECS).contains(&when)
        })
        .map(|c| c.id.as_str())
}

/// How far apart the controller's and a host's clocks (and seconds) may be for an app
/// command's two records to be one run.
const APP_SLACK_SECS: i64 = 5;

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Merges `controller` records and `hosts`' histories; `limit` keeps the newest runs.
pub fn merge(controller: &[AuditRecord], hosts: &[HostHistory], limit: usize) -> Timeline {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    // What each host said about each run: (release, sha) of its last record.
    let mut said: BTreeMap<String, BTreeMap<String, (String, String)>> = BTreeMap::new();
    let mut notes = Vec::new();
    for (host, history) in hosts {
        let records = match history {
            Ok(r) => r,
            Err(why) => {
                notes.push(format!("{host}: history not read: {why}"));
                continue;
            }
        };
        for (order, r) in records.iter().enumerate() {
            let id = app_run_of(r, host, controller).unwrap_or(&r.id).to_owned();
            let entry = entries.entry(id.clone()).or_insert_with(|| Entry {
                id,
                when: r.when.clone(),
                action: action_word(r),
                release: non_empty(&r.release),
                sha: non_empty(&r.sha),
                git_ref: non_empty(&r.git_ref),
                performer: r.who.clone(),
                outcome: None,
                duration_ms: None,
                command: None,
                message: None,
                hosts: BTreeMap::new(),
                disagreements: Vec::new(),
                order,
            });
            if entry.message.is_none() && !matches!(r.action, history::Action::Deploy) {
                entry.message = r.message.clone();
            }
            if r.when < entry.when {
                entry.when = r.when.clone();
            }
            entry
                .hosts
                .insert(host.clone(), outcome_word(r.outcome).to_owned());
            if matches!(r.action, history::Action::Deploy | history::Action::Revert) {
                said.entry(r.id.clone())
                    .or_default()
                    .insert(host.clone(), (r.release.clone(), r.sha.clone()));
            }
        }
    }
    for (order, c) in controller.iter().enumerate() {
        let entry = entries.entry(c.id.clone()).or_insert_with(|| Entry {
            id: c.id.clone(),
            when: c.started.clone(),
            action: c.action.clone(),
            release: c.release.clone(),
            sha: c.sha.clone(),
            git_ref: c.git_ref.clone(),
            performer: c.performer.clone(),
            outcome: None,
            duration_ms: None,
            command: None,
            message: None,
            hosts: BTreeMap::new(),
            disagreements: Vec::new(),
            order,
        });
        entry.when = c.started.clone();
        entry.order = order;
        entry.action = c.action.clone();
        entry.performer = c.performer.clone();
        entry.outcome = Some(c.outcome.clone());
        entry.duration_ms = Some(c.duration_ms);
        entry.command = Some(c.command.clone());
        entry.release = entry.release.clone().or_else(|| c.release.clone());
        entry.sha = entry.sha.clone().or_else(|| c.sha.clone());
        entry.git_ref = entry.git_ref.clone().or_else(|| c.git_ref.clone());
        // A reachable host of a deploy or revert that kept no record of it.
        if matches!(c.action.as_str(), "deploy" | "revert") {
            for h in &c.hosts {
                let recorded = entry.hosts.contains_key(&h.host);
                let reached = !matches!(h.outcome.as_str(), "unreachable" | "lock held");
                let read = hosts.iter().any(|(n, r)| *n == h.host && r.is_ok());
                if !recorded && reached && read && !entry.hosts.is_empty() {
                    entry.disagreements.push(format!(
                        "{}: the controller saw it {}, its history has no record of this run",
                        h.host, h.outcome
                    ));
                }
            }
        }
        // Hosts whose history says nothing of the run (an app action, an unreachable host):
        // the controller's word.
        for h in &c.hosts {
            entry
                .hosts
                .entry(h.host.clone())
                .or_insert_with(|| h.outcome.clone());
        }
    }
    for (id, by_host) in &said {
        let Some(entry) = entries.get_mut(id) else {
            continue;
        };
        let mut distinct: Vec<&(String, String)> = by_host.values().collect();
        distinct.sort();
        distinct.dedup();
        if distinct.len() > 1 {
            let each: Vec<String> = by_host
                .iter()
                .map(|(h, (release, sha))| {
                    format!("{h}: {release} ({})", sha.get(..7).unwrap_or(sha))
                })
                .collect();
            entry.disagreements.push(format!(
                "hosts name different releases: {}",
                each.join(", ")
            ));
        }
    }
    // Release lines: where each readable host's history says `current` should be.
    let mut ends: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (host, history) in hosts {
        if let Ok(records) = history
            && let Some(last) = history::release_line(records).last()
        {
            ends.entry(last.clone()).or_default().push(host.clone());
        }
    }
    if ends.len() > 1 {
        let mut groups: Vec<(String, Vec<String>)> = ends.into_iter().collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
        if let Some((most, _)) = groups.first().cloned() {
            for (release, hosts) in groups.iter().skip(1) {
                notes.push(format!(
                    "{}: history ends on release {release}, the others' on {most}",
                    hosts.join(", ")
                ));
            }
        }
    }
    let mut entries: Vec<Entry> = entries.into_values().collect();
    entries.sort_by(|a, b| a.when.cmp(&b.when).then_with(|| a.order.cmp(&b.order)));
    let skip = entries.len().saturating_sub(limit);
    Timeline {
        entries: entries.into_iter().skip(skip).collect(),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::HostEntry;
    use crate::deploy::history::{Action, Outcome};

    fn rec(id: &str, release: &str, when: &str, outcome: Outcome) -> Record {
        Record {
            id: id.into(),
            action: Action::Deploy,
            release: release.into(),
            previous: None,
            sha: format!("{release}0000000"),
            git_ref: "main".into(),
            who: "tester".into(),
            when: when.into(),
            outcome,
            message: None,
        }
    }

    fn audit(id: &str, hosts: &[(&str, &str)]) -> AuditRecord {
        AuditRecord {
            id: id.into(),
            env: "production".into(),
            ecosystem: "/p/ecosystem.json".into(),
            action: "deploy".into(),
            command: "pmfleet deploy production".into(),
            performer: "tester".into(),
            git_ref: Some("main".into()),
            sha: None,
            release: None,
            hosts: hosts
                .iter()
                .map(|(h, o)| HostEntry {
                    host: (*h).into(),
                    outcome: (*o).into(),
                    message: String::new(),
                })
                .collect(),
            outcome: "succeeded".into(),
            started: "2026-01-01T00:00:00Z".into(),
            duration_ms: 1500,
        }
    }

    #[test]
    fn runs_join_across_hosts_and_the_controller() {
        let hosts: Vec<HostHistory> = vec![
            (
                "web1".into(),
                Ok(vec![rec(
                    "a",
                    "r1",
                    "2026-01-01T00:00:05Z",
                    Outcome::Success,
                )]),
            ),
            (
                "web2".into(),
                Ok(vec![rec(
                    "a",
                    "r1",
                    "2026-01-01T00:00:04Z",
                    Outcome::Success,
                )]),
            ),
        ];
        let mut app = audit("z", &[("web1", "ok"), ("web2", "failed")]);
        app.action = "app reload web".into();
        app.started = "2026-01-01T00:01:00Z".into();
        let t = merge(
            &[audit("a", &[("web1", "ok"), ("web2", "ok")]), app],
            &hosts,
            10,
        );
        assert_eq!(t.entries.len(), 2);
        let z = &t.entries[1];
        assert_eq!(z.action, "app reload web");
        assert_eq!(z.hosts["web2"], "failed", "the controller's word");
        assert!(z.disagreements.is_empty(), "{:?}", z.disagreements);
        let e = &t.entries[0];
        assert_eq!(e.when, "2026-01-01T00:00:00Z");
        assert_eq!(e.outcome.as_deref(), Some("succeeded"));
        assert_eq!(e.duration_ms, Some(1500));
        assert_eq!(e.hosts.len(), 2);
        assert!(e.disagreements.is_empty(), "{:?}", e.disagreements);
        assert!(t.notes.is_empty(), "{:?}", t.notes);
    }

    #[test]
    fn disagreements_table() {
        // web2 kept no record of run b, though the controller reached it.
        let hosts: Vec<HostHistory> = vec![
            (
                "web1".into(),
                Ok(vec![
                    rec("a", "r1", "2026-01-01T00:00:01Z", Outcome::Success),
                    rec("b", "r2", "2026-01-01T00:01:00Z", Outcome::Success),
                ]),
            ),
            (
                "web2".into(),
                Ok(vec![rec(
                    "a",
                    "r1",
                    "2026-01-01T00:00:01Z",
                    Outcome::Success,
                )]),
            ),
            ("web3".into(), Err("connection refused".into())),
        ];
        let t = merge(
            &[audit(
                "b",
                &[("web1", "ok"), ("web2", "ok"), ("web3", "unreachable")],
            )],
            &hosts,
            10,
        );
        let b = t.entries.iter().find(|e| e.id == "b").unwrap();
        assert_eq!(
            b.disagreements,
            ["web2: the controller saw it ok, its history has no record of this run"]
        );
        assert!(
            t.notes
                .iter()
                .any(|n| n.starts_with("web3: history not read"))
        );
        assert!(
            t.notes
                .iter()
                .any(|n| n.contains("history ends on release")),
            "{:?}",
            t.notes
        );

        // Two hosts name different releases for one run.
        let split: Vec<HostHistory> = vec![
            (
                "web1".into(),
                Ok(vec![rec(
                    "c",
                    "r3",
                    "2026-01-02T00:00:00Z",
                    Outcome::Success,
                )]),
            ),
            (
                "web2".into(),
                Ok(vec![rec(
                    "c",
                    "r4",
                    "2026-01-02T00:00:00Z",
                    Outcome::Success,
                )]),
            ),
        ];
        let t = merge(&[], &split, 10);
        assert!(t.entries[0].disagreements[0].starts_with("hosts name different releases"));

        // The limit keeps the newest.
        let t = merge(&[], &hosts, 1);
        assert_eq!(t.entries.len(), 1);
        assert_eq!(t.entries[0].id, "b");
    }

    #[test]
    fn a_lock_shows_why_it_was_taken_and_joins_the_controllers_record() {
        let lock = |host_when: &str| Record {
            action: Action::Lock,
            release: String::new(),
            sha: String::new(),
            git_ref: String::new(),
            message: Some("release freeze".into()),
            ..rec("l", "", host_when, Outcome::Success)
        };
        let hosts: Vec<HostHistory> = vec![
            ("web1".into(), Ok(vec![lock("2026-01-01T00:00:01Z")])),
            ("web2".into(), Ok(vec![lock("2026-01-01T00:00:02Z")])),
        ];
        let mut c = audit("l", &[("web1", "ok"), ("web2", "ok")]);
        c.action = "lock".into();
        let t = merge(&[c], &hosts, 10);
        assert_eq!(t.entries.len(), 1, "{t:?}");
        let e = &t.entries[0];
        assert_eq!(e.action, "lock");
        assert_eq!(e.message.as_deref(), Some("release freeze"));
        assert_eq!(e.outcome.as_deref(), Some("succeeded"));
        assert!(e.disagreements.is_empty() && t.notes.is_empty(), "{t:?}");
        // A deploy's per-host message is not the run's.
        let mut failed = rec("d", "r1", "2026-01-01T00:00:03Z", Outcome::Failed);
        failed.message = Some("post-deploy exited with 1".into());
        let t = merge(&[], &[("web1".into(), Ok(vec![failed]))], 10);
        assert_eq!(t.entries[0].message, None);
    }

    #[test]
    fn an_agents_record_of_an_app_command_joins_the_controllers_run_or_stands_alone() {
        let app = |when: &str, who: &str| Record {
            id: format!("app-{when}"),
            action: Action::App,
            release: String::new(),
            sha: String::new(),
            git_ref: String::new(),
            who: who.into(),
            message: Some("app restart web: restarted web".into()),
            ..rec("", "", when, Outcome::Success)
        };
        let mut c = audit("z", &[("web1", "ok"), ("web2", "ok")]);
        c.action = "app restart web".into();
        c.started = "2026-01-01T00:01:00Z".into();
        let cert = "controller:tester@m (admin)";
        let hosts: Vec<HostHistory> = vec![
            ("web1".into(), Ok(vec![app("2026-01-01T00:01:01Z", cert)])),
            (
                "web2".into(),
                Ok(vec![
                    app("2026-01-01T00:01:02Z", cert),
                    // Another client, an hour later: a run of its own.
                    app("2026-01-01T01:00:00Z", "client:ci (deploy)"),
                ]),
            ),
        ];
        let t = merge(std::slice::from_ref(&c), &hosts, 10);
        assert_eq!(t.entries.len(), 2, "{t:#?}");
        let joined = &t.entries[0];
        assert_eq!(joined.id, "z");
        assert_eq!(joined.action, "app restart web");
        assert_eq!(joined.performer, "tester", "the controller's word");
        assert_eq!(joined.hosts.len(), 2);
        assert_eq!(
            joined.message.as_deref(),
            Some("app restart web: restarted web")
        );
        let alone = &t.entries[1];
        assert_eq!(alone.action, "app restart web");
        assert_eq!(alone.performer, "client:ci (deploy)");
        assert_eq!(alone.outcome, None, "no controller record");
        assert_eq!(alone.hosts.keys().collect::<Vec<_>>(), ["web2"]);
    }
}
