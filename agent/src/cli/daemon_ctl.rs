//! `daemon-status` and `stop-daemon`: whether a daemon runs in this home and ending it,
//! both decided by the home's lock ([`crate::daemon_lock`]), never by `agent.pid` alone.
//! Neither starts a daemon.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::daemon_lock::{self, Holder, Stopped};
use crate::home::AgentHome;

/// `daemon-status`'s exit code when no daemon runs (as LSB init scripts say it).
pub const NOT_RUNNING: u8 = 3;

/// `daemon-status`: exit 0 when a daemon holds the home's lock, [`NOT_RUNNING`] when none
/// does, 1 when that cannot be told.
pub fn status(home: &AgentHome, json: bool) -> anyhow::Result<ExitCode> {
    let holder = daemon_lock::holder(home)
        .with_context(|| format!("cannot read the lock of {}", home.root().display()))?;
    let recorded = std::fs::read_to_string(home.pid_file())
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let (running, pid) = match holder {
        Holder::Nobody => (false, None),
        Holder::Daemon { pid } => (true, pid),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "running": running, "pid": pid, "home": home.root() })
        );
    } else {
        match (running, pid) {
            (true, Some(pid)) => println!("the agent is running (pid {pid})"),
            (true, None) => println!("the agent is running (its pid is not visible from here)"),
            (false, _) => println!("the agent is not running"),
        }
        if let Some(stale) = recorded.filter(|r| Some(*r) != pid) {
            println!(
                "({} names pid {stale}, which is not the agent)",
                home.pid_file().display()
            );
        }
    }
    Ok(if running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_RUNNING)
    })
}

/// `stop-daemon`: SIGTERM to the verified holder of the home's lock (its apps stop and
/// come back with the next daemon), then wait up to `timeout` until it is gone.
pub async fn stop(home: &AgentHome, timeout: Duration) -> anyhow::Result<ExitCode> {
    match daemon_lock::stop(home, timeout).await? {
        Stopped::NotRunning => println!("the agent is not running"),
        Stopped::Stopped { pid } => println!("the agent (pid {pid}) stopped"),
    }
    Ok(ExitCode::SUCCESS)
}
