//! Mutual TLS with real handshakes: a small agent-like server built from
//! `pmfleet_shared::tls::server_config` answering protocol frames, a fleet CA made by
//! `pmfleet::pki` at test time, and clients that should and should not get in.
//!
//! Every refusal is followed by a request from a good client, to show the server kept serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pmfleet::pki::{self, Ca};
use pmfleet_shared::protocol::{self, Request, Response};
use pmfleet_shared::tls::{self, TlsError};
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls::{ClientConfig, RootCertStore};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Short, so the test of a client that never finishes its handshake stays quick.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(500);
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const AGENT_NAMES: [&str; 2] = ["127.0.0.1", "agent.test"];

/// A fleet CA in a temporary directory, and an agent certificate made the real way: key and
/// CSR "on the host", signed by the CA for the host's names.
struct Fleet {
    dir: TempDir,
    ca: Ca,
    agent_cert: String,
    agent_key: String,
}

impl Fleet {
    fn new() -> Fleet {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = Ca::init(dir.path()).expect("ca init");
        let sans: Vec<String> = AGENT_NAMES.iter().map(|s| s.to_string()).collect();
        let (csr, agent_key) = tls::make_csr(&sans).expect("csr");
        let agent_cert = pki::sign_agent_csr(&ca, &csr, &sans, 30).expect("sign csr");
        Fleet {
            dir,
            ca,
            agent_cert,
            agent_key,
        }
    }

    /// The controller's own identity, as `pmfleet status` would load it.
    fn controller(&self) -> Arc<ClientConfig> {
        pki::ClientIdentity::from_dir(self.dir.path())
            .expect("controller identity")
            .client_config()
            .expect("client config")
    }

    /// A client configuration for a certificate and key, trusting this fleet's CA.
    fn client(&self, cert: &str, key: &str) -> Arc<ClientConfig> {
        tls::client_config(self.ca.cert_pem(), cert, key).expect("client config")
    }

    fn crl(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(pki::CRL_FILE)).expect("crl.pem")
    }

    fn start(&self, crl: Option<&str>) -> Server {
        let config =
            tls::server_config_with_crl(self.ca.cert_pem(), &self.agent_cert, &self.agent_key, crl)
                .expect("server config");
        Server::start(TlsAcceptor::from(config))
    }
}

/// How the server ended a connection.
#[derive(Debug)]
enum Outcome {
    /// The client hung up after `requests` answered requests.
    Served {
        requests: usize,
    },
    Refused(String),
}

struct Server {
    addr: SocketAddr,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    fn start(acceptor: TlsAcceptor) -> Server {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let listener = TcpListener::from_std(std_listener).expect("listener");
        let (tx, outcomes) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(serve_one(&acceptor, tcp).await);
                });
            }
        });
        Server {
            addr,
            outcomes,
            task,
        }
    }

    /// The outcome of the next connection to end.
    async fn outcome(&mut self) -> Outcome {
        tokio::time::timeout(Duration::from_secs(10), self.outcomes.recv())
            .await
            .expect("an outcome within 10s")
            .expect("server running")
    }

    /// The next refusal, skipping connections that were served.
    async fn refusal(&mut self) -> String {
        loop {
            if let Outcome::Refused(why) = self.outcome().await {
                return why;
            }
        }
    }
}

async fn serve_one(acceptor: &TlsAcceptor, tcp: TcpStream) -> Outcome {
    let mut stream = match tls::accept_with_timeout(acceptor, tcp, HANDSHAKE_TIMEOUT).await {
        Ok(s) => s,
        Err(e) => return Outcome::Refused(format!("{e}")),
    };
    let mut requests = 0;
    loop {
        let request: Request = match read_frame(&mut stream).await {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Served { requests },
            Err(e) => return Outcome::Refused(e),
        };
        let response = match request {
            Request::Ping => Response::Pong {
                version: "test".into(),
                pid: std::process::id(),
                since_ms: None,
            },
            _ => Response::Error(protocol::ApiError {
                kind: protocol::ErrorKind::Invalid,
                message: "only ping here".into(),
            }),
        };
        let bytes = protocol::encode(&response).expect("encode");
        if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
            return Outcome::Refused("write failed".into());
        }
        requests += 1;
    }
}

/// One frame; `None` on a clean end of stream before a frame starts.
async fn read_frame<T, S>(stream: &mut S) -> Result<Option<T>, String>
where
    T: serde::de::DeserializeOwned,
    S: AsyncRead + Unpin,
{
    let mut prefix = [0u8; 4];
    match tokio::time::timeout(READ_TIMEOUT, stream.read_exact(&mut prefix)).await {
        Err(_) => return Err("read timed out".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(_)) => {}
    }
    let len = protocol::frame_len(prefix).map_err(|e| e.to_string())?;
    let mut payload = vec![0u8; len as usize];
    tokio::time::timeout(READ_TIMEOUT, stream.read_exact(&mut payload))
        .await
        .map_err(|_| "read timed out".to_string())?
        .map_err(|e| e.to_string())?;
    protocol::decode(&payload)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Connects as `config` to `addr`, checking the agent's certificate against `name`.
async fn connect(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    name: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    let connector = TlsConnector::from(config);
    let name = tls::server_name(name)?;
    tls::connect_with_timeout(&connector, addr, name, Duration::from_secs(5)).await
}

/// A ping over a fresh connection. Under TLS 1.3 a refused client certificate only shows on
/// the first read, so this always sends a real request and reads the answer.
async fn ping(config: Arc<ClientConfig>, addr: SocketAddr) -> Result<Response, String> {
    let mut stream = connect(config, addr, "127.0.0.1")
        .await
        .map_err(|e| e.to_string())?;
    ping_on(&mut stream).await
}

async fn ping_on<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<Response, String> {
    let bytes = protocol::encode(&Request::Ping).expect("encode");
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("flush: {e}"))?;
    match read_frame(stream).await? {
        Some(response) => Ok(response),
        None => Err("closed without an answer".into()),
    }
}

async fn assert_still_serving(fleet: &Fleet, server: &mut Server) {
    let response = ping(fleet.controller(), server.addr)
        .await
        .expect("a good client still gets an answer");
    assert!(matches!(response, Response::Pong { .. }), "{response:?}");
}

fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in tls::certs_from_pem(ca_pem).expect("ca pem") {
        roots.add(cert).expect("root");
    }
    Arc::new(roots)
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client certificate signed by the fleet CA, expired since 2021.
fn expired_client_cert(fleet: &Fleet) -> (String, String) {
    let ca_key = std::fs::read_to_string(fleet.dir.path().join(pki::CA_KEY_FILE)).expect("key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        fleet.ca.cert_pem(),
        KeyPair::from_pem(&ca_key).expect("ca key"),
    )
    .expect("issuer");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "client:old-runner");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn fleet_clients_get_answers() {
    let fleet = Fleet::new();
    let mut server = fleet.start(Some(&fleet.crl()));

    // The controller's own certificate, by IP (the agent certificate has an IP SAN)...
    let response = ping(fleet.controller(), server.addr).await.expect("ping");
    assert!(matches!(response, Response::Pong { .. }), "{response:?}");
    assert!(matches!(
        server.outcome().await,
        Outcome::Served { requests: 1 }
    ));

    // ... and by host name, with several requests on one connection.
    let mut stream = connect(fleet.controller(), server.addr, "agent.test")
        .await
        .expect("connect by name");
    for _ in 0..3 {
        assert!(matches!(
            ping_on(&mut stream).await,
            Ok(Response::Pong { .. })
        ));
    }
    drop(stream);
    assert!(matches!(
        server.outcome().await,
        Outcome::Served { requests: 3 }
    ));

    // A CI runner's certificate from `ca issue`.
    let runner = fleet.ca.issue_client_cert("ci-runner", 1).expect("issue");
    let response = ping(fleet.client(&runner.cert_pem, &runner.key_pem), server.addr)
        .await
        .expect("ping as CI runner");
    assert!(matches!(response, Response::Pong { .. }), "{response:?}");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let fleet = Fleet::new();
    let mut server = fleet.start(None);
    let mut config = ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots(fleet.ca.cert_pem()))
        .with_no_client_auth();
    config.alpn_protocols = vec![tls::ALPN.to_vec()];
    let err = ping(Arc::new(config), server.addr).await.unwrap_err();
    assert!(!err.is_empty());
    let why = server.refusal().await;
    assert!(why.contains("handshake"), "{why}");
    assert_still_serving(&fleet, &mut server).await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let fleet = Fleet::new();
    let other = Fleet::new();
    let mut server = fleet.start(None);
    let intruder = other.ca.issue_client_cert("intruder", 1).expect("issue");
    // The intruder trusts our agent (it has our ca.pem) but its certificate is from its own CA.
    let err = ping(
        fleet.client(&intruder.cert_pem, &intruder.key_pem),
        server.addr,
    )
    .await
    .unwrap_err();
    assert!(!err.is_empty());
    let why = server.refusal().await;
    assert!(why.contains("UnknownIssuer"), "{why}");
    assert_still_serving(&fleet, &mut server).await;
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let fleet = Fleet::new();
    let mut server = fleet.start(None);
    let (cert, key) = expired_client_cert(&fleet);
    ping(fleet.client(&cert, &key), server.addr)
        .await
        .unwrap_err();
    let why = server.refusal().await;
    assert!(why.contains("expired"), "{why}");
    assert_still_serving(&fleet, &mut server).await;
}

#[tokio::test]
async fn a_revoked_client_certificate_is_refused() {
    let fleet = Fleet::new();
    let stolen = fleet.ca.issue_client_cert("laptop", 1).expect("issue");
    let kept = fleet.ca.issue_client_cert("ci-runner", 1).expect("issue");
    let revoked = fleet.ca.revoke("laptop").expect("revoke");
    assert_eq!(revoked.len(), 1);
    // The agent loads the CRL that `revoke` wrote.
    let mut server = fleet.start(Some(&fleet.crl()));

    ping(fleet.client(&stolen.cert_pem, &stolen.key_pem), server.addr)
        .await
        .unwrap_err();
    let why = server.refusal().await;
    assert!(why.contains("Revoked"), "{why}");

    let response = ping(fleet.client(&kept.cert_pem, &kept.key_pem), server.addr)
        .await
        .expect("an unrevoked certificate still works");
    assert!(matches!(response, Response::Pong { .. }));
    assert_still_serving(&fleet, &mut server).await;
}

#[tokio::test]
async fn plaintext_is_refused() {
    let fleet = Fleet::new();
    let mut server = fleet.start(None);
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let mut request = protocol::encode(&Request::Ping).expect("encode");
    request.extend_from_slice(b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n");
    tcp.write_all(&request).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(READ_TIMEOUT, tcp.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .ok();
    // At most a TLS alert comes back, never a frame.
    assert!(protocol::decode::<Response>(&answer).is_err());
    let why = server.refusal().await;
    assert!(why.contains("handshake"), "{why}");
    assert_still_serving(&fleet, &mut server).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_dropped_and_blocks_no_one() {
    let fleet = Fleet::new();
    let mut server = fleet.start(None);
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");

    // While the silent connection hangs, others are served.
    for _ in 0..3 {
        assert_still_serving(&fleet, &mut server).await;
    }
    assert!(started.elapsed() < HANDSHAKE_TIMEOUT, "good clients waited");

    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(READ_TIMEOUT, silent.read(&mut buf))
        .await
        .expect("the server hangs up on the silent client")
        .unwrap_or(0);
    assert_eq!(n, 0, "no data, just the close");
    assert!(started.elapsed() >= HANDSHAKE_TIMEOUT);
    let why = server.refusal().await;
    assert!(why.contains("timed out"), "{why}");
    assert_still_serving(&fleet, &mut server).await;
}

#[tokio::test]
async fn a_frame_over_the_size_cap_closes_the_connection() {
    let fleet = Fleet::new();
    let mut server = fleet.start(None);
    let mut stream = connect(fleet.controller(), server.addr, "127.0.0.1")
        .await
        .expect("connect");
    let len = protocol::MAX_FRAME_LEN + 1;
    stream
        .write_all(&len.to_be_bytes())
        .await
        .expect("write prefix");
    stream.write_all(&[b'{'; 1024]).await.expect("write some");
    stream.flush().await.expect("flush");
    let closed = read_frame::<Response, _>(&mut stream).await;
    assert!(matches!(closed, Ok(None) | Err(_)), "{closed:?}");
    let why = server.refusal().await;
    assert!(why.contains("larger than"), "{why}");
    assert_still_serving(&fleet, &mut server).await;
}

#[tokio::test]
async fn a_client_without_the_pmfleet_alpn_or_tls13_is_refused() {
    let fleet = Fleet::new();
    let mut server = fleet.start(None);
    let identity = pki::ClientIdentity::from_dir(fleet.dir.path()).expect("identity");
    let cert = tls::certs_from_pem(&identity.cert_pem).expect("cert");
    let key = || tls::key_from_pem(&identity.key_pem).expect("key");

    let no_alpn = ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots(fleet.ca.cert_pem()))
        .with_client_auth_cert(cert.clone(), key())
        .expect("client auth");
    ping(Arc::new(no_alpn), server.addr).await.unwrap_err();
    let why = server.refusal().await;
    assert!(why.contains("ALPN"), "{why}");

    let mut tls12 = ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("tls12")
        .with_root_certificates(roots(fleet.ca.cert_pem()))
        .with_client_auth_cert(cert, key())
        .expect("client auth");
    tls12.alpn_protocols = vec![tls::ALPN.to_vec()];
    let err = ping(Arc::new(tls12), server.addr).await.unwrap_err();
    assert!(err.contains("handshake"), "{err}");
    server.refusal().await;
    assert_still_serving(&fleet, &mut server).await;
}

#[tokio::test]
async fn the_client_refuses_an_agent_certificate_for_another_host() {
    let fleet = Fleet::new();
    // An agent certificate for web2, served where the controller expects web1 / 127.0.0.1.
    let (cert, key) =
        pki::issue_agent_cert(&fleet.ca, &["web2.example".to_string()], 1).expect("agent cert");
    let config = tls::server_config(fleet.ca.cert_pem(), &cert, &key).expect("server config");
    let server = Server::start(TlsAcceptor::from(config));

    for name in ["127.0.0.1", "web1.example"] {
        let err = connect(fleet.controller(), server.addr, name)
            .await
            .unwrap_err();
        assert!(matches!(err, TlsError::Handshake(_)), "{err}");
        assert!(err.to_string().contains("not valid for name"), "{err}");
    }
    // The right name works, so it is the name that was refused.
    connect(fleet.controller(), server.addr, "web2.example")
        .await
        .expect("connect as web2");
}

#[tokio::test]
async fn the_client_refuses_an_agent_certificate_from_another_ca() {
    let fleet = Fleet::new();
    let other = Fleet::new();
    // An impostor with a certificate for the right address, signed by another CA.
    let config = tls::server_config(other.ca.cert_pem(), &other.agent_cert, &other.agent_key)
        .expect("server config");
    let server = Server::start(TlsAcceptor::from(config));
    let err = connect(fleet.controller(), server.addr, "127.0.0.1")
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::Handshake(_)), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn a_handshake_with_a_dead_peer_times_out() {
    let fleet = Fleet::new();
    // A listener that accepts TCP and never speaks TLS.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            open.push(tcp);
        }
    });
    let connector = TlsConnector::from(fleet.controller());
    let started = Instant::now();
    let err = tls::connect_with_timeout(
        &connector,
        addr,
        tls::server_name("127.0.0.1").expect("name"),
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Timeout {
                phase: tls::Phase::Handshake,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}
