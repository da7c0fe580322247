//! The agent's `status` over mutual TLS describes each deploy root setup registered — where
//! `current` points, the rollout record and the lock as SSH left them, which release each app
//! runs — to any role, `read` included, and never carries an env value; a file the host broke
//! is a reason in the answer, not a failure. A real agent daemon, real mutual TLS.

mod agent_endpoint;

use agent_endpoint::{Agent, Fleet, ask, runtime};
use pmfleet_shared::protocol::{AgentStatus, ApplyRelease, Request, Response};
use pmfleet_shared::tls::Role;

const SENTINEL: &str = "sentinel-6c1f-never-sent";

fn status(agent: &Agent, config: std::sync::Arc<rustls::ClientConfig>) -> (AgentStatus, String) {
    let rt = runtime();
    match ask(&rt, agent.addr, config, &Request::Status) {
        Ok(Response::Status(status)) => {
            let json = serde_json::to_string(&status).expect("json");
            (status, json)
        }
        other => panic!("no status: {other:?}\n{}", agent.log()),
    }
}

#[test]
fn a_read_certificate_sees_each_deploy_root_and_no_env_value() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    let eco = r#"{"apps": [{"name": "worker", "script": "worker.sh", "listen_timeout": 300}]}"#;
    let root = agent.prepare_release(
        "r1",
        &[("ecosystem.json", eco), ("worker.sh", "exec sleep 300\n")],
        &[("DB_PASSWORD", SENTINEL)],
    );
    let applied = ask(
        &rt,
        agent.addr,
        fleet.controller(),
        &Request::ApplyRelease(Box::new(ApplyRelease {
            root: root.clone(),
            release: "r1".into(),
            timeout_ms: 30_000,
        })),
    );
    assert!(
        matches!(&applied, Ok(Response::Applied(r)) if r.ok()),
        "{applied:?}\n{}",
        agent.log()
    );
    // What a deploy whose controller died after the switch leaves.
    std::fs::create_dir_all(root.join("releases/r2")).expect("r2");
    std::os::unix::fs::symlink("releases/r2", root.join("current")).expect("current");
    std::fs::write(
        root.join(".pmfleet/rollout.json"),
        r#"{"id":"run-1","action":"deploy","who":"alice@laptop","started":"2026-11-24T06:15:30Z","release":"r2","hosts":["web1"],"previous":"r1","state":"running"}"#,
    )
    .expect("rollout.json");
    std::fs::write(
        root.join(".pmfleet/lock"),
        r#"{"holder":"alice@laptop","deploy_id":"run-1","action":"deploy","since":"2026-11-24T06:15:30Z","pid":4242,"machine":"laptop"}"#,
    )
    .expect("lock");

    let (seen, json) = status(&agent, fleet.issue("dashboard", Role::Read));
    assert!(!json.contains(SENTINEL), "an env value in status: {json}");
    assert_eq!(seen.roots.len(), 1, "{json}");
    let r = &seen.roots[0];
    assert_eq!(r.path, root);
    assert_eq!(r.current.as_deref(), Some("r2"));
    let record = r.rollout.as_ref().expect("the rollout record");
    assert!(record.is_running(), "{record:?}");
    assert_eq!(
        (record.who.as_str(), record.previous.as_deref()),
        ("alice@laptop", Some("r1"))
    );
    let lock = r.lock.as_ref().expect("the lock");
    assert_eq!((lock.deploy_id.as_str(), lock.pid), ("run-1", 4242));
    assert_eq!(r.apps.len(), 1, "{json}");
    assert_eq!(
        (
            r.apps[0].name.as_str(),
            r.apps[0].release.as_deref(),
            r.apps[0].online
        ),
        ("worker", Some("r1"), 1)
    );
    assert!(!seen.applying);

    // A torn record and a lock that is not JSON are reasons; the rest is still said.
    std::fs::write(root.join(".pmfleet/rollout.json"), r#"{"id":"run-1","sta"#).expect("torn");
    std::fs::write(root.join(".pmfleet/lock"), "garbage").expect("lock");
    let (seen, _) = status(&agent, fleet.controller());
    let r = &seen.roots[0];
    assert!(r.rollout.is_none());
    assert!(
        r.rollout_error
            .as_deref()
            .is_some_and(|e| e.contains("rollout.json")),
        "{r:?}"
    );
    assert!(r.lock.as_ref().is_some_and(|l| l.error.is_some()), "{r:?}");
    assert_eq!(r.current.as_deref(), Some("r2"));
    assert_eq!(r.apps.len(), 1);
}
