//! A fleet CA made before certificate roles: its controller certificate carries no role, so an
//! upgraded agent counts it as `read` and refuses deploys from that machine — saying to run
//! `pmfleet ca init` again, which re-issues that one certificate with the `admin` role (once),
//! touching neither the CA key nor any other certificate. The real `pmfleet` binary, a real
//! agent daemon, real mutual TLS.

mod agent_endpoint;

use std::path::Path;

use agent_endpoint::{Agent, Fleet, ask, runtime};
use pmfleet::pki;
use pmfleet_shared::protocol::{ApplyRelease, ErrorKind, Request, Response};
use pmfleet_shared::tls::{self, Role};
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};

use pmfleet_testkit::project::pmfleet_with_ca as pmfleet;

/// The controller certificate as a pmfleet from before roles wrote it: signed by the fleet
/// CA, `CN=controller:…`, no role in its subject.
fn make_controller_roleless(dir: &Path) {
    let ca_key = std::fs::read_to_string(dir.join(pki::CA_KEY_FILE)).expect("ca.key");
    let ca_pem = std::fs::read_to_string(dir.join(pki::CA_CERT_FILE)).expect("ca.pem");
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key).expect("ca key"))
            .expect("issuer");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "pmfleet");
    dn.push(DnType::CommonName, "controller:ops@old-laptop");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    std::fs::write(dir.join(pki::CONTROLLER_CERT_FILE), cert.pem()).expect("controller.pem");
    std::fs::write(dir.join(pki::CONTROLLER_KEY_FILE), key.serialize_pem())
        .expect("controller.key");
}

fn controller_role(dir: &Path) -> Option<Role> {
    let pem = std::fs::read_to_string(dir.join(pki::CONTROLLER_CERT_FILE)).expect("pem");
    let der = tls::certs_from_pem(&pem).expect("pem").remove(0);
    tls::role_of(&der).expect("a readable role")
}

#[test]
fn ca_init_gives_a_controller_certificate_from_before_roles_the_admin_role() {
    let fleet = Fleet::new();
    let dir = fleet.dir.path();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    let root = agent.prepare_release("1", &[], &[]);
    let apply = Request::ApplyRelease(Box::new(ApplyRelease {
        root,
        release: "1".into(),
        timeout_ms: 10_000,
    }));

    // A CI runner's certificate, issued before the upgrade: it must stay as it is.
    let out = pmfleet(dir, &["ca", "issue", "ci-runner"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    make_controller_roleless(dir);
    let untouched = [
        pki::CA_KEY_FILE,
        pki::CA_CERT_FILE,
        pki::CRL_FILE,
        "clients/ci-runner/cert.pem",
        "clients/ci-runner/key.pem",
    ];
    let before: Vec<Vec<u8>> = untouched
        .iter()
        .map(|f| std::fs::read(dir.join(f)).expect(f))
        .collect();
    let index = std::fs::read_to_string(dir.join(pki::INDEX_FILE)).expect("index");

    // The agent counts it as `read`, and says what to do.
    let answer = ask(&rt, agent.addr, fleet.controller(), &apply).expect("an answer");
    let Response::Error(refused) = &answer else {
        panic!("a deploy with a roleless certificate was not refused: {answer:?}");
    };
    assert_eq!(refused.kind, ErrorKind::Forbidden);
    for said in [
        "carries no role",
        "counts as `read`",
        "run `pmfleet ca init` again",
    ] {
        assert!(
            refused.message.contains(said),
            "{said}: {}",
            refused.message
        );
    }

    // `ca init` on the existing CA re-issues that one certificate, in one line.
    let out = pmfleet(dir, &["ca", "init"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("re-issued it with the `admin` role"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("PRIVATE KEY"));
    assert_eq!(controller_role(dir), Some(Role::Admin));
    for (file, bytes) in untouched.iter().zip(&before) {
        assert_eq!(&std::fs::read(dir.join(file)).expect(file), bytes, "{file}");
    }
    let index_after = std::fs::read_to_string(dir.join(pki::INDEX_FILE)).expect("index");
    assert!(index_after.starts_with(&index), "the index only grows");
    assert_eq!(index_after.lines().count(), index.lines().count() + 1);
    let mode = |f: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.join(f))
            .expect(f)
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(pki::CONTROLLER_KEY_FILE), 0o600);
    assert_eq!(mode(pki::CONTROLLER_CERT_FILE), 0o600);

    // The agent now takes the controller's deploys.
    let answer = ask(&rt, agent.addr, fleet.controller(), &apply).expect("an answer");
    assert!(
        !matches!(&answer, Response::Error(e) if e.kind == ErrorKind::Forbidden),
        "{answer:?}"
    );

    // Once is enough: again, nothing changes and the CA says it exists.
    let pem = std::fs::read(dir.join(pki::CONTROLLER_CERT_FILE)).expect("pem");
    let out = pmfleet(dir, &["ca", "init"]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(dir.join(pki::CONTROLLER_CERT_FILE)).expect("pem"),
        pem
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(pki::INDEX_FILE)).expect("index"),
        index_after
    );
}
