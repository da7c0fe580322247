//! `pmfleet deploy` end to end: the real binary, real OpenSSH hosts (each with its own `/srv`),
//! real git repositories.

use std::path::Path;
use std::time::Duration;

use pmfleet_testkit::deployed::{
    assert_fleet_serves, current_release, ecosystem, on_host, releases, served_version,
};
use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::{Project, ok};
use pmfleet_testkit::require_sshd;
use pmfleet_testkit::sshd::{Fleet, SshHost};
use pmfleet_testkit::wait_until;
use serde_json::{Value, json};

/// How long a deploy step a test waits for may take.
const WAIT: Duration = Duration::from_secs(60);

/// A `post-deploy` that hangs (after touching `/srv/hanging`) while `/srv/hang` exists.
const HANG_POST_DEPLOY: &str =
    "./app.sh > built.txt; if [ -f /srv/hang ]; then touch /srv/hanging; sleep 30; fi";

/// A fleet set up and serving version 1, the start of most tests here.
struct Serving {
    fleet: Fleet,
    repo: GitRepo,
    project: Project,
    /// The release serving version 1 on every host.
    r1: String,
}

/// `n` hosts with the ecosystem's `extra` keys, set up, and version 1 deployed and serving.
fn serving(n: usize, extra: Value) -> Serving {
    let fleet = Fleet::start(n);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&ecosystem(&fleet.hosts, &repo, extra));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    let r1 = assert_fleet_serves(&fleet.hosts, "1");
    Serving {
        fleet,
        repo,
        project,
        r1,
    }
}

#[test]
fn setup_deploy_update_revert_list_exec_on_three_hosts() {
    require_sshd!();
    let fleet = Fleet::start(3);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&ecosystem(
        &fleet.hosts,
        &repo,
        json!({"keep_releases": 10}),
    ));

    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    for host in &fleet.hosts {
        assert!(on_host(host, "releases").is_dir());
        assert!(on_host(host, "shared").is_dir());
        assert!(on_host(host, "repo").is_dir(), "mirror for fetch: host");
    }

    let run = project.pmfleet(&["deploy", "production"]);
    ok(&run);
    let sha1 = repo.head();
    assert!(
        run.stdout.contains(&sha1[..7]),
        "the resolved SHA is shown:\n{}",
        run.stdout
    );
    let r1 = assert_fleet_serves(&fleet.hosts, "1");

    repo.commit_file("VERSION", "2\n", "version 2");
    ok(&project.pmfleet(&["deploy", "production", "update"]));
    let r2 = assert_fleet_serves(&fleet.hosts, "2");
    assert_ne!(r1, r2);

    repo.commit_file("VERSION", "3\n", "version 3");
    ok(&project.pmfleet(&["deploy", "production"]));
    let r3 = assert_fleet_serves(&fleet.hosts, "3");

    // revert 1 twice goes back two releases: a release reverted away from is skipped.
    ok(&project.pmfleet(&["deploy", "production", "revert", "1"]));
    assert_eq!(assert_fleet_serves(&fleet.hosts, "2"), r2);
    ok(&project.pmfleet(&["deploy", "production", "revert", "1"]));
    assert_eq!(assert_fleet_serves(&fleet.hosts, "1"), r1);
    let run = project.pmfleet(&["deploy", "production", "revert", "1"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.all().contains("cannot revert 1"), "{}", run.all());
    assert_eq!(assert_fleet_serves(&fleet.hosts, "1"), r1);

    // Deploying again, then revert 2, goes back past the reverted releases' line.
    repo.commit_file("VERSION", "4\n", "version 4");
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts, "4");
    repo.commit_file("VERSION", "5\n", "version 5");
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts, "5");
    ok(&project.pmfleet(&["deploy", "production", "revert", "2"]));
    assert_eq!(assert_fleet_serves(&fleet.hosts, "1"), r1);

    let list = project.pmfleet(&["deploy", "production", "list"]);
    ok(&list);
    for r in [&r1, &r2, &r3] {
        assert!(
            list.stdout.contains(r.as_str()),
            "list shows {r}:\n{}",
            list.stdout
        );
    }
    assert!(
        list.stdout.contains(&format!("*  {r1}")),
        "current is marked:\n{}",
        list.stdout
    );

    let current = project.pmfleet(&["deploy", "production", "current"]);
    ok(&current);
    assert_eq!(current.stdout.matches(&r1).count(), 3, "{}", current.stdout);
    assert!(current.stdout.contains(&sha1), "{}", current.stdout);

    let exec = project.pmfleet(&["deploy", "production", "exec", "cat VERSION; pwd"]);
    ok(&exec);
    for host in &fleet.hosts {
        let prefix = format!("{}:{} | exec | 1", host.address(), host.port());
        assert!(
            exec.stdout.contains(&prefix),
            "missing `{prefix}`:\n{}",
            exec.stdout
        );
    }
    let failing = project.pmfleet(&["deploy", "production", "exec", "exit 3"]);
    assert_eq!(failing.code, 1, "{}", failing.all());

    let history =
        std::fs::read_to_string(on_host(&fleet.hosts[0], ".pmfleet/history.jsonl")).unwrap();
    let records: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 8, "5 deploys and 3 reverts: {history}");
    for record in &records {
        for key in ["id", "release", "sha", "ref", "who", "when", "outcome"] {
            assert!(record.get(key).is_some(), "{key} in {record}");
        }
        assert_eq!(record["who"], "tester");
    }
    assert!(
        !on_host(&fleet.hosts[0], ".pmfleet/lock").exists(),
        "lock released"
    );
}

#[test]
fn push_mode_sends_the_tree_and_prune_keeps_the_newest() {
    require_sshd!();
    let fleet = Fleet::start(2);
    let repo = GitRepo::new();
    repo.git(&["checkout", "-q", "-b", "release"]);
    repo.commit_file("assets/config.txt", "shared config\n", "config");
    std::os::unix::fs::symlink("VERSION", repo.path().join("VERSION.link")).unwrap();
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "link"]);
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&ecosystem(
        &fleet.hosts,
        &repo,
        json!({
            "fetch": "push", "ref": "release", "keep_releases": 2,
            "shared_dirs": ["logs"], "shared_files": ["config/.env"],
        }),
    ));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    for host in &fleet.hosts {
        assert!(
            !on_host(host, "repo").exists(),
            "push mode keeps no mirror on the host"
        );
    }
    std::fs::create_dir_all(on_host(&fleet.hosts[0], "shared/config")).unwrap();
    std::fs::write(on_host(&fleet.hosts[0], "shared/config/.env"), "SECRET=1\n").unwrap();

    let mut seen = Vec::new();
    for version in ["1", "2", "3", "4"] {
        if version != "1" {
            repo.commit_file("VERSION", &format!("{version}\n"), version);
        }
        ok(&project.pmfleet(&["deploy", "production"]));
        seen.push(assert_fleet_serves(&fleet.hosts, version));
    }
    for host in &fleet.hosts {
        assert_eq!(
            releases(host),
            seen[2..].to_vec(),
            "keep_releases: 2 on {}",
            host.address()
        );
        let app = on_host(host, "current/app.sh");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&app).unwrap().permissions().mode() & 0o111,
            0o111,
            "executable bit kept"
        );
        assert_eq!(
            std::fs::read_link(on_host(host, "current/VERSION.link")).unwrap(),
            Path::new("VERSION")
        );
        assert!(
            std::fs::symlink_metadata(on_host(host, "current/logs"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(on_host(host, "current/assets/config.txt")).unwrap(),
            "shared config\n"
        );
    }
    assert_eq!(
        std::fs::read_to_string(on_host(&fleet.hosts[0], "current/config/.env")).unwrap(),
        "SECRET=1\n",
        "shared files survive releases"
    );
}

#[test]
fn post_deploy_failing_on_one_host_switches_no_host() {
    require_sshd!();
    let Serving {
        fleet,
        repo,
        project,
        r1,
    } = serving(
        3,
        json!({"post-deploy": "./app.sh > built.txt && test ! -f /srv/broken"}),
    );

    std::fs::write(fleet.hosts[1].root().join("broken"), "").unwrap();
    repo.commit_file("VERSION", "2\n", "version 2");
    let run = project.pmfleet(&["deploy", "production"]);
    assert_eq!(run.code, 1, "exit code says failed:\n{}", run.all());
    assert!(run.stdout.contains("post-deploy"), "{}", run.stdout);
    assert!(run.stdout.contains("aborted"), "{}", run.stdout);
    assert_eq!(
        assert_fleet_serves(&fleet.hosts, "1"),
        r1,
        "no host switched"
    );
    for host in &fleet.hosts {
        assert_eq!(
            releases(host),
            vec![r1.clone()],
            "the failed release is gone on {}",
            host.address()
        );
        assert!(!on_host(host, ".pmfleet/lock").exists());
    }

    std::fs::remove_file(fleet.hosts[1].root().join("broken")).unwrap();
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts, "2");
}

#[test]
fn an_unreachable_host_stops_the_switch_and_is_reported_apart() {
    require_sshd!();
    let Serving {
        mut fleet,
        repo,
        project,
        r1,
    } = serving(3, json!({}));

    fleet.hosts[2].stop();
    repo.commit_file("VERSION", "2\n", "version 2");
    let run = project.pmfleet(&["deploy", "production"]);
    assert_eq!(run.code, 3, "exit code says unreachable:\n{}", run.all());
    assert!(run.stdout.contains("unreachable"), "{}", run.stdout);
    for host in &fleet.hosts {
        assert_eq!(current_release(host).as_deref(), Some(r1.as_str()));
        assert!(!on_host(host, ".pmfleet/lock").exists());
    }

    fleet.hosts[2].restart();
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts, "2");
}

#[test]
fn a_changed_host_key_is_refused_with_its_fingerprint() {
    require_sshd!();
    let Serving {
        mut fleet,
        repo,
        project,
        r1,
    } = serving(2, json!({}));

    fleet.hosts[1].regenerate_host_key();
    let fingerprint = fleet.hosts[1].host_key_fingerprint();
    repo.commit_file("VERSION", "2\n", "version 2");
    let run = project.pmfleet(&["deploy", "production", "--accept-new-host-key"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().contains(&fingerprint),
        "fingerprint {fingerprint} shown:\n{}",
        run.all()
    );
    assert!(run.all().contains("known_hosts"), "{}", run.all());
    for host in &fleet.hosts {
        assert_eq!(current_release(host).as_deref(), Some(r1.as_str()));
    }
}

#[test]
fn a_second_deploy_is_refused_naming_the_holder() {
    require_sshd!();
    let fleet = Fleet::start(2);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&ecosystem(
        &fleet.hosts,
        &repo,
        json!({"post-deploy": "./app.sh > built.txt; touch /srv/waiting; while [ ! -f /srv/go ]; do sleep 0.1; done"}),
    ));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    let first = project.spawn(&["deploy", "production"]);
    wait_until(WAIT, "first deploy in post-deploy", || {
        fleet
            .hosts
            .iter()
            .all(|h| h.root().join("waiting").exists())
    });

    let second = project.pmfleet(&["deploy", "production"]);
    assert_eq!(
        second.code,
        4,
        "exit code says lock held:\n{}",
        second.all()
    );
    assert!(
        second.stdout.contains("locked by tester"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("deploy "),
        "names the deploy id: {}",
        second.stdout
    );

    for host in &fleet.hosts {
        std::fs::write(host.root().join("go"), "").unwrap();
    }
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_fleet_serves(&fleet.hosts, "1");

    // --lock-wait waits for the holder instead of failing.
    for host in &fleet.hosts {
        std::fs::remove_file(host.root().join("go")).unwrap();
        std::fs::remove_file(host.root().join("waiting")).unwrap();
    }
    repo.commit_file("VERSION", "2\n", "version 2");
    let first = project.spawn(&["deploy", "production"]);
    wait_until(WAIT, "deploy in post-deploy", || {
        fleet
            .hosts
            .iter()
            .all(|h| h.root().join("waiting").exists())
    });
    let known: Vec<usize> = fleet.hosts.iter().map(|h| h.connections().len()).collect();
    let waiter = project.spawn(&["deploy", "production", "--lock-wait", "60s"]);
    // Waiting: its connection to a host ran a second lock attempt, so the first was refused.
    // (Locks are taken host by host in one order, up to the first refusal: only the first host
    // in that order sees the waiter's attempts.)
    wait_until(WAIT, "the second deploy waiting for the lock", || {
        fleet.hosts.iter().zip(&known).any(|(host, known)| {
            host.connections()
                .iter()
                .skip(*known)
                .any(|c| c.commands >= 2)
        })
    });
    for host in &fleet.hosts {
        std::fs::write(host.root().join("go"), "").unwrap();
    }
    assert!(first.wait_with_output().unwrap().status.success());
    let waited = waiter.wait_with_output().unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stdout)
    );
    assert_fleet_serves(&fleet.hosts, "2");
}

#[test]
fn controller_killed_mid_deploy_leaves_a_complete_release_and_a_breakable_lock() {
    require_sshd!();
    let Serving {
        fleet,
        repo,
        project,
        r1,
    } = serving(2, json!({"post-deploy": HANG_POST_DEPLOY}));

    // Killed during post-deploy.
    for host in &fleet.hosts {
        std::fs::write(host.root().join("hang"), "").unwrap();
    }
    repo.commit_file("VERSION", "2\n", "version 2");
    let mut victim = project.spawn(&["deploy", "production"]);
    wait_until(WAIT, "post-deploy running", || {
        fleet
            .hosts
            .iter()
            .all(|h| h.root().join("hanging").exists())
    });
    victim.kill().unwrap();
    victim.wait().unwrap();
    for host in &fleet.hosts {
        std::fs::remove_file(host.root().join("hang")).unwrap();
        assert_eq!(assert_fleet_serves(std::slice::from_ref(host), "1"), r1);
        assert!(
            on_host(host, ".pmfleet/lock").exists(),
            "the dead deploy's lock remains"
        );
    }

    // As if the dead deploy had run on another machine (this one would know its pid is gone):
    // the lock is refused while fresh; once its heartbeat is stale the message says how to
    // break it.
    for host in &fleet.hosts {
        let lock = on_host(host, ".pmfleet/lock");
        let mut holder: Value =
            serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
        holder["machine"] = json!("another-machine");
        std::fs::write(&lock, format!("{holder}\n")).unwrap();
    }
    let refused = project.pmfleet(&["deploy", "production"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    let not_broken = project.pmfleet(&["deploy", "production", "unlock"]);
    assert_eq!(
        not_broken.code,
        4,
        "a live-looking lock is not broken without --force:\n{}",
        not_broken.all()
    );
    for host in &fleet.hosts {
        age_lock(host);
    }
    let stale = project.pmfleet(&["deploy", "production"]);
    assert_eq!(stale.code, 4, "{}", stale.all());
    assert!(stale.stdout.contains("looks dead"), "{}", stale.stdout);
    assert!(
        stale.stdout.contains("pmfleet deploy production unlock"),
        "{}",
        stale.stdout
    );
    ok(&project.pmfleet(&["deploy", "production", "unlock"]));

    let run = project.pmfleet(&["deploy", "production"]);
    ok(&run);
    assert!(
        run.stdout.contains("removed incomplete release"),
        "{}",
        run.stdout
    );
    let r2 = assert_fleet_serves(&fleet.hosts, "2");
    for host in &fleet.hosts {
        assert_eq!(
            releases(host),
            vec![r1.clone(), r2.clone()],
            "the half-made release was cleaned up"
        );
    }

    // Killed during fetch (push mode, a large archive): whatever step the kill lands on,
    // every host still serves a complete release, and the next deploy finishes the job.
    let big: String = (0..1_500_000u64)
        .map(|i| format!("{:016x}\n", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    repo.commit_file("big.txt", &big, "big file");
    repo.commit_file("VERSION", "3\n", "version 3");
    let mut eco = ecosystem(&fleet.hosts, &repo, json!({"fetch": "push"}));
    eco["deploy"]["production"]["post-deploy"] = json!("./app.sh > built.txt");
    project.write_ecosystem(&eco);
    let mut victim = project.spawn(&["deploy", "production"]);
    wait_until(WAIT, "fetch started on a host", || {
        fleet.hosts.iter().any(|h| releases(h).len() > 2)
    });
    victim.kill().unwrap();
    victim.wait().unwrap();
    for host in &fleet.hosts {
        let version = served_version(host);
        assert!(version == "2" || version == "3", "{version}");
        assert_fleet_serves(std::slice::from_ref(host), &version);
        if on_host(host, ".pmfleet/lock").exists() {
            age_lock(host);
        }
    }
    ok(&project.pmfleet(&["deploy", "production", "unlock"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts, "3");
}

#[test]
fn hostile_values_never_run_a_command() {
    require_sshd!();
    let fleet = Fleet::start(2);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    let canary = "/srv/canary";
    let hostile = [
        format!("; touch {canary}"),
        format!("$(touch {canary})"),
        format!("`touch {canary}`"),
        format!("'\"; touch {canary}; echo \""),
        format!("a b\ntouch {canary}"),
    ];
    let weird_path = format!("/srv/app dir; touch {canary} $(touch {canary})");
    let mut eco = ecosystem(
        &fleet.hosts,
        &repo,
        json!({
            "path": weird_path,
            "post-deploy": "printf '%s' \"$EVIL\" > evil.txt; printf '%s' \"$EVIL2\" > evil2.txt",
            "env": {"EVIL": hostile[1], "EVIL2": hostile[3]},
            "shared_dirs": [format!("logs$(touch {canary})")],
        }),
    );
    project.write_ecosystem(&eco);
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    for host in &fleet.hosts {
        let current = host
            .root()
            .join(format!("app dir; touch {canary} $(touch {canary})/current"));
        assert_eq!(
            std::fs::read_to_string(current.join("evil.txt")).unwrap(),
            hostile[1]
        );
        assert_eq!(
            std::fs::read_to_string(current.join("evil2.txt")).unwrap(),
            hostile[3]
        );
        assert!(current.join(format!("logs$(touch {canary})")).exists());
    }

    for bad_ref in &hostile {
        eco["deploy"]["production"]["ref"] = json!(bad_ref);
        project.write_ecosystem(&eco);
        let run = project.pmfleet(&["deploy", "production"]);
        assert_ne!(
            run.code,
            0,
            "ref {bad_ref:?} must not deploy:\n{}",
            run.all()
        );
    }
    eco["deploy"]["production"]["ref"] = json!("main");
    for bad_repo in &hostile {
        eco["deploy"]["production"]["repo"] = json!(bad_repo);
        project.write_ecosystem(&eco);
        let run = project.pmfleet(&["deploy", "production"]);
        assert_ne!(run.code, 0, "repo {bad_repo:?}:\n{}", run.all());
    }
    eco["deploy"]["production"]["repo"] = json!(repo.url());
    let mut bad_env = eco.clone();
    bad_env["deploy"]["production"]["env"] = json!({format!("X;touch {canary}"): "1"});
    project.write_ecosystem(&bad_env);
    let run = project.pmfleet(&["deploy", "production"]);
    assert_eq!(
        run.code,
        2,
        "an env key that is not a name is bad config:\n{}",
        run.all()
    );
    let mut bad_host = eco.clone();
    bad_host["deploy"]["production"]["host"] = json!([format!("127.0.0.1;touch {canary}")]);
    project.write_ecosystem(&bad_host);
    let run = project.pmfleet(&["deploy", "production"]);
    assert_ne!(run.code, 0, "{}", run.all());

    for host in &fleet.hosts {
        assert!(
            !host.root().join("canary").exists(),
            "a value ran as a command on {}",
            host.address()
        );
    }
    assert!(!Path::new(canary).exists());
}

#[test]
fn localhost_deploys_without_ssh() {
    let repo = GitRepo::new();
    let home = tempfile::tempdir().unwrap();
    let project = Project::new(home.path());
    let root = project.path().join("deployed");
    let mut eco = json!({
        "deploy": {"local": {
            "host": "localhost", "ref": "main", "repo": repo.url(),
            "path": root.display().to_string(), "post-deploy": "./app.sh > built.txt",
            "agent": false,
        }}
    });
    project.write_ecosystem(&eco);
    ok(&project.pmfleet(&["deploy", "local", "setup"]));
    ok(&project.pmfleet(&["deploy", "local"]));
    assert_eq!(
        std::fs::read_to_string(root.join("current/built.txt")).unwrap(),
        "app version 1\n"
    );
    eco["deploy"]["local"]["path"] = json!("~/deployed");
    project.write_ecosystem(&eco);
    ok(&project.pmfleet(&["deploy", "local", "setup"]));
    ok(&project.pmfleet(&["deploy", "local"]));
    assert_eq!(
        std::fs::read_to_string(home.path().join("deployed/current/VERSION")).unwrap(),
        "1\n",
        "`~` expands on the host"
    );
}

#[test]
fn bad_configuration_exits_2_with_the_reason() {
    let home = tempfile::tempdir().unwrap();
    let project = Project::new(home.path());
    let run = project.pmfleet(&["deploy", "production"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no ecosystem file"), "{}", run.stderr);
    project.write_ecosystem(&json!({"deploy": {"production": {"host": "h", "ref": "main", "repo": "/r", "path": "/srv/x"}}}));
    let run = project.pmfleet(&["deploy", "staging"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("production"),
        "lists known environments: {}",
        run.stderr
    );
    let run = project.pmfleet(&["deploy", "production", "revert", "zero"]);
    assert_eq!(run.code, 2, "{}", run.all());
}

/// Makes a lock look abandoned: its heartbeat (mtime) two minutes old.
fn age_lock(host: &SshHost) {
    let lock = on_host(host, ".pmfleet/lock");
    let status = std::process::Command::new("touch")
        .args(["-d", "2 minutes ago"])
        .arg(&lock)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn interrupting_a_deploy_before_the_switch_cleans_up_and_unlocks() {
    require_sshd!();
    let Serving {
        fleet,
        repo,
        project,
        r1,
    } = serving(2, json!({"post-deploy": HANG_POST_DEPLOY}));

    for host in &fleet.hosts {
        std::fs::write(host.root().join("hang"), "").unwrap();
    }
    repo.commit_file("VERSION", "2\n", "version 2");
    let child = project.spawn(&["deploy", "production"]);
    wait_until(WAIT, "post-deploy running", || {
        fleet
            .hosts
            .iter()
            .all(|h| h.root().join("hanging").exists())
    });
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    for host in &fleet.hosts {
        assert_eq!(current_release(host).as_deref(), Some(r1.as_str()));
        assert!(
            !on_host(host, ".pmfleet/lock").exists(),
            "no orphaned lock on {}",
            host.address()
        );
        std::fs::remove_file(host.root().join("hang")).unwrap();
    }
    ok(&project.pmfleet(&["deploy", "production"]));
    let r2 = assert_fleet_serves(&fleet.hosts, "2");
    for host in &fleet.hosts {
        assert_eq!(releases(host), vec![r1.clone(), r2.clone()]);
    }
}

#[test]
fn a_key_from_the_environment_logs_in_for_ci() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&ecosystem(&fleet.hosts, &repo, json!({})));
    let key = std::fs::read_to_string(fleet.home.private_key()).unwrap();
    std::fs::rename(
        fleet.home.private_key(),
        fleet.home.path().join("elsewhere"),
    )
    .unwrap();

    let without = project.pmfleet(&["deploy", "production", "setup"]);
    assert_eq!(without.code, 1, "{}", without.all());
    assert!(
        without.stdout.contains("elsewhere") || without.stdout.contains("id_ed25519"),
        "{}",
        without.all()
    );
    let setup = project
        .command(&["deploy", "production", "setup"])
        .env("PMFLEET_SSH_KEY", &key)
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stdout)
    );
    let with = project
        .command(&["deploy", "production", "exec", "echo hello"])
        .env("PMFLEET_SSH_KEY", &key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&with.stdout);
    assert!(with.status.success(), "{stdout}");
    assert!(stdout.contains("| exec | hello"), "{stdout}");
    assert!(!stdout.contains("PRIVATE KEY"), "the key is never printed");
}

#[test]
fn a_revert_that_fails_on_one_host_switches_the_others_back() {
    require_sshd!();
    let Serving {
        fleet,
        repo,
        project,
        r1,
    } = serving(2, json!({}));
    repo.commit_file("VERSION", "2\n", "version 2");
    ok(&project.pmfleet(&["deploy", "production"]));
    let r2 = assert_fleet_serves(&fleet.hosts, "2");

    // A directory where the fresh symlink must go makes the switch fail on host 1.
    let blocker = on_host(&fleet.hosts[1], ".pmfleet/current.new");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    let run = project.pmfleet(&["deploy", "production", "revert", "1"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("rolled back"), "{}", run.stdout);
    assert_eq!(
        assert_fleet_serves(&fleet.hosts, "2"),
        r2,
        "no host left on the old release"
    );

    std::fs::remove_dir_all(&blocker).unwrap();
    let previous = project.pmfleet(&["deploy", "production", "previous"]);
    assert_eq!(
        previous.stdout.matches(&r1).count(),
        2,
        "{}",
        previous.stdout
    );
    ok(&project.pmfleet(&["deploy", "production", "revert", "1"]));
    assert_eq!(assert_fleet_serves(&fleet.hosts, "1"), r1);
}

#[test]
fn batches_stop_at_the_first_failed_switch_and_switch_the_canary_back() {
    require_sshd!();
    let Serving {
        fleet,
        repo,
        project,
        r1,
    } = serving(3, json!({"batch": 1}));

    // The second host's switch fails: the first (the canary) goes back, the third never moves.
    let blocker = on_host(&fleet.hosts[1], ".pmfleet/current.new");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    repo.commit_file("VERSION", "2\n", "version 2");
    let run = project.pmfleet(&["deploy", "production", "--json"]);
    assert_eq!(run.code, 1, "{}", run.all());
    let events: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let outcome = |host: &SshHost| {
        events
            .iter()
            .find(|e| e["event"] == "summary" && e["host"] == host.label().as_str())
            .map(|e| e["outcome"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(outcome(&fleet.hosts[0]), "rolled back", "{}", run.stdout);
    assert_eq!(outcome(&fleet.hosts[1]), "failed", "{}", run.stdout);
    assert_eq!(outcome(&fleet.hosts[2]), "aborted", "{}", run.stdout);
    assert_eq!(assert_fleet_serves(&fleet.hosts, "1"), r1);

    std::fs::remove_dir_all(&blocker).unwrap();
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts, "2");
}

#[test]
fn max_fail_lets_the_other_hosts_switch() {
    require_sshd!();
    let Serving {
        fleet,
        repo,
        project,
        r1,
    } = serving(
        3,
        json!({"max_fail": 1, "post-deploy": "./app.sh > built.txt && test ! -f /srv/broken"}),
    );

    std::fs::write(fleet.hosts[2].root().join("broken"), "").unwrap();
    repo.commit_file("VERSION", "2\n", "version 2");
    let run = project.pmfleet(&["deploy", "production"]);
    assert_eq!(
        run.code,
        1,
        "the failed host still fails the run:\n{}",
        run.all()
    );
    let r2 = assert_fleet_serves(&fleet.hosts[..2], "2");
    assert_ne!(r1, r2);
    assert_eq!(
        current_release(&fleet.hosts[2]).as_deref(),
        Some(r1.as_str())
    );
    assert_eq!(served_version(&fleet.hosts[2]), "1");
}

#[test]
fn hosts_behind_a_jump_host_deploy_through_it() {
    require_sshd!();
    let mut fleet = Fleet::start(3);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    // hosts[0] is the jump host; the other two are reached through it, by alias.
    let jump = &fleet.hosts[0];
    let mut config = format!(
        "Host bastion\n  HostName {}\n  Port {}\n  User root\n",
        jump.address(),
        jump.port()
    );
    for (i, host) in fleet.hosts[1..].iter().enumerate() {
        config.push_str(&format!(
            "Host app{i}\n  HostName {}\n  Port {}\n  User root\n  ProxyJump bastion\n",
            host.address(),
            host.port()
        ));
    }
    fleet.home.add_config(&config);
    let mut eco = ecosystem(&fleet.hosts, &repo, json!({}));
    eco["deploy"]["production"]["host"] = json!(["app0", "app1"]);
    project.write_ecosystem(&eco);
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts[1..], "1");
    assert!(
        current_release(&fleet.hosts[0]).is_none(),
        "nothing on the jump host"
    );

    // The jump host down: the hosts behind it are unreachable, and nothing switches.
    repo.commit_file("VERSION", "2\n", "version 2");
    fleet.hosts[0].stop();
    let run = project.pmfleet(&["deploy", "production"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert_fleet_serves(&fleet.hosts[1..], "1");
    fleet.hosts[0].restart();
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_fleet_serves(&fleet.hosts[1..], "2");
}
