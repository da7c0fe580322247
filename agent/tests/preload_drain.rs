//! The Node preload (`agent/preload/cluster.js`) with real `node` processes sharing one
//! listening socket, the way the agent runs an unmodified app in cluster mode: a rolling restart
//! under keep-alive load must not fail a single request.

use std::time::Duration;

use pmfleet_testkit::http::get_on;
use pmfleet_testkit::instance::{Launch, describe, listener, start};
use pmfleet_testkit::{Load, LoadReport, wait_for};

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const EXIT_TIMEOUT: Duration = Duration::from_secs(8);
/// How long the load may take to answer the requests a step waits for.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn rolling_restart_under_keep_alive_load_fails_no_request() {
    let sock = listener();
    let addr = sock.local_addr().expect("addr");
    // One instance is told its own pid (the shim), the other finds LISTEN_PID unset.
    let mut a = start(
        Launch::node("hello.js", &sock)
            .listen_pid()
            .env("PMFLEET_NOTIFY_ON_LISTEN", "1"),
    );
    let mut b = start(Launch::node("hello.js", &sock).env("PMFLEET_NOTIFY_ON_LISTEN", "1"));
    assert!(a.wait_ready(READY_TIMEOUT).is_some(), "a: {}", a.output());
    assert!(b.wait_ready(READY_TIMEOUT).is_some(), "b: {}", b.output());

    // Keep-alive clients, some requests still in flight when a signal arrives.
    let load = Load::keep_alive(addr, 16, 7);
    load.wait_more(1000, LOAD_TIMEOUT);
    let before = load.snapshot();
    assert!(
        before.by_pid.contains_key(&a.pid()) && before.by_pid.contains_key(&b.pid()),
        "both instances serve: {before:?}"
    );

    a.signal(libc::SIGINT);
    let status = a.wait_exit(EXIT_TIMEOUT).expect("a exits after draining");
    // No handler of its own: it ends the way SIGINT ends a Node process.
    assert_eq!(describe(status), "signal 2", "{}", a.output());
    load.wait_more(300, LOAD_TIMEOUT);

    let mut c = start(Launch::node("hello.js", &sock).env("PMFLEET_NOTIFY_ON_LISTEN", "1"));
    assert!(c.wait_ready(READY_TIMEOUT).is_some(), "c: {}", c.output());
    load.wait_more(300, LOAD_TIMEOUT);
    b.signal(libc::SIGINT);
    let status = b.wait_exit(EXIT_TIMEOUT).expect("b exits after draining");
    assert_eq!(describe(status), "signal 2", "{}", b.output());
    let after_b = load.snapshot();
    load.wait_more(300, LOAD_TIMEOUT);
    let stats = load.finish();

    assert_eq!(stats.failed, 0, "failed requests: {:#?}", stats.errors);
    assert!(
        stats.ok > 1000,
        "too little load to mean anything: {stats:?}"
    );
    let served = |s: &LoadReport, pid: u32| s.by_pid.get(&pid).copied().unwrap_or(0);
    assert!(served(&stats, c.pid()) > 0, "c serves: {stats:?}");
    assert_eq!(
        served(&stats, b.pid()),
        served(&after_b, b.pid()),
        "b served after it exited"
    );
    // Connections were handed over, not held: more connections than clients were opened.
    assert!(stats.connects > 16, "{stats:?}");
    c.signal(libc::SIGTERM);
    let status = c
        .wait_exit(EXIT_TIMEOUT)
        .expect("idle instance exits on SIGTERM");
    assert_eq!(describe(status), "signal 15");
}

#[test]
fn app_with_its_own_sigint_handler_still_drains() {
    let sock = listener();
    let addr = sock.local_addr().expect("addr");
    let mut a = start(
        Launch::node("hello.js", &sock)
            .env("PMFLEET_NOTIFY_ON_LISTEN", "1")
            .env("HELLO_OWN_SIGINT", "1"),
    );
    let b = start(Launch::node("hello.js", &sock).env("PMFLEET_NOTIFY_ON_LISTEN", "1"));
    assert!(a.wait_ready(READY_TIMEOUT).is_some(), "a: {}", a.output());
    assert!(b.wait_ready(READY_TIMEOUT).is_some(), "b: {}", b.output());

    let load = Load::keep_alive(addr, 16, 7);
    load.wait_more(1000, LOAD_TIMEOUT);
    a.signal(libc::SIGINT);
    assert!(a.wait_line("STOPPING=1", EXIT_TIMEOUT).is_some());
    let status = a.wait_exit(EXIT_TIMEOUT).expect("a exits");
    load.wait_more(200, LOAD_TIMEOUT);
    let stats = load.finish();

    // The app's handler ran and exited when its server.close() called back, i.e. after the
    // drain, not by cutting idle keep-alive connections.
    assert_eq!(describe(status), "exit code 0", "{}", a.output());
    let out = a.output();
    assert!(
        out.contains("own SIGINT handler") && out.contains("server closed"),
        "{out}"
    );
    assert_eq!(stats.failed, 0, "failed requests: {:#?}", stats.errors);
    assert!(stats.ok > 500, "{stats:?}");
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_grace_period() {
    let sock = listener();
    let addr = sock.local_addr().expect("addr");
    let mut a = start(
        Launch::node("hello.js", &sock)
            .env("PMFLEET_NOTIFY_ON_LISTEN", "1")
            .env("PMFLEET_DRAIN_IDLE_MS", "300"),
    );
    assert!(a.wait_ready(READY_TIMEOUT).is_some(), "a: {}", a.output());
    // One request, then the connection sits idle.
    let mut idle = std::net::TcpStream::connect(addr).expect("connect");
    let (status, close, _) = get_on(&mut idle, "/").expect("get");
    assert_eq!((status, close), (200, false));

    a.signal(libc::SIGINT);
    let started = std::time::Instant::now();
    let status = a
        .wait_exit(EXIT_TIMEOUT)
        .expect("exits once the idle connection is closed");
    let took = started.elapsed();
    assert_eq!(describe(status), "signal 2");
    assert!(
        took >= Duration::from_millis(250),
        "closed idle connection too early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_request_on_an_idle_connection_during_the_drain_is_answered_with_close() {
    let sock = listener();
    let addr = sock.local_addr().expect("addr");
    let mut a = start(
        Launch::node("hello.js", &sock)
            .env("PMFLEET_NOTIFY_ON_LISTEN", "1")
            .env("PMFLEET_DRAIN_IDLE_MS", "2000"),
    );
    assert!(a.wait_ready(READY_TIMEOUT).is_some(), "a: {}", a.output());
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    get_on(&mut conn, "/").expect("first request");

    a.signal(libc::SIGINT);
    // STOPPING=1 is written in the very turn of the event loop that starts the drain, so the
    // request below is handled by the drain whenever it arrives.
    assert!(a.wait_line("STOPPING=1", EXIT_TIMEOUT).is_some());
    // Node's own server.close() would have closed this idle connection right away.
    let (status, close, body) = get_on(&mut conn, "/").expect("answered while draining");
    assert_eq!((status, close), (200, true), "{body}");
    assert!(body.contains(&a.pid().to_string()));
    let status = a
        .wait_exit(EXIT_TIMEOUT)
        .expect("exits after the last connection");
    assert_eq!(describe(status), "signal 2");
}

#[test]
fn wait_ready_through_process_send() {
    let sock = listener();
    let addr = sock.local_addr().expect("addr");
    // No PMFLEET_NOTIFY_ON_LISTEN: only the app's process.send('ready') counts.
    let a = start(Launch::node("slow_ready.js", &sock).env("READY_DELAY_MS", "800"));
    // It listens (on the inherited socket, through the `{port, host}` form) before it is ready.
    let (status, _, body) = wait_for(READY_TIMEOUT, "an answer before ready", || {
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        get_on(&mut s, "/").ok()
    });
    assert_eq!((status, body.as_str()), (503, "warming up\n"));
    let took = a.wait_ready(READY_TIMEOUT).expect("ready");
    assert!(
        took >= Duration::from_millis(800),
        "ready too early: {took:?}"
    );
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let (status, _, _) = get_on(&mut s, "/").expect("get");
    assert_eq!(status, 200);
}

#[test]
fn never_ready_app_sends_nothing_and_keeps_default_signals() {
    let sock = listener();
    let mut a = start(Launch::node("never_ready.js", &sock).env("PMFLEET_NOTIFY_ON_LISTEN", "1"));
    assert_eq!(a.wait_ready(Duration::from_millis(1500)), None);
    // It never listened, so the preload installed no signal handler: SIGINT ends it at once.
    a.signal(libc::SIGINT);
    let status = a.wait_exit(Duration::from_secs(2)).expect("exits");
    assert_eq!(describe(status), "signal 2");
}

#[test]
fn only_the_first_server_takes_the_inherited_socket() {
    let sock = listener();
    let port = sock.local_addr().expect("addr").port();
    let script = r#"
        const http = require('http');
        const a = http.createServer((q, s) => s.end('a'));
        a.listen(Number(process.env.PORT), '0.0.0.0', 511, () => {
          const b = http.createServer((q, s) => s.end('b'));
          b.listen(0, '127.0.0.1', () => {
            console.log(JSON.stringify({ a: a.address().port, b: b.address().port }));
            process.exit(0);
          });
        });
    "#;
    let mut a = start(Launch {
        program: "node",
        args: vec!["-e".into(), script.into()],
        ..Launch::node("hello.js", &sock)
    });
    let status = a.wait_exit(EXIT_TIMEOUT).expect("exits");
    assert_eq!(describe(status), "exit code 0", "{}", a.output());
    let out = a.output();
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["a"], port, "{out}");
    assert!(
        v["b"]
            .as_u64()
            .is_some_and(|b| b != 0 && b != u64::from(port)),
        "{out}"
    );
}

#[test]
fn a_listen_pid_of_another_process_is_left_alone() {
    let sock = listener();
    // LISTEN_PID names another process: the app binds PORT itself, which the test holds.
    let mut a = start(Launch::node("hello.js", &sock).env("LISTEN_PID", "1"));
    let status = a.wait_exit(EXIT_TIMEOUT).expect("exits");
    assert_ne!(describe(status), "exit code 0");
    assert!(a.output().contains("EADDRINUSE"), "{}", a.output());
}

#[test]
fn readiness_on_a_unix_stream_socket() {
    use std::io::{BufRead, BufReader};
    let sock = listener();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ready.sock");
    let ready = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let mut a = start(
        Launch::node("hello.js", &sock)
            .env("PMFLEET_NOTIFY_ON_LISTEN", "1")
            .env("PMFLEET_READY_SOCKET", path.display().to_string()),
    );
    let (conn, _) = ready.accept().expect("the preload connects");
    conn.set_read_timeout(Some(READY_TIMEOUT)).expect("timeout");
    let mut lines = BufReader::new(conn).lines();
    let next = |lines: &mut std::io::Lines<_>| lines.next().and_then(Result::ok);
    assert_eq!(next(&mut lines).as_deref(), Some("READY=1"));
    // The connection stays open for later messages, without keeping the app alive.
    a.signal(libc::SIGINT);
    assert_eq!(next(&mut lines).as_deref(), Some("STOPPING=1"));
    let status = a.wait_exit(EXIT_TIMEOUT).expect("exits");
    assert_eq!(describe(status), "signal 2");
    assert_eq!(next(&mut lines), None);
}
