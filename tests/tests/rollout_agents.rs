//! What the agents run after rollouts that went wrong: a rollback leaves the kept instances
//! as they were and `status` names the release they run; a failed revert leaves no host whose
//! `current` and apps disagree; prune keeps every release when the agent cannot say which are
//! in use. Real sshd hosts, real agents, a real Node app.

use std::time::Duration;

use pmfleet_testkit::agent_fleet::AgentFleet;
use pmfleet_testkit::deployed::current_release;
use pmfleet_testkit::project::ok;
use pmfleet_testkit::sshd::SshHost;
use pmfleet_testkit::{get_from, require_sshd, wait_until};
use serde_json::{Value, json};

/// A Node app answering with its version; a `broken` version never listens.
const SERVER_JS: &str = r#"const http = require("http");
const fs = require("fs");
const version = fs.readFileSync(__dirname + "/VERSION", "utf8").trim();
if (version.startsWith("broken")) { setInterval(() => {}, 1000); } else {
  http.createServer((req, res) => res.end(`version ${version}\n`)).listen(process.env.PORT);
}
"#;

/// `n` hosts with agents, version 1 deployed and serving.
fn start(n: usize, extra: Value) -> AgentFleet {
    let f = AgentFleet::deployed(
        n,
        SERVER_JS,
        json!({"listen_timeout": 3000}),
        Some("1"),
        extra,
    );
    f.wait_serving("1");
    f
}

/// What these tests read of the fleet.
trait Serving {
    /// What `host` answers on `/`, or the error.
    fn get(&self, host: &SshHost) -> String;
    fn wait_serving(&self, version: &str);
    /// Every instance of `web` on every host: (host, pid, release, sha).
    fn instances(&self) -> Vec<(String, u64, String, String)>;
}

impl Serving for AgentFleet {
    fn get(&self, host: &SshHost) -> String {
        get_from(host.address(), self.app_port)
            .map(|b| b.trim().to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    fn wait_serving(&self, version: &str) {
        for host in self.hosts() {
            wait_until(
                Duration::from_secs(30),
                &format!("{} serves version {version}", host.address()),
                || self.get(host) == format!("version {version}"),
            );
        }
    }

    fn instances(&self) -> Vec<(String, u64, String, String)> {
        let run = self.project.pmfleet(&["status", "--json"]);
        ok(&run);
        let hosts: Value = serde_json::from_str(&run.stdout).expect("status --json is JSON");
        let mut out = Vec::new();
        for h in hosts.as_array().into_iter().flatten() {
            for p in h["agent"]["processes"].as_array().into_iter().flatten() {
                if p["name"] == "web" {
                    out.push((
                        h["host"].as_str().unwrap_or_default().to_string(),
                        p["pid"].as_u64().unwrap_or_default(),
                        p["release"].as_str().unwrap_or_default().to_string(),
                        p["sha"].as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
        }
        out.sort();
        out
    }
}

#[test]
fn after_a_rollback_status_shows_what_runs_and_the_kept_instances_stay() {
    require_sshd!();
    let f = start(2, json!({}));
    let sha1 = f.repo.head();
    let r1 = current_release(&f.hosts()[0]).unwrap_or_default();
    let before = f.instances();
    assert_eq!(before.len(), 4, "{before:?}");
    f.repo.commit_file("VERSION", "broken 2\n", "never listens");
    let run = f.project.pmfleet(&["deploy", "production"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("rolled back"), "{}", run.stdout);
    f.wait_serving("1");
    let after = f.instances();
    for (host, _, release, sha) in &after {
        assert_eq!(release, &r1, "status names the release that runs on {host}");
        assert_eq!(sha, &sha1, "and its SHA on {host}");
    }
    let pids = |v: &[(String, u64, String, String)]| -> Vec<(String, u64)> {
        v.iter().map(|(h, p, _, _)| (h.clone(), *p)).collect()
    };
    assert_eq!(
        pids(&after),
        pids(&before),
        "the kept instances were not restarted"
    );
}

#[test]
fn a_failed_revert_leaves_current_and_the_apps_agreeing() {
    require_sshd!();
    let f = start(2, json!({}));
    f.repo.commit_file("VERSION", "2\n", "version 2");
    ok(&f.project.pmfleet(&["deploy", "production"]));
    f.wait_serving("2");
    let r2 = current_release(&f.hosts()[0]).unwrap_or_default();
    // Host 1 cannot switch: a directory where the fresh symlink must go.
    let blocker = f.hosts()[1].root().join("app/.pmfleet/current.new");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    let run = f.project.pmfleet(&["deploy", "production", "revert", "1"]);
    assert_eq!(run.code, 1, "{}", run.all());
    for host in f.hosts() {
        assert_eq!(
            current_release(host).unwrap_or_default(),
            r2,
            "every host back on r2"
        );
    }
    // Host 0 switched to r1 and its agent ran r1, then it went back: its agent runs r2 again.
    f.wait_serving("2");
    for (host, _, release, _) in f.instances() {
        assert_eq!(release, r2, "current and the apps agree on {host}");
    }
    std::fs::remove_dir_all(&blocker).unwrap();
    ok(&f.project.pmfleet(&["deploy", "production", "revert", "1"]));
    f.wait_serving("1");
}

#[test]
fn prune_removes_nothing_when_the_agent_does_not_answer() {
    require_sshd!();
    let f = start(1, json!({"keep_releases": 1}));
    let host = &f.hosts()[0];
    let r1 = current_release(host).unwrap_or_default();
    f.repo.commit_file("VERSION", "2\n", "version 2");
    ok(&f.project.pmfleet(&["deploy", "production"]));
    f.wait_serving("2");
    let r2 = current_release(host).unwrap_or_default();
    // The agent dies (its apps keep running, from r2), and the next release has no apps.
    ok(&f.project.pmfleet(&[
        "deploy",
        "production",
        "exec",
        "kill -9 $(cat ~/.pmfleet-agent/agent.pid)",
    ]));
    f.repo.git(&["rm", "-q", "ecosystem.json"]);
    f.repo.commit_file("VERSION", "3\n", "no apps");
    let run = f.project.pmfleet(&["deploy", "production"]);
    ok(&run);
    assert!(
        run.stdout.contains("nothing pruned"),
        "says why:\n{}",
        run.stdout
    );
    for release in [&r1, &r2] {
        assert!(
            host.root().join("app/releases").join(release).exists(),
            "{release} kept: the agent could not say which releases its apps run from"
        );
    }
    assert_eq!(f.get(host), "version 2", "the app still runs from r2");
}
