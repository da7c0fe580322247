//! Which readiness signals apply to a freshly spawned instance: a pure decision from its spec
//! and whether the agent holds a listening socket for it. The slot lifecycle (`slots`) binds
//! what the plan asks for and [`super::ready`] waits on it.
//!
//! Readiness is decided by the new instance itself, never by something the old instances
//! could answer for it:
//!
//! - the app's own word (`wait_ready`): sd_notify `READY=1` on its `NOTIFY_SOCKET`, or
//!   `process.send('ready')` through the Node preload;
//! - the Node preload's `READY=1` once the app's `listen()` took the inherited socket (Node
//!   apps in cluster mode with a socket);
//! - a probe (`healthcheck` with a `port`) — but only where it reaches this instance alone:
//!   when the app listens on its own port (fork mode, where the old process is stopped first).
//!   In cluster mode the probe goes through the shared socket, which the agent itself holds and
//!   the old instances answer on: it proves the app as a whole, so it is checked once every
//!   old instance of a reload is gone ([`ReadinessPlan::app_probe`]), never as this instance's
//!   signal;
//! - with no signal of its own: `NOTIFY_SOCKET` is still offered, and an sd_notify `READY=1`
//!   sent unasked counts; without it the instance is ready when alive after `listen_timeout`,
//!   which is said plainly in the reload's message ([`ReadinessPlan::per_instance`] is false).
//!
//! Whatever the signal, the instance must then stay up through its stability window
//! (`min_uptime`, PM2's own measure of a stable run) before the old one is stopped: a release
//! that answers once and dies is not ready.

use std::time::Duration;

use pmfleet_shared::protocol::AppSpec;

/// What the instance's own process reports, on the notify sockets bound for that spawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnSignal {
    /// `wait_ready`: the app says `READY=1` itself.
    AppReady,
    /// The Node preload says `READY=1` when the app's `listen()` got the shared socket.
    NodeListen,
    /// No signal is required, but `NOTIFY_SOCKET` is offered: an app that speaks sd_notify
    /// unasked (`READY=1`) proves its readiness by it; one that does not is ready when alive
    /// after `listen_timeout`.
    Offered,
}

/// A readiness probe of the app's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub port: u16,
    /// `Some(path)`: HTTP GET expecting 2xx/3xx; `None`: a TCP connect.
    pub http_path: Option<String>,
}

/// The signals one spawn waits for, in order: its own signal, then the probe that reaches
/// it, then the stability window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessPlan {
    pub own: Option<OwnSignal>,
    /// A probe that only this instance can answer (the app listens on its own port).
    pub probe: Option<Probe>,
    /// A probe through the shared socket: checked for the app as a whole once no old
    /// instance is left to answer it.
    pub app_probe: Option<Probe>,
    /// How long the instance must stay up after it is ready.
    pub stable_for: Duration,
}

impl ReadinessPlan {
    /// No signal is required: being alive after `listen_timeout` is enough (an offered
    /// `READY=1` still counts when it comes).
    pub fn alive_after_timeout(&self) -> bool {
        matches!(self.own, None | Some(OwnSignal::Offered)) && self.probe.is_none()
    }

    /// The instance must prove its readiness itself (its own READY, or a probe only it
    /// answers).
    pub fn per_instance(&self) -> bool {
        !self.alive_after_timeout()
    }
}

/// The signals that apply to an instance of `spec`; `has_listener`: the agent holds the
/// app's listening socket (cluster mode with a port) and hands it to the instance.
pub fn plan(spec: &AppSpec, has_listener: bool) -> ReadinessPlan {
    let own = if spec.wait_ready {
        Some(OwnSignal::AppReady)
    } else if spec.node && has_listener {
        Some(OwnSignal::NodeListen)
    } else {
        Some(OwnSignal::Offered)
    };
    let probe = match (&spec.healthcheck, spec.port) {
        (Some(hc), Some(port)) => Some(Probe {
            port,
            http_path: probe_kind(hc),
        }),
        _ => None,
    };
    let (probe, app_probe) = if has_listener {
        (None, probe)
    } else {
        (probe, None)
    };
    ReadinessPlan {
        own,
        probe,
        app_probe,
        stable_for: Duration::from_millis(spec.min_uptime_ms),
    }
}

/// What `healthcheck` asks for: `tcp` (`None`) or an HTTP path.
pub fn probe_kind(healthcheck: &str) -> Option<String> {
    if healthcheck.eq_ignore_ascii_case("tcp") {
        None
    } else if healthcheck.starts_with('/') {
        Some(healthcheck.to_string())
    } else {
        Some(format!("/{healthcheck}"))
    }
}

#[cfg(test)]
mod tests {
    use pmfleet_shared::protocol::ExecModeSpec;

    use super::*;

    fn spec(f: impl FnOnce(&mut AppSpec)) -> AppSpec {
        let app = pmfleet_shared::ecosystem::App::from_script("/bin/sh");
        let mut s = super::super::spec::resolve(&app, "/".as_ref(), &Default::default(), None)
            .expect("a script app resolves");
        f(&mut s);
        s
    }

    fn http(port: u16, path: &str) -> Option<Probe> {
        Some(Probe {
            port,
            http_path: Some(path.to_string()),
        })
    }

    fn tcp(port: u16) -> Option<Probe> {
        Some(Probe {
            port,
            http_path: None,
        })
    }

    #[test]
    fn plans() {
        use OwnSignal::*;
        type Row = (
            &'static str,
            AppSpec,
            bool,
            Option<OwnSignal>,
            Option<Probe>,
            Option<Probe>,
        );
        let cluster = |s: &mut AppSpec| {
            s.exec_mode = ExecModeSpec::Cluster;
            s.port = Some(3000);
        };
        let rows: Vec<Row> = vec![
            (
                "a plain fork app: alive after the timeout",
                spec(|_| {}),
                false,
                Some(Offered),
                None,
                None,
            ),
            (
                "wait_ready: the app's own READY",
                spec(|s| s.wait_ready = true),
                false,
                Some(AppReady),
                None,
                None,
            ),
            (
                "a Node app in cluster mode with the socket: the preload's listen signal",
                spec(|s| {
                    s.node = true;
                    cluster(s);
                }),
                true,
                Some(NodeListen),
                None,
                None,
            ),
            (
                "a Node app without the socket: no listen signal",
                spec(|s| s.node = true),
                false,
                Some(Offered),
                None,
                None,
            ),
            (
                "a non-Node app with the socket: no signal of its own",
                spec(cluster),
                true,
                Some(Offered),
                None,
                None,
            ),
            (
                "wait_ready wins over the listen signal",
                spec(|s| {
                    s.node = true;
                    s.wait_ready = true;
                    cluster(s);
                }),
                true,
                Some(AppReady),
                None,
                None,
            ),
            (
                "fork mode: an HTTP healthcheck reaches this instance alone",
                spec(|s| {
                    s.healthcheck = Some("/health".into());
                    s.port = Some(8080);
                }),
                false,
                Some(Offered),
                http(8080, "/health"),
                None,
            ),
            (
                "a healthcheck path without its slash",
                spec(|s| {
                    s.healthcheck = Some("ready".into());
                    s.port = Some(8080);
                }),
                false,
                Some(Offered),
                http(8080, "/ready"),
                None,
            ),
            (
                "fork mode: a TCP healthcheck",
                spec(|s| {
                    s.healthcheck = Some("TCP".into());
                    s.port = Some(8080);
                }),
                false,
                Some(Offered),
                tcp(8080),
                None,
            ),
            (
                "a healthcheck without a port is no probe",
                spec(|s| s.healthcheck = Some("/health".into())),
                false,
                Some(Offered),
                None,
                None,
            ),
            (
                "cluster: the probe through the shared socket is for the app, not the instance",
                spec(|s| {
                    cluster(s);
                    s.healthcheck = Some("/health".into());
                }),
                true,
                Some(Offered),
                None,
                http(3000, "/health"),
            ),
            (
                "cluster: a TCP probe would reach the agent's own socket: for the app only",
                spec(|s| {
                    cluster(s);
                    s.healthcheck = Some("tcp".into());
                }),
                true,
                Some(Offered),
                None,
                tcp(3000),
            ),
            (
                "cluster Node: the listen signal, and the probe for the app",
                spec(|s| {
                    s.node = true;
                    cluster(s);
                    s.healthcheck = Some("/health".into());
                }),
                true,
                Some(NodeListen),
                None,
                http(3000, "/health"),
            ),
            (
                "cluster wait_ready: its own READY, and the probe for the app",
                spec(|s| {
                    s.wait_ready = true;
                    cluster(s);
                    s.healthcheck = Some("tcp".into());
                }),
                true,
                Some(AppReady),
                None,
                tcp(3000),
            ),
            (
                "fork wait_ready with a probe: both its own",
                spec(|s| {
                    s.wait_ready = true;
                    s.port = Some(3000);
                    s.healthcheck = Some("tcp".into());
                }),
                false,
                Some(AppReady),
                tcp(3000),
                None,
            ),
        ];
        let mut failures = Vec::new();
        for (name, spec, has_listener, own, probe, app_probe) in rows {
            let got = plan(&spec, has_listener);
            let expected = ReadinessPlan {
                own,
                probe,
                app_probe,
                stable_for: Duration::from_millis(spec.min_uptime_ms),
            };
            if got != expected {
                failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
            }
            assert_eq!(
                got.per_instance(),
                matches!(got.own, Some(AppReady | NodeListen)) || got.probe.is_some(),
                "{name}"
            );
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn the_stability_window_is_min_uptime() {
        let s = spec(|s| s.min_uptime_ms = 5_000);
        assert_eq!(plan(&s, false).stable_for, Duration::from_secs(5));
        assert_eq!(plan(&s, true).stable_for, Duration::from_secs(5));
    }
}
