//! An instance's descendants, wherever they went: a helper that left the instance's process
//! group (`setsid`), even one whose parent is gone, ends with its instance on `stop`,
//! `restart` and `delete`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Agent, pid_alive, wait_until};

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
    let agent = Agent::new();
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
