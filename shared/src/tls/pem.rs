//! Reading certificates, keys and CRLs from PEM text, whether it came from a file or from an
//! environment variable (CI systems hand secrets over as variables holding PEM).

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::TlsError;

/// The whole of a PEM file, as text.
pub fn read_pem_file(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in `pem`, in order (leaf first for a chain). At least one is required.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certs_labelled(pem, "the certificate")
}

/// The first private key in `pem` (PKCS#8, SEC1 or PKCS#1).
pub fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey,
        source => TlsError::Pem {
            what: "the private key",
            source,
        },
    })
}

/// Every CRL in `pem`; none is fine (nothing has been revoked yet).
pub fn crls_from_pem(pem: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: "the CRL",
            source,
        })
}

pub(super) fn certs_labelled(
    pem: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_garbage_input_is_an_error_not_a_panic() {
        assert!(matches!(
            certs_from_pem(""),
            Err(TlsError::NoCertificate { .. })
        ));
        assert!(matches!(key_from_pem("hello"), Err(TlsError::NoPrivateKey)));
        assert!(
            certs_from_pem("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
                .is_err()
        );
        assert!(crls_from_pem("").unwrap().is_empty());
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = read_pem_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
