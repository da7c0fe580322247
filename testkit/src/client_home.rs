//! The controller's side of SSH in tests: a temporary `$HOME` with a key pair, a
//! `known_hosts` and an `~/.ssh/config`, and the key generation the hosts use too.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::sshd::SshHost;

/// A temporary directory acting as the controller's `$HOME`: `.ssh/id_ed25519` (+ `.pub`), an
/// empty `.ssh/known_hosts` and an empty `.ssh/config`.
pub struct ClientHome {
    dir: TempDir,
}

impl ClientHome {
    pub fn new() -> ClientHome {
        let dir = tempfile::Builder::new()
            .prefix("pmfleet-home-")
            .tempdir()
            .expect("create the client home");
        let ssh = dir.path().join(".ssh");
        fs::create_dir_all(&ssh).expect("create .ssh");
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700)).expect("chmod .ssh");
        keygen(&ssh.join("id_ed25519"), "pmfleet-test-client");
        fs::write(ssh.join("known_hosts"), "").expect("create known_hosts");
        fs::write(ssh.join("config"), "").expect("create config");
        ClientHome { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn private_key(&self) -> PathBuf {
        self.dir.path().join(".ssh/id_ed25519")
    }

    /// The client's public key line (`ssh-ed25519 AAAA... comment`).
    pub fn public_key(&self) -> String {
        fs::read_to_string(self.dir.path().join(".ssh/id_ed25519.pub"))
            .expect("read the client public key")
            .trim()
            .to_string()
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join(".ssh/known_hosts")
    }

    /// Appends the host's key to `.ssh/known_hosts`.
    pub fn trust(&self, host: &SshHost) {
        append(&self.known_hosts(), &host.known_hosts_line());
    }

    /// Appends `text` to `.ssh/config`.
    pub fn add_config(&self, text: &str) {
        append(&self.dir.path().join(".ssh/config"), text);
    }
}

impl Default for ClientHome {
    fn default() -> Self {
        ClientHome::new()
    }
}

/// Generates an unencrypted ed25519 key pair at `path` (+ `.pub`).
pub(crate) fn keygen(path: &Path, comment: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

fn append(path: &Path, text: &str) {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut text = text.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}
