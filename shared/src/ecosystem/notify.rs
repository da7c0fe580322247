//! `notify`, at the top level (every environment) and in `deploy.<env>`: where to tell
//! people about deploys and about the apps. One webhook, a list of them, or a URL alone:
//!
//! ```json
//! "notify": [
//!   { "url": "secret:SLACK_WEBHOOK", "format": "slack", "events": ["deploy_failed", "crash_loop"] },
//!   { "url": "https://ntfy.sh/acme-deploys", "format": "ntfy" },
//!   "https://hooks.example.com/pmfleet"
//! ]
//! ```
//!
//! `format` is `json` (the default), `slack` or `ntfy`; `events` defaults to every event;
//! `timeout` (default 5 s) bounds each attempt at delivering.

use std::time::Duration;

use super::diagnostic::{FieldPath, Report, suggestion_hint};
use super::fields;
use super::keys::{self, KeyDef, Schema};
use super::value::{Kind, Value};

/// One webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    /// `http://` or `https://`, or `secret:NAME` (a secret holding the URL).
    pub url: String,
    pub format: NotifyFormat,
    /// What it is told about; never empty (every event when the file names none).
    pub events: Vec<NotifyEvent>,
    /// How long one attempt at delivering may take (default [`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

/// How long one attempt at delivering a notification may take, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The body a webhook gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// One JSON object with every field.
    Json,
    /// `{"text": …}`, as Slack's (and Mattermost's, Discord's `/slack`) incoming webhooks take.
    Slack,
    /// A plain-text body with `Title`, `Priority` and `Tags` headers, as ntfy takes it.
    Ntfy,
}

/// What can be notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyEvent {
    DeployStarted,
    DeploySucceeded,
    DeployFailed,
    /// Switched hosts were switched back because the rollout stopped.
    RolledBack,
    /// A `revert` finished.
    Reverted,
    RevertFailed,
    /// From the agents: an app restarted too often and was left errored.
    CrashLoop,
    /// From the agents: an instance is errored (it could not be started, or its release failed).
    Errored,
    /// From the agents: an instance passed `max_memory_restart` and was restarted.
    MemoryRestart,
    /// From the agents: a host went back by itself (its switch was never confirmed).
    AutoRevert,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 10] = [
        NotifyEvent::DeployStarted,
        NotifyEvent::DeploySucceeded,
        NotifyEvent::DeployFailed,
        NotifyEvent::RolledBack,
        NotifyEvent::Reverted,
        NotifyEvent::RevertFailed,
        NotifyEvent::CrashLoop,
        NotifyEvent::Errored,
        NotifyEvent::MemoryRestart,
        NotifyEvent::AutoRevert,
    ];

    /// As written in the file and in messages.
    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::DeployStarted => "deploy_started",
            NotifyEvent::DeploySucceeded => "deploy_succeeded",
            NotifyEvent::DeployFailed => "deploy_failed",
            NotifyEvent::RolledBack => "rolled_back",
            NotifyEvent::Reverted => "reverted",
            NotifyEvent::RevertFailed => "revert_failed",
            NotifyEvent::CrashLoop => "crash_loop",
            NotifyEvent::Errored => "errored",
            NotifyEvent::MemoryRestart => "memory_restart",
            NotifyEvent::AutoRevert => "auto_revert",
        }
    }

    fn from_name(name: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.name() == name)
    }
}

static TARGET_SCHEMA: Schema = Schema {
    keys: &[
        KeyDef::new("url"),
        KeyDef::new("format"),
        KeyDef::new("events"),
        KeyDef::new("timeout"),
    ],
    unimplemented: &[],
};

/// `notify`: an object, a URL, or an array of either.
pub(crate) fn read_notify(r: &mut Report, v: &Value, f: &FieldPath) -> Vec<NotifyTarget> {
    match &v.kind {
        Kind::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| read_target(r, item, &f.index(i)))
            .collect(),
        Kind::Null => Vec::new(),
        _ => read_target(r, v, f).into_iter().collect(),
    }
}

fn read_target(r: &mut Report, v: &Value, f: &FieldPath) -> Option<NotifyTarget> {
    match &v.kind {
        Kind::Str(_) => {
            let url = read_url(r, v, f)?;
            Some(NotifyTarget {
                url,
                format: NotifyFormat::Json,
                events: NotifyEvent::ALL.to_vec(),
                timeout: DEFAULT_TIMEOUT,
            })
        }
        Kind::Map(entries) => {
            let mut url = None;
            let mut format = Some(NotifyFormat::Json);
            let mut events = Some(NotifyEvent::ALL.to_vec());
            let mut timeout = Some(DEFAULT_TIMEOUT);
            let selected = keys::select(r, &TARGET_SCHEMA, entries, f);
            for (key, entry) in &selected.entries {
                let field = f.key(&entry.key);
                match *key {
                    "url" => url = read_url(r, &entry.value, &field),
                    "format" => format = read_format(r, &entry.value, &field),
                    "events" => events = read_events(r, &entry.value, &field),
                    "timeout" => timeout = fields::duration(r, &entry.value, &field),
                    _ => {}
                }
            }
            if !selected.has("url") {
                r.error(
                    v,
                    f,
                    "missing required key `url`",
                    Some("add `url`: the webhook, e.g. \"https://ntfy.sh/acme-deploys\" or \"secret:SLACK_WEBHOOK\"".to_owned()),
                );
            }
            Some(NotifyTarget {
                url: url?,
                format: format?,
                events: events?,
                timeout: timeout?,
            })
        }
        _ => {
            r.expected(
                v,
                f,
                "a webhook URL or { \"url\", \"format\", \"events\" }",
                None,
            );
            None
        }
    }
}

fn read_url(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    let url = fields::text(r, v, f)?;
    let lower = url.to_ascii_lowercase();
    if crate::secrets::reference(&url).is_some()
        || lower.starts_with("http://")
        || lower.starts_with("https://")
    {
        Some(url)
    } else {
        r.error(
            v,
            f,
            "a webhook URL must start with http:// or https://",
            Some("or name a secret that holds it: \"secret:SLACK_WEBHOOK\"".to_owned()),
        );
        None
    }
}

fn read_format(r: &mut Report, v: &Value, f: &FieldPath) -> Option<NotifyFormat> {
    match v.as_str() {
        Some("json") => Some(NotifyFormat::Json),
        Some("slack") => Some(NotifyFormat::Slack),
        Some("ntfy") => Some(NotifyFormat::Ntfy),
        _ => {
            r.expected(v, f, "\"json\", \"slack\" or \"ntfy\"", None);
            None
        }
    }
}

fn read_events(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Vec<NotifyEvent>> {
    let names = fields::string_list(r, v, f)?;
    let known: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.name()).collect();
    let mut out = Vec::new();
    let mut ok = true;
    for (i, name) in names.iter().enumerate() {
        match NotifyEvent::from_name(name) {
            Some(e) if !out.contains(&e) => out.push(e),
            Some(_) => {}
            None => {
                let hint = suggestion_hint(name, known.iter().copied())
                    .unwrap_or_else(|| format!("one of {}", known.join(", ")));
                r.error(
                    v,
                    &f.index(i),
                    format!("`{name}` is not an event pmfleet notifies"),
                    Some(hint),
                );
                ok = false;
            }
        }
    }
    if ok && out.is_empty() {
        r.error(
            v,
            f,
            "names no event",
            Some("leave `events` out to be told about every event".to_owned()),
        );
        ok = false;
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    fn load(notify: &str) -> Result<crate::ecosystem::Ecosystem, String> {
        let text = format!(
            r#"{{"notify": {notify}, "deploy": {{"production": {{"host": "h", "repo": "r", "path": "/p", "ref": "main", "notify": "http://env.example/x"}}}}}}"#
        );
        crate::ecosystem::parse_str(
            &text,
            crate::ecosystem::Format::Json,
            "ecosystem.json".as_ref(),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn targets_of_every_shape() {
        use super::{NotifyEvent, NotifyFormat};
        let eco = load(
            r#"[{"url": "secret:HOOK", "format": "slack", "events": ["deploy_failed", "crash_loop"]},
                "https://ntfy.sh/t"]"#,
        )
        .unwrap();
        assert_eq!(eco.notify.len(), 2);
        assert_eq!(eco.notify[0].format, NotifyFormat::Slack);
        assert_eq!(
            eco.notify[0].events,
            [NotifyEvent::DeployFailed, NotifyEvent::CrashLoop]
        );
        assert_eq!(eco.notify[1].events.len(), NotifyEvent::ALL.len());
        let env = eco.environment("production").unwrap();
        assert_eq!(env.notify.len(), 1);
        assert_eq!(env.notify[0].url, "http://env.example/x");
    }

    #[test]
    fn mistakes_are_errors_with_hints() {
        let rows = [
            (
                r#"{"url": "ftp://x"}"#,
                "must start with http:// or https://",
            ),
            (
                r#"{"url": "http://x", "format": "teams"}"#,
                "\"json\", \"slack\" or \"ntfy\"",
            ),
            (
                r#"{"url": "http://x", "events": ["deploy_fail"]}"#,
                "deploy_failed",
            ),
            (r#"{"format": "json"}"#, "missing required key `url`"),
            ("42", "a webhook URL or"),
        ];
        for (notify, expected) in rows {
            let err = load(notify).unwrap_err();
            assert!(err.contains(expected), "{notify}: {err}");
        }
    }
}
