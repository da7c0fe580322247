//! App actions sent from the fleet views — a key in `monit`, a button on the dashboard — kept
//! in the audit trail as `pmfleet app` keeps its own: one record per action and host, saying
//! which view sent it and for whom (the dashboard's token holder, or the name and role of the
//! client certificate a browser signed in with).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pmfleet_shared::protocol::{Request, Response, Target, access};

use super::{AuditRecord, HostEntry};
use crate::agent::client::AgentError;
use crate::agent::sessions::FleetSessions;
use crate::agent::targets::AgentTarget;

/// Who acts from a view, and on which project.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `alice@laptop via monit`, `client:ops (deploy role) via dashboard`, …
    pub performer: String,
    /// How the view was started (`pmfleet monit production`), for the record's command.
    pub view: String,
    /// The ecosystem file the view reads.
    pub ecosystem: PathBuf,
}

/// The app a request acts on (`all` for every app; empty for requests on no app).
pub fn app_of(request: &Request) -> String {
    match request {
        Request::Reload { target }
        | Request::Restart { target }
        | Request::Stop { target }
        | Request::Delete { target } => match target {
            Target::App(name) => name.clone(),
            Target::All => "all".to_owned(),
        },
        Request::Scale { app, .. } => app.clone(),
        _ => String::new(),
    }
}

/// The record of `request` sent to `target` by `actor`, which ended as `outcome`.
pub fn record(
    actor: &Actor,
    target: &AgentTarget,
    request: &Request,
    outcome: &Result<Vec<String>, String>,
    started: String,
    took: Duration,
) -> AuditRecord {
    let app = app_of(request);
    let verb = access::op(request);
    let (result, message) = match outcome {
        Ok(messages) => ("ok", messages.join("; ")),
        Err(why) => ("failed", why.clone()),
    };
    AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        env: target.env.clone(),
        ecosystem: actor.ecosystem.clone(),
        action: format!("app {verb} {app}"),
        command: format!("{}: {verb} {app} on {}", actor.view, target.label()),
        performer: actor.performer.clone(),
        git_ref: None,
        sha: None,
        release: None,
        hosts: vec![HostEntry {
            host: target.label(),
            outcome: result.to_owned(),
            message: crate::notify::message::one_line(&message),
        }],
        outcome: if outcome.is_ok() {
            "succeeded"
        } else {
            "failed"
        }
        .to_owned(),
        started,
        duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
    }
}

/// Sends `request` to host `host` of `sessions` on a connection of its own (a verb may wait
/// for new instances to be ready: up to two minutes), and adds the action to the audit trail
/// of the host's environment — also when it failed ([`keep`]); the action's answer is
/// returned either way.
pub async fn send(
    sessions: &FleetSessions,
    host: usize,
    request: &Request,
    actor: &Actor,
) -> Result<Response, AgentError> {
    let Some(target) = sessions.targets.get(host).cloned() else {
        return Err(AgentError::Refused(format!("no host #{host}")));
    };
    let started = crate::deploy::now_rfc3339();
    let clock = Instant::now();
    let answer = sessions
        .client
        .request(
            &target.host,
            target.port,
            &target.via,
            request,
            Some(Duration::from_secs(120)),
        )
        .await;
    let outcome = match &answer {
        Ok(Response::Done { messages }) => Ok(messages.clone()),
        Ok(other) => Ok(vec![format!("{other:?}")]),
        Err(e) => Err(e.to_string()),
    };
    keep(&record(
        actor,
        &target,
        request,
        &outcome,
        started,
        clock.elapsed(),
    ));
    answer
}

/// The record of `request` to `target`, refused by the view itself before it was sent
/// (`why`: the role it would need): outcome `refused`.
pub fn refused(actor: &Actor, target: &AgentTarget, request: &Request, why: &str) -> AuditRecord {
    let mut r = record(
        actor,
        target,
        request,
        &Err(why.to_owned()),
        crate::deploy::now_rfc3339(),
        Duration::ZERO,
    );
    r.outcome = "refused".into();
    for host in &mut r.hosts {
        host.outcome = "refused".into();
    }
    r
}

/// Adds `kept` to the audit trail of its environment; one that cannot be written is said on
/// stderr.
pub fn keep(kept: &AuditRecord) {
    let path = super::path_for(&kept.env);
    if let Err(e) = super::append(&path, kept) {
        eprintln!(
            "warning: could not add to the audit trail {}: {e}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::route::Via;
    use pmfleet_shared::protocol::ScaleTo;

    #[test]
    fn a_view_s_action_is_recorded_with_its_view_and_performer() {
        let actor = Actor {
            performer: "client:ops (deploy role) via dashboard".into(),
            view: "pmfleet dashboard".into(),
            ecosystem: PathBuf::from("/srv/project/ecosystem.config.js"),
        };
        let target = AgentTarget {
            env: "production".into(),
            name: "web-1".into(),
            host: "10.0.0.1".into(),
            port: 7070,
            via: Via::Direct,
        };
        // (request, outcome, action, command, host outcome, message, record outcome)
        let table = [
            (
                Request::Reload {
                    target: Target::App("web".into()),
                },
                Ok(vec!["web reloaded".to_string()]),
                "app reload web",
                "pmfleet dashboard: reload web on web-1",
                "ok",
                "web reloaded",
                "succeeded",
            ),
            (
                Request::Stop {
                    target: Target::All,
                },
                Err("refused: role read may not stop".to_string()),
                "app stop all",
                "pmfleet dashboard: stop all on web-1",
                "failed",
                "refused: role read may not stop",
                "failed",
            ),
            (
                Request::Scale {
                    app: "api".into(),
                    to: ScaleTo::Exactly(3),
                },
                Ok(vec![]),
                "app scale api",
                "pmfleet dashboard: scale api on web-1",
                "ok",
                "",
                "succeeded",
            ),
        ];
        for (request, outcome, action, command, host, message, overall) in table {
            let r = record(
                &actor,
                &target,
                &request,
                &outcome,
                "2026-12-01T15:00:00Z".into(),
                Duration::from_millis(1500),
            );
            assert_eq!(r.env, "production");
            assert_eq!(r.ecosystem, actor.ecosystem);
            assert_eq!(r.action, action);
            assert_eq!(r.command, command);
            assert_eq!(r.performer, actor.performer);
            assert_eq!(r.hosts.len(), 1);
            assert_eq!(r.hosts[0].host, "web-1");
            assert_eq!(r.hosts[0].outcome, host);
            assert_eq!(r.hosts[0].message, message);
            assert_eq!(r.outcome, overall);
            assert_eq!(r.duration_ms, 1500);
        }
        let request = Request::Stop {
            target: Target::App("web".into()),
        };
        let r = refused(&actor, &target, &request, "needs the admin role");
        assert_eq!(
            (r.action.as_str(), r.outcome.as_str()),
            ("app stop web", "refused")
        );
        assert_eq!(r.hosts[0].outcome, "refused");
        assert_eq!(r.hosts[0].message, "needs the admin role");
    }
}
