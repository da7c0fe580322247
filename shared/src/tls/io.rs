//! Handshakes with a deadline: a peer that connects and goes quiet must not hold a
//! connection slot, and a controller must not wait forever on a host that stopped answering.

use std::fmt;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

use super::{ALPN, TlsError};

/// Which step ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Handshake,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connecting",
            Phase::Handshake => "the TLS handshake",
        })
    }
}

/// The server's handshake on an accepted connection, given at most `timeout`. A client that
/// did not negotiate [`ALPN`] is refused.
pub async fn accept_with_timeout<IO>(
    acceptor: &TlsAcceptor,
    stream: IO,
    timeout: Duration,
) -> Result<server::TlsStream<IO>, TlsError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    accept_alpn_with_timeout(acceptor, stream, timeout, &[]).await
}

/// [`accept_with_timeout`], also accepting a client that negotiated one of `also` (the
/// agent's metrics endpoint offers `http/1.1` to scrapers on its mutual-TLS port).
pub async fn accept_alpn_with_timeout<IO>(
    acceptor: &TlsAcceptor,
    stream: IO,
    timeout: Duration,
    also: &[&[u8]],
) -> Result<server::TlsStream<IO>, TlsError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let tls = tokio::time::timeout(timeout, acceptor.accept(stream))
        .await
        .map_err(|_| TlsError::Timeout {
            phase: Phase::Handshake,
            after: timeout,
        })?
        .map_err(TlsError::Handshake)?;
    let chosen = tls.get_ref().1.alpn_protocol();
    if chosen != Some(ALPN) && !chosen.is_some_and(|c| also.contains(&c)) {
        return Err(TlsError::Alpn);
    }
    Ok(tls)
}

/// TCP connect to `addr` and the client's handshake, checking the agent's certificate against
/// `server_name`, all within `timeout`.
///
/// Under TLS 1.3 the server checks the client's certificate after the client considers the
/// handshake done: a refused client learns it on its first read, not here.
pub async fn connect_with_timeout<A: ToSocketAddrs>(
    connector: &TlsConnector,
    addr: A,
    server_name: ServerName<'static>,
    timeout: Duration,
) -> Result<client::TlsStream<TcpStream>, TlsError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| TlsError::Timeout {
            phase: Phase::Connect,
            after: timeout,
        })?
        .map_err(TlsError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    handshake_over(connector, tcp, server_name, left, timeout).await
}

/// The client side of the handshake over a stream already open (a channel forwarded over
/// SSH, say), within `within`; `budget` is the whole deadline, for the message.
pub async fn handshake_over<S>(
    connector: &TlsConnector,
    stream: S,
    server_name: ServerName<'static>,
    within: Duration,
    budget: Duration,
) -> Result<client::TlsStream<S>, TlsError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let tls = tokio::time::timeout(within, connector.connect(server_name, stream))
        .await
        .map_err(|_| TlsError::Timeout {
            phase: Phase::Handshake,
            after: budget,
        })?
        .map_err(TlsError::Handshake)?;
    if tls.get_ref().1.alpn_protocol() != Some(ALPN) {
        return Err(TlsError::Alpn);
    }
    Ok(tls)
}
