//! `pmfleet dashboard` as a test starts it: `production` on a free loopback port, refreshed
//! each second, its history in a file of the test's; the lines it prints before serving, the
//! port and token of the address it prints first; killed and reaped on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};

use crate::project::Project;

pub struct Dashboard {
    child: Child,
    /// Kept open, so the dashboard never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
    /// What it printed first, one entry a line, trimmed.
    pub lines: Vec<String>,
    pub port: u16,
    pub token: String,
}

impl Dashboard {
    /// `pmfleet dashboard production --listen 127.0.0.1:0 --refresh 1s --db DB EXTRA…`,
    /// once it printed `lines` lines (its address first).
    pub fn start(project: &Project, db: &Path, extra: &[&str], lines: usize) -> Dashboard {
        let db = db.display().to_string();
        let mut args = vec![
            "dashboard",
            "production",
            "--listen",
            "127.0.0.1:0",
            "--refresh",
            "1s",
            "--db",
            &db,
        ];
        args.extend_from_slice(extra);
        let mut child = project
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the dashboard");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut printed = Vec::new();
        for _ in 0..lines.max(1) {
            let mut line = String::new();
            stdout
                .read_line(&mut line)
                .expect("what the dashboard prints");
            printed.push(line.trim().to_string());
        }
        let address = printed[0]
            .strip_prefix("pmfleet dashboard: ")
            .unwrap_or_else(|| panic!("the dashboard's address first: {printed:?}"));
        let after_host = address
            .strip_prefix("http://127.0.0.1:")
            .or_else(|| address.strip_prefix("https://127.0.0.1:"))
            .unwrap_or_else(|| panic!("a loopback address: {address}"));
        let port = after_host
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("a port: {address}"));
        let token = address
            .split("?token=")
            .nth(1)
            .unwrap_or_else(|| panic!("a token: {address}"))
            .to_string();
        Dashboard {
            child,
            _stdout: stdout,
            lines: printed,
            port,
            token,
        }
    }

    /// The first line it printed that starts with `prefix`.
    pub fn line(&self, prefix: &str) -> &str {
        self.lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in {:?}", self.lines))
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
