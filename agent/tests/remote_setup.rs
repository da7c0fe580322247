//! What the controller's setup does on a host, through the agent's CLI: `version`, `tls
//! request` (a key that stays on the host and a CSR), installing the signed certificate,
//! `tls status --json` for the idempotency check, `ping` starting a daemon that outlives the
//! session that started it, `daemon --tls-listen`, a half-installed identity that leaves the
//! local socket working, and cluster apps bound to `bind-address`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pmfleet_shared::protocol::{Request, Response};
use pmfleet_testkit::tls::{self, Ca};
use pmfleet_testkit::{AgentHome, free_port, get, pid_alive, wait_until};
use serde_json::Value;

fn tls_status(agent: &AgentHome) -> Value {
    serde_json::from_str(&agent.ok(&["tls", "status", "--json"])).unwrap()
}

#[test]
fn version_is_printed_for_the_controller() {
    let agent = AgentHome::new();
    let want = format!("pmfleet-agent {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(agent.ok(&["version"]), want);
    assert_eq!(agent.ok(&["--version"]), want);
    let json: Value = serde_json::from_str(&agent.ok(&["version", "--json"])).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    // No daemon was needed for any of it.
    assert!(!agent.home.path().join("agent.pid").exists());
}

#[test]
fn csr_on_the_host_certificate_installed_then_served_over_mutual_tls() {
    let agent = AgentHome::new();
    let st = tls_status(&agent);
    assert_eq!(st["configured"], false);
    assert_eq!(st["key"], false);

    let csr = agent.ok(&[
        "tls",
        "request",
        "--san",
        "127.0.0.1",
        "--san",
        "agent.test",
    ]);
    assert!(
        csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
        "{csr}"
    );
    assert!(
        !csr.contains("PRIVATE KEY"),
        "the key never leaves the host"
    );
    let key = agent.home.path().join("tls/agent.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let first_key = std::fs::read_to_string(&key).unwrap();
    // Every request makes a new key; the certificate must be signed for the last CSR.
    let csr = agent.ok(&[
        "tls",
        "request",
        "--san",
        "127.0.0.1",
        "--san",
        "agent.test",
    ]);
    assert_ne!(std::fs::read_to_string(&key).unwrap(), first_key);

    // The controller signs the CSR and installs certificate, CA and address.
    let ca = Ca::new("test fleet CA");
    let port = free_port();
    let dir = agent.home.path().join("tls");
    std::fs::write(dir.join("agent.pem"), ca.sign_csr(&csr)).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(dir.join("listen"), format!("127.0.0.1:{port}\n")).unwrap();

    let st = tls_status(&agent);
    assert_eq!(st["configured"], true, "{st}");
    assert_eq!(st["ok"], true, "{st}");
    assert_eq!(st["listen"], format!("127.0.0.1:{port}"));
    assert_eq!(st["sans"], serde_json::json!(["127.0.0.1", "agent.test"]));
    let days = st["expires_in_days"].as_i64().unwrap();
    assert!((28..=30).contains(&days), "{st}");
    assert!(st["not_after"].as_str().unwrap().ends_with('Z'), "{st}");
    let text = agent.ok(&["tls", "status"]);
    assert!(text.contains("127.0.0.1, agent.test"), "{text}");

    agent.ok(&["ping"]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until(Duration::from_secs(10), "the TLS endpoint", || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    let rt = tls::runtime();
    let good = tls::client_config(&ca.pem, Some(&ca.client(7)));
    let answer = rt
        .block_on(tls::request(
            addr,
            good,
            &Request::Ping,
            Duration::from_secs(10),
        ))
        .unwrap();
    assert!(matches!(answer, Response::Pong { .. }), "{answer:?}");
}

#[test]
fn the_daemon_outlives_the_session_that_started_it() {
    let agent = AgentHome::new();
    // Like `ssh host pmfleet-agent ping`: a session whose process group gets SIGHUP when it
    // ends, with pipes the caller waits on until every holder has closed them.
    let exe = env!("CARGO_BIN_EXE_pmfleet-agent");
    let mut session = std::process::Command::new("sh");
    session
        .arg("-c")
        .arg(r#""$0" ping && kill -HUP 0"#)
        .arg(exe)
        .env("PMFLEET_AGENT_HOME", agent.home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let child = session.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the session's pipes must close when it ends, not when the daemon does")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("running as pid"),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    let pid = agent.daemon_pid();
    std::thread::sleep(Duration::from_millis(300));
    assert!(pid_alive(pid), "the daemon died with its session");
    // It is the same daemon that answers now, in a session of its own.
    let again = agent.ok(&["ping"]);
    assert!(again.contains(&format!("pid {pid}")), "{again}");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // Field 6 (session id) is its own pid: setsid.
    assert_eq!(fields[3], pid.to_string(), "{stat}");
    // SIGHUP itself does not end it either.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(pid_alive(pid));
    assert!(agent.ok(&["ping"]).contains(&format!("pid {pid}")));
}

#[test]
fn a_half_installed_identity_is_logged_and_the_local_socket_still_serves() {
    let agent = AgentHome::new();
    let ca = Ca::new("test fleet CA");
    let dir = agent.home.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    let st = tls_status(&agent);
    assert_eq!(st["configured"], true);
    assert_eq!(st["ok"], false);
    assert!(
        st["error"]
            .as_str()
            .unwrap()
            .contains("agent.pem, agent.key missing"),
        "{st}"
    );
    agent.ok(&["ping"]);
    assert!(agent.list().is_empty());
    let log = agent.daemon_log();
    assert!(
        log.contains("agent.pem, agent.key missing; serving the local socket only"),
        "{log}"
    );

    // A certificate of another key: said so, too.
    let other = ca.agent();
    std::fs::write(dir.join("agent.pem"), &other.cert).unwrap();
    agent.ok(&["tls", "request", "--san", "127.0.0.1"]);
    let err = agent.fails(&["tls", "reload"]);
    assert!(err.contains("is not the certificate of the key"), "{err}");
    // Completing it and reloading turns the endpoint on without a restart.
    let pid = agent.daemon_pid();
    let port = free_port();
    std::fs::write(dir.join("agent.pem"), &other.cert).unwrap();
    std::fs::write(dir.join("agent.key"), &other.key).unwrap();
    std::fs::write(dir.join("listen"), format!("127.0.0.1:{port}")).unwrap();
    let out = agent.ok(&["tls", "reload"]);
    assert!(
        out.contains(&format!("serving mutual TLS on 127.0.0.1:{port}")),
        "{out}"
    );
    assert_eq!(agent.daemon_pid(), pid);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let rt = tls::runtime();
    let good = tls::client_config(&ca.pem, Some(&ca.client(9)));
    let answer = rt
        .block_on(tls::request(
            addr,
            good,
            &Request::Status,
            Duration::from_secs(10),
        ))
        .unwrap();
    assert!(matches!(answer, Response::Status(_)), "{answer:?}");
}

#[test]
fn daemon_tls_listen_overrides_the_file() {
    let agent = AgentHome::new();
    let ca = Ca::new("test fleet CA");
    let file_port = free_port();
    ca.install(agent.home.path(), &format!("127.0.0.1:{file_port}"));
    let port = free_port();
    let mut daemon = agent
        .command()
        .args(["daemon", "--tls-listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until(Duration::from_secs(10), "the TLS endpoint", || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    assert!(std::net::TcpStream::connect(("127.0.0.1", file_port)).is_err());
    agent.ok(&["kill"]);
    let _ = daemon.wait();
}

#[test]
fn cluster_apps_listen_on_the_bind_address() {
    let agent = AgentHome::new();
    std::fs::create_dir_all(agent.home.path()).unwrap();
    std::fs::write(agent.home.path().join("bind-address"), "127.0.0.1\n").unwrap();
    agent.fixture("server.js");
    let port = free_port();
    agent.ok(&[
        "start",
        "server.js",
        "--name",
        "api",
        "-i",
        "2",
        "--port",
        &port.to_string(),
        "--healthcheck",
        "/",
    ]);
    agent.wait_online("api", 2);
    wait_until(Duration::from_secs(10), "serving", || get(port).is_ok());
    // Only on 127.0.0.1: another loopback address is refused.
    assert!(std::net::TcpStream::connect(("127.0.0.2", port)).is_err());
    // The health probe finds it there: a reload works.
    let out = agent.ok(&["reload", "api"]);
    assert!(out.contains("zero downtime"), "{out}");
}

#[test]
fn apply_by_hand_starts_leaves_unchanged_and_restarts_a_fork_mode_app() {
    let agent = AgentHome::new();
    let release = |n: u32| {
        let dir = agent.work.path().join(format!("releases/{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tick.sh"), "while true; do sleep 1; done\n").unwrap();
        let eco = serde_json::json!({
            "apps": [{ "name": "tick", "script": "tick.sh", "listen_timeout": 300,
                       "env": { "RELEASE": n.to_string() } }]
        });
        std::fs::write(dir.join("ecosystem.json"), eco.to_string()).unwrap();
        dir
    };
    let one = release(1);
    let report = |args: &[&str]| -> Value {
        let mut all = vec!["apply"];
        all.extend_from_slice(args);
        all.push("--json");
        serde_json::from_str(&agent.ok(&all)).unwrap()
    };
    let r = report(&[one.to_str().unwrap()]);
    assert_eq!(r["apps"][0]["action"], "started", "{r}");
    agent.wait_online("tick", 1);
    let pid = agent.pids("tick");
    let r = report(&[one.to_str().unwrap()]);
    assert_eq!(r["apps"][0]["action"], "unchanged", "{r}");
    assert_eq!(agent.pids("tick"), pid);

    let two = release(2);
    let out = agent.ok(&["apply", two.to_str().unwrap()]);
    assert!(out.contains("fork mode has no rolling reload"), "{out}");
    assert_ne!(agent.pids("tick"), pid);

    // A release whose ecosystem file has no apps: nothing to do, and not an error.
    let empty = agent.work.path().join("releases/3");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("ecosystem.json"), r#"{"apps": []}"#).unwrap();
    let r = report(&[empty.to_str().unwrap()]);
    assert_eq!(r["apps"], serde_json::json!([]), "{r}");
    assert_eq!(
        agent.procs("tick").len(),
        1,
        "apps not in the file are left alone"
    );
}
