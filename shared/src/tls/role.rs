//! Roles: what the holder of a fleet client certificate may ask of an agent. Mutual TLS says
//! *who* connects (a certificate from the fleet CA); the role says *what* they may do, and
//! the agent checks it on every request.
//!
//! The role travels inside the certificate, where only the fleet CA can put it: one subject
//! field `OU=pmfleet-role:<role>` (`openssl x509 -noout -subject` shows it). `pmfleet ca init`
//! gives the controller `admin`; `pmfleet ca issue NAME --role …` says what a CI runner gets.
//! A client certificate without that field (one issued before roles existed) carries no role:
//! the agent gives it the least, `read`. A certificate with an unknown role, or with more
//! than one, is refused outright: it was not made by pmfleet.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a certificate allows, least to most. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Look: `ping`, `status`, `list`, `show` (env values redacted), `logs`, `events`.
    Read,
    /// CI: also apply a release that is on the host, `reload` and `restart`.
    Deploy,
    /// The controller: everything the agent offers remotely (also `stop`, `delete`, `scale`,
    /// `flush`, `reload_logs`, `save`, `resurrect`).
    Admin,
}

/// The prefix of the subject's organizational unit that names the role.
pub const ROLE_UNIT_PREFIX: &str = "pmfleet-role:";

impl Role {
    pub const ALL: [Role; 3] = [Role::Read, Role::Deploy, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Deploy => "deploy",
            Role::Admin => "admin",
        }
    }

    /// The subject's organizational unit that carries this role (`pmfleet-role:admin`).
    pub fn subject_unit(self) -> String {
        format!("{ROLE_UNIT_PREFIX}{}", self.as_str())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<Role, RoleError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| RoleError::Unknown(s.to_string()))
    }
}

/// Why a certificate's role cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("`{0}` is not a role: expected admin, deploy or read")]
    Unknown(String),
    #[error("the certificate names more than one role")]
    Several,
    #[error("the certificate cannot be read: {0}")]
    NotX509(String),
}

/// The role in a certificate's subject (DER), `Ok(None)` when it names none. Only meaningful
/// for a certificate whose chain to the fleet CA was verified: the CA's signature is what
/// makes the field trustworthy.
pub fn role_of(cert_der: &[u8]) -> Result<Option<Role>, RoleError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| RoleError::NotX509(e.to_string()))?;
    let mut found = None;
    for unit in cert.subject().iter_organizational_unit() {
        let Ok(text) = unit.as_str() else { continue };
        let Some(name) = text.strip_prefix(ROLE_UNIT_PREFIX) else {
            continue;
        };
        let role = name.parse::<Role>()?;
        if found.replace(role).is_some() {
            return Err(RoleError::Several);
        }
    }
    Ok(found)
}

/// The common name in a certificate's subject (DER) — `controller:alice@laptop`,
/// `client:ci` — to say who asked for something; `None` when it has none or is not X.509.
pub fn name_of(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let name = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    fn cert_with_units(units: &[&str]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "pmfleet");
        for unit in units {
            dn.push(DnType::OrganizationalUnitName, *unit);
        }
        dn.push(DnType::CommonName, "client:test");
        params.distinguished_name = dn;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_role_is_read_from_the_subject() {
        // (rcgen writes one unit per subject, so a subject with several cannot be made here.)
        type Row = (&'static [&'static str], Result<Option<Role>, RoleError>);
        let table: [Row; 7] = [
            (&[], Ok(None)),
            (&["pmfleet-role:admin"], Ok(Some(Role::Admin))),
            (&["pmfleet-role:deploy"], Ok(Some(Role::Deploy))),
            (&["pmfleet-role:read"], Ok(Some(Role::Read))),
            (&["ops"], Ok(None)),
            (&["pmfleet-role:"], Err(RoleError::Unknown(String::new()))),
            (
                &["pmfleet-role:root"],
                Err(RoleError::Unknown("root".into())),
            ),
        ];
        for (units, want) in table {
            assert_eq!(role_of(&cert_with_units(units)), want, "{units:?}");
        }
        assert!(matches!(role_of(b"junk"), Err(RoleError::NotX509(_))));
        assert_eq!(
            name_of(&cert_with_units(&[])).as_deref(),
            Some("client:test")
        );
        assert_eq!(name_of(b"junk"), None);
    }

    #[test]
    fn roles_are_ordered_and_spelled_once() {
        assert!(Role::Read < Role::Deploy && Role::Deploy < Role::Admin);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.subject_unit(), format!("pmfleet-role:{role}"));
        }
        assert!("Admin".parse::<Role>().is_err());
    }
}
