//! The deploy's safety promises, each held against the way it was once broken: broken locks,
//! deploys started at the same instant, a holder that died on this machine, Ctrl-C during a
//! hook, a torn history line, a symlink in the repository, prune's order. The real binary
//! against real OpenSSH hosts (each with its own `/srv`) and real git repositories.

use std::path::Path;
use std::time::{Duration, Instant};

use pmfleet_testkit::deployed::{current_release, ecosystem, on_host, served_version};
use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::{Project, ok};
use pmfleet_testkit::sshd::{Fleet, SshHost};
use pmfleet_testkit::{require_sshd, wait_until};
use serde_json::{Value, json};

/// A `post-deploy` that, once built, touches `/srv/waiting` and waits while `/srv/hold`
/// exists, writing its own pid to `/srv/hook.pid`.
const HOLD_POST_DEPLOY: &str = "./app.sh > built.txt; echo $$ > /srv/hook.pid; touch /srv/waiting; while [ -f /srv/hold ]; do sleep 0.05; done";

fn assert_fleet_serves(hosts: &[SshHost], version: &str) -> String {
    let first = current_release(&hosts[0]).expect("current on host 0");
    for host in hosts {
        assert_eq!(current_release(host).as_deref(), Some(first.as_str()));
        assert_eq!(served_version(host), version, "on {}", host.address());
    }
    first
}

fn process_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn hook_pid(root: &Path) -> i32 {
    std::fs::read_to_string(root.join("hook.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `n` hosts set up and serving version 1, with `extra` in the ecosystem.
fn serving(n: usize, extra: Value) -> (Fleet, GitRepo, Project, String) {
    let fleet = Fleet::start(n);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&ecosystem(&fleet.hosts, &repo, extra));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    let r1 = assert_fleet_serves(&fleet.hosts, "1");
    (fleet, repo, project, r1)
}

fn hold(hosts: &[SshHost]) {
    for host in hosts {
        std::fs::write(host.root().join("hold"), "").unwrap();
        let _ = std::fs::remove_file(host.root().join("waiting"));
    }
}

fn release_hold(hosts: &[SshHost]) {
    for host in hosts {
        let _ = std::fs::remove_file(host.root().join("hold"));
    }
}

fn all_waiting(hosts: &[SshHost]) -> bool {
    hosts.iter().all(|h| h.root().join("waiting").exists())
}

#[test]
fn a_deploy_that_lost_its_lock_never_switches() {
    require_sshd!();
    let (fleet, repo, project, r1) = serving(2, json!({"post-deploy": HOLD_POST_DEPLOY}));
    hold(&fleet.hosts);
    repo.commit_file("VERSION", "2\n", "version 2");
    let deploy = project.spawn(&["deploy", "production"]);
    wait_until(
        Duration::from_secs(60),
        "post-deploy waiting on every host",
        || all_waiting(&fleet.hosts),
    );
    // Someone breaks the lock of the running deploy.
    ok(&project.pmfleet(&["deploy", "production", "unlock", "--force"]));
    release_hold(&fleet.hosts);
    let out = deploy.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a deploy whose lock was broken stops:\n{stdout}"
    );
    assert!(stdout.contains("broken by someone else"), "{stdout}");
    for host in &fleet.hosts {
        assert_eq!(
            current_release(host).as_deref(),
            Some(r1.as_str()),
            "never switched"
        );
    }
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts, "2");
}

#[test]
fn two_deploys_started_at_once_exactly_one_proceeds() {
    require_sshd!();
    let (fleet, repo, project, _) = serving(4, json!({"post-deploy": HOLD_POST_DEPLOY}));
    for round in 2..5 {
        hold(&fleet.hosts);
        repo.commit_file("VERSION", &format!("{round}\n"), "next");
        let mut deploys = vec![
            project.spawn(&["deploy", "production"]),
            project.spawn(&["deploy", "production"]),
        ];
        // The one that proceeds waits in post-deploy until the other has answered.
        let deadline = Instant::now() + Duration::from_secs(60);
        let first = loop {
            if let Some(i) = deploys
                .iter_mut()
                .position(|d| d.try_wait().unwrap().is_some())
            {
                break deploys.remove(i);
            }
            assert!(Instant::now() < deadline, "neither deploy finished");
            std::thread::sleep(Duration::from_millis(20));
        };
        let refused = first.wait_with_output().unwrap();
        assert_eq!(
            refused.status.code(),
            Some(4),
            "one of two deploys started at once is refused, the other proceeds:\n{}",
            String::from_utf8_lossy(&refused.stdout)
        );
        release_hold(&fleet.hosts);
        let proceeded = deploys.remove(0).wait_with_output().unwrap();
        assert_eq!(
            proceeded.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&proceeded.stdout)
        );
        assert_fleet_serves(&fleet.hosts, &round.to_string());
        for host in &fleet.hosts {
            assert!(!on_host(host, ".pmfleet/lock").exists());
        }
    }
}

#[test]
fn a_lock_whose_holder_died_here_is_reported_dead_at_once() {
    require_sshd!();
    let (fleet, repo, project, r1) = serving(2, json!({"post-deploy": HOLD_POST_DEPLOY}));
    hold(&fleet.hosts);
    repo.commit_file("VERSION", "2\n", "version 2");
    let mut victim = project.spawn(&["deploy", "production"]);
    let pid = victim.id();
    wait_until(Duration::from_secs(60), "post-deploy waiting", || {
        all_waiting(&fleet.hosts)
    });
    victim.kill().unwrap();
    victim.wait().unwrap();
    release_hold(&fleet.hosts);
    let refused = project.pmfleet(&["deploy", "production"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused
            .stdout
            .contains(&format!("(pid {pid} on this machine) is gone")),
        "names the dead holder at once:\n{}",
        refused.stdout
    );
    assert!(
        refused.stdout.contains("pmfleet deploy production unlock"),
        "{}",
        refused.stdout
    );
    let unlocked = project.pmfleet(&["deploy", "production", "unlock"]);
    ok(&unlocked);
    assert!(unlocked.stdout.contains("is gone"), "{}", unlocked.stdout);
    for host in &fleet.hosts {
        assert_eq!(current_release(host).as_deref(), Some(r1.as_str()));
    }
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts, "2");
}

/// Ctrl-C during `post-deploy`: the hook is ended before the lock is given back. The hook
/// records, when it is told to stop, whether the lock was still held.
fn interrupted_deploy_ends_its_hook(
    project: &Project,
    roots: &[std::path::PathBuf],
    lock: &[std::path::PathBuf],
) {
    let child = project.spawn(&["deploy", "production"]);
    wait_until(Duration::from_secs(60), "post-deploy waiting", || {
        roots.iter().all(|r| r.join("waiting").exists())
    });
    let hooks: Vec<i32> = roots.iter().map(|r| hook_pid(r)).collect();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for ((root, pid), lock) in roots.iter().zip(hooks).zip(lock) {
        assert!(
            !process_alive(pid),
            "the hook (pid {pid}) still runs after the deploy ended:\n{stdout}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("ended"))
                .unwrap_or_default()
                .trim(),
            "locked",
            "the hook ended while the lock was held"
        );
        assert!(!lock.exists(), "the lock is released");
    }
}

const TRAPPING_POST_DEPLOY: &str = "./app.sh > built.txt; r=${PMFLEET_DEPLOY_PATH%/app}; echo $$ > $r/hook.pid; trap 'if [ -f $PMFLEET_DEPLOY_PATH/.pmfleet/lock ]; then echo locked > $r/ended; else echo unlocked > $r/ended; fi; exit 1' TERM; touch $r/waiting; while [ -f $r/hold ]; do sleep 0.05; done";

#[test]
fn an_interrupted_deploy_ends_its_post_deploy_before_unlocking() {
    require_sshd!();
    let (fleet, repo, project, _) = serving(2, json!({}));
    project.write_ecosystem(&ecosystem(
        &fleet.hosts,
        &repo,
        json!({"post-deploy": TRAPPING_POST_DEPLOY}),
    ));
    hold(&fleet.hosts);
    repo.commit_file("VERSION", "2\n", "version 2");
    let roots: Vec<_> = fleet.hosts.iter().map(|h| h.root().to_path_buf()).collect();
    let locks: Vec<_> = fleet
        .hosts
        .iter()
        .map(|h| on_host(h, ".pmfleet/lock"))
        .collect();
    interrupted_deploy_ends_its_hook(&project, &roots, &locks);
    assert_fleet_serves(&fleet.hosts, "1");
}

#[test]
fn an_interrupted_localhost_deploy_ends_its_post_deploy_before_unlocking() {
    require_sshd!();
    let repo = GitRepo::new();
    let home = tempfile::tempdir().unwrap();
    let project = Project::new(home.path());
    let root = project.path().join("srv");
    std::fs::create_dir_all(&root).unwrap();
    let eco = |hook: &str| {
        json!({"deploy": {"local": {
            "host": "localhost", "ref": "main", "repo": repo.url(),
            "path": root.join("app").display().to_string(), "post-deploy": hook, "agent": false,
        }}})
    };
    project.write_ecosystem(&eco("./app.sh > built.txt"));
    ok(&project.pmfleet(&["deploy", "local", "setup"]));
    ok(&project.pmfleet(&["deploy", "local"]));
    project.write_ecosystem(&eco(TRAPPING_POST_DEPLOY));
    std::fs::write(root.join("hold"), "").unwrap();
    let child = project.spawn(&["deploy", "local"]);
    wait_until(Duration::from_secs(60), "post-deploy waiting", || {
        root.join("waiting").exists()
    });
    let pid = hook_pid(&root);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        !process_alive(pid),
        "the hook still runs after the deploy ended:\n{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("ended"))
            .unwrap_or_default()
            .trim(),
        "locked",
        "the hook ended while the lock was held:\n{stdout}"
    );
    assert!(!root.join("app/.pmfleet/lock").exists());
}

#[test]
fn a_torn_history_line_never_sends_revert_to_the_wrong_release() {
    require_sshd!();
    let (fleet, repo, project, _) = serving(2, json!({}));
    repo.commit_file("VERSION", "2\n", "version 2");
    ok(&project.pmfleet(&["deploy", "production"]));
    let r2 = assert_fleet_serves(&fleet.hosts, "2");
    // A writer died half-way through a line on host 0.
    let history = on_host(&fleet.hosts[0], ".pmfleet/history.jsonl");
    let mut text = std::fs::read_to_string(&history).unwrap();
    text.push_str("{\"id\":\"torn\",\"act");
    std::fs::write(&history, text).unwrap();
    repo.commit_file("VERSION", "3\n", "version 3");
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts, "3");
    ok(&project.pmfleet(&["deploy", "production", "revert", "1"]));
    assert_eq!(
        assert_fleet_serves(&fleet.hosts, "2"),
        r2,
        "back to the release before, on every host"
    );
}

#[test]
fn a_symlink_in_the_repo_never_leads_shared_files_outside_the_root() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let repo = GitRepo::new();
    std::os::unix::fs::symlink("/srv/outside", repo.path().join("config")).unwrap();
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "config link"]);
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&ecosystem(
        &fleet.hosts,
        &repo,
        json!({"fetch": "push", "shared_files": ["config/.env"], "shared_dirs": ["config/logs"]}),
    ));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    let outside = fleet.hosts[0].root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join(".env"), "precious\n").unwrap();
    let run = project.pmfleet(&["deploy", "production"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains("leading outside"),
        "says why:\n{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_to_string(outside.join(".env")).unwrap(),
        "precious\n"
    );
    assert!(
        !std::fs::symlink_metadata(outside.join(".env"))
            .unwrap()
            .is_symlink()
    );
    assert!(std::fs::symlink_metadata(outside.join("logs")).is_err());
    assert!(
        current_release(&fleet.hosts[0]).is_none(),
        "nothing switched"
    );
}

#[test]
fn prune_keeps_the_revert_target_whatever_the_release_names() {
    require_sshd!();
    let (fleet, repo, project, _) = serving(1, json!({"keep_releases": 2}));
    let host = &fleet.hosts[0];
    // A release made by a controller whose clock ran years ahead, deployed before the others.
    let ahead = "20991231-235959-999";
    let dir = on_host(host, &format!("releases/{ahead}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("VERSION"), "0\n").unwrap();
    std::fs::write(on_host(host, &format!(".pmfleet/prepared/{ahead}")), "").unwrap();
    let history = on_host(host, ".pmfleet/history.jsonl");
    let old = std::fs::read_to_string(&history).unwrap();
    let record = json!({"id": "ahead", "action": "deploy", "release": ahead, "sha": "0", "ref": "main",
        "who": "skewed", "when": "2026-01-01T00:00:00Z", "outcome": "success"});
    std::fs::write(&history, format!("{record}\n{old}")).unwrap();
    let r1 = current_release(host).unwrap();
    repo.commit_file("VERSION", "2\n", "version 2");
    ok(&project.pmfleet(&["deploy", "production"]));
    repo.commit_file("VERSION", "3\n", "version 3");
    ok(&project.pmfleet(&["deploy", "production"]));
    // Kept: the newest two along the history (r2 and r3); the skewed one went, not r2.
    assert!(
        !on_host(host, &format!("releases/{ahead}")).exists(),
        "the oldest by history went"
    );
    assert!(!on_host(host, &format!("releases/{r1}")).exists());
    ok(&project.pmfleet(&["deploy", "production", "revert", "1"]));
    assert_fleet_serves(&fleet.hosts, "2");
}
