//! The client identity a controller or CI runner presents to agents: the fleet CA to trust,
//! a client certificate and its key.
//!
//! From the environment when CI hands it over (`PMFLEET_TLS_CA`, `PMFLEET_TLS_CERT`,
//! `PMFLEET_TLS_KEY` holding PEM text, or `PMFLEET_TLS_CA_FILE`, … holding paths), else from
//! the CA directory's `controller.pem`/`controller.key`.
//!
//! The fleet's revocation list comes with it — the CA directory's `crl.pem`, or
//! `PMFLEET_TLS_CRL` / `PMFLEET_TLS_CRL_FILE` (optional) — so a revoked agent certificate is
//! refused when the agent is dialled.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pmfleet_shared::tls::{self, TlsError};

use super::{CA_CERT_FILE, CONTROLLER_CERT_FILE, CONTROLLER_KEY_FILE, CRL_FILE, PkiError, files};

const VARS: [&str; 3] = ["PMFLEET_TLS_CA", "PMFLEET_TLS_CERT", "PMFLEET_TLS_KEY"];
/// The revocation list, optional beside the three [`VARS`].
const CRL_VAR: &str = "PMFLEET_TLS_CRL";
const ENV_SOURCE: &str = "the environment";

/// PEM text for the three parts of a client's TLS identity.
#[derive(Clone)]
pub struct ClientIdentity {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The fleet CA's revocation list, when there is one: agents it lists are refused.
    pub crl_pem: Option<String>,
    /// Where it came from ("the environment" or the directory), for messages.
    pub source: String,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("source", &self.source)
            .field("key_pem", &"[secret]")
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// The environment's identity when any `PMFLEET_TLS_*` variable is set (then all three
    /// parts must be), else the controller certificate of the CA directory `dir`.
    pub fn from_env_or_dir(dir: &Path) -> Result<ClientIdentity, PkiError> {
        Self::from_lookup(dir, |name| {
            std::env::var(name).ok().filter(|v| !v.trim().is_empty())
        })
    }

    /// The controller certificate of the CA directory `dir`.
    pub fn from_dir(dir: &Path) -> Result<ClientIdentity, PkiError> {
        let cert_path = dir.join(CONTROLLER_CERT_FILE);
        if !cert_path.exists() {
            return Err(PkiError::NoCa {
                dir: dir.to_path_buf(),
            });
        }
        let crl_path = dir.join(CRL_FILE);
        let identity = ClientIdentity {
            ca_pem: files::read(&dir.join(CA_CERT_FILE))?,
            cert_pem: files::read(&cert_path)?,
            key_pem: files::read(&dir.join(CONTROLLER_KEY_FILE))?,
            crl_pem: if crl_path.exists() {
                Some(files::read(&crl_path)?)
            } else {
                None
            },
            source: dir.display().to_string(),
        };
        identity.check()?;
        Ok(identity)
    }

    /// The TLS client configuration to dial agents with (refusing revoked agents).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        tls::client_config_with_crl(
            &self.ca_pem,
            &self.cert_pem,
            &self.key_pem,
            self.crl_pem.as_deref(),
        )
    }

    /// [`from_env_or_dir`](Self::from_env_or_dir) with the variables read through `lookup`.
    fn from_lookup(
        dir: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ClientIdentity, PkiError> {
        let mut parts: [Option<String>; 3] = [None, None, None];
        for (part, var) in parts.iter_mut().zip(VARS) {
            let file_var = format!("{var}_FILE");
            *part = match (lookup(var), lookup(&file_var)) {
                (Some(_), Some(_)) => return Err(PkiError::Ambiguous { var }),
                (Some(pem), None) => Some(pem),
                (None, Some(path)) => Some(files::read(&PathBuf::from(path))?),
                (None, None) => None,
            };
        }
        let crl_file_var = format!("{CRL_VAR}_FILE");
        let crl_pem = match (lookup(CRL_VAR), lookup(&crl_file_var)) {
            (Some(_), Some(_)) => return Err(PkiError::Ambiguous { var: CRL_VAR }),
            (Some(pem), None) => Some(pem),
            (None, Some(path)) => Some(files::read(&PathBuf::from(path))?),
            (None, None) => None,
        };
        match parts {
            [None, None, None] => {
                let mut identity = Self::from_dir(dir)?;
                if crl_pem.is_some() {
                    identity.crl_pem = crl_pem;
                    identity.check()?;
                }
                Ok(identity)
            }
            [Some(ca_pem), Some(cert_pem), Some(key_pem)] => {
                let identity = ClientIdentity {
                    ca_pem,
                    cert_pem,
                    key_pem,
                    crl_pem,
                    source: ENV_SOURCE.to_string(),
                };
                identity.check()?;
                Ok(identity)
            }
            parts => {
                let (set, missing): (Vec<_>, Vec<_>) =
                    VARS.iter().zip(&parts).partition(|(_, p)| p.is_some());
                let names = |v: Vec<(&&str, _)>| {
                    v.into_iter()
                        .map(|(n, _)| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                Err(PkiError::PartialEnv {
                    missing: names(missing),
                    set: names(set),
                })
            }
        }
    }

    /// Parses every part now, so a bad variable is reported by name before any connection.
    fn check(&self) -> Result<(), PkiError> {
        let from_env = self.source == ENV_SOURCE;
        let wrap = |part: &str, var: &str, text: &str, source| {
            // A path put where PEM text belongs is the likely mistake.
            let hint = if from_env && !text.contains("-----BEGIN") {
                format!(" ({var} holds PEM text; use {var}_FILE for a path)")
            } else {
                String::new()
            };
            PkiError::Tls {
                what: format!("{part} from {}{hint}", self.source),
                source,
            }
        };
        let [ca_var, cert_var, key_var] = VARS;
        tls::certs_from_pem(&self.ca_pem)
            .map_err(|e| wrap("the fleet CA certificate", ca_var, &self.ca_pem, e))?;
        tls::certs_from_pem(&self.cert_pem)
            .map_err(|e| wrap("the client certificate", cert_var, &self.cert_pem, e))?;
        tls::key_from_pem(&self.key_pem)
            .map_err(|e| wrap("the client key", key_var, &self.key_pem, e))?;
        if let Some(crl) = &self.crl_pem {
            tls::crls_from_pem(crl).map_err(|e| wrap("the revocation list", CRL_VAR, crl, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::pki::Ca;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn falls_back_to_the_controller_certificate() {
        let dir = tempfile::tempdir().unwrap();
        Ca::init(dir.path()).unwrap();
        let id = ClientIdentity::from_lookup(dir.path(), lookup(&[])).unwrap();
        assert_eq!(id.source, dir.path().display().to_string());
        id.client_config().unwrap();
        assert!(!format!("{id:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn takes_pem_text_and_files_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(dir.path()).unwrap();
        let issued = ca
            .issue_client_cert("ci", pmfleet_shared::tls::Role::Deploy, 1)
            .unwrap();
        let key_file = dir.path().join("ci.key");
        std::fs::write(&key_file, &issued.key_pem).unwrap();
        let id = ClientIdentity::from_lookup(
            Path::new("/nonexistent"),
            lookup(&[
                ("PMFLEET_TLS_CA", ca.cert_pem()),
                ("PMFLEET_TLS_CERT", &issued.cert_pem),
                ("PMFLEET_TLS_KEY_FILE", key_file.to_str().unwrap()),
            ]),
        )
        .unwrap();
        assert_eq!(id.source, "the environment");
        assert_eq!(id.key_pem, issued.key_pem);
    }

    #[test]
    fn partial_ambiguous_or_bad_environments_are_refused() {
        let dir = Path::new("/nonexistent");
        let err =
            ClientIdentity::from_lookup(dir, lookup(&[("PMFLEET_TLS_CERT", "x")])).unwrap_err();
        assert!(
            matches!(&err, PkiError::PartialEnv { missing, .. } if missing == "PMFLEET_TLS_CA, PMFLEET_TLS_KEY"),
            "{err}"
        );
        let err = ClientIdentity::from_lookup(
            dir,
            lookup(&[("PMFLEET_TLS_KEY", "x"), ("PMFLEET_TLS_KEY_FILE", "y")]),
        )
        .unwrap_err();
        assert!(matches!(err, PkiError::Ambiguous { .. }), "{err}");
        let err = ClientIdentity::from_lookup(
            dir,
            lookup(&[
                ("PMFLEET_TLS_CA", "x"),
                ("PMFLEET_TLS_CERT", "y"),
                ("PMFLEET_TLS_KEY", "z"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("the environment"), "{err}");
        assert!(err.to_string().contains("PMFLEET_TLS_CA_FILE"), "{err}");
        assert!(matches!(
            ClientIdentity::from_lookup(dir, lookup(&[])),
            Err(PkiError::NoCa { .. })
        ));
    }
}
