//! What every pmfleet test crate and the benchmarks share, in one place: real OpenSSH `sshd`
//! hosts and the controller's client home ([`sshd`], [`client_home`]), real git repositories
//! ([`git_repo`]), a user's project running the real `pmfleet` binary ([`project`]) and what
//! its deploys leave on the hosts ([`deployed`]), an agent
//! home with its daemon ([`agent`]) and a fleet of agents serving an app ([`agent_fleet`]), app instances started by hand the way the agent starts them
//! ([`instance`]), a test CA and a mutual-TLS client ([`tls`]), HTTP requests and a load
//! generator that counts every failed request ([`http`], [`load`]), HTTPS requests with or
//! without a client certificate ([`https`]), `pmfleet dashboard` started ([`dashboard`]), a real terminal for the
//! full-screen views ([`tmux`]), a headless browser for the web views ([`webdriver`]), free
//! ports and who holds which connection ([`net`]), PM2 itself ([`pm2`]), processes and their
//! open files ([`procs`]), and waiting on a
//! condition instead of sleeping ([`wait`]).
//!
//! It depends on neither the controller nor the agent crate (the agent's tests must not build
//! the controller): the binaries are found by path ([`binaries`]), the agent's sample apps and
//! fixtures too ([`assets`]).

pub mod agent;
pub mod agent_fleet;
pub mod assets;
pub mod binaries;
pub mod client_home;
pub mod dashboard;
pub mod deployed;
pub mod git_repo;
pub mod http;
pub mod https;
pub mod instance;
pub mod load;
pub mod net;
pub mod pm2;
pub mod procs;
pub mod project;
pub mod sshd;
pub mod tls;
pub mod tmux;
pub mod tools;
pub mod wait;
pub mod webdriver;

pub use agent::AgentHome;
pub use http::{answering_pids, get, get_from, get_path};
pub use load::{Load, LoadReport};
pub use net::free_port;
pub use procs::{Stranger, pid_alive, processes_with};
pub use wait::{wait_for, wait_until};

/// Skips the calling test, with a printed line, when the program at `$path` (installed by
/// `scripts/test.sh` from Debian package `$package`) is missing; under `CI=true` the test
/// fails instead.
#[macro_export]
macro_rules! require_tool {
    ($path:expr, $package:expr) => {
        if let Some(why) = $crate::tools::missing($path, $package) {
            if $crate::sshd::in_ci() {
                panic!("{why} (CI=true: this test must run; see the README's test command)");
            }
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// Skips the calling test, with a printed line, when this machine cannot run real sshd hosts
/// ([`sshd::sshd_available`]); under `CI=true` the test fails instead, so a CI run can never
/// pass SSH tests that did not run.
#[macro_export]
macro_rules! require_sshd {
    () => {
        if let Some(why) = $crate::sshd::missing_sshd() {
            if $crate::sshd::in_ci() {
                panic!("{why} (CI=true: SSH tests must run; see the README's test command)");
            }
            eprintln!("skipped: {why}");
            return;
        }
    };
}
