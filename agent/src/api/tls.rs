//! The mutual-TLS endpoint: how the controller reaches the agent. Same frames, same
//! dispatcher as the local socket; what differs is who may connect, what they may ask, and
//! how long and how much anything may take.
//!
//! - Only clients whose certificate chains to the fleet CA (and is not revoked) get past the
//!   handshake: the [`ServerConfig`] comes from `pmfleet_shared::tls::server_config_with_crl`
//!   (TLS 1.3, ALPN `pmfleet/1`, no session resumption).
//! - The role in that certificate ([`pmfleet_shared::tls::role_of`]) decides, request by
//!   request, what the session accepts ([`super::access`]); a certificate without a role is
//!   `read`, one whose role cannot be read is told so and closed.
//! - Every phase is bounded ([`Limits`]): connections still in the handshake have a pool of
//!   their own, a share per peer address and a short deadline, so they can never take the
//!   slots of authenticated sessions ([`super::admission`]); sessions have their own cap with
//!   slots kept for `admin` certificates; each request frame is small
//!   ([`pmfleet_shared::protocol::MAX_REQUEST_LEN`]) and all of them together hold a bounded
//!   number of bytes; waiting for a request, and writing each answer, have deadlines.
//!
//! [`run`] is the server, given its listener and when to stop (a test binds `127.0.0.1:0` and
//! runs it with limits of its own). [`endpoint`] is what the daemon runs: it loads the
//! identity from the agent home, runs the server with it, and on `reload_tls` reads the files
//! again (a renewed certificate or a new CRL applies to the next connection without dropping
//! anyone; a new address re-binds).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pmfleet_shared::protocol::{ApiError, ErrorKind, MAX_REQUEST_LEN, Response, write_frame};
use pmfleet_shared::tls::Role;
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::{Handshakes, Sessions};
use super::session::{Caller, Session};
use super::{Origin, TlsReloads};
use crate::home::AgentHome;
use crate::identity::{self, ServerIdentity};
use crate::supervisor::Supervisor;
use crate::upgrade::{TlsListenerSlot, TlsSocket};

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a client may take to send its next request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long writing one answer frame may take: a client that stops reading (a stalled
/// `logs --follow`) is dropped after this.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections in the TLS handshake at once; a new one evicts the oldest.
pub const MAX_HANDSHAKES: usize = 32;
/// Connections in the TLS handshake at once from one address; a new one evicts that
/// address's oldest.
pub const MAX_HANDSHAKES_PER_PEER: usize = 8;
/// Authenticated sessions served at once.
pub const MAX_SESSIONS: usize = 64;
/// Of [`MAX_SESSIONS`], how many only `admin` certificates may take.
pub const ADMIN_RESERVE: usize = 8;
/// Bytes of request frames all connections together may be reading at once.
pub const REQUEST_BYTES_IN_FLIGHT: usize = 1024 * 1024;
/// How long the TLS close may take once a session ended.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The bounds of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub handshake: Duration,
    pub read: Duration,
    pub write: Duration,
    pub max_handshakes: usize,
    pub handshakes_per_peer: usize,
    pub max_sessions: usize,
    pub admin_reserve: usize,
    /// The largest request frame, in bytes.
    pub max_request: u32,
    /// Bytes of request frames in flight over all connections (at least `max_request`).
    pub bytes_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            handshake: HANDSHAKE_TIMEOUT,
            read: READ_TIMEOUT,
            write: WRITE_TIMEOUT,
            max_handshakes: MAX_HANDSHAKES,
            handshakes_per_peer: MAX_HANDSHAKES_PER_PEER,
            max_sessions: MAX_SESSIONS,
            admin_reserve: ADMIN_RESERVE,
            max_request: MAX_REQUEST_LEN,
            bytes_in_flight: REQUEST_BYTES_IN_FLIGHT,
        }
    }
}

/// When to stop: accepting (the endpoint moves to another address) and serving the open
/// connections (the daemon shuts down).
#[derive(Debug, Clone)]
pub struct Stop {
    pub accepting: CancellationToken,
    pub sessions: CancellationToken,
}

/// What the server serves with.
#[derive(Clone)]
pub struct Endpoint {
    /// The TLS configuration; each connection takes the one current when it was accepted, so
    /// a new certificate or CRL sent here applies from the next connection on.
    pub config: watch::Receiver<Arc<ServerConfig>>,
    pub supervisor: Supervisor,
    /// Where every connection's task runs.
    pub tasks: TaskTracker,
    pub limits: Limits,
}

/// The connection slots, shared by the accept loop and the connections.
struct Slots {
    handshakes: Mutex<Handshakes<CancellationToken>>,
    sessions: Mutex<Sessions>,
}

/// Serve mutual TLS on `listener` until `stop` says so.
pub async fn run(listener: TcpListener, endpoint: Endpoint, stop: Stop) {
    let limits = endpoint.limits;
    let session = Session {
        sup: endpoint.supervisor.clone(),
        shutdown: stop.sessions.clone(),
        // Set per connection from its certificate; never served as is.
        origin: Origin::Remote(Role::Read),
        idle_timeout: Some(limits.read),
        write_timeout: Some(limits.write),
        max_request: limits.max_request,
        budget: Some(Arc::new(Semaphore::new(
            limits.bytes_in_flight.max(limits.max_request as usize),
        ))),
        tls: None,
        upgrader: None,
        client: None,
    };
    let slots = Arc::new(Slots {
        handshakes: Mutex::new(Handshakes::new(
            limits.max_handshakes,
            limits.handshakes_per_peer,
        )),
        sessions: Mutex::new(Sessions::new(limits.max_sessions, limits.admin_reserve)),
    });
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
        let _ = tcp.set_nodelay(true);
        let evict = CancellationToken::new();
        let (ticket, evicted) = lock(&slots.handshakes).admit(peer.ip(), evict.clone());
        if let Some(older) = evicted {
            older.cancel();
        }
        let acceptor = TlsAcceptor::from(endpoint.config.borrow().clone());
        let (session, slots) = (session.clone(), slots.clone());
        endpoint.tasks.spawn(async move {
            let handshake = tokio::select! {
                r = pmfleet_shared::tls::accept_alpn_with_timeout(&acceptor, tcp, limits.handshake, &[pmfleet_shared::tls::HTTP_ALPN]) => r,
                _ = evict.cancelled() => {
                    lock(&slots.handshakes).done(ticket);
                    tracing::debug!(%peer, "mutual TLS: handshake ended to make room for a newer one");
                    return;
                }
                _ = session.shutdown.cancelled() => return,
            };
            lock(&slots.handshakes).done(ticket);
            let mut stream = match handshake {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(%peer, "mutual TLS: refused: {e}");
                    return;
                }
            };
            if stream.get_ref().1.alpn_protocol() == Some(pmfleet_shared::tls::HTTP_ALPN) {
                // Offered only when metrics are served here (`super::metrics_http`).
                serve_metrics(&session, &slots, &mut stream, peer).await;
            } else {
                serve_authenticated(&session, &slots, &mut stream, peer).await;
            }
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
        });
    }
}

/// A connection past the handshake: its role read from its certificate, a session slot
/// taken for it (or a `busy` answer), then its requests.
async fn serve_authenticated(
    session: &Session,
    slots: &Slots,
    stream: &mut TlsStream<TcpStream>,
    peer: SocketAddr,
) {
    let role = match peer_role(stream) {
        Ok(role) => role,
        Err(message) => {
            tracing::warn!(%peer, "mutual TLS: refused: {message}");
            refuse(stream, session, ErrorKind::Forbidden, message).await;
            return;
        }
    };
    let shown = role.map_or_else(|| "none (counts as read)".to_string(), |r| r.to_string());
    if !lock(&slots.sessions).take(role == Some(Role::Admin)) {
        let message = format!(
            "the agent serves as many connections as it takes ({}); try again shortly",
            lock(&slots.sessions).in_use()
        );
        tracing::warn!(%peer, role = %shown, "mutual TLS: {message}");
        refuse(stream, session, ErrorKind::Busy, message).await;
        return;
    }
    tracing::debug!(%peer, role = %shown, "mutual TLS: client accepted");
    let session = Session {
        origin: Origin::remote(role),
        client: peer_name(stream).map(Caller::Certificate),
        ..session.clone()
    };
    if let Err(e) = session.serve(stream).await {
        tracing::info!(%peer, "mutual TLS: connection ended: {e}");
    }
    lock(&slots.sessions).give_back();
}

/// A scraper past the handshake (it chose `http/1.1`): any fleet certificate may read the
/// metrics (a `read` request); it takes a session slot for the one answer.
async fn serve_metrics(
    session: &Session,
    slots: &Slots,
    stream: &mut TlsStream<TcpStream>,
    peer: SocketAddr,
) {
    let role = match peer_role(stream) {
        Ok(role) => role,
        Err(message) => {
            tracing::warn!(%peer, "metrics over mutual TLS: refused: {message}");
            return;
        }
    };
    if let Err(refused) = Origin::remote(role).check(&pmfleet_shared::protocol::Request::Metrics) {
        tracing::warn!(%peer, "metrics over mutual TLS: {}", refused.message);
        return;
    }
    if !lock(&slots.sessions).take(role == Some(Role::Admin)) {
        tracing::warn!(%peer, "metrics over mutual TLS: every session slot is taken");
        return;
    }
    if let Err(e) = super::metrics_http::answer(stream, &session.sup).await {
        tracing::debug!(%peer, "metrics over mutual TLS: {e}");
    }
    lock(&slots.sessions).give_back();
}

/// The role of the verified client certificate, `None` when it names none (it then counts
/// as `read`, see [`Origin::Unmarked`]).
fn peer_role(stream: &TlsStream<TcpStream>) -> Result<Option<Role>, String> {
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("no client certificate")?;
    pmfleet_shared::tls::role_of(cert).map_err(|e| format!("the client certificate's role: {e}"))
}

/// The name in the verified client certificate (its common name).
fn peer_name(stream: &TlsStream<TcpStream>) -> Option<String> {
    let cert = stream.get_ref().1.peer_certificates()?.first()?;
    pmfleet_shared::tls::name_of(cert)
}

/// Answer with one error and end the connection (the client reads it as the answer to its
/// first request).
async fn refuse(
    stream: &mut TlsStream<TcpStream>,
    session: &Session,
    kind: ErrorKind,
    message: String,
) {
    let answer = Response::Error(ApiError { kind, message });
    let limit = session.write_timeout.unwrap_or(WRITE_TIMEOUT);
    let _ = tokio::time::timeout(limit, write_frame(stream, &answer)).await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    let mut id = id;
    if super::metrics_http::of_home(home.root()) == Ok(super::metrics_http::MetricsListen::Tls) {
        // Scrapers speak HTTP/1.1: offer it beside the frame protocol.
        let mut config = (*id.config).clone();
        config
            .alpn_protocols
            .push(pmfleet_shared::tls::HTTP_ALPN.to_vec());
        id.config = Arc::new(config);
    }
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
    tasks.spawn(run(
        listener,
        Endpoint {
            config: rx,
            supervisor: sup.clone(),
            tasks: tasks.clone(),
            limits: Limits::default(),
        },
        stop,
    ));
    Ok(vec![format!(
        "serving mutual TLS on {local} ({}{crl})",
        id.cert.summary()
    )])
}
