//! The agent's mutual-TLS identity: the files in `<home>/tls` and what the daemon,
//! `pmfleet-agent tls request` and `pmfleet-agent tls status` make of them.
//!
//! | file | written by | what |
//! |---|---|---|
//! | `agent.key` | `tls request`, on the host (0600) | the agent's private key; it never leaves the host |
//! | `agent.pem` | the controller's setup | the certificate the fleet CA signed for that key (leaf first, then any intermediates) |
//! | `ca.pem` | the controller's setup | the fleet CA: a client must present a certificate chaining to it |
//! | `crl.pem` | the controller's setup (optional) | revoked client certificates |
//! | `listen` | the controller's setup (optional) | one line `ADDRESS:PORT`; default `0.0.0.0:7677` |
//!
//! TLS counts as configured once `agent.pem` or `ca.pem` exists; from then on every piece
//! must be there and valid, or the daemon logs why and serves its local socket only.
//!
//! `tls request` makes a **new key every time** (it writes `agent.key`, replacing any
//! previous one) and prints a CSR for it: the certificate the controller signs for that CSR is
//! the one to install as `agent.pem`. A running daemon keeps serving with the key and
//! certificate it loaded until `pmfleet-agent tls reload` (or a restart) reads the new pair.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pmfleet_shared::tls::{self, TlsError};
use rustls::ServerConfig;
use serde::Serialize;

use crate::home::AgentHome;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("mutual TLS is not fully configured in {dir}: {missing} missing")]
    Incomplete { dir: PathBuf, missing: String },
    #[error("{path}: {source}")]
    Tls { path: PathBuf, source: TlsError },
    #[error(
        "{cert} is not the certificate of the key in {key}: install the certificate signed for the last `pmfleet-agent tls request`"
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{path}: expected one line `ADDRESS:PORT` (e.g. 0.0.0.0:7677), found {found:?}")]
    Listen { path: String, found: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot read the certificate: {reason}")]
    Cert { path: PathBuf, reason: String },
}

/// What the daemon's mutual-TLS endpoint serves with.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    pub config: Arc<ServerConfig>,
    /// `ADDRESS:PORT` to listen on.
    pub listen: String,
    pub cert: CertInfo,
    /// Whether a CRL is in force.
    pub crl: bool,
}

/// What `tls status` shows of the agent's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Subject alternative names: DNS names and IP addresses, as written in the certificate.
    pub sans: Vec<String>,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    /// `not_after` as seconds since the epoch, for comparisons.
    pub not_after_unix: i64,
    /// SHA-256 of the certificate, `AB:CD:…`.
    pub fingerprint: String,
    /// The serial number, lower-case hex (as `pmfleet ca list` shows it).
    pub serial: String,
}

impl CertInfo {
    /// One line for logs and `tls reload`.
    pub fn summary(&self) -> String {
        format!(
            "certificate for {}, valid until {}",
            self.sans.join(", "),
            self.not_after
        )
    }
}

/// `tls status`: the whole picture, for a person or (with `--json`) for setup's check of
/// whether a certificate must be issued again.
#[derive(Debug, Clone, Serialize)]
pub struct TlsStatus {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// `agent.pem` or `ca.pem` is installed.
    pub configured: bool,
    /// Every file is there and they make a working server configuration.
    pub ok: bool,
    /// Why not, when `configured` but not `ok`.
    pub error: Option<String>,
    /// `agent.key` exists.
    pub key: bool,
    /// `crl.pem` exists.
    pub crl: bool,
    /// Where the daemon listens (or would).
    pub listen: Option<String>,
    pub sans: Vec<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub not_after_unix: Option<i64>,
    /// Whole days until `not_after` (negative once expired).
    pub expires_in_days: Option<i64>,
    pub fingerprint: Option<String>,
    /// The certificate's serial number, lower-case hex: setup checks it against the CA's
    /// revocations.
    pub serial: Option<String>,
}

/// Whether TLS is meant to be on: the certificate or the CA has been installed.
pub fn configured(home: &AgentHome) -> bool {
    home.tls_cert().exists() || home.tls_ca().exists()
}

/// The server configuration from the files, `Ok(None)` when TLS is not configured at all.
/// `listen` (from `daemon --tls-listen`) overrides the `listen` file.
pub fn load_server(
    home: &AgentHome,
    listen: Option<&str>,
) -> Result<Option<ServerIdentity>, IdentityError> {
    if !configured(home) {
        return Ok(None);
    }
    let missing: Vec<String> = [home.tls_cert(), home.tls_key(), home.tls_ca()]
        .iter()
        .filter(|p| !p.exists())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    if !missing.is_empty() {
        return Err(IdentityError::Incomplete {
            dir: home.tls_dir(),
            missing: missing.join(", "),
        });
    }
    let listen = listen_address(home, listen)?;
    protect_key(&home.tls_key())?;
    let read = |path: PathBuf| {
        tls::read_pem_file(&path).map_err(|source| IdentityError::Tls { path, source })
    };
    let cert_pem = read(home.tls_cert())?;
    let key_pem = read(home.tls_key())?;
    let ca_pem = read(home.tls_ca())?;
    let crl_pem = if home.tls_crl().exists() {
        Some(read(home.tls_crl())?)
    } else {
        None
    };
    let cert = cert_info(&cert_pem, &home.tls_cert())?;
    let config = tls::server_config_with_crl(&ca_pem, &cert_pem, &key_pem, crl_pem.as_deref())
        .map_err(|source| match source {
            TlsError::Config(rustls::Error::InconsistentKeys(_)) => IdentityError::KeyMismatch {
                cert: home.tls_cert(),
                key: home.tls_key(),
            },
            TlsError::TrustAnchor(_) | TlsError::Verifier(_) => IdentityError::Tls {
                path: home.tls_ca(),
                source,
            },
            TlsError::NoPrivateKey => IdentityError::Tls {
                path: home.tls_key(),
                source,
            },
            TlsError::Pem {
                what: "the CRL", ..
            } => IdentityError::Tls {
                path: home.tls_crl(),
                source,
            },
            source => IdentityError::Tls {
                path: home.tls_dir(),
                source,
            },
        })?;
    Ok(Some(ServerIdentity {
        config,
        listen,
        cert,
        crl: crl_pem.is_some(),
    }))
}

/// `--tls-listen`, else the `listen` file, else all IPv4 interfaces on the default port.
pub fn listen_address(home: &AgentHome, over: Option<&str>) -> Result<String, IdentityError> {
    let (text, path) = match over {
        Some(a) => (a.to_string(), "--tls-listen".to_string()),
        None => {
            let path = home.tls_listen();
            match std::fs::read_to_string(&path) {
                Ok(t) => (t, path.display().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(format!("0.0.0.0:{}", tls::DEFAULT_AGENT_PORT));
                }
                Err(source) => return Err(IdentityError::Read { path, source }),
            }
        }
    };
    parse_listen(&text).ok_or(IdentityError::Listen {
        path,
        found: text.trim().to_string(),
    })
}

/// `ADDRESS:PORT` (`[v6]:PORT` for IPv6), one line; `None` for anything else.
fn parse_listen(text: &str) -> Option<String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    let (host, port) = line.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && !host.contains(':')
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
        }
    };
    host_ok.then(|| line.to_string())
}

/// A key readable by anyone else is tightened to 0600 (an upload may have used the umask).
fn protect_key(path: &Path) -> Result<(), IdentityError> {
    let meta = std::fs::metadata(path).map_err(|source| IdentityError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!("{} had mode {mode:o}; setting it to 600", path.display());
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| IdentityError::Write {
                path: path.to_path_buf(),
                source,
            },
        )?;
    }
    Ok(())
}

/// The names and validity of the first certificate in `pem`.
pub fn cert_info(pem: &str, path: &Path) -> Result<CertInfo, IdentityError> {
    let bad = |reason: String| IdentityError::Cert {
        path: path.to_path_buf(),
        reason,
    };
    let certs = tls::certs_from_pem(pem).map_err(|e| bad(e.to_string()))?;
    let der = certs.first().ok_or_else(|| bad("no certificate".into()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| bad(format!("not X.509: {e}")))?;
    let mut sans = Vec::new();
    if let Some(ext) = cert
        .subject_alternative_name()
        .map_err(|e| bad(format!("bad subject alternative names: {e}")))?
    {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push((*d).to_string()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let validity = cert.validity();
    let rfc3339 = |t: &x509_parser::time::ASN1Time| {
        t.to_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    Ok(CertInfo {
        sans,
        not_before: rfc3339(&validity.not_before),
        not_after: rfc3339(&validity.not_after),
        not_after_unix: validity.not_after.timestamp(),
        fingerprint: tls::fingerprint_sha256(pem).map_err(|e| bad(e.to_string()))?,
        serial: cert
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

/// `tls status`.
pub fn status(home: &AgentHome) -> TlsStatus {
    let mut st = TlsStatus {
        dir: home.tls_dir(),
        configured: configured(home),
        ok: false,
        error: None,
        key: home.tls_key().exists(),
        crl: home.tls_crl().exists(),
        listen: listen_address(home, None).ok(),
        sans: Vec::new(),
        not_before: None,
        not_after: None,
        not_after_unix: None,
        expires_in_days: None,
        fingerprint: None,
        serial: None,
    };
    if let Ok(pem) = std::fs::read_to_string(home.tls_cert()) {
        match cert_info(&pem, &home.tls_cert()) {
            Ok(c) => {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                st.expires_in_days = Some(tls::days_left(c.not_after_unix, now));
                st.sans = c.sans;
                st.not_before = Some(c.not_before);
                st.not_after = Some(c.not_after);
                st.not_after_unix = Some(c.not_after_unix);
                st.fingerprint = Some(c.fingerprint);
                st.serial = Some(c.serial);
            }
            Err(e) => st.error = Some(e.to_string()),
        }
    }
    if st.configured && st.error.is_none() {
        match load_server(home, None) {
            Ok(_) => st.ok = true,
            Err(e) => st.error = Some(e.to_string()),
        }
    }
    st
}

/// `tls request`: a new key in `agent.key` (0600) and the CSR for it, naming `sans`.
pub fn request(home: &AgentHome, sans: &[String]) -> Result<String, IdentityError> {
    let (csr, key) = tls::make_csr(sans).map_err(|source| IdentityError::Tls {
        path: home.tls_key(),
        source,
    })?;
    let dir = home.tls_dir();
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IdentityError::Write { path, source }
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(write_err(&dir))?;
    }
    write_private(&home.tls_key(), key.as_bytes()).map_err(write_err(&home.tls_key()))?;
    Ok(csr)
}

/// Write `bytes` to `path` as a file only its owner can read, atomically: a 0600 temporary
/// file in the same directory, fsync, rename.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_lines_are_address_and_port() {
        let table = [
            ("0.0.0.0:7677\n", Some("0.0.0.0:7677")),
            ("  10.0.0.7:9000  ", Some("10.0.0.7:9000")),
            ("[::]:7677", Some("[::]:7677")),
            ("web1.example.com:7677", Some("web1.example.com:7677")),
            ("7677", None),
            ("0.0.0.0:http", None),
            ("0.0.0.0:70000", None),
            ("::1:7677", None),
            ("a:1\nb:2", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_listen(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn request_writes_a_private_key_and_status_reads_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let home = AgentHome::new(dir.path().join("home"));
        let st = status(&home);
        assert!(!st.configured && !st.key && !st.ok);
        assert_eq!(st.listen.as_deref(), Some("0.0.0.0:7677"));

        let csr = request(&home, &["web1.test".into(), "10.0.0.7".into()]).unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let mode = std::fs::metadata(home.tls_key())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(status(&home).key);
        assert!(
            load_server(&home, None).unwrap().is_none(),
            "a key alone is not TLS"
        );

        // A certificate without its CA: configured, but not usable, and it says why.
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["web1.test".into(), "10.0.0.7".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(home.tls_cert(), cert.pem()).unwrap();
        let st = status(&home);
        assert!(st.configured && !st.ok);
        assert!(st.error.unwrap().contains("ca.pem missing"));
        assert_eq!(st.sans, ["web1.test", "10.0.0.7"]);
        assert!(st.expires_in_days.is_some());
    }
}
