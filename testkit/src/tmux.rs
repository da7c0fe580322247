//! A real terminal for the full-screen views (`monit`): a tmux server of the test's own (its
//! socket in a temporary directory, so no other tmux on the machine is touched) running one
//! command in a window of a fixed size. The test types with [`Tmux::keys`] (tmux's
//! `send-keys` names: `Down`, `Enter`, `Escape`, or text) and reads what is drawn with
//! [`Tmux::screen`] (`capture-pane`), waiting for what it expects with [`Tmux::wait_screen`].
//! [`shell_line`] turns a prepared [`Command`] into the line tmux runs. Dropping it ends
//! that server and the command. Needs `/usr/bin/tmux`
//! ([`crate::require_tool!`]).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

/// Where tmux is installed (Debian's `tmux`).
pub const TMUX: &str = "/usr/bin/tmux";

/// One tmux server with one session running a command.
pub struct Tmux {
    dir: TempDir,
}

impl Tmux {
    /// Start `shell_line` (run by `sh -c`) in a `width`×`height` window.
    pub fn start(shell_line: &str, width: u16, height: u16) -> Tmux {
        let dir = tempfile::Builder::new()
            .prefix("tmux-")
            .tempdir()
            .expect("tmux dir");
        let tmux = Tmux { dir };
        // When the command ends, the pane stays with what it printed last and its exit code.
        let line = format!("{shell_line}; echo \"[exited with $?]\"; sleep 3600");
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "test",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            &line,
        ]);
        tmux
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(TMUX)
            .arg("-S")
            .arg(self.socket())
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Type `keys`, each a tmux key name (`Down`, `Enter`, `Escape`, `C-c`) or one character.
    pub fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "test", key]);
        }
    }

    /// Type `text` literally.
    pub fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "test", "-l", text]);
    }

    /// What the window shows now, line by line.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "test"])
    }

    /// Waits until the screen satisfies `ok`, and returns it; panics with the last screen.
    pub fn wait_screen(&self, timeout: Duration, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let got = crate::wait::poll_for(timeout, what, || {
            last = self.screen();
            ok(&last).then(|| last.clone())
        });
        got.unwrap_or_else(|e| panic!("{e}; the screen:\n{last}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new(TMUX)
            .arg("-S")
            .arg(self.socket())
            .arg("kill-server")
            .output();
    }
}

/// The shell line that runs `cmd` as it is set up (directory, environment, arguments).
pub fn shell_line(cmd: &Command) -> String {
    let q = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let mut line = String::new();
    if let Some(dir) = cmd.get_current_dir() {
        line.push_str(&format!("cd {} && ", q(dir.as_os_str())));
    }
    line.push_str("env");
    // `env` takes its removals before its assignments.
    for (key, value) in cmd.get_envs() {
        if value.is_none() {
            line.push_str(&format!(" -u {}", key.to_string_lossy()));
        }
    }
    for (key, value) in cmd.get_envs() {
        if let Some(v) = value {
            line.push_str(&format!(" {}={}", key.to_string_lossy(), q(v)));
        }
    }
    line.push(' ');
    line.push_str(&q(cmd.get_program()));
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&q(arg));
    }
    line
}
