//! The dashboard's HTTP/1 server: axum's router on hyper's connection builder, written out
//! here (instead of `axum::serve`) for the two bounds a server reachable from a network needs
//! and `axum::serve` does not set: a request head must arrive whole within
//! [`HEAD_TIMEOUT`] (a client trickling its headers — or holding an idle keep-alive
//! connection — is dropped), and at most [`MAX_CONNECTIONS`] connections are served at once
//! (the next wait to be accepted). Each request carries the connection's [`Peer`] as
//! `ConnectInfo`, which sign-in reads.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::tls::Peer;

/// How long a client has to send a request head, from its connection or its last answer.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// How long connections may take to finish once the dashboard is asked to stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown`, then gives open connections
/// [`STOP_GRACE`] to finish (a log stream never does by itself).
pub async fn serve<L>(mut listener: L, app: Router, shutdown: impl Future<Output = ()>)
where
    L: Listener<Addr = Peer>,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let stopping = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = app
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer.clone()));
                req.map(Body::new)
            });
        let stop = stopping.clone();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT);
            let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(STOP_GRACE, conn).await;
                }
            }
            drop(slot);
        });
    }
    stopping.cancel();
    // Wait for the connections to end (each gives its slot back), at most the grace.
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(STOP_GRACE, slots.acquire_many(all)).await;
}
