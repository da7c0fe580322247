//! The process list survives the daemon: a SIGKILLed daemon's successor stops the orphans it
//! recorded and starts the apps again — each exactly once, the port served. Also `save` /
//! `resurrect` and `kill`.

use std::time::Duration;

use pmfleet_testkit::{AgentHome, free_port, get, pid_alive, processes_with, wait_until};

#[test]
fn sigkilled_daemon_restarts_apps_exactly_once() {
    let agent = AgentHome::new();
    let server = agent.fixture("server.js");
    let tick = agent.write("tick.sh", "while true; do sleep 1; done\n");
    let port = free_port();
    agent.ok(&[
        "start",
        "server.js",
        "-i",
        "2",
        "--name",
        "api",
        "--port",
        &port.to_string(),
    ]);
    agent.ok(&["start", "tick.sh"]);
    agent.wait_online("api", 2);
    agent.wait_online("tick", 1);
    wait_until(Duration::from_secs(10), "serving", || get(port).is_ok());
    let old: Vec<u32> = agent
        .pids("api")
        .into_iter()
        .chain(agent.pids("tick"))
        .collect();
    wait_until(
        Duration::from_secs(10),
        "state.json to record every pid",
        || {
            let saved: Vec<u32> = ["api", "tick"]
                .iter()
                .flat_map(|app| agent.saved_pids(app))
                .collect();
            old.iter().all(|p| saved.contains(p))
        },
    );

    let daemon = agent.daemon_pid();
    // SAFETY: the daemon this test started.
    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(5), "daemon gone", || !pid_alive(daemon));
    // The orphans still hold the port.
    assert!(old.iter().all(|p| pid_alive(*p)));

    // Any command starts a new daemon, which restores the list.
    agent.wait_online("api", 2);
    agent.wait_online("tick", 1);
    assert_ne!(agent.daemon_pid(), daemon);
    for p in &old {
        assert!(!pid_alive(*p), "orphan {p} survived the restart");
    }
    let server_procs = processes_with(server.to_str().unwrap());
    assert_eq!(
        server_procs.len(),
        2,
        "api must run exactly twice: {server_procs:?}"
    );
    // A shell loop forks for each `sleep`: for an instant the child still carries the
    // script's command line. A second real instance would stay; a fork does not.
    wait_until(Duration::from_secs(5), "tick runs exactly once", || {
        processes_with(tick.to_str().unwrap()).len() == 1
    });
    wait_until(Duration::from_secs(10), "port served", || get(port).is_ok());
}

#[test]
fn stopped_apps_stay_stopped_across_a_daemon_restart() {
    let agent = AgentHome::new();
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    agent.ok(&["start", "tick.sh"]);
    agent.wait_online("tick", 1);
    agent.ok(&["stop", "tick"]);
    wait_until(
        Duration::from_secs(10),
        "state.json to record tick stopped",
        || {
            agent
                .saved_app("tick")
                .is_some_and(|app| app["running"] == false)
        },
    );
    let daemon = agent.daemon_pid();
    // SAFETY: the daemon this test started.
    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(5), "daemon gone", || !pid_alive(daemon));
    let procs = agent.procs("tick");
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0]["status"], "stopped");
}

#[test]
fn save_resurrect_and_kill() {
    let agent = AgentHome::new();
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    agent.ok(&["start", "tick.sh"]);
    agent.wait_online("tick", 1);
    assert!(agent.ok(&["save"]).contains("saved 1 app(s)"));

    let pid = agent.pids("tick")[0];
    let out = agent.ok(&["kill"]);
    assert!(out.contains("the agent exits"), "{out}");
    assert!(!pid_alive(pid));
    // `kill` forgets the list: a new daemon starts empty.
    assert!(agent.list().is_empty());

    agent.ok(&["resurrect"]);
    agent.wait_online("tick", 1);
    assert!(agent.ok(&["resurrect"]).contains("already running"));
    assert_eq!(agent.ok(&["kill"]).lines().count(), 1);
    assert_eq!(agent.ok(&["kill"]).trim(), "the agent is not running");
}
