use std::os::unix::fs::PermissionsExt;

use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_lays_out_the_directory_with_private_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = Ca::init(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(CA_KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(CA_CERT_FILE)), 0o644);
    assert_eq!(mode(&dir.join(CONTROLLER_KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(CRL_FILE)), 0o644);
    let issued = ca.issued().unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].kind, CertKind::Controller);
    assert_eq!(ca.fingerprint().len(), 95);

    let loaded = Ca::load(&dir).unwrap();
    assert_eq!(loaded.fingerprint(), ca.fingerprint());
    assert!(matches!(
        Ca::init(&dir),
        Err(PkiError::AlreadyExists { .. })
    ));
    assert!(!format!("{ca:?}").contains("PRIVATE"));
}

#[test]
fn load_refuses_a_missing_ca_or_an_exposed_key() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(Ca::load(tmp.path()), Err(PkiError::NoCa { .. })));
    Ca::init(tmp.path()).unwrap();
    let key = tmp.path().join(CA_KEY_FILE);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Ca::load(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn agent_csr_gets_exactly_the_hosts_names() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path()).unwrap();
    let sans = vec!["web1.example.com".to_string(), "10.0.0.7".to_string()];
    let (csr, _key) = tls::make_csr(&sans).unwrap();
    let cert = sign_agent_csr(&ca, &csr, &sans, 30).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    let last = ca.issued().unwrap().pop().unwrap();
    assert_eq!(last.kind, CertKind::Agent);
    assert_eq!(last.name, "web1.example.com");
    assert_eq!(last.sans, sans);

    // A CSR with fewer names than the host's is fine: the certificate gets the host's.
    let (csr, _) = tls::make_csr(&sans[..1]).unwrap();
    sign_agent_csr(&ca, &csr, &sans, 30).unwrap();

    // A host asking for another host's name is refused.
    let (csr, _) = tls::make_csr(&["db1.example.com".to_string()]).unwrap();
    let err = sign_agent_csr(&ca, &csr, &sans, 30).unwrap_err();
    assert!(
        matches!(&err, PkiError::SanNotAllowed { name, .. } if name == "db1.example.com"),
        "{err}"
    );
    assert!(matches!(
        sign_agent_csr(&ca, "not a csr", &sans, 30),
        Err(PkiError::Csr(_))
    ));
    assert!(matches!(
        sign_agent_csr(&ca, &csr, &[], 30),
        Err(PkiError::NoSans)
    ));
}

#[test]
fn a_csr_asking_to_be_a_ca_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path()).unwrap();
    let mut params = CertificateParams::new(vec!["web1.example.com".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let err = sign_agent_csr(&ca, &csr, &["web1.example.com".to_string()], 30).unwrap_err();
    assert!(matches!(err, PkiError::CsrAsksForCa), "{err}");
}

#[test]
fn names_days_and_sans_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path()).unwrap();
    for bad in ["", "a b", "../x", "x;rm", &"x".repeat(65)] {
        assert!(
            matches!(
                ca.issue_client_cert(bad, Role::Deploy, 1),
                Err(PkiError::BadName { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        ca.issue_client_cert("ci", Role::Deploy, 0),
        Err(PkiError::BadDays { days: 0 })
    ));
    assert!(matches!(
        ca.issue_client_cert("ci", Role::Deploy, MAX_DAYS + 1),
        Err(PkiError::BadDays { .. })
    ));
    assert!(matches!(
        issue_agent_cert(&ca, &["not a host".to_string()], 1),
        Err(PkiError::BadSan { .. })
    ));
    let (cert, _) = issue_agent_cert(&ca, &["[::1]".to_string()], 1).unwrap();
    assert!(cert.contains("BEGIN CERTIFICATE"));
}

#[test]
fn revoke_by_name_or_serial_rewrites_the_crl() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path()).unwrap();
    let empty_crl = std::fs::read_to_string(tmp.path().join(CRL_FILE)).unwrap();
    let a = ca.issue_client_cert("ci-a", Role::Deploy, 1).unwrap();
    let b = ca.issue_client_cert("ci-b", Role::Read, 1).unwrap();

    let revoked = ca.revoke("ci-a").unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].serial, a.record.serial);
    let crl = std::fs::read_to_string(tmp.path().join(CRL_FILE)).unwrap();
    assert_ne!(crl, empty_crl);
    assert_eq!(tls::crls_from_pem(&crl).unwrap().len(), 1);

    // Serials may be given with colons and in upper case, as other tools print them.
    let with_colons = b
        .record
        .serial
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(ca.revoke(&with_colons).unwrap().len(), 1);
    assert!(matches!(
        ca.revoke("ci-a"),
        Err(PkiError::AlreadyRevoked(_))
    ));
    assert!(matches!(ca.revoke("nobody"), Err(PkiError::NotFound(_))));
    let statuses: Vec<_> = ca
        .issued()
        .unwrap()
        .iter()
        .map(|c| c.status(OffsetDateTime::now_utc()))
        .collect();
    assert_eq!(
        statuses,
        [CertStatus::Valid, CertStatus::Revoked, CertStatus::Revoked]
    );
}

#[test]
fn hex_round_trip() {
    let (_, hex) = random_serial();
    assert_eq!(hex.len(), 32);
    assert_eq!(hex_decode(&hex).unwrap().len(), 16);
    assert!(hex_decode("0g").is_none());
    assert!(hex_decode("abc").is_none());
}

#[test]
fn client_certificates_carry_their_role_and_agents_none() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path()).unwrap();
    let der = |pem: &str| tls::certs_from_pem(pem).unwrap().remove(0);
    let controller = std::fs::read_to_string(tmp.path().join(CONTROLLER_CERT_FILE)).unwrap();
    assert_eq!(tls::role_of(&der(&controller)), Ok(Some(Role::Admin)));
    for role in Role::ALL {
        let issued = ca
            .issue_client_cert(&format!("ci-{role}"), role, 1)
            .unwrap();
        assert_eq!(tls::role_of(&der(&issued.cert_pem)), Ok(Some(role)));
        assert_eq!(issued.record.role, Some(role));
    }
    let (agent, _) = issue_agent_cert(&ca, &["web1.test".to_string()], 1).unwrap();
    assert_eq!(tls::role_of(&der(&agent)), Ok(None));
    let roles: Vec<_> = ca.issued().unwrap().iter().map(|c| c.role).collect();
    assert_eq!(
        roles,
        [
            Some(Role::Admin),
            Some(Role::Read),
            Some(Role::Deploy),
            Some(Role::Admin),
            None
        ]
    );
}
