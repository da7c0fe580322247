//! `pmfleet ca init | issue | list | revoke` through the real binary, with `$PMFLEET_CA_DIR`
//! pointing at a temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pmfleet_testkit::project::pmfleet_with_ca as pmfleet;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn list_json(ca_dir: &Path) -> Vec<serde_json::Value> {
    let out = pmfleet(ca_dir, &["ca", "list", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("list --json is a JSON array")
}

#[test]
fn init_issue_list_revoke() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let ca = tmp.path().join("ca");

    // Nothing to list before init, and the message says what to do.
    let out = pmfleet(&ca, &["ca", "list"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("pmfleet ca init"), "{}", out.stderr);

    let out = pmfleet(&ca, &["ca", "init"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("fingerprint (SHA-256)"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("PRIVATE KEY"));
    assert_eq!(mode(&ca), 0o700);
    assert_eq!(mode(&ca.join("ca.key")), 0o600);
    assert_eq!(mode(&ca.join("ca.pem")), 0o644);
    assert_eq!(mode(&ca.join("controller.key")), 0o600);
    assert_eq!(mode(&ca.join("controller.pem")), 0o600);
    assert_eq!(mode(&ca.join("crl.pem")), 0o644);
    let ca_key = std::fs::read(ca.join("ca.key")).expect("ca.key");

    // A second init refuses, says how to rotate, and leaves the CA alone.
    let out = pmfleet(&ca, &["ca", "init"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert!(out.stderr.contains("rotate"), "{}", out.stderr);
    assert_eq!(std::fs::read(ca.join("ca.key")).expect("ca.key"), ca_key);

    let out = pmfleet(&ca, &["ca", "issue", "ci-runner", "--days", "30"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for var in ["PMFLEET_TLS_CERT", "PMFLEET_TLS_KEY", "PMFLEET_TLS_CA"] {
        assert!(out.stdout.contains(var), "{}", out.stdout);
    }
    assert!(
        !out.stdout.contains("PRIVATE KEY"),
        "the key is never printed"
    );
    let client = ca.join("clients").join("ci-runner");
    assert_eq!(mode(&client.join("key.pem")), 0o600);
    assert_eq!(
        std::fs::read(client.join("ca.pem")).expect("ca copy"),
        std::fs::read(ca.join("ca.pem")).expect("ca.pem")
    );

    // Issuing again over the same files refuses; --out elsewhere works.
    let out = pmfleet(&ca, &["ca", "issue", "ci-runner"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    let elsewhere = tmp.path().join("runner2");
    let out = pmfleet(
        &ca,
        &[
            "ca",
            "issue",
            "ci-runner-2",
            "--out",
            elsewhere.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(elsewhere.join("cert.pem").exists());

    // Bad names and validities are usage errors.
    assert_eq!(pmfleet(&ca, &["ca", "issue", "a;b"]).code, 2);
    assert_eq!(pmfleet(&ca, &["ca", "issue", "x", "--days", "0"]).code, 2);

    let out = pmfleet(&ca, &["ca", "list"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let runner_line = out
        .stdout
        .lines()
        .find(|l| l.contains(" ci-runner "))
        .unwrap_or_else(|| panic!("ci-runner listed:\n{}", out.stdout));
    assert!(runner_line.contains("client"), "{runner_line}");
    assert!(runner_line.ends_with("valid"), "{runner_line}");
    assert!(out.stdout.contains("controller"), "{}", out.stdout);

    let listed = list_json(&ca);
    assert_eq!(listed.len(), 3, "{listed:?}");
    let runner = listed
        .iter()
        .find(|c| c["name"] == "ci-runner")
        .expect("ci-runner in JSON");
    assert_eq!(runner["kind"], "client");
    assert_eq!(runner["revoked"], false);
    let serial = runner["serial"].as_str().expect("serial").to_string();

    // Revoke by name: the CRL changes and the listing says revoked.
    let crl_before = std::fs::read_to_string(ca.join("crl.pem")).expect("crl");
    let out = pmfleet(&ca, &["ca", "revoke", "ci-runner"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&serial), "{}", out.stdout);
    let crl_after = std::fs::read_to_string(ca.join("crl.pem")).expect("crl");
    assert_ne!(crl_before, crl_after);
    assert!(crl_after.starts_with("-----BEGIN X509 CRL-----"));
    let listed = list_json(&ca);
    let runner = listed
        .iter()
        .find(|c| c["serial"] == serial.as_str())
        .expect("still listed");
    assert_eq!(runner["revoked"], true);
    assert_eq!(runner["status"], "revoked");
    assert_eq!(
        listed.iter().filter(|c| c["revoked"] == true).count(),
        1,
        "only that one"
    );

    // By serial works too; repeating or naming nothing is a usage error.
    let other = listed
        .iter()
        .find(|c| c["name"] == "ci-runner-2")
        .and_then(|c| c["serial"].as_str())
        .expect("second runner")
        .to_string();
    assert_eq!(pmfleet(&ca, &["ca", "revoke", &other]).code, 0);
    let out = pmfleet(&ca, &["ca", "revoke", "ci-runner"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("already revoked"), "{}", out.stderr);
    assert_eq!(pmfleet(&ca, &["ca", "revoke", "nobody"]).code, 2);
}

#[test]
fn dir_flag_and_an_exposed_key() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let ca = tmp.path().join("flag-ca");
    let unused = tmp.path().join("env-ca");
    let dir = ca.to_str().expect("utf-8");
    let out = pmfleet(&unused, &["ca", "init", "--dir", dir]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(ca.join("ca.key").exists());
    assert!(!unused.exists());

    std::fs::set_permissions(ca.join("ca.key"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let out = pmfleet(&unused, &["ca", "list", "--dir", dir]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
}

#[test]
fn issue_writes_the_role_asked_for_and_refuses_others() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let ca = tmp.path().join("ca");
    assert_eq!(pmfleet(&ca, &["ca", "init"]).code, 0);
    let out = pmfleet(&ca, &["ca", "issue", "grafana", "--role", "read"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("with role `read`"), "{}", out.stdout);
    let out = pmfleet(&ca, &["ca", "issue", "ci-runner"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("with role `deploy`"), "{}", out.stdout);
    let out = pmfleet(&ca, &["ca", "issue", "root", "--role", "root"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("admin, deploy or read"),
        "{}",
        out.stderr
    );

    let roles: Vec<(String, String)> = list_json(&ca)
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["role"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(roles.len(), 3, "{roles:?}");
    assert_eq!(roles[0].1, "admin", "the controller: {roles:?}");
    assert_eq!(roles[1], ("grafana".to_string(), "read".to_string()));
    assert_eq!(roles[2], ("ci-runner".to_string(), "deploy".to_string()));
    let table = pmfleet(&ca, &["ca", "list"]);
    assert!(table.stdout.contains("ROLE"), "{}", table.stdout);
    // The certificate's subject says it, for openssl and anyone else.
    let cert = std::fs::read_to_string(ca.join("clients/grafana/cert.pem")).expect("cert");
    let der = pmfleet_shared::tls::certs_from_pem(&cert)
        .expect("pem")
        .remove(0);
    assert_eq!(
        pmfleet_shared::tls::role_of(&der),
        Ok(Some(pmfleet_shared::tls::Role::Read))
    );
}
