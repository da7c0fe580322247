//! The server certificate `pmfleet dashboard --tls` serves browsers with: issued by the fleet
//! CA for the names the dashboard listens on, kept beside the CA (`dashboard.pem`,
//! `dashboard.key`) and used again on the next start while it is still good — signed by this
//! CA, not revoked, naming every name asked for and valid for [`DASHBOARD_RENEW_WITHIN_DAYS`]
//! more days; otherwise a new key and certificate replace it. A browser that trusts the fleet
//! CA's `ca.pem` then trusts the dashboard.
//!
//! Like an agent's, it is a serverAuth certificate of the fleet CA: its key stays in the CA
//! directory (0600), beside the CA key, and is no more exposed than it.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};

use pmfleet_shared::tls::{self, TlsError};

use super::{CRL_FILE, Ca, CertKind, PkiError, Usage, files, leaf, strip_brackets};

pub const DASHBOARD_CERT_FILE: &str = "dashboard.pem";
pub const DASHBOARD_KEY_FILE: &str = "dashboard.key";
/// How long a new dashboard certificate is valid.
const DASHBOARD_DAYS: u32 = 365;
/// A dashboard certificate that expires within this many days is replaced on start.
pub const DASHBOARD_RENEW_WITHIN_DAYS: u64 = 30;

/// The dashboard's certificate and key, and whether they were just issued.
pub struct DashboardCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
    /// `false` when the one already in the CA directory was good and is used again.
    pub issued: bool,
}

impl std::fmt::Debug for DashboardCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardCert")
            .field("cert_path", &self.cert_path)
            .field("issued", &self.issued)
            .field("key_pem", &"[secret]")
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// The dashboard's certificate for `names` (host names or addresses): the one in the CA
    /// directory when it is still good for them (see the module documentation), else a new
    /// one, written there and recorded in the index.
    pub fn dashboard_cert(&self, names: &[String]) -> Result<DashboardCert, PkiError> {
        let cert_path = self.dir.join(DASHBOARD_CERT_FILE);
        let key_path = self.dir.join(DASHBOARD_KEY_FILE);
        if let (Ok(cert_pem), Ok(key_pem)) = (files::read(&cert_path), files::read(&key_path))
            && pair_matches(&cert_pem, &key_pem)
            && self.serves(&cert_pem, names)?
        {
            return Ok(DashboardCert {
                cert_path,
                key_path,
                cert_pem,
                key_pem,
                issued: false,
            });
        }
        let first = names.first().ok_or(PkiError::NoSans)?;
        let first = strip_brackets(first);
        let (params, record) = leaf(
            CertKind::Dashboard,
            first,
            &format!("dashboard:{first}"),
            names,
            Usage::Server,
            DASHBOARD_DAYS,
        )?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        super::index::append(&self.dir.join(super::INDEX_FILE), &record)?;
        // The key first: interrupted in between, the pair does not match and the next start
        // issues a new one.
        files::replace(&key_path, key_pem.as_bytes(), 0o600)?;
        files::replace(&cert_path, cert_pem.as_bytes(), 0o644)?;
        Ok(DashboardCert {
            cert_path,
            key_path,
            cert_pem,
            key_pem,
            issued: true,
        })
    }

    /// Whether `cert_pem` is a server certificate of this CA, not in its CRL, for every one
    /// of `names`, and still valid [`DASHBOARD_RENEW_WITHIN_DAYS`] from now. A certificate
    /// that cannot be read is not good (and is replaced); only a CRL or CA that cannot be
    /// read is an error.
    fn serves(&self, cert_pem: &str, names: &[String]) -> Result<bool, PkiError> {
        let Ok(chain) = tls::certs_from_pem(cert_pem) else {
            return Ok(false);
        };
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Ok(false);
        };
        let verifier = self.server_verifier()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let later = UnixTime::since_unix_epoch(
            now + std::time::Duration::from_secs(DASHBOARD_RENEW_WITHIN_DAYS * 86_400),
        );
        Ok(!names.is_empty()
            && names
                .iter()
                .all(|name| verifies(verifier.as_ref(), leaf, intermediates, name, later)))
    }

    /// A verifier of server certificates against this CA and its CRL.
    fn server_verifier(&self) -> Result<Arc<WebPkiServerVerifier>, PkiError> {
        let tls_error = |what: &str, source| PkiError::Tls {
            what: what.to_string(),
            source,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in tls::certs_from_pem(&self.cert_pem)
            .map_err(|e| tls_error("the fleet CA certificate", e))?
        {
            roots
                .add(cert)
                .map_err(|e| tls_error("the fleet CA certificate", TlsError::TrustAnchor(e)))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut builder = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider);
        let crl_path = self.dir.join(CRL_FILE);
        if crl_path.exists() {
            let crls = tls::crls_from_pem(&files::read(&crl_path)?)
                .map_err(|e| tls_error(&crl_path.display().to_string(), e))?;
            if !crls.is_empty() {
                builder = builder.with_crls(crls);
            }
        }
        builder
            .build()
            .map_err(|e| tls_error("the fleet CA certificate", TlsError::ServerVerifier(e)))
    }
}

/// Whether `key_pem` is the key of the certificate in `cert_pem` (two dashboards started at
/// once may each have written one of the pair).
fn pair_matches(cert_pem: &str, key_pem: &str) -> bool {
    let (Ok(chain), Ok(key)) = (tls::certs_from_pem(cert_pem), tls::key_from_pem(key_pem)) else {
        return false;
    };
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider)
        .and_then(|k| k.keys_match())
        .is_ok()
}

fn verifies(
    verifier: &WebPkiServerVerifier,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    name: &str,
    at: UnixTime,
) -> bool {
    let Ok(server_name) = tls::server_name(name) else {
        return false;
    };
    verifier
        .verify_server_cert(leaf, intermediates, &server_name, &[], at)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_dashboard_certificate_is_kept_while_good_and_replaced_when_not() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::init(tmp.path()).unwrap();
        let local = names(&["127.0.0.1", "localhost", "::1"]);

        let first = ca.dashboard_cert(&local).unwrap();
        assert!(first.issued);
        let mode = |p: &std::path::Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(&first.key_path), 0o600);
        let records = ca.issued().unwrap();
        let record = records.last().unwrap();
        assert_eq!(record.kind, CertKind::Dashboard);
        assert_eq!(record.sans, local);
        assert_eq!(record.role, None);

        // (asked again, for the same names or fewer: kept)
        for asked in [local.clone(), names(&["localhost"])] {
            let again = ca.dashboard_cert(&asked).unwrap();
            assert!(!again.issued, "{asked:?}");
            assert_eq!(again.cert_pem, first.cert_pem);
        }
        assert_eq!(ca.issued().unwrap().len(), records.len());

        // (a name it does not have: replaced)
        let wider = names(&["127.0.0.1", "dash.example"]);
        let replaced = ca.dashboard_cert(&wider).unwrap();
        assert!(replaced.issued);
        assert_ne!(replaced.cert_pem, first.cert_pem);
        assert!(!ca.dashboard_cert(&wider).unwrap().issued);

        // (revoked: replaced)
        ca.revoke("127.0.0.1").unwrap();
        let after_revoke = ca.dashboard_cert(&wider).unwrap();
        assert!(after_revoke.issued);

        // (from another CA, with another's key, not a certificate at all, or a key that is not
        // one: replaced)
        let other = tempfile::tempdir().unwrap();
        let other_ca = Ca::init(other.path()).unwrap();
        let foreign = other_ca.dashboard_cert(&wider).unwrap();
        std::fs::write(&after_revoke.cert_path, &foreign.cert_pem).unwrap();
        std::fs::write(&after_revoke.key_path, &foreign.key_pem).unwrap();
        let ours = ca.dashboard_cert(&wider).unwrap();
        assert!(ours.issued);
        std::fs::write(&ours.key_path, &foreign.key_pem).unwrap();
        assert!(
            ca.dashboard_cert(&wider).unwrap().issued,
            "a key not its own"
        );
        std::fs::write(&after_revoke.cert_path, "junk").unwrap();
        assert!(ca.dashboard_cert(&wider).unwrap().issued);
        std::fs::write(&after_revoke.key_path, "junk").unwrap();
        assert!(ca.dashboard_cert(&wider).unwrap().issued);

        assert!(matches!(ca.dashboard_cert(&[]), Err(PkiError::NoSans)));
    }
}
