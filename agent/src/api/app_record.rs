//! The hosts' record of app commands: when a client certificate over mutual TLS, or a user
//! on the host through the control socket (`pmfleet-agent restart web` typed there, or run by
//! a hook), has the agent reload, restart, stop, delete, scale or put an app in maintenance,
//! and that app runs from a release of a deploy root `setup` registered, one JSON line goes to
//! that root's `.pmfleet/audit.jsonl` — the shape of the controller's history records (action
//! `app`, the command in `message`, `who` the certificate's name and role, or `host user
//! alice (local)`, when, the outcome) — so `pmfleet history` sees it whoever sent it.
//!
//! Small and bounded: [`entry`] is pure; a line is at most [`MAX_LINE`] bytes (the answer is
//! cut to one line first), written with one `write` in append mode after ending a torn last
//! line; nothing from the apps' environment is written, only the command and the agent's
//! answer, redacted all the same.

use std::path::{Path, PathBuf};

use pmfleet_shared::protocol::{Request, Response, Target};

use super::deploy_roots::{AppPaths, apps_of, apps_of_supervisor};
use super::release_gate::registered_in;
use crate::supervisor::Supervisor;

/// The longest line written (a longer answer is cut).
pub const MAX_LINE: usize = 2048;

/// What an app command is, as the controller's record names it (`restart web`, `scale api`,
/// `maintenance on web`), and the app it is about (`None`: every app). `None` for any other
/// request.
pub fn command(req: &Request) -> Option<(String, Option<String>)> {
    let named = |verb: &str, target: &Target| match target {
        Target::App(app) => (format!("{verb} {app}"), Some(app.clone())),
        Target::All => (format!("{verb} all"), None),
    };
    Some(match req {
        Request::Reload { target } => named("reload", target),
        Request::Restart { target } => named("restart", target),
        Request::Stop { target } => named("stop", target),
        Request::Delete { target } => named("delete", target),
        Request::Scale { app, .. } => (format!("scale {app}"), Some(app.clone())),
        Request::Maintenance(m) => named(
            if m.on {
                "maintenance on"
            } else {
                "maintenance off"
            },
            &m.target,
        ),
        _ => return None,
    })
}

/// The record's line: action `app`, `message` the command and what the agent answered.
pub fn entry(id: &str, command: &str, who: &str, when: &str, resp: &Response) -> String {
    let (outcome, said) = match resp {
        Response::Done { messages } => ("success", messages.join("; ")),
        Response::Error(e) => ("failed", e.message.clone()),
        _ => ("success", String::new()),
    };
    let said = said.lines().next().unwrap_or("").to_string();
    let mut message = if said.is_empty() {
        format!("app {command}")
    } else {
        format!("app {command}: {said}")
    };
    let line = |message: &str| {
        serde_json::json!({
            "id": id, "action": "app", "release": "", "sha": "", "ref": "",
            "who": who, "when": when, "outcome": outcome, "message": message,
        })
        .to_string()
    };
    let mut text = line(&message);
    while text.len() > MAX_LINE && !message.is_empty() {
        let keep = message.len().saturating_sub(text.len() - MAX_LINE + 3);
        let mut cut = keep.min(message.len());
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
        text = line(&message);
    }
    pmfleet_shared::redact::redact(&text).into_owned()
}

/// The registered roots whose releases `app` (every app, for `None`) runs from.
pub fn roots_of(agent_home: &Path, apps: &[AppPaths], app: Option<&str>) -> Vec<PathBuf> {
    registered_in(agent_home)
        .into_iter()
        .filter(|root| {
            let mut bases = vec![root.join("releases")];
            if let Ok(real) = std::fs::canonicalize(root) {
                bases.push(real.join("releases"));
            }
            apps_of(&bases, apps)
                .iter()
                .any(|a| app.is_none_or(|name| a.name == name))
        })
        .collect()
}

/// A record's id: the agent's pid and the time in nanoseconds, unique on the host.
pub fn record_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("app-{}-{nanos}", std::process::id())
}

pub use pmfleet_shared::display::now_rfc3339;

/// The roots an app command is about, read before it runs (a deleted app is gone after).
pub fn roots_for(sup: &Supervisor, app: Option<&str>) -> Vec<PathBuf> {
    roots_of(sup.home().root(), &apps_of_supervisor(sup), app)
}

/// Appends `line` to `<root>/.pmfleet/audit.jsonl` in one write, ending a torn last line
/// first; never follows a link in place of the file.
pub fn append(root: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(root.join(".pmfleet/audit.jsonl"))?;
    crate::home::append_whole_line(&mut f, line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::release_gate::ROOTS_FILE;
    use pmfleet_shared::protocol::{ApiError, ErrorKind, MaintenanceRequest, ScaleTo};

    #[test]
    fn app_commands_are_named_as_the_controller_names_them() {
        let app = |n: &str| Target::App(n.into());
        let rows = [
            (
                Request::Restart { target: app("web") },
                Some(("restart web", Some("web"))),
            ),
            (
                Request::Reload {
                    target: Target::All,
                },
                Some(("reload all", None)),
            ),
            (
                Request::Stop { target: app("web") },
                Some(("stop web", Some("web"))),
            ),
            (
                Request::Delete { target: app("api") },
                Some(("delete api", Some("api"))),
            ),
            (
                Request::Scale {
                    app: "api".into(),
                    to: ScaleTo::Exactly(3),
                },
                Some(("scale api", Some("api"))),
            ),
            (
                Request::Maintenance(Box::new(MaintenanceRequest {
                    target: app("web"),
                    on: true,
                    message: None,
                })),
                Some(("maintenance on web", Some("web"))),
            ),
            (Request::List, None),
            (Request::Status, None),
        ];
        for (req, want) in rows {
            let got = command(&req);
            let want = want.map(|(c, a)| (c.to_string(), a.map(str::to_string)));
            assert_eq!(got, want, "{req:?}");
        }
    }

    #[test]
    fn a_record_says_who_what_and_how_it_ended_in_one_bounded_line() {
        let done = Response::Done {
            messages: vec!["restarted web (1 instance)".into()],
        };
        let line = entry(
            "i",
            "restart web",
            "ci (deploy)",
            "2026-01-01T00:00:00Z",
            &done,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["action"], "app");
        assert_eq!(v["who"], "ci (deploy)");
        assert_eq!(v["outcome"], "success");
        assert_eq!(v["message"], "app restart web: restarted web (1 instance)");
        let failed = Response::Error(ApiError {
            kind: ErrorKind::Failed,
            message: format!("no app {}\nsecond line", "x".repeat(10_000)),
        });
        let line = entry("i", "stop x", "ci (admin)", "t", &failed);
        assert!(
            line.len() <= MAX_LINE && !line.contains('\n'),
            "{}",
            line.len()
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["outcome"], "failed");
        assert!(v["message"].as_str().unwrap().ends_with('…'));
    }

    #[test]
    fn only_the_roots_an_app_runs_from_get_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for root in [&a, &b] {
            std::fs::create_dir_all(root.join("releases/20260101-000000-001")).unwrap();
        }
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join(ROOTS_FILE),
            format!("{}\n{}\n", a.display(), b.display()),
        )
        .unwrap();
        let apps = [AppPaths {
            name: "web".into(),
            paths: vec![a.join("releases/20260101-000000-001")],
            online: 1,
            total: 1,
        }];
        assert_eq!(
            roots_of(&home, &apps, Some("web")),
            std::slice::from_ref(&a)
        );
        assert_eq!(roots_of(&home, &apps, None), std::slice::from_ref(&a));
        assert!(roots_of(&home, &apps, Some("api")).is_empty());
        std::fs::create_dir_all(a.join(".pmfleet")).unwrap();
        std::fs::write(a.join(".pmfleet/audit.jsonl"), "{\"torn\":").unwrap();
        append(&a, "{\"id\":\"x\"}").unwrap();
        let text = std::fs::read_to_string(a.join(".pmfleet/audit.jsonl")).unwrap();
        assert_eq!(text, "{\"torn\":\n{\"id\":\"x\"}\n");
    }
}
