//! The fleet CA's promises end to end, on real sshd hosts with real agents: a revoked client
//! certificate is refused by every agent after `setup` or `ca push-crl`; a revoked agent is
//! not talked to until setup gives it a new certificate; an agent certificate near expiry is
//! warned about by `status` and renewed by `setup`; and SSH options that would accept any host
//! key are refused before anything runs on a host.

use std::ffi::OsStr;
use std::path::PathBuf;

use pmfleet::pki::{self, Ca};
use pmfleet_testkit::project::{Project, Run, ok};
use pmfleet_testkit::sshd::Fleet;
use pmfleet_testkit::{free_port, require_sshd};
use serde_json::{Value, json};

/// One host with a certified agent (`ca init` + `setup` done).
struct SetUp {
    fleet: Fleet,
    project: Project,
}

impl SetUp {
    fn new(extra: Value) -> SetUp {
        let fleet = Fleet::start(1);
        let project = Project::new(fleet.home.path());
        let host = &fleet.hosts[0];
        let mut env = json!({
            "host": [{"host": host.address(), "port": host.port(), "user": "root"}],
            "ref": "main", "repo": "/nonexistent", "path": "/srv/app", "fetch": "push",
            "agent": {"port": free_port()},
        });
        if let (Some(env), Some(extra)) = (env.as_object_mut(), extra.as_object()) {
            env.extend(extra.clone());
        }
        project.write_ecosystem(&json!({"deploy": {"production": env}}));
        ok(&project.pmfleet(&["ca", "init"]));
        SetUp { fleet, project }
    }

    fn ca_dir(&self) -> PathBuf {
        self.fleet.home.path().join(".config/pmfleet/ca")
    }

    fn ca(&self) -> Ca {
        Ca::load(&self.ca_dir()).expect("the fleet CA")
    }

    fn address(&self) -> &str {
        self.fleet.hosts[0].address()
    }

    /// `pmfleet status` as the holder of the client certificate `ca issue NAME` wrote.
    fn status_as(&self, name: &str) -> Run {
        let dir = self.ca_dir().join(pki::CLIENTS_DIR).join(name);
        let (cert, key, ca) = (
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("ca.pem"),
        );
        self.project.pmfleet_with(
            &["status"],
            &[
                ("PMFLEET_TLS_CERT_FILE", cert.as_os_str()),
                ("PMFLEET_TLS_KEY_FILE", key.as_os_str()),
                ("PMFLEET_TLS_CA_FILE", ca.as_os_str()),
            ],
        )
    }

    /// Runs `command` on the host, through `deploy … exec`.
    fn on_host(&self, command: &str) -> Run {
        let run = self
            .project
            .pmfleet(&["deploy", "production", "exec", command]);
        ok(&run);
        run
    }
}

#[test]
fn a_revoked_client_certificate_is_refused_after_setup_or_push_crl() {
    require_sshd!();
    let s = SetUp::new(json!({}));
    ok(&s.project.pmfleet(&["deploy", "production", "setup"]));
    ok(&s.project.pmfleet(&["ca", "issue", "ci-runner"]));
    ok(&s.status_as("ci-runner"));

    // Revoked, then setup: the agent gets the new CRL and refuses the certificate at once,
    // though its own identity did not change.
    ok(&s.project.pmfleet(&["ca", "revoke", "ci-runner"]));
    let setup = s.project.pmfleet(&["deploy", "production", "setup"]);
    ok(&setup);
    let refused = s.status_as("ci-runner");
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(refused.all().contains("Revoked"), "{}", refused.all());
    assert!(
        setup.stdout.contains("revocation list reloaded"),
        "{}",
        setup.stdout
    );
    // The controller is still served.
    ok(&s.project.pmfleet(&["status"]));

    // The dedicated command does the same, touching nothing else.
    ok(&s
        .project
        .pmfleet(&["ca", "issue", "ci-2", "--role", "read"]));
    ok(&s.status_as("ci-2"));
    ok(&s.project.pmfleet(&["ca", "revoke", "ci-2"]));
    let pushed = s.project.pmfleet(&["ca", "push-crl", "production"]);
    ok(&pushed);
    assert!(
        pushed.stdout.contains("applied by the running agent"),
        "{}",
        pushed.stdout
    );
    let refused = s.status_as("ci-2");
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(refused.all().contains("Revoked"), "{}", refused.all());
    ok(&s.project.pmfleet(&["status"]));
    // Nothing left to bring: setup leaves the agent alone.
    let again = s.project.pmfleet(&["deploy", "production", "setup"]);
    ok(&again);
    assert!(again.stdout.contains("already running"), "{}", again.stdout);
}

#[test]
fn a_revoked_agent_is_not_talked_to_until_setup_certifies_it_again() {
    require_sshd!();
    let s = SetUp::new(json!({}));
    ok(&s.project.pmfleet(&["deploy", "production", "setup"]));
    ok(&s.project.pmfleet(&["status"]));

    // The host's agent key leaked: its certificate (named after the host) is revoked.
    ok(&s.project.pmfleet(&["ca", "revoke", s.address()]));
    let status = s.project.pmfleet(&["status"]);
    assert_ne!(status.code, 0, "{}", status.all());
    assert!(status.all().contains("Revoked"), "{}", status.all());

    // setup makes the host a new key and certificate; the agent is talked to again.
    let setup = s.project.pmfleet(&["deploy", "production", "setup"]);
    ok(&setup);
    assert!(setup.stdout.contains("new certificate"), "{}", setup.stdout);
    ok(&s.project.pmfleet(&["status"]));
}

#[test]
fn an_agent_certificate_near_expiry_is_warned_about_and_renewed_by_setup() {
    require_sshd!();
    let s = SetUp::new(json!({}));
    ok(&s.project.pmfleet(&["deploy", "production", "setup"]));
    let status = s.project.pmfleet(&["status"]);
    ok(&status);
    assert!(!status.stderr.contains("expires in"), "{}", status.stderr);

    // A certificate for the same names that expires in 5 days (made here, for the test).
    let (cert, key) = pki::issue_agent_cert(&s.ca(), &[s.address().to_string()], 5)
        .expect("a short-lived agent certificate");
    s.on_host(&format!(
        "printf '%s\\n' '{}' > ~/.pmfleet-agent/tls/agent.pem && printf '%s\\n' '{}' > ~/.pmfleet-agent/tls/agent.key && ~/.pmfleet-agent/bin/pmfleet-agent tls reload",
        cert.trim(),
        key.trim()
    ));
    let status = s.project.pmfleet(&["status"]);
    ok(&status);
    assert!(
        status.stderr.contains("certificate expires in 4 day(s)")
            || status.stderr.contains("certificate expires in 5 day(s)"),
        "{}",
        status.stderr
    );
    assert!(
        status
            .stderr
            .contains("`pmfleet deploy production setup` renews it"),
        "{}",
        status.stderr
    );

    // setup renews it ahead of expiry, without touching the apps.
    let setup = s.project.pmfleet(&["deploy", "production", "setup"]);
    ok(&setup);
    assert!(setup.stdout.contains("new certificate"), "{}", setup.stdout);
    let status = s.project.pmfleet(&["status"]);
    ok(&status);
    assert!(!status.stderr.contains("expires in"), "{}", status.stderr);
    let json = s.project.pmfleet(&["status", "--json"]);
    ok(&json);
    let hosts: Value = serde_json::from_str(&json.stdout).expect("status --json");
    let days = hosts[0]["cert_expires_in_days"].as_i64().expect("days");
    assert!(days > 300, "{days}");
}

#[test]
fn ssh_options_that_would_accept_any_host_key_are_refused() {
    require_sshd!();
    let s = SetUp::new(json!({
        "ssh_options": ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"],
    }));
    let run = s.project.pmfleet(&["deploy", "production", "setup"]);
    assert_ne!(run.code, 0, "{}", run.all());
    let all = run.all();
    assert!(all.contains("any host key would be accepted"), "{all}");
    assert!(all.contains("--accept-new-host-key"), "{all}");
    // Nothing ran on the host.
    assert!(!s.fleet.hosts[0].root().join("app").exists());

    // The same with the flag on the command line.
    let s = SetUp::new(json!({"ssh_options": ["UserKnownHostsFile=/dev/null"]}));
    let run = s.project.pmfleet_with(
        &["deploy", "production", "setup", "--accept-new-host-key"],
        &[("PMFLEET_LOG", OsStr::new("warn"))],
    );
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all().contains("any host key would be accepted"),
        "{}",
        run.all()
    );
    assert!(!s.fleet.hosts[0].root().join("app").exists());
}

/// A Node app that writes its environment's deploy variables to `shared/seen-<release>`.
const ENV_APP_JS: &str = r#"const fs = require("fs");
const seen = ["GREETING", "PMFLEET_ENV", "PMFLEET_RELEASE", "PMFLEET_SHA"]
  .map((k) => `${k}=${process.env[k] || ""}`).join("\n");
fs.writeFileSync(`${__dirname}/../../shared/seen-${process.env.PMFLEET_RELEASE}`, seen + "\n");
setInterval(() => {}, 1000);
"#;

#[test]
fn a_deploy_writes_the_release_environment_on_the_host_and_the_agent_runs_with_it() {
    require_sshd!();
    use std::os::unix::fs::PermissionsExt;
    let repo = pmfleet_testkit::git_repo::GitRepo::new();
    repo.write("app.js", ENV_APP_JS);
    repo.write(
        "ecosystem.json",
        &json!({"apps": [{"name": "envy", "script": "app.js"}]}).to_string(),
    );
    repo.commit_file("VERSION", "1\n", "one");
    let s = SetUp::new(json!({"repo": repo.url(), "env": {"GREETING": "hello"}}));
    ok(&s.project.pmfleet(&["deploy", "production", "setup"]));
    let app = s.fleet.hosts[0].root().join("app");
    // setup registered the deploy root with the agent.
    let roots = s.on_host("cat ~/.pmfleet-agent/roots");
    assert!(roots.stdout.contains("/srv/app"), "{}", roots.stdout);
    ok(&s.project.pmfleet(&["deploy", "production"]));
    let releases = |dir: &str| -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(app.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        ids.sort();
        ids
    };
    let first = releases("releases").pop().expect("a release");
    let marker = app.join(".pmfleet/prepared").join(&first);
    let mode = std::fs::metadata(&marker).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the marker holds the environment: owner only");
    let prepared: Value =
        serde_json::from_str(&std::fs::read_to_string(&marker).unwrap()).expect("JSON");
    assert_eq!(prepared["env_name"], "production");
    assert_eq!(prepared["env"]["GREETING"], "hello");
    assert_eq!(prepared["env"]["PMFLEET_RELEASE"], first.as_str());
    let seen = |id: &str| std::fs::read_to_string(app.join("shared").join(format!("seen-{id}")));
    let wait_seen = |id: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while seen(id).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the app of {id} never ran"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        seen(id).unwrap()
    };
    let env = wait_seen(&first);
    assert!(env.contains("GREETING=hello"), "{env}");
    assert!(env.contains("PMFLEET_ENV=production"), "{env}");
    assert!(env.contains(&format!("PMFLEET_RELEASE={first}")), "{env}");

    // A release prepared by an older pmfleet has an empty marker: a revert to it gives the
    // marker the environment over SSH first, naming that release.
    repo.commit_file("VERSION", "2\n", "two");
    ok(&s.project.pmfleet(&["deploy", "production"]));
    std::fs::write(&marker, "").unwrap();
    std::fs::remove_file(app.join("shared").join(format!("seen-{first}"))).unwrap();
    ok(&s.project.pmfleet(&["deploy", "production", "revert", "1"]));
    let prepared: Value =
        serde_json::from_str(&std::fs::read_to_string(&marker).unwrap()).expect("filled");
    assert_eq!(prepared["env"]["PMFLEET_RELEASE"], first.as_str());
    let env = wait_seen(&first);
    assert!(env.contains("GREETING=hello"), "{env}");
    assert!(env.contains(&format!("PMFLEET_RELEASE={first}")), "{env}");
}

#[test]
fn setup_puts_the_revocation_list_in_force_even_when_the_file_is_already_there() {
    require_sshd!();
    let s = SetUp::new(json!({}));
    ok(&s.project.pmfleet(&["deploy", "production", "setup"]));
    ok(&s.project.pmfleet(&["ca", "issue", "ci-3"]));
    ok(&s.status_as("ci-3"));
    ok(&s.project.pmfleet(&["ca", "revoke", "ci-3"]));
    // The new crl.pem reached the host, but the running agent never read it (a reload that
    // failed, a copy by hand): it still accepts the certificate.
    let crl = std::fs::read_to_string(s.ca_dir().join(pki::CRL_FILE)).expect("crl.pem");
    s.on_host(&format!(
        "printf '%s\\n' '{}' > ~/.pmfleet-agent/tls/crl.pem",
        crl.trim()
    ));
    ok(&s.status_as("ci-3"));
    ok(&s.project.pmfleet(&["deploy", "production", "setup"]));
    let refused = s.status_as("ci-3");
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(refused.all().contains("Revoked"), "{}", refused.all());
}
