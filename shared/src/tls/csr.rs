//! What a host does for itself: make its key pair and a certificate signing request, so that
//! only the request travels to the controller and the private key never leaves the host.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls_pki_types::ServerName;

use super::TlsError;
use super::pem::certs_labelled;

/// A fresh ECDSA P-256 key and a CSR for it naming `sans` (host names and/or IP addresses).
///
/// Returns `(csr_pem, key_pem)`. The controller decides the names that end up in the
/// certificate; the ones asked for here only have to agree with them.
pub fn make_csr(sans: &[String]) -> Result<(String, String), TlsError> {
    let names = sans
        .iter()
        .map(|s| strip_brackets(s).to_string())
        .collect::<Vec<_>>();
    let first = names.first().ok_or(TlsError::NoNames)?;
    let mut params = CertificateParams::new(names.clone())?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("agent:{first}"));
    let key = KeyPair::generate()?;
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// The name to check the agent's certificate against: a DNS name, or an IP address (the
/// certificate then needs an IP SAN; its CN is never looked at). `[::1]` is accepted.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(strip_brackets(host).to_string()).map_err(|_| TlsError::ServerName {
        name: host.to_string(),
    })
}

/// The SHA-256 fingerprint of the first certificate in `cert_pem`, as `AB:CD:…`: what a person
/// compares to tell one fleet CA from another.
pub fn fingerprint_sha256(cert_pem: &str) -> Result<String, TlsError> {
    let certs = certs_labelled(cert_pem, "the certificate")?;
    let der = certs.first().ok_or(TlsError::NoCertificate {
        what: "the certificate",
    })?;
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    Ok(digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_and_key_are_pem() {
        let (csr, key) = make_csr(&["web1.example.com".into(), "10.0.0.7".into()]).unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        assert!(key.contains("PRIVATE KEY"));
    }

    #[test]
    fn csr_needs_a_name() {
        assert!(matches!(make_csr(&[]), Err(TlsError::NoNames)));
    }

    #[test]
    fn server_names_take_hosts_and_addresses() {
        assert!(matches!(
            server_name("web1.example.com").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("10.0.0.7").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(server_name("not a host").is_err());
        assert!(server_name("").is_err());
    }

    #[test]
    fn fingerprint_is_colon_separated_sha256() {
        let cert = rcgen::generate_simple_self_signed(vec!["x.test".to_string()]).unwrap();
        let fp = fingerprint_sha256(&cert.cert.pem()).unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fingerprint_sha256("junk").is_err());
    }
}
