//! The rollout rails driven over in-memory hosts: a watch window failing in a later batch
//! takes the whole fleet back, the release step runs once and a failing one switches nothing,
//! and a rollout is confirmed on every host or kept by none.

use super::*;

fn cfg(n: usize, batch: Batch, rails: Rails) -> Config {
    let mut cfg = deploy_cfg(n, batch, 0);
    if let Plan::Deploy { rails: r, .. } = &mut cfg.plan {
        *r = rails;
    }
    cfg
}

const WATCH_AND_CONFIRM: Rails = Rails {
    release_step: false,
    primary: None,
    watch: true,
    confirm: true,
};

#[tokio::test]
async fn a_watch_window_failing_in_the_last_batch_sends_the_canary_and_every_earlier_batch_back() {
    let hosts = vec![
        Arc::new(Double::serving(&["r1"])),
        Arc::new(Double::serving(&["r1"])),
        Arc::new(Double::serving(&["r1"]).fail(Op::Watch("r2".into()))),
    ];
    let reports = go(cfg(3, Batch::Count(1), WATCH_AND_CONFIRM), &hosts).await;
    assert_eq!(
        statuses(&reports),
        vec![Status::RolledBack; 3],
        "{reports:?}"
    );
    for host in &hosts {
        assert_eq!(current(host).as_deref(), Some("r1"));
        assert_eq!(running(host).as_deref(), Some("r1"));
        assert_eq!(
            host.disk().pending,
            None,
            "a switch back removes the record"
        );
    }
    assert!(
        reports[2].message.contains("Watch(\"r2\") failed"),
        "{reports:?}"
    );
    assert_eq!(exit_for(&reports), Exit::Failed);
}

#[tokio::test]
async fn a_rollout_whose_windows_pass_is_confirmed_on_every_host() {
    let hosts = serving_r1(3);
    let reports = go(cfg(3, Batch::Count(1), WATCH_AND_CONFIRM), &hosts).await;
    assert_eq!(statuses(&reports), vec![Status::Ok; 3], "{reports:?}");
    for host in &hosts {
        assert_eq!(current(host).as_deref(), Some("r2"));
        assert_eq!(
            host.disk().pending,
            None,
            "confirmed: no pending record is left"
        );
    }
    assert_eq!(exit_for(&reports), Exit::Success);
}

#[tokio::test]
async fn a_host_that_cannot_be_confirmed_takes_the_confirmed_hosts_back_with_it() {
    let hosts = vec![
        Arc::new(Double::serving(&["r1"])),
        Arc::new(Double::serving(&["r1"]).drop_at(Op::Confirm)),
    ];
    let reports = go(cfg(2, Batch::All, WATCH_AND_CONFIRM), &hosts).await;
    assert_eq!(
        statuses(&reports),
        vec![Status::RolledBack, Status::Unreachable],
        "{reports:?}"
    );
    assert_eq!(current(&hosts[0]).as_deref(), Some("r1"));
    assert_eq!(running(&hosts[0]).as_deref(), Some("r1"));
    // The host that did not answer still holds its pending record: its agent takes it back.
    assert_eq!(hosts[1].disk().pending.as_deref(), Some("r2"));
}

#[tokio::test]
async fn the_release_step_runs_once_on_the_primary_before_any_switch() {
    let hosts = serving_r1(3);
    let rails = Rails {
        release_step: true,
        primary: Some(1),
        ..WATCH_AND_CONFIRM
    };
    let reports = go(cfg(3, Batch::Count(1), rails), &hosts).await;
    assert_eq!(statuses(&reports), vec![Status::Ok; 3], "{reports:?}");
    let steps: Vec<usize> = hosts.iter().map(|h| h.disk().release_steps).collect();
    assert_eq!(steps, [0, 1, 0]);
}

#[tokio::test]
async fn a_failing_release_step_switches_no_host() {
    let hosts = vec![
        Arc::new(Double::serving(&["r1"]).fail(Op::Release)),
        Arc::new(Double::serving(&["r1"])),
        Arc::new(Double::serving(&["r1"])),
    ];
    let rails = Rails {
        release_step: true,
        ..WATCH_AND_CONFIRM
    };
    let reports = go(cfg(3, Batch::Count(1), rails), &hosts).await;
    assert_eq!(
        statuses(&reports),
        vec![Status::Failed, Status::Aborted, Status::Aborted],
        "{reports:?}"
    );
    assert!(reports[0].message.starts_with("release: "), "{reports:?}");
    for host in &hosts {
        assert_eq!(current(host).as_deref(), Some("r1"));
        assert_eq!(running(host).as_deref(), Some("r1"));
        assert!(!host.disk().releases.contains("r2"), "r2 removed");
    }
    assert_eq!(exit_for(&reports), Exit::Failed);
}
