//! `pmfleet deploy ENV revert` with no N on real sshd hosts whose release sets differ: it goes
//! to the newest release every host holds, `list` shows which host holds what, and pruning
//! after a deploy keeps that release on every host.

use pmfleet_testkit::deployed::{current_release, ecosystem, releases, served_version};
use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::{Project, ok};
use pmfleet_testkit::require_sshd;
use pmfleet_testkit::sshd::Fleet;
use serde_json::{Value, json};

#[test]
fn revert_with_no_n_goes_to_the_newest_release_every_host_holds() {
    require_sshd!();
    let fleet = Fleet::start(3);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    let every_host = ecosystem(&fleet.hosts, &repo, json!({"keep_releases": 2}));
    project.write_ecosystem(&every_host);
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    let r1 = current_release(&fleet.hosts[0]).expect("r1");

    // The third host is left out of the next deploy: it never holds r2.
    repo.commit_file("VERSION", "2\n", "version 2");
    project.write_ecosystem(&ecosystem(
        &fleet.hosts[..2],
        &repo,
        json!({"keep_releases": 2}),
    ));
    ok(&project.pmfleet(&["deploy", "production"]));
    let r2 = current_release(&fleet.hosts[0]).expect("r2");

    repo.commit_file("VERSION", "3\n", "version 3");
    project.write_ecosystem(&every_host);
    ok(&project.pmfleet(&["deploy", "production"]));
    let r3 = current_release(&fleet.hosts[0]).expect("r3");
    assert!(r1 < r2 && r2 < r3, "{r1} {r2} {r3}");

    // keep_releases 2 alone would take r1 from the first two hosts (r3 and r2 are their
    // newest); r1 is the only release every host holds behind r3, so it stays.
    for (i, host) in fleet.hosts.iter().enumerate() {
        let expected = if i < 2 {
            vec![r1.clone(), r2.clone(), r3.clone()]
        } else {
            vec![r1.clone(), r3.clone()]
        };
        assert_eq!(releases(host), expected, "releases on host {i}");
    }

    // list: which host holds each release, and where `revert` goes.
    let list = project.pmfleet(&["deploy", "production", "list", "--json"]);
    ok(&list);
    let last = list.stdout.lines().last().unwrap_or_default();
    let view: Value = serde_json::from_str(last).expect("list --json");
    assert_eq!(view["revert"], json!(r1), "{view}");
    let presence: Vec<Value> = view["releases"].as_array().cloned().unwrap_or_default();
    let labels: Vec<String> = fleet.hosts.iter().map(|h| h.label()).collect();
    let marks = |release: &str| -> Vec<String> {
        let row = presence
            .iter()
            .find(|r| r["release"] == release)
            .unwrap_or_else(|| panic!("{release} in {view}"));
        labels
            .iter()
            .map(|l| row["hosts"][l].as_str().unwrap_or("?").to_string())
            .collect()
    };
    assert_eq!(marks(&r3), ["current", "current", "current"], "{view}");
    assert_eq!(marks(&r2), ["present", "present", "absent"], "{view}");
    assert_eq!(marks(&r1), ["present", "present", "present"], "{view}");
    let text = project.pmfleet(&["deploy", "production", "list"]);
    ok(&text);
    assert!(
        text.stdout.contains(&format!("`revert` goes to {r1}")),
        "{}",
        text.stdout
    );

    // `revert 1` counts per host and lands on different releases: refused, nothing moves.
    let one = project.pmfleet(&["deploy", "production", "revert", "1"]);
    assert_eq!(one.code, 1, "{}", one.all());
    assert!(one.all().contains("hosts disagree"), "{}", one.all());
    for host in &fleet.hosts {
        assert_eq!(current_release(host).as_deref(), Some(r3.as_str()));
    }

    // `revert` with no N goes to r1 everywhere.
    let revert = project.pmfleet(&["deploy", "production", "revert"]);
    ok(&revert);
    assert!(
        revert
            .all()
            .contains(&format!("reverting production to release {r1}")),
        "{}",
        revert.all()
    );
    for (i, host) in fleet.hosts.iter().enumerate() {
        assert_eq!(
            current_release(host).as_deref(),
            Some(r1.as_str()),
            "host {i}"
        );
        assert_eq!(served_version(host), "1", "host {i}");
    }

    // Nothing behind r1 now: a clear refusal, naming why.
    let again = project.pmfleet(&["deploy", "production", "revert"]);
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(
        again
            .all()
            .contains("no host holds a release to go back to"),
        "{}",
        again.all()
    );
}
