//! The sample apps under `agent/tests/apps/` behave as their headers promise, so supervisor
//! tests can rely on them: the Python app that speaks the socket and readiness protocol natively,
//! the crasher, the memory grower (seen through `metrics`) and the signal ignorer.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use pmfleet_agent::metrics::{Sampler, tree_pids};
use pmfleet_testkit::assets::agent_app;
use pmfleet_testkit::instance::{Launch, describe, listener, start};
use pmfleet_testkit::{Load, wait_for, wait_until};

const TIMEOUT: Duration = Duration::from_secs(10);
/// How long the load may take to answer the requests a step waits for.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

fn launch<'a>(program: &'a str, script: &str) -> Launch<'a> {
    Launch {
        program,
        args: vec![agent_app(script).display().to_string()],
        env: Vec::new(),
        listener: None,
        listen_pid: false,
        preload: false,
    }
}

#[test]
fn python_app_on_fd_3_with_sd_notify_and_a_clean_drain() {
    let sock = listener();
    let addr = sock.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    notify
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");

    let python = |with_notify: bool| {
        let mut l = launch("python3", "fd3_server.py").listen_pid();
        l.listener = Some(&sock);
        if with_notify {
            l = l.env("NOTIFY_SOCKET", notify_path.display().to_string());
        }
        start(l)
    };
    let mut a = python(true);
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 datagram");
    assert_eq!(&buf[..n], b"READY=1");
    let b = python(false);
    assert!(b.wait_ready(TIMEOUT).is_some(), "b: {}", b.output());
    assert!(a.wait_ready(TIMEOUT).is_some(), "a reports on the pipe too");

    let load = Load::keep_alive(addr, 8, 0);
    load.wait_more(500, LOAD_TIMEOUT);
    a.signal(libc::SIGTERM);
    let status = a.wait_exit(TIMEOUT).expect("a drains and exits");
    load.wait_more(200, LOAD_TIMEOUT);
    let stats = load.finish();
    assert_eq!(describe(status), "exit code 0", "{}", a.output());
    assert!(a.output().contains("drained"), "{}", a.output());
    assert_eq!(stats.failed, 0, "failed requests: {:#?}", stats.errors);
    assert!(stats.by_pid.contains_key(&a.pid()) && stats.by_pid.contains_key(&b.pid()));
}

#[test]
fn crash_app_exits_with_its_code_and_logs_both_streams() {
    let mut c = start(
        launch("node", "crash.js")
            .env("CRASH_CODE", "7")
            .env("CRASH_AFTER_MS", "50"),
    );
    let status = c.wait_exit(TIMEOUT).expect("exits");
    assert_eq!(describe(status), "exit code 7");
    c.wait_output_closed(TIMEOUT);
    let out = c.output();
    assert!(
        out.contains("starting") && out.contains("about to fail"),
        "{out}"
    );
}

#[test]
fn memory_grower_grows_in_rss() {
    let g = start(
        launch("node", "memory_grower.js")
            .env("GROW_MB_PER_SEC", "40")
            .env("GROW_MAX_MB", "200"),
    );
    let mut sampler = Sampler::new();
    let first = sampler.sample(g.pid()).expect("sample").rss_bytes;
    let deadline = Instant::now() + TIMEOUT;
    let mut last = first;
    while Instant::now() < deadline && last < first + (100 << 20) {
        std::thread::sleep(Duration::from_millis(200));
        last = sampler.sample(g.pid()).expect("sample").rss_bytes;
    }
    assert!(
        last >= first + (100 << 20),
        "RSS went from {first} to {last}: {}",
        g.output()
    );
}

#[test]
fn sigint_ignorer_and_its_grandchild_need_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("grandchild.pid");
    let mut s = start(
        launch("sh", "sigint_ignorer.sh")
            .env("GRANDCHILD_PID_FILE", pid_file.display().to_string()),
    );
    let grandchild: u32 = wait_for(TIMEOUT, "the grandchild's pid file", || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    });
    assert!(tree_pids(s.pid()).contains(&grandchild));

    s.signal(libc::SIGINT);
    s.signal(libc::SIGTERM);
    // SAFETY: kill only sends a signal.
    unsafe { libc::kill(grandchild as i32, libc::SIGINT) };
    assert_eq!(
        s.wait_exit(Duration::from_millis(700)),
        None,
        "ignores SIGINT and SIGTERM"
    );
    assert!(std::path::Path::new(&format!("/proc/{grandchild}")).exists());

    // What the agent does after kill_timeout: SIGKILL to the process group.
    // SAFETY: kill only sends a signal, to the group the test created.
    unsafe { libc::kill(-(s.pid() as i32), libc::SIGKILL) };
    let status = s.wait_exit(TIMEOUT).expect("killed");
    assert_eq!(describe(status), "signal 9");
    wait_until(TIMEOUT, &format!("grandchild {grandchild} gone"), || {
        gone_or_zombie(grandchild)
    });
}

/// True when `pid` no longer runs (gone, or a zombie waiting for init to reap it).
fn gone_or_zombie(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}
