//! The real agent endpoint for the TLS and adversarial suites: a `pmfleet-agent` daemon with
//! a home of its own whose identity is made the way setup makes it (key and CSR by
//! `pmfleet-agent tls request`, signed by a fleet CA made with `pmfleet::pki` at test time),
//! and clients holding every kind of certificate — the controller's (`admin`), `ca issue`d
//! ones of each role, one without a role, expired, revoked, from another CA, none — that
//! talk raw frames to it. Dropping an [`Agent`] ends its daemon (`pmfleet-agent kill`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pmfleet::pki::{self, Ca, ClientIdentity};
use pmfleet_shared::protocol::{self, Request, Response};
use pmfleet_shared::tls::{self, Role};
use pmfleet_testkit::AgentHome;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls::{ClientConfig, RootCertStore};
use tempfile::TempDir;

/// The names in every test agent's certificate.
pub const AGENT_SANS: [&str; 2] = ["127.0.0.1", "agent.test"];

/// A fleet CA in a temporary directory, made by `pmfleet::pki` as `pmfleet ca init` makes it.
pub struct Fleet {
    pub dir: TempDir,
    pub ca: Ca,
}

impl Fleet {
    pub fn new() -> Fleet {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = Ca::init(dir.path()).expect("ca init");
        Fleet { dir, ca }
    }

    /// The controller's own identity (role `admin`), as `pmfleet status` loads it.
    pub fn controller(&self) -> Arc<ClientConfig> {
        ClientIdentity::from_dir(self.dir.path())
            .expect("controller identity")
            .client_config()
            .expect("client config")
    }

    /// A client certificate from `pmfleet ca issue NAME --role ROLE`.
    pub fn issue(&self, name: &str, role: Role) -> Arc<ClientConfig> {
        let issued = self.ca.issue_client_cert(name, role, 30).expect("issue");
        self.client(&issued.cert_pem, &issued.key_pem)
    }

    /// A client configuration presenting `cert`/`key`, trusting this fleet's CA.
    pub fn client(&self, cert: &str, key: &str) -> Arc<ClientConfig> {
        tls::client_config(self.ca.cert_pem(), cert, key).expect("client config")
    }

    /// A client certificate signed by the fleet CA, with a subject and validity of the
    /// test's choosing (`units`: the subject's organizational units).
    pub fn hand_made(
        &self,
        cn: &str,
        units: &[&str],
        validity: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
    ) -> Arc<ClientConfig> {
        let ca_key =
            std::fs::read_to_string(self.dir.path().join(pki::CA_KEY_FILE)).expect("ca key");
        let issuer = rcgen::Issuer::from_ca_cert_pem(
            self.ca.cert_pem(),
            KeyPair::from_pem(&ca_key).expect("ca key"),
        )
        .expect("issuer");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "pmfleet");
        for unit in units {
            dn.push(DnType::OrganizationalUnitName, *unit);
        }
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        let (from, until) = validity.unwrap_or((
            now - time::Duration::hours(1),
            now + time::Duration::days(1),
        ));
        params.not_before = from;
        params.not_after = until;
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("sign");
        self.client(&cert.pem(), &key.serialize_pem())
    }

    /// A client certificate of the fleet CA that expired yesterday.
    pub fn expired(&self) -> Arc<ClientConfig> {
        let now = time::OffsetDateTime::now_utc();
        self.hand_made(
            "client:old-runner",
            &[&Role::Admin.subject_unit()],
            Some((
                now - time::Duration::days(30),
                now - time::Duration::days(1),
            )),
        )
    }

    /// A client certificate issued before roles existed: no role in its subject.
    pub fn without_role(&self) -> Arc<ClientConfig> {
        self.hand_made("client:legacy", &[], None)
    }

    pub fn crl(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(pki::CRL_FILE)).expect("crl.pem")
    }
}

/// A client that presents no certificate, trusting `ca_pem`.
pub fn no_certificate(ca_pem: &str) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots(ca_pem))
        .with_no_client_auth();
    config.alpn_protocols = vec![tls::ALPN.to_vec()];
    Arc::new(config)
}

pub fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in tls::certs_from_pem(ca_pem).expect("ca pem") {
        roots.add(cert).expect("root");
    }
    Arc::new(roots)
}

pub fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A real `pmfleet-agent` daemon serving mutual TLS on 127.0.0.1: an [`AgentHome`] (its
/// verbs, log and scratch directory; dropping it ends the daemon) and the endpoint's address.
pub struct Agent {
    daemon: AgentHome,
    pub addr: SocketAddr,
}

impl std::ops::Deref for Agent {
    type Target = AgentHome;

    fn deref(&self) -> &AgentHome {
        &self.daemon
    }
}

impl Agent {
    /// A daemon whose identity `fleet` signed for [`AGENT_SANS`], its CRL installed.
    pub fn start(fleet: &Fleet) -> Agent {
        let agent = Agent::certified(fleet, &AGENT_SANS);
        agent.install_crl(&fleet.crl());
        agent.serve();
        agent
    }

    /// A home with a key made by `tls request` and the certificate `fleet` signed for `sans`;
    /// the daemon is not started yet ([`Agent::serve`]).
    pub fn certified(fleet: &Fleet, sans: &[&str]) -> Agent {
        let agent = Agent::bare();
        let mut args = vec!["tls", "request"];
        for san in sans {
            args.extend(["--san", san]);
        }
        let csr = agent.ok(&args);
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let cert = pki::sign_agent_csr(&fleet.ca, &csr, &sans, 30).expect("sign the CSR");
        agent.install(&cert, fleet.ca.cert_pem());
        agent
    }

    /// A home with nothing in it yet, and a free port for the endpoint.
    pub fn bare() -> Agent {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        Agent {
            daemon: AgentHome::with_binary(pmfleet_testkit::binaries::agent_bin()),
            addr: format!("127.0.0.1:{port}").parse().expect("addr"),
        }
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.home.path().join("tls")
    }

    /// Write `agent.pem`, `ca.pem` and `listen` (the key is already there).
    pub fn install(&self, cert: &str, ca: &str) {
        let dir = self.tls_dir();
        std::fs::create_dir_all(&dir).expect("tls dir");
        std::fs::write(dir.join("agent.pem"), cert).expect("agent.pem");
        std::fs::write(dir.join("ca.pem"), ca).expect("ca.pem");
        std::fs::write(dir.join("listen"), format!("{}\n", self.addr)).expect("listen");
    }

    pub fn install_crl(&self, crl: &str) {
        std::fs::write(self.tls_dir().join("crl.pem"), crl).expect("crl.pem");
    }

    /// Start the daemon and wait until its endpoint accepts connections.
    pub fn serve(&self) {
        let out = self.ok(&["ping"]);
        assert!(out.contains("running as pid"), "{out}");
        let addr = self.addr;
        wait_until(Duration::from_secs(10), "the TLS endpoint", || {
            std::net::TcpStream::connect(addr).is_ok()
        });
        let log = self.log();
        assert!(log.contains("serving mutual TLS on 127.0.0.1"), "{log}");
    }

    pub fn log(&self) -> String {
        self.daemon_log()
    }

    pub fn pid(&self) -> u32 {
        self.daemon_pid()
    }

    /// The daemon's resident memory, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// `list --json` through the local socket.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let out = self.ok(&["list", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out)
            .expect("list --json")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Start `script` (a shell snippet) as app `name` through the local socket.
    pub fn start_shell_app(&self, name: &str, script: &str) {
        let path = self.work.path().join(format!("{name}.sh"));
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write the app");
        let path = path.display().to_string();
        self.ok(&["start", &path, "--name", name]);
        wait_until(Duration::from_secs(20), "the app online", || {
            self.list()
                .iter()
                .any(|p| p["name"] == name && p["status"] == "online")
        });
    }

    /// What setup and a deploy leave on a host: `<work>/srv/app` registered as a deploy root in
    /// `<home>/roots`, and `<root>/releases/<id>` holding `files` (name, contents) with its
    /// marker holding `env`. Returns the root.
    pub fn prepare_release(
        &self,
        id: &str,
        files: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> PathBuf {
        let root = self.work.path().join("srv/app");
        let dir = root.join("releases").join(id);
        std::fs::create_dir_all(&dir).expect("release dir");
        std::fs::create_dir_all(root.join(".pmfleet/prepared")).expect("marker dir");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("release file");
        }
        let root = std::fs::canonicalize(&root).expect("root");
        std::fs::write(
            self.home.path().join("roots"),
            format!("{}\n", root.display()),
        )
        .expect("roots");
        let marker = protocol::PreparedRelease {
            env_name: "production".into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        std::fs::write(
            root.join(".pmfleet/prepared").join(id),
            serde_json::to_string(&marker).expect("json"),
        )
        .expect("marker");
        root
    }

    /// Stop the daemon (`SIGTERM`) and start it again: what was persisted comes back.
    pub fn restart(&self) {
        let pid = self.pid();
        // SAFETY: kill has no memory-safety preconditions; the pid is this test's daemon.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        wait_until(Duration::from_secs(20), "the daemon to exit", || {
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        });
        self.serve();
    }
}

// Each suite that includes this module uses some of these.
#[allow(unused_imports)]
pub use pmfleet_testkit::tls::{Conn, connect, connect_as, request, runtime};
pub use pmfleet_testkit::wait_until;

/// `ask` on a runtime of the caller's: the answer, or why there is none.
pub fn ask(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    req: &Request,
) -> Result<Response, String> {
    rt.block_on(request(addr, config, req, Duration::from_secs(60)))
}

/// The controller still gets its status: the endpoint kept serving.
pub fn still_serves(rt: &tokio::runtime::Runtime, agent: &Agent, fleet: &Fleet) {
    match ask(rt, agent.addr, fleet.controller(), &Request::Status) {
        Ok(Response::Status(_)) => {}
        other => panic!("the controller is not served: {other:?}\n{}", agent.log()),
    }
}
