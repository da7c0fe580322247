//! `pmfleet dashboard --tls`: HTTPS for the dashboard, with fleet client certificates asked
//! for but optional. The I/O edge of [`super::access`]'s certificate rules:
//!
//! - [`Trust`]: the server configuration (TLS 1.3, the dashboard's certificate from the fleet
//!   CA, a client certificate verified against the fleet CA and its CRL when one is sent), made
//!   again whenever `crl.pem` changes, so a certificate `pmfleet ca revoke` lists is refused
//!   from the next connection on, and — checked again on every request
//!   ([`Trust::still_trusted`]) — on a connection opened before it too. No session resumption:
//!   every connection shows its certificate.
//! - [`TlsListener`]: an [`axum::serve::Listener`] that accepts TCP connections in a task of
//!   its own and runs each handshake in its own task, within [`HANDSHAKE_TIMEOUT`] and at most
//!   [`MAX_HANDSHAKES`] at once, so a client that connects and goes quiet holds neither the
//!   accept loop nor a slot for long. A handshake that fails (a certificate from another CA,
//!   a revoked one) ends there: the request never reaches the router.
//! - [`PlainListener`]: the same interface over plain TCP (no `--tls`).
//! - [`prepare`]: the fleet CA of this machine, the dashboard's certificate for
//!   [`server_names`] (kept in the CA directory, see [`crate::pki::DashboardCert`]).
//!
//! Each accepted connection is known to the router by its [`Peer`]: the address, and the
//! verified certificate chain the client sent, if any.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::serve::Listener;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, ServerConfig, WebPkiClientVerifier};
use rustls::version::TLS13;
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use pmfleet_shared::tls::{self as fleet_tls, TlsError};

use crate::pki::{self, CA_CERT_FILE, CRL_FILE, Ca};

/// How long a client has to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; further connections wait to be accepted.
pub const MAX_HANDSHAKES: usize = 64;

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The client certificate chain (leaf first) the handshake verified; `None` when the
    /// client sent none, or over plain HTTP.
    pub chain: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// The names the dashboard's certificate is for: the address it listens on (with
/// `localhost` for a loopback one; every loopback name and this machine's `hostname` for
/// `0.0.0.0` or `::`), then `extra` (`--tls-name`), each once.
pub fn server_names(listen: IpAddr, extra: &[String], hostname: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if listen.is_unspecified() {
        names.extend(["localhost".to_string(), Ipv4Addr::LOCALHOST.to_string()]);
        names.push(Ipv6Addr::LOCALHOST.to_string());
        names.extend(
            hostname
                .filter(|h| fleet_tls::server_name(h).is_ok())
                .map(str::to_string),
        );
    } else {
        names.push(listen.to_string());
        if listen.is_loopback() {
            names.push("localhost".to_string());
        }
    }
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// What `--tls` serves with, and what to tell the user about it.
pub struct Prepared {
    pub trust: Arc<Trust>,
    pub cert: pki::DashboardCert,
    /// The fleet CA certificate: what the browser must trust.
    pub ca_file: PathBuf,
    pub names: Vec<String>,
}

/// The fleet CA of this machine (`$PMFLEET_CA_DIR`, else `~/.config/pmfleet/ca`) and the
/// dashboard's certificate for the names of `listen` and `extra`, kept or issued.
pub fn prepare(listen: SocketAddr, extra: &[String]) -> Result<Prepared, String> {
    let dir = pki::default_dir().map_err(|e| e.to_string())?;
    let ca = Ca::load(&dir).map_err(|e| {
        format!("--tls takes the dashboard's certificate from the fleet CA on this machine: {e}")
    })?;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let names = server_names(listen.ip(), extra, hostname.as_deref().map(str::trim));
    let cert = ca
        .dashboard_cert(&names)
        .map_err(|e| format!("the dashboard's certificate: {e}"))?;
    let trust = Trust::new(
        ca.cert_pem().to_string(),
        cert.cert_pem.clone(),
        cert.key_pem.clone(),
        dir.join(CRL_FILE),
    )
    .map_err(|e| format!("the dashboard's TLS set-up: {e}"))?;
    Ok(Prepared {
        trust: Arc::new(trust),
        cert,
        ca_file: dir.join(CA_CERT_FILE),
        names,
    })
}

/// What the TLS side trusts and serves, made again when the CRL file changes.
pub struct Trust {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    crl_path: PathBuf,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    /// The CRL file's modification time and length when it was read (`None`: no file).
    stamp: Option<(SystemTime, u64)>,
    config: Arc<ServerConfig>,
    verifier: Arc<dyn ClientCertVerifier>,
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Trust {
    /// Trust client certificates of `ca_pem` that `crl_path` (read now and whenever it
    /// changes) does not list; serve `cert_pem` with `key_pem`.
    pub fn new(
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
        crl_path: PathBuf,
    ) -> Result<Trust, TlsError> {
        let stamp = stamp(&crl_path);
        let crl = read_crl(&crl_path)?;
        let (config, verifier) = configure(&ca_pem, &cert_pem, &key_pem, crl.as_deref())?;
        Ok(Trust {
            ca_pem,
            cert_pem,
            key_pem,
            crl_path,
            loaded: Mutex::new(Loaded {
                stamp,
                config,
                verifier,
            }),
        })
    }

    /// The configuration and verifier for the CRL as it is now. A CRL that cannot be read
    /// keeps the last one (and says so): `pmfleet ca revoke` replaces the file at once, so a
    /// half-written one is not expected.
    fn current(&self) -> (Arc<ServerConfig>, Arc<dyn ClientCertVerifier>) {
        // A panic elsewhere cannot leave it half-done: it is only ever replaced whole.
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let now = stamp(&self.crl_path);
        if now != loaded.stamp {
            let made = read_crl(&self.crl_path).and_then(|crl| {
                configure(&self.ca_pem, &self.cert_pem, &self.key_pem, crl.as_deref())
            });
            match made {
                Ok((config, verifier)) => {
                    *loaded = Loaded {
                        stamp: now,
                        config,
                        verifier,
                    };
                }
                Err(e) => eprintln!(
                    "warning: {} cannot be used, keeping the revocation list read before: {e}",
                    self.crl_path.display()
                ),
            }
        }
        (loaded.config.clone(), loaded.verifier.clone())
    }

    /// Whether `chain` (verified when its connection was made) is still good under the CRL
    /// as it is now; why not, if it is not.
    pub fn still_trusted(&self, chain: &[CertificateDer<'static>]) -> Result<(), String> {
        let (_, verifier) = self.current();
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| "no certificate".to_string())?;
        verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn read_crl(path: &std::path::Path) -> Result<Option<String>, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// TLS 1.3, `http/1.1`, client certificates of `ca_pem` asked for but optional and checked
/// against `crl_pem`, no resumption.
fn configure(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    crl_pem: Option<&str>,
) -> Result<(Arc<ServerConfig>, Arc<dyn ClientCertVerifier>), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in fleet_tls::certs_from_pem(ca_pem)? {
        roots.add(cert).map_err(TlsError::TrustAnchor)?;
    }
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated();
    let crls = match crl_pem {
        Some(pem) => fleet_tls::crls_from_pem(pem)?,
        None => Vec::new(),
    };
    if !crls.is_empty() {
        builder = builder.with_crls(crls);
    }
    let verifier = builder.build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS13])?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(
            fleet_tls::certs_from_pem(cert_pem)?,
            fleet_tls::key_from_pem(key_pem)?,
        )?;
    config.alpn_protocols = vec![fleet_tls::HTTP_ALPN.to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok((Arc::new(config), verifier))
}

/// HTTPS connections, handshaken off the accept loop (see the module documentation).
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, Peer)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` with what `trust` says at each connection.
    pub fn new(tcp: TcpListener, trust: Arc<Trust>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(MAX_HANDSHAKES);
        tokio::spawn(accept_loop(tcp, trust, tx));
        Ok(TlsListener { ready, local })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    trust: Arc<Trust>,
    ready: mpsc::Sender<(TlsStream<TcpStream>, Peer)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, addr) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                tracing::warn!("dashboard: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let (config, _) = trust.current();
        let ready = ready.clone();
        tokio::spawn(async move {
            let acceptor = TlsAcceptor::from(config);
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(slot);
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!("dashboard: handshake with {addr} refused: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("dashboard: handshake with {addr} timed out");
                    return;
                }
            };
            let chain = tls
                .get_ref()
                .1
                .peer_certificates()
                .filter(|c| !c.is_empty())
                .map(|c| Arc::new(c.iter().map(|c| c.clone().into_owned()).collect()));
            let _ = ready.send((tls, Peer { addr, chain })).await;
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(next) => next,
            // The accept task ended (its listener failed for good): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.local,
            chain: None,
        })
    }
}

/// Plain HTTP connections, known to the router the same way (with no certificate).
pub struct PlainListener(pub TcpListener);

impl Listener for PlainListener {
    type Io = TcpStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = Listener::accept(&mut self.0).await;
        (io, Peer { addr, chain: None })
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.0.local_addr()?,
            chain: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_names_where_the_dashboard_listens() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let extra = vec!["dash.example".to_string(), "localhost".to_string()];
        // (listen, --tls-name, hostname, names)
        type Row<'a> = (IpAddr, &'a [String], Option<&'a str>, &'a [&'a str]);
        let table: [Row; 6] = [
            (
                ip("127.0.0.1"),
                &[],
                Some("box"),
                &["127.0.0.1", "localhost"],
            ),
            (ip("::1"), &[], None, &["::1", "localhost"]),
            (ip("10.0.0.5"), &[], Some("box"), &["10.0.0.5"]),
            (
                ip("0.0.0.0"),
                &[],
                Some("box"),
                &["localhost", "127.0.0.1", "::1", "box"],
            ),
            (
                ip("::"),
                &[],
                Some("not a name"),
                &["localhost", "127.0.0.1", "::1"],
            ),
            (
                ip("127.0.0.1"),
                &extra,
                None,
                &["127.0.0.1", "localhost", "dash.example"],
            ),
        ];
        for (listen, extra, hostname, want) in table {
            assert_eq!(server_names(listen, extra, hostname), want, "{listen}");
        }
    }
}
