//! The controller's own host scripts that probe, start and restart the agent decide "is the
//! agent running" by the home's lock, never by `agent.pid`: a stale pid file naming a live
//! process that has nothing to do with the agent is never taken for it, nor signalled. The
//! scripts run here as the `localhost` transport runs them, against the real agent binary.

use std::process::{Command, Output};

use pmfleet_testkit::binaries::agent_bin;
use pmfleet_testkit::{AgentHome, Stranger, pid_alive};

fn stale_pid_file(agent: &AgentHome, pid: u32) {
    std::fs::write(agent.home.path().join("agent.pid"), format!("{pid}\n")).unwrap();
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run one of the controller's host scripts locally, as its `localhost` transport does.
fn run_script(script: pmfleet::shell::Script) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script.render())
        .output()
        .unwrap()
}

fn probe_says_running(home: &str) -> bool {
    let out = run_script(pmfleet::deploy::scripts::agent_probe(home));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    match (text.contains("running=yes"), text.contains("running=no")) {
        (true, false) => true,
        (false, true) => false,
        _ => panic!("no running= line: {text}"),
    }
}

#[test]
fn a_stale_agent_pid_survives_the_controllers_probe_start_and_restart() {
    let agent = AgentHome::with_binary(agent_bin());
    let home = agent.home.path().to_str().unwrap().to_string();
    // The agent installed where setup installs it.
    std::fs::create_dir_all(agent.home.path().join("bin")).unwrap();
    std::os::unix::fs::symlink(agent.binary(), agent.home.path().join("bin/pmfleet-agent"))
        .unwrap();
    let mut stranger = Stranger::start();
    stale_pid_file(&agent, stranger.pid());

    assert!(
        !probe_says_running(&home),
        "a stale agent.pid is not an agent"
    );
    let started = run_script(pmfleet::deploy::scripts::agent_start(&home, false, false));
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    assert!(probe_says_running(&home));
    let first = agent.daemon_pid();
    assert!(stranger.untouched());

    agent.write("tick.sh", "while true; do sleep 1; done\n");
    agent.ok(&["start", "tick.sh"]);
    agent.wait_online("tick", 1);

    // setup restarting the agent (a new bind address, an agent too old to upgrade) while
    // agent.pid names the stranger: the daemon is restarted, the stranger is not touched.
    stale_pid_file(&agent, stranger.pid());
    let restarted = run_script(pmfleet::deploy::scripts::agent_start(&home, false, true));
    assert!(
        restarted.status.success(),
        "{}\n--- agent log ---\n{}",
        String::from_utf8_lossy(&restarted.stderr),
        agent.daemon_log()
    );
    assert!(stranger.untouched(), "the restart signalled a stranger");
    assert!(!pid_alive(first), "the old daemon was stopped");
    assert!(probe_says_running(&home));
    assert_ne!(agent.daemon_pid(), first);
    agent.wait_online("tick", 1);
}
