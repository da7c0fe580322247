//! Mutual TLS against the real agent endpoint, with real handshakes: a `pmfleet-agent` daemon
//! certified the way setup certifies it, and clients holding every kind of certificate
//! `pmfleet::pki` makes (or a hostile one would). Who gets in (a certificate of the fleet CA,
//! valid, not revoked, TLS 1.3 with the pmfleet ALPN), who the controller talks to (an agent
//! certificate of the fleet CA, for the host dialled, not revoked), and what each role may
//! ask — every request kind, for every role.
//!
//! Every refusal is followed by a request from the controller, to show the agent kept serving.

mod agent_endpoint;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_endpoint::{
    Agent, Fleet, ask, connect, connect_as, no_certificate, ring, roots, runtime, still_serves,
};
use pmfleet_shared::protocol::{
    ApplyDir, ApplyRelease, ErrorKind, PROTOCOL_VERSION, REDACTED, Request, Response, ScaleTo,
    ScriptStart, StartRequest, StartSource, Target,
};
use pmfleet_shared::tls::{self, Role};
use rustls::ClientConfig;

/// Expect `config`'s request to be refused, quickly, then the controller to be served.
fn refused(rt: &tokio::runtime::Runtime, agent: &Agent, fleet: &Fleet, config: Arc<ClientConfig>) {
    let started = Instant::now();
    let answer = ask(rt, agent.addr, config, &Request::Status);
    assert!(answer.is_err(), "got {answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused only after {:?}",
        started.elapsed()
    );
    still_serves(rt, agent, fleet);
}

#[test]
fn fleet_clients_get_answers_by_address_and_by_name() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    still_serves(&rt, &agent, &fleet);

    // By host name, several requests on one connection.
    rt.block_on(async {
        let mut c = connect_as(agent.addr, fleet.controller(), "agent.test")
            .await
            .expect("connect by name");
        for _ in 0..3 {
            let answer = c.request(&Request::Ping, Duration::from_secs(10)).await;
            assert!(matches!(answer, Ok(Response::Pong { .. })), "{answer:?}");
        }
    });

    // A CI runner's certificate from `ca issue` (the default role).
    let runner = fleet.issue("ci-runner", pmfleet::pki::DEFAULT_CLIENT_ROLE);
    let answer = ask(&rt, agent.addr, runner, &Request::Status);
    assert!(matches!(answer, Ok(Response::Status(_))), "{answer:?}");
}

#[test]
fn clients_without_a_valid_fleet_certificate_are_refused() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();

    // Under TLS 1.3 the client's handshake "succeeds"; the refusal arrives on the first read.
    refused(&rt, &agent, &fleet, no_certificate(fleet.ca.cert_pem()));
    let other = Fleet::new();
    let intruder = other
        .ca
        .issue_client_cert("intruder", Role::Admin, 1)
        .expect("issue");
    // Trusts our agent (it has our ca.pem) but its certificate is from its own CA.
    refused(
        &rt,
        &agent,
        &fleet,
        fleet.client(&intruder.cert_pem, &intruder.key_pem),
    );
    refused(&rt, &agent, &fleet, fleet.expired());
    let log = agent.log();
    for why in ["no certificates", "UnknownIssuer", "expired"] {
        assert!(log.contains(why), "{why} not logged:\n{log}");
    }
}

#[test]
fn a_revoked_client_certificate_is_refused_once_the_agent_has_the_crl() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    let stolen = fleet.issue("laptop", Role::Admin);
    let kept = fleet.issue("ci-runner", Role::Deploy);
    assert!(ask(&rt, agent.addr, stolen.clone(), &Request::Status).is_ok());

    assert_eq!(fleet.ca.revoke("laptop").expect("revoke").len(), 1);
    agent.install_crl(&fleet.crl());
    let out = agent.ok(&["tls", "reload"]);
    assert!(out.contains("with a CRL"), "{out}");

    refused(&rt, &agent, &fleet, stolen);
    assert!(agent.log().contains("Revoked"), "{}", agent.log());
    let answer = ask(&rt, agent.addr, kept, &Request::Status);
    assert!(matches!(answer, Ok(Response::Status(_))), "{answer:?}");
}

#[test]
fn plaintext_and_clients_without_the_pmfleet_alpn_or_tls13_are_refused() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();

    // Plaintext: at most a TLS alert comes back, never a frame or HTTP.
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(agent.addr).await.unwrap();
        let mut request = pmfleet_shared::protocol::encode(&Request::Ping).unwrap();
        request.extend_from_slice(b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n");
        tcp.write_all(&request).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
            .await
            .expect("the agent closes the connection");
        assert!(pmfleet_shared::protocol::decode::<Response>(&answer).is_err());
        assert!(!String::from_utf8_lossy(&answer).contains("HTTP"));
    });
    still_serves(&rt, &agent, &fleet);

    let identity = pmfleet::pki::ClientIdentity::from_dir(fleet.dir.path()).unwrap();
    let cert = tls::certs_from_pem(&identity.cert_pem).unwrap();
    let key = || tls::key_from_pem(&identity.key_pem).unwrap();
    let no_alpn = ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots(fleet.ca.cert_pem()))
        .with_client_auth_cert(cert.clone(), key())
        .unwrap();
    refused(&rt, &agent, &fleet, Arc::new(no_alpn));
    assert!(agent.log().contains("ALPN"), "{}", agent.log());

    let mut tls12 = ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots(fleet.ca.cert_pem()))
        .with_client_auth_cert(cert, key())
        .unwrap();
    tls12.alpn_protocols = vec![tls::ALPN.to_vec()];
    refused(&rt, &agent, &fleet, Arc::new(tls12));
}

#[test]
fn the_controller_refuses_an_agent_certificate_for_another_host() {
    let fleet = Fleet::new();
    // An agent certificate for web2, served where the controller expects 127.0.0.1 / web1.
    let agent = Agent::certified(&fleet, &["web2.example"]);
    agent.serve();
    let rt = runtime();
    for name in ["127.0.0.1", "web1.example"] {
        let err = rt
            .block_on(connect_as(agent.addr, fleet.controller(), name))
            .err()
            .expect("refused");
        assert!(err.contains("not valid for name"), "{err}");
    }
    // The right name works, so it is the name that was refused.
    rt.block_on(connect_as(agent.addr, fleet.controller(), "web2.example"))
        .expect("connect as web2");
}

#[test]
fn the_controller_refuses_an_agent_certificate_from_another_ca() {
    let fleet = Fleet::new();
    let other = Fleet::new();
    // An impostor with a certificate for the right address, signed by another CA.
    let impostor = Agent::start(&other);
    let rt = runtime();
    let err = rt
        .block_on(connect(impostor.addr, fleet.controller()))
        .err()
        .expect("refused");
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[test]
fn a_revoked_agent_is_not_talked_to() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    still_serves(&rt, &agent, &fleet);
    // The agent's key leaked: its certificate (named after its first SAN) is revoked.
    let revoked = fleet.ca.revoke("127.0.0.1").expect("revoke the agent");
    assert_eq!(revoked.len(), 1);
    // The controller's identity carries the CA's crl.pem: the handshake fails on our side.
    let err = ask(&rt, agent.addr, fleet.controller(), &Request::Status)
        .expect_err("a revoked agent is refused");
    assert!(err.contains("Revoked"), "{err}");
    // Through the controller's own client as `status` and deploys use it.
    let identity = pmfleet::pki::ClientIdentity::from_dir(fleet.dir.path()).unwrap();
    let client = pmfleet::agent::AgentClient::new(&identity, Duration::from_secs(5)).unwrap();
    let port = agent.addr.port();
    let err = rt
        .block_on(client.request(
            "127.0.0.1",
            port,
            &pmfleet::agent::Via::Direct,
            &Request::Status,
            None,
        ))
        .expect_err("refused by the controller's client");
    assert!(err.to_string().contains("Revoked"), "{err}");
}

#[test]
fn a_handshake_with_a_dead_peer_times_out() {
    let fleet = Fleet::new();
    let rt = runtime();
    rt.block_on(async {
        // A listener that accepts TCP and never speaks TLS.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                open.push(tcp);
            }
        });
        let connector = tokio_rustls::TlsConnector::from(fleet.controller());
        let started = Instant::now();
        let err = tls::connect_with_timeout(
            &connector,
            addr,
            tls::server_name("127.0.0.1").unwrap(),
            Duration::from_millis(300),
        )
        .await
        .expect_err("times out");
        assert!(
            matches!(
                err,
                tls::TlsError::Timeout {
                    phase: tls::Phase::Handshake,
                    ..
                }
            ),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    });
}

/// One request of every kind, harmless on an agent with no apps.
fn every_request(agent: &Agent) -> Vec<(&'static str, Request)> {
    let all = || Target::All;
    vec![
        ("ping", Request::Ping),
        (
            "start",
            Request::Start(Box::new(StartRequest {
                source: StartSource::Script(ScriptStart {
                    script: "/bin/sh".into(),
                    args: vec!["-c".into(), "touch /tmp/pmfleet-remote-start".into()],
                    ..Default::default()
                }),
                env_name: None,
                cwd: agent.work.path().to_path_buf(),
                env: BTreeMap::new(),
                only: None,
            })),
        ),
        ("stop", Request::Stop { target: all() }),
        ("restart", Request::Restart { target: all() }),
        ("reload", Request::Reload { target: all() }),
        ("delete", Request::Delete { target: all() }),
        (
            "scale",
            Request::Scale {
                app: "nope".into(),
                to: ScaleTo::Up(1),
            },
        ),
        ("list", Request::List),
        ("show", Request::Show { app: "nope".into() }),
        (
            "logs",
            Request::Logs {
                app: None,
                lines: 5,
                follow: false,
            },
        ),
        ("events", Request::Events { app: None }),
        ("flush", Request::Flush { app: None }),
        ("reload_logs", Request::ReloadLogs),
        ("save", Request::Save),
        ("resurrect", Request::Resurrect),
        ("kill", Request::Kill),
        ("status", Request::Status),
        (
            "apply_release",
            Request::ApplyRelease(Box::new(ApplyRelease {
                root: agent.work.path().join("srv/app"),
                release: "no-such-release".into(),
                timeout_ms: 5_000,
            })),
        ),
        (
            "apply_dir",
            Request::ApplyDir(Box::new(ApplyDir {
                release_dir: agent.work.path().to_path_buf(),
                ecosystem: None,
                env_name: None,
                env: BTreeMap::new(),
                timeout_ms: 5_000,
                secrets_file: None,
            })),
        ),
        ("reload_tls", Request::ReloadTls),
        (
            "upgrade",
            Request::Upgrade {
                binary: "/bin/true".into(),
                handover: 1,
            },
        ),
    ]
}

/// Who may send what: the whole table, each cell a real request on the real endpoint.
#[test]
fn every_role_may_send_exactly_its_requests() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    // (request, allowed for read / deploy / admin)
    let table: [(&str, [bool; 3]); 21] = [
        ("ping", [true, true, true]),
        ("status", [true, true, true]),
        ("list", [true, true, true]),
        ("show", [true, true, true]),
        ("logs", [true, true, true]),
        ("events", [true, true, true]),
        ("apply_release", [false, true, true]),
        ("reload", [false, true, true]),
        ("restart", [false, true, true]),
        ("stop", [false, false, true]),
        ("delete", [false, false, true]),
        ("scale", [false, false, true]),
        ("flush", [false, false, true]),
        ("reload_logs", [false, false, true]),
        ("save", [false, false, true]),
        ("resurrect", [false, false, true]),
        ("start", [false, false, false]),
        ("apply_dir", [false, false, false]),
        ("kill", [false, false, false]),
        ("reload_tls", [false, false, false]),
        ("upgrade", [false, false, false]),
    ];
    // (who, certificate, the column of the table that applies)
    let clients: Vec<(&str, Arc<ClientConfig>, usize)> = vec![
        ("read", fleet.issue("dashboard", Role::Read), 0),
        ("no role", fleet.without_role(), 0),
        ("deploy", fleet.issue("ci-deploy", Role::Deploy), 1),
        (
            "ca issue default",
            fleet.issue("ci-runner", pmfleet::pki::DEFAULT_CLIENT_ROLE),
            1,
        ),
        ("admin (controller)", fleet.controller(), 2),
    ];
    // A deploy root set up on the host, so an allowed `apply_release` gets past the root check.
    agent.prepare_release("0", &[], &[]);
    let requests = every_request(&agent);
    assert_eq!(requests.len(), table.len());
    for (who, config, column) in &clients {
        for (op, req) in &requests {
            let allowed = table
                .iter()
                .find(|(name, _)| name == op)
                .map(|(_, row)| row[*column])
                .unwrap_or_else(|| panic!("{op} is not in the table"));
            let answer = ask(&rt, agent.addr, config.clone(), req)
                .unwrap_or_else(|e| panic!("{who}: {op}: no answer: {e}\n{}", agent.log()));
            let forbidden = matches!(&answer, Response::Error(e) if e.kind == ErrorKind::Forbidden);
            assert_eq!(
                !forbidden,
                allowed,
                "{who}: {op}: {answer:?} (expected {})",
                if allowed { "allowed" } else { "forbidden" }
            );
        }
    }
    assert!(!std::path::Path::new("/tmp/pmfleet-remote-start").exists());
    still_serves(&rt, &agent, &fleet);
}

#[test]
fn read_and_deploy_certificates_cannot_stop_or_delete_apps() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    agent.start_shell_app("web", "exec sleep 300");
    let pids = || -> Vec<u64> {
        agent
            .list()
            .iter()
            .filter_map(|p| p["pid"].as_u64())
            .collect()
    };
    let before = pids();
    assert_eq!(before.len(), 1);
    let web = || Target::App("web".into());
    let read = fleet.issue("dashboard", Role::Read);
    let deploy = fleet.issue("ci-deploy", Role::Deploy);
    for (config, req) in [
        (read.clone(), Request::Stop { target: web() }),
        (read.clone(), Request::Restart { target: web() }),
        (read.clone(), Request::Delete { target: web() }),
        (deploy.clone(), Request::Stop { target: web() }),
        (deploy.clone(), Request::Delete { target: web() }),
        (
            deploy.clone(),
            Request::Scale {
                app: "web".into(),
                to: ScaleTo::Exactly(0),
            },
        ),
    ] {
        let answer = ask(&rt, agent.addr, config, &req).expect("an answer");
        assert!(
            matches!(&answer, Response::Error(e) if e.kind == ErrorKind::Forbidden),
            "{req:?}: {answer:?}"
        );
    }
    assert_eq!(pids(), before, "the app was not touched");
    // What a deploy certificate may do, it does.
    let answer = ask(&rt, agent.addr, deploy, &Request::Restart { target: web() });
    assert!(matches!(answer, Ok(Response::Done { .. })), "{answer:?}");
}

#[test]
fn remote_show_never_carries_env_values() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    let secret = "hunter2-do-not-leak";
    // The CLI's environment reaches the app's (as PM2 does): DB_PASSWORD is in its spec.
    let script = agent.work.path().join("api.sh");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 300\n").unwrap();
    let out = agent
        .command()
        .arg("start")
        .arg(&script)
        .args(["--name", "api"])
        .env("DB_PASSWORD", secret)
        .output()
        .expect("start api");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local = agent.ok(&["show", "api", "--json"]);
    assert!(
        local.contains(secret),
        "the local socket shows values: {local}"
    );
    for (who, config) in [
        ("read", fleet.issue("dashboard", Role::Read)),
        ("deploy", fleet.issue("ci", Role::Deploy)),
        ("admin", fleet.controller()),
    ] {
        let answer = ask(
            &rt,
            agent.addr,
            config,
            &Request::Show { app: "api".into() },
        )
        .expect("an answer");
        let Response::App { app } = &answer else {
            panic!("{who}: {answer:?}")
        };
        assert_eq!(
            app.spec.env.get("DB_PASSWORD").map(String::as_str),
            Some(REDACTED),
            "{who}: the key is shown, its value is not"
        );
        assert!(app.spec.env.values().all(|v| v == REDACTED), "{who}");
        let wire = serde_json::to_string(&answer).unwrap();
        assert!(!wire.contains(secret), "{who}: {wire}");
    }
}

#[test]
fn a_certificate_whose_role_cannot_be_read_is_refused() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    let odd = fleet.hand_made("client:odd", &["pmfleet-role:root"], None);
    let answer = ask(&rt, agent.addr, odd, &Request::Status).expect("an answer");
    match answer {
        Response::Error(e) => {
            assert_eq!(e.kind, ErrorKind::Forbidden);
            assert!(e.message.contains("root"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    still_serves(&rt, &agent, &fleet);
}

/// A release the deploy put on the host: a Node app that idles.
const IDLE_APP: &str = "setInterval(() => {}, 1000);\n";

/// Every way a client with a fleet certificate might try to make the agent run something SSH
/// did not put there: a directory of its own with an ecosystem file that starts `/bin/sh`,
/// `NODE_OPTIONS` that makes node run code, a release id that climbs out of the releases, a
/// root the agent was not set up for — as this protocol's requests, with fields smuggled in,
/// and as the previous protocol's `apply_release` (a directory and an environment). Nothing
/// runs, nothing is persisted, and a restarted agent runs nothing of it either.
#[test]
fn no_client_certificate_can_make_the_agent_run_a_command_of_its_own() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    let work = agent.work.path();
    let shell_ran = work.join("shell-ran");
    let node_ran = work.join("node-ran");
    // The attacker's own directory, outside every deploy root.
    let evil = work.join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    let evil_eco = serde_json::json!({"apps": [{
        "name": "evil", "script": "/bin/sh", "interpreter": "none",
        "args": ["-c", format!("touch {}; exec sleep 300", shell_ran.display())],
    }]});
    std::fs::write(evil.join("ecosystem.json"), evil_eco.to_string()).unwrap();
    // A release the deploy put there, legitimately.
    let eco = serde_json::json!({"apps": [{"name": "web", "script": "app.js"}]});
    let root = agent.prepare_release(
        "1",
        &[("app.js", IDLE_APP), ("ecosystem.json", &eco.to_string())],
        &[("PMFLEET_RELEASE", "1")],
    );
    let node_options = format!(
        "--import=data:text/javascript,import fs from 'fs'; fs.writeFileSync('{}', 'x')",
        node_ran.display()
    );
    let raw = |v: u16, body: serde_json::Value| {
        let json = serde_json::json!({"v": v, "body": body}).to_string();
        let mut bytes = (json.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes
    };
    let old = PROTOCOL_VERSION - 1;
    let attempts: Vec<(&str, Vec<u8>)> = vec![
        (
            "the previous protocol: a directory of the client's",
            raw(
                old,
                serde_json::json!({"op": "apply_release", "release_dir": evil, "env": {}}),
            ),
        ),
        (
            "the previous protocol: NODE_OPTIONS for a release on the host",
            raw(
                old,
                serde_json::json!({"op": "apply_release",
                "release_dir": root.join("releases/1"), "env": {"NODE_OPTIONS": node_options}}),
            ),
        ),
        (
            "the previous shape in this protocol",
            raw(
                PROTOCOL_VERSION,
                serde_json::json!({"op": "apply_release",
                "release_dir": evil, "env": {"NODE_OPTIONS": node_options}}),
            ),
        ),
        (
            "an environment smuggled into this protocol's request",
            raw(
                PROTOCOL_VERSION,
                serde_json::json!({"op": "apply_release", "root": root,
                "release": "1", "env_name": "x", "env": {"NODE_OPTIONS": node_options},
                "release_dir": evil, "ecosystem": evil.join("ecosystem.json")}),
            ),
        ),
        (
            "a root the agent was not set up for",
            raw(
                PROTOCOL_VERSION,
                serde_json::json!({"op": "apply_release",
                "root": work, "release": "evil"}),
            ),
        ),
        (
            "a release id that climbs out",
            raw(
                PROTOCOL_VERSION,
                serde_json::json!({"op": "apply_release",
                "root": root, "release": "../../../evil"}),
            ),
        ),
        (
            "a directory of the client's, on the local socket's request",
            raw(
                PROTOCOL_VERSION,
                serde_json::json!({"op": "apply_dir", "release_dir": evil,
                "env": {"NODE_OPTIONS": node_options}}),
            ),
        ),
        (
            "a command of the client's",
            raw(
                PROTOCOL_VERSION,
                serde_json::json!({"op": "start",
                "source": {"kind": "script", "script": "/bin/sh",
                           "args": ["-c", format!("touch {}", shell_ran.display())],
                           "name": "evil2", "instances": null, "interpreter": "none",
                           "port": null, "wait_ready": false, "healthcheck": null,
                           "listen_timeout_ms": null, "kill_timeout_ms": null,
                           "max_memory_restart": null, "watch": false, "merge_logs": false,
                           "time": false},
                "env_name": null, "cwd": work, "env": {"NODE_OPTIONS": node_options},
                "only": null}),
            ),
        ),
    ];
    let clients = [
        (
            "ca issue ci-runner",
            fleet.issue("ci-runner", pmfleet::pki::DEFAULT_CLIENT_ROLE),
        ),
        ("deploy", fleet.issue("ci-deploy", Role::Deploy)),
        ("read", fleet.issue("dashboard", Role::Read)),
        ("admin (controller)", fleet.controller()),
    ];
    let no_trace = |when: &str| {
        assert!(!shell_ran.exists(), "{when}: /bin/sh ran\n{}", agent.log());
        assert!(
            !node_ran.exists(),
            "{when}: NODE_OPTIONS ran\n{}",
            agent.log()
        );
        for p in agent.list() {
            assert_ne!(p["name"], "evil", "{when}: {p}");
            assert_ne!(p["name"], "evil2", "{when}: {p}");
        }
        if agent.list().iter().any(|p| p["name"] == "web") {
            let show = agent.ok(&["show", "web", "--json"]);
            assert!(!show.contains("NODE_OPTIONS"), "{when}: {show}");
            assert!(show.contains("releases/1"), "{when}: {show}");
        }
        let state =
            std::fs::read_to_string(agent.home.path().join("state.json")).unwrap_or_default();
        assert!(
            !state.contains("NODE_OPTIONS") && !state.contains("/evil"),
            "{when}: {state}"
        );
    };
    for (who, config) in &clients {
        for (what, bytes) in &attempts {
            let answer = rt.block_on(async {
                let mut conn = connect(agent.addr, config.clone()).await.expect("connect");
                let _ = conn.send_bytes(bytes).await;
                conn.recv(Duration::from_secs(30)).await
            });
            let answered_ok = matches!(&answer, Ok(Response::Applied(r)) if r.apps.iter().any(|a| a.name != "web"))
                || matches!(&answer, Ok(Response::Done { .. }));
            assert!(!answered_ok, "{who}: {what}: {answer:?}");
            no_trace(&format!("{who}: {what}"));
        }
    }
    // What a deploy certificate is for still works: the release SSH put there.
    let deploy = fleet.issue("ci-deploy-2", Role::Deploy);
    let apply = Request::ApplyRelease(Box::new(ApplyRelease {
        root: root.clone(),
        release: "1".into(),
        timeout_ms: 30_000,
    }));
    match ask(&rt, agent.addr, deploy, &apply) {
        Ok(Response::Applied(r)) => assert!(r.ok(), "{r:?}"),
        other => panic!("{other:?}\n{}", agent.log()),
    }
    let show = agent.ok(&["show", "web", "--json"]);
    assert!(show.contains("\"PMFLEET_RELEASE\": \"1\""), "{show}");
    no_trace("after the real deploy");
    // Nothing of it comes back with a restarted agent either.
    agent.restart();
    wait_until_online(&agent, "web");
    no_trace("after a restart");
}

fn wait_until_online(agent: &Agent, app: &str) {
    agent_endpoint::wait_until(Duration::from_secs(20), "the app online again", || {
        agent
            .list()
            .iter()
            .any(|p| p["name"] == app && p["status"] == "online")
    });
}
