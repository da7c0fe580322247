//! The mutual-TLS endpoint: how the controller reaches the agent. Same frames, same
//! dispatcher as the local socket; what differs is who may connect and how long anything may
//! take.
//!
//! - Only clients whose certificate chains to the fleet CA (and is not revoked) get past the
//!   handshake: the [`ServerConfig`] comes from `pmfleet_shared::tls::server_config_with_crl`
//!   (TLS 1.3, ALPN `pmfleet/1`, no session resumption).
//! - Every phase is bounded ([`Limits`]): the handshake, the wait for each request frame (not
//!   the streaming of `logs`), the number of connections (the excess is closed at once, so a
//!   crowd of silent TCP clients cannot starve the others for longer than a handshake), and the
//!   frame size ([`pmfleet_shared::protocol::MAX_FRAME_LEN`]).
//! - Some requests are for the local socket only (see [`super::Origin::check`]).
//!
//! [`run_tls`] is the server, given its listener and shutdown token. [`endpoint`] is what the
//! daemon runs: it loads the identity from the agent home, serves it, and on `reload_tls`
//! reads the files again (a renewed certificate or a new CRL applies to the next connection
//! without dropping anyone; a new address re-binds).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::session::Session;
use super::{Origin, TlsReloads};
use crate::home::AgentHome;
use crate::identity::{self, ServerIdentity};
use crate::supervisor::Supervisor;
use crate::upgrade::{TlsListenerSlot, TlsSocket};

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send its next request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// How long the TLS close may take once a session ended.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The bounds of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub handshake: Duration,
    pub read: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            handshake: HANDSHAKE_TIMEOUT,
            read: READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Serve mutual TLS on `listener` until `shutdown` is cancelled, with the default [`Limits`].
pub async fn run_tls(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    supervisor: Supervisor,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let (_fixed, config) = watch::channel(config);
    serve(
        listener,
        config,
        supervisor,
        Stop {
            accepting: shutdown.clone(),
            sessions: shutdown,
        },
        tasks,
        Limits::default(),
    )
    .await
}

/// When to stop: accepting (the endpoint moves to another address) and serving the open
/// connections (the daemon shuts down).
#[derive(Debug, Clone)]
pub struct Stop {
    pub accepting: CancellationToken,
    pub sessions: CancellationToken,
}

/// The server loop. Each connection takes the configuration current when it was accepted, so
/// a new certificate or CRL sent on `config` applies from the next connection on.
pub async fn serve(
    listener: TcpListener,
    config: watch::Receiver<Arc<ServerConfig>>,
    supervisor: Supervisor,
    stop: Stop,
    tasks: TaskTracker,
    limits: Limits,
) {
    let session = Session {
        sup: supervisor,
        shutdown: stop.sessions.clone(),
        origin: Origin::Remote,
        idle_timeout: Some(limits.read),
        tls: None,
        upgrader: None,
    };
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, most likely: let connections finish.
                    tracing::warn!("mutual TLS: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.accepting.cancelled() => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "mutual TLS: {} connections already; closing this one", limits.max_connections);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(config.borrow().clone());
        let session = session.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let handshake =
                pmfleet_shared::tls::accept_with_timeout(&acceptor, tcp, limits.handshake);
            let mut stream = tokio::select! {
                r = handshake => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::info!(%peer, "mutual TLS: refused: {e}");
                        return;
                    }
                },
                _ = session.shutdown.cancelled() => return,
            };
            tracing::debug!(%peer, "mutual TLS: client accepted");
            if let Err(e) = session.serve(&mut stream).await {
                tracing::info!(%peer, "mutual TLS: connection ended: {e}");
            }
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
        });
    }
}

/// The endpoint as it runs.
struct Running {
    /// The address it was asked to listen on (as configured).
    listen: String,
    local: SocketAddr,
    config: watch::Sender<Arc<ServerConfig>>,
    stop_accepting: CancellationToken,
}

/// Where the daemon's endpoint gets its identity and socket.
#[derive(Debug, Clone)]
pub struct EndpointSetup {
    pub home: AgentHome,
    /// `daemon --tls-listen`: overrides the `listen` file.
    pub listen: Option<String>,
    /// A listener left by the previous binary of an in-place upgrade: used, instead of
    /// binding, if the configured address is still the same.
    pub inherited: Option<TlsSocket>,
    /// Kept pointing at the listener in use, for the next upgrade.
    pub slot: TlsListenerSlot,
}

/// The daemon's mutual-TLS endpoint: serve the identity of `setup.home` (if configured) until
/// `shutdown`, re-reading it on each request from `reloads`. Every outcome is logged, so
/// `agent.log` says why the agent does or does not listen.
pub async fn endpoint(
    mut setup: EndpointSetup,
    supervisor: Supervisor,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    mut reloads: TlsReloads,
) {
    let mut running: Option<Running> = None;
    report(apply((&mut setup, &supervisor, &shutdown, &tasks), &mut running).await);
    loop {
        tokio::select! {
            Some(reply) = reloads.recv() => {
                let outcome = apply((&mut setup, &supervisor, &shutdown, &tasks), &mut running).await;
                report(outcome.clone());
                let _ = reply.send(outcome);
            }
            _ = shutdown.cancelled() => break,
        }
    }
    if let Some(r) = running {
        r.stop_accepting.cancel();
    }
}

/// The listener the previous binary left, if it was bound for `listen`; else it is closed.
fn take_listener(t: TlsSocket, listen: &str) -> Option<TcpListener> {
    use std::os::fd::FromRawFd;
    // SAFETY: the previous binary left this descriptor open for us; nothing else owns it.
    let std = unsafe { std::net::TcpListener::from_raw_fd(t.fd) };
    if t.listen != listen {
        return None;
    }
    std.set_nonblocking(true).ok()?;
    TcpListener::from_std(std).ok()
}

fn report(outcome: Result<Vec<String>, String>) {
    match outcome {
        Ok(lines) => lines.iter().for_each(|l| tracing::info!("{l}")),
        Err(e) => tracing::error!("{e}"),
    }
}

type Ctx<'a> = (
    &'a mut EndpointSetup,
    &'a Supervisor,
    &'a CancellationToken,
    &'a TaskTracker,
);

/// Load the files and make the endpoint match them. On an error the endpoint keeps what it
/// was serving.
async fn apply(ctx: Ctx<'_>, running: &mut Option<Running>) -> Result<Vec<String>, String> {
    let (setup, sup, shutdown, tasks) = ctx;
    let (home, listen) = (&setup.home, setup.listen.as_deref());
    let serving = running.as_ref().map(|r| r.local);
    let kept = |e: String| match serving {
        Some(local) => format!("{e}; still serving mutual TLS on {local} as before"),
        None => format!("{e}; serving the local socket only"),
    };
    let id: ServerIdentity = match identity::load_server(home, listen) {
        Ok(Some(id)) => id,
        Ok(None) => {
            if let Some(r) = running.take() {
                r.stop_accepting.cancel();
            }
            setup.slot.clear();
            return Ok(vec![format!(
                "mutual TLS is not configured (no agent.pem or ca.pem in {}); serving the local socket only",
                home.tls_dir().display()
            )]);
        }
        Err(e) => return Err(kept(format!("mutual TLS: {e}"))),
    };
    let crl = if id.crl { ", with a CRL" } else { "" };
    if let Some(r) = running.as_ref().filter(|r| r.listen == id.listen) {
        r.config.send_replace(id.config);
        return Ok(vec![format!(
            "mutual TLS on {}: reloaded ({}{crl})",
            r.local,
            id.cert.summary()
        )]);
    }
    let inherited = setup
        .inherited
        .take()
        .and_then(|t| take_listener(t, &id.listen));
    let bound = match inherited {
        Some(l) => Ok(l),
        None => TcpListener::bind(&id.listen).await,
    };
    let listener = match bound {
        Ok(l) => l,
        // The old endpoint may hold the port (0.0.0.0:7677 → 10.0.0.7:7677): free it first.
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && running.is_some() => {
            if let Some(r) = running.take() {
                r.stop_accepting.cancel();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            TcpListener::bind(&id.listen)
                .await
                .map_err(|e| format!("mutual TLS: cannot listen on {}: {e}", id.listen))?
        }
        Err(e) => {
            return Err(kept(format!(
                "mutual TLS: cannot listen on {}: {e}",
                id.listen
            )));
        }
    };
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    setup.slot.set(&id.listen, &listener);
    if let Some(r) = running.take() {
        r.stop_accepting.cancel();
    }
    let (config, rx) = watch::channel(id.config);
    let stop = Stop {
        accepting: shutdown.child_token(),
        sessions: shutdown.clone(),
    };
    *running = Some(Running {
        listen: id.listen.clone(),
        local,
        config,
        stop_accepting: stop.accepting.clone(),
    });
    tasks.spawn(serve(
        listener,
        rx,
        sup.clone(),
        stop,
        tasks.clone(),
        Limits::default(),
    ));
    Ok(vec![format!(
        "serving mutual TLS on {local} ({}{crl})",
        id.cert.summary()
    )])
}
