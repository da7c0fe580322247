//! Which readiness signals apply to a freshly spawned instance: a pure decision from its spec
//! and whether the agent holds a listening socket for it. The slot lifecycle
//! (`slots`) binds what the plan asks for and [`super::ready`] waits on it.
//!
//! - the app's own word (`wait_ready`): sd_notify `READY=1` on its `NOTIFY_SOCKET`, or
//!   `process.send('ready')` through the Node preload;
//! - the Node preload's `READY=1` once the app's `listen()` took the inherited socket (Node
//!   apps in cluster mode with a socket);
//! - a probe (`healthcheck` with a `port`): HTTP GET expecting 2xx/3xx, or a TCP connect;
//! - with none of these: alive after `listen_timeout`.

use pmfleet_shared::protocol::AppSpec;

/// What the instance's own process reports, on the notify sockets bound for that spawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnSignal {
    /// `wait_ready`: the app says `READY=1` itself.
    AppReady,
    /// The Node preload says `READY=1` when the app's `listen()` got the shared socket.
    NodeListen,
}

/// A readiness probe of the app's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub port: u16,
    /// `Some(path)`: HTTP GET expecting 2xx/3xx; `None`: a TCP connect.
    pub http_path: Option<String>,
}

/// The signals one spawn waits for, in order: its own signal, then the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessPlan {
    pub own: Option<OwnSignal>,
    pub probe: Option<Probe>,
}

impl ReadinessPlan {
    /// No signal applies: being alive after `listen_timeout` is what ready means.
    pub fn alive_after_timeout(&self) -> bool {
        self.own.is_none() && self.probe.is_none()
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
        None
    };
    let probe = match (&spec.healthcheck, spec.port) {
        (Some(hc), Some(port)) => Some(Probe {
            port,
            http_path: probe_kind(hc),
        }),
        _ => None,
    };
    ReadinessPlan { own, probe }
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
        );
        let rows: Vec<Row> = vec![
            (
                "a plain fork app: alive after the timeout",
                spec(|_| {}),
                false,
                None,
                None,
            ),
            (
                "wait_ready: the app's own READY",
                spec(|s| s.wait_ready = true),
                false,
                Some(AppReady),
                None,
            ),
            (
                "a Node app in cluster mode with the socket: the preload's listen signal",
                spec(|s| {
                    s.node = true;
                    s.exec_mode = ExecModeSpec::Cluster;
                    s.port = Some(3000);
                }),
                true,
                Some(NodeListen),
                None,
            ),
            (
                "a Node app without the socket: no listen signal",
                spec(|s| s.node = true),
                false,
                None,
                None,
            ),
            (
                "a non-Node app with the socket: no listen signal",
                spec(|s| {
                    s.exec_mode = ExecModeSpec::Cluster;
                    s.port = Some(3000);
                }),
                true,
                None,
                None,
            ),
            (
                "wait_ready wins over the listen signal",
                spec(|s| {
                    s.node = true;
                    s.wait_ready = true;
                    s.port = Some(3000);
                }),
                true,
                Some(AppReady),
                None,
            ),
            (
                "an HTTP healthcheck on the port",
                spec(|s| {
                    s.healthcheck = Some("/health".into());
                    s.port = Some(8080);
                }),
                false,
                None,
                http(8080, "/health"),
            ),
            (
                "a healthcheck path without its slash",
                spec(|s| {
                    s.healthcheck = Some("ready".into());
                    s.port = Some(8080);
                }),
                false,
                None,
                http(8080, "/ready"),
            ),
            (
                "a TCP healthcheck",
                spec(|s| {
                    s.healthcheck = Some("TCP".into());
                    s.port = Some(8080);
                }),
                false,
                None,
                tcp(8080),
            ),
            (
                "a healthcheck without a port is no probe",
                spec(|s| s.healthcheck = Some("/health".into())),
                false,
                None,
                None,
            ),
            (
                "the listen signal, then the probe",
                spec(|s| {
                    s.node = true;
                    s.exec_mode = ExecModeSpec::Cluster;
                    s.port = Some(3000);
                    s.healthcheck = Some("/health".into());
                }),
                true,
                Some(NodeListen),
                http(3000, "/health"),
            ),
            (
                "wait_ready, then the probe",
                spec(|s| {
                    s.wait_ready = true;
                    s.port = Some(3000);
                    s.healthcheck = Some("tcp".into());
                }),
                false,
                Some(AppReady),
                tcp(3000),
            ),
        ];
        let mut failures = Vec::new();
        for (name, spec, has_listener, own, probe) in rows {
            let got = plan(&spec, has_listener);
            let expected = ReadinessPlan { own, probe };
            if got != expected {
                failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
            }
            assert_eq!(
                got.alive_after_timeout(),
                got.own.is_none() && got.probe.is_none()
            );
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }
}
