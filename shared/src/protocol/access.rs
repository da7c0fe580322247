//! Which role a request needs, decided from the request alone: the one table the agent checks
//! every remote request against and the dashboard checks a certificate's actions against
//! before sending them. Pure, tested row by row (the agent's `api::access` tests every
//! request against it, as each role).
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
//! is the host's business (setup does them over SSH).

use super::Request;
use crate::tls::Role;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A remote client of this role or a greater one.
    Role(Role),
    /// The local socket only.
    Local,
}

/// What `req` needs (the table in the module documentation).
pub fn need(req: &Request) -> Need {
    match req {
        Request::Ping
        | Request::Status
        | Request::Metrics
        | Request::List
        | Request::Show { .. }
        | Request::Logs { .. }
        | Request::Events { .. } => Need::Role(Role::Read),
        Request::ApplyRelease(_)
        | Request::WatchRelease(_)
        | Request::Reload { .. }
        | Request::Restart { .. } => Need::Role(Role::Deploy),
        Request::Stop { .. }
        | Request::Delete { .. }
        | Request::Scale { .. }
        | Request::Flush { .. }
        | Request::ReloadLogs
        | Request::Save
        | Request::Resurrect
        | Request::Maintenance(_) => Need::Role(Role::Admin),
        Request::Start(_)
        | Request::ApplyDir(_)
        | Request::Kill
        | Request::ReloadTls
        | Request::Upgrade { .. } => Need::Local,
    }
}

/// Whether a remote client with `role` may send `req`.
pub fn allows(role: Role, req: &Request) -> bool {
    matches!(need(req), Need::Role(needed) if role >= needed)
}

/// The request's name on the wire, for messages.
pub fn op(req: &Request) -> &'static str {
    match req {
        Request::Ping => "ping",
        Request::Start(_) => "start",
        Request::Stop { .. } => "stop",
        Request::Restart { .. } => "restart",
        Request::Reload { .. } => "reload",
        Request::Delete { .. } => "delete",
        Request::Scale { .. } => "scale",
        Request::List => "list",
        Request::Show { .. } => "show",
        Request::Logs { .. } => "logs",
        Request::Events { .. } => "events",
        Request::Flush { .. } => "flush",
        Request::ReloadLogs => "reload_logs",
        Request::Save => "save",
        Request::Resurrect => "resurrect",
        Request::Kill => "kill",
        Request::Status => "status",
        Request::Metrics => "metrics",
        Request::ApplyRelease(_) => "apply_release",
        Request::WatchRelease(_) => "watch_release",
        Request::Maintenance(_) => "maintenance",
        Request::ApplyDir(_) => "apply_dir",
        Request::ReloadTls => "reload_tls",
        Request::Upgrade { .. } => "upgrade",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ScaleTo, Target};

    #[test]
    fn the_dashboards_actions_need_their_row_of_the_table() {
        let app = || Target::App("web".into());
        // request: allowed for (read, deploy, admin)
        let table = [
            (Request::Status, [true, true, true]),
            (
                Request::Logs {
                    app: None,
                    lines: 1,
                    follow: true,
                },
                [true, true, true],
            ),
            (Request::Reload { target: app() }, [false, true, true]),
            (Request::Restart { target: app() }, [false, true, true]),
            (Request::Stop { target: app() }, [false, false, true]),
            (
                Request::Scale {
                    app: "web".into(),
                    to: ScaleTo::Up(1),
                },
                [false, false, true],
            ),
            (Request::Kill, [false, false, false]),
            (Request::ReloadTls, [false, false, false]),
        ];
        for (req, want) in table {
            for (role, want) in Role::ALL.into_iter().zip(want) {
                assert_eq!(allows(role, &req), want, "{} as {role}", op(&req));
            }
        }
        assert_eq!(need(&Request::Kill), Need::Local);
        assert_eq!(op(&Request::ReloadLogs), "reload_logs");
    }
}
