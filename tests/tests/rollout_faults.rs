//! Rollouts under faults, end to end: the real binary against real OpenSSH hosts (each with
//! its own `/srv`) while hosts drop off in the middle of a step. Each fault is followed by
//! checks that every host serves a complete release and that the next command finishes the
//! job.

use std::time::Duration;

use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::{Project, Run};
use pmfleet_testkit::sshd::{Fleet, SshHost};
use pmfleet_testkit::{require_sshd, wait_until};
use serde_json::{Value, json};

/// The deploy root as every host sees it.
const ROOT: &str = "/srv/app";

/// A `post-deploy` that hangs (after touching `/srv/hanging`) while `/srv/hang` exists.
const HANG_POST_DEPLOY: &str =
    "./app.sh > built.txt; if [ -f /srv/hang ]; then touch /srv/hanging; sleep 60; fi";

fn ecosystem(hosts: &[SshHost], repo: &GitRepo, extra: Value) -> Value {
    let hosts: Vec<Value> = hosts
        .iter()
        .map(|h| json!({"host": h.address(), "port": h.port(), "user": "root"}))
        .collect();
    let mut env = json!({
        "host": hosts,
        "ref": "origin/main",
        "repo": repo.url(),
        "path": ROOT,
        "post-deploy": "./app.sh > built.txt",
        "agent": false,
    });
    if let (Some(env), Some(extra)) = (env.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            env.insert(k.clone(), v.clone());
        }
    }
    json!({"apps": [{"name": "app", "script": "app.sh"}], "deploy": {"production": env}})
}

/// The host's view of `/srv/app/<rel>`.
fn on_host(host: &SshHost, rel: &str) -> std::path::PathBuf {
    host.root().join("app").join(rel)
}

fn current_release(host: &SshHost) -> Option<String> {
    std::fs::read_link(on_host(host, "current"))
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

fn served_version(host: &SshHost) -> String {
    std::fs::read_to_string(on_host(host, "current/VERSION"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn ok(run: &Run) {
    assert_eq!(run.code, 0, "pmfleet failed:\n{}", run.all());
}

/// Every host serves `version`, built, all from the same release.
fn assert_fleet_serves(hosts: &[SshHost], version: &str) -> String {
    let first = current_release(&hosts[0]).expect("current on host 0");
    for host in hosts {
        assert_eq!(current_release(host).as_deref(), Some(first.as_str()));
        assert_eq!(served_version(host), version, "on {}", host.address());
        let built = std::fs::read_to_string(on_host(host, "current/built.txt")).unwrap_or_default();
        assert_eq!(built.trim(), format!("app version {version}"));
    }
    first
}

#[test]
fn a_host_that_drops_mid_deploy_is_unreachable() {
    require_sshd!();
    let mut fleet = Fleet::start(3);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&ecosystem(
        &fleet.hosts,
        &repo,
        json!({"post-deploy": HANG_POST_DEPLOY}),
    ));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    let r1 = assert_fleet_serves(&fleet.hosts, "1");

    // Host 1 drops off (its sshd and every session it runs are killed) during its post-deploy.
    std::fs::write(fleet.hosts[1].root().join("hang"), "").unwrap();
    repo.commit_file("VERSION", "2\n", "version 2");
    let deploy = project.spawn(&["deploy", "production"]);
    wait_until(
        Duration::from_secs(60),
        "post-deploy running on host 1",
        || fleet.hosts[1].root().join("hanging").exists(),
    );
    fleet.hosts[1].stop();
    let out = deploy.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a host that dropped is unreachable (exit 3):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("unreachable"), "{stdout}");
    for host in &fleet.hosts {
        assert_eq!(current_release(host).as_deref(), Some(r1.as_str()));
    }
    for host in [&fleet.hosts[0], &fleet.hosts[2]] {
        assert!(!on_host(host, ".pmfleet/lock").exists(), "lock released");
    }

    // Back up: its lock (left by the deploy that lost it) is broken, and the next deploy
    // finishes the job.
    std::fs::remove_file(fleet.hosts[1].root().join("hang")).unwrap();
    fleet.hosts[1].restart();
    ok(&project.pmfleet(&["deploy", "production", "unlock", "--force"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts, "2");
}
