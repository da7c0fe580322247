//! This machine's own client certificate (`controller.pem`, `controller.key`) after the fact:
//! one made by a pmfleet from before certificate roles carries none, and agents treat it as
//! `read`, so deploys from this machine are refused. Since this machine holds the CA key,
//! `pmfleet ca init` on the existing CA re-issues it with the `admin` role
//! ([`Ca::readmit_controller`]): a new key and certificate, the same name, recorded in the
//! index. The CA key, the CA certificate, the CRL and every other certificate are left as
//! they are; a controller certificate that has a role is left alone too, so running it again
//! changes nothing.

use time::OffsetDateTime;

use pmfleet_shared::tls::{self, Role};

use super::{
    CA_DAYS, CONTROLLER_CERT_FILE, CONTROLLER_KEY_FILE, Ca, CertKind, IssuedCert, PkiError, files,
    user_at_host,
};

/// What [`Ca::readmit_controller`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerCert {
    /// It carried no role: re-issued with `admin` (the new certificate's record).
    Reissued(IssuedCert),
    /// It has a role already: left as it is.
    HasRole(Role),
    /// There is no controller certificate in the directory (nothing to re-issue).
    Missing,
}

impl Ca {
    /// Re-issues the controller certificate with the `admin` role when it carries none (see
    /// the module documentation); otherwise leaves it.
    pub fn readmit_controller(&self) -> Result<ControllerCert, PkiError> {
        let cert_path = self.dir.join(CONTROLLER_CERT_FILE);
        if !cert_path.exists() {
            return Ok(ControllerCert::Missing);
        }
        let pem = files::read(&cert_path)?;
        let tls_error = |source| PkiError::Tls {
            what: cert_path.display().to_string(),
            source,
        };
        let certs = tls::certs_from_pem(&pem).map_err(tls_error)?;
        let Some(leaf) = certs.first() else {
            return Err(tls_error(tls::TlsError::NoCertificate {
                what: "the controller certificate",
            }));
        };
        match tls::role_of(leaf) {
            Ok(Some(role)) => return Ok(ControllerCert::HasRole(role)),
            Ok(None) => {}
            Err(source) => {
                return Err(PkiError::BadRole {
                    path: cert_path,
                    source,
                });
            }
        }
        // The same name as before: the last controller certificate the index records.
        let name = self
            .issued()?
            .into_iter()
            .rev()
            .find(|c| c.kind == CertKind::Controller)
            .map(|c| c.name)
            .unwrap_or_else(user_at_host);
        let days = days_left_of_ca(&self.cert_pem).clamp(1, CA_DAYS - 1);
        let issued = self.issue_with_key(
            CertKind::Controller,
            &name,
            &format!("controller:{name}"),
            Role::Admin,
            days,
        )?;
        // The key first: interrupted in between, the certificate still has no role, and the
        // next `ca init` issues a matching pair again.
        files::replace(
            &self.dir.join(CONTROLLER_KEY_FILE),
            issued.key_pem.as_bytes(),
            0o600,
        )?;
        files::replace(&cert_path, issued.cert_pem.as_bytes(), 0o600)?;
        Ok(ControllerCert::Reissued(issued.record))
    }
}

/// Whole days until the CA certificate expires (0 when that cannot be read).
fn days_left_of_ca(ca_pem: &str) -> u32 {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    tls::certs_from_pem(ca_pem)
        .ok()
        .and_then(|certs| certs.first().and_then(|c| tls::not_after_unix(c)))
        .map(|not_after| tls::days_left(not_after, now))
        .and_then(|days| u32::try_from(days.saturating_sub(1)).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};

    /// Replaces the controller certificate with one as a pmfleet from before roles made it.
    fn make_roleless(dir: &std::path::Path) {
        let ca_key = std::fs::read_to_string(dir.join(super::super::CA_KEY_FILE)).unwrap();
        let ca_pem = std::fs::read_to_string(dir.join(super::super::CA_CERT_FILE)).unwrap();
        let issuer =
            rcgen::Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key).unwrap()).unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "pmfleet");
        dn.push(DnType::CommonName, "controller:old@machine");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(CONTROLLER_CERT_FILE), cert.pem()).unwrap();
        std::fs::write(dir.join(CONTROLLER_KEY_FILE), key.serialize_pem()).unwrap();
    }

    fn role_in(dir: &std::path::Path) -> Option<Role> {
        let pem = std::fs::read_to_string(dir.join(CONTROLLER_CERT_FILE)).unwrap();
        tls::role_of(&tls::certs_from_pem(&pem).unwrap()[0]).unwrap()
    }

    #[test]
    fn a_roleless_controller_certificate_is_reissued_as_admin_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let ca = Ca::init(dir).unwrap();
        assert_eq!(
            ca.readmit_controller().unwrap(),
            ControllerCert::HasRole(Role::Admin)
        );
        ca.issue_client_cert("ci", Role::Deploy, 30).unwrap();
        make_roleless(dir);
        let ca_key = std::fs::read(dir.join(super::super::CA_KEY_FILE)).unwrap();
        let before = ca.issued().unwrap();

        let ControllerCert::Reissued(record) = ca.readmit_controller().unwrap() else {
            panic!("not re-issued");
        };
        assert_eq!(record.role, Some(Role::Admin));
        assert_eq!(record.name, before[0].name, "the same name as before");
        assert_eq!(role_in(dir), Some(Role::Admin));
        // The pair works together, and the CA key and other records are untouched.
        crate::pki::ClientIdentity::from_dir(dir)
            .unwrap()
            .client_config()
            .unwrap();
        assert_eq!(
            std::fs::read(dir.join(super::super::CA_KEY_FILE)).unwrap(),
            ca_key
        );
        let after = ca.issued().unwrap();
        assert_eq!(&after[..before.len()], &before[..]);
        assert_eq!(after.len(), before.len() + 1);

        // Again: nothing changes.
        let pem = std::fs::read(dir.join(CONTROLLER_CERT_FILE)).unwrap();
        assert_eq!(
            ca.readmit_controller().unwrap(),
            ControllerCert::HasRole(Role::Admin)
        );
        assert_eq!(std::fs::read(dir.join(CONTROLLER_CERT_FILE)).unwrap(), pem);
        assert_eq!(ca.issued().unwrap().len(), after.len());

        std::fs::remove_file(dir.join(CONTROLLER_CERT_FILE)).unwrap();
        assert_eq!(ca.readmit_controller().unwrap(), ControllerCert::Missing);
    }
}
