//! `events`: lifecycle events streamed by a real daemon while real processes start, get
//! killed and come back, and roll through a reload; the app filter; and a remote subscriber
//! over mutual TLS whose stream ends with `end` when the daemon goes away.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pmfleet_shared::protocol::{EventKind, Request, Response};
use pmfleet_testkit::tls::{self, Ca};
use pmfleet_testkit::{AgentHome, free_port, wait_until};
use serde_json::Value;

/// How long any one expected event may take.
const WAIT: Duration = Duration::from_secs(30);

/// A `pmfleet-agent events --json` process, its events read as they come. Dropping it ends
/// the process.
struct Events {
    child: Child,
    rx: mpsc::Receiver<Value>,
    /// Every event received so far, in order.
    seen: Vec<Value>,
}

impl Events {
    /// Subscribe (to `app`'s events, or every app's) and wait until the agent says the
    /// subscription is live: nothing that happens after that is missed.
    fn subscribe(agent: &AgentHome, app: Option<&str>) -> Events {
        let mut cmd = agent.command();
        cmd.arg("events").args(app).arg("--json");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (live_tx, live_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = live_tx.send(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let ev: Value = serde_json::from_str(&line).unwrap();
                if tx.send(ev).is_err() {
                    return;
                }
            }
        });
        let live = live_rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no subscription: {e}\n{}", agent.daemon_log()));
        assert!(live.contains("watching the events of"), "{live}");
        Events {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    /// The next event of `app` with `kind` that `also` accepts; the events before it are
    /// skipped (and kept in `seen`).
    fn expect(&mut self, app: &str, kind: &str, also: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(ev) = self.rx.recv_timeout(left) else {
                panic!(
                    "no `{kind}` event of {app} within {WAIT:?}; got:\n{}",
                    self.dump()
                )
            };
            self.seen.push(ev.clone());
            if ev["app"] == app && ev["kind"] == kind && also(&ev) {
                return ev;
            }
        }
    }

    fn dump(&self) -> String {
        self.seen
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pid(ev: &Value) -> u64 {
    ev["pid"].as_u64().unwrap()
}

#[test]
fn a_killed_instance_is_seen_exiting_then_starting_again() {
    let agent = AgentHome::new();
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    let mut events = Events::subscribe(&agent, None);
    agent.ok(&["start", "tick.sh", "--name", "tick"]);

    let started = events.expect("tick", "started", |e| e["instance"] == 0);
    let first = pid(&started);
    events.expect("tick", "online", |e| pid(e) == first);
    assert_eq!(agent.pids("tick"), [first as u32]);

    // SAFETY: signalling a child process this test started through the agent.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    let exited = events.expect("tick", "exited", |e| pid(e) == first);
    assert_eq!(exited["instance"], 0);
    let message = exited["message"].as_str().unwrap();
    assert!(message.contains("signal 9 (SIGKILL)"), "{message}");
    events.expect("tick", "restarting", |e| e["instance"] == 0);
    let again = events.expect("tick", "started", |e| e["instance"] == 0);
    let second = pid(&again);
    assert_ne!(second, first);
    events.expect("tick", "online", |e| pid(e) == second);
    assert!(again["at_ms"].as_u64() >= exited["at_ms"].as_u64());
    assert_eq!(agent.pids("tick"), [second as u32]);
}

#[test]
fn a_rolling_reload_is_framed_by_reload_started_and_reload_finished() {
    let agent = AgentHome::new();
    let port = free_port();
    agent.fixture("server.js");
    agent.write(
        "ecosystem.config.js",
        &format!(
            r#"module.exports = {{ apps: [{{ name: "api", script: "server.js",
  exec_mode: "cluster", instances: 2, port: {port}, listen_timeout: 8000 }}] }};
"#
        ),
    );
    let mut events = Events::subscribe(&agent, Some("api"));
    agent.ok(&["start", "ecosystem.config.js"]);
    agent.wait_online("api", 2);
    let before = agent.pids("api");

    let out = agent.ok(&["reload", "api"]);
    assert!(out.contains("zero downtime"), "{out}");
    let after = agent.pids("api");
    let started = events.expect("api", "reload_started", |e| e["instance"].is_null());
    let mark = events.seen.len();
    let finished = events.expect("api", "reload_finished", |e| e["instance"].is_null());
    assert!(started["at_ms"].as_u64() <= finished["at_ms"].as_u64());

    // In between: each new process ready, each old one stopped, one slot at a time.
    let between = &events.seen[mark..];
    let pids_of = |kind: &str| -> Vec<u32> {
        between
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| pid(e) as u32)
            .collect()
    };
    let mut online = pids_of("online");
    let mut stopped = pids_of("stopped");
    online.sort();
    stopped.sort();
    let (mut want_online, mut want_stopped) = (after.clone(), before.clone());
    want_online.sort();
    want_stopped.sort();
    assert_eq!(online, want_online, "{}", events.dump());
    assert_eq!(stopped, want_stopped, "{}", events.dump());
}

#[test]
fn a_subscription_to_one_app_sees_nothing_of_another() {
    let agent = AgentHome::new();
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    let mut only_a = Events::subscribe(&agent, Some("a"));
    let mut every = Events::subscribe(&agent, None);
    agent.ok(&["start", "tick.sh", "--name", "b"]);
    agent.ok(&["start", "tick.sh", "--name", "a"]);
    agent.ok(&["stop", "b"]);
    agent.ok(&["stop", "a"]);

    // The unfiltered subscriber saw b's events, so there were some to leave out.
    every.expect("b", "stopped", |_| true);
    every.expect("a", "stopped", |_| true);
    // Events come in order: once a's `stopped` arrived, any event of b would have too.
    only_a.expect("a", "started", |_| true);
    only_a.expect("a", "stopped", |_| true);
    assert!(
        only_a.seen.iter().all(|e| e["app"] == "a"),
        "{}",
        only_a.dump()
    );
}

#[test]
fn a_remote_subscriber_gets_events_over_mutual_tls_and_end_when_the_agent_goes() {
    let agent = AgentHome::new();
    let ca = Ca::new("test fleet CA");
    let port = free_port();
    ca.install(agent.home.path(), &format!("127.0.0.1:{port}"));
    agent.ok(&["ping"]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until(Duration::from_secs(10), "the TLS endpoint", || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    let config = tls::client_config(&ca.pem, Some(&ca.client(100)));
    let rt = tls::runtime();
    let mut conn = rt.block_on(async {
        let mut c = tls::connect(addr, config).await.unwrap();
        let req = Request::Events {
            app: Some("tick".into()),
        };
        match c.request(&req, WAIT).await.unwrap() {
            Response::Done { messages } => assert!(messages[0].contains("`tick`")),
            other => panic!("{other:?}"),
        }
        c
    });
    agent.ok(&["start", "tick.sh", "--name", "tick"]);
    rt.block_on(async {
        loop {
            match conn.recv(WAIT).await.unwrap() {
                Response::Event(ev) if ev.kind == EventKind::Online => {
                    assert_eq!((ev.app.as_str(), ev.instance), ("tick", Some(0)));
                    return;
                }
                Response::Event(_) => {}
                other => panic!("{other:?}"),
            }
        }
    });

    agent.ok(&["kill"]);
    rt.block_on(async {
        loop {
            match conn.recv(WAIT).await.unwrap() {
                Response::End => return,
                Response::Event(_) => {}
                other => panic!("{other:?}"),
            }
        }
    });
}
