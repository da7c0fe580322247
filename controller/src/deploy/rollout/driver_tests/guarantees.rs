//! Whole rollouts over in-memory hosts for the guarantees that once failed: two runs at once,
//! a lock broken under a run, a failed revert, a rollback, an interrupted rollout.

use super::*;

#[tokio::test(start_paused = true)]
async fn two_deploys_started_at_once_exactly_one_proceeds() {
    // Each run's lock request reaches one host before the other's: with every lock asked at
    // once, each run would get one host, and both would give up.
    let hosts = vec![
        Arc::new(Double::serving(&["r1"]).slow_lock_for("b", Duration::from_millis(10))),
        Arc::new(Double::serving(&["r1"]).slow_lock_for("a", Duration::from_millis(10))),
    ];
    let (run_a, run_b) = (
        run_as("a", CancellationToken::new()),
        run_as("b", CancellationToken::new()),
    );
    let connect = || hosts.iter().cloned().map(Ok).collect::<Vec<_>>();
    let (a, b) = tokio::join!(
        drive(
            Rollout::new(deploy_cfg(2, Batch::All, 0)),
            connect(),
            &run_a
        ),
        drive(
            Rollout::new(deploy_cfg(2, Batch::All, 0)),
            connect(),
            &run_b
        ),
    );
    let proceeded = [&a, &b]
        .iter()
        .filter(|reports| reports.iter().all(|r| r.status == Status::Ok))
        .count();
    assert_eq!(proceeded, 1, "a: {a:?}\nb: {b:?}");
    let refused = if proceeded == 1 && a[0].status == Status::Ok {
        &b
    } else {
        &a
    };
    assert_eq!(exit_for(refused), Exit::LockHeld, "{refused:?}");
    for host in &hosts {
        assert_eq!(current(host).as_deref(), Some("r2"));
        assert_eq!(host.disk().lock, None);
    }
}

#[tokio::test]
async fn a_deploy_that_lost_its_lock_never_switches() {
    let hosts = vec![
        Arc::new(Double::serving(&["r1"])),
        Arc::new(Double::serving(&["r1"]).lose_lock_at(Op::Prepare(Step::PostDeploy))),
    ];
    let reports = drive(
        Rollout::new(deploy_cfg(2, Batch::All, 1)),
        hosts.iter().cloned().map(Ok).collect(),
        &run(CancellationToken::new()),
    )
    .await;
    assert_eq!(
        statuses(&reports),
        vec![Status::Aborted, Status::LockHeld],
        "{reports:?}"
    );
    for host in &hosts {
        assert_eq!(
            current(host).as_deref(),
            Some("r1"),
            "nothing switched, even within max_fail"
        );
    }
    assert!(
        hosts[0].disk().hooks_ended,
        "its hooks are ended before it unlocks"
    );
    assert_eq!(hosts[0].disk().lock, None);
    assert!(
        hosts[1]
            .disk()
            .lock
            .as_deref()
            .is_some_and(|l| l.contains("other")),
        "the other run's lock is kept"
    );
    assert_eq!(exit_for(&reports), Exit::LockHeld);
}

#[tokio::test]
async fn a_failed_revert_leaves_every_host_s_apps_on_its_current_release() {
    let hosts = vec![
        Arc::new(Double::serving(&["r1", "r2"])),
        Arc::new(Double::serving(&["r1", "r2"]).fail(Op::Switch("r1".into()))),
        Arc::new(Double::serving(&["r1", "r2"]).fail(Op::Apply("r1".into()))),
    ];
    let reports = go(revert_cfg(3), &hosts).await;
    assert_eq!(
        statuses(&reports),
        vec![Status::RolledBack, Status::Failed, Status::Failed],
        "{reports:?}"
    );
    for host in &hosts {
        let disk = host.disk();
        assert_eq!(disk.current.as_deref(), Some("r2"));
        let (release, vars) = disk.apps.clone().unwrap_or_else(|| panic!("no apps"));
        assert_eq!(release, "r2", "current and the agent agree");
        assert_eq!(vars.release, "r2");
        assert_eq!(vars.sha.as_deref(), Some("sha-r2"), "with r2's own SHA");
    }
}

#[tokio::test]
async fn after_a_rollback_the_apps_run_the_previous_release_as_they_were() {
    let hosts = vec![Arc::new(
        Double::serving(&["r1"]).fail(Op::Apply("r2".into())),
    )];
    let restarts_before = hosts[0].disk().restarts;
    let reports = go(deploy_cfg(1, Batch::All, 0), &hosts).await;
    assert_eq!(statuses(&reports), vec![Status::RolledBack]);
    let disk = hosts[0].disk();
    let (release, vars) = disk.apps.clone().unwrap_or_else(|| panic!("no apps"));
    assert_eq!((release.as_str(), vars.release.as_str()), ("r1", "r1"));
    assert_eq!(vars.sha.as_deref(), Some("sha-r1"));
    assert_eq!(
        disk.restarts, restarts_before,
        "the kept instances were not restarted"
    );
}

#[tokio::test]
async fn the_next_run_names_an_interrupted_rollout_and_a_revert_converges() {
    // A deploy of r9 died after its canary: host 0 serves r9, host 1 still r1.
    let dead = crate::deploy::rollout_record::RolloutRecord {
        id: "dead".into(),
        action: "deploy".into(),
        who: "alice@laptop".into(),
        started: "2026-11-24T06:15:30Z".into(),
        release: "r9".into(),
        hosts: vec!["h0".into(), "h1".into()],
        previous: Some("r1".into()),
        state: "running".into(),
        finished: None,
    };
    let canary = Double::serving(&["r0", "r1", "r9"]);
    let rest = Double::serving(&["r0", "r1"]);
    rest.disk().releases.insert("r9".into());
    for host in [&canary, &rest] {
        host.disk().rollout = Some(dead.clone());
    }
    let hosts = vec![Arc::new(canary), Arc::new(rest)];
    let out = Arc::new(Output::capturing());
    let mut run = run(CancellationToken::new());
    run.out = out.clone();
    let reports = go_with(revert_cfg(2), &hosts, &run).await;
    assert_eq!(
        statuses(&reports),
        vec![Status::Ok, Status::Ok],
        "{reports:?}"
    );
    let said = out.captured();
    assert!(
        said.contains("rollout dead (deploy of r9 by alice@laptop, started 2026-11-24T06:15:30Z) was interrupted: h0 serves r9; h1 serves r1"),
        "{said}"
    );
    for host in &hosts {
        assert_eq!(current(host).as_deref(), Some("r1"));
        let disk = host.disk();
        let record = disk.rollout.as_ref().unwrap();
        assert_eq!(
            (record.id.as_str(), record.state.as_str()),
            ("this-run", "finished")
        );
    }
}
