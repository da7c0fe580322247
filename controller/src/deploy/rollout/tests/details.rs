//! What the table's notation leaves out: the records and variables actions carry, pure rules
//! (batch sizes, revert verdicts), errors and their status.

use super::*;

#[test]
fn a_revert_tells_the_apps_the_target_s_own_sha_and_ref() {
    let mut machine = Rollout::new(revert(1, true));
    for event in and(locked(1), [st(0, host_state(&["r1", "r2"], &["r1", "r2"]))]) {
        machine.handle(event);
    }
    let actions = machine.handle(revert_begun(0));
    let Some(Action::Switch(0, release, entry)) = actions.first() else {
        panic!("{actions:?}");
    };
    assert_eq!(release, "r1");
    assert_eq!(
        (entry.sha.as_str(), entry.outcome),
        ("sha-r1", Outcome::Success)
    );
    assert_eq!(entry.action, RecordAction::Revert);
    assert_eq!(entry.previous.as_deref(), Some("r2"));
    let actions = machine.handle(Event::Switched(0, Some("r2".into())));
    assert_eq!(
        actions,
        vec![Action::Apply {
            host: 0,
            release: "r1".into(),
            vars: ReleaseVars {
                release: "r1".into(),
                sha: Some("sha-r1".into()),
                git_ref: Some("main".into()),
            },
        }]
    );
    let actions = machine.handle(Event::Applied(0, "ok".into()));
    let Some(Action::Conclude(c)) = actions.get(1) else {
        panic!("{actions:?}");
    };
    assert!(c.records.is_empty(), "the switch recorded itself");
    assert_eq!(
        c.release.as_ref().and_then(|r| r.sha.as_deref()),
        Some("sha-r1")
    );
}

#[test]
fn a_switch_carries_its_own_history_record() {
    let mut machine = Rollout::new(all(1));
    let mut actions = Vec::new();
    for event in prepared(1) {
        actions = machine.handle(event);
    }
    let Some(Action::Switch(0, release, entry)) = actions.first() else {
        panic!("{actions:?}");
    };
    assert_eq!(release, "r2");
    assert_eq!(
        (entry.sha.as_str(), entry.git_ref.as_str()),
        ("2".repeat(40).as_str(), "main")
    );
    assert_eq!(entry.previous.as_deref(), Some("r1"));
    assert_eq!(
        (entry.action, entry.outcome),
        (RecordAction::Deploy, Outcome::Success)
    );
    assert_eq!(entry.message, None);
}

#[test]
fn going_back_runs_the_previous_release_with_its_own_variables() {
    let mut machine = Rollout::new(deploy(1, Batch::All, 0, true));
    for event in and(prepared(1), [sw(0)]) {
        machine.handle(event);
    }
    let actions = machine.handle(Event::ApplyFailed(0, not_ready()));
    let Some(Action::SwitchBack(0, release, entry)) = actions.first() else {
        panic!("{actions:?}");
    };
    assert_eq!(release, "r1");
    // The switch back is a revert to r1 in the history, so the release line drops r2.
    assert_eq!(
        (entry.action, entry.release.as_str()),
        (RecordAction::Revert, "r1")
    );
    assert_eq!(entry.sha, "sha-r1");
    let actions = machine.handle(Event::SwitchedBack(0));
    assert_eq!(
        actions,
        vec![Action::ApplyBack {
            host: 0,
            release: "r1".into(),
            vars: ReleaseVars {
                release: "r1".into(),
                sha: Some("sha-r1".into()),
                git_ref: Some("main".into()),
            },
        }]
    );
}

#[test]
fn nothing_happens_after_the_end() {
    let mut machine = Rollout::new(all(1));
    machine.handle(Event::NotConnected(0, refused_tcp()));
    assert!(machine.is_done());
    for event in [
        Event::Connected(0),
        Event::LockTaken(0),
        prep(0),
        sw(0),
        Event::Interrupted,
    ] {
        assert_eq!(machine.handle(event), vec![]);
    }
}

#[test]
fn batch_sizes() {
    for (batch, hosts, size) in [
        (Batch::All, 5, 5),
        (Batch::Count(2), 5, 2),
        (Batch::Count(9), 5, 5),
        (Batch::Percent(25), 5, 2),
        (Batch::Percent(1), 5, 1),
        (Batch::Percent(100), 3, 3),
        (Batch::All, 0, 1),
    ] {
        assert_eq!(batch_size(batch, hosts), size, "{batch:?} of {hosts}");
    }
}

#[test]
fn revert_verdicts() {
    let agree = host_state(&["r1", "r2", "r3"], &["r1", "r2", "r3"]);
    let short = host_state(&["r3"], &["r3"]);
    let err = boom();
    type Case<'a> = (Vec<Result<&'a HostState, &'a HostError>>, usize, Verdict);
    let cases: Vec<Case> = vec![
        (
            vec![Ok(&agree), Ok(&agree)],
            1,
            Verdict::Target("r2".into()),
        ),
        (
            vec![Ok(&agree), Ok(&agree)],
            2,
            Verdict::Target("r1".into()),
        ),
        (
            vec![Ok(&agree)],
            3,
            Verdict::Problems(vec![(
                0,
                Status::Failed,
                "cannot revert 3: this host has only 2 deploy(s) to go back through".into(),
            )]),
        ),
        (
            vec![Ok(&agree), Ok(&short)],
            1,
            Verdict::Problems(vec![(
                1,
                Status::Failed,
                "cannot revert 1: this host has only 0 deploy(s) to go back through".into(),
            )]),
        ),
        (
            vec![Ok(&agree), Err(&err)],
            1,
            Verdict::Problems(vec![(1, Status::Failed, "boom".into())]),
        ),
        (vec![], 1, Verdict::Problems(vec![])),
    ];
    for (states, steps, expected) in cases {
        let labelled: Vec<(HostId, &str, Result<&HostState, &HostError>)> = states
            .into_iter()
            .enumerate()
            .map(|(h, s)| (h, "h", s))
            .collect();
        assert_eq!(verdict(&labelled, steps, "prod", 5), expected);
    }
}

#[test]
fn errors_keep_their_cause() {
    assert_eq!(dropped().status(), Status::Unreachable);
    assert_eq!(refused_tcp().status(), Status::Unreachable);
    assert_eq!(key_refused().status(), Status::Failed);
    assert_eq!(boom().status(), Status::Failed);
    assert_eq!(not_ready().status(), Status::Failed);
    let local = HostError::transport(TransportError::Local(std::io::Error::other("no sh")));
    assert_eq!(local.status(), Status::Failed);
    let lost = Arc::new(SshError::NoExitStatus {
        destination: "d".into(),
    });
    assert!(lost.is_dropped());
}
