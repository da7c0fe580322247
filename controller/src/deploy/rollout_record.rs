//! `<path>/.pmfleet/rollout.json`: one small JSON object per host saying which rollout last
//! began there — written when the rollout begins, marked finished when it ends. A record still
//! `running` whose run no longer holds the lock belongs to a rollout whose controller died
//! (or lost its lock): the next command says so, naming who, when, and which host serves
//! which release. The format is in docs/deploy.md.

use serde::{Deserialize, Serialize};

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// The run's id: its lock's `deploy_id`, its history records' `id`.
    pub id: String,
    /// `deploy` or `revert`.
    pub action: String,
    pub who: String,
    /// When it began (RFC 3339, UTC, controller clock).
    pub started: String,
    /// The release every host is to serve at the end.
    pub release: String,
    /// Every host of the rollout, as shown.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The release this host served when the rollout began (written by the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// `running`, then `finished` (written by the host).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

impl RolloutRecord {
    /// Parses the file's content; `None` when it is empty or unreadable.
    pub fn parse(text: &str) -> Option<RolloutRecord> {
        serde_json::from_str(text.trim()).ok()
    }

    /// Began and never finished.
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// Never finished, and `run` (the lock's holder now, if any) is not its run: interrupted.
    pub fn interrupted_unless(&self, run: Option<&str>) -> bool {
        self.is_running() && run != Some(self.id.as_str())
    }

    /// "deploy of 20261124-061530-123 by alice@laptop, started 2026-11-24T06:15:30Z".
    pub fn describe(&self) -> String {
        format!(
            "rollout {} ({} of {} by {}, started {})",
            self.id, self.action, self.release, self.who, self.started
        )
    }
}

/// "rollout … was interrupted: web1, web2 serve r2; web3 serves r1" — for every interrupted
/// rollout among `records`, with each host's current release (`hosts`: label and release).
pub fn interrupted_notice(
    records: &[&RolloutRecord],
    hosts: &[(&str, Option<&str>)],
) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut notices = Vec::new();
    for record in records {
        if seen.contains(&record.id.as_str()) {
            continue;
        }
        seen.push(&record.id);
        let mut by_release: Vec<(String, Vec<&str>)> = Vec::new();
        for (host, current) in hosts {
            let release = current.unwrap_or("no release").to_string();
            match by_release.iter_mut().find(|(r, _)| *r == release) {
                Some((_, list)) => list.push(host),
                None => by_release.push((release, vec![host])),
            }
        }
        let serving: Vec<String> = by_release
            .iter()
            .map(|(release, hosts)| {
                let verb = if hosts.len() == 1 { "serves" } else { "serve" };
                format!("{} {verb} {release}", hosts.join(", "))
            })
            .collect();
        notices.push(format!(
            "{} was interrupted: {}",
            record.describe(),
            serving.join("; ")
        ));
    }
    notices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, state: &str) -> RolloutRecord {
        RolloutRecord {
            id: id.into(),
            action: "deploy".into(),
            who: "alice@laptop".into(),
            started: "2026-11-24T06:15:30Z".into(),
            release: "r2".into(),
            hosts: vec!["web1".into(), "web2".into()],
            previous: Some("r1".into()),
            state: state.into(),
            finished: None,
        }
    }

    #[test]
    fn interrupted_is_running_and_not_the_lock_holder() {
        let running = record("a", "running");
        assert!(running.interrupted_unless(None));
        assert!(running.interrupted_unless(Some("b")));
        assert!(!running.interrupted_unless(Some("a")));
        assert!(!record("a", "finished").interrupted_unless(None));
    }

    #[test]
    fn the_notice_names_who_when_and_which_host_serves_what() {
        let r = record("a", "running");
        let notices = interrupted_notice(
            &[&r, &r],
            &[
                ("web1", Some("r2")),
                ("web2", Some("r1")),
                ("web3", Some("r1")),
            ],
        );
        assert_eq!(
            notices,
            [
                "rollout a (deploy of r2 by alice@laptop, started 2026-11-24T06:15:30Z) was interrupted: web1 serves r2; web2, web3 serve r1"
            ]
        );
    }

    #[test]
    fn the_file_round_trips() {
        let r = record("a", "running");
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(RolloutRecord::parse(&text), Some(r));
        assert_eq!(RolloutRecord::parse(""), None);
        assert_eq!(RolloutRecord::parse("{\"id\":"), None);
    }
}
