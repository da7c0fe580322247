//! `startup`: a systemd unit that runs the daemon in the foreground at boot. The daemon
//! restores its saved process list when it starts, so the apps come back with it.

use std::path::Path;

/// Where `startup --install` writes the unit.
pub const UNIT_PATH: &str = "/etc/systemd/system/pmfleet-agent.service";

/// The unit for `exe` running as `user` with its home in `home`.
///
/// `KillMode=mixed`: on stop, systemd signals only the daemon, which stops every app with
/// its own `kill_signal` and `kill_timeout`; whatever is left after `TimeoutStopSec` is
/// killed with the whole cgroup.
pub fn unit(exe: &Path, user: &str, home: &Path) -> String {
    format!(
        "[Unit]
Description=pmfleet agent: keeps this host's apps running
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Environment=PMFLEET_AGENT_HOME={home}
ExecStart={exe} daemon
KillMode=mixed
TimeoutStopSec=60
Restart=on-failure
RestartSec=1
LimitNOFILE=infinity

[Install]
WantedBy=multi-user.target
",
        exe = exe.display(),
        home = home.display(),
    )
}

/// Whether systemd is the init system here (what `sd_booted()` checks).
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_runs_the_daemon_in_the_foreground() {
        let u = unit(
            Path::new("/usr/local/bin/pmfleet-agent"),
            "deploy",
            Path::new("/home/deploy/.pmfleet-agent"),
        );
        assert!(u.contains("ExecStart=/usr/local/bin/pmfleet-agent daemon\n"));
        assert!(u.contains("User=deploy\n"));
        assert!(u.contains("Environment=PMFLEET_AGENT_HOME=/home/deploy/.pmfleet-agent\n"));
        assert!(u.contains("KillMode=mixed"));
    }
}
