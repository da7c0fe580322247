//! The agent's mutual-TLS endpoint, end to end: a real daemon with a fleet identity in its
//! home (made at test time), a client with a fleet certificate asking for `status`, `list`,
//! `logs` and `apply_release` — a release started, reloaded under load without a failed
//! request, and a release that never becomes ready leaving the previous one serving.
//!
//! Who is refused, and what each certificate role may ask, is the TLS suite of the e2e crate
//! (`tests/tests/agent_tls.rs`, `tests/tests/agent_hostile.rs`), against this same endpoint.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::protocol::{
    AppliedAction, ApplyDir, ApplyRelease, ApplyReport, ErrorKind, Request, Response,
};
use pmfleet_testkit as common;
use pmfleet_testkit::tls::{self, Ca};
use pmfleet_testkit::{AgentHome as Agent, Load, free_port, get, wait_until};
use rustls::ClientConfig;

/// A daemon serving mutual TLS with `ca`'s identity, and a client certificate of that CA.
struct Remote {
    agent: Agent,
    addr: SocketAddr,
    good: Arc<ClientConfig>,
    rt: tokio::runtime::Runtime,
}

impl Remote {
    fn start() -> Remote {
        let agent = Agent::new();
        let ca = Ca::new("test fleet CA");
        let port = free_port();
        ca.install(agent.home.path(), &format!("127.0.0.1:{port}"));
        let out = agent.ok(&["ping"]);
        assert!(out.contains("running as pid"), "{out}");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_until(Duration::from_secs(10), "the TLS endpoint", || {
            std::net::TcpStream::connect(addr).is_ok()
        });
        assert!(
            agent
                .daemon_log()
                .contains("serving mutual TLS on 127.0.0.1"),
            "{}",
            agent.daemon_log()
        );
        let good = tls::client_config(&ca.pem, Some(&ca.client(100)));
        Remote {
            agent,
            addr,
            good,
            rt: tls::runtime(),
        }
    }

    fn ask_with(&self, config: Arc<ClientConfig>, req: &Request) -> Result<Response, String> {
        self.rt.block_on(tls::request(
            self.addr,
            config,
            req,
            Duration::from_secs(90),
        ))
    }

    fn ask(&self, req: &Request) -> Response {
        self.ask_with(self.good.clone(), req).unwrap_or_else(|e| {
            panic!(
                "{req:?}: {e}\n--- agent log ---\n{}",
                self.agent.daemon_log()
            )
        })
    }

    /// The good client still gets its answer.
    fn still_serves(&self) {
        match self.ask(&Request::Status) {
            Response::Status(s) => assert_eq!(s.version, env!("CARGO_PKG_VERSION")),
            other => panic!("{other:?}"),
        }
    }

    /// Apply `release` as a deploy does: its marker (written on the host) holds the deploy
    /// environment, the request only names it.
    fn apply(&self, release: &Path) -> ApplyReport {
        let req = Request::ApplyRelease(Box::new(tls::prepare_release(
            self.agent.home.path(),
            release,
            "production",
            &BTreeMap::from([
                ("DEPLOY_ONLY".to_string(), "d".to_string()),
                ("SHARED".to_string(), "deploy".to_string()),
            ]),
            60_000,
        )));
        match self.ask(&req) {
            Response::Applied(r) => r,
            other => panic!("{other:?}"),
        }
    }
}

/// `releases/<n>` holding `script` (a copy of a test app) and an ecosystem file running it
/// as a 2-instance cluster on `port`.
fn release(agent: &Agent, n: u32, script: &str, port: u16, listen_timeout: u32) -> PathBuf {
    let dir = agent.work.path().join("releases").join(n.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let apps = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps");
    std::fs::copy(apps.join(script), dir.join("app.js")).unwrap();
    std::fs::write(dir.join("VERSION"), format!("{n}\n")).unwrap();
    let eco = serde_json::json!({
        "apps": [{
            "name": "api",
            "script": "app.js",
            "exec_mode": "cluster",
            "instances": 2,
            "port": port,
            "listen_timeout": listen_timeout,
            "env": { "RELEASE": n.to_string(), "SHARED": "app" },
            "env_production": { "STAGE": "production" }
        }]
    });
    std::fs::write(dir.join("ecosystem.json"), eco.to_string()).unwrap();
    dir
}

fn api_pids(r: &Remote) -> Vec<u32> {
    match r.ask(&Request::Status) {
        Response::Status(s) => s
            .processes
            .iter()
            .filter(|p| p.name == "api")
            .filter_map(|p| p.pid)
            .collect(),
        other => panic!("{other:?}"),
    }
}

/// The app's spec as the host sees it (the local socket: remote answers redact env values).
fn api_spec(r: &Remote) -> pmfleet_shared::protocol::AppSpec {
    let json = r.agent.ok(&["show", "api", "--json"]);
    let detail: pmfleet_shared::protocol::AppDetail = serde_json::from_str(&json).unwrap();
    detail.spec
}

#[test]
fn status_list_and_releases_over_mutual_tls() {
    let r = Remote::start();

    let Response::Status(st) = r.ask(&Request::Status) else {
        panic!("not a status")
    };
    assert_eq!(st.version, env!("CARGO_PKG_VERSION"));
    assert!(!st.hostname.is_empty());
    assert!(st.processes.is_empty());
    assert_eq!(st.release, None);
    assert!(matches!(
        r.ask(&Request::List),
        Response::Processes { processes } if processes.is_empty()
    ));

    // Release 1: started, both instances ready before the answer.
    let port = free_port();
    let one = release(&r.agent, 1, "hello.js", port, 4000);
    let report = r.apply(&one);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.apps.len(), 1);
    assert_eq!(report.apps[0].action, AppliedAction::Started);
    assert!(get(port).unwrap().starts_with("hello from"));
    let first = api_pids(&r);
    assert_eq!(first.len(), 2);
    let spec = api_spec(&r);
    let one_real = std::fs::canonicalize(&one).unwrap();
    assert_eq!(spec.cwd, one_real);
    // deploy env < app env < env_<name>, and the host's PATH underneath.
    assert_eq!(spec.env["DEPLOY_ONLY"], "d");
    assert_eq!(spec.env["SHARED"], "app");
    assert_eq!(spec.env["STAGE"], "production");
    assert_eq!(spec.env["RELEASE"], "1");
    assert!(spec.env.contains_key("PATH"));

    // The same release again: nothing to do, nothing started twice.
    let again = r.apply(&one);
    assert!(again.ok(), "{again:?}");
    assert_eq!(again.apps[0].action, AppliedAction::Unchanged);
    assert_eq!(api_pids(&r), first);

    // Logs over TLS: the tail, then the end of the stream.
    let lines = r.rt.block_on(async {
        let mut c = tls::connect(r.addr, r.good.clone()).await.unwrap();
        c.send(&Request::Logs {
            app: Some("api".into()),
            lines: 10,
            follow: false,
        })
        .await
        .unwrap();
        let mut lines = Vec::new();
        loop {
            match c.recv(Duration::from_secs(10)).await.unwrap() {
                Response::Log(l) => lines.push(l.line),
                Response::End => return lines,
                other => panic!("{other:?}"),
            }
        }
    });
    assert!(lines.iter().any(|l| l.contains("listening")), "{lines:?}");

    // Release 2 under load: a rolling reload, not one failed request.
    let two = release(&r.agent, 2, "hello.js", port, 4000);
    let load = Load::start(port, 6, 200_000, Duration::from_secs(120));
    wait_until(Duration::from_secs(10), "load running", || {
        load.ok_so_far() > 100
    });
    let report = r.apply(&two);
    wait_until(
        Duration::from_secs(30),
        "more load after the reload",
        || load.ok_so_far() > 1500,
    );
    let loaded = load.finish();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.apps[0].action, AppliedAction::Reloaded);
    assert!(
        report.apps[0].message.contains("zero downtime"),
        "{report:?}"
    );
    assert_eq!(loaded.failed, 0, "failed requests: {:?}", loaded.errors);
    let second = api_pids(&r);
    assert_eq!(second.len(), 2);
    assert!(
        second.iter().all(|p| !first.contains(p)),
        "{first:?} -> {second:?}"
    );
    let two_real = std::fs::canonicalize(&two).unwrap();
    assert_eq!(api_spec(&r).cwd, two_real);
    assert_eq!(api_spec(&r).env["RELEASE"], "2");
    let Response::Status(st) = r.ask(&Request::Status) else {
        panic!()
    };
    assert_eq!(st.release.as_deref(), Some(two_real.as_path()));
    // The state file names release 2: a restarted daemon runs it.
    wait_until(Duration::from_secs(5), "state.json names release 2", || {
        std::fs::read_to_string(r.agent.home.path().join("state.json"))
            .is_ok_and(|s| s.contains(&format!("{}", two_real.join("app.js").display())))
    });

    // Release 3 never becomes ready: reported, and release 2 keeps serving every request.
    let three = release(&r.agent, 3, "never_ready.js", port, 1500);
    let load = Load::start(port, 4, 200_000, Duration::from_secs(60));
    let report = r.apply(&three);
    let loaded = load.finish();
    assert!(!report.ok(), "{report:?}");
    let app = &report.apps[0];
    assert_eq!(app.action, AppliedAction::Reloaded);
    assert!(app.message.contains("not ready within"), "{}", app.message);
    assert!(
        app.message.contains("old one keeps serving"),
        "{}",
        app.message
    );
    assert_eq!(loaded.failed, 0, "failed requests: {:?}", loaded.errors);
    assert!(loaded.ok > 0);
    assert_eq!(api_pids(&r), second, "release 2's instances must stay");
    assert_eq!(
        api_spec(&r).cwd,
        two_real,
        "the spec goes back to release 2"
    );
    assert!(get(port).is_ok());
    let Response::Status(st) = r.ask(&Request::Status) else {
        panic!()
    };
    assert_eq!(st.release.as_deref(), Some(two_real.as_path()));

    // A daemon restart brings back release 2 (what the state file recorded), once.
    let pid: u32 = std::fs::read_to_string(r.agent.home.path().join("agent.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_until(Duration::from_secs(15), "the daemon to exit", || {
        !common::pid_alive(pid)
    });
    r.agent.ok(&["ping"]);
    r.agent.wait_online("api", 2);
    wait_until(Duration::from_secs(10), "the TLS endpoint again", || {
        std::net::TcpStream::connect(r.addr).is_ok()
    });
    assert_eq!(api_spec(&r).cwd, two_real);
    assert_eq!(api_pids(&r).len(), 2);
}

#[test]
fn a_new_app_that_never_becomes_ready_is_reported_and_stopped() {
    let r = Remote::start();
    let port = free_port();
    let one = release(&r.agent, 1, "never_ready.js", port, 1000);
    let report = r.apply(&one);
    assert!(!report.ok());
    assert_eq!(report.apps[0].action, AppliedAction::Started);
    assert!(
        report.apps[0]
            .message
            .contains("instance 0 not ready within"),
        "{report:?}"
    );
    // Listed, stopped, nothing left running.
    let procs = r.agent.procs("api");
    assert!(procs.iter().all(|p| p["status"] == "stopped"), "{procs:?}");
    assert!(common::processes_with(one.join("app.js").to_str().unwrap()).is_empty());
    // A fixed release starts it.
    let two = release(&r.agent, 2, "hello.js", port, 4000);
    let report = r.apply(&two);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.apps[0].action, AppliedAction::Started);
    assert!(get(port).is_ok());
}

#[test]
fn a_bad_release_is_refused_whole_and_local_only_requests_are_forbidden() {
    let r = Remote::start();
    let ask_error = |req: Request| match r.ask(&req) {
        Response::Error(e) => e,
        other => panic!("{other:?}"),
    };
    // A root that is not one setup registered.
    let e = ask_error(Request::ApplyRelease(Box::new(ApplyRelease {
        root: "relative/dir".into(),
        release: "1".into(),
        timeout_ms: 10_000,
    })));
    assert_eq!(e.kind, ErrorKind::Forbidden);
    assert!(e.message.contains("not a deploy root"), "{}", e.message);
    // A prepared release without an ecosystem file.
    let dir = r.agent.work.path().join("releases/empty");
    std::fs::create_dir_all(&dir).unwrap();
    let req = tls::prepare_release(
        r.agent.home.path(),
        &dir,
        "production",
        &BTreeMap::new(),
        10_000,
    );
    let e = ask_error(Request::ApplyRelease(Box::new(req)));
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.message.contains("ecosystem"), "{}", e.message);
    // A directory and ecosystem file of the client's choosing: the local socket's only.
    let e = ask_error(Request::ApplyDir(Box::new(ApplyDir {
        release_dir: dir.clone(),
        ecosystem: Some(PathBuf::from("../../etc/passwd")),
        env_name: None,
        env: BTreeMap::new(),
        timeout_ms: 10_000,
        secrets_file: None,
    })));
    assert_eq!(e.kind, ErrorKind::Forbidden);

    for req in [Request::Kill, Request::ReloadTls] {
        match r.ask(&req) {
            Response::Error(e) => assert_eq!(e.kind, ErrorKind::Forbidden, "{req:?}"),
            other => panic!("{req:?}: {other:?}"),
        }
    }
    r.still_serves();
    assert!(r.agent.list().is_empty());
}
