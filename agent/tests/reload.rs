//! Rolling reloads under load: not one failed request, with readiness from the preload, with
//! `wait_ready`, and a release that never becomes ready (old instances keep serving).

use std::time::Duration;

use pmfleet_testkit::{AgentHome, Load, free_port, get, processes_with, wait_until};

fn ecosystem(agent: &AgentHome, port: u16, extra: &str) {
    agent.fixture("server.js");
    let flag = agent.work.path().join("broken");
    agent.write(
        "ecosystem.config.js",
        &format!(
            r#"module.exports = {{
  apps: [{{
    name: "api",
    script: "server.js",
    exec_mode: "cluster",
    instances: 2,
    port: {port},
    listen_timeout: 4000,
    env: {{ BROKEN_FLAG: {flag:?} }},
    {extra}
  }}]
}};
"#
        ),
    );
}

/// 5 rolling reloads of a 2-instance cluster under a mix of keep-alive and new-connection
/// load; `expect_pids_change` checks each reload really replaced both instances.
fn reloads_under_load(agent: &AgentHome, port: u16) {
    agent.ok(&["start", "ecosystem.config.js"]);
    agent.wait_online("api", 2);
    wait_until(Duration::from_secs(10), "serving", || get(port).is_ok());

    let load = Load::start(port, 6, 200_000, Duration::from_secs(120));
    for i in 0..5 {
        let before = agent.pids("api");
        let out = agent.ok(&["reload", "api"]);
        assert!(out.contains("zero downtime"), "reload {i}: {out}");
        let after = agent.pids("api");
        assert_eq!(after.len(), 2);
        assert!(
            after.iter().all(|p| !before.contains(p)),
            "reload {i}: {before:?} -> {after:?}"
        );
    }
    // Keep the load going until it reached 2,000 requests at least.
    wait_until(Duration::from_secs(60), "2000 requests", || {
        load.ok_so_far() >= 2000
    });
    let report = load.finish();
    assert_eq!(report.failed, 0, "failed requests: {:?}", report.errors);
    assert!(report.ok >= 2000, "only {} requests", report.ok);
    eprintln!(
        "{} requests, 0 failed, {} retried on a finished keep-alive connection, across 5 reloads",
        report.ok, report.retried
    );
}

#[test]
fn five_rolling_reloads_fail_no_request() {
    let agent = AgentHome::new();
    let port = free_port();
    ecosystem(&agent, port, "");
    reloads_under_load(&agent, port);
}

#[test]
fn wait_ready_app_that_takes_a_second_reloads_with_no_failed_request() {
    let agent = AgentHome::new();
    let port = free_port();
    ecosystem(
        &agent,
        port,
        r#"wait_ready: true, env_production: { READY_DELAY_MS: "1000", SEND_READY: "1" },"#,
    );
    // --env production on start, so the delay and the ready message apply.
    agent.ok(&["start", "ecosystem.config.js", "--env", "production"]);
    agent.wait_online("api", 2);
    wait_until(Duration::from_secs(10), "serving", || get(port).is_ok());
    let show: serde_json::Value =
        serde_json::from_str(&agent.ok(&["show", "api", "--json"])).unwrap();
    assert_eq!(show["spec"]["env"]["READY_DELAY_MS"], "1000");
    assert_eq!(show["spec"]["wait_ready"], true);

    let load = Load::start(port, 6, 200_000, Duration::from_secs(120));
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let out = agent.ok(&["reload", "api"]);
        assert!(out.contains("zero downtime"), "{out}");
        // Each new instance took its second to become ready before the old one stopped.
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    wait_until(Duration::from_secs(60), "2000 requests", || {
        load.ok_so_far() >= 2000
    });
    let report = load.finish();
    assert_eq!(report.failed, 0, "failed requests: {:?}", report.errors);
}

#[test]
fn release_that_never_becomes_ready_keeps_the_old_instances() {
    let agent = AgentHome::new();
    let port = free_port();
    ecosystem(&agent, port, "");
    agent.write(
        "ecosystem.config.js",
        &std::fs::read_to_string(agent.work.path().join("ecosystem.config.js"))
            .unwrap()
            .replace("listen_timeout: 4000", "listen_timeout: 1500"),
    );
    agent.ok(&["start", "ecosystem.config.js"]);
    agent.wait_online("api", 2);
    wait_until(Duration::from_secs(10), "serving", || get(port).is_ok());
    let before = agent.pids("api");

    std::fs::write(agent.work.path().join("broken"), "").unwrap();
    let load = Load::start(port, 4, 200_000, Duration::from_secs(60));
    let err = agent.fails(&["reload", "api"]);
    assert!(err.contains("reload of `api` failed"), "{err}");
    assert!(err.contains("not ready within"), "{err}");
    assert!(err.contains("old one keeps serving"), "{err}");
    let report = load.finish();
    assert_eq!(report.failed, 0, "failed requests: {:?}", report.errors);
    assert!(report.ok > 0);

    assert_eq!(agent.pids("api"), before, "the old instances must stay");
    // The broken process was stopped: only the two old ones remain.
    let running = processes_with(agent.work.path().join("server.js").to_str().unwrap());
    assert_eq!(running.len(), 2, "{running:?}");
    assert!(get(port).is_ok());
}

#[test]
fn fork_mode_reload_is_a_restart_and_says_so() {
    let agent = AgentHome::new();
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    agent.ok(&["start", "tick.sh", "--name", "tick"]);
    agent.wait_online("tick", 1);
    let out = agent.ok(&["reload", "tick"]);
    assert!(out.contains("fork mode has no rolling reload"), "{out}");
    agent.wait_online("tick", 1);
}

#[test]
fn python_cluster_reloads_on_a_passing_healthcheck() {
    let agent = AgentHome::new();
    // A Python app that says READY=1 on NOTIFY_SOCKET once it serves: in cluster mode the
    // probe reaches the old instances too, so only the app's own word proves a new one ready.
    agent.write("pyserver.py", include_str!("apps/fd3_server.py"));
    let port = free_port();
    let p = port.to_string();
    agent.ok(&[
        "start",
        "pyserver.py",
        "-i",
        "2",
        "--name",
        "py",
        "--port",
        &p,
        "--healthcheck",
        "/",
        "--listen-timeout",
        "20000",
    ]);
    agent.wait_online("py", 2);
    let before = agent.pids("py");
    let started = std::time::Instant::now();
    let out = agent.ok(&["reload", "py"]);
    assert!(out.contains("zero downtime"), "{out}");
    // The probe answered long before listen_timeout.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let after = agent.pids("py");
    assert!(after.iter().all(|p| !before.contains(p)));
    assert!(get(port).is_ok());
}
