//! Test PKI and a mutual-TLS client for the agent's endpoint: a fleet CA made with rcgen at
//! test time, certificates good and bad signed by it (expired ones, and any number of other CAs
//! with [`Ca::new`]), a CRL, and a client that sends protocol frames the way the controller
//! does.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::protocol::{self, Request, Response};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The names in every test agent's certificate.
pub const AGENT_SANS: [&str; 2] = ["127.0.0.1", "agent.test"];

/// A CA: its certificate and what signs with it.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn sign(
        &self,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
        serial: u64,
        validity: Option<(OffsetDateTime, OffsetDateTime)>,
    ) -> Leaf {
        // A client is the controller unless said otherwise: everything it offers remotely.
        self.sign_as(
            sans,
            usage,
            serial,
            validity,
            pmfleet_shared::tls::Role::Admin,
        )
    }

    fn sign_as(
        &self,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
        serial: u64,
        validity: Option<(OffsetDateTime, OffsetDateTime)>,
        role: pmfleet_shared::tls::Role,
    ) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        if usage == ExtendedKeyUsagePurpose::ClientAuth {
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, role.subject_unit());
        }
        params.extended_key_usages = vec![usage];
        params.serial_number = Some(SerialNumber::from(serial));
        let now = OffsetDateTime::now_utc();
        let (from, until) = validity.unwrap_or((
            now - time::Duration::days(1),
            now + time::Duration::days(30),
        ));
        params.not_before = from;
        params.not_after = until;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// The agent's server certificate, for [`AGENT_SANS`].
    pub fn agent(&self) -> Leaf {
        self.sign(&AGENT_SANS, ExtendedKeyUsagePurpose::ServerAuth, 1, None)
    }

    /// A client certificate with the `admin` role (the controller's) and this serial.
    pub fn client(&self, serial: u64) -> Leaf {
        self.sign(&[], ExtendedKeyUsagePurpose::ClientAuth, serial, None)
    }

    /// A client certificate with `role` and this serial.
    pub fn client_as(&self, serial: u64, role: pmfleet_shared::tls::Role) -> Leaf {
        self.sign_as(&[], ExtendedKeyUsagePurpose::ClientAuth, serial, None, role)
    }

    /// A client certificate that expired yesterday.
    pub fn expired_client(&self, serial: u64) -> Leaf {
        let now = OffsetDateTime::now_utc();
        let validity = (
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        );
        self.sign(
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            serial,
            Some(validity),
        )
    }

    /// Sign a certificate signing request (what `pmfleet-agent tls request` printed) for the
    /// names it asks for, as the controller's setup does.
    pub fn sign_csr(&self, csr_pem: &str) -> String {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem).unwrap();
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        csr.params.serial_number = Some(SerialNumber::from(2u64));
        let now = OffsetDateTime::now_utc();
        csr.params.not_before = now - time::Duration::days(1);
        csr.params.not_after = now + time::Duration::days(30);
        csr.signed_by(&self.issuer).unwrap().pem()
    }

    /// A CRL revoking these serials.
    pub fn crl(&self, serials: &[u64]) -> String {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(1),
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now - time::Duration::minutes(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().pem().unwrap()
    }

    /// Write an agent identity into `<home>/tls`, listening on `listen`.
    pub fn install(&self, home: &Path, listen: &str) {
        let dir = home.join("tls");
        std::fs::create_dir_all(&dir).unwrap();
        let agent = self.agent();
        std::fs::write(dir.join("agent.pem"), &agent.cert).unwrap();
        std::fs::write(dir.join("agent.key"), &agent.key).unwrap();
        std::fs::write(dir.join("ca.pem"), &self.pem).unwrap();
        std::fs::write(dir.join("listen"), format!("{listen}\n")).unwrap();
    }
}

fn roots(ca_pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

/// A client presenting `leaf` (or no certificate at all), trusting `ca_pem` for the agent.
pub fn client_config(ca_pem: &str, leaf: Option<&Leaf>) -> Arc<ClientConfig> {
    match leaf {
        Some(l) => pmfleet_shared::tls::client_config(ca_pem, &l.cert, &l.key).unwrap(),
        None => {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut c = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots(ca_pem))
                .with_no_client_auth();
            c.alpn_protocols = vec![pmfleet_shared::tls::ALPN.to_vec()];
            Arc::new(c)
        }
    }
}

/// What setup and a deploy leave on a host so that the agent of `home` runs `release_dir`
/// (`<root>/releases/<id>`) when asked over mutual TLS: `<root>` registered in `<home>/roots`
/// and the release's marker holding `env_name` and `env`. Returns the request that names it.
pub fn prepare_release(
    home: &Path,
    release_dir: &Path,
    env_name: &str,
    env: &std::collections::BTreeMap<String, String>,
    timeout_ms: u64,
) -> protocol::ApplyRelease {
    let id = release_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let root = release_dir.parent().unwrap().parent().unwrap();
    let root = std::fs::canonicalize(root).unwrap();
    let roots = home.join("roots");
    let known = std::fs::read_to_string(&roots).unwrap_or_default();
    if !known.lines().any(|l| Path::new(l) == root) {
        std::fs::write(&roots, format!("{known}{}\n", root.display())).unwrap();
    }
    let prepared = root.join(".pmfleet/prepared");
    std::fs::create_dir_all(&prepared).unwrap();
    let marker = protocol::PreparedRelease {
        env_name: env_name.to_string(),
        env: env.clone(),
    };
    std::fs::write(prepared.join(&id), serde_json::to_string(&marker).unwrap()).unwrap();
    protocol::ApplyRelease {
        root,
        release: id,
        timeout_ms,
    }
}

/// A runtime for the blocking tests to drive async clients with.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One connection to the agent's endpoint.
pub struct Conn {
    pub stream: tokio_rustls::client::TlsStream<TcpStream>,
}

/// Connect and finish the client's side of the handshake, checking the agent's certificate
/// against `127.0.0.1`.
pub async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<Conn, String> {
    connect_as(addr, config, "127.0.0.1").await
}

/// Connect, checking the agent's certificate against `name`.
pub async fn connect_as(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> Result<Conn, String> {
    let connector = TlsConnector::from(config);
    let name = pmfleet_shared::tls::server_name(name).map_err(|e| e.to_string())?;
    let stream =
        pmfleet_shared::tls::connect_with_timeout(&connector, addr, name, Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
    Ok(Conn { stream })
}

impl Conn {
    pub async fn send(&mut self, req: &Request) -> Result<(), String> {
        let bytes = protocol::encode(req).map_err(|e| e.to_string())?;
        self.send_bytes(&bytes).await
    }

    /// Bytes as they are: a frame of the test's own making.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| e.to_string())?;
        self.stream.flush().await.map_err(|e| e.to_string())
    }

    /// The next frame; an error for a closed or refused connection.
    pub async fn recv(&mut self, wait: Duration) -> Result<Response, String> {
        let read = async {
            let mut prefix = [0u8; 4];
            self.stream
                .read_exact(&mut prefix)
                .await
                .map_err(|e| e.to_string())?;
            let len = protocol::frame_len(prefix).map_err(|e| e.to_string())?;
            let mut body = vec![0u8; len as usize];
            self.stream
                .read_exact(&mut body)
                .await
                .map_err(|e| e.to_string())?;
            protocol::decode(&body).map_err(|e| e.to_string())
        };
        tokio::time::timeout(wait, read)
            .await
            .map_err(|_| format!("no answer within {wait:?}"))?
    }

    pub async fn request(&mut self, req: &Request, wait: Duration) -> Result<Response, String> {
        self.send(req).await?;
        self.recv(wait).await
    }
}

/// One request on a new connection, as the controller sends it.
pub async fn request(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    req: &Request,
    wait: Duration,
) -> Result<Response, String> {
    connect(addr, config).await?.request(req, wait).await
}
