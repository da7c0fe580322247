//! Upgrading the daemon in place: `pmfleet-agent upgrade` (what the controller's
//! `setup --upgrade-agent` runs once the new binary is installed).
//!
//! The running daemon re-executes itself into the new binary. The pid stays, so the apps'
//! processes stay its children; the control socket, the mutual-TLS listener, every cluster
//! app's listening socket and every instance's output pipe stay open across the `exec`; the
//! new binary finds them in a handover file named by `PMFLEET_AGENT_HANDOVER` and takes them
//! over. No app is stopped, reloaded or disconnected, and a client of the control socket
//! meanwhile waits in its backlog instead of being refused. The descriptor holding the home's
//! lock stays open too, so the home is never without its daemon, even for the `exec`.
//!
//! The supervisor's part is [`crate::supervisor::handover`]; this module adds the daemon's own
//! sockets, writes the file and makes the `exec`.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pmfleet_shared::protocol::ErrorKind;
use serde::{Deserialize, Serialize};

use crate::home::AgentHome;
use crate::supervisor::Supervisor;
use crate::supervisor::handover::{AppsHandover, HANDOVER_VERSION, is_open, set_inherited};

/// Names the handover file in the new binary's environment.
pub const HANDOVER_ENV: &str = "PMFLEET_AGENT_HANDOVER";

/// The handover file: the supervisor's apps and the daemon's own sockets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handover {
    pub version: u32,
    /// The control socket's listener.
    pub control: RawFd,
    /// The mutual-TLS listener, with the address it was bound for.
    pub tls: Option<TlsSocket>,
    pub apps: AppsHandover,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsSocket {
    /// The address as configured (`<home>/tls/listen`).
    pub listen: String,
    pub fd: RawFd,
}

/// The mutual-TLS listener as the endpoint last bound it: its configured address and a copy
/// of the socket. The endpoint keeps it current; an upgrade hands it over.
#[derive(Debug, Clone, Default)]
pub struct TlsListenerSlot(Arc<Mutex<Option<(String, OwnedFd)>>>);

impl TlsListenerSlot {
    pub fn set(&self, listen: &str, socket: &impl std::os::fd::AsFd) {
        let copy = socket.as_fd().try_clone_to_owned().ok();
        *self.lock() = copy.map(|fd| (listen.to_string(), fd));
    }

    pub fn clear(&self) {
        *self.lock() = None;
    }

    fn get(&self) -> Option<TlsSocket> {
        self.lock().as_ref().map(|(listen, fd)| TlsSocket {
            listen: listen.clone(),
            fd: fd.as_raw_fd(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(String, OwnedFd)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a daemon needs to upgrade itself, beyond its supervisor.
#[derive(Debug, Clone)]
pub struct Upgrader {
    pub home: AgentHome,
    /// The control socket's listener.
    pub control: RawFd,
    /// The descriptor holding the home's lock ([`crate::daemon_lock`]): left open across the
    /// `exec`, so the lock is never free while the daemon becomes the new binary.
    pub lock: RawFd,
    pub tls: TlsListenerSlot,
}

impl Upgrader {
    /// Check that `binary` can take over: an absolute path to an executable file that reads
    /// this daemon's handover format. A format mismatch is a [`ErrorKind::Version`] error.
    pub fn check(&self, binary: &Path, handover: u32) -> Result<(), (ErrorKind, String)> {
        let invalid = |message| Err((ErrorKind::Invalid, message));
        use std::os::unix::fs::PermissionsExt;
        if !binary.is_absolute() {
            return invalid(format!(
                "{} is not an absolute path to the new agent binary",
                binary.display()
            ));
        }
        let meta = match std::fs::metadata(binary) {
            Ok(m) => m,
            Err(e) => {
                return invalid(format!(
                    "cannot use {} as the new agent: {e}",
                    binary.display()
                ));
            }
        };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return invalid(format!(
                "{} is not an executable file: install the new agent binary first",
                binary.display()
            ));
        }
        if handover != HANDOVER_VERSION {
            return Err((
                ErrorKind::Version,
                format!(
                    "this agent hands its apps over in format {HANDOVER_VERSION}, the new binary reads format {handover}: restart the agent instead (its apps restart)"
                ),
            ));
        }
        Ok(())
    }

    /// Hand every app over to `binary` and become it. Returns only if that failed, after
    /// every app resumed as before.
    pub async fn upgrade(&self, sup: &Supervisor, binary: &Path) -> std::io::Error {
        let file = self.home.root().join("handover.json");
        sup.hand_over(|apps| {
            let handover = Handover {
                version: HANDOVER_VERSION,
                control: self.control,
                tls: self.tls.get(),
                apps: apps.clone(),
            };
            let own = [
                Some(handover.control),
                Some(self.lock),
                handover.tls.as_ref().map(|t| t.fd),
            ];
            let json = match serde_json::to_vec(&handover) {
                Ok(j) => j,
                Err(e) => return e.into(),
            };
            if let Err(e) = crate::home::write_atomic(&file, &json) {
                return e;
            }
            own.iter().flatten().for_each(|fd| set_inherited(*fd, true));
            tracing::info!(binary = %binary.display(), "handing the apps over to the new binary");
            let error = exec(binary, &file);
            own.iter()
                .flatten()
                .for_each(|fd| set_inherited(*fd, false));
            let _ = std::fs::remove_file(&file);
            error
        })
        .await
    }
}

/// Replace this process with `binary`, same arguments, same environment plus
/// [`HANDOVER_ENV`]. Returns only on failure.
fn exec(binary: &Path, handover_file: &Path) -> std::io::Error {
    let cstring = |bytes: &[u8]| CString::new(bytes).map_err(std::io::Error::other);
    let build = || -> std::io::Result<(CString, Vec<CString>, Vec<CString>)> {
        let path = cstring(binary.as_os_str().as_bytes())?;
        let mut argv = vec![path.clone()];
        for arg in std::env::args_os().skip(1) {
            argv.push(cstring(arg.as_bytes())?);
        }
        let mut env = Vec::new();
        for (k, v) in std::env::vars_os().filter(|(k, _)| k != HANDOVER_ENV) {
            let mut pair: OsString = k;
            pair.push("=");
            pair.push(v);
            env.push(cstring(pair.as_bytes())?);
        }
        let mut pair = OsString::from(format!("{HANDOVER_ENV}="));
        pair.push(handover_file);
        env.push(cstring(pair.as_bytes())?);
        Ok((path, argv, env))
    };
    match build() {
        Ok((path, argv, env)) => match nix::unistd::execve(&path, &argv, &env) {
            Ok(never) => match never {},
            Err(errno) => std::io::Error::from(errno),
        },
        Err(e) => e,
    }
}

/// In a daemon started by [`Upgrader::upgrade`]: the handover it was given (the file is
/// removed once read). `None` for a daemon started any other way.
pub fn inherited() -> Option<Result<Handover, String>> {
    let path = PathBuf::from(std::env::var_os(HANDOVER_ENV).filter(|p| !p.is_empty())?);
    let read = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    let _ = std::fs::remove_file(&path);
    Some(read.and_then(|bytes| {
        let h: Handover = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a handover: {e}", path.display()))?;
        if h.version != HANDOVER_VERSION {
            return Err(format!(
                "{}: handover format {}, this binary reads {HANDOVER_VERSION}",
                path.display(),
                h.version
            ));
        }
        // The daemon's own descriptors go back to close-on-exec at once, so no app spawned
        // from here on inherits them.
        for fd in [Some(h.control), h.tls.as_ref().map(|t| t.fd)]
            .into_iter()
            .flatten()
        {
            if !is_open(fd) {
                return Err(format!("descriptor {fd} was not handed over"));
            }
            set_inherited(fd, false);
        }
        Ok(h)
    }))
}
