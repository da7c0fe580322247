//! `pmfleet-agent upgrade`: the daemon becomes a new binary in place. Under HTTP load, with a
//! cluster app, a fork app writing numbered log lines and a crashing app: no failed request,
//! the same processes (pids, restart counts, uptime), every log line exactly once, and the
//! adopted processes still supervised (restarted when killed, stopped on request). A binary
//! that cannot run leaves the agent as it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pmfleet_shared::protocol::{ErrorKind, Request, Response, read_frame, write_frame};
use pmfleet_testkit::{AgentHome, Load, free_port, get, pid_alive, wait_until};
use serde_json::Value;

fn ecosystem(agent: &AgentHome, port: u16) {
    agent.fixture("server.js");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/crash.js"),
        agent.work.path().join("crash.js"),
    )
    .unwrap();
    agent.write(
        "counter.sh",
        "i=0\nwhile true; do echo \"line $i\"; i=$((i + 1)); sleep 0.005; done\n",
    );
    // Each line is written in two halves, 0.3 s apart: an upgrade lands between them.
    agent.write(
        "halves.sh",
        "i=0\nwhile true; do printf 'half %d ' $i; sleep 0.3; echo \"whole $i\"; i=$((i + 1)); done\n",
    );
    agent.write(
        "ecosystem.config.js",
        &format!(
            r#"module.exports = {{
  apps: [
    {{ name: "api", script: "server.js", exec_mode: "cluster", instances: 2, port: {port} }},
    {{ name: "counter", script: "counter.sh", interpreter: "/bin/sh" }},
    {{ name: "halves", script: "halves.sh", interpreter: "/bin/sh" }},
    {{ name: "crasher", script: "crash.js", min_uptime: 10, restart_delay: 400,
       max_restarts: 1000, env: {{ CRASH_AFTER_MS: "300" }} }},
  ]
}};
"#
        ),
    );
}

/// A copy of the agent binary that differs from it (one byte appended), as a newer build would.
fn new_binary(agent: &AgentHome) -> PathBuf {
    let path = agent.work.path().join("pmfleet-agent-new");
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_pmfleet-agent")).unwrap();
    bytes.push(b'\n');
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// (pid, restarts, uptime_ms) of every instance of `app`.
fn instances(agent: &AgentHome, app: &str) -> Vec<(u64, u64, u64)> {
    agent
        .procs(app)
        .iter()
        .map(|p: &Value| {
            (
                p["pid"].as_u64().unwrap_or(0),
                p["restarts"].as_u64().unwrap(),
                p["uptime_ms"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// The numbers of the counter's log lines, checked to run on without a gap or a repeat.
fn counted_lines(agent: &AgentHome) -> usize {
    let log = std::fs::read_to_string(agent.home.path().join("logs/counter-out.log")).unwrap();
    let numbers: Vec<u64> = log
        .lines()
        .map(|l| {
            l.strip_prefix("line ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a counter line: {l:?}"))
        })
        .collect();
    for pair in numbers.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "a line lost or repeated: {pair:?}");
    }
    numbers.len()
}

/// Send `upgrade` over the control socket as a client of another version would.
fn raw_upgrade(agent: &AgentHome, binary: &str, handover: u32) -> Response {
    let socket = agent.home.path().join("agent.sock");
    let request = Request::Upgrade {
        binary: binary.into(),
        handover,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
            write_frame(&mut stream, &request).await.unwrap();
            read_frame::<Response>(&mut stream).await.unwrap().unwrap()
        })
}

#[test]
fn upgrade_keeps_every_app_running_serving_and_logging() {
    let agent = AgentHome::new();
    let port = free_port();
    ecosystem(&agent, port);
    agent.ok(&["start", "ecosystem.config.js"]);
    agent.wait_online("api", 2);
    agent.wait_online("counter", 1);
    wait_until(Duration::from_secs(10), "serving", || get(port).is_ok());
    let daemon = agent.daemon_pid();
    let new = new_binary(&agent);
    let api = instances(&agent, "api");
    let counter = instances(&agent, "counter");
    let crasher_restarts = instances(&agent, "crasher")[0].1;

    let load = Load::start(port, 4, u64::MAX, Duration::from_secs(120));
    wait_until(Duration::from_secs(10), "load running", || {
        load.ok_so_far() > 200
    });
    let out = agent.ok(&["upgrade", "--binary", new.to_str().unwrap()]);
    assert!(out.contains("upgraded in place"), "{out}");
    assert!(out.contains("kept running"), "{out}");
    assert_eq!(agent.daemon_pid(), daemon);
    assert_eq!(
        std::fs::read_link(format!("/proc/{daemon}/exe")).unwrap(),
        new,
        "the daemon runs the new binary"
    );
    // And back again, with the original binary, still under load.
    let seen = load.ok_so_far();
    wait_until(
        Duration::from_secs(10),
        "requests after the upgrade",
        || load.ok_so_far() > seen + 200,
    );
    agent.ok(&["upgrade", "--binary", env!("CARGO_BIN_EXE_pmfleet-agent")]);
    let seen = load.ok_so_far();
    wait_until(Duration::from_secs(10), "requests after the second", || {
        load.ok_so_far() > seen + 200
    });
    let report = load.finish();
    assert_eq!(report.failed, 0, "failed requests: {:?}", report.errors);
    eprintln!("{} requests across two upgrades, 0 failed", report.ok);

    // The very same processes, their restart counts and their uptime carried on.
    for (app, before) in [("api", &api), ("counter", &counter)] {
        let after = instances(&agent, app);
        assert_eq!(after.len(), before.len(), "{app}");
        for (b, a) in before.iter().zip(&after) {
            assert_eq!((a.0, a.1), (b.0, b.1), "{app}: pid and restarts kept");
            assert!(a.2 >= b.2, "{app}: uptime went on: {b:?} -> {a:?}");
        }
    }
    assert_eq!(agent.daemon_pid(), daemon);
    // The crashing app, handed over online or waiting its restart delay, keeps being
    // restarted by its policy.
    wait_until(Duration::from_secs(15), "crasher restarted", || {
        instances(&agent, "crasher")[0].1 >= crasher_restarts + 3
    });

    // Every line the counter wrote, once, in order, across both upgrades (and still writing).
    let so_far = counted_lines(&agent);
    wait_until(Duration::from_secs(10), "the counter logging on", || {
        counted_lines(&agent) > so_far
    });
    let lines = counted_lines(&agent);
    assert!(lines > 100, "only {lines} lines");
    // A line half written when the agent changed binary is still one line.
    let halves = std::fs::read_to_string(agent.home.path().join("logs/halves-out.log")).unwrap();
    for (i, line) in halves.lines().enumerate() {
        assert_eq!(line, format!("half {i} whole {i}"), "in:\n{halves}");
    }
    assert!(halves.lines().count() >= 2, "{halves}");

    // Adopted processes are still supervised: killed → restarted; stopped → gone.
    let counter_pid = counter[0].0 as u32;
    // SAFETY: a plain kill(2) on a pid this test's agent started.
    unsafe { libc::kill(counter_pid as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(10), "counter restarted", || {
        let now = instances(&agent, "counter");
        now[0].0 != 0 && now[0].0 != counter[0].0 && now[0].1 == counter[0].1 + 1
    });
    agent.ok(&["stop", "api"]);
    for (pid, ..) in &api {
        assert!(!pid_alive(*pid as u32), "api instance {pid} still running");
    }
    assert!(get(port).is_err(), "stopped app still answers");
    agent.ok(&["start", "ecosystem.config.js", "--only", "api"]);
    wait_until(Duration::from_secs(10), "serving again", || {
        get(port).is_ok()
    });
}

#[test]
fn a_binary_that_cannot_run_leaves_the_agent_as_it_was() {
    let agent = AgentHome::new();
    let port = free_port();
    ecosystem(&agent, port);
    agent.ok(&["start", "ecosystem.config.js", "--only", "api,counter"]);
    agent.wait_online("api", 2);
    agent.wait_online("counter", 1);
    let daemon = agent.daemon_pid();
    let api = instances(&agent, "api");

    // A new binary that reads another handover format: refused, said to be a version
    // mismatch (the CLI then exits 3, and setup restarts the agent instead).
    let answer = raw_upgrade(&agent, env!("CARGO_BIN_EXE_pmfleet-agent"), 99);
    match answer {
        Response::Error(e) => {
            assert_eq!(e.kind, ErrorKind::Version, "{e:?}");
            assert!(e.message.contains("format 99"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    // A relative path: refused.
    match raw_upgrade(&agent, "pmfleet-agent", 1) {
        Response::Error(e) => assert!(e.message.contains("absolute"), "{}", e.message),
        other => panic!("{other:?}"),
    }

    // Not executable: refused before anything is touched.
    let text = agent.write("notes.txt", "not a program\n");
    let err = agent.fails(&["upgrade", "--binary", text.to_str().unwrap()]);
    assert!(err.contains("not an executable file"), "{err}");

    // Executable but not a program this host can run: the exec fails, every app resumes.
    let junk = agent.write("junk-agent", "\x7fELF but not really\n");
    std::fs::set_permissions(&junk, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let err = agent.fails(&["upgrade", "--binary", junk.to_str().unwrap()]);
    assert!(err.contains("could not become"), "{err}");
    assert!(err.contains("as before"), "{err}");
    assert_eq!(agent.daemon_pid(), daemon);
    let after = instances(&agent, "api");
    assert_eq!(
        after.iter().map(|i| i.0).collect::<Vec<_>>(),
        api.iter().map(|i| i.0).collect::<Vec<_>>()
    );
    assert!(get(port).is_ok(), "still serving");
    let before = counted_lines(&agent);
    wait_until(Duration::from_secs(10), "the counter still logged", || {
        counted_lines(&agent) > before + 20
    });

    // A real upgrade still works afterwards.
    let new = new_binary(&agent);
    let out = agent.ok(&["upgrade", "--binary", new.to_str().unwrap()]);
    assert!(
        out.contains("3 of 3 running instance(s) kept running"),
        "{out}"
    );
    assert!(get(port).is_ok());
}
