//! Whole rollouts driven over in-memory hosts ([`Double`]): what every host holds and runs at
//! the end, what was recorded, and what each host's report says, for the rules' main paths
//! and failures at each step.

use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::ecosystem::Batch;
use tokio_util::sync::CancellationToken;

use super::double::{Double, Op};
use super::driver::{Run, drive};
use super::*;
use crate::deploy::error::Step;
use crate::deploy::history::Outcome;
use crate::deploy::report::{Exit, HostReport, exit_for};
use crate::output::Output;

mod guarantees;
mod rails;

fn run(cancel: CancellationToken) -> Run {
    run_as("this-run", cancel)
}

fn run_as(id: &str, cancel: CancellationToken) -> Run {
    let holder = crate::deploy::lock::Holder::new("tester", id, "deploy");
    Run {
        out: Arc::new(Output::capturing()),
        cancel,
        lock_wait: None,
        deploy_id: id.into(),
        action: "deploy".into(),
        who: "tester".into(),
        lock_content: serde_json::to_string(&holder).unwrap_or_default(),
        env: "prod".into(),
    }
}

fn deploy_cfg(n: usize, batch: Batch, max_fail: usize) -> Config {
    Config {
        plan: Plan::Deploy {
            release: ReleaseVars {
                release: "r2".into(),
                sha: Some("sha-r2".into()),
                git_ref: Some("main".into()),
            },
            batch,
            max_fail,
            rails: Rails::default(),
        },
        env: "prod".into(),
        labels: (0..n).map(|i| format!("h{i}")).collect(),
        agents: true,
        lock_wait: false,
        keep_releases: 5,
    }
}

fn revert_cfg(n: usize) -> Config {
    Config {
        plan: Plan::Revert {
            to: RevertTo::Steps(1),
        },
        env: "prod".into(),
        labels: (0..n).map(|i| format!("h{i}")).collect(),
        agents: true,
        lock_wait: false,
        keep_releases: 5,
    }
}

async fn go(cfg: Config, hosts: &[Arc<Double>]) -> Vec<HostReport> {
    go_with(cfg, hosts, &run(CancellationToken::new())).await
}

async fn go_with(cfg: Config, hosts: &[Arc<Double>], run: &Run) -> Vec<HostReport> {
    let reports = drive(
        Rollout::new(cfg),
        hosts.iter().cloned().map(Ok).collect(),
        run,
    )
    .await;
    for host in hosts {
        assert_eq!(host.disk().lock, None, "every lock is released");
    }
    reports
}

fn statuses(reports: &[HostReport]) -> Vec<Status> {
    reports.iter().map(|r| r.status).collect()
}

fn current(host: &Double) -> Option<String> {
    host.disk().current.clone()
}

/// What the host's agent runs.
fn running(host: &Double) -> Option<String> {
    host.disk().apps.as_ref().map(|(r, _)| r.clone())
}

fn outcomes(host: &Double) -> Vec<(String, Outcome)> {
    host.disk()
        .history
        .iter()
        .filter(|r| r.id == "this-run")
        .map(|r| (r.release.clone(), r.outcome))
        .collect()
}

fn serving_r1(n: usize) -> Vec<Arc<Double>> {
    (0..n).map(|_| Arc::new(Double::serving(&["r1"]))).collect()
}

#[tokio::test]
async fn a_deploy_switches_every_host_and_its_apps() {
    let hosts = serving_r1(3);
    let reports = go(deploy_cfg(3, Batch::Count(1), 0), &hosts).await;
    assert_eq!(statuses(&reports), vec![Status::Ok; 3]);
    for host in &hosts {
        assert_eq!(current(host).as_deref(), Some("r2"));
        assert_eq!(running(host).as_deref(), Some("r2"));
        assert_eq!(outcomes(host), vec![("r2".into(), Outcome::Success)]);
        assert!(host.disk().releases.contains("r1"));
    }
    assert_eq!(reports[0].message, "now serving r2");
    assert_eq!(reports[0].sha.as_deref(), Some("sha-r2"));
    assert_eq!(exit_for(&reports), Exit::Success);
}

#[tokio::test]
async fn a_failure_at_any_step_of_preparing_switches_no_host() {
    for step in [
        Step::Check,
        Step::PreDeploy,
        Step::Fetch,
        Step::LinkShared,
        Step::PostDeploy,
        Step::Finish,
    ] {
        let hosts = vec![
            Arc::new(Double::serving(&["r1"])),
            Arc::new(Double::serving(&["r1"]).fail(Op::Prepare(step))),
            Arc::new(Double::serving(&["r1"])),
        ];
        let reports = go(deploy_cfg(3, Batch::All, 0), &hosts).await;
        assert_eq!(
            statuses(&reports),
            vec![Status::Aborted, Status::Failed, Status::Aborted],
            "{step}"
        );
        assert!(
            reports[1].message.starts_with(&format!("{step}: ")),
            "{reports:?}"
        );
        for host in &hosts {
            assert_eq!(current(host).as_deref(), Some("r1"), "{step}");
            assert_eq!(running(host).as_deref(), Some("r1"), "{step}");
            assert!(
                !host.disk().releases.contains("r2"),
                "r2 removed after {step}"
            );
        }
        assert_eq!(exit_for(&reports), Exit::Failed);
    }
}

#[tokio::test]
async fn a_host_that_drops_while_preparing_is_unreachable() {
    let hosts = vec![
        Arc::new(Double::serving(&["r1"])),
        Arc::new(Double::serving(&["r1"]).drop_at(Op::Prepare(Step::PostDeploy))),
    ];
    let reports = go(deploy_cfg(2, Batch::All, 0), &hosts).await;
    assert_eq!(
        statuses(&reports),
        vec![Status::Aborted, Status::Unreachable]
    );
    assert_eq!(exit_for(&reports), Exit::Unreachable);
    assert!(hosts.iter().all(|h| current(h).as_deref() == Some("r1")));
}

#[tokio::test]
async fn a_failed_switch_sends_the_canary_back_and_the_rest_never_moves() {
    let hosts = vec![
        Arc::new(Double::serving(&["r1"])),
        Arc::new(Double::serving(&["r1"]).fail(Op::Switch("r2".into()))),
        Arc::new(Double::serving(&["r1"])),
    ];
    let reports = go(deploy_cfg(3, Batch::Count(1), 0), &hosts).await;
    assert_eq!(
        statuses(&reports),
        vec![Status::RolledBack, Status::Failed, Status::Aborted]
    );
    for host in &hosts {
        assert_eq!(current(host).as_deref(), Some("r1"));
        assert_eq!(running(host).as_deref(), Some("r1"));
    }
    // The canary's switch and its switch back recorded themselves; its line ends on r1 again.
    assert_eq!(
        outcomes(&hosts[0]),
        vec![
            ("r2".into(), Outcome::Success),
            ("r1".into(), Outcome::Success),
            ("r2".into(), Outcome::RolledBack)
        ]
    );
    assert_eq!(
        crate::deploy::history::release_line(&hosts[0].disk().history),
        ["r1"]
    );
    assert_eq!(outcomes(&hosts[2]), vec![("r2".into(), Outcome::Aborted)]);
    assert!(!hosts[2].disk().releases.contains("r2"));
}

#[tokio::test]
async fn apps_never_ready_send_their_host_back_within_max_fail() {
    let hosts = vec![
        Arc::new(Double::serving(&["r1"]).fail(Op::Apply("r2".into()))),
        Arc::new(Double::serving(&["r1"])),
    ];
    let reports = go(deploy_cfg(2, Batch::Count(1), 1), &hosts).await;
    assert_eq!(statuses(&reports), vec![Status::RolledBack, Status::Ok]);
    assert_eq!(current(&hosts[0]).as_deref(), Some("r1"));
    assert_eq!(running(&hosts[0]).as_deref(), Some("r1"));
    assert_eq!(current(&hosts[1]).as_deref(), Some("r2"));
    assert_eq!(running(&hosts[1]).as_deref(), Some("r2"));
    assert!(
        reports[0].message.contains("switched back to r1"),
        "{reports:?}"
    );
}

#[tokio::test]
async fn a_held_lock_gives_back_the_others_and_names_the_holder() {
    let hosts = [
        Arc::new(Double::serving(&["r1"])),
        Arc::new(Double::serving(&["r1"]).locked_by_other()),
    ];
    let reports = drive(
        Rollout::new(deploy_cfg(2, Batch::All, 0)),
        hosts.iter().cloned().map(Ok).collect(),
        &run(CancellationToken::new()),
    )
    .await;
    assert_eq!(statuses(&reports), vec![Status::Aborted, Status::LockHeld]);
    assert!(reports[1].message.contains("bob@elsewhere"), "{reports:?}");
    assert_eq!(hosts[0].disk().lock, None, "the lock taken was given back");
    assert!(
        hosts[1].disk().lock.is_some(),
        "the other run's lock is kept"
    );
    assert_eq!(exit_for(&reports), Exit::LockHeld);
}

#[tokio::test(start_paused = true)]
async fn lock_wait_takes_the_lock_once_it_is_released() {
    let hosts = vec![
        Arc::new(Double::serving(&["r1"])),
        Arc::new(Double::serving(&["r1"]).locked_by_other()),
    ];
    let mut run = run(CancellationToken::new());
    run.lock_wait = Some(Duration::from_secs(60));
    let mut cfg = deploy_cfg(2, Batch::All, 0);
    cfg.lock_wait = true;
    let other = hosts[1].clone();
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        other.disk().lock = None;
    });
    let reports = go_with(cfg, &hosts, &run).await;
    releaser.await.unwrap();
    assert_eq!(statuses(&reports), vec![Status::Ok, Status::Ok]);
}

#[tokio::test]
async fn an_interrupt_before_the_switch_switches_nothing_and_unlocks() {
    let hosts = vec![
        Arc::new(Double::serving(&["r1"])),
        Arc::new(Double::serving(&["r1"]).hanging_in_prepare()),
    ];
    // Interrupted from the start: whether the interrupt lands while locking or while
    // preparing (where one host would hang forever), nothing switches.
    let cancel = CancellationToken::new();
    cancel.cancel();
    let reports = go_with(deploy_cfg(2, Batch::All, 0), &hosts, &run(cancel)).await;
    assert_eq!(statuses(&reports), vec![Status::Failed, Status::Failed]);
    for host in &hosts {
        assert_eq!(current(host).as_deref(), Some("r1"));
        assert!(!host.disk().releases.contains("r2"));
        assert_eq!(outcomes(host), vec![("r2".into(), Outcome::Aborted)]);
    }
    assert!(reports[0].message.contains("interrupted"), "{reports:?}");
}

#[tokio::test]
async fn an_unreachable_host_stops_the_deploy_before_any_lock() {
    let hosts = serving_r1(1);
    let unreachable = HostError::connect(crate::ssh::SshError::Connect {
        destination: "root@h1:22".into(),
        source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
    });
    let reports = drive(
        Rollout::new(deploy_cfg(2, Batch::All, 0)),
        vec![Ok(hosts[0].clone()), Err(unreachable)],
        &run(CancellationToken::new()),
    )
    .await;
    assert_eq!(
        statuses(&reports),
        vec![Status::Aborted, Status::Unreachable]
    );
    assert_eq!(exit_for(&reports), Exit::Unreachable);
    assert!(outcomes(&hosts[0]).is_empty(), "nothing recorded");
}

#[tokio::test]
async fn a_revert_moves_every_host_to_the_same_release() {
    let hosts: Vec<Arc<Double>> = (0..2)
        .map(|_| Arc::new(Double::serving(&["r1", "r2"])))
        .collect();
    let reports = go(revert_cfg(2), &hosts).await;
    assert_eq!(statuses(&reports), vec![Status::Ok, Status::Ok]);
    for host in &hosts {
        assert_eq!(current(host).as_deref(), Some("r1"));
        let disk = host.disk();
        let (release, vars) = disk.apps.clone().unwrap();
        assert_eq!(release, "r1");
        assert_eq!(vars.sha.as_deref(), Some("sha-r1"), "the target's own SHA");
    }
}

#[tokio::test]
async fn a_revert_that_fails_on_one_host_moves_none() {
    let hosts = vec![
        Arc::new(Double::serving(&["r1", "r2"])),
        Arc::new(Double::serving(&["r1", "r2"]).fail(Op::Switch("r1".into()))),
    ];
    let reports = go(revert_cfg(2), &hosts).await;
    assert_eq!(statuses(&reports), vec![Status::RolledBack, Status::Failed]);
    for host in &hosts {
        assert_eq!(current(host).as_deref(), Some("r2"));
    }
    assert_eq!(exit_for(&reports), Exit::Failed);
}

#[tokio::test]
async fn a_revert_needs_the_target_everywhere() {
    let pruned = Double::serving(&["r1", "r2"]);
    pruned.disk().releases.remove("r1");
    let hosts = vec![Arc::new(Double::serving(&["r1", "r2"])), Arc::new(pruned)];
    let reports = go(revert_cfg(2), &hosts).await;
    assert_eq!(statuses(&reports), vec![Status::Aborted, Status::Failed]);
    assert!(
        reports[1].message.contains("no longer on this host"),
        "{reports:?}"
    );
    assert!(hosts.iter().all(|h| current(h).as_deref() == Some("r2")));
}

#[tokio::test]
async fn a_history_that_cannot_be_written_is_shown_not_fatal() {
    let hosts = vec![Arc::new(
        Double::serving(&["r1"])
            .fail(Op::Record)
            .fail(Op::Prepare(Step::PostDeploy)),
    )];
    let out = Arc::new(Output::capturing());
    let mut run = run(CancellationToken::new());
    run.out = out.clone();
    let reports = go_with(deploy_cfg(1, Batch::All, 0), &hosts, &run).await;
    assert_eq!(statuses(&reports), vec![Status::Failed]);
    assert!(
        out.captured().contains("could not record history"),
        "{}",
        out.captured()
    );
}
