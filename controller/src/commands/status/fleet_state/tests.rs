//! The tables: hosts as their agents describe them, and what status says about them.

use super::*;
use pmfleet_shared::protocol::{LockSeen, RootApp};

fn record(id: &str, action: &str, release: &str, previous: &str, state: &str) -> RolloutSeen {
    RolloutSeen {
        id: id.into(),
        action: action.into(),
        who: "alice@laptop".into(),
        started: "2026-11-24T06:15:30Z".into(),
        release: release.into(),
        hosts: vec!["web1".into(), "web2".into(), "web3".into()],
        previous: Some(previous.into()),
        state: state.into(),
        finished: None,
    }
}

/// A host serving `current`, its apps on `runs`, with a rollout record and a lock (run, alive).
fn host(
    name: &str,
    current: &str,
    runs: &str,
    rollout: Option<RolloutSeen>,
    lock: Option<(&str, bool)>,
) -> HostView {
    HostView {
        host: name.into(),
        current: (!current.is_empty()).then(|| current.to_string()),
        rollout,
        lock: lock.map(|(run, alive)| (run.to_string(), alive)),
        running: if runs.is_empty() {
            Vec::new()
        } else {
            vec![(runs.to_string(), vec!["web".to_string()])]
        },
        applying: false,
        pending: None,
        auto_reverted: None,
    }
}

/// Each finding as `kind: message | converge`.
fn said(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| {
            let kind = match f {
                Finding::InterruptedRollout { .. } => "interrupted",
                Finding::RolloutInProgress { .. } => "in progress",
                Finding::Split { .. } => "split",
                Finding::AtOdds { .. } => "at odds",
                Finding::Pending { .. } => "pending",
                Finding::AutoReverted { .. } => "auto-reverted",
            };
            match f.converge() {
                Some(c) => format!("{kind}: {} | {}", f.message(), c.text()),
                None => format!("{kind}: {}", f.message()),
            }
        })
        .collect()
}

#[test]
fn what_status_says_about_an_environment() {
    let dead = || record("dead", "deploy", "r2", "r1", "running");
    let done = || record("old", "deploy", "r1", "r0", "finished");
    let revert = || record("back", "revert", "r1", "r2", "running");
    // (what, hosts, what status says)
    let table: Vec<(&str, Vec<HostView>, Vec<&str>)> = vec![
        (
            "every host on one release, rollout finished: nothing",
            vec![
                host("web1", "r1", "r1", Some(done()), None),
                host("web2", "r1", "r1", Some(done()), None),
            ],
            vec![],
        ),
        (
            "controller killed after the first batch: interrupted, split, its lock left",
            vec![
                host("web1", "r2", "r2", Some(dead()), Some(("dead", false))),
                host("web2", "r1", "r1", Some(dead()), Some(("dead", false))),
                host("web3", "r1", "r1", Some(dead()), Some(("dead", false))),
            ],
            vec![
                "interrupted: rollout dead (deploy of r2 by alice@laptop, started 2026-11-24T06:15:30Z) was interrupted: web1 serves r2; web2, web3 serve r1 | `pmfleet deploy production unlock` (the run's lock is still there), then `pmfleet deploy production`",
            ],
        ),
        (
            "the lock was broken since: the deploy alone",
            vec![
                host("web1", "r2", "r2", Some(dead()), None),
                host("web2", "r1", "r1", Some(done()), None),
            ],
            vec![
                "interrupted: rollout dead (deploy of r2 by alice@laptop, started 2026-11-24T06:15:30Z) was interrupted: web1 serves r2; web2 serves r1 | `pmfleet deploy production`",
            ],
        ),
        (
            "the run is alive and holds its lock: in progress, nothing fails",
            vec![
                host("web1", "r2", "r1", Some(dead()), Some(("dead", true))),
                host("web2", "r1", "r1", Some(dead()), Some(("dead", true))),
            ],
            vec![
                "in progress: rollout dead (deploy of r2 by alice@laptop, started 2026-11-24T06:15:30Z) is in progress: web1 serves r2; web2 serves r1",
            ],
        ),
        (
            "killed during the reload, which then failed: current ahead of the apps, go back",
            vec![host(
                "web1",
                "r2",
                "r1",
                Some(dead()),
                Some(("dead", false)),
            )],
            vec![
                "interrupted: rollout dead (deploy of r2 by alice@laptop, started 2026-11-24T06:15:30Z) was interrupted: web1 serves r2 | `pmfleet deploy production unlock` (the run's lock is still there), then `pmfleet deploy production revert 1`",
                "at odds: web1: current is r2 but the apps run r1 | `pmfleet deploy production unlock` (the run's lock is still there), then `pmfleet deploy production revert 1`",
            ],
        ),
        (
            "the apps ahead of current (a switch back whose apply failed): deploy again",
            vec![
                host("web1", "r1", "r2", Some(done()), None),
                host("web2", "r1", "r1", Some(done()), None),
            ],
            vec!["at odds: web1: current is r1 but the apps run r2 | `pmfleet deploy production`"],
        ),
        (
            "split with no rollout to blame (a host failed within max_fail)",
            vec![
                host("web1", "r2", "r2", Some(done()), None),
                host("web2", "r1", "r1", Some(done()), None),
                host("web3", "", "", None, None),
            ],
            vec![
                "split: the fleet is split: web1 serves r2; web2 serves r1; web3 serves no release | `pmfleet deploy production`",
            ],
        ),
        (
            "an interrupted revert: the fleet goes back together",
            vec![
                host("web1", "r1", "r1", Some(revert()), None),
                host("web2", "r2", "r2", Some(revert()), None),
            ],
            vec![
                "interrupted: rollout back (revert of r1 by alice@laptop, started 2026-11-24T06:15:30Z) was interrupted: web1 serves r1; web2 serves r2 | `pmfleet deploy production revert 1`",
            ],
        ),
        (
            "an interrupted rollout that switched no host: named, nothing split",
            vec![
                host("web1", "r1", "r1", Some(dead()), None),
                host("web2", "r1", "r1", Some(dead()), None),
            ],
            vec![
                "interrupted: rollout dead (deploy of r2 by alice@laptop, started 2026-11-24T06:15:30Z) was interrupted: web1, web2 serve r1 | `pmfleet deploy production`",
            ],
        ),
        (
            "apps stopped: nothing runs, nothing to compare",
            vec![host("web1", "r2", "", Some(done()), None)],
            vec![],
        ),
    ];
    for (what, hosts, want) in table {
        assert_eq!(said(&findings("production", &hosts)), want, "{what}");
    }
}

#[test]
fn an_apply_under_way_is_one_step_not_a_disagreement() {
    let mut h = host("web1", "r2", "r1", None, None);
    assert_eq!(findings("production", std::slice::from_ref(&h)).len(), 1);
    h.applying = true;
    assert!(findings("production", &[h]).is_empty());
}

#[test]
fn apps_on_several_releases_are_named() {
    let mut h = host("web1", "r2", "r2", None, None);
    h.running
        .push(("r1".into(), vec!["worker".into(), "cron".into()]));
    let found = findings("production", &[h]);
    assert_eq!(
        said(&found),
        [
            "at odds: web1: current is r2 but the apps run r2 (web), r1 (worker, cron) | `pmfleet deploy production`"
        ]
    );
    assert!(found[0].fails() && found[0].concerns("web1") && !found[0].concerns("web2"));
}

#[test]
fn a_view_counts_only_apps_with_an_instance_online() {
    let root = DeployRoot {
        path: "/srv/app".into(),
        current: Some("r2".into()),
        lock: Some(LockSeen {
            deploy_id: "run".into(),
            pid: 7,
            ..LockSeen::default()
        }),
        apps: vec![
            RootApp {
                name: "web".into(),
                release: Some("r1".into()),
                online: 2,
                total: 2,
            },
            RootApp {
                name: "api".into(),
                release: Some("r1".into()),
                online: 1,
                total: 2,
            },
            RootApp {
                name: "stopped".into(),
                release: Some("r0".into()),
                online: 0,
                total: 1,
            },
        ],
        ..DeployRoot::default()
    };
    let view = HostView::of("web1", &root, false, |l| l.pid == 7);
    assert_eq!(
        view.running,
        [("r1".to_string(), vec!["web".to_string(), "api".to_string()])]
    );
    assert_eq!(view.lock, Some(("run".to_string(), true)));
}

#[test]
fn the_root_of_an_environment_is_found_by_its_path() {
    let root = |p: &str| DeployRoot {
        path: p.into(),
        ..DeployRoot::default()
    };
    let two = [root("/srv/app"), root("/home/deploy/api")];
    let one = [root("/real/srv/app")];
    // (roots, the environment's path, the root found)
    let table: [(&[DeployRoot], &str, Option<&str>); 8] = [
        (&two, "/srv/app", Some("/srv/app")),
        (&two, "/srv/app/", Some("/srv/app")),
        (&two, "~/api", Some("/home/deploy/api")),
        (&two, "~/other", None),
        (&two, "/srv/other", None),
        (&one, "/srv/app", Some("/real/srv/app")),
        (&one, "~", Some("/real/srv/app")),
        (&[], "/srv/app", None),
    ];
    for (roots, path, want) in table {
        assert_eq!(
            root_for(roots, path)
                .map(|r| r.path.display().to_string())
                .as_deref(),
            want,
            "{path}"
        );
    }
}

#[test]
fn status_names_a_pending_switch_and_a_host_that_went_back_by_itself() {
    let dead = record("dead", "deploy", "r2", "r1", "running");
    let mut web1 = host(
        "web1",
        "r2",
        "r2",
        Some(dead.clone()),
        Some(("dead", false)),
    );
    web1.pending = Some((
        pmfleet_shared::protocol::Pending {
            rollout: "dead".into(),
            release: "r2".into(),
            previous: "r1".into(),
            since: 1,
            quiet_secs: 30,
        },
        "goes back to r1 by itself in 12 s unless its rollout is confirmed".into(),
    ));
    let mut web2 = host("web2", "r1", "r1", Some(dead), None);
    web2.auto_reverted = Some(pmfleet_shared::protocol::AutoReverted {
        rollout: "dead".into(),
        from: "r2".into(),
        to: "r1".into(),
        when: "2026-11-24T06:16:10Z".into(),
        why: "rollout dead was not confirmed: its controller sent no heartbeat for 31 s".into(),
        apps_back: true,
    });
    let found = findings("production", &[web1, web2]);
    // After what the releases say (the interrupted rollout): what the hosts do by themselves.
    let found = &found[found.len() - 2..];
    let said = said(found);
    assert_eq!(
        said,
        [
            "pending: web1: r2 is pending (rollout dead): goes back to r1 by itself in 12 s unless its rollout is confirmed",
            "auto-reverted: web2: went back from r2 to r1 by itself at 2026-11-24T06:16:10Z: rollout dead was not confirmed: its controller sent no heartbeat for 31 s",
        ],
        "{said:#?}"
    );
    assert!(found.iter().all(|f| !f.fails()));
    assert!(found[1].concerns("web2") && !found[1].concerns("web1"));
}
