//! The agent home (`$PMFLEET_AGENT_HOME`, default `~/.pmfleet-agent`): the control socket,
//! the persisted process list, the dump, logs, readiness sockets, the Node preload and the
//! mutual-TLS files (`tls/`).
//! One directory per agent, so tests and several users on one host never share state.

use std::path::{Path, PathBuf};

/// Where everything of one agent lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHome {
    root: PathBuf,
}

/// The Node preload that makes `listen(PORT)` use the inherited socket (fd 3).
pub const CLUSTER_PRELOAD: &str = include_str!("../preload/cluster.js");

impl AgentHome {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        AgentHome { root: root.into() }
    }

    /// `$PMFLEET_AGENT_HOME`, else `~/.pmfleet-agent`.
    pub fn from_env() -> Self {
        if let Some(dir) = std::env::var_os("PMFLEET_AGENT_HOME").filter(|d| !d.is_empty()) {
            return AgentHome::new(dir);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/root".into());
        AgentHome::new(home.join(".pmfleet-agent"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The local control socket (mode 0600).
    pub fn socket(&self) -> PathBuf {
        self.root.join("agent.sock")
    }
    /// Held (flock) by the running daemon, so two daemons never share a home.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("agent.lock")
    }
    /// The running daemon's pid.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("agent.pid")
    }
    /// The daemon's own log, when it was started in the background.
    pub fn daemon_log(&self) -> PathBuf {
        self.root.join("agent.log")
    }
    /// The process list, rewritten on every change and read back when the daemon starts.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// A second copy of the state file, written after it, read when it cannot be.
    pub fn state_backup(&self) -> PathBuf {
        self.root.join("state.json.bak")
    }
    /// What `save` wrote and `resurrect` reads.
    pub fn dump_file(&self) -> PathBuf {
        self.root.join("dump.json")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// Per-spawn `NOTIFY_SOCKET`s.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    pub fn preload(&self) -> PathBuf {
        self.root.join("preload").join("cluster.js")
    }
    /// Optional, one line: the IP address cluster-mode apps listen on instead of every
    /// interface (written by the controller's setup for `agent: { bind: "host" }`).
    pub fn bind_address(&self) -> PathBuf {
        self.root.join("bind-address")
    }
    /// The mutual-TLS files, written by the controller's setup (see [`crate::identity`]).
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }
    /// The agent's certificate chain, leaf first.
    pub fn tls_cert(&self) -> PathBuf {
        self.tls_dir().join("agent.pem")
    }
    /// The agent's private key (0600); made on the host by `tls request`, never sent anywhere.
    pub fn tls_key(&self) -> PathBuf {
        self.tls_dir().join("agent.key")
    }
    /// The fleet CA: clients must present a certificate that chains to it.
    pub fn tls_ca(&self) -> PathBuf {
        self.tls_dir().join("ca.pem")
    }
    /// Revoked client certificates (optional).
    pub fn tls_crl(&self) -> PathBuf {
        self.tls_dir().join("crl.pem")
    }
    /// One line, `ADDRESS:PORT`, where the mutual-TLS endpoint listens.
    pub fn tls_listen(&self) -> PathBuf {
        self.tls_dir().join("listen")
    }

    /// Create the directories (the root mode 0700: it holds the control socket) and write
    /// the preload, so a newer agent binary always serves its own version of it.
    pub fn prepare(&self) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
        for dir in [self.logs_dir(), self.run_dir(), self.root.join("preload")] {
            std::fs::create_dir_all(dir)?;
        }
        write_atomic(&self.preload(), CLUSTER_PRELOAD.as_bytes())
    }
}

/// Appends `line` to `f` (opened for reading and appending) in one `write`, ending a torn
/// last line first, so a record never runs into the one before it.
pub fn append_whole_line(f: &mut std::fs::File, line: &str) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let torn = match f.seek(SeekFrom::End(-1)) {
        Ok(_) => {
            let mut last = [0u8; 1];
            f.read_exact(&mut last).is_ok() && last[0] != b'\n'
        }
        Err(_) => false,
    };
    let mut bytes = Vec::with_capacity(line.len() + 2);
    if torn {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    f.write_all(&bytes)
}

/// Write `bytes` to `path` so a reader sees the old content or the new, never a mix:
/// a temporary file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{seq}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}
