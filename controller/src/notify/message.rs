//! What a notification says, whatever the format: the event, the environment, who, the ref,
//! SHA and release, every host and how it ended, the outcome, how long it took, and a one-line
//! reason when it failed. Built from what the controller knows; it never holds a secret (and
//! is masked by [`pmfleet_shared::redact`] before it is sent all the same).

use std::time::Duration;

use pmfleet_shared::ecosystem::NotifyEvent;
use pmfleet_shared::protocol::{AgentEvent, EventKind};
use serde::Serialize;

/// One host's part in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostOutcome {
    pub host: String,
    pub outcome: String,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    #[serde(serialize_with = "event_name")]
    pub event: NotifyEvent,
    pub env: String,
    /// The actor, the CI's, the git user or `user@machine` (see [`crate::deploy::who_in`]).
    pub performer: String,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    pub hosts: Vec<HostOutcome>,
    /// `started`, `succeeded`, `failed`, `rolled back`, `reverted`, or what the agent said.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// One line, when something failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an agent's event: the app it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// For a summary of an agent's events: how many more of the same event (app, host) came
    /// within the window after the one told ([`super::throttle`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_back: Option<u32>,
}

fn event_name<S: serde::Serializer>(e: &NotifyEvent, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(e.name())
}

impl Message {
    /// A message of `event` about environment `env`, everything else empty.
    pub fn new(event: NotifyEvent, env: &str, performer: &str) -> Message {
        Message {
            event,
            env: env.to_owned(),
            performer: performer.to_owned(),
            git_ref: None,
            sha: None,
            release: None,
            hosts: Vec::new(),
            outcome: String::new(),
            duration_secs: None,
            reason: None,
            app: None,
            held_back: None,
        }
    }

    pub fn with_duration(mut self, d: Duration) -> Message {
        self.duration_secs = Some((d.as_secs_f64() * 10.0).round() / 10.0);
        self
    }

    /// The one-line summary every format starts with.
    pub fn title(&self) -> String {
        let short = self.sha.as_deref().map(|s| s.get(..7).unwrap_or(s));
        let what = match self.event {
            NotifyEvent::DeployStarted => "deploy started",
            NotifyEvent::DeploySucceeded => "deploy succeeded",
            NotifyEvent::DeployFailed => "deploy failed",
            NotifyEvent::RolledBack => "deploy rolled back",
            NotifyEvent::Reverted => "reverted",
            NotifyEvent::RevertFailed => "revert failed",
            NotifyEvent::CrashLoop => "crash loop",
            NotifyEvent::Errored => "errored",
            NotifyEvent::MemoryRestart => "memory restart",
            NotifyEvent::AutoRevert => "went back by itself",
        };
        let mut title = format!("{}: {what}", self.env);
        if let Some(app) = &self.app {
            title.push_str(&format!(" ({app})"));
        }
        match (&self.git_ref, short) {
            (Some(r), Some(s)) => title.push_str(&format!(" — {r} at {s}")),
            (None, Some(s)) => title.push_str(&format!(" — {s}")),
            _ => {}
        }
        title
    }

    /// The lines under the title: who, release, hosts, duration, reason.
    pub fn details(&self) -> Vec<String> {
        let mut lines = vec![format!("by {}", self.performer)];
        if let Some(release) = &self.release {
            lines.push(format!("release {release}"));
        }
        if !self.hosts.is_empty() {
            let hosts: Vec<String> = self
                .hosts
                .iter()
                .map(|h| {
                    if h.outcome.is_empty() {
                        h.host.clone()
                    } else {
                        format!("{} ({})", h.host, h.outcome)
                    }
                })
                .collect();
            lines.push(format!("hosts: {}", hosts.join(", ")));
        }
        if let Some(secs) = self.duration_secs {
            lines.push(format!("took {secs}s"));
        }
        if let Some(reason) = &self.reason {
            lines.push(format!("reason: {reason}"));
        }
        lines
    }
}

/// Which notification an agent's event is, if any: a crash loop (errored after too many
/// unstable restarts), another errored instance, a restart for `max_memory_restart`, a host
/// that went back by itself.
pub fn from_agent_event(event: &AgentEvent) -> Option<NotifyEvent> {
    match event.kind {
        EventKind::Errored if event.message.contains("unstable restarts") => {
            Some(NotifyEvent::CrashLoop)
        }
        EventKind::Errored => Some(NotifyEvent::Errored),
        EventKind::Restarting if event.message.contains("max_memory_restart") => {
            Some(NotifyEvent::MemoryRestart)
        }
        EventKind::AutoReverted => Some(NotifyEvent::AutoRevert),
        _ => None,
    }
}

/// One line: the first line of `text`, at most 200 characters.
pub fn one_line(text: &str) -> String {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut line: String = first.trim().chars().take(200).collect();
    if first.trim().chars().count() > 200 {
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, message: &str) -> AgentEvent {
        AgentEvent {
            at_ms: 0,
            app: "api".into(),
            instance: Some(0),
            pid: None,
            kind,
            message: message.into(),
        }
    }

    #[test]
    fn agent_events_table() {
        let rows = [
            (
                event(
                    EventKind::Errored,
                    "16 unstable restarts (each up less than min_uptime 1000 ms): given up",
                ),
                Some(NotifyEvent::CrashLoop),
            ),
            (
                event(EventKind::Errored, "cannot spawn: no such file"),
                Some(NotifyEvent::Errored),
            ),
            (
                event(
                    EventKind::Restarting,
                    "300000000 bytes in memory, over max_memory_restart",
                ),
                Some(NotifyEvent::MemoryRestart),
            ),
            (event(EventKind::Restarting, "exit code 1; in 100 ms"), None),
            (event(EventKind::Started, ""), None),
            (
                event(
                    EventKind::AutoReverted,
                    "went back by itself from release b to a in /srv/app: no heartbeat",
                ),
                Some(NotifyEvent::AutoRevert),
            ),
            (event(EventKind::Lagged, "missed 3 events"), None),
        ];
        for (e, expected) in rows {
            assert_eq!(from_agent_event(&e), expected, "{e:?}");
        }
    }

    #[test]
    fn title_and_details() {
        let mut m = Message::new(
            NotifyEvent::DeployFailed,
            "production",
            "alice via github-actions",
        );
        m.git_ref = Some("main".into());
        m.sha = Some("0123456789abcdef".into());
        m.release = Some("20260101-000000-000".into());
        m.hosts = vec![HostOutcome {
            host: "web1".into(),
            outcome: "failed".into(),
        }];
        m.reason = Some(one_line("post-deploy failed\nmore"));
        let m = m.with_duration(Duration::from_millis(12_345));
        assert_eq!(m.title(), "production: deploy failed — main at 0123456");
        assert_eq!(
            m.details(),
            [
                "by alice via github-actions",
                "release 20260101-000000-000",
                "hosts: web1 (failed)",
                "took 12.3s",
                "reason: post-deploy failed",
            ]
        );
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["event"], "deploy_failed");
        assert_eq!(json["ref"], "main");
    }
}
