//! Who may ask what: every request is checked against where it came from and, over mutual
//! TLS, against the role its client certificate carries (see
//! [`pmfleet_shared::tls::Role`]). The decision is one pure function over a table
//! ([`pmfleet_shared::protocol::access`], shared with the controller's dashboard), tested
//! row by row; the session asks it before every request.
//!
//! | request | `read` | `deploy` | `admin` | local socket |
//! |---|---|---|---|---|
//! | `ping`, `status`, `metrics`, `list`, `show`, `logs`, `events` | yes | yes | yes | yes |
//! | `apply_release`, `watch_release`, `reload`, `restart` | | yes | yes | yes |
//! | `stop`, `delete`, `scale`, `flush`, `reload_logs`, `save`, `resurrect`, `maintenance` | | | yes | yes |
//! | `start`, `apply_dir`, `kill`, `reload_tls`, `upgrade` | | | | yes |
//!
//! The last row is the local socket's alone, whatever the role: `start` and `apply_dir` take
//! a directory, a command or an environment from their frame; `kill` would end the daemon
//! with nothing to start it again; `reload_tls` and `upgrade` change the agent itself, which
//! is the host's business (setup does them over SSH). A remote `apply_release` names a
//! release SSH put on the host and nothing else ([`super::release_gate`]).

use pmfleet_shared::protocol::{ApiError, ErrorKind, Request};
use pmfleet_shared::tls::Role;

/// The table itself is shared with the controller's dashboard, which checks a client
/// certificate's actions against it before sending them.
pub use pmfleet_shared::protocol::access::{Need, need, op};

/// Which endpoint a request arrived on, and with what authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The control socket: the agent's own user on this host. Everything is accepted.
    Local,
    /// A client with a fleet certificate, over mutual TLS, and the role it carries.
    Remote(Role),
    /// A client whose fleet certificate carries no role (made by a pmfleet from before
    /// roles): it may do what `read` may, and a refusal says how to give the controller's
    /// certificate its `admin` role (`pmfleet ca init` again).
    Unmarked,
}

impl Origin {
    /// Refuse what this origin may not ask (a `forbidden` error saying why and what would).
    pub fn check(self, req: &Request) -> Result<(), ApiError> {
        let role = match self {
            Origin::Local => return Ok(()),
            Origin::Remote(role) => role,
            Origin::Unmarked => Role::Read,
        };
        let op = op(req);
        let message = match need(req) {
            Need::Role(needed) if role >= needed => return Ok(()),
            Need::Role(needed) if self == Origin::Unmarked => format!(
                "`{op}` needs a certificate with the `{needed}` role (or `admin`); this one carries no role (a pmfleet from before certificate roles made it), so it counts as `read`: on the controller machine that holds the fleet CA, run `pmfleet ca init` again, which gives the controller's certificate the `admin` role (a CI runner gets a new one from `pmfleet ca issue NAME`)"
            ),
            Need::Role(needed) => format!(
                "`{op}` needs a certificate with the `{needed}` role (or `admin`); this one's role is `{role}` (see `pmfleet ca issue --role`)"
            ),
            Need::Local => format!(
                "`{op}` is accepted on the agent's local socket only (run `pmfleet-agent` on the host)"
            ),
        };
        Err(ApiError {
            kind: ErrorKind::Forbidden,
            message,
        })
    }

    /// The role as a record names it: `admin`, `deploy`, `read`, `no role` (unmarked),
    /// `local`.
    pub fn role_name(self) -> String {
        match self {
            Origin::Local => "local".to_string(),
            Origin::Remote(role) => role.to_string(),
            Origin::Unmarked => "no role".to_string(),
        }
    }

    /// Whether answers to this origin must have their env values redacted: every remote one.
    pub fn redacts(self) -> bool {
        matches!(self, Origin::Remote(_) | Origin::Unmarked)
    }

    /// The origin of a remote client whose certificate names `role` (or none).
    pub fn remote(role: Option<Role>) -> Origin {
        role.map_or(Origin::Unmarked, Origin::Remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmfleet_shared::protocol::{
        ApplyDir, ApplyRelease, MaintenanceRequest, ScaleTo, ScriptStart, StartRequest,
        StartSource, Target, WatchRelease,
    };

    /// One request of every kind, so the table below cannot miss one.
    fn every_request() -> Vec<Request> {
        let all = || Target::All;
        vec![
            Request::Ping,
            Request::Start(Box::new(StartRequest {
                source: StartSource::Script(ScriptStart::default()),
                env_name: None,
                cwd: "/".into(),
                env: Default::default(),
                only: None,
            })),
            Request::Stop { target: all() },
            Request::Restart { target: all() },
            Request::Reload { target: all() },
            Request::Delete { target: all() },
            Request::Scale {
                app: "api".into(),
                to: ScaleTo::Up(1),
            },
            Request::List,
            Request::Show { app: "api".into() },
            Request::Logs {
                app: None,
                lines: 10,
                follow: true,
            },
            Request::Events { app: None },
            Request::Flush { app: None },
            Request::ReloadLogs,
            Request::Save,
            Request::Resurrect,
            Request::Kill,
            Request::Status,
            Request::Metrics,
            Request::ApplyRelease(Box::new(ApplyRelease {
                root: "/srv/app".into(),
                release: "1".into(),
                timeout_ms: 0,
            })),
            Request::WatchRelease(Box::new(WatchRelease {
                root: "/srv/app".into(),
                release: "1".into(),
                period_ms: 1000,
            })),
            Request::Maintenance(Box::new(MaintenanceRequest {
                target: all(),
                on: true,
                message: None,
            })),
            Request::ApplyDir(Box::new(ApplyDir {
                release_dir: "/tmp/evil".into(),
                ecosystem: None,
                env_name: None,
                env: Default::default(),
                timeout_ms: 0,
                secrets_file: None,
            })),
            Request::ReloadTls,
            Request::Upgrade {
                binary: "/tmp/pmfleet-agent".into(),
                handover: 1,
            },
        ]
    }

    #[test]
    fn every_role_may_do_exactly_its_share() {
        // op: allowed for (read, deploy, admin)
        let table = [
            ("ping", [true, true, true]),
            ("status", [true, true, true]),
            ("metrics", [true, true, true]),
            ("list", [true, true, true]),
            ("show", [true, true, true]),
            ("logs", [true, true, true]),
            ("events", [true, true, true]),
            ("apply_release", [false, true, true]),
            ("watch_release", [false, true, true]),
            ("maintenance", [false, false, true]),
            ("reload", [false, true, true]),
            ("restart", [false, true, true]),
            ("stop", [false, false, true]),
            ("delete", [false, false, true]),
            ("scale", [false, false, true]),
            ("flush", [false, false, true]),
            ("reload_logs", [false, false, true]),
            ("save", [false, false, true]),
            ("resurrect", [false, false, true]),
            ("start", [false, false, false]),
            ("apply_dir", [false, false, false]),
            ("kill", [false, false, false]),
            ("reload_tls", [false, false, false]),
            ("upgrade", [false, false, false]),
        ];
        let requests = every_request();
        assert_eq!(requests.len(), table.len());
        for req in &requests {
            let op = op(req);
            let (_, allowed) = table
                .iter()
                .find(|(name, _)| *name == op)
                .unwrap_or_else(|| panic!("{op} is not in the table"));
            assert!(Origin::Local.check(req).is_ok(), "{op}: local");
            let unmarked = Origin::Unmarked.check(req);
            assert_eq!(
                unmarked.is_ok(),
                allowed[0],
                "{op} without a role: {unmarked:?}"
            );
            for (role, allowed) in Role::ALL.into_iter().zip(allowed) {
                let got = Origin::Remote(role).check(req);
                assert_eq!(got.is_ok(), *allowed, "{op} as {role}: {got:?}");
                if let Err(e) = got {
                    assert_eq!(e.kind, ErrorKind::Forbidden);
                    assert!(e.message.contains(op), "{}", e.message);
                }
            }
        }
    }

    #[test]
    fn refusals_say_what_would_be_accepted() {
        let stop = Request::Stop {
            target: Target::All,
        };
        let e = Origin::Remote(Role::Deploy).check(&stop).unwrap_err();
        assert!(e.message.contains("`admin` role"), "{}", e.message);
        assert!(e.message.contains("role is `deploy`"), "{}", e.message);
        let e = Origin::Remote(Role::Admin)
            .check(&Request::Kill)
            .unwrap_err();
        assert!(e.message.contains("local socket only"), "{}", e.message);
        assert!(Origin::Remote(Role::Read).redacts());
        assert!(Origin::Unmarked.redacts());
        assert!(!Origin::Local.redacts());
    }

    #[test]
    fn a_certificate_without_a_role_is_told_to_run_ca_init_again() {
        assert_eq!(Origin::remote(None), Origin::Unmarked);
        assert_eq!(
            Origin::remote(Some(Role::Deploy)),
            Origin::Remote(Role::Deploy)
        );
        let apply = Request::ApplyRelease(Box::new(ApplyRelease {
            root: "/srv/app".into(),
            release: "1".into(),
            timeout_ms: 0,
        }));
        let e = Origin::Unmarked.check(&apply).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Forbidden);
        for said in [
            "carries no role",
            "counts as `read`",
            "run `pmfleet ca init` again",
        ] {
            assert!(e.message.contains(said), "{said}: {}", e.message);
        }
        // A certificate with the `read` role is not told so: it was made that way.
        let e = Origin::Remote(Role::Read).check(&apply).unwrap_err();
        assert!(!e.message.contains("ca init"), "{}", e.message);
        assert!(Origin::Unmarked.check(&Request::Status).is_ok());
    }
}
