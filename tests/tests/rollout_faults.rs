//! Rollouts under faults, end to end: the real binary against real OpenSSH hosts (each with
//! its own `/srv`) while hosts drop off in the middle of a step. Each fault is followed by
//! checks that every host serves a complete release and that the next command finishes the
//! job.

use std::time::{Duration, Instant};

use pmfleet_testkit::assets::GATED_VERSION_SERVER_JS;
use pmfleet_testkit::deployed::{
    ROOT, assert_fleet_serves, current_release, ecosystem, on_host, releases, served_version,
    with_keys,
};
use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::procs::app_processes;
use pmfleet_testkit::project::{Project, ok};
use pmfleet_testkit::sshd::{Fleet, SshHost};
use pmfleet_testkit::{free_port, get_from, require_sshd, wait_until};
use serde_json::{Value, json};

/// A `post-deploy` that hangs (after touching `/srv/hanging`) while `/srv/hang` exists.
const HANG_POST_DEPLOY: &str =
    "./app.sh > built.txt; if [ -f /srv/hang ]; then touch /srv/hanging; sleep 60; fi";

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

// ---- the controller killed at every step of a rollout, with agents ----------------------

/// A `post-deploy` that waits (after touching `/srv/in-post`) while `/srv/hold-post` exists.
const GATED_POST_DEPLOY: &str = "if [ -f /srv/hold-post ]; then touch /srv/in-post; while [ -f /srv/hold-post ]; do sleep 0.05; done; fi; ./app.sh > built.txt";

struct Suite {
    fleet: Fleet,
    repo: GitRepo,
    project: Project,
    port: u16,
    agent_port: u16,
    version: u32,
}

impl Suite {
    fn hosts(&self) -> &[SshHost] {
        &self.fleet.hosts
    }

    fn write_ecosystem(&self, extra: Value) {
        let hosts = self.fleet.hosts_json();
        let env = with_keys(
            json!({
                "host": hosts, "ref": "main", "repo": self.repo.url(), "path": ROOT, "fetch": "push",
                "post-deploy": GATED_POST_DEPLOY, "keep_releases": 2,
                "agent": {"port": self.agent_port, "bind": "host"},
            }),
            &extra,
        );
        self.project
            .write_ecosystem(&json!({"deploy": {"production": env}}));
    }

    /// The next version committed; returns it.
    fn next_version(&mut self) -> String {
        self.version += 1;
        let v = self.version.to_string();
        self.repo
            .commit_file("VERSION", &format!("{v}\n"), &format!("version {v}"));
        v
    }

    /// Every host serves a complete release, its apps answer, and the app runs exactly its
    /// instances on every host (no copy left over from a killed rollout). Returns each host's
    /// version.
    fn check_complete(&self) -> Vec<String> {
        let mut versions = Vec::new();
        for host in self.hosts() {
            let release = current_release(host).expect("current");
            assert!(
                on_host(host, &format!(".pmfleet/prepared/{release}")).exists(),
                "{} serves the complete release {release}",
                host.address()
            );
            assert!(on_host(host, "current/built.txt").exists());
            let version = served_version(host);
            wait_until(
                Duration::from_secs(60),
                &format!("{} answers version {version}", host.address()),
                || {
                    get_from(host.address(), self.port).map(|b| b.trim().to_string())
                        == Ok(format!("version {version}"))
                },
            );
            versions.push(version);
        }
        let expected = 2 * self.hosts().len();
        wait_until(
            Duration::from_secs(60),
            &format!("the app runs exactly {expected} instances"),
            || app_processes(self.port, None) == expected,
        );
        versions
    }

    /// Starts a deploy of the next version, waits for `at`, kills the controller (SIGKILL).
    fn kill_deploy_when(&mut self, at: impl FnMut(&Suite) -> bool) -> String {
        let version = self.next_version();
        let mut at = at;
        let mut victim = self.project.spawn(&["deploy", "production"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !at(self) {
            assert!(
                victim.try_wait().unwrap().is_none(),
                "the deploy ended before the step to kill it at"
            );
            assert!(Instant::now() < deadline, "the step to kill at never came");
            std::thread::sleep(Duration::from_millis(10));
        }
        victim.kill().unwrap();
        victim.wait().unwrap();
        version
    }

    /// The next command names the dead holder and the interrupted rollout; `unlock` needs no
    /// --force; then `converge` brings every host to one release.
    fn recover(&mut self, interrupted: bool, converge: &[&str]) -> String {
        let refused = self.project.pmfleet(&["deploy", "production"]);
        assert_eq!(refused.code, 4, "{}", refused.all());
        assert!(
            refused.stdout.contains("on this machine) is gone"),
            "{}",
            refused.stdout
        );
        ok(&self.project.pmfleet(&["deploy", "production", "unlock"]));
        let list = self.project.pmfleet(&["deploy", "production", "list"]);
        ok(&list);
        if interrupted {
            assert!(
                list.stdout.contains("was interrupted"),
                "list says so:\n{}",
                list.stdout
            );
        }
        let run = self.project.pmfleet(converge);
        ok(&run);
        if interrupted {
            assert!(run.stdout.contains("was interrupted"), "{}", run.stdout);
        }
        let versions = self.check_complete();
        assert!(
            versions.windows(2).all(|w| w[0] == w[1]),
            "one release everywhere: {versions:?}"
        );
        versions[0].clone()
    }
}

#[test]
fn a_controller_killed_at_any_rollout_step_leaves_every_host_serving_a_complete_release() {
    require_sshd!();
    let fleet = Fleet::start(2);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    let port = free_port();
    repo.write("server.js", GATED_VERSION_SERVER_JS);
    repo.write(
        "ecosystem.json",
        &json!({"apps": [{"name": "web", "script": "server.js", "instances": 2,
            "exec_mode": "cluster", "listen_timeout": 60000, "env": {"PORT": port}}]})
        .to_string(),
    );
    repo.commit_file("VERSION", "1\n", "web app");
    let mut s = Suite {
        fleet,
        repo,
        project,
        port,
        agent_port: free_port(),
        version: 1,
    };
    s.write_ecosystem(json!({}));
    ok(&s.project.pmfleet(&["ca", "init"]));
    ok(&s.project.pmfleet(&["deploy", "production", "setup"]));
    ok(&s.project.pmfleet(&["deploy", "production"]));
    s.check_complete();

    // After connect: killed as soon as it holds a lock.
    s.kill_deploy_when(|s| on_host(&s.hosts()[0], ".pmfleet/lock").exists());
    s.check_complete();
    s.recover(false, &["deploy", "production"]);

    // During post-deploy.
    for host in s.hosts() {
        std::fs::write(host.root().join("hold-post"), "").unwrap();
        let _ = std::fs::remove_file(host.root().join("in-post"));
    }
    s.kill_deploy_when(|s| s.hosts().iter().all(|h| h.root().join("in-post").exists()));
    for host in s.hosts() {
        std::fs::remove_file(host.root().join("hold-post")).unwrap();
    }
    s.check_complete();
    s.recover(true, &["deploy", "production"]);

    // During the fetch (a large archive pushed to every host).
    let big: String = (0..1_000_000u64)
        .map(|i| format!("{:016x}\n", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    s.repo.commit_file("big.txt", &big, "big file");
    let before: Vec<usize> = s.hosts().iter().map(|h| releases(h).len()).collect();
    s.kill_deploy_when(|s| {
        s.hosts()
            .iter()
            .zip(&before)
            .any(|(h, n)| releases(h).len() > *n)
    });
    s.check_complete();
    s.recover(true, &["deploy", "production"]);

    // After the first batch switched (batch: 1), during its agent's reload: the fleet is split.
    s.write_ecosystem(json!({"batch": 1}));
    let old = served_version(&s.hosts()[1]);
    let next = (s.version + 1).to_string();
    for host in s.hosts() {
        std::fs::write(host.root().join(format!("hold-{next}")), "").unwrap();
    }
    let r_old = current_release(&s.hosts()[0]).unwrap();
    // Killed once host 0 switched and its agent started the new release's instances.
    s.kill_deploy_when(|s| {
        current_release(&s.hosts()[0])
            .filter(|r| *r != r_old)
            .is_some_and(|r| app_processes(s.port, Some(&r)) > 0)
    });
    for host in s.hosts() {
        std::fs::remove_file(host.root().join(format!("hold-{next}"))).unwrap();
    }
    let versions = s.check_complete();
    assert_eq!(
        versions,
        [next.clone(), old.clone()],
        "host 0 switched, host 1 did not"
    );
    let history =
        std::fs::read_to_string(on_host(&s.hosts()[0], ".pmfleet/history.jsonl")).unwrap();
    let switched = current_release(&s.hosts()[0]).unwrap();
    assert!(
        history
            .lines()
            .any(|l| l.contains(&format!("\"release\":\"{switched}\""))
                && l.contains("\"outcome\":\"success\"")),
        "the switch is in the history although the controller died:\n{history}"
    );
    // A revert brings every host back to the release before the interrupted rollout.
    assert_eq!(
        s.recover(true, &["deploy", "production", "revert", "1"]),
        old
    );

    // During the agents' reload, every host switched (batch: all).
    s.write_ecosystem(json!({}));
    let next = (s.version + 1).to_string();
    for host in s.hosts() {
        std::fs::write(host.root().join(format!("hold-{next}")), "").unwrap();
    }
    let before: Vec<Option<String>> = s.hosts().iter().map(current_release).collect();
    // Killed once every host switched and every agent started the new release's instances.
    s.kill_deploy_when(|s| {
        let now: Vec<Option<String>> = s.hosts().iter().map(current_release).collect();
        now.iter().zip(&before).all(|(n, b)| n != b)
            && now
                .first()
                .cloned()
                .flatten()
                .is_some_and(|r| app_processes(s.port, Some(&r)) >= s.hosts().len())
    });
    for host in s.hosts() {
        std::fs::remove_file(host.root().join(format!("hold-{next}"))).unwrap();
    }
    assert_eq!(s.check_complete(), [next.clone(), next.clone()]);
    s.recover(true, &["deploy", "production"]);

    // During prune: an old release full of files takes a while to remove.
    let host = &s.hosts()[0];
    let doomed = releases(host)
        .into_iter()
        .find(|r| Some(r) != current_release(host).as_ref())
        .expect("an old release to prune");
    let junk = on_host(host, &format!("releases/{doomed}/junk"));
    std::fs::create_dir_all(&junk).unwrap();
    for i in 0..30_000 {
        std::fs::write(junk.join(i.to_string()), "").unwrap();
    }
    s.write_ecosystem(json!({"keep_releases": 1}));
    s.kill_deploy_when(|_| {
        std::fs::read_dir(&junk)
            .map(|d| d.count() < 30_000)
            .unwrap_or(true)
    });
    s.check_complete();
    s.recover(true, &["deploy", "production"]);
}
