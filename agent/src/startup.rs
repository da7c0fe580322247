//! `startup`: a systemd unit that runs the daemon in the foreground at boot. The daemon
//! restores its saved process list when it starts, so the apps come back with it.
//!
//! At boot nobody's shell profile has run, so `node` from nvm (or anything else the user's
//! `PATH` reaches) would not be found: as PM2 does, the unit carries the `PATH` of the user who
//! ran `startup`, with the agent binary's own directory added when it is not on it.

use std::path::Path;

/// Where `startup --install` writes the unit.
pub const UNIT_PATH: &str = "/etc/systemd/system/pmfleet-agent.service";

/// The unit for `exe` running as `user` with its home in `home` and `path` as its `PATH`.
///
/// `KillMode=mixed`: on stop, systemd signals only the daemon, which stops every app with
/// its own `kill_signal` and `kill_timeout`; whatever is left after `TimeoutStopSec` is
/// killed with the whole cgroup.
pub fn unit(exe: &Path, user: &str, home: &Path, path: &str) -> String {
    format!(
        "[Unit]
Description=pmfleet agent: keeps this host's apps running
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Environment={home}
Environment={path}
ExecStart={exe} daemon
KillMode=mixed
TimeoutStopSec=60
Restart=on-failure
RestartSec=1
LimitNOFILE=infinity

[Install]
WantedBy=multi-user.target
",
        exe = exec_path(exe),
        home = assignment("PMFLEET_AGENT_HOME", &home.display().to_string()),
        path = assignment("PATH", path),
    )
}

/// The `PATH` the unit gives the daemon: `current` (the caller's), its empty and repeated
/// entries dropped, with `exe_dir` appended when it is not there, as PM2 appends node's
/// directory.
pub fn boot_path(current: &str, exe_dir: Option<&Path>) -> String {
    let mut dirs: Vec<String> = Vec::new();
    for dir in current.split(':').filter(|d| !d.is_empty()) {
        if !dirs.iter().any(|d| d == dir) {
            dirs.push(dir.to_owned());
        }
    }
    if let Some(exe_dir) = exe_dir.map(|d| d.display().to_string())
        && !dirs.contains(&exe_dir)
    {
        dirs.push(exe_dir);
    }
    if dirs.is_empty() {
        return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned();
    }
    dirs.join(":")
}

/// `Environment=` takes `"NAME=value"` in double quotes, with `\` and `"` escaped and `%`
/// doubled (systemd's specifiers).
fn assignment(name: &str, value: &str) -> String {
    let mut out = String::from("\"");
    for c in format!("{name}={value}").chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `ExecStart=`'s program, quoted when it has a space.
fn exec_path(exe: &Path) -> String {
    let text = exe.display().to_string().replace('%', "%%");
    if text.contains(char::is_whitespace) {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        text
    }
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
            "/usr/bin:/bin",
        );
        assert!(u.contains("ExecStart=/usr/local/bin/pmfleet-agent daemon\n"));
        assert!(u.contains("User=deploy\n"));
        assert!(u.contains("Environment=\"PMFLEET_AGENT_HOME=/home/deploy/.pmfleet-agent\"\n"));
        assert!(u.contains("Environment=\"PATH=/usr/bin:/bin\"\n"));
        assert!(u.contains("KillMode=mixed"));
    }

    #[test]
    fn the_boot_path_is_the_callers_with_the_agent_on_it() {
        let nvm = "/home/deploy/.nvm/versions/node/v20.11.0/bin";
        let table = [
            // (caller's PATH, agent's directory) → the unit's PATH
            (
                format!("{nvm}:/usr/bin:/bin"),
                Some("/usr/local/bin"),
                format!("{nvm}:/usr/bin:/bin:/usr/local/bin"),
            ),
            (
                "/usr/local/bin:/usr/bin".to_owned(),
                Some("/usr/local/bin"),
                "/usr/local/bin:/usr/bin".to_owned(),
            ),
            (
                "/usr/bin::/usr/bin:/bin:".to_owned(),
                None,
                "/usr/bin:/bin".to_owned(),
            ),
            (
                String::new(),
                None,
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            ),
        ];
        for (current, exe_dir, want) in table {
            assert_eq!(
                boot_path(&current, exe_dir.map(Path::new)),
                want,
                "{current}"
            );
        }
    }

    #[test]
    fn odd_characters_survive_systemd_quoting() {
        let u = unit(
            Path::new("/opt/my agent/pmfleet-agent"),
            "deploy",
            Path::new("/srv/100%/home"),
            "/a \"b\":/c\\d",
        );
        assert!(
            u.contains("ExecStart=\"/opt/my agent/pmfleet-agent\" daemon\n"),
            "{u}"
        );
        assert!(
            u.contains("Environment=\"PMFLEET_AGENT_HOME=/srv/100%%/home\"\n"),
            "{u}"
        );
        assert!(
            u.contains("Environment=\"PATH=/a \\\"b\\\":/c\\\\d\"\n"),
            "{u}"
        );
    }
}
