//! A release that never serves must not pass a reload or a deploy: readiness is decided by
//! the new instance itself (its own READY, the Node preload's listen signal, or a probe only it
//! answers), it must then stay up through its stability window (`min_uptime`), and a probe
//! through the shared socket counts only once no old instance is left to answer it. Real
//! Node and Python processes in fork and cluster mode.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pmfleet_shared::protocol::{ApplyReport, Request, Response};
use pmfleet_testkit::{AgentHome, answering_pids, free_port, get, tls, wait_until};

/// A Node app that reads `mode` beside it when it starts: `good` serves, `dies` listens and
/// exits 3 s later, `never` never listens.
const NODE_APP: &str = r#"
const fs = require('fs');
const http = require('http');
const mode = fs.readFileSync(__dirname + '/mode', 'utf8').trim();
const server = http.createServer((req, res) => res.end(`pid=${process.pid} mode=${mode}\n`));
if (mode === 'never') {
  setInterval(() => {}, 1000);
} else {
  server.listen(process.env.PORT, () => {
    if (mode === 'dies') setTimeout(() => process.exit(1), 3000);
  });
}
"#;

/// The same in Python, serving the inherited socket fd 3 and saying `READY=1` (sd_notify)
/// once it serves.
const PYTHON_APP: &str = r#"
import http.server, os, socket, socketserver, threading, time
here = os.path.dirname(os.path.abspath(__file__))
mode = open(os.path.join(here, "mode")).read().strip()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = f"pid={os.getpid()} mode={mode}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
if mode == "never":
    while True:
        time.sleep(1)
sock = socket.socket(fileno=3)
sock.setblocking(False)
server = S(sock.getsockname(), H, bind_and_activate=False)
server.socket = sock
path = os.environ.get("NOTIFY_SOCKET")
if path:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        s.sendall(b"READY=1")
if mode == "dies":
    threading.Timer(3, lambda: os._exit(1)).start()
server.serve_forever(poll_interval=0.1)
"#;

/// `apps[0]` as JSON object fields after `name`, for an app `api` in `agent`'s work dir.
fn ecosystem(agent: &AgentHome, script: &str, fields: &str) {
    agent.write(
        "ecosystem.json",
        &format!(r#"{{"apps": [{{"name": "api", "script": "{script}", {fields}}}]}}"#),
    );
}

fn mode(dir: &Path, mode: &str) {
    std::fs::write(dir.join("mode"), mode).unwrap();
}

/// Start `api` serving in `good` mode, and return its pids.
fn serving(agent: &AgentHome, port: u16, n: usize) -> Vec<u32> {
    mode(agent.work.path(), "good");
    agent.ok(&["start", "ecosystem.json"]);
    agent.wait_online("api", n);
    // Every instance serves (read its mode) before the test changes the mode.
    wait_until(Duration::from_secs(20), "every instance serving", || {
        answering_pids(port, 20).len() == n
    });
    agent.pids("api")
}

/// The old instances still run and answer, every answer from them.
fn old_ones_answer(agent: &AgentHome, port: u16, before: &[u32]) {
    assert_eq!(
        agent.pids("api"),
        before,
        "the old instances must stay\n{}",
        agent.daemon_log()
    );
    for _ in 0..20 {
        let body = get(port).expect("the app answers");
        assert!(body.contains("mode=good"), "{body}");
    }
}

#[test]
fn a_cluster_reload_into_a_node_release_that_dies_after_listening_fails_and_the_old_instances_keep_answering()
 {
    let agent = AgentHome::new();
    let port = free_port();
    agent.write("app.js", NODE_APP);
    ecosystem(
        &agent,
        "app.js",
        &format!(
            r#""exec_mode": "cluster", "instances": 2, "port": {port}, "listen_timeout": 4000, "min_uptime": 5000"#
        ),
    );
    let before = serving(&agent, port, 2);
    mode(agent.work.path(), "dies");
    let err = agent.fails(&["reload", "api"]);
    assert!(err.contains("reload of `api` failed"), "{err}");
    assert!(err.contains("stability window"), "{err}");
    old_ones_answer(&agent, port, &before);
}

#[test]
fn a_cluster_reload_into_a_python_release_that_dies_after_ready_fails_and_the_old_instances_keep_answering()
 {
    let agent = AgentHome::new();
    let port = free_port();
    agent.write("app.py", PYTHON_APP);
    ecosystem(
        &agent,
        "app.py",
        &format!(
            r#""exec_mode": "cluster", "instances": 2, "port": {port}, "healthcheck": "/", "listen_timeout": 4000, "min_uptime": 5000"#
        ),
    );
    let before = serving(&agent, port, 2);
    mode(agent.work.path(), "dies");
    let err = agent.fails(&["reload", "api"]);
    assert!(err.contains("reload of `api` failed"), "{err}");
    assert!(err.contains("stability window"), "{err}");
    old_ones_answer(&agent, port, &before);
}

#[test]
fn a_cluster_reload_into_a_python_release_that_never_listens_is_not_passed_by_the_old_instances_answering_its_probe()
 {
    let agent = AgentHome::new();
    let port = free_port();
    agent.write("app.py", PYTHON_APP);
    ecosystem(
        &agent,
        "app.py",
        &format!(
            r#""exec_mode": "cluster", "instances": 2, "port": {port}, "healthcheck": "/", "listen_timeout": 2000"#
        ),
    );
    serving(&agent, port, 2);
    mode(agent.work.path(), "never");
    let err = agent.fails(&["reload", "api"]);
    assert!(err.contains("reload of `api` failed"), "{err}");
    assert!(err.contains("answers no HTTP GET / probe"), "{err}");
}

#[test]
fn a_cluster_reload_without_a_signal_of_its_own_says_readiness_was_not_verified() {
    let agent = AgentHome::new();
    let port = free_port();
    // A shell app that never speaks sd_notify: only "alive after listen_timeout" applies.
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    ecosystem(
        &agent,
        "tick.sh",
        &format!(
            r#""exec_mode": "cluster", "instances": 2, "port": {port}, "listen_timeout": 500"#
        ),
    );
    agent.ok(&["start", "ecosystem.json"]);
    agent.wait_online("api", 2);
    let out = agent.ok(&["reload", "api"]);
    assert!(
        out.contains("readiness not verified for 2 instance(s)"),
        "{out}"
    );
}

/// A daemon with a fleet identity and a client certificate, for `apply_release`.
struct Remote {
    agent: AgentHome,
    addr: SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
    rt: tokio::runtime::Runtime,
}

impl Remote {
    fn start() -> Remote {
        let agent = AgentHome::new();
        let ca = tls::Ca::new("test fleet CA");
        let port = free_port();
        ca.install(agent.home.path(), &format!("127.0.0.1:{port}"));
        agent.ok(&["ping"]);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_until(Duration::from_secs(10), "the TLS endpoint", || {
            std::net::TcpStream::connect(addr).is_ok()
        });
        Remote {
            agent,
            addr,
            config: tls::client_config(&ca.pem, Some(&ca.client(100))),
            rt: tls::runtime(),
        }
    }

    fn apply(&self, release: &Path) -> ApplyReport {
        let req = Request::ApplyRelease(Box::new(tls::prepare_release(
            self.agent.home.path(),
            release,
            "production",
            &BTreeMap::new(),
            60_000,
        )));
        let answer = self.rt.block_on(tls::request(
            self.addr,
            self.config.clone(),
            &req,
            Duration::from_secs(90),
        ));
        match answer {
            Ok(Response::Applied(r)) => r,
            other => panic!("{other:?}\n{}", self.agent.daemon_log()),
        }
    }
}

/// `releases/<n>`: the Node app in `mode`, in fork mode on `port` with an HTTP healthcheck.
fn fork_release(agent: &AgentHome, n: u32, how: &str, port: u16) -> PathBuf {
    let dir = agent.work.path().join("releases").join(n.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.js"), NODE_APP).unwrap();
    mode(&dir, how);
    let eco = serde_json::json!({"apps": [{
        "name": "api", "script": "app.js", "port": port, "healthcheck": "/",
        "listen_timeout": 4000, "min_uptime": 5000
    }]});
    std::fs::write(dir.join("ecosystem.json"), eco.to_string()).unwrap();
    dir
}

#[test]
fn a_fork_deploy_into_a_release_that_dies_after_listening_fails() {
    let r = Remote::start();
    let port = free_port();
    let one = fork_release(&r.agent, 1, "good", port);
    let report = r.apply(&one);
    assert!(report.ok(), "{report:?}");
    assert!(get(port).is_ok_and(|b| b.contains("mode=good")));
    let two = fork_release(&r.agent, 2, "dies", port);
    let report = r.apply(&two);
    assert!(
        !report.ok(),
        "a release that dies 3 s after listening passed: {report:?}"
    );
    let message = &report.apps[0].message;
    assert!(message.contains("stability window"), "{message}");
}

#[test]
fn a_fork_deploy_into_a_release_that_never_listens_fails() {
    let r = Remote::start();
    let port = free_port();
    let one = fork_release(&r.agent, 1, "never", port);
    let report = r.apply(&one);
    assert!(!report.ok(), "{report:?}");
    assert!(
        report.apps[0].message.contains("not ready within"),
        "{report:?}"
    );
}
