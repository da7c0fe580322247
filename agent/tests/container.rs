//! `pmfleet-agent run FILE`, the container mode, run the way a container runs it: as PID 1
//! of its own PID namespace (`unshare --pid --fork --mount-proc`), with an app that leaves
//! orphans behind and a cluster app, then SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pmfleet_testkit::{AgentHome, free_port, get, procs, wait_until};
use serde_json::Value;

/// Whether this machine lets us make PID namespaces (root, util-linux's unshare).
fn can_unshare() -> bool {
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "unshare --pid --fork --mount-proc is needed (run as root with util-linux)"
        );
        eprintln!("skipped: this machine cannot make a PID namespace");
    }
    ok
}

/// A child whose stdout and stderr are collected as they come.
struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let collect = |mut from: Box<dyn Read + Send>| {
            let into = Arc::new(Mutex::new(String::new()));
            let sink = into.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(&mut from).lines().map_while(Result::ok) {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
            into
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    fn out(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn err(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut status = None;
        wait_until(timeout, "the process to exit", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Zombies among the descendants of `pid`.
fn zombies_below(pid: u32) -> usize {
    procs::descendants(pid)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(false)
        })
        .count()
}

/// `NSpid` of `/proc/<pid>/status`: the pid in each namespace, outermost first.
fn ns_pids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn as_pid_1_it_reaps_orphans_logs_every_app_and_stops_gracefully_on_sigterm() {
    if !can_unshare() {
        return;
    }
    let agent = AgentHome::new();
    let port = free_port();
    agent.fixture("server.js");
    let marker = agent.work.path().join("stopped-gracefully");
    // Every 0.1 s a subshell starts a helper in a session of its own and exits at once: the
    // helper is orphaned to PID 1 and ends 50 ms later, a zombie unless PID 1 reaps it.
    agent.write(
        "orphans.sh",
        &format!(
            "trap 'echo graceful > {}; exit 0' INT TERM\nwhile true; do (setsid sh -c 'sleep 0.05' &); echo spawned; sleep 0.1; done\n",
            marker.display()
        ),
    );
    agent.write(
        "ecosystem.json",
        &format!(
            r#"{{"apps": [
                {{"name": "orphans", "script": "orphans.sh"}},
                {{"name": "web", "script": "server.js", "instances": 2, "exec_mode": "cluster", "port": {port}}}
            ]}}"#
        ),
    );
    let mut cmd = Command::new("unshare");
    // --kill-child: if the test fails half-way, dropping `unshare` ends the namespace too.
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(agent.binary())
        .args(["run", "ecosystem.json"])
        .env("PMFLEET_AGENT_HOME", agent.home.path())
        .current_dir(agent.work.path());
    let mut run = Running::spawn(cmd);

    // Every app's lines on stdout, prefixed with app and instance.
    wait_until(Duration::from_secs(30), "both web instances log", || {
        let out = run.out();
        out.contains("web[0] | node listening") && out.contains("web[1] | node listening")
    });
    get(port).expect("the cluster app answers");

    // The agent is PID 1 of the namespace.
    let unshare_pid = run.child.id();
    let init = procs::descendants(unshare_pid)
        .into_iter()
        .find(|p| ns_pids(*p).last() == Some(&1))
        .expect("PID 1 of the namespace");
    assert_eq!(procs::parent_of(init), Some(unshare_pid));

    // Orphans keep coming and none stays a zombie.
    wait_until(
        Duration::from_secs(30),
        "30 orphans have come and gone",
        || run.out().matches("orphans[0] | spawned").count() >= 30,
    );
    let zombies = zombies_below(init);
    assert!(zombies <= 2, "{zombies} zombies below PID 1");

    // A reload from outside the container, as `docker exec` would do it.
    let before = agent.pids("web");
    agent.ok(&["reload", "web"]);
    let after = agent.pids("web");
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
    get(port).expect("still answering after the reload");

    // SIGTERM to PID 1: every app stops gracefully, then it exits 0.
    procs::signal(init as i32, libc::SIGTERM);
    let status = run.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        run.out(),
        run.err()
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default().trim(),
        "graceful",
        "the app got its kill signal and ran its trap"
    );
    let err = run.err();
    assert!(
        err.contains("SIGTERM: stopping every app gracefully"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn when_the_apps_are_gone_the_exit_code_says_how_and_json_lines_say_who() {
    let agent = AgentHome::new();
    agent.write("job.sh", "echo done; echo oops >&2; exit 3\n");
    agent.write(
        "ecosystem.json",
        r#"{"apps": [{"name": "job", "script": "job.sh", "autorestart": false}]}"#,
    );
    let mut cmd = Command::new(agent.binary());
    cmd.args(["run", "ecosystem.json", "--json"])
        .env("PMFLEET_AGENT_HOME", agent.home.path())
        .current_dir(agent.work.path());
    let mut run = Running::spawn(cmd);
    let status = run.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "stderr:\n{}", run.err());
    let lines: Vec<Value> = run
        .out()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["event"] == "log"
            && l["app"] == "job"
            && l["instance"] == 0
            && l["stream"] == "out"
            && l["line"] == "done"),
        "{lines:?}"
    );
    let err = run.err();
    assert!(
        err.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| l["stream"] == "err" && l["line"] == "oops"),
        "{err}"
    );

    // Nothing it can start: exit 2, said why. What the first run left in the home is moved
    // aside, not lost.
    agent.write(
        "broken.json",
        r#"{"apps": [{"name": "x", "script": "missing.sh"}]}"#,
    );
    let out = agent.run(&["run", "broken.json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.sh"), "{err}");
    assert!(err.contains("starting afresh"), "{err}");
    let kept = agent.home.path().join("logs.before-run/job-out.log");
    assert!(
        std::fs::read_to_string(&kept).is_ok_and(|t| t.contains("done")),
        "the first run's log is kept in {}",
        kept.display()
    );
    assert!(agent.home.path().join("state.json.before-run").is_file());
}
