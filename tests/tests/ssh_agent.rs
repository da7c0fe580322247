//! Authentication through a real `ssh-agent`. A test binary of its own: `SSH_AUTH_SOCK` is
//! process-wide, and pointing it at an agent would change what other tests authenticate with.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pmfleet::ssh::{ClientSettings, ConnectSpec, Connector, SshError};
use pmfleet_testkit::client_home::ClientHome;
use pmfleet_testkit::sshd::Fleet;
use pmfleet_testkit::{require_sshd, wait_until};

/// An `ssh-agent -D` on its own socket, killed on drop.
struct Agent {
    child: Child,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        wait_until(Duration::from_secs(10), "ssh-agent's socket", || {
            socket.exists()
        });
        Agent {
            child,
            socket,
            _dir: dir,
        }
    }

    fn add(&self, key: &Path) {
        let status = Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stderr(Stdio::null())
            .status()
            .expect("run ssh-add");
        assert!(status.success(), "ssh-add {}", key.display());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn agent_keys_are_tried_first_and_listed_when_refused() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    let agent = Agent::start();
    // SAFETY: this binary's only test sets the variable before any connection is made and no
    // other thread reads the environment concurrently.
    unsafe { std::env::set_var("SSH_AUTH_SOCK", &agent.socket) };

    // A key the host does not authorize, in the agent; no key files at all.
    let stranger = ClientHome::new();
    agent.add(&stranger.private_key());
    let keyless = ClientHome::new();
    std::fs::remove_file(keyless.private_key()).unwrap();
    keyless.trust(host);
    let settings = |home: &ClientHome| ClientSettings {
        home: home.path().to_path_buf(),
        ..ClientSettings::default()
    };
    let spec = ConnectSpec {
        host: host.address().into(),
        port: Some(host.port()),
        user: Some("root".into()),
        ..ConnectSpec::default()
    };
    let error = Connector::new(settings(&keyless))
        .connect(&spec)
        .await
        .err()
        .expect("the agent's key is not authorized");
    let message = error.to_string();
    assert!(matches!(error, SshError::Auth { .. }), "{message}");
    assert!(
        message.contains("ssh-agent key ssh-ed25519 SHA256:"),
        "{message}"
    );
    assert!(message.contains("refused by the server"), "{message}");

    // The authorized key, only in the agent: it logs in.
    agent.add(&fleet.home.private_key());
    let connection = Connector::new(settings(&keyless))
        .connect(&spec)
        .await
        .unwrap();
    let mut out = Vec::new();
    let status = connection
        .exec("echo via-agent", None, &mut |_, chunk| {
            out.extend_from_slice(chunk)
        })
        .await
        .unwrap();
    assert_eq!(status, 0);
    assert_eq!(out, b"via-agent\n");
}
