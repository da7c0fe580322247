//! What a dead daemon leaves behind: a daemon SIGKILLed with its state file damaged (or both
//! copies of it) is followed by one that leaves no orphan holding a port and runs every app it
//! can know of exactly once.

use std::path::Path;
use std::time::Duration;

use pmfleet_testkit::{AgentHome, free_port, get, pid_alive, processes_with, wait_until};

/// Whether the state file at `path` records every pid in `pids`.
fn records(path: &Path, pids: &[u32]) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let recorded: Vec<u64> = state["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["processes"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["pid"].as_u64())
        .collect();
    pids.iter().all(|p| recorded.contains(&u64::from(*p)))
}

/// Cut a file in half, as a torn write or a damaged disk would leave it.
fn damage(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len / 2).unwrap();
}

/// A cluster app on `port` and a fork app running, recorded in both copies of the state
/// file; then the daemon SIGKILLed. Returns the apps' pids (still running, orphaned).
fn orphaned(agent: &AgentHome, port: u16) -> Vec<u32> {
    agent.fixture("server.js");
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    let port = port.to_string();
    agent.ok(&[
        "start",
        "server.js",
        "-i",
        "2",
        "--name",
        "api",
        "--port",
        &port,
    ]);
    agent.ok(&["start", "tick.sh"]);
    agent.wait_online("api", 2);
    agent.wait_online("tick", 1);
    let old: Vec<u32> = agent
        .pids("api")
        .into_iter()
        .chain(agent.pids("tick"))
        .collect();
    let home = agent.home.path();
    // The copy exists from the daemon's first write on (an agent without one has only the
    // state file to lose).
    let copy = home.join("state.json.bak");
    wait_until(
        Duration::from_secs(10),
        "every copy records the pids",
        || records(&home.join("state.json"), &old) && (records(&copy, &old) || !copy.exists()),
    );
    let daemon = agent.daemon_pid();
    // SAFETY: the daemon this test started.
    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(5), "daemon gone", || !pid_alive(daemon));
    assert!(old.iter().all(|p| pid_alive(*p)), "orphans hold the port");
    old
}

#[test]
fn a_damaged_state_file_leaves_no_orphan_and_every_app_runs_once() {
    let agent = AgentHome::new();
    let port = free_port();
    let old = orphaned(&agent, port);
    damage(&agent.home.path().join("state.json"));

    // The next daemon reads the copy: every app again, exactly once, on its port.
    agent.wait_online("api", 2);
    agent.wait_online("tick", 1);
    for p in &old {
        assert!(!pid_alive(*p), "orphan {p} survived the restart");
    }
    let server = agent.work.path().join("server.js");
    assert_eq!(
        processes_with(server.to_str().unwrap()).len(),
        2,
        "api runs twice"
    );
    let tick = agent.work.path().join("tick.sh");
    wait_until(Duration::from_secs(5), "tick runs exactly once", || {
        processes_with(tick.to_str().unwrap()).len() == 1
    });
    wait_until(Duration::from_secs(10), "port served", || get(port).is_ok());
    assert!(
        agent.home.path().join("state.json.bad").exists(),
        "kept to look at"
    );
}

#[test]
fn with_both_copies_of_the_state_damaged_no_orphan_keeps_its_port() {
    let agent = AgentHome::new();
    let port = free_port();
    let old = orphaned(&agent, port);
    damage(&agent.home.path().join("state.json"));
    let copy = agent.home.path().join("state.json.bak");
    if copy.exists() {
        damage(&copy);
    }

    // Nothing says which apps there were, but what ran is found by its mark and ended.
    agent.ok(&["ping"]);
    wait_until(Duration::from_secs(10), "every orphan ended", || {
        old.iter().all(|p| !pid_alive(*p))
    });
    let server = agent.work.path().join("server.js");
    let tick = agent.work.path().join("tick.sh");
    wait_until(Duration::from_secs(5), "nothing of the apps runs", || {
        processes_with(server.to_str().unwrap()).is_empty()
            && processes_with(tick.to_str().unwrap()).is_empty()
    });
    assert!(
        std::net::TcpListener::bind(("0.0.0.0", port)).is_ok(),
        "the port is free again"
    );
    assert!(agent.list().is_empty());
}
