//! What `pmfleet-agent` prints for people and for programs, run as a user runs it: colour
//! only on a terminal (and never with NO_COLOR), a closed pipe (`| head`) ending read-only
//! verbs quietly, errors as JSON with `--json`, and completions and man pages that name the
//! verbs.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use pmfleet_testkit::{AgentHome, wait_until};
use serde_json::Value;

/// An agent with one online and one errored app.
fn with_an_errored_app() -> AgentHome {
    let agent = AgentHome::new();
    agent.write("tick.sh", "while true; do echo tick; sleep 0.2; done\n");
    agent.write("crash.sh", "exit 1\n");
    agent.write(
        "apps.json",
        r#"{"apps": [{"name": "crash", "script": "crash.sh", "max_restarts": 1, "min_uptime": 1000}]}"#,
    );
    agent.ok(&["start", "tick.sh", "--name", "tick"]);
    agent.ok(&["start", "apps.json"]);
    agent.wait_online("tick", 1);
    wait_until(Duration::from_secs(15), "crash errored", || {
        agent
            .procs("crash")
            .first()
            .is_some_and(|p| p["status"] == "errored")
    });
    agent
}

/// `list` run in a pseudo-terminal (util-linux's `script`), with `extra` in its environment.
fn list_on_a_terminal(agent: &AgentHome, extra: &[(&str, &str)]) -> Option<String> {
    let command = format!(
        "PMFLEET_AGENT_HOME={} {} list",
        agent.home.path().display(),
        agent.binary().display()
    );
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    for (k, v) in extra {
        c.env(k, v);
    }
    let out = c.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn errored_rows_are_coloured_on_a_terminal_and_nowhere_else() {
    let agent = with_an_errored_app();
    let piped = agent.ok(&["list"]);
    assert!(!piped.contains('\x1b'), "no colour in a pipe: {piped:?}");
    assert!(piped.contains("errored"), "{piped}");

    let Some(tty) = list_on_a_terminal(&agent, &[]) else {
        assert!(
            std::env::var("CI").is_err(),
            "util-linux's `script` is needed"
        );
        eprintln!("skipped the terminal half: no `script` here");
        return;
    };
    let errored = tty.lines().find(|l| l.contains("crash")).unwrap();
    assert!(errored.starts_with("\x1b[1;31m"), "{errored:?}");
    let online = tty.lines().find(|l| l.contains("tick")).unwrap();
    assert!(!online.contains('\x1b'), "{online:?}");

    let no_color = list_on_a_terminal(&agent, &[("NO_COLOR", "1")]).unwrap();
    assert!(!no_color.contains("\x1b["), "NO_COLOR: {no_color:?}");
}

/// Runs `args` with stdout a pipe whose reader goes away after `keep` lines.
fn into_head(agent: &AgentHome, args: &[&str], keep: usize) -> (std::process::ExitStatus, String) {
    let mut child = agent
        .command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    for _ in 0..keep {
        lines.next();
    }
    drop(lines);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), err)
}

#[test]
fn read_only_verbs_piped_into_head_end_quietly() {
    let agent = with_an_errored_app();
    for args in [
        &["list"][..],
        &["show", "tick"],
        &["jlist"],
        &["logs", "tick", "--lines", "0"],
        &["completions", "bash"],
    ] {
        let (status, err) = into_head(&agent, args, 0);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.trim().is_empty(), "{args:?} printed: {err}");
        assert!(
            status.success() || status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {status:?}"
        );
    }
}

#[test]
fn with_json_errors_are_json_too() {
    let agent = AgentHome::new();
    for args in [
        &["show", "nosuch", "--json"][..],
        &["env", "77", "--json"],
        &["list", "--json", "--bogus"],
    ] {
        let out = agent.run(args);
        assert!(!out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value =
            serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{args:?}: {text:?}: {e}"));
        assert_eq!(v["event"], "error", "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    let out = agent.run(&["show", "nosuch", "--json"]);
    let v: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(v["kind"], "not_found");
}

#[test]
fn completions_and_man_pages_name_the_verbs() {
    let agent = AgentHome::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = agent.ok(&["completions", shell]);
        for verb in ["startOrReload", "jlist", "logs", "run"] {
            assert!(script.contains(verb), "{shell} completions lack {verb}");
        }
    }
    let dir = agent.work.path().join("man");
    agent.ok(&["man", "--dir", dir.to_str().unwrap()]);
    let top = std::fs::read_to_string(dir.join("pmfleet-agent.1")).unwrap();
    assert!(
        top.contains(".TH") && top.contains("startOrReload"),
        "{top}"
    );
    let start = std::fs::read_to_string(dir.join("pmfleet-agent-start.1")).unwrap();
    assert!(start.contains("no\\-autorestart"), "{start}");
}
