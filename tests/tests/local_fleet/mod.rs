//! A fleet of real agents on this machine, without SSH: each agent a real `pmfleet-agent`
//! daemon with a home of its own, listening for mutual TLS on its own loopback address
//! (127.0.13.1, 127.0.13.2, …) with a certificate from a fleet CA made by `pmfleet::pki` as
//! `pmfleet ca init` makes it, and a project whose ecosystem file names them all as one
//! environment — what `pmfleet status`, `monit` and `dashboard` read. Apps are started on an
//! agent through its own CLI. Dropping the fleet ends every daemon.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use pmfleet::pki::{self, Ca};
use pmfleet_testkit::binaries::{agent_bin, pmfleet_bin};
use pmfleet_testkit::deployed::with_keys;
use pmfleet_testkit::{AgentHome, free_port};
use serde_json::{Value, json};

/// The environment every host of a local fleet is in.
pub const ENV: &str = "production";

pub struct LocalFleet {
    pub work: tempfile::TempDir,
    pub ca_dir: PathBuf,
    pub ca: Ca,
    pub port: u16,
    pub agents: Vec<LocalAgent>,
}

pub struct LocalAgent {
    pub address: String,
    pub home: AgentHome,
}

impl LocalAgent {
    /// Run a `pmfleet-agent` verb on this agent's home (its working directory is the home's
    /// scratch directory); panics when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        self.home.ok(args)
    }

    /// Write `name` into the scratch directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        self.home.write(name, text)
    }
}

impl LocalFleet {
    /// `n` agents, each started (`ping`) with `metrics` written to `<home>/metrics` when given.
    pub fn start(n: usize, metrics: Option<&str>) -> LocalFleet {
        let work = tempfile::Builder::new()
            .prefix("local-fleet-")
            .tempdir()
            .expect("work dir");
        let ca_dir = work.path().join("ca");
        let ca = Ca::init(&ca_dir).expect("fleet CA");
        let port = free_port();
        let mut agents = Vec::new();
        for i in 0..n {
            let address = format!("127.0.13.{}", i + 1);
            let home = AgentHome::with_binary(agent_bin());
            let tls = home.home.path().join("tls");
            std::fs::create_dir_all(&tls).expect("tls dir");
            let (cert, key) = pki::issue_agent_cert(&ca, std::slice::from_ref(&address), 30)
                .expect("agent certificate");
            std::fs::write(tls.join("agent.pem"), cert).expect("agent.pem");
            write_private(&tls.join("agent.key"), &key);
            std::fs::write(tls.join("ca.pem"), ca.cert_pem()).expect("ca.pem");
            std::fs::write(tls.join("listen"), format!("{address}:{port}\n")).expect("listen");
            if let Some(m) = metrics {
                std::fs::write(home.home.path().join("metrics"), format!("{m}\n"))
                    .expect("metrics");
            }
            home.ok(&["ping"]);
            agents.push(LocalAgent { address, home });
        }
        let fleet = LocalFleet {
            work,
            ca_dir,
            ca,
            port,
            agents,
        };
        fleet.write_ecosystem(json!({}));
        fleet
    }

    /// The project directory (holding `ecosystem.json`).
    pub fn project(&self) -> PathBuf {
        self.work.path().join("project")
    }

    /// The ecosystem file naming every agent as a host of [`ENV`], `extra` merged into the
    /// environment.
    pub fn write_ecosystem(&self, extra: Value) {
        let hosts: Vec<&str> = self.agents.iter().map(|a| a.address.as_str()).collect();
        let env = with_keys(
            json!({
                "host": hosts, "ref": "main", "repo": "/nonexistent", "path": "/srv/app",
                "agent": {"port": self.port},
            }),
            &extra,
        );
        let dir = self.project();
        std::fs::create_dir_all(&dir).expect("project dir");
        std::fs::write(
            dir.join("ecosystem.json"),
            json!({"apps": [], "deploy": {ENV: env}}).to_string(),
        )
        .expect("ecosystem.json");
    }

    /// `pmfleet ARGS` in the project, with this fleet's CA and controller identity.
    pub fn pmfleet(&self, args: &[&str]) -> Command {
        let mut c = Command::new(pmfleet_bin());
        c.args(args)
            .current_dir(self.project())
            .env("PMFLEET_CA_DIR", &self.ca_dir)
            .env("HOME", self.work.path())
            .env_remove("CI");
        c
    }

    /// The shell line that runs `pmfleet ARGS` as [`LocalFleet::pmfleet`] does (for tmux).
    pub fn pmfleet_line(&self, args: &[&str]) -> String {
        let mut line = format!(
            "cd {} && env PMFLEET_CA_DIR={} HOME={} {}",
            quote(&self.project()),
            quote(&self.ca_dir),
            quote(self.work.path()),
            quote(&pmfleet_bin()),
        );
        for a in args {
            line.push(' ');
            line.push_str(&quote(Path::new(a)));
        }
        line
    }
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("key file");
    f.write_all(text.as_bytes()).expect("key");
}
