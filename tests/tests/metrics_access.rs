//! Who may read an agent's metrics on its mutual-TLS port (`agent.metrics: tls`): a scraper
//! holding a valid certificate of the fleet CA (any role: reading metrics is a `read`
//! request), and nobody else — no certificate, another CA's, an expired or revoked one, one
//! whose role cannot be read, plain HTTP, or anyone at all while the agent's home does not
//! say `tls`. Real handshakes against a real `pmfleet-agent` daemon; every refusal is
//! followed by a scrape that works, to show the agent kept serving. The metrics never carry
//! an app's environment values.

mod agent_endpoint;

use std::sync::Arc;
use std::time::Duration;

use agent_endpoint::{Agent, Fleet, no_certificate, runtime, wait_until};
use pmfleet_shared::tls::{self, Role};
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "s3cr3t-sentinel-value";

/// `config` offering HTTP/1.1 (what a Prometheus scraper offers) instead of the frame protocol.
fn scraper(config: Arc<ClientConfig>) -> Arc<ClientConfig> {
    let mut config = (*config).clone();
    config.alpn_protocols = vec![tls::HTTP_ALPN.to_vec()];
    Arc::new(config)
}

/// `GET /metrics` over mutual TLS with `config`: the whole HTTP answer, or why none came.
fn scrape(
    rt: &tokio::runtime::Runtime,
    agent: &Agent,
    config: Arc<ClientConfig>,
) -> Result<String, String> {
    rt.block_on(async {
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = tls::server_name("127.0.0.1").map_err(|e| e.to_string())?;
        let read = async {
            let tcp = tokio::net::TcpStream::connect(agent.addr)
                .await
                .map_err(|e| e.to_string())?;
            let mut stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\n\r\n")
                .await
                .map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            let mut answer = Vec::new();
            stream
                .read_to_end(&mut answer)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(String::from_utf8_lossy(&answer).into_owned())
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .map_err(|_| "no answer within 10s".to_string())?
    })
}

/// The scrape must come back with the metrics.
fn served(
    rt: &tokio::runtime::Runtime,
    agent: &Agent,
    config: Arc<ClientConfig>,
    who: &str,
) -> String {
    let answer =
        scrape(rt, agent, config).unwrap_or_else(|e| panic!("{who}: {e}\n{}", agent.log()));
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{who}: {answer}");
    assert!(
        answer.contains("pmfleet_agent_uptime_seconds"),
        "{who}: {answer}"
    );
    answer
}

/// The scrape must get no metrics, and a good scraper must still be served afterwards.
fn refused(
    rt: &tokio::runtime::Runtime,
    agent: &Agent,
    fleet: &Fleet,
    config: Arc<ClientConfig>,
    who: &str,
) {
    match scrape(rt, agent, config) {
        Err(_) => {}
        Ok(answer) => assert!(
            !answer.contains("HTTP/1.1 200") && !answer.contains("pmfleet_"),
            "{who} read the metrics: {answer}"
        ),
    }
    served(
        rt,
        agent,
        scraper(fleet.issue("prometheus", Role::Read)),
        "a read scraper",
    );
}

/// An agent serving metrics on its mutual-TLS port, running an app with a secret in its env.
fn agent_with_tls_metrics(fleet: &Fleet) -> Agent {
    let agent = Agent::certified(fleet, &agent_endpoint::AGENT_SANS);
    agent.install_crl(&fleet.crl());
    std::fs::write(agent.home.path().join("metrics"), "tls\n").expect("metrics");
    agent.serve();
    let app = agent.work.path().join("idle.js");
    std::fs::write(&app, "setInterval(() => {}, 1000);\n").expect("app");
    let eco = agent.work.path().join("ecosystem.json");
    let text = serde_json::json!({"apps": [{"name": "idle", "script": app, "env": {"API_TOKEN": SECRET}}]});
    std::fs::write(&eco, text.to_string()).expect("ecosystem");
    agent.ok(&["start", &eco.display().to_string()]);
    wait_until(Duration::from_secs(20), "idle online", || {
        agent
            .list()
            .iter()
            .any(|p| p["name"] == "idle" && p["status"] == "online")
    });
    agent
}

#[test]
fn metrics_on_the_mutual_tls_port_need_a_valid_fleet_certificate() {
    let fleet = Fleet::new();
    let agent = agent_with_tls_metrics(&fleet);
    let rt = runtime();

    // Every role of the fleet CA reads them, and a certificate issued before roles (read).
    for (who, config) in [
        ("read", fleet.issue("prometheus", Role::Read)),
        ("deploy", fleet.issue("ci", Role::Deploy)),
        ("admin", fleet.controller()),
        ("no role", fleet.without_role()),
    ] {
        let answer = served(&rt, &agent, scraper(config), who);
        assert!(answer.contains("pmfleet_instance_up{"), "{who}: {answer}");
        assert!(answer.contains("app=\"idle\""), "{who}: {answer}");
        assert!(
            !answer.contains(SECRET),
            "{who}: an env value in the metrics: {answer}"
        );
    }

    refused(
        &rt,
        &agent,
        &fleet,
        scraper(no_certificate(fleet.ca.cert_pem())),
        "no certificate",
    );
    let other = Fleet::new();
    let intruder = other
        .ca
        .issue_client_cert("intruder", Role::Admin, 1)
        .expect("issue");
    refused(
        &rt,
        &agent,
        &fleet,
        scraper(fleet.client(&intruder.cert_pem, &intruder.key_pem)),
        "another CA's certificate",
    );
    refused(
        &rt,
        &agent,
        &fleet,
        scraper(fleet.expired()),
        "an expired certificate",
    );
    refused(
        &rt,
        &agent,
        &fleet,
        scraper(fleet.hand_made("client:odd", &["pmfleet-role:root"], None)),
        "a certificate whose role cannot be read",
    );
    assert!(
        agent.log().contains("metrics over mutual TLS: refused"),
        "{}",
        agent.log()
    );

    // A revoked scraper, once the agent has the CRL.
    let stolen = scraper(fleet.issue("old-prometheus", Role::Read));
    served(&rt, &agent, stolen.clone(), "before revocation");
    assert_eq!(fleet.ca.revoke("old-prometheus").expect("revoke").len(), 1);
    agent.install_crl(&fleet.crl());
    let out = agent.ok(&["tls", "reload"]);
    assert!(out.contains("with a CRL"), "{out}");
    refused(&rt, &agent, &fleet, stolen, "a revoked certificate");

    // Plain HTTP to the mutual-TLS port: at most a TLS alert, never HTTP.
    rt.block_on(async {
        let mut tcp = tokio::net::TcpStream::connect(agent.addr)
            .await
            .expect("tcp");
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
            .await
            .expect("the agent closes the connection");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            !answer.contains("HTTP") && !answer.contains("pmfleet_"),
            "{answer}"
        );
    });
}

#[test]
fn metrics_are_not_served_over_mutual_tls_unless_the_agents_home_says_tls() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    let read = || scraper(fleet.issue("prometheus", Role::Read));
    let no_metrics = |why: &str| match scrape(&rt, &agent, read()) {
        Err(_) => {}
        Ok(answer) => assert!(!answer.contains("pmfleet_"), "{why}: {answer}"),
    };

    no_metrics("no metrics file");
    std::fs::write(agent.home.path().join("metrics"), "tls\n").expect("metrics");
    agent.ok(&["tls", "reload"]);
    served(&rt, &agent, read(), "after `tls`");
    std::fs::write(agent.home.path().join("metrics"), "off\n").expect("metrics");
    agent.ok(&["tls", "reload"]);
    no_metrics("after `off`");
    // The frame protocol is unchanged for the controller.
    let answer = agent_endpoint::ask(
        &rt,
        agent.addr,
        fleet.controller(),
        &pmfleet_shared::protocol::Request::Ping,
    );
    assert!(answer.is_ok(), "{answer:?}");
}
