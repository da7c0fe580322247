//! The agent as it ships to hosts (`cargo build-agent`: static, built for size, ending on a
//! panic): it starts where the host has no libraries at all — where the development build,
//! linked against this machine's glibc, does not — and runs a fleet like the development build:
//! `setup` installs it, it serves a deploy, answers `status` over mutual TLS and reloads.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pmfleet_testkit::agent_fleet::AgentFleet;
use pmfleet_testkit::binaries::{agent_bin, shipped_agent_bin};
use pmfleet_testkit::project::ok;
use pmfleet_testkit::sshd::in_ci;
use pmfleet_testkit::{get_from, require_sshd, wait_until};

/// Answers every request with the pid of the instance that took it.
const PID_SERVER_JS: &str = r#"require("http")
  .createServer((req, res) => res.end(`${process.pid}\n`))
  .listen(process.env.PORT);
"#;

/// The pids that answer 20 requests to `address:port`.
fn pids(address: &str, port: u16) -> BTreeSet<String> {
    (0..20)
        .filter_map(|_| get_from(address, port).ok())
        .map(|answer| answer.trim().to_string())
        .collect()
}

/// The shipped agent, or the test returns (and fails under `CI=true`).
macro_rules! shipped_agent {
    () => {
        match shipped_agent_bin() {
            Ok(path) => path,
            Err(why) if in_ci() => panic!("{why} (CI=true: this test must run)"),
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        }
    };
}

/// Runs `/pmfleet-agent --version` in a root holding that binary and nothing else.
fn version_in_an_empty_root(binary: &Path) -> std::process::Output {
    let root = tempfile::tempdir().expect("temp root");
    std::fs::copy(binary, root.path().join("pmfleet-agent")).expect("copy the agent");
    Command::new("chroot")
        .arg(root.path())
        .args(["/pmfleet-agent", "--version"])
        .output()
        .expect("run chroot")
}

#[test]
fn the_shipped_agent_starts_on_a_host_with_no_libraries() {
    let shipped = shipped_agent!();
    let out = version_in_an_empty_root(&shipped);
    assert!(
        out.status.success(),
        "the shipped agent did not start in an empty root: {out:?}"
    );
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "--version said {version:?}"
    );
    // The same root stops the development build, which needs this machine's libraries: the
    // root really is empty.
    let dev = version_in_an_empty_root(&agent_bin());
    assert!(
        !dev.status.success(),
        "the development build started without its libraries: the root is not empty"
    );
}

#[test]
fn the_shipped_agent_is_installed_by_setup_serves_a_deploy_and_reloads() {
    require_sshd!();
    let shipped = shipped_agent!();
    let env = [("PMFLEET_AGENT_BIN", shipped.as_os_str())];
    let f = AgentFleet::serving_with(1, PID_SERVER_JS, &env);
    let host = &f.fleet.hosts[0];
    // The daemon on the host runs the shipped build.
    let pid_file = host.home().join(".pmfleet-agent/agent.pid");
    let pid = std::fs::read_to_string(&pid_file).expect("agent.pid");
    let exe = std::fs::read(format!("/proc/{}/exe", pid.trim())).expect("the daemon's binary");
    assert!(
        exe == std::fs::read(&shipped).expect("the shipped agent"),
        "the host's daemon is not the shipped agent"
    );
    let answer = get_from(host.address(), f.app_port).expect("web answers");
    assert!(answer.trim().parse::<u32>().is_ok(), "web said {answer:?}");

    let status = f
        .project
        .pmfleet_with(&["status", "production", "--json"], &env);
    ok(&status);
    assert!(
        status.stdout.contains("\"online\""),
        "status over mutual TLS: {}",
        status.stdout
    );

    let before = pids(host.address(), f.app_port);
    ok(&f
        .project
        .pmfleet_with(&["app", "production", "reload", "web"], &env));
    wait_until(Duration::from_secs(30), "new instances answering", || {
        let now = pids(host.address(), f.app_port);
        !now.is_empty() && now.is_disjoint(&before)
    });
}
