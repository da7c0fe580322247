//! The daemon: one per agent home. It takes the home's lock, binds the control socket, starts
//! the supervisor (which restores the saved process list), serves the control socket and —
//! when `<home>/tls` holds an identity — the mutual-TLS endpoint, until shut down.
//!
//! It is made to outlive whatever started it: the CLI starts it in a session of its own with
//! stdin from `/dev/null` and its output in `agent.log` (so an SSH session that ran
//! `pmfleet-agent ping` ends without waiting for it and without taking it along), and SIGHUP
//! never ends it: it reopens the log files and re-reads the TLS files.

use std::os::unix::fs::PermissionsExt;

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::daemon_lock::{DaemonLock, LockError};
use crate::home::AgentHome;
use crate::supervisor::Supervisor;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot prepare the agent home {path}: {source}")]
    Home {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot listen on {path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
}

/// See [`started_ms`].
static STARTED_MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// When this daemon's binary started (ms since the epoch): unlike the pid, it changes when
/// the daemon upgrades itself in place. `None` outside a daemon.
pub fn started_ms() -> Option<u64> {
    STARTED_MS.get().copied()
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
pub async fn run_with(
    home: AgentHome,
    options: DaemonOptions,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    // First of all: a SIGHUP (the terminal or SSH session that started us going away) must
    // never end the daemon.
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let _ = STARTED_MS.set(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0)),
    );
    let root = home.root().display().to_string();
    home.prepare().map_err(|source| DaemonError::Home {
        path: root.clone(),
        source,
    })?;
    // Started in the background, our output is agent.log: rotate it like an app's log.
    let max_size = match std::env::var(crate::logs::daemon_log::MAX_SIZE_VAR) {
        Ok(v) => match pmfleet_shared::units::parse_size(&v) {
            Ok(n) if n > 0 => n,
            Ok(_) => crate::logs::DEFAULT_MAX_SIZE,
            Err(e) => {
                tracing::warn!("{}: {e}", crate::logs::daemon_log::MAX_SIZE_VAR);
                crate::logs::DEFAULT_MAX_SIZE
            }
        },
        Err(_) => crate::logs::DEFAULT_MAX_SIZE,
    };
    crate::logs::daemon_log::attach(&home.daemon_log(), max_size, crate::logs::DEFAULT_RETAIN);
    // Started by an in-place upgrade: the previous binary left us its lock, sockets and apps.
    let handover = match crate::upgrade::inherited() {
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => {
            tracing::error!("cannot take over from the previous binary: {e}; starting afresh");
            None
        }
        None => None,
    };
    let lock = match DaemonLock::inherited(&home.lock_file()) {
        Some(lock) => lock,
        // A daemon that is still shutting down holds the lock for a moment: wait it out.
        None => DaemonLock::acquire(&home.lock_file(), LOCK_WAIT).await?,
    };
    let sock = home.socket();
    let sock_err = |source| DaemonError::Socket {
        path: sock.display().to_string(),
        source,
    };
    let listener = match &handover {
        // SAFETY: the previous binary left this descriptor open for us, and nothing else
        // in this process owns it.
        Some(h) => unsafe {
            <std::os::unix::net::UnixListener as std::os::fd::FromRawFd>::from_raw_fd(h.control)
        },
        None => {
            let _ = std::fs::remove_file(&sock);
            let l = std::os::unix::net::UnixListener::bind(&sock).map_err(sock_err)?;
            std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))
                .map_err(sock_err)?;
            l
        }
    };
    let upgrader = crate::upgrade::Upgrader {
        home: home.clone(),
        control: std::os::fd::AsRawFd::as_raw_fd(&listener),
        lock: lock.as_raw_fd(),
        tls: Default::default(),
    };
    listener.set_nonblocking(true).map_err(sock_err)?;
    let listener = UnixListener::from_std(listener).map_err(sock_err)?;

    let _ = crate::home::write_atomic(
        &home.pid_file(),
        format!("{}\n", std::process::id()).as_bytes(),
    );
    let tasks = TaskTracker::new();
    // Orphans below the daemon become its children, and are reaped (once the supervisor
    // knows its own children: those it adopted in an upgrade are registered by then).
    crate::supervisor::reaper::become_subreaper();
    let (sup, inherited_tls) = match handover {
        Some(h) => {
            let tls = h.tls.clone();
            (
                Supervisor::resume(home.clone(), tasks.clone(), h.apps).await,
                tls,
            )
        }
        None => (Supervisor::start(home.clone(), tasks.clone()).await, None),
    };
    tasks.spawn(crate::supervisor::reaper::run(shutdown.clone()));
    tasks.spawn(crate::auto_revert::run(sup.clone(), shutdown.clone()));
    tracing::info!(home = %root, pid = std::process::id(), version = env!("CARGO_PKG_VERSION"), "agent running");
    let (tls, reloads) = crate::api::TlsControl::new();
    tasks.spawn(crate::api::tls::endpoint(
        crate::api::tls::EndpointSetup {
            home: home.clone(),
            listen: options.tls_listen.clone(),
            inherited: inherited_tls,
            slot: upgrader.tls.clone(),
        },
        sup.clone(),
        shutdown.clone(),
        tasks.clone(),
        reloads,
    ));
    tasks.spawn(crate::api::metrics_http::endpoint(
        home.root().to_path_buf(),
        sup.clone(),
        shutdown.clone(),
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
    crate::api::local::run_daemon(
        listener,
        sup.clone(),
        shutdown,
        tasks.clone(),
        (tls, upgrader),
    )
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
