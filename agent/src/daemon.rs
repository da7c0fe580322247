//! The daemon: one per agent home. It takes the home's lock, binds the control socket, starts
//! the supervisor (which restores the saved process list), serves the control socket and —
//! when `<home>/tls` holds an identity — the mutual-TLS endpoint, until shut down.
//!
//! It is made to outlive whatever started it: the CLI starts it in a session of its own with
//! stdin from `/dev/null` and its output in `agent.log` (so an SSH session that ran
//! `pmfleet-agent ping` ends without waiting for it and without taking it along), and SIGHUP
//! never ends it: it reopens the log files and re-reads the TLS files.

use std::os::unix::fs::PermissionsExt;

use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::home::AgentHome;
use crate::supervisor::Supervisor;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot prepare the agent home {path}: {source}")]
    Home {
        path: String,
        source: std::io::Error,
    },
    #[error("another agent is already running in {0}")]
    AlreadyRunning(String),
    #[error("cannot listen on {path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
}

/// How long a starting daemon waits for the previous one to release the home.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How the daemon runs, beyond its home.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonOptions {
    /// `--tls-listen ADDR:PORT`: overrides `<home>/tls/listen`.
    pub tls_listen: Option<String>,
}

/// Run the daemon in `home` until `shutdown` is cancelled (a signal) or a client sends
/// `kill`. On a signal the apps are stopped but stay in the saved list, so they come back
/// when the daemon starts again; `kill` empties the list.
pub async fn run(home: AgentHome, shutdown: CancellationToken) -> Result<(), DaemonError> {
    run_with(home, DaemonOptions::default(), shutdown).await
}

/// [`run`] with [`DaemonOptions`].
pub async fn run_with(
    home: AgentHome,
    options: DaemonOptions,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    // First of all: a SIGHUP (the terminal or SSH session that started us going away) must
    // never end the daemon.
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let root = home.root().display().to_string();
    home.prepare().map_err(|source| DaemonError::Home {
        path: root.clone(),
        source,
    })?;
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.lock_file())
        .map_err(|source| DaemonError::Home {
            path: root.clone(),
            source,
        })?;
    // A daemon that is still shutting down holds the lock for a moment: wait it out.
    let mut lock_file = lock_file;
    let mut waited = std::time::Duration::ZERO;
    let _lock = loop {
        match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => break l,
            Err((f, _)) if waited < LOCK_WAIT => {
                lock_file = f;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                waited += std::time::Duration::from_millis(50);
            }
            Err(_) => return Err(DaemonError::AlreadyRunning(root)),
        }
    };

    let sock = home.socket();
    let sock_err = |source| DaemonError::Socket {
        path: sock.display().to_string(),
        source,
    };
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(sock_err)?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).map_err(sock_err)?;

    let _ = crate::home::write_atomic(
        &home.pid_file(),
        format!("{}\n", std::process::id()).as_bytes(),
    );
    let tasks = TaskTracker::new();
    let sup = Supervisor::start(home.clone(), tasks.clone()).await;
    tracing::info!(home = %root, pid = std::process::id(), version = env!("CARGO_PKG_VERSION"), "agent running");
    let (tls, reloads) = crate::api::TlsControl::new();
    tasks.spawn(crate::api::tls::endpoint(
        home.clone(),
        options.tls_listen.clone(),
        sup.clone(),
        shutdown.clone(),
        tasks.clone(),
        reloads,
    ));
    // SIGHUP reopens the log files and re-reads the TLS files, as for most daemons.
    if let Some(mut hup) = hup {
        let (sup, shutdown, tls) = (sup.clone(), shutdown.clone(), tls.clone());
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    Some(()) = hup.recv() => {
                        sup.reload_logs().await;
                        let _ = tls.reload().await;
                    }
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }
    crate::api::local::run_with_tls(listener, sup.clone(), shutdown, tasks.clone(), Some(tls))
        .await;
    tracing::info!("shutting down");
    let _ = std::fs::remove_file(&sock);
    sup.shutdown(false).await;
    let _ = std::fs::remove_file(home.pid_file());
    tasks.close();
    if tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not end within 5 s");
    }
    Ok(())
}
