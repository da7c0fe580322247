//! Talking to a host's agent over mutual TLS: one request, one response (or a stream of
//! responses for `logs --follow`), every phase under a deadline. The agent's certificate must
//! chain to the fleet CA, name the host dialled and not be revoked (the client configuration
//! carries the CA's `crl.pem`); when it will expire is handed back with the answer, for
//! `status` to warn about. The TLS runs over a TCP connection to the host or over a channel
//! of an SSH connection to it ([`Via`]).

use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::protocol::{self, Request, Response};
use pmfleet_shared::tls::{self, TlsError};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use super::route::{TunnelError, Via};
use crate::pki::ClientIdentity;

/// What the TLS of an agent connection runs over: TCP, or an SSH channel.
trait Duplex: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Duplex for T {}

type AgentStream = tokio_rustls::client::TlsStream<Box<dyn Duplex>>;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("the agent closed the connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad answer from the agent: {0}")]
    Conn(#[from] protocol::ConnError),
    #[error("no answer from the agent within {0:?}")]
    Timeout(Duration),
    #[error("the agent refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Tunnel(#[from] TunnelError),
}

impl AgentError {
    /// The agent speaks another protocol version (an agent binary older or newer than this
    /// pmfleet).
    pub fn is_version_mismatch(&self) -> bool {
        matches!(
            self,
            AgentError::Conn(protocol::ConnError::Frame(
                protocol::FrameError::Version { .. }
            ))
        )
    }

    /// The agent could not be reached at all (as opposed to answering badly).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            AgentError::Tls(TlsError::Connect(_))
                | AgentError::Tls(TlsError::Timeout { .. })
                | AgentError::Timeout(_)
                | AgentError::Tunnel(TunnelError::Connect(_))
        )
    }
}

/// Dials agents with the controller's (or CI runner's) fleet certificate.
#[derive(Clone)]
pub struct AgentClient {
    connector: TlsConnector,
    /// Connect + handshake, and each answer.
    timeout: Duration,
}

impl AgentClient {
    pub fn new(identity: &ClientIdentity, timeout: Duration) -> Result<AgentClient, TlsError> {
        Ok(AgentClient {
            connector: TlsConnector::from(identity.client_config()?),
            timeout,
        })
    }

    pub fn from_config(config: Arc<rustls::ClientConfig>, timeout: Duration) -> AgentClient {
        AgentClient {
            connector: TlsConnector::from(config),
            timeout,
        }
    }

    /// Sends one request to the agent at `host:port` (reached `via`) and returns its answer;
    /// an `Error` answer becomes [`AgentError::Refused`]. `wait` bounds the answer
    /// (apply-release waits for apps to become ready); the connection itself is bounded by
    /// the client's timeout.
    pub async fn request(
        &self,
        host: &str,
        port: u16,
        via: &Via,
        request: &Request,
        wait: Option<Duration>,
    ) -> Result<Response, AgentError> {
        self.request_with_cert(host, port, via, request, wait)
            .await
            .map(|(response, _)| response)
    }

    /// [`request`](Self::request), with when the agent's certificate expires (`not_after`,
    /// seconds since the epoch; `None` if it could not be read).
    pub async fn request_with_cert(
        &self,
        host: &str,
        port: u16,
        via: &Via,
        request: &Request,
        wait: Option<Duration>,
    ) -> Result<(Response, Option<i64>), AgentError> {
        let mut stream = self.connect(host, port, via).await?;
        let not_after = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| tls::not_after_unix(cert));
        protocol::write_frame(&mut stream, request).await?;
        let wait = wait.unwrap_or(self.timeout);
        let response = tokio::time::timeout(wait, read_answer(&mut stream))
            .await
            .map_err(|_| AgentError::Timeout(wait))??;
        let _ = stream.shutdown().await;
        match response {
            Response::Error(e) => Err(AgentError::Refused(e.message)),
            other => Ok((other, not_after)),
        }
    }

    /// Sends `request` and hands every answer to `on_response` until it returns false or the
    /// agent ends the stream (`End`).
    pub async fn stream(
        &self,
        host: &str,
        port: u16,
        via: &Via,
        request: &Request,
        mut on_response: impl FnMut(Response) -> bool,
    ) -> Result<(), AgentError> {
        let mut stream = self.connect(host, port, via).await?;
        protocol::write_frame(&mut stream, request).await?;
        loop {
            let response = read_answer(&mut stream).await?;
            match response {
                Response::End => return Ok(()),
                Response::Error(e) => return Err(AgentError::Refused(e.message)),
                other => {
                    if !on_response(other) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// A connection kept open for several requests, one after another (the agent serves
    /// requests on a connection until it has been idle for its read timeout).
    pub async fn session(
        &self,
        host: &str,
        port: u16,
        via: &Via,
    ) -> Result<AgentSession, AgentError> {
        Ok(AgentSession {
            stream: self.connect(host, port, via).await?,
            timeout: self.timeout,
        })
    }

    /// The TLS session with the agent at `host:port`, whose certificate must name `host`.
    async fn connect(&self, host: &str, port: u16, via: &Via) -> Result<AgentStream, AgentError> {
        let name = tls::server_name(host)?;
        let started = tokio::time::Instant::now();
        let stream: Box<dyn Duplex> = match via {
            Via::Direct => {
                let tcp = tokio::time::timeout(
                    self.timeout,
                    tokio::net::TcpStream::connect((host, port)),
                )
                .await
                .map_err(|_| TlsError::Timeout {
                    phase: tls::Phase::Connect,
                    after: self.timeout,
                })?
                .map_err(TlsError::Connect)?;
                let _ = tcp.set_nodelay(true);
                Box::new(tcp)
            }
            Via::Ssh { tunnel, to } => {
                let channel = tokio::time::timeout(self.timeout, tunnel.open(to, port))
                    .await
                    .map_err(|_| TlsError::Timeout {
                        phase: tls::Phase::Connect,
                        after: self.timeout,
                    })??;
                Box::new(channel)
            }
        };
        let left = self.timeout.saturating_sub(started.elapsed());
        Ok(tls::handshake_over(&self.connector, stream, name, left, self.timeout).await?)
    }
}

/// One kept connection to an agent ([`AgentClient::session`]).
pub struct AgentSession {
    stream: AgentStream,
    timeout: Duration,
}

impl AgentSession {
    /// Send `request` and read its answer within the client's timeout; an `Error` answer
    /// becomes [`AgentError::Refused`]. After an error the session should be dropped.
    pub async fn ask(&mut self, request: &Request) -> Result<Response, AgentError> {
        protocol::write_frame(&mut self.stream, request).await?;
        let response = tokio::time::timeout(self.timeout, read_answer(&mut self.stream))
            .await
            .map_err(|_| AgentError::Timeout(self.timeout))??;
        match response {
            Response::Error(e) => Err(AgentError::Refused(e.message)),
            other => Ok(other),
        }
    }
}

/// The next answer; the agent closing the connection instead is an error.
async fn read_answer(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<Response, AgentError> {
    protocol::read_frame(stream)
        .await?
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into())
}
