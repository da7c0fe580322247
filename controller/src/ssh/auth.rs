//! Public key authentication: the keys of a running ssh-agent first, then a key in
//! `$PMFLEET_SSH_KEY`, then key files (the spec's `key`, `IdentityFile`s, then
//! ~/.ssh/id_ed25519, id_ecdsa, id_rsa).
//!
//! Everything tried is recorded for the error message — agent keys by type and fingerprint, key
//! files by path with why they were skipped — never key material. Encrypted key files cannot be
//! used without a passphrase prompt; they are skipped with a hint to load them into the agent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use russh::{MethodKind, MethodSet};

use super::error::SshError;
use super::handler::ClientHandler;
use super::known_hosts::fingerprint;

/// The environment variable that may hold a private key (for CI jobs): tried after the agent,
/// before key files.
pub const KEY_ENV: &str = "PMFLEET_SSH_KEY";

/// What authentication needs to know, beyond the handle.
pub(crate) struct AuthPlan<'a> {
    pub user: &'a str,
    pub destination: &'a str,
    /// Key files in the order to try them.
    pub identity_files: &'a [PathBuf],
    /// How many of `identity_files` were named explicitly (spec `key` or `IdentityFile`): a
    /// missing explicit file is reported, a missing default one is not.
    pub explicit_files: usize,
}

/// How one attempt ended.
enum Attempt {
    Success,
    Refused(MethodSet),
}

/// Tries the agent's keys, then the key files, until the server accepts one.
pub(crate) async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    plan: &AuthPlan<'_>,
) -> Result<(), SshError> {
    let mut keys = Offered::default();

    match std::env::var_os("SSH_AUTH_SOCK") {
        Some(socket) if !socket.is_empty() => {
            let socket = PathBuf::from(socket);
            match AgentClient::connect_uds(&socket).await {
                Ok(mut agent) => match agent.request_identities().await {
                    Ok(identities) => {
                        if identities.is_empty() {
                            keys.tried
                                .push(format!("ssh-agent at {} (no keys)", socket.display()));
                        }
                        for identity in identities {
                            let key = identity.public_key().into_owned();
                            let label = format!(
                                "ssh-agent key {} {}",
                                key.algorithm().as_str(),
                                fingerprint(&key)
                            );
                            let hash = if key.algorithm().is_rsa() {
                                rsa_hash_for(handle, &mut keys.rsa_hash, plan).await?
                            } else {
                                None
                            };
                            let result = handle
                                .authenticate_publickey_with(
                                    plan.user,
                                    key.clone(),
                                    hash,
                                    &mut agent,
                                )
                                .await;
                            keys.offered.push(key);
                            match result {
                                Ok(result) => match attempt(result) {
                                    Attempt::Success => return Ok(()),
                                    Attempt::Refused(remaining) => {
                                        refused(plan, &mut keys.tried, &label, &remaining)?;
                                    }
                                },
                                Err(error) => {
                                    keys.tried.push(format!(
                                        "{label} (the agent could not sign: {error})"
                                    ));
                                }
                            }
                        }
                    }
                    Err(error) => keys.tried.push(format!(
                        "ssh-agent at {} (cannot list keys: {error})",
                        socket.display()
                    )),
                },
                Err(error) => keys.tried.push(format!(
                    "ssh-agent at {} (unavailable: {error})",
                    socket.display()
                )),
            }
        }
        _ => {}
    }

    // A key passed by environment variable (a CI secret), never written to disk.
    if let Ok(text) = std::env::var(KEY_ENV)
        && !text.trim().is_empty()
    {
        match russh::keys::decode_secret_key(&text, None) {
            Ok(key) => {
                let label = format!("${KEY_ENV}");
                if offer_key(handle, plan, &mut keys, key, &label).await? {
                    return Ok(());
                }
            }
            Err(_) => keys.tried.push(format!(
                "${KEY_ENV} (not an unencrypted OpenSSH or PEM private key)"
            )),
        }
    }

    for (index, path) in plan.identity_files.iter().enumerate() {
        let explicit = index < plan.explicit_files;
        let key = match load_key(path) {
            Ok(key) => key,
            Err(KeyFileProblem::Missing) if !explicit => continue,
            Err(problem) => {
                keys.tried
                    .push(format!("{} ({})", path.display(), problem.describe()));
                continue;
            }
        };
        if keys.offered.contains(key.public_key()) {
            // Already offered through the agent: the server refused it once.
            continue;
        }
        let label = path.display().to_string();
        if offer_key(handle, plan, &mut keys, key, &label).await? {
            return Ok(());
        }
    }

    if keys.tried.is_empty() {
        keys.tried.push(format!(
            "no ssh-agent (SSH_AUTH_SOCK unset) and no key file among {}",
            plan.identity_files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Err(SshError::Auth {
        destination: plan.destination.to_string(),
        tried: keys.tried,
    })
}

/// What the attempts so far have recorded.
#[derive(Default)]
struct Offered {
    /// Everything tried, for the error message.
    tried: Vec<String>,
    /// Public keys already offered (a key file the agent also holds is not offered twice).
    offered: Vec<PublicKey>,
    /// The server's RSA signature hash, resolved on first use (asking waits for the server's
    /// extension info).
    rsa_hash: Option<Option<HashAlg>>,
}

/// Offers one private key (from `$PMFLEET_SSH_KEY` or a key file, named `label` in messages);
/// `Ok(true)` when the server accepted it.
async fn offer_key(
    handle: &mut Handle<ClientHandler>,
    plan: &AuthPlan<'_>,
    keys: &mut Offered,
    key: russh::keys::PrivateKey,
    label: &str,
) -> Result<bool, SshError> {
    let public = key.public_key().clone();
    let hash = if key.algorithm().is_rsa() {
        rsa_hash_for(handle, &mut keys.rsa_hash, plan).await?
    } else {
        None
    };
    let result = handle
        .authenticate_publickey(plan.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await
        .map_err(|source| during_auth(plan, source))?;
    keys.offered.push(public);
    match attempt(result) {
        Attempt::Success => Ok(true),
        Attempt::Refused(remaining) => {
            refused(plan, &mut keys.tried, label, &remaining)?;
            Ok(false)
        }
    }
}

/// Records that the server refused the key `label`; an error once it takes no more public
/// keys.
fn refused(
    plan: &AuthPlan<'_>,
    tried: &mut Vec<String>,
    label: &str,
    remaining: &MethodSet,
) -> Result<(), SshError> {
    tried.push(format!("{label} (refused by the server)"));
    if remaining.contains(&MethodKind::PublicKey) {
        Ok(())
    } else {
        Err(no_more_publickey(plan, std::mem::take(tried), remaining))
    }
}

fn attempt(result: AuthResult) -> Attempt {
    match result {
        AuthResult::Success => Attempt::Success,
        AuthResult::Failure {
            remaining_methods, ..
        } => Attempt::Refused(remaining_methods),
    }
}

/// The RSA signature hash the server supports best, asked once per connection.
async fn rsa_hash_for(
    handle: &Handle<ClientHandler>,
    cached: &mut Option<Option<HashAlg>>,
    plan: &AuthPlan<'_>,
) -> Result<Option<HashAlg>, SshError> {
    if let Some(hash) = cached {
        return Ok(*hash);
    }
    let hash = handle
        .best_supported_rsa_hash()
        .await
        .map_err(|source| during_auth(plan, source))?
        .flatten();
    *cached = Some(hash);
    Ok(hash)
}

fn during_auth(plan: &AuthPlan<'_>, source: russh::Error) -> SshError {
    SshError::Disconnected {
        destination: plan.destination.to_string(),
        phase: "authentication",
        message: source.to_string(),
    }
}

fn no_more_publickey(
    plan: &AuthPlan<'_>,
    mut tried: Vec<String>,
    remaining: &MethodSet,
) -> SshError {
    let methods: Vec<&str> = remaining.iter().map(<&str>::from).collect();
    tried.push(format!(
        "the server no longer accepts public keys (remaining methods: {})",
        if methods.is_empty() {
            "none".to_string()
        } else {
            methods.join(", ")
        }
    ));
    SshError::Auth {
        destination: plan.destination.to_string(),
        tried,
    }
}

/// Why a key file was not used.
#[derive(Debug)]
enum KeyFileProblem {
    Missing,
    Encrypted,
    Unreadable(String),
}

impl KeyFileProblem {
    fn describe(&self) -> String {
        match self {
            KeyFileProblem::Missing => "not found".into(),
            KeyFileProblem::Encrypted => {
                "encrypted; no passphrase can be asked for, load it with `ssh-add` instead".into()
            }
            KeyFileProblem::Unreadable(message) => format!("unusable: {message}"),
        }
    }
}

fn load_key(path: &Path) -> Result<russh::keys::PrivateKey, KeyFileProblem> {
    if !path.exists() {
        return Err(KeyFileProblem::Missing);
    }
    russh::keys::load_secret_key(path, None).map_err(|error| match error {
        russh::keys::Error::KeyIsEncrypted => KeyFileProblem::Encrypted,
        // The error's text never includes the key itself.
        other => KeyFileProblem::Unreadable(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_problems() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_key(&dir.path().join("absent")),
            Err(KeyFileProblem::Missing)
        ));
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "not a key").unwrap();
        assert!(matches!(
            load_key(&garbage),
            Err(KeyFileProblem::Unreadable(_))
        ));
    }

    #[test]
    fn encrypted_key_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "secret", "-C", "", "-f"])
            .arg(&path)
            .status();
        // Without ssh-keygen there is nothing to check.
        if !status.is_ok_and(|s| s.success()) {
            return;
        }
        assert!(matches!(load_key(&path), Err(KeyFileProblem::Encrypted)));
        assert!(KeyFileProblem::Encrypted.describe().contains("ssh-add"));
    }
}
