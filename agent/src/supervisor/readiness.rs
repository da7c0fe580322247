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
//! - its health gate (`healthcheck`), aimed at this instance alone ([`ProbeTarget`]): in fork
//!   mode the app's own port, where the new process is the only one listening; in cluster mode
//!   the instance's own `PMFLEET_PROBE_PORT` (the agent picks one per spawn; the Node preload
//!   serves the app there, any other program listens on it itself), never the shared socket
//!   the old instances answer on; a `command` probe is told that port and the instance's pid.
//!   The bare string form of older files on a program that is not Node keeps its old meaning
//!   in cluster mode: it is checked through the shared socket once every old instance of a
//!   reload is gone ([`ReadinessPlan::app_probe`]), never as this instance's signal;
//! - with no signal of its own: `NOTIFY_SOCKET` is still offered, and an sd_notify `READY=1`
//!   sent unasked counts; without it the instance is ready when alive after `listen_timeout`,
//!   which is said plainly in the reload's message ([`ReadinessPlan::per_instance`] is false).
//!
//! The whole gate has one deadline: `deploy_timeout` when the app sets it, else
//! `listen_timeout`. Whatever the signal, the instance must then stay up through its
//! stability window (`min_uptime`, PM2's own measure of a stable run) before the old one is
//! stopped: a release that answers once and dies is not ready.

use std::time::Duration;

use pmfleet_shared::protocol::{AppSpec, HealthCheck};

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

/// Where a probe of one instance goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeTarget {
    /// The app's own port on the host (fork mode).
    AppPort(u16),
    /// The instance's own `PMFLEET_PROBE_PORT` on the loopback address (cluster mode).
    InstancePort,
    /// A command, run in the release; no address.
    Command,
}

/// A probe of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: ProbeTarget,
    pub check: HealthCheck,
}

/// The signals one spawn waits for, in order: its own signal, then the probe that reaches
/// it, then the stability window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessPlan {
    pub own: Option<OwnSignal>,
    /// A probe that only this instance can answer.
    pub probe: Option<Probe>,
    /// A probe through the shared socket (the app's port): checked for the app as a whole
    /// once no old instance is left to answer it.
    pub app_probe: Option<(u16, HealthCheck)>,
    /// The instance is given a port of its own (`PMFLEET_PROBE_PORT`).
    pub probe_port: bool,
    /// How long the instance must stay up after it is ready.
    pub stable_for: Duration,
    /// The deadline of the whole gate: `deploy_timeout`, else `listen_timeout`.
    pub deadline: Duration,
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
    let probe = |target| {
        spec.healthcheck
            .clone()
            .map(|check| Probe { target, check })
    };
    let (probe, app_probe, probe_port) = match &spec.healthcheck {
        None => (None, None, false),
        Some(hc) if !hc.is_network() => (probe(ProbeTarget::Command), None, has_listener),
        Some(hc) if has_listener && hc.legacy && !spec.node => {
            (None, spec.port.map(|p| (p, hc.clone())), false)
        }
        Some(_) if has_listener => (probe(ProbeTarget::InstancePort), None, true),
        Some(_) => match spec.port {
            Some(port) => (probe(ProbeTarget::AppPort(port)), None, false),
            None => (None, None, false),
        },
    };
    ReadinessPlan {
        own,
        probe,
        app_probe,
        probe_port,
        stable_for: Duration::from_millis(spec.min_uptime_ms),
        deadline: Duration::from_millis(spec.deploy_timeout_ms.unwrap_or(spec.listen_timeout_ms)),
    }
}

#[cfg(test)]
mod tests {
    use pmfleet_shared::protocol::{ExecModeSpec, Probe as Check};

    use super::*;

    fn spec(f: impl FnOnce(&mut AppSpec)) -> AppSpec {
        let app = pmfleet_shared::ecosystem::App::from_script("/bin/sh");
        let mut s = super::super::spec::resolve(&app, "/".as_ref(), &Default::default(), None)
            .expect("a script app resolves");
        f(&mut s);
        s
    }

    fn legacy(text: &str) -> Option<HealthCheck> {
        Some(HealthCheck::legacy(text))
    }

    fn object(check: Check) -> Option<HealthCheck> {
        Some(HealthCheck {
            probe: check,
            interval_ms: 1000,
            timeout_ms: 2000,
            legacy: false,
        })
    }

    fn http_object(path: &str) -> Option<HealthCheck> {
        object(Check::Http {
            path: path.into(),
            status: None,
            body: None,
            host: None,
        })
    }

    fn command(c: &str) -> Option<HealthCheck> {
        object(Check::Command { command: c.into() })
    }

    fn at(target: ProbeTarget, check: Option<HealthCheck>) -> Option<Probe> {
        check.map(|check| Probe { target, check })
    }

    #[test]
    fn plans() {
        use OwnSignal::*;
        use ProbeTarget::*;
        struct Row {
            name: &'static str,
            spec: AppSpec,
            listener: bool,
            own: Option<OwnSignal>,
            probe: Option<Probe>,
            app_probe: Option<(u16, HealthCheck)>,
            probe_port: bool,
        }
        let row = |name, spec, listener, own, probe, app_probe, probe_port| Row {
            name,
            spec,
            listener,
            own,
            probe,
            app_probe,
            probe_port,
        };
        let cluster = |s: &mut AppSpec| {
            s.exec_mode = ExecModeSpec::Cluster;
            s.port = Some(3000);
        };
        let tcp = || legacy("tcp");
        let rows: Vec<Row> = vec![
            row(
                "a plain fork app: alive after the timeout",
                spec(|_| {}),
                false,
                Some(Offered),
                None,
                None,
                false,
            ),
            row(
                "wait_ready: the app's own READY",
                spec(|s| s.wait_ready = true),
                false,
                Some(AppReady),
                None,
                None,
                false,
            ),
            row(
                "a Node app in cluster mode with the socket: the preload's listen signal",
                spec(|s| {
                    s.node = true;
                    cluster(s);
                }),
                true,
                Some(NodeListen),
                None,
                None,
                false,
            ),
            row(
                "a Node app without the socket: no listen signal",
                spec(|s| s.node = true),
                false,
                Some(Offered),
                None,
                None,
                false,
            ),
            row(
                "a non-Node app with the socket: no signal of its own",
                spec(cluster),
                true,
                Some(Offered),
                None,
                None,
                false,
            ),
            row(
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
                false,
            ),
            row(
                "fork mode: an HTTP healthcheck reaches this instance alone",
                spec(|s| {
                    s.healthcheck = legacy("/health");
                    s.port = Some(8080);
                }),
                false,
                Some(Offered),
                at(AppPort(8080), legacy("/health")),
                None,
                false,
            ),
            row(
                "fork mode: a TCP healthcheck",
                spec(|s| {
                    s.healthcheck = tcp();
                    s.port = Some(8080);
                }),
                false,
                Some(Offered),
                at(AppPort(8080), tcp()),
                None,
                false,
            ),
            row(
                "fork mode: an HTTP object probes the app's port",
                spec(|s| {
                    s.healthcheck = http_object("/ready");
                    s.port = Some(8080);
                }),
                false,
                Some(Offered),
                at(AppPort(8080), http_object("/ready")),
                None,
                false,
            ),
            row(
                "a network healthcheck without a port is no probe",
                spec(|s| s.healthcheck = legacy("/health")),
                false,
                Some(Offered),
                None,
                None,
                false,
            ),
            row(
                "fork mode: a command probe needs no port",
                spec(|s| s.healthcheck = command("./check")),
                false,
                Some(Offered),
                at(Command, command("./check")),
                None,
                false,
            ),
            row(
                "cluster, not Node, the old string: through the shared socket, for the app",
                spec(|s| {
                    cluster(s);
                    s.healthcheck = legacy("/health");
                }),
                true,
                Some(Offered),
                None,
                Some((3000, HealthCheck::legacy("/health"))),
                false,
            ),
            row(
                "cluster, not Node, the old tcp: the agent's own socket would answer: for the app",
                spec(|s| {
                    cluster(s);
                    s.healthcheck = tcp();
                }),
                true,
                Some(Offered),
                None,
                Some((3000, HealthCheck::legacy("tcp"))),
                false,
            ),
            row(
                "cluster, not Node, an object: the instance's own port, which it must serve",
                spec(|s| {
                    cluster(s);
                    s.healthcheck = http_object("/health");
                }),
                true,
                Some(Offered),
                at(InstancePort, http_object("/health")),
                None,
                true,
            ),
            row(
                "cluster Node, the old string: the listen signal, then its own port (the preload serves it)",
                spec(|s| {
                    s.node = true;
                    cluster(s);
                    s.healthcheck = legacy("/health");
                }),
                true,
                Some(NodeListen),
                at(InstancePort, legacy("/health")),
                None,
                true,
            ),
            row(
                "cluster Node, an object: its own port",
                spec(|s| {
                    s.node = true;
                    cluster(s);
                    s.healthcheck = http_object("/health");
                }),
                true,
                Some(NodeListen),
                at(InstancePort, http_object("/health")),
                None,
                true,
            ),
            row(
                "cluster wait_ready with the old tcp, not Node: its own READY, the probe for the app",
                spec(|s| {
                    s.wait_ready = true;
                    cluster(s);
                    s.healthcheck = tcp();
                }),
                true,
                Some(AppReady),
                None,
                Some((3000, HealthCheck::legacy("tcp"))),
                false,
            ),
            row(
                "cluster: a command probe, told the instance's own port",
                spec(|s| {
                    cluster(s);
                    s.healthcheck = command("./check");
                }),
                true,
                Some(Offered),
                at(Command, command("./check")),
                None,
                true,
            ),
            row(
                "fork wait_ready with a probe: both its own",
                spec(|s| {
                    s.wait_ready = true;
                    s.port = Some(3000);
                    s.healthcheck = tcp();
                }),
                false,
                Some(AppReady),
                at(AppPort(3000), tcp()),
                None,
                false,
            ),
        ];
        let mut failures = Vec::new();
        for r in rows {
            let got = plan(&r.spec, r.listener);
            let expected = ReadinessPlan {
                own: r.own,
                probe: r.probe,
                app_probe: r.app_probe,
                probe_port: r.probe_port,
                stable_for: Duration::from_millis(r.spec.min_uptime_ms),
                deadline: Duration::from_millis(r.spec.listen_timeout_ms),
            };
            if got != expected {
                failures.push(format!("{}: expected {expected:?}, got {got:?}", r.name));
            }
            assert_eq!(
                got.per_instance(),
                matches!(got.own, Some(AppReady | NodeListen)) || got.probe.is_some(),
                "{}",
                r.name
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

    #[test]
    fn deploy_timeout_bounds_the_gate_instead_of_listen_timeout() {
        let s = spec(|s| s.listen_timeout_ms = 3_000);
        assert_eq!(plan(&s, false).deadline, Duration::from_secs(3));
        let s = spec(|s| {
            s.listen_timeout_ms = 3_000;
            s.deploy_timeout_ms = Some(60_000);
        });
        assert_eq!(plan(&s, true).deadline, Duration::from_secs(60));
    }
}
