//! The agent's mutual-TLS endpoint, end to end: a real daemon with a fleet identity in its
//! home (made at test time), a client with a fleet certificate asking for `status`, `list`,
//! `logs` and `apply_release` — a release started, reloaded under load without a failed
//! request, and a release that never becomes ready leaving the previous one serving — and
//! every client that must be refused, each refusal followed by a good client that still gets
//! an answer.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pmfleet_shared::protocol::{
    AppliedAction, ApplyRelease, ApplyReport, ErrorKind, MAX_FRAME_LEN, Request, Response,
};
use pmfleet_testkit as common;
use pmfleet_testkit::tls::{self, Ca};
use pmfleet_testkit::{AgentHome as Agent, Load, free_port, get, wait_until};
use rustls::ClientConfig;

/// A daemon serving mutual TLS with `ca`'s identity, and a client certificate of that CA.
struct Remote {
    agent: Agent,
    addr: SocketAddr,
    ca: Ca,
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
            ca,
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

    fn apply(&self, release: &Path) -> ApplyReport {
        let req = Request::ApplyRelease(Box::new(ApplyRelease {
            release_dir: release.to_path_buf(),
            ecosystem: None,
            env_name: Some("production".into()),
            env: BTreeMap::from([
                ("DEPLOY_ONLY".to_string(), "d".to_string()),
                ("SHARED".to_string(), "deploy".to_string()),
            ]),
            timeout_ms: 60_000,
        }));
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

fn api_spec(r: &Remote) -> pmfleet_shared::protocol::AppSpec {
    match r.ask(&Request::Show { app: "api".into() }) {
        Response::App { app } => app.spec,
        other => panic!("{other:?}"),
    }
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
    let bad = |release_dir: &str, ecosystem: Option<&str>| {
        let req = Request::ApplyRelease(Box::new(ApplyRelease {
            release_dir: release_dir.into(),
            ecosystem: ecosystem.map(PathBuf::from),
            env_name: None,
            env: BTreeMap::new(),
            timeout_ms: 10_000,
        }));
        match r.ask(&req) {
            Response::Error(e) => e,
            other => panic!("{other:?}"),
        }
    };
    let e = bad("relative/dir", None);
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.message.contains("not an absolute path"), "{}", e.message);
    let dir = r.agent.work.path().join("empty");
    std::fs::create_dir_all(&dir).unwrap();
    let e = bad(dir.to_str().unwrap(), None);
    assert!(e.message.contains("ecosystem"), "{}", e.message);
    let e = bad(dir.to_str().unwrap(), Some("../../etc/passwd"));
    assert!(e.message.contains("inside the release"), "{}", e.message);

    for req in [Request::Kill, Request::ReloadTls] {
        match r.ask(&req) {
            Response::Error(e) => assert_eq!(e.kind, ErrorKind::Forbidden, "{req:?}"),
            other => panic!("{req:?}: {other:?}"),
        }
    }
    r.still_serves();
    assert!(r.agent.list().is_empty());
}

/// Expect `config`'s request to be refused, then a good client to be served.
fn refused(r: &Remote, config: Arc<ClientConfig>, what: &str) {
    let started = Instant::now();
    let answer = r.ask_with(config, &Request::Status);
    assert!(answer.is_err(), "{what}: got {answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{what}: refused only after {:?}",
        started.elapsed()
    );
    r.still_serves();
}

#[test]
fn clients_without_a_valid_fleet_certificate_are_refused() {
    let r = Remote::start();
    r.still_serves();

    // Under TLS 1.3 the client's handshake "succeeds"; the refusal arrives on the first read.
    refused(
        &r,
        tls::client_config(&r.ca.pem, None),
        "no client certificate",
    );
    let other = Ca::new("another CA");
    // Trusts our agent (ca.pem) but presents a certificate of another CA.
    refused(
        &r,
        tls::client_config(&r.ca.pem, Some(&other.client(100))),
        "a certificate from another CA",
    );
    refused(
        &r,
        tls::client_config(&r.ca.pem, Some(&r.ca.expired_client(101))),
        "an expired certificate",
    );

    // Revocation: a CRL installed later applies after `tls reload`, to new connections.
    let revoked = tls::client_config(&r.ca.pem, Some(&r.ca.client(102)));
    assert!(r.ask_with(revoked.clone(), &Request::Status).is_ok());
    std::fs::write(r.agent.home.path().join("tls/crl.pem"), r.ca.crl(&[102])).unwrap();
    let out = r.agent.ok(&["tls", "reload"]);
    assert!(
        out.contains("reloaded") && out.contains("with a CRL"),
        "{out}"
    );
    refused(&r, revoked, "a revoked certificate");
}

#[test]
fn plaintext_silent_and_oversized_clients_do_not_disturb_the_others() {
    let r = Remote::start();

    // Plaintext: the handshake fails and the connection is closed.
    let mut plain = std::net::TcpStream::connect(r.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = plain.read(&mut buf).unwrap_or(0);
    // Whatever came back (a TLS alert at most), it is no HTTP and the connection ends.
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("HTTP"));
    r.still_serves();

    // A TCP client that never says a word: the others are served meanwhile, and it is
    // dropped once the handshake timeout (5 s) passes.
    let mut silent = std::net::TcpStream::connect(r.addr).unwrap();
    let since = Instant::now();
    r.still_serves();
    assert!(since.elapsed() < Duration::from_secs(3));
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let n = silent.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the silent client gets nothing");
    let waited = since.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(12),
        "closed after {waited:?}"
    );

    // A frame over the cap: answered with an error, then the connection is closed.
    let answer = r.rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let mut c = tls::connect(r.addr, r.good.clone()).await.unwrap();
        c.stream
            .write_all(&(MAX_FRAME_LEN + 1).to_be_bytes())
            .await
            .unwrap();
        c.stream.flush().await.unwrap();
        let first = c.recv(Duration::from_secs(10)).await;
        let second = c.recv(Duration::from_secs(10)).await;
        (first, second)
    });
    match answer.0 {
        Ok(Response::Error(e)) => {
            assert_eq!(e.kind, ErrorKind::Invalid);
            assert!(e.message.contains("larger than"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        answer.1.is_err(),
        "the connection must be closed: {:?}",
        answer.1
    );
    r.still_serves();
}

#[test]
fn connections_over_the_cap_are_closed_at_once() {
    let r = Remote::start();
    let idle: Vec<_> = (0..64)
        .map(|_| std::net::TcpStream::connect(r.addr).unwrap())
        .collect();
    // Let the daemon accept all of them.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let answer = r.ask_with(r.good.clone(), &Request::Status);
    assert!(
        answer.is_err(),
        "the 65th connection must be closed: {answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
    wait_until(Duration::from_secs(5), "a free connection slot", || {
        r.ask_with(r.good.clone(), &Request::Status).is_ok()
    });
}
