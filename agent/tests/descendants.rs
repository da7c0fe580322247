//! An instance's descendants, wherever they went: a helper that left the instance's process
//! group (`setsid`), even one whose parent is gone, ends with its instance on `stop`,
//! `restart` and `delete`; and orphans that end up the agent's children (it is PID 1 in a
//! container, and a child subreaper anyway) are reaped, while every instance's exit status
//! stays its own.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pmfleet_testkit::{AgentHome, pid_alive, wait_until};

/// Read a pid a script wrote, once it did.
fn pid_in(path: &Path) -> u32 {
    wait_until(Duration::from_secs(10), "a pid file", || {
        std::fs::read_to_string(path).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
    });
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_helper_that_called_setsid_ends_with_its_instance() {
    let agent = AgentHome::new();
    // One helper in a session of its own under the running script, one whose parent exited
    // at once (re-parented away from the instance's tree).
    agent.write(
        "helper.sh",
        "setsid sleep 1000 &\n\
         echo $! > helper.pid\n\
         sh -c 'setsid sleep 1001 & echo $! > orphan.pid'\n\
         exec sleep 2000\n",
    );
    let (helper_file, orphan_file) = (
        agent.work.path().join("helper.pid"),
        agent.work.path().join("orphan.pid"),
    );
    agent.ok(&["start", "helper.sh"]);
    agent.wait_online("helper", 1);
    let (helper, orphan) = (pid_in(&helper_file), pid_in(&orphan_file));
    assert!(pid_alive(helper) && pid_alive(orphan));

    agent.ok(&["stop", "helper"]);
    wait_until(Duration::from_secs(5), "stop ended both helpers", || {
        !pid_alive(helper) && !pid_alive(orphan)
    });

    std::fs::remove_file(&helper_file).unwrap();
    std::fs::remove_file(&orphan_file).unwrap();
    agent.ok(&["restart", "helper"]);
    agent.wait_online("helper", 1);
    let (again, orphan_again) = (pid_in(&helper_file), pid_in(&orphan_file));
    assert!(pid_alive(again) && pid_alive(orphan_again));
    agent.ok(&["delete", "helper"]);
    wait_until(Duration::from_secs(5), "delete ended both helpers", || {
        !pid_alive(again) && !pid_alive(orphan_again)
    });
}

/// The children of `pid`, from every thread's `children` file.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            == Some("Z")
    })
}

#[test]
fn orphans_are_reaped_when_the_agent_is_pid_1() {
    let agent = AgentHome::new();
    let home = agent.home.path();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("agent.log"))
        .unwrap();
    // The daemon as PID 1 of a pid namespace of its own, as in a container.
    let namespace = Namespace(
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(agent.binary())
            .arg("daemon")
            .env("PMFLEET_AGENT_HOME", home)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    // Its socket answers, and it has written its pid (a moment after it began to listen).
    wait_until(Duration::from_secs(15), "the daemon answers", || {
        std::os::unix::net::UnixStream::connect(home.join("agent.sock")).is_ok()
            && home.join("agent.pid").exists()
    });
    let daemon = children(namespace.0.id());
    assert_eq!(daemon.len(), 1, "unshare runs the daemon: {daemon:?}");
    let daemon = daemon[0];
    assert_eq!(agent.daemon_pid(), 1, "PID 1 in its namespace");

    // Every 20 ms a shell leaves a `sleep` behind that outlives it by 50 ms: an orphan,
    // re-parented to PID 1 — the agent. And an app whose exit code must reach the agent.
    agent.write(
        "orphans.sh",
        "i=0\nwhile [ $i -lt 30 ]; do sh -c 'sleep 0.05 &'; i=$((i + 1)); echo $i > made; sleep 0.02; done\nexec sleep 1000\n",
    );
    agent.write("exits.sh", "sleep 0.5; exit 7\n");
    agent.write(
        "ecosystem.json",
        r#"{"apps": [
            {"name": "orphans", "script": "orphans.sh"},
            {"name": "exits", "script": "exits.sh", "stop_exit_codes": [7]}
        ]}"#,
    );
    agent.ok(&["start", "ecosystem.json"]);
    let made = agent.work.path().join("made");
    wait_until(Duration::from_secs(20), "30 orphans made", || {
        std::fs::read_to_string(&made).is_ok_and(|s| s.trim() == "30")
    });
    wait_until(
        Duration::from_secs(10),
        "no zombie left under the agent",
        || !children(daemon).into_iter().any(zombie),
    );
    assert!(pid_alive(daemon));
    // The exit code 7 was the instance's own, seen by the agent: it stays stopped.
    wait_until(
        Duration::from_secs(10),
        "exits stopped on its exit code",
        || {
            agent
                .procs("exits")
                .first()
                .is_some_and(|p| p["status"] == "stopped")
        },
    );
    assert_eq!(agent.procs("exits")[0]["restarts"], 0);

    agent.ok(&["kill"]);
}

/// `unshare` running the daemon; killed (and with it the namespace) when the test ends.
struct Namespace(std::process::Child);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
