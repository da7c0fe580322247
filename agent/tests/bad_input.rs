//! Bad input gets a clear error and disturbs nothing already running.

use pmfleet_testkit::{AgentHome, free_port};

#[test]
fn bad_starts_fail_clearly_and_leave_running_apps_alone() {
    let agent = AgentHome::new();
    agent.write("tick.sh", "while true; do sleep 1; done\n");
    agent.ok(&["start", "tick.sh"]);
    agent.wait_online("tick", 1);
    let pid = agent.pids("tick");

    let err = agent.fails(&["start", "missing.js"]);
    assert!(err.contains("missing.js does not exist"), "{err}");

    agent.write("app.py", "print('hi')\n");
    let err = agent.fails(&["start", "app.py", "--interpreter", "no-such-python"]);
    assert!(
        err.contains("`no-such-python` was not found on PATH"),
        "{err}"
    );

    let err = agent.fails(&["start", "no-such-command"]);
    assert!(err.contains("was not found on PATH"), "{err}");

    // Port already in use (someone else's listener).
    let port = free_port();
    let _taken = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
    agent.fixture("server.js");
    let err = agent.fails(&[
        "start",
        "server.js",
        "-i",
        "2",
        "--name",
        "web",
        "--port",
        &port.to_string(),
    ]);
    assert!(
        err.contains(&format!("cannot listen on port {port}")),
        "{err}"
    );
    assert!(
        agent.procs("web").is_empty(),
        "nothing of the failed app may remain"
    );

    // A malformed ecosystem file.
    agent.write("broken.json", r#"{"apps": [ {"name": "x", "script": "#);
    let err = agent.fails(&["start", "broken.json"]);
    assert!(err.contains("broken.json"), "{err}");

    // One bad app in a file: none of its apps start.
    agent.write(
        "two.json",
        r#"{"apps": [{"name": "good", "script": "tick.sh"}, {"name": "bad", "script": "gone.sh"}]}"#,
    );
    let err = agent.fails(&["start", "two.json"]);
    assert!(err.contains("gone.sh does not exist"), "{err}");
    assert!(agent.procs("good").is_empty());

    let err = agent.fails(&["stop", "nope"]);
    assert!(err.contains("no app named `nope`"), "{err}");
    let err = agent.fails(&["scale", "nope", "2"]);
    assert!(err.contains("no app named `nope`"), "{err}");

    assert_eq!(agent.pids("tick"), pid, "the running app must be untouched");
    assert_eq!(agent.procs("tick")[0]["status"], "online");
}
