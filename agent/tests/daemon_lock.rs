//! "Is the agent running" is the home's lock, never `agent.pid`: a stale pid file naming a
//! live process that has nothing to do with the agent is left alone by `daemon-status`,
//! `stop-daemon` and the daemon's start; and the lock is never free while the daemon upgrades
//! in place. (The controller's own host scripts are held to the same in the e2e crate's
//! `agent_scripts.rs`.)

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pmfleet_testkit::{AgentHome, Stranger, pid_alive, wait_until};

fn stale_pid_file(agent: &AgentHome, pid: u32) {
    std::fs::write(agent.home.path().join("agent.pid"), format!("{pid}\n")).unwrap();
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_stale_agent_pid_is_never_taken_for_the_agent() {
    let agent = AgentHome::new();
    let mut stranger = Stranger::start();
    stale_pid_file(&agent, stranger.pid());

    let status = agent.run(&["daemon-status"]);
    assert_eq!(code(&status), Some(3), "{}", stdout(&status));
    assert!(
        stdout(&status).contains("not running"),
        "{}",
        stdout(&status)
    );
    assert!(
        stdout(&status).contains("not the agent"),
        "{}",
        stdout(&status)
    );
    let stop = agent.run(&["stop-daemon"]);
    assert_eq!(code(&stop), Some(0), "{}", stdout(&stop));
    assert!(stranger.untouched(), "stop-daemon signalled a stranger");

    // A daemon starts; it is the one `daemon-status` names, even while agent.pid lies.
    agent.ok(&["ping"]);
    let daemon = agent.daemon_pid();
    assert_ne!(daemon, stranger.pid());
    stale_pid_file(&agent, stranger.pid());
    let status = agent.run(&["daemon-status", "--json"]);
    assert_eq!(code(&status), Some(0), "{}", stdout(&status));
    let json: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(json["running"], true);
    assert_eq!(json["pid"], daemon);

    // stop-daemon ends the lock's holder, and only it.
    let stop = agent.run(&["stop-daemon"]);
    assert_eq!(code(&stop), Some(0), "{}", stdout(&stop));
    assert!(
        stdout(&stop).contains(&format!("pid {daemon}")),
        "{}",
        stdout(&stop)
    );
    assert!(
        !pid_alive(daemon),
        "the daemon is gone once stop-daemon returns"
    );
    assert!(stranger.untouched(), "stop-daemon signalled a stranger");
    assert_eq!(code(&agent.run(&["daemon-status"])), Some(3));
}

#[test]
fn the_home_lock_is_never_free_while_the_daemon_upgrades_in_place() {
    let agent = AgentHome::new();
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    agent.ok(&["start", "tick.sh"]);
    agent.wait_online("tick", 1);
    let daemon = agent.daemon_pid();

    // Ask for the lock (shared, as `daemon-status` does) as fast as possible meanwhile.
    let mut lock = std::fs::File::open(agent.home.path().join("agent.lock")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (free, asked) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let watcher = {
        let (stop, free, asked) = (stop.clone(), free.clone(), asked.clone());
        std::thread::spawn(move || {
            use nix::fcntl::{Flock, FlockArg};
            while !stop.load(Ordering::Relaxed) {
                lock = match Flock::lock(lock, FlockArg::LockSharedNonblock) {
                    Ok(held) => {
                        free.fetch_add(1, Ordering::Relaxed);
                        held.unlock().unwrap()
                    }
                    Err((file, _)) => file,
                };
                asked.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for _ in 0..3 {
        agent.ok(&["upgrade"]);
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert!(
        asked.load(Ordering::Relaxed) > 1000,
        "the lock was asked often"
    );
    assert_eq!(
        free.load(Ordering::Relaxed),
        0,
        "the lock was free during an upgrade"
    );
    assert_eq!(agent.daemon_pid(), daemon);
    let status = agent.run(&["daemon-status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(json["pid"], daemon, "the upgraded daemon holds the lock");
    assert!(Path::new(&format!("/proc/{daemon}")).exists());
    wait_until(Duration::from_secs(10), "tick kept", || {
        agent.procs("tick").len() == 1
    });
}
