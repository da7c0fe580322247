//! `pmfleet-agent monit` in a real terminal (tmux), against a real daemon over its local
//! socket: both apps on screen, the selection moved with ↓ to the second one (its metadata,
//! its own gauge sent as a StatsD line, and its log lines follow), a restart and a stop through the confirmation, each read back on
//! screen and in `list`, and `q`.

use std::time::Duration;

use pmfleet_testkit::tmux::{TMUX, Tmux, shell_line};
use pmfleet_testkit::{AgentHome, require_tool, wait_until};

const WAIT: Duration = Duration::from_secs(30);

const TICK: &str = "echo \"started as $$\"; while true; do sleep 0.2; done\n";

/// A worker that reports a gauge of its own on the agent's metrics socket.
const WORKER: &str = r#"console.log(`started as ${process.pid}`);
const m = require("net").createConnection(process.env.PMFLEET_METRICS_SOCKET, () => m.write("queue_depth:5|g\n"));
m.on("error", (e) => console.error("metrics socket: " + e));
setInterval(() => {}, 1000);
"#;

/// The screen rows of the process list naming `app` (the list is the first bordered panel).
fn rows<'a>(screen: &'a str, app: &str) -> Vec<&'a str> {
    screen
        .lines()
        .filter_map(|l| l.split('│').nth(1))
        .filter(|row| row.split_whitespace().any(|w| w == app))
        .collect()
}

#[test]
fn agent_monit_restarts_and_stops_the_selected_app_after_a_confirmation() {
    require_tool!(TMUX, "tmux");
    let agent = AgentHome::new();
    agent.write("tick.sh", TICK);
    agent.ok(&["start", "tick.sh", "--name", "api"]);
    agent.write("worker.js", WORKER);
    agent.ok(&["start", "worker.js", "--name", "worker"]);
    agent.wait_online("api", 1);
    agent.wait_online("worker", 1);
    let before = agent.pids("worker");

    let mut monit = agent.command();
    monit.arg("monit");
    let term = Tmux::start(&shell_line(&monit), 180, 45);
    term.wait_screen(WAIT, "both apps online", |s| {
        s.contains("hosts 1/1 answering")
            && rows(s, "api").iter().any(|r| r.contains("online"))
            && rows(s, "worker").iter().any(|r| r.contains("online"))
            && s.contains("app         api [0]")
    });

    // ↓ selects the second app: its metadata and its log lines follow.
    term.keys(&["Down"]);
    term.wait_screen(WAIT, "worker selected, with its own gauge", |s| {
        s.contains("app         worker [0]")
            && s.contains("logs: worker on")
            && s.contains(&format!("started as {}", before[0]))
            && s.contains("app metrics")
            && s.contains("queue_depth 5")
    });

    term.keys(&["r"]);
    term.wait_screen(WAIT, "the restart confirmation", |s| {
        s.contains("restart worker on") && s.contains("[y/N]")
    });
    term.keys(&["y"]);
    wait_until(WAIT, "worker restarted", || {
        let now = agent.pids("worker");
        now.len() == 1 && now != before
    });
    let after = agent.pids("worker");
    term.wait_screen(WAIT, "the new pid on screen", |s| {
        s.contains("restart worker on")
            && rows(s, "worker")
                .iter()
                .any(|r| r.split_whitespace().last() == Some(&after[0].to_string()))
    });
    assert_eq!(agent.procs("api").len(), 1, "api untouched");

    term.keys(&["s"]);
    term.wait_screen(WAIT, "the stop confirmation", |s| {
        s.contains("stop worker on") && s.contains("[y/N]")
    });
    term.keys(&["y"]);
    term.wait_screen(WAIT, "worker stopped on screen", |s| {
        rows(s, "worker").iter().any(|r| r.contains("stopped"))
            && rows(s, "api").iter().any(|r| r.contains("online"))
    });
    wait_until(WAIT, "worker stopped in list", || {
        agent
            .procs("worker")
            .iter()
            .all(|p| p["status"] == "stopped")
    });

    term.keys(&["q"]);
    term.wait_screen(WAIT, "monit to quit", |s| s.contains("[exited with 0]"));
}
