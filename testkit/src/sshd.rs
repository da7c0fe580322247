//! Real OpenSSH sshd hosts for tests.
//!
//! Each [`SshHost`] is a `/usr/sbin/sshd` of its own: its own ed25519 host key, config, free
//! port and loopback address (127.0.0.2, 127.0.0.3, ... — all of 127/8 reaches `lo`), trusting
//! the key of a [`ClientHome`], the temporary directory that plays the controller's `$HOME`.
//!
//! Every host has its own view of the file system where it matters: sshd runs in its own mount
//! namespace with a per-host directory bound over `/srv` (the deploy root; read it from the test
//! at [`SshHost::root`]), another over `/tmp`, and an empty one over root's home directory, so
//! each host has its own `~` and login profile (none of the test machine's shell start-up
//! files). Everything started through that sshd — commands, daemons they spawn — sees those,
//! not the test's `/srv`, `/tmp` and `~`. So a file a host
//! must read (a git repository to clone, say) has to live outside `/tmp`, e.g. under
//! `/var/tmp`, where the hosts' own state also lives.
//!
//! Requirements (see [`sshd_available`]): running as root (for `mount` and so sshd can log
//! anyone in), OpenSSH's `/usr/sbin/sshd` (package openssh-server) and `ssh-keygen`
//! (openssh-client), and `unshare` + `mount` from util-linux. `/srv` and `/run/sshd` are created
//! if missing. Sessions log in as root with the client key (`PermitRootLogin
//! prohibit-password`); `MaxSessions` stays at OpenSSH's default of 10 so channel caps are
//! tested for real, while `MaxStartups` is raised for benchmarks that connect to many hosts.
//! Tests that need hosts start with [`crate::require_sshd!`].
//!
//! sshd logs at `VERBOSE`, which names every command session with the client's port
//! ([`SshHost::connections`]): a test can wait until a controller has really run a step on a host
//! instead of sleeping.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::client_home::{ClientHome, keygen};
use crate::net::free_port_on;
use crate::procs::{descendants, mount_namespace, processes_in_namespace, signal};

const SSHD: &str = "/usr/sbin/sshd";
/// How long sshd may take to listen after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at finding a free port that stays free until sshd binds it.
const PORT_ATTEMPTS: usize = 5;

/// The home directory of the user sessions log in as (root's, from /etc/passwd).
fn login_home() -> PathBuf {
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.first() == Some(&"root")).then(|| fields.get(5).map(PathBuf::from))?
            })
        })
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// True when this machine can run [`SshHost`]s: root, sshd, ssh-keygen, unshare and mount.
pub fn sshd_available() -> bool {
    missing_sshd().is_none()
}

/// Why this machine cannot run [`SshHost`]s, or `None` when it can.
pub fn missing_sshd() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("real sshd hosts need root (for mount namespaces)".into());
    }
    if !Path::new(SSHD).exists() {
        return Some(format!("{SSHD} is missing (package openssh-server)"));
    }
    let missing: Vec<&str> = ["ssh-keygen", "unshare", "mount"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect();
    (!missing.is_empty()).then(|| format!("{} not on PATH", missing.join(", ")))
}

/// True under `CI=true` (or `CI=1`), where a test that cannot run must fail, not skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// One real sshd. Dropping it kills the sshd and every process still running in its mount
/// namespaces (daemons started on the host included).
pub struct SshHost {
    /// Config, host key, authorized_keys, log, and the `srv/` and `tmp/` bound into the host.
    /// Under /var/tmp, so it stays visible inside the host's private /tmp.
    state: TempDir,
    /// `<state>/srv`, bound over the host's `/srv`.
    srv: PathBuf,
    address: String,
    port: u16,
    child: Option<Child>,
    /// Mount namespaces this host's sshd ran in (one per start), for cleanup on drop. Each is
    /// held open: a namespace whose last process exits is freed, and the kernel may give its
    /// identity to another test's host, whose processes the cleanup would then kill.
    namespaces: Vec<(String, fs::File)>,
}

impl SshHost {
    /// Starts a host listening on 127.0.0.{index + 2} and a free port; it authorizes `home`'s
    /// key. Returns once sshd accepts connections.
    pub fn start(home: &ClientHome, index: u8) -> SshHost {
        assert!(index <= 253, "host index {index} leaves 127.0.0.0/24");
        let state = tempfile::Builder::new()
            .prefix("pmfleet-sshd-")
            .tempdir_in("/var/tmp")
            .expect("create the host's state directory");
        let dir = state.path();
        fs::create_dir_all(dir.join("srv")).expect("create srv");
        fs::create_dir_all(dir.join("tmp")).expect("create tmp");
        fs::create_dir_all(dir.join("home")).expect("create home");
        fs::set_permissions(dir.join("home"), fs::Permissions::from_mode(0o700))
            .expect("chmod home");
        fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))
            .expect("chmod tmp");
        keygen(&dir.join("ssh_host_ed25519_key"), "pmfleet-test-host");
        fs::write(
            dir.join("authorized_keys"),
            format!("{}\n", home.public_key()),
        )
        .expect("write authorized_keys");
        fs::create_dir_all("/srv").expect("create /srv");
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");

        let mut host = SshHost {
            srv: dir.join("srv"),
            state,
            address: format!("127.0.0.{}", u16::from(index) + 2),
            port: 0,
            child: None,
            namespaces: Vec::new(),
        };
        for attempt in 1..=PORT_ATTEMPTS {
            host.port = free_port_on(&host.address);
            match host.launch() {
                Ok(()) => return host,
                Err(log) if attempt < PORT_ATTEMPTS && log.contains("Address already in use") => {}
                Err(log) => panic!(
                    "sshd on {}:{} did not start:\n{log}",
                    host.address, host.port
                ),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `address:port`, as the controller names this host in its reports, its history and its
    /// JSON events.
    pub fn label(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    /// The pid of the agent daemon `setup` started on this host, from its home there; panics
    /// when the host has none.
    pub fn agent_pid(&self) -> u32 {
        let path = self.home().join(".pmfleet-agent/agent.pid");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.trim().parse().expect("agent.pid holds a pid")
    }

    /// This host's `/srv`, as the test sees it.
    pub fn root(&self) -> &Path {
        &self.srv
    }

    /// This host's `~` (root's home inside the host), as the test sees it.
    pub fn home(&self) -> PathBuf {
        self.state.path().join("home")
    }

    /// Every SSH connection this host accepted, in order, with the commands run on it so far
    /// (from the log, so across restarts too).
    pub fn connections(&self) -> Vec<SshConnection> {
        parse_connections(&self.log())
    }

    /// `[address]:port ssh-ed25519 AAAA...`, a known_hosts line for this host.
    pub fn known_hosts_line(&self) -> String {
        let public = fs::read_to_string(self.state.path().join("ssh_host_ed25519_key.pub"))
            .expect("read the host public key");
        let mut fields = public.split_whitespace();
        let (Some(kind), Some(key)) = (fields.next(), fields.next()) else {
            panic!("malformed host public key: {public}");
        };
        format!("[{}]:{} {kind} {key}", self.address, self.port)
    }

    /// `SHA256:...`, the host key's fingerprint as OpenSSH prints it.
    pub fn host_key_fingerprint(&self) -> String {
        let output = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(self.state.path().join("ssh_host_ed25519_key.pub"))
            .output()
            .expect("run ssh-keygen -l");
        assert!(output.status.success(), "ssh-keygen -l failed");
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .nth(1)
            .expect("ssh-keygen -l prints a fingerprint")
            .to_string()
    }

    /// Stops sshd and drops its connections: new connections are refused. Processes that were
    /// started on the host and detached from their session (daemons) keep running, as on a host
    /// that merely lost SSH.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        // Freeze the listener so it forks no new connection handlers, then kill the tree.
        signal(pid as i32, libc::SIGSTOP);
        let mut tree = descendants(pid);
        tree.push(pid);
        for pid in tree {
            signal(pid as i32, libc::SIGKILL);
        }
        let _ = child.wait();
    }

    /// Starts sshd again on the same address and port with the same host key.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(log) if Instant::now() < deadline && log.contains("Address already in use") => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(log) => panic!(
                    "sshd on {}:{} did not restart:\n{log}",
                    self.address, self.port
                ),
            }
        }
    }

    /// Gives the host a new host key (so its known_hosts line no longer matches) and restarts
    /// it if it was running, so the new key is in use.
    pub fn regenerate_host_key(&mut self) {
        let running = self.child.is_some();
        self.stop();
        let key = self.state.path().join("ssh_host_ed25519_key");
        let _ = fs::remove_file(&key);
        let _ = fs::remove_file(key.with_extension("pub"));
        keygen(&key, "pmfleet-test-host");
        if running {
            self.restart();
        }
    }

    /// Everything sshd wrote to stderr (`-e`), for assertions and debugging.
    pub fn log(&self) -> String {
        fs::read_to_string(self.state.path().join("sshd.log")).unwrap_or_default()
    }

    /// Writes the config for the current port and starts sshd in a new mount namespace; on
    /// failure returns the log.
    fn launch(&mut self) -> Result<(), String> {
        let dir = self.state.path();
        let config = dir.join("sshd_config");
        fs::write(&config, sshd_config(dir, &self.address, self.port)).expect("write sshd_config");
        let log_path = dir.join("sshd.log");
        let log_start = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open sshd.log");

        // unshare execs sh in the new namespace without forking, and sh execs sshd: the child's
        // pid is the listening sshd's.
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                r#"mount --bind "$1" /srv && mount --bind "$2" /tmp && mount --bind "$4" "$5" && exec /usr/sbin/sshd -D -e -f "$3""#,
            )
            .arg("sh")
            .arg(dir.join("srv"))
            .arg(dir.join("tmp"))
            .arg(&config)
            .arg(dir.join("home"))
            .arg(login_home())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn unshare + sshd");
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        let address: SocketAddr = format!("{}:{}", self.address, self.port)
            .parse()
            .expect("a socket address");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("{status}\n{}", self.log_since(log_start)));
            }
            // Our own sshd must say it listens: a banner alone could come from another test's
            // host that holds the same address and port.
            if self.log_since(log_start).contains("Server listening on")
                && self.is_sshd_listening(address)
            {
                if let Some(child) = self.child.as_ref()
                    && let Some(ns) = mount_namespace(child.id())
                    && !self.namespaces.iter().any(|(known, _)| *known == ns)
                    && let Ok(pin) = fs::File::open(format!("/proc/{}/ns/mnt", child.id()))
                    && mount_namespace(child.id()).as_deref() == Some(ns.as_str())
                {
                    self.namespaces.push((ns, pin));
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "not listening after {START_TIMEOUT:?}\n{}",
                    self.log_since(log_start)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connects and reads the SSH banner, so a half-started sshd (or another program that
    /// grabbed the port) is not mistaken for a ready host.
    fn is_sshd_listening(&self, address: SocketAddr) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut banner = [0u8; 8];
        let ready = stream.read_exact(&mut banner).is_ok() && banner.starts_with(b"SSH-2.0");
        // Say goodbye politely so sshd logs nothing alarming.
        let _ = stream.write_all(b"SSH-2.0-pmfleet-harness\r\n");
        ready
    }

    fn log_since(&self, offset: u64) -> String {
        let log = self.log();
        log.get(offset as usize..).unwrap_or(&log).to_string()
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        self.stop();
        // Daemons started on this host (agents, apps) live on in its mount namespace(s).
        for (namespace, _pin) in &self.namespaces {
            for pid in processes_in_namespace(namespace) {
                signal(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// A client home and `n` hosts (127.0.0.2 ...), all trusted in its known_hosts.
pub struct Fleet {
    pub home: ClientHome,
    pub hosts: Vec<SshHost>,
}

impl Fleet {
    pub fn start(n: usize) -> Fleet {
        assert!(n <= 254, "at most 254 hosts");
        let home = ClientHome::new();
        let hosts: Vec<SshHost> = (0..n)
            .map(|index| SshHost::start(&home, index as u8))
            .collect();
        for host in &hosts {
            home.trust(host);
        }
        Fleet { home, hosts }
    }

    /// The hosts as an ecosystem file's `host` list: `{"host", "port", "user": "root"}` each.
    pub fn hosts_json(&self) -> serde_json::Value {
        self.hosts
            .iter()
            .map(|h| serde_json::json!({"host": h.address(), "port": h.port(), "user": "root"}))
            .collect()
    }
}

fn sshd_config(dir: &Path, address: &str, port: u16) -> String {
    let dir = dir.display();
    format!(
        "Port {port}
ListenAddress {address}
HostKey {dir}/ssh_host_ed25519_key
AuthorizedKeysFile {dir}/authorized_keys
PidFile {dir}/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
MaxStartups 200:30:400
UseDNS no
PrintMotd no
LogLevel VERBOSE
"
    )
}

/// One SSH connection a host accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshConnection {
    pub client_port: u16,
    /// Command sessions (`exec` requests) started on it.
    pub commands: usize,
}

/// `Accepted publickey for root from 127.0.0.1 port N ...` opens a connection; each
/// `Starting session: command for root from 127.0.0.1 port N id M` is a command on the latest
/// connection from port N (a client port can be reused by a later connection).
fn parse_connections(log: &str) -> Vec<SshConnection> {
    let port = |line: &str| -> Option<u16> {
        let after = line.split_once(" port ")?.1;
        after.split_whitespace().next()?.parse().ok()
    };
    let mut connections: Vec<SshConnection> = Vec::new();
    for line in log.lines() {
        if line.starts_with("Accepted ")
            && let Some(client_port) = port(line)
        {
            connections.push(SshConnection {
                client_port,
                commands: 0,
            });
        } else if line.contains("Starting session: command")
            && let Some(client_port) = port(line)
            && let Some(c) = connections
                .iter_mut()
                .rev()
                .find(|c| c.client_port == client_port)
        {
            c.commands += 1;
        }
    }
    connections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_and_their_commands_are_read_from_the_verbose_log() {
        let log = "Accepted publickey for root from 127.0.0.1 port 40000 ssh2: ED25519 SHA256:x
Starting session: command for root from 127.0.0.1 port 40000 id 0
Accepted publickey for root from 127.0.0.1 port 40001 ssh2: ED25519 SHA256:x
Starting session: command for root from 127.0.0.1 port 40000 id 1
Starting session: subsystem 'sftp' for root from 127.0.0.1 port 40001 id 0
Accepted publickey for root from 127.0.0.1 port 40000 ssh2: ED25519 SHA256:x
Starting session: command for root from 127.0.0.1 port 40000 id 0
";
        let c = |client_port, commands| SshConnection {
            client_port,
            commands,
        };
        assert_eq!(
            parse_connections(log),
            vec![c(40000, 2), c(40001, 0), c(40000, 1)]
        );
    }
}
