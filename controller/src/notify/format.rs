//! A [`Message`] as each kind of webhook takes it: generic JSON (every field), Slack's
//! incoming-webhook `{"text"}` (also Mattermost, Rocket.Chat, Discord's `/slack` endpoint),
//! and ntfy's plain body with `Title`, `Priority` and `Tags` headers. Pure.

use pmfleet_shared::ecosystem::{NotifyEvent, NotifyFormat};

use super::message::Message;

/// What is POSTed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub content_type: &'static str,
    /// Extra headers (ntfy's).
    pub headers: Vec<(&'static str, String)>,
    pub bytes: Vec<u8>,
}

/// Whether an event is bad news (it raises ntfy's priority and picks the emoji).
fn bad(event: NotifyEvent) -> bool {
    !matches!(
        event,
        NotifyEvent::DeployStarted | NotifyEvent::DeploySucceeded | NotifyEvent::Reverted
    )
}

pub fn body(format: NotifyFormat, m: &Message) -> Body {
    match format {
        NotifyFormat::Json => Body {
            content_type: "application/json",
            headers: Vec::new(),
            bytes: serde_json::to_vec(m).unwrap_or_default(),
        },
        NotifyFormat::Slack => {
            let mark = match m.event {
                NotifyEvent::DeployStarted => ":rocket:",
                NotifyEvent::DeploySucceeded | NotifyEvent::Reverted => ":white_check_mark:",
                _ => ":x:",
            };
            let mut text = format!("{mark} *{}*", m.title());
            for line in m.details() {
                text.push_str(&format!("\n{line}"));
            }
            Body {
                content_type: "application/json",
                headers: Vec::new(),
                bytes: serde_json::to_vec(&serde_json::json!({ "text": text })).unwrap_or_default(),
            }
        }
        NotifyFormat::Ntfy => {
            let (priority, tag) = if bad(m.event) {
                ("high", "x")
            } else {
                ("default", "white_check_mark")
            };
            Body {
                content_type: "text/plain; charset=utf-8",
                headers: vec![
                    // Header values are ASCII: the title's dash becomes a plain one.
                    ("Title", ascii(&m.title())),
                    ("Priority", priority.to_owned()),
                    ("Tags", format!("{tag},pmfleet,{}", m.event.name())),
                ],
                bytes: m.details().join("\n").into_bytes(),
            }
        }
    }
}

fn ascii(text: &str) -> String {
    text.replace('—', "-")
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(event: NotifyEvent) -> Message {
        let mut m = Message::new(event, "production", "tester");
        m.git_ref = Some("main".into());
        m.sha = Some("abcdef0123456789".into());
        m
    }

    #[test]
    fn every_format_carries_the_title() {
        let m = message(NotifyEvent::DeploySucceeded);
        let json: serde_json::Value =
            serde_json::from_slice(&body(NotifyFormat::Json, &m).bytes).unwrap();
        assert_eq!(json["event"], "deploy_succeeded");
        assert_eq!(json["env"], "production");

        let slack: serde_json::Value =
            serde_json::from_slice(&body(NotifyFormat::Slack, &m).bytes).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(
            text.starts_with(":white_check_mark: *production: deploy succeeded — main at abcdef0*"),
            "{text}"
        );
        assert!(text.contains("\nby tester"), "{text}");

        let ntfy = body(NotifyFormat::Ntfy, &message(NotifyEvent::DeployFailed));
        assert_eq!(ntfy.content_type, "text/plain; charset=utf-8");
        let header = |name: &str| {
            ntfy.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(
            header("Title"),
            "production: deploy failed - main at abcdef0"
        );
        assert_eq!(header("Priority"), "high");
        assert!(header("Tags").contains("deploy_failed"));
        assert_eq!(String::from_utf8(ntfy.bytes).unwrap(), "by tester");
    }

    #[test]
    fn a_host_gone_back_by_itself_is_bad_news_in_every_format() {
        let mut m = Message::new(NotifyEvent::AutoRevert, "production", "pmfleet-agent");
        m.reason = Some("went back by itself from release b to a in /srv/app: no heartbeat".into());
        let json: serde_json::Value =
            serde_json::from_slice(&body(NotifyFormat::Json, &m).bytes).unwrap();
        assert_eq!(json["event"], "auto_revert");
        assert!(
            json["reason"]
                .as_str()
                .unwrap()
                .contains("from release b to a")
        );
        let slack: serde_json::Value =
            serde_json::from_slice(&body(NotifyFormat::Slack, &m).bytes).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(
            text.starts_with(":x: *production: went back by itself*")
                && text.contains("reason: went back by itself from release b to a"),
            "{text}"
        );
        let ntfy = body(NotifyFormat::Ntfy, &m);
        assert!(ntfy.headers.contains(&("Priority", "high".to_owned())));
        assert!(
            ntfy.headers
                .iter()
                .any(|(n, v)| *n == "Tags" && v.ends_with(",auto_revert"))
        );
        assert!(
            String::from_utf8(ntfy.bytes)
                .unwrap()
                .contains("from release b to a")
        );
    }
}
