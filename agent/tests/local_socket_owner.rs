//! The daemon's local control socket is for its owner only: another user, even one who can
//! reach the agent's home, cannot use it.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use pmfleet_testkit::AgentHome;

#[test]
fn another_user_cannot_use_the_local_socket() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || Command::new("setpriv").arg("--version").output().is_err()
    {
        panic!("this test drops to the `nobody` user: run it as root with util-linux's setpriv");
    }
    let agent = AgentHome::new();
    agent.ok(&["ping"]);
    let socket = agent.home.path().join("agent.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    // Open the directories up, so that only the socket's own mode stands in the way.
    for dir in [agent.home.path(), agent.work.path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_pmfleet-agent"))
        .arg("list")
        .env("PMFLEET_AGENT_HOME", agent.home.path())
        .current_dir(agent.work.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "nobody used the socket: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.to_lowercase().contains("permission denied")
            || stderr.contains("not yours")
            || stderr.contains("refus"),
        "{stderr}"
    );
    // The owner still can, and nothing was disturbed.
    agent.ok(&["list"]);
}
