//! Stops, crashes and restarts: the restart policy applied to real processes, kill_timeout
//! escalation, process-group cleanup, memory limits and file watching.

use std::time::{Duration, Instant};

use pmfleet_testkit::{AgentHome, Load, free_port, get, pid_alive, wait_until};

/// True once `dir` was listed after its last change: its access time moved past its
/// modification time (`relatime` updates it on the first read after a change). Nothing but
/// the agent's watcher lists the work directory of these tests.
fn listed_since_changed(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).is_ok_and(|m| (m.atime(), m.atime_nsec()) > (m.mtime(), m.mtime_nsec()))
}

fn status(agent: &AgentHome, app: &str) -> String {
    agent
        .procs(app)
        .first()
        .map(|p| p["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn killed_instance_comes_back_online() {
    let agent = AgentHome::new();
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    agent.ok(&["start", "tick.sh", "--name", "tick"]);
    agent.wait_online("tick", 1);
    let pid = agent.pids("tick")[0];
    // SAFETY: signalling a child process this test started through the agent.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(10), "a new pid", || {
        agent.pids("tick").first().is_some_and(|p| *p != pid) && status(&agent, "tick") == "online"
    });
    assert_eq!(agent.procs("tick")[0]["restarts"], 1);
}

#[test]
fn crash_loop_ends_errored() {
    let agent = AgentHome::new();
    agent.write("crash.sh", "echo boom >&2; exit 1\n");
    agent.write(
        "apps.json",
        r#"{"apps": [{"name": "crash", "script": "crash.sh", "max_restarts": 3, "min_uptime": 1000}]}"#,
    );
    agent.ok(&["start", "apps.json"]);
    wait_until(Duration::from_secs(15), "errored", || {
        status(&agent, "crash") == "errored"
    });
    assert_eq!(agent.procs("crash")[0]["restarts"], 3);
    let logs = agent.ok(&["logs", "crash", "--lines", "10", "--nostream"]);
    assert!(logs.contains("boom"), "{logs}");
}

#[test]
fn stop_exit_codes_leave_the_app_stopped() {
    let agent = AgentHome::new();
    agent.write("done.sh", "sleep 0.3; exit 3\n");
    agent.write(
        "apps.json",
        r#"{"apps": [{"name": "done", "script": "done.sh", "stop_exit_codes": [3]}]}"#,
    );
    agent.ok(&["start", "apps.json"]);
    wait_until(Duration::from_secs(10), "stopped", || {
        status(&agent, "done") == "stopped"
    });
    // The point of the test: no restart comes for a while (a restart would come at once).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(status(&agent, "done"), "stopped");
    assert_eq!(agent.procs("done")[0]["restarts"], 0);
}

#[test]
fn app_ignoring_sigint_is_killed_after_kill_timeout() {
    let agent = AgentHome::new();
    agent.write(
        "stubborn.sh",
        "trap '' INT\n: > trapped\nwhile true; do sleep 0.2; done\n",
    );
    agent.ok(&["start", "stubborn.sh", "--kill-timeout", "800"]);
    agent.wait_online("stubborn", 1);
    // The script says when its trap is in place: a SIGINT before that would end it at once.
    let trapped = agent.work.path().join("trapped");
    wait_until(Duration::from_secs(10), "the trap in place", || {
        trapped.exists()
    });
    let pid = agent.pids("stubborn")[0];
    let started = Instant::now();
    agent.ok(&["stop", "stubborn"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800),
        "stopped after {took:?}: SIGINT should have been ignored"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(!pid_alive(pid));
    assert_eq!(status(&agent, "stubborn"), "stopped");
}

#[test]
fn stop_leaves_no_grandchild_behind() {
    let agent = AgentHome::new();
    // A background job of a non-interactive shell ignores SIGINT: only a group kill ends it.
    agent.write(
        "parent.sh",
        "sleep 1000 &\necho $! > grandchild.pid\nwait\n",
    );
    agent.ok(&["start", "parent.sh"]);
    agent.wait_online("parent", 1);
    let file = agent.work.path().join("grandchild.pid");
    wait_until(Duration::from_secs(5), "grandchild pid", || {
        std::fs::read_to_string(&file).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
    });
    let grandchild: u32 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(grandchild));
    agent.ok(&["stop", "parent"]);
    wait_until(Duration::from_secs(3), "grandchild gone", || {
        !pid_alive(grandchild)
    });
}

#[test]
fn growing_app_is_restarted_at_max_memory() {
    let agent = AgentHome::new();
    agent.fixture("server.js");
    let out = agent
        .command()
        .env("GROW_MB", "16")
        .args([
            "start",
            "server.js",
            "--name",
            "hog",
            "--max-memory-restart",
            "150M",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    agent.wait_online("hog", 1);
    let pid = agent.pids("hog")[0];
    wait_until(Duration::from_secs(20), "a memory restart", || {
        agent.procs("hog").first().is_some_and(|p| {
            p["restarts"].as_u64() >= Some(1) && p["pid"].as_u64() != Some(pid as u64)
        })
    });
    assert!(!pid_alive(pid));
}

#[test]
fn watched_file_change_restarts_the_app() {
    let agent = AgentHome::new();
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    agent.ok(&["start", "tick.sh", "--watch"]);
    agent.wait_online("tick", 1);
    let pid = agent.pids("tick")[0];
    // A change made before the watcher's first scan would be part of what it compares with.
    wait_until(Duration::from_secs(10), "the watcher's first scan", || {
        listed_since_changed(agent.work.path())
    });
    agent.write("config.txt", "changed");
    wait_until(Duration::from_secs(10), "a watch restart", || {
        agent.pids("tick").first().is_some_and(|p| *p != pid)
    });
    agent.wait_online("tick", 1);
}

#[test]
fn restart_delete_and_interpreters() {
    let agent = AgentHome::new();
    agent.write(
        "worker.py",
        "import time\nprint('py worker up', flush=True)\nwhile True: time.sleep(1)\n",
    );
    agent.write("job", "#!/bin/sh\nwhile true; do sleep 1; done\n");
    std::fs::set_permissions(
        agent.work.path().join("job"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    agent.ok(&["start", "worker.py", "--name", "worker"]);
    agent.ok(&["start", "./job"]);
    agent.wait_online("worker", 1);
    agent.wait_online("job", 1);
    let show: serde_json::Value =
        serde_json::from_str(&agent.ok(&["show", "worker", "--json"])).unwrap();
    assert!(
        show["spec"]["program"]
            .as_str()
            .unwrap()
            .ends_with("python3"),
        "{show}"
    );
    let pids = agent.pids("worker");
    agent.ok(&["restart", "all"]);
    agent.wait_online("worker", 1);
    agent.wait_online("job", 1);
    assert_ne!(agent.pids("worker"), pids);
    agent.ok(&["delete", "worker"]);
    assert!(agent.procs("worker").is_empty());
    assert!(!pid_alive(pids[0]));
    assert_eq!(agent.procs("job").len(), 1);
}

#[test]
fn logs_follow_streams_new_lines() {
    use std::io::BufRead;
    let agent = AgentHome::new();
    agent.write(
        "talk.sh",
        "i=0; while true; do i=$((i+1)); echo \"line $i\"; sleep 0.2; done\n",
    );
    agent.ok(&["start", "talk.sh", "--time"]);
    agent.wait_online("talk", 1);
    let mut child = agent
        .command()
        .args(["logs", "talk", "--lines", "0", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        first.starts_with("talk-out | ") && first.contains("line "),
        "{first}"
    );
    assert!(second.contains("line "), "{second}");
}

#[test]
fn cron_restart_restarts_fork_apps_and_reloads_cluster_apps_on_schedule() {
    let agent = AgentHome::new();
    // A bad pattern is refused with the field that is wrong.
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    let err = agent.fails(&["start", "tick.sh", "--cron-restart", "*/2 * * * 99"]);
    assert!(err.contains("weekday field"), "{err}");

    // Fork mode: restarted every 2 seconds.
    agent.ok(&["start", "tick.sh", "--cron-restart", "*/2 * * * * *"]);
    agent.wait_online("tick", 1);
    assert!(agent.ok(&["show", "tick"]).contains("*/2 * * * * *"));
    let first = agent.pids("tick")[0];
    wait_until(Duration::from_secs(15), "two scheduled restarts", || {
        agent.procs("tick")[0]["restarts"].as_u64() >= Some(2)
    });
    agent.wait_online("tick", 1);
    assert_ne!(agent.pids("tick")[0], first);
    agent.ok(&["delete", "tick"]);

    // Cluster mode: rolling reloads on schedule, under load, without a failed request.
    let port = free_port();
    agent.fixture("server.js");
    agent.write(
        "ecosystem.config.js",
        &format!(
            r#"module.exports = {{ apps: [{{ name: "api", script: "server.js", exec_mode: "cluster",
  instances: 2, port: {port}, cron_restart: "*/3 * * * * *" }}] }};
"#
        ),
    );
    agent.ok(&["start", "ecosystem.config.js"]);
    agent.wait_online("api", 2);
    wait_until(Duration::from_secs(10), "serving", || get(port).is_ok());
    let before = agent.pids("api");
    let load = Load::start(port, 4, u64::MAX, Duration::from_secs(60));
    wait_until(Duration::from_secs(20), "two scheduled reloads", || {
        agent
            .procs("api")
            .iter()
            .all(|p| p["restarts"].as_u64() >= Some(2))
    });
    let report = load.finish();
    assert_eq!(report.failed, 0, "failed requests: {:?}", report.errors);
    assert!(report.ok > 100, "only {} requests", report.ok);
    agent.wait_online("api", 2);
    let after = agent.pids("api");
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} -> {after:?}"
    );
}
