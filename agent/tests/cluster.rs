//! Cluster mode for any language: the agent binds the port once and every instance accepts
//! on it (fd 3). An unmodified Node app (listen(PORT), via the preload) and a Python app
//! (socket on fd 3) each answer from every instance.

use pmfleet_testkit::{AgentHome, answering_pids, free_port, get, wait_until};

fn cluster_of(script: &str, n: usize) {
    let agent = AgentHome::new();
    agent.fixture(script);
    let port = free_port().to_string();
    let out = agent.ok(&[
        "start",
        script,
        "-i",
        &n.to_string(),
        "--name",
        "web",
        "--port",
        &port,
    ]);
    assert!(
        out.contains(&format!("started {n} instance(s) in cluster mode")),
        "{out}"
    );
    agent.wait_online("web", n);
    let port: u16 = port.parse().unwrap();
    let pids = agent.pids("web");
    wait_until(
        std::time::Duration::from_secs(20),
        "every instance answering",
        || {
            let seen = answering_pids(port, 60);
            pids.iter().all(|p| seen.contains(&format!("pid={p}")))
        },
    );
    let procs = agent.procs("web");
    let mut instances: Vec<u64> = procs
        .iter()
        .map(|p| p["instance"].as_u64().unwrap())
        .collect();
    instances.sort();
    assert_eq!(instances, (0..n as u64).collect::<Vec<_>>());
    assert!(procs.iter().all(|p| p["mode"] == "cluster"));
}

#[test]
fn node_cluster_of_two_shares_one_port() {
    cluster_of("server.js", 2);
}

#[test]
fn node_cluster_of_four_shares_one_port() {
    cluster_of("server.js", 4);
}

#[test]
fn python_cluster_of_two_shares_one_port() {
    cluster_of("pyserver.py", 2);
}

#[test]
fn python_cluster_of_four_shares_one_port() {
    cluster_of("pyserver.py", 4);
}

#[test]
fn port_comes_from_the_start_commands_environment_and_scale_follows() {
    let agent = AgentHome::new();
    agent.fixture("server.js");
    let port = free_port();
    let out = agent
        .command()
        .env("PORT", port.to_string())
        .args(["start", "server.js", "-i", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.wait_online("server", 2);
    assert!(get(port).unwrap().starts_with("pid="));

    agent.ok(&["scale", "server", "+1"]);
    agent.wait_online("server", 3);
    agent.ok(&["scale", "server", "1"]);
    agent.wait_online("server", 1);
    assert!(get(port).unwrap().starts_with("pid="));

    // Logs: every instance's stdout went to a file `logs` reads back.
    let logs = agent.ok(&["logs", "server", "--lines", "5", "--nostream"]);
    assert!(logs.contains("node listening pid="), "{logs}");
    agent.ok(&["flush"]);
    let logs = agent.ok(&["logs", "server", "--lines", "5", "--nostream"]);
    assert!(!logs.contains("node listening"), "{logs}");
    agent.ok(&["reload-logs"]);

    let show: serde_json::Value =
        serde_json::from_str(&agent.ok(&["show", "server", "--json"])).unwrap();
    assert_eq!(show["spec"]["port"], port);
    assert_eq!(show["processes"].as_array().unwrap().len(), 1);
}
