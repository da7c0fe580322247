//! Mutual TLS between the controller and the agents: the building blocks both sides use.
//!
//! Every peer holds a certificate from the fleet CA (see `pmfleet ca`). The agent's server
//! accepts only clients whose certificate chains to that CA ([`server_config`]); the
//! controller accepts only an agent whose certificate chains to it *and* names the host it
//! dialled ([`client_config`], [`server_name`]). Both sides speak TLS 1.3 only, with the ring
//! crypto provider chosen explicitly (the workspace has one crypto backend), and negotiate the
//! [`ALPN`] protocol so a stray TLS client is told apart from a pmfleet peer.
//!
//! - [`certs_from_pem`], [`key_from_pem`], [`crls_from_pem`], [`read_pem_file`]: PEM text from
//!   files or environment variables.
//! - [`make_csr`]: what a host runs to get its certificate without its key leaving it.
//! - [`Role`], [`role_of`]: what a client certificate allows (see the `role` module);
//!   [`name_of`]: whom it names.
//! - [`accept_with_timeout`], [`connect_with_timeout`], [`handshake_over`]: handshakes with a deadline.
//!
//! The frames carried inside the connection are [`crate::protocol`]'s.

mod csr;
mod expiry;
mod io;
mod pem;
mod role;

pub use csr::{fingerprint_sha256, make_csr, server_name};
pub use expiry::{days_left, not_after_unix};
pub use io::{
    Phase, accept_alpn_with_timeout, accept_with_timeout, connect_with_timeout, handshake_over,
};
pub use pem::{certs_from_pem, crls_from_pem, key_from_pem, read_pem_file};
pub use role::{ROLE_UNIT_PREFIX, Role, RoleError, name_of, role_of};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;

use rustls::client::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{
    NoServerSessionStorage, ServerConfig, VerifierBuilderError, WebPkiClientVerifier,
};
use rustls::{RootCertStore, version::TLS13};

/// The TCP port an agent listens on for the controller unless configured otherwise.
pub const DEFAULT_AGENT_PORT: u16 = 7677;

/// The ALPN protocol id both sides insist on.
pub const ALPN: &[u8] = b"pmfleet/1";

/// The ALPN protocol id of HTTP/1.1: what a metrics scraper offers on the agent's mutual-TLS
/// port when the agent serves its metrics there.
pub const HTTP_ALPN: &[u8] = b"http/1.1";

/// What can go wrong while loading TLS material or setting up a connection.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is not valid PEM: {source}")]
    Pem {
        what: &'static str,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{what} holds no certificate (expected a `BEGIN CERTIFICATE` PEM block)")]
    NoCertificate { what: &'static str },
    #[error(
        "no private key found (expected a `BEGIN PRIVATE KEY` or `BEGIN EC PRIVATE KEY` PEM block)"
    )]
    NoPrivateKey,
    #[error("the fleet CA certificate cannot be used as a trust anchor: {0}")]
    TrustAnchor(rustls::Error),
    #[error("cannot set up client certificate checking: {0}")]
    Verifier(#[from] VerifierBuilderError),
    #[error("cannot set up agent certificate checking: {0}")]
    ServerVerifier(VerifierBuilderError),
    #[error("the certificate and key cannot be used: {0}")]
    Config(#[from] rustls::Error),
    #[error("`{name}` is neither a host name nor an IP address")]
    ServerName { name: String },
    #[error("a certificate request needs at least one host name or address")]
    NoNames,
    #[error("cannot make a key and certificate request: {0}")]
    Csr(#[from] rcgen::Error),
    #[error("{phase} timed out after {after:?}")]
    Timeout { phase: Phase, after: Duration },
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error(
        "the peer does not speak {} (no matching ALPN protocol)",
        String::from_utf8_lossy(ALPN)
    )]
    Alpn,
}

/// The one crypto provider of the workspace.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::certs_labelled(ca_pem, "the fleet CA certificate")? {
        roots.add(cert).map_err(TlsError::TrustAnchor)?;
    }
    Ok(Arc::new(roots))
}

/// The agent's side: TLS 1.3, a client certificate chaining to the fleet CA required,
/// `cert_chain_pem` (leaf first) and `key_pem` as the agent's identity.
pub fn server_config(
    ca_pem: &str,
    cert_chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_crl(ca_pem, cert_chain_pem, key_pem, None)
}

/// [`server_config`], refusing client certificates listed in `crl_pem` (the `crl.pem` that
/// `pmfleet ca revoke` writes). An empty CRL file is the same as none.
pub fn server_config_with_crl(
    ca_pem: &str,
    cert_chain_pem: &str,
    key_pem: &str,
    crl_pem: Option<&str>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider.clone());
    if let Some(crl_pem) = crl_pem {
        let crls = crls_from_pem(crl_pem)?;
        if !crls.is_empty() {
            verifier = verifier.with_crls(crls);
        }
    }
    let chain = certs_from_pem(cert_chain_pem)?;
    let key = key_from_pem(key_pem)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS13])?
        .with_client_cert_verifier(verifier.build()?)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    // No resumption: every connection presents its certificate again and meets the current CRL.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The controller's (or a CI runner's) side: TLS 1.3, the agent's certificate must chain to
/// the fleet CA and name the host dialled; `cert_chain_pem` and `key_pem` are the client's
/// identity.
pub fn client_config(
    ca_pem: &str,
    cert_chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_with_crl(ca_pem, cert_chain_pem, key_pem, None)
}

/// [`client_config`], refusing agent certificates listed in `crl_pem` (the fleet CA's
/// `crl.pem`): a revoked agent is not talked to. An empty CRL file is the same as none.
pub fn client_config_with_crl(
    ca_pem: &str,
    cert_chain_pem: &str,
    key_pem: &str,
    crl_pem: Option<&str>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let chain = certs_from_pem(cert_chain_pem)?;
    let key = key_from_pem(key_pem)?;
    let provider = provider();
    let mut verifier =
        WebPkiServerVerifier::builder_with_provider(roots(ca_pem)?, provider.clone());
    if let Some(crl_pem) = crl_pem {
        let crls = crls_from_pem(crl_pem)?;
        if !crls.is_empty() {
            verifier = verifier.with_crls(crls);
        }
    }
    let verifier = verifier.build().map_err(TlsError::ServerVerifier)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS13])?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_inputs_say_which_part_is_wrong() {
        let err = server_config("", "", "").unwrap_err();
        assert!(err.to_string().contains("fleet CA"), "{err}");
        let err = client_config("junk", "", "").unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }
}
