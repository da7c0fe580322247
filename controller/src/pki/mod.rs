//! The fleet CA: the certificate authority every pmfleet peer trusts, kept in one directory on
//! the controller machine.
//!
//! `pmfleet ca init` makes it (ECDSA P-256) together with this machine's client certificate
//! (role `admin`; run on an existing CA, it re-issues a controller certificate from before
//! roles with `admin`, see [`ControllerCert`]); agents get server certificates for their host's names by sending a CSR
//! (their key is made on the host and stays there, see [`pmfleet_shared::tls::make_csr`]); CI
//! runners get client certificates from `pmfleet ca issue`, with the role it is given
//! ([`Role`]: written in the certificate's subject, checked by the agent on every request).
//! Revoking rewrites `crl.pem`, which agents and the controller load.
//!
//! The CA directory (default `~/.config/pmfleet/ca`, or `$PMFLEET_CA_DIR`), mode 0700:
//!
//! | file | mode | what |
//! |---|---|---|
//! | `ca.pem` | 0644 | the CA certificate: every peer's trust anchor |
//! | `ca.key` | 0600 | the CA private key; read only by this module, never sent anywhere |
//! | `controller.pem`, `controller.key` | 0600 | this machine's client certificate |
//! | `crl.pem` | 0644 | the revoked certificates, signed by the CA |
//! | `issued.jsonl` | 0600 | one line per certificate issued ([`IssuedCert`]) |
//! | `clients/<name>/` | 0700 | what `pmfleet ca issue` wrote, unless `--out` said otherwise |
//! | `dashboard.pem`, `dashboard.key` | 0644, 0600 | the server certificate of `pmfleet dashboard --tls` ([`DashboardCert`]) |

mod controller_cert;
mod dashboard_cert;
mod files;
mod identity;
mod index;

pub use controller_cert::ControllerCert;
pub use dashboard_cert::{DASHBOARD_CERT_FILE, DASHBOARD_KEY_FILE, DashboardCert};
pub use identity::ClientIdentity;
pub use index::{CertKind, CertStatus, IssuedCert};

use std::fmt;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use pmfleet_shared::tls::{self, Role, TlsError};

pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
pub const CONTROLLER_CERT_FILE: &str = "controller.pem";
pub const CONTROLLER_KEY_FILE: &str = "controller.key";
pub const CRL_FILE: &str = "crl.pem";
pub const INDEX_FILE: &str = "issued.jsonl";
/// Where `pmfleet ca issue` puts a client's files by default: `<ca dir>/clients/<name>/`.
pub const CLIENTS_DIR: &str = "clients";

/// `pmfleet ca issue` without `--days`.
pub const DEFAULT_CLIENT_DAYS: u32 = 90;
/// `pmfleet ca issue` without `--role`: what a CI runner that deploys needs (apply a
/// release, reload, restart, and read).
pub const DEFAULT_CLIENT_ROLE: Role = Role::Deploy;
/// What an agent certificate is valid for unless the caller says otherwise.
pub const DEFAULT_AGENT_DAYS: u32 = 365;
/// `setup` renews an agent certificate that expires within this many days, and `status`
/// warns about one.
pub const AGENT_RENEW_WITHIN_DAYS: i64 = 30;
/// The longest validity any certificate may be issued with.
pub const MAX_DAYS: u32 = 3650;
/// The CA's own validity. The controller certificate, which sits beside the CA key and so
/// is never more exposed than it, lives as long (minus a day).
const CA_DAYS: u32 = 3650;
/// How far back `not_before` is set, for peers whose clocks run a little behind.
const CLOCK_SKEW: Duration = Duration::hours(1);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("no home directory to keep the fleet CA in: set PMFLEET_CA_DIR or pass --dir")]
    NoHome,
    #[error(
        "a fleet CA already exists in {}; it is not overwritten.\n  \
         To rotate it: move the directory aside, run `pmfleet ca init` again, re-issue every \
         agent and client certificate, and deliver the new ca.pem to the agents.",
        dir.display()
    )]
    AlreadyExists { dir: PathBuf },
    #[error("no fleet CA in {}: run `pmfleet ca init` (or point PMFLEET_CA_DIR at it)", dir.display())]
    NoCa { dir: PathBuf },
    #[error("{} is readable by other users (mode {mode:04o}): run `chmod 600 {}`", path.display(), path.display())]
    KeyExposed { path: PathBuf, mode: u32 },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists: not overwriting it (choose another --out)", path.display())]
    FileExists { path: PathBuf },
    #[error("{what}: {source}")]
    Tls {
        what: String,
        #[source]
        source: TlsError,
    },
    #[error("{} cannot be loaded: {source}", path.display())]
    Load { path: PathBuf, source: rcgen::Error },
    #[error("cannot make the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("the certificate request cannot be used: {0}")]
    Csr(rcgen::Error),
    #[error("the certificate request asks for a CA certificate")]
    CsrAsksForCa,
    #[error(
        "the certificate request asks for `{name}`, which is not one of the host's names ({allowed})"
    )]
    SanNotAllowed { name: String, allowed: String },
    #[error("`{name}` is neither a host name nor an IP address")]
    BadSan { name: String },
    #[error("an agent certificate needs at least one host name or address")]
    NoSans,
    #[error(
        "`{name}` cannot name a certificate: use 1 to 64 letters, digits, `.`, `-`, `_` or `@`"
    )]
    BadName { name: String },
    #[error("a validity of {days} days is out of range: 1 to {MAX_DAYS}")]
    BadDays { days: u32 },
    #[error("{}:{line}: {message}", path.display())]
    Index {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("no certificate has the serial or name `{0}` (see `pmfleet ca list`)")]
    NotFound(String),
    #[error("every certificate matching `{0}` is already revoked")]
    AlreadyRevoked(String),
    #[error(
        "{missing} not set, while {set} is: give all three of PMFLEET_TLS_CA, PMFLEET_TLS_CERT and PMFLEET_TLS_KEY (or their _FILE forms), or none"
    )]
    PartialEnv { missing: String, set: String },
    #[error("both {var} and {var}_FILE are set: keep one")]
    Ambiguous { var: &'static str },
    #[error("{}: the certificate's role: {source}", path.display())]
    BadRole {
        path: PathBuf,
        source: pmfleet_shared::tls::RoleError,
    },
}

impl PkiError {
    /// A mistake of the user's (wrong name, already exists, nothing to revoke) rather than a
    /// failure of the machine.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PkiError::NoHome
                | PkiError::AlreadyExists { .. }
                | PkiError::NoCa { .. }
                | PkiError::KeyExposed { .. }
                | PkiError::FileExists { .. }
                | PkiError::BadSan { .. }
                | PkiError::NoSans
                | PkiError::BadName { .. }
                | PkiError::BadDays { .. }
                | PkiError::NotFound(_)
                | PkiError::AlreadyRevoked(_)
                | PkiError::PartialEnv { .. }
                | PkiError::Ambiguous { .. }
        )
    }
}

/// Creates `dir` and missing parents with mode 0700; an existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    files::create_dir(dir)
}

/// Writes a file that must not exist yet, with `mode` from its creation on.
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    files::write_new(path, contents, mode)
}

/// `$PMFLEET_CA_DIR`, else `$XDG_CONFIG_HOME/pmfleet/ca`, else `~/.config/pmfleet/ca`.
pub fn default_dir() -> Result<PathBuf, PkiError> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("PMFLEET_CA_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let config = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|home| home.join(".config")))
        .ok_or(PkiError::NoHome)?;
    Ok(config.join("pmfleet").join("ca"))
}

/// A client certificate and its key, fresh from the CA.
pub struct IssuedKeyPair {
    pub record: IssuedCert,
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for IssuedKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKeyPair")
            .field("record", &self.record)
            .field("key_pem", &"[secret]")
            .finish_non_exhaustive()
    }
}

/// The fleet CA, loaded from its directory. Holds the CA key in memory to sign with; the key
/// is only ever read from `ca.key`, never written anywhere else or sent.
pub struct Ca {
    dir: PathBuf,
    cert_pem: String,
    fingerprint: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Makes a new fleet CA in `dir`, this machine's controller certificate and an empty CRL.
    /// Refuses when `dir` already holds a CA.
    pub fn init(dir: &Path) -> Result<Ca, PkiError> {
        for file in [CA_KEY_FILE, CA_CERT_FILE] {
            if dir.join(file).exists() {
                return Err(PkiError::AlreadyExists {
                    dir: dir.to_path_buf(),
                });
            }
        }
        files::private_dir(dir)?;
        let who = user_at_host();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        // A random id in the name tells two CAs of the same machine apart (after a rotation),
        // so a peer holding the other one's certificate reads "unknown issuer".
        let id = random_serial().1;
        let id = id.get(..8).unwrap_or(&id);
        params.distinguished_name =
            distinguished_name(&format!("pmfleet fleet CA {id} ({who})"), None);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + Duration::days(i64::from(CA_DAYS));
        params.serial_number = Some(random_serial().0);
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        // The key first, with create-new: of two racing inits, one fails here.
        files::write_new(
            &dir.join(CA_KEY_FILE),
            key.serialize_pem().as_bytes(),
            0o600,
        )?;
        files::write_new(&dir.join(CA_CERT_FILE), cert_pem.as_bytes(), 0o644)?;
        let ca = Ca {
            dir: dir.to_path_buf(),
            fingerprint: fingerprint(&cert_pem)?,
            cert_pem,
            issuer: Issuer::new(params, key),
        };
        let controller = ca.issue_with_key(
            CertKind::Controller,
            &who,
            &format!("controller:{who}"),
            Role::Admin,
            CA_DAYS - 1,
        )?;
        files::write_new(
            &dir.join(CONTROLLER_KEY_FILE),
            controller.key_pem.as_bytes(),
            0o600,
        )?;
        files::write_new(
            &dir.join(CONTROLLER_CERT_FILE),
            controller.cert_pem.as_bytes(),
            0o600,
        )?;
        ca.write_crl(&[])?;
        Ok(ca)
    }

    /// Loads the CA of `dir`. Refuses a `ca.key` that other users can read.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let key_path = dir.join(CA_KEY_FILE);
        let cert_path = dir.join(CA_CERT_FILE);
        if !key_path.exists() || !cert_path.exists() {
            return Err(PkiError::NoCa {
                dir: dir.to_path_buf(),
            });
        }
        let mode = std::fs::metadata(&key_path)
            .map_err(|source| PkiError::Read {
                path: key_path.clone(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(PkiError::KeyExposed {
                path: key_path,
                mode: mode & 0o7777,
            });
        }
        let key = KeyPair::from_pem(&files::read(&key_path)?).map_err(|source| PkiError::Load {
            path: key_path.clone(),
            source,
        })?;
        let cert_pem = files::read(&cert_path)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|source| PkiError::Load {
            path: cert_path.clone(),
            source,
        })?;
        Ok(Ca {
            dir: dir.to_path_buf(),
            fingerprint: fingerprint(&cert_pem)?,
            cert_pem,
            issuer,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, PEM: what every peer trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The SHA-256 fingerprint of the CA certificate (`AB:CD:…`).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Every certificate this CA issued, oldest first.
    pub fn issued(&self) -> Result<Vec<IssuedCert>, PkiError> {
        index::read(&self.dir.join(INDEX_FILE))
    }

    /// A client certificate (CN `client:<name>`, clientAuth, `OU=pmfleet-role:<role>`) and its
    /// key, for a CI runner.
    pub fn issue_client_cert(
        &self,
        name: &str,
        role: Role,
        days: u32,
    ) -> Result<IssuedKeyPair, PkiError> {
        check_name(name)?;
        self.issue_with_key(
            CertKind::Client,
            name,
            &format!("client:{name}"),
            role,
            days,
        )
    }

    /// Revokes every unrevoked certificate whose serial (hex, `:` allowed) or name is
    /// `target`, then rewrites `crl.pem`. Returns what it revoked.
    pub fn revoke(&self, target: &str) -> Result<Vec<IssuedCert>, PkiError> {
        let index_path = self.dir.join(INDEX_FILE);
        let mut certs = index::read(&index_path)?;
        let serial = target.replace(':', "").to_ascii_lowercase();
        let now = rfc3339(OffsetDateTime::now_utc());
        let mut matched = false;
        let mut revoked = Vec::new();
        for cert in certs
            .iter_mut()
            .filter(|c| c.serial == serial || c.name == target)
        {
            matched = true;
            if cert.revoked_at.is_none() {
                cert.revoked_at = Some(now.clone());
                revoked.push(cert.clone());
            }
        }
        if !matched {
            return Err(PkiError::NotFound(target.to_string()));
        }
        if revoked.is_empty() {
            return Err(PkiError::AlreadyRevoked(target.to_string()));
        }
        // The CRL first: if the index cannot be rewritten, agents still refuse the certificate.
        self.write_crl(&certs)?;
        index::rewrite(&index_path, &certs)?;
        Ok(revoked)
    }

    /// Signs a fresh client leaf with `role` and records it in the index.
    fn issue_with_key(
        &self,
        kind: CertKind,
        name: &str,
        common_name: &str,
        role: Role,
        days: u32,
    ) -> Result<IssuedKeyPair, PkiError> {
        let usage = Usage::Client(role);
        let (params, record) = leaf(kind, name, common_name, &[], usage, days)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        index::append(&self.dir.join(INDEX_FILE), &record)?;
        Ok(IssuedKeyPair {
            record,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn write_crl(&self, certs: &[IssuedCert]) -> Result<(), PkiError> {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = certs
            .iter()
            .filter_map(|c| Some((c, c.revoked_at.as_deref()?)))
            .map(|(c, at)| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&hex_decode(&c.serial).ok_or_else(
                        || PkiError::Index {
                            path: self.dir.join(INDEX_FILE),
                            line: 0,
                            message: format!("serial `{}` is not hex", c.serial),
                        },
                    )?),
                    revocation_time: OffsetDateTime::parse(at, &Rfc3339).unwrap_or(now),
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let crl = CertificateRevocationListParams {
            this_update: now - CLOCK_SKEW,
            next_update: now + Duration::days(365),
            crl_number: SerialNumber::from(now.unix_timestamp().unsigned_abs()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)?;
        files::replace(&self.dir.join(CRL_FILE), crl.pem()?.as_bytes(), 0o644)
    }
}

/// Signs an agent's CSR: a server certificate (serverAuth, CN `agent:<first name>`) whose SANs
/// are exactly `sans`, the host's names/addresses as the controller knows them. A request
/// that asks for any other name, or to be a CA, is refused. Returns the certificate, PEM.
pub fn sign_agent_csr(
    ca: &Ca,
    csr_pem: &str,
    sans: &[String],
    days: u32,
) -> Result<String, PkiError> {
    let request = CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::Csr)?;
    if matches!(request.params.is_ca, IsCa::Ca(_)) {
        return Err(PkiError::CsrAsksForCa);
    }
    let (params, record) = agent_leaf(sans, days)?;
    for asked in &request.params.subject_alt_names {
        if !params.subject_alt_names.contains(asked) {
            return Err(PkiError::SanNotAllowed {
                name: san_text(asked),
                allowed: record.sans.join(", "),
            });
        }
    }
    let cert = CertificateSigningRequestParams {
        params,
        public_key: request.public_key,
    }
    .signed_by(&ca.issuer)?;
    index::append(&ca.dir.join(INDEX_FILE), &record)?;
    Ok(cert.pem())
}

/// An agent certificate and key made here rather than on the host: for tests and benchmarks.
/// Real agents send a CSR ([`sign_agent_csr`]). Returns `(cert_pem, key_pem)`.
pub fn issue_agent_cert(ca: &Ca, sans: &[String], days: u32) -> Result<(String, String), PkiError> {
    let (params, record) = agent_leaf(sans, days)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    index::append(&ca.dir.join(INDEX_FILE), &record)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn agent_leaf(sans: &[String], days: u32) -> Result<(CertificateParams, IssuedCert), PkiError> {
    let first = sans.first().ok_or(PkiError::NoSans)?;
    let first = strip_brackets(first);
    leaf(
        CertKind::Agent,
        first,
        &format!("agent:{first}"),
        sans,
        Usage::Server,
        days,
    )
}

/// What a leaf is for: an agent's server certificate, or a client certificate with its role.
#[derive(Debug, Clone, Copy)]
enum Usage {
    Server,
    Client(Role),
}

/// The parameters of a leaf certificate and the index line recording it.
fn leaf(
    kind: CertKind,
    name: &str,
    common_name: &str,
    sans: &[String],
    usage: Usage,
    days: u32,
) -> Result<(CertificateParams, IssuedCert), PkiError> {
    if days == 0 || days > MAX_DAYS {
        return Err(PkiError::BadDays { days });
    }
    let now = OffsetDateTime::now_utc();
    let (serial, serial_hex) = random_serial();
    let mut params = CertificateParams::default();
    let (eku, role) = match usage {
        Usage::Server => (ExtendedKeyUsagePurpose::ServerAuth, None),
        Usage::Client(role) => (ExtendedKeyUsagePurpose::ClientAuth, Some(role)),
    };
    params.distinguished_name = distinguished_name(common_name, role);
    params.subject_alt_names = sans
        .iter()
        .map(|s| parse_san(s))
        .collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + Duration::days(i64::from(days));
    params.serial_number = Some(serial);
    let record = IssuedCert {
        serial: serial_hex,
        kind,
        name: name.to_string(),
        sans: params.subject_alt_names.iter().map(san_text).collect(),
        issued_at: rfc3339(now),
        not_after: rfc3339(params.not_after),
        revoked_at: None,
        role,
    };
    Ok((params, record))
}

fn parse_san(name: &str) -> Result<SanType, PkiError> {
    let bare = strip_brackets(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = || PkiError::BadSan {
        name: name.to_string(),
    };
    // The same check the controller applies to the name it dials.
    rustls_pki_types::DnsName::try_from(bare).map_err(|_| bad())?;
    Ok(SanType::DnsName(bare.try_into().map_err(|_| bad())?))
}

fn san_text(san: &SanType) -> String {
    match san {
        SanType::DnsName(name) => name.as_str().to_string(),
        SanType::IpAddress(ip) => ip.to_string(),
        other => format!("{other:?}"),
    }
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn check_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok {
        Ok(())
    } else {
        Err(PkiError::BadName {
            name: name.to_string(),
        })
    }
}

/// `O=pmfleet`, the role (`OU=pmfleet-role:<role>`) for a client, and the CN.
fn distinguished_name(common_name: &str, role: Option<Role>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "pmfleet");
    if let Some(role) = role {
        dn.push(DnType::OrganizationalUnitName, role.subject_unit());
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// 128 random bits with the top bit clear (serials are positive) and a non-zero first byte
/// (so the hex here is the serial's DER content exactly).
fn random_serial() -> (SerialNumber, String) {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] = (bytes[0] & 0x7f).max(1);
    let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
    (SerialNumber::from_slice(&bytes), hex)
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn fingerprint(cert_pem: &str) -> Result<String, PkiError> {
    tls::fingerprint_sha256(cert_pem).map_err(|source| PkiError::Tls {
        what: "the CA certificate".into(),
        source,
    })
}

/// `user@host` for the controller certificate's name.
fn user_at_host() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".to_string());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    format!("{user}@{host}")
}

/// The name of this process's uid in /etc/passwd, for when `$USER` is not set (cron, CI,
/// containers). The uid is read from the owner of `/proc/self`.
fn user_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests;
