//! `issued.jsonl`: one line per certificate the CA signed, so `pmfleet ca list` can show them
//! and `pmfleet ca revoke` can find a serial by name. Appended on issue, rewritten on revoke.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use pmfleet_shared::tls::Role;

use super::{PkiError, files};

/// Who a certificate was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertKind {
    /// An agent's server certificate (SANs = the host's name/address).
    Agent,
    /// A client certificate for a CI runner or another operator machine.
    Client,
    /// The client certificate `pmfleet ca init` made for the CA's own machine.
    Controller,
    /// The server certificate `pmfleet dashboard --tls` serves the browser with (SANs = the
    /// names it listens on).
    Dashboard,
}

impl std::fmt::Display for CertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertKind::Agent => "agent",
            CertKind::Client => "client",
            CertKind::Controller => "controller",
            CertKind::Dashboard => "dashboard",
        })
    }
}

/// One line of `issued.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    /// Lower-case hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    pub kind: CertKind,
    /// The client's name, or the agent's first SAN.
    pub name: String,
    pub sans: Vec<String>,
    /// RFC 3339, UTC.
    pub issued_at: String,
    /// RFC 3339, UTC.
    pub not_after: String,
    /// RFC 3339, UTC; set once the certificate is in `crl.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// A client certificate's role; `None` for agents (and for client certificates issued
    /// before roles, which agents treat as `read`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// How a certificate stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertStatus {
    Valid,
    Expired,
    Revoked,
}

impl std::fmt::Display for CertStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertStatus::Valid => "valid",
            CertStatus::Expired => "expired",
            CertStatus::Revoked => "revoked",
        })
    }
}

impl IssuedCert {
    pub fn revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    pub fn status(&self, now: OffsetDateTime) -> CertStatus {
        if self.revoked() {
            return CertStatus::Revoked;
        }
        match OffsetDateTime::parse(&self.not_after, &Rfc3339) {
            Ok(t) if t <= now => CertStatus::Expired,
            _ => CertStatus::Valid,
        }
    }
}

pub(super) fn read(path: &Path) -> Result<Vec<IssuedCert>, PkiError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PkiError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| PkiError::Index {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

pub(super) fn append(path: &Path, cert: &IssuedCert) -> Result<(), PkiError> {
    let write_err = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut line = serde_json::to_string(cert).map_err(|e| write_err(e.into()))?;
    line.push('\n');
    let mut file = files::open_append(path).map_err(write_err)?;
    file.write_all(line.as_bytes()).map_err(write_err)
}

pub(super) fn rewrite(path: &Path, certs: &[IssuedCert]) -> Result<(), PkiError> {
    let mut text = String::new();
    for cert in certs {
        let line = serde_json::to_string(cert).map_err(|e| PkiError::Write {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        text.push_str(&line);
        text.push('\n');
    }
    files::replace(path, text.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_after: &str, revoked_at: Option<&str>) -> IssuedCert {
        IssuedCert {
            serial: "01ab".into(),
            kind: CertKind::Client,
            name: "ci".into(),
            sans: vec![],
            issued_at: "2025-01-01T00:00:00Z".into(),
            not_after: not_after.into(),
            revoked_at: revoked_at.map(str::to_string),
            role: Some(Role::Deploy),
        }
    }

    #[test]
    fn status_from_dates_and_revocation() {
        let now = OffsetDateTime::parse("2026-01-01T00:00:00Z", &Rfc3339).unwrap();
        assert_eq!(
            cert("2027-01-01T00:00:00Z", None).status(now),
            CertStatus::Valid
        );
        assert_eq!(
            cert("2025-06-01T00:00:00Z", None).status(now),
            CertStatus::Expired
        );
        assert_eq!(
            cert("2027-01-01T00:00:00Z", Some("2025-12-01T00:00:00Z")).status(now),
            CertStatus::Revoked
        );
    }

    #[test]
    fn index_round_trips_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issued.jsonl");
        assert!(read(&path).unwrap().is_empty());
        let c = cert("2027-01-01T00:00:00Z", None);
        append(&path, &c).unwrap();
        append(&path, &c).unwrap();
        assert_eq!(read(&path).unwrap(), vec![c.clone(), c]);
        std::fs::write(&path, "{\"serial\":1}\n").unwrap();
        let err = read(&path).unwrap_err();
        assert!(err.to_string().contains("issued.jsonl:1"), "{err}");
    }
}
