//! The russh client callbacks of every connection: only the host key check is ours, against
//! known_hosts, strictly unless learning new hosts was asked for.

use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};

use super::error::SshError;
use super::known_hosts::{self, HostKeyStatus};

/// russh callbacks: only the host key check is ours.
pub(crate) struct ClientHandler {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) known_hosts: Vec<std::path::PathBuf>,
    pub(super) accept_new: bool,
    /// Why the host key was refused, for the error returned by `connect`.
    pub(super) verdict: Arc<Mutex<Option<SshError>>>,
}

impl ClientHandler {
    fn verify(&self, key: &PublicKey) -> Result<(), SshError> {
        let fingerprint = known_hosts::fingerprint(key);
        match known_hosts::check(&self.host, self.port, key, &self.known_hosts)? {
            HostKeyStatus::Known => Ok(()),
            HostKeyStatus::Changed { path, line } => Err(SshError::HostKeyChanged {
                host: self.host.clone(),
                port: self.port,
                fingerprint,
                known_hosts_path: path,
                line,
            }),
            HostKeyStatus::Unknown => {
                let Some(learn_into) = self.known_hosts.first() else {
                    return Err(SshError::HostKeyUnknown {
                        host: self.host.clone(),
                        port: self.port,
                        fingerprint,
                        known_hosts: std::path::PathBuf::new(),
                    });
                };
                if !self.accept_new {
                    return Err(SshError::HostKeyUnknown {
                        host: self.host.clone(),
                        port: self.port,
                        fingerprint,
                        known_hosts: learn_into.clone(),
                    });
                }
                known_hosts::learn(&self.host, self.port, key, learn_into)?;
                tracing::warn!(
                    host = %self.host,
                    port = self.port,
                    %fingerprint,
                    known_hosts = %learn_into.display(),
                    "learned a new host key"
                );
                Ok(())
            }
        }
    }
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Host certificates are not requested; should one arrive, its key is checked like a
        // plain key (no certificate authority is trusted).
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(certificate) => {
                PublicKey::from(certificate.public_key().clone())
            }
        };
        match self.verify(&key) {
            Ok(()) => Ok(true),
            Err(refusal) => {
                // Kept for `connect` to return: russh only reports `UnknownKey`.
                *self
                    .verdict
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(refusal);
                Err(russh::Error::UnknownKey)
            }
        }
    }
}
