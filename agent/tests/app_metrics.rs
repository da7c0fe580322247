//! The apps' own metrics through the agent's metrics socket, against a real daemon and real
//! Node instances: an instance started by a reload connects as it starts, before the reload
//! counts it as the app's, and what it sends once counted is still its own.

use std::time::Duration;

use pmfleet_testkit::{AgentHome, free_port, wait_for};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// Connects at start, then says its own pid as a gauge five times a second.
const APP: &str = r#"const net = require("net");
const m = net.createConnection(process.env.PMFLEET_METRICS_SOCKET);
m.on("error", (e) => console.error("metrics socket: " + e));
setInterval(() => m.write(`pid_seen:${process.pid}|g\n`), 200);
require("http").createServer((req, res) => res.end("ok\n")).listen(process.env.PORT);
"#;

/// (pid, the `pid_seen` gauge) of instance 0 of `app`, once both are there.
fn seen(agent: &AgentHome, app: &str) -> Option<(u64, u64)> {
    let procs = agent.procs(app);
    let p: &Value = procs.iter().find(|p| p["instance"] == 0)?;
    Some((
        p["pid"].as_u64()?,
        p["app_metrics"]["pid_seen"].as_f64()? as u64,
    ))
}

#[test]
fn an_instance_started_by_a_reload_reports_its_own_metrics() {
    let agent = AgentHome::new();
    let port = free_port();
    agent.write("app.js", APP);
    agent.write(
        "ecosystem.json",
        &json!({"apps": [{"name": "api", "script": "app.js", "exec_mode": "cluster",
                          "instances": 1, "port": port, "env": {"PORT": port}}]})
        .to_string(),
    );
    agent.ok(&["start", "ecosystem.json"]);
    agent.wait_online("api", 1);
    let first = wait_for(WAIT, "the first instance's own gauge", || {
        seen(&agent, "api").filter(|(pid, gauge)| pid == gauge)
    });

    agent.ok(&["reload", "api"]);
    wait_for(WAIT, "the reloaded instance's own gauge", || {
        seen(&agent, "api").filter(|(pid, gauge)| pid == gauge && *pid != first.0)
    });
}
