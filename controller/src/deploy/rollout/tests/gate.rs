//! Connecting, locking and beginning: the hosts that could not be reached, locks taken host by
//! host in one order, held locks, `--lock-wait`, interrupts and lost locks before the switch,
//! and the rollout that was interrupted before this one.

use super::*;

fn lost_rollout() -> RolloutRecord {
    RolloutRecord {
        id: "dead".into(),
        action: "deploy".into(),
        who: "alice@laptop".into(),
        started: "2026-11-24T06:15:30Z".into(),
        release: "r9".into(),
        hosts: labels(2),
        previous: Some("r1".into()),
        state: "running".into(),
        finished: None,
    }
}

fn begun_after(h: HostId, current: &str, last: Option<RolloutRecord>) -> Event {
    Event::Begun(
        h,
        Box::new(Begun {
            current: Some(current.into()),
            serving: None,
            last,
        }),
    )
}

pub(super) fn rows() -> Vec<Row> {
    vec![
        row(
            "the first hosts to connect wait for the others",
            all(2),
            vec![],
            Event::Connected(0),
            &[],
        ),
        row(
            "every host connected: the first lock in host order",
            all(2),
            connected(1),
            Event::Connected(1),
            &["lock 0"],
        ),
        row(
            "a connect answer twice changes nothing",
            all(2),
            connected(1),
            Event::Connected(0),
            &[],
        ),
        row(
            "an unreachable host stops the deploy (max_fail 0)",
            all(3),
            connected(2),
            Event::NotConnected(2, refused_tcp()),
            &[
                "2 unreachable: cannot connect to root@h:22: connection refused",
                &format!("0 aborted: {UNREACHED}"),
                &format!("1 aborted: {UNREACHED}"),
                "finish",
            ],
        ),
        row(
            "an unreachable host within max_fail: the others go on",
            deploy(3, Batch::All, 1, false),
            connected(2),
            Event::NotConnected(2, refused_tcp()),
            &[
                "2 unreachable: cannot connect to root@h:22: connection refused",
                "lock 0",
            ],
        ),
        row(
            "a refused key is a failure, not unreachable",
            all(2),
            connected(1),
            Event::NotConnected(1, key_refused()),
            &[
                "1 failed: authentication as root@h:22 failed; tried: id_ed25519",
                &format!("0 aborted: {UNREACHED}"),
                "finish",
            ],
        ),
        row(
            "no host reachable: nothing to do, whatever max_fail",
            deploy(1, Batch::All, 3, false),
            vec![],
            Event::NotConnected(0, refused_tcp()),
            &[
                "0 unreachable: cannot connect to root@h:22: connection refused",
                "finish",
            ],
        ),
        row(
            "a revert needs every host",
            revert(2, false),
            connected(1),
            Event::NotConnected(1, refused_tcp()),
            &[
                "1 unreachable: cannot connect to root@h:22: connection refused",
                "0 aborted: not reverted: every host must revert together, and some could not be reached",
                "finish",
            ],
        ),
        row(
            "a lock taken: the next host in order",
            all(3),
            connected(3),
            Event::LockTaken(0),
            &["lock 1"],
        ),
        row(
            "the lock order is by host name, not by the file's order",
            {
                let mut cfg = all(3);
                cfg.labels = vec!["web-c".into(), "web-a".into(), "web-b".into()];
                cfg
            },
            connected(2),
            Event::Connected(2),
            &["lock 1"],
        ),
        row(
            "an answer for a host not asked changes nothing",
            all(2),
            connected(2),
            Event::LockTaken(1),
            &[],
        ),
        row(
            "every lock taken: hold them and begin the rollout",
            all(2),
            and(connected(2), [Event::LockTaken(0)]),
            Event::LockTaken(1),
            &["hold 0,1", "begin 0,1 r2"],
        ),
        row(
            "a revert reads every host's state once locked",
            revert(2, false),
            and(connected(2), [Event::LockTaken(0)]),
            Event::LockTaken(1),
            &["hold 0,1", "read 0,1"],
        ),
        row(
            "a held lock: the ones taken are given back, the holder named, the rest never asked",
            all(3),
            and(connected(3), [Event::LockTaken(0)]),
            Event::LockRefused(1, held(3)),
            &[
                "unlock 0",
                &format!("0 aborted: {NOT_LOCKED}"),
                &format!("1 lock held: {HELD}"),
                &format!("2 aborted: {NOT_LOCKED}"),
                "finish",
            ],
        ),
        row(
            "the first host refused: nothing to give back",
            all(2),
            connected(2),
            Event::LockRefused(0, held(3)),
            &[
                &format!("0 lock held: {HELD}"),
                &format!("1 aborted: {NOT_LOCKED}"),
                "finish",
            ],
        ),
        row(
            "a lock whose heartbeat is old says how to break it",
            all(1),
            connected(1),
            Event::LockRefused(0, held(99)),
            &[
                "0 lock held: locked by alice@laptop (deploy d1, since t, pid 7); its last heartbeat was 99s ago, so that deploy looks dead: break the lock with `pmfleet deploy prod unlock`",
                "finish",
            ],
        ),
        row(
            "a lock whose holder died on this machine is dead at once",
            all(1),
            connected(1),
            Event::LockRefused(
                0,
                Refusal::Held {
                    holder: Some(Holder {
                        holder: "alice@laptop".into(),
                        deploy_id: "d1".into(),
                        action: "deploy".into(),
                        since: "t".into(),
                        pid: 7,
                        machine: "laptop".into(),
                        ..Holder::default()
                    }),
                    heartbeat_age: 2,
                    alive_here: Some(false),
                    env: "prod".into(),
                },
            ),
            &[
                "0 lock held: locked by alice@laptop (deploy d1, since t, pid 7 on laptop), whose process (pid 7 on this machine) is gone, so that deploy is dead: break the lock with `pmfleet deploy prod unlock`",
                "finish",
            ],
        ),
        row(
            "a host without its layout refuses the lock",
            all(2),
            and(connected(2), [Event::LockTaken(0)]),
            Event::LockRefused(1, Refusal::NotSetUp { env: "prod".into() }),
            &[
                "unlock 0",
                &format!("0 aborted: {NOT_LOCKED}"),
                "1 failed: not set up: run `pmfleet deploy prod setup` first",
                "finish",
            ],
        ),
        row(
            "a host that drops while locking is unreachable",
            all(1),
            connected(1),
            Event::LockRefused(0, Refusal::Failed(dropped())),
            &[
                "0 unreachable: could not take the lock: connection to root@h:22 lost: gone",
                "finish",
            ],
        ),
        row(
            "a script error while locking is a failure",
            all(1),
            connected(1),
            Event::LockRefused(0, Refusal::Failed(boom())),
            &["0 failed: could not take the lock: boom", "finish"],
        ),
        row(
            "--lock-wait: a held lock is waited for",
            waiting(all(2)),
            and(connected(2), [Event::LockTaken(0)]),
            Event::LockRefused(1, held(3)),
            &["unlock 0", "wait"],
        ),
        row(
            "--lock-wait does not wait for a manual lock: refused at once, with who and why",
            waiting(all(2)),
            and(connected(2), [Event::LockTaken(0)]),
            Event::LockRefused(1, frozen()),
            &[
                "unlock 0",
                &format!("0 aborted: {NOT_LOCKED}"),
                "1 lock held: locked on purpose by alice@laptop since t: \"release freeze\": no deploy until `pmfleet deploy prod unlock`",
                "finish",
            ],
        ),
        row(
            "--lock-wait does not wait for a host that is not set up",
            waiting(all(2)),
            and(connected(2), [Event::LockTaken(0)]),
            Event::LockRefused(1, Refusal::NotSetUp { env: "prod".into() }),
            &[
                "unlock 0",
                &format!("0 aborted: {NOT_LOCKED}"),
                "1 failed: not set up: run `pmfleet deploy prod setup` first",
                "finish",
            ],
        ),
        row(
            "--lock-wait: after the pause, the locks are asked again from the first",
            waiting(all(2)),
            and(
                connected(2),
                [Event::LockTaken(0), Event::LockRefused(1, held(3))],
            ),
            Event::LockRetry,
            &["lock 0"],
        ),
        row(
            "--lock-wait ran out: the holder is named",
            waiting(all(2)),
            and(
                connected(2),
                [Event::LockTaken(0), Event::LockRefused(1, held(3))],
            ),
            Event::LockWaitOver,
            &[
                &format!("0 aborted: {NOT_LOCKED}"),
                &format!("1 lock held: {HELD}"),
                "finish",
            ],
        ),
        row(
            "interrupted while waiting for a lock: stop waiting",
            waiting(all(1)),
            and(connected(1), [Event::LockRefused(0, held(3))]),
            Event::Interrupted,
            &["cancel", &format!("0 lock held: {HELD}"), "finish"],
        ),
        row(
            "interrupted while locking: once locked, nothing begins",
            all(2),
            and(connected(2), [Event::Interrupted, Event::LockTaken(0)]),
            Event::LockTaken(1),
            &[
                "hold 0,1",
                "end-hooks 0,1",
                "cancel",
                &format!("0 failed: {INTERRUPTED} +discard r2 +rec aborted r2 \"interrupted\""),
                &format!("1 failed: {INTERRUPTED} +discard r2 +rec aborted r2 \"interrupted\""),
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a late lock answer after the end changes nothing",
            all(1),
            and(connected(1), [Event::LockRefused(0, held(3))]),
            Event::LockTaken(0),
            &[],
        ),
        row(
            "begun hosts wait for the others",
            all(2),
            locked(2),
            begun_on(0),
            &[],
        ),
        row(
            "begun everywhere: prepare everywhere",
            all(2),
            and(locked(2), [begun_on(0)]),
            begun_on(1),
            &["prepare 0,1 r2"],
        ),
        row(
            "a rollout that never finished is named, with what each host serves",
            all(2),
            and(locked(2), [begun_after(0, "r9", Some(lost_rollout()))]),
            begun_after(1, "r1", Some(lost_rollout())),
            &[
                "info: rollout dead (deploy of r9 by alice@laptop, started 2026-11-24T06:15:30Z) was interrupted: h0 serves r9; h1 serves r1",
                "prepare 0,1 r2",
            ],
        ),
        row(
            "a rollout that finished is not named",
            all(1),
            locked(1),
            begun_after(
                0,
                "r9",
                Some(RolloutRecord {
                    state: "finished".into(),
                    ..lost_rollout()
                }),
            ),
            &["prepare 0 r2"],
        ),
        row(
            "a host that cannot write the rollout record fails, within max_fail",
            deploy(2, Batch::All, 1, false),
            and(locked(2), [begun_on(0)]),
            Event::BeginFailed(1, boom()),
            &[
                "1 failed: could not write the rollout record: boom +rec failed r2",
                "prepare 0 r2",
            ],
        ),
        row(
            "a lock broken before the switch stops the rollout: nothing switches",
            all(2),
            and(begun(2), [prep(0)]),
            Event::LockLost(1),
            &[
                "note 1 lock: the deploy lock was broken by someone else: this run stops",
                "end-hooks 0,1",
                "cancel",
                "0 aborted: stopped before any switch: the deploy lock on h1 was broken by someone else +discard r2 +rec aborted r2 \"the deploy lock of another host was broken\"",
                "1 lock held: the deploy lock on this host was broken by someone else: stopped before any switch +rec aborted r2 \"the deploy lock was broken by someone else\"",
                "end 0",
                "unlock 0",
                "finish",
            ],
        ),
        row(
            "a step that finds the lock gone stops the rollout the same way",
            all(2),
            and(begun(2), [prep(0)]),
            Event::PrepareFailed(
                1,
                StepFailure {
                    step: Step::Check,
                    error: HostError::LockLost,
                },
            ),
            &[
                "note 1 lock: the deploy lock was broken by someone else: this run stops",
                "end-hooks 0,1",
                "cancel",
                "0 aborted: stopped before any switch: the deploy lock on h1 was broken by someone else +discard r2 +rec aborted r2 \"the deploy lock of another host was broken\"",
                "1 lock held: the deploy lock on this host was broken by someone else: stopped before any switch +rec aborted r2 \"the deploy lock was broken by someone else\"",
                "end 0",
                "unlock 0",
                "finish",
            ],
        ),
        row(
            "a lock broken while beginning stops the rollout",
            all(1),
            locked(1),
            Event::BeginFailed(0, HostError::LockLost),
            &[
                "note 0 lock: the deploy lock was broken by someone else: this run stops",
                "end-hooks 0",
                "cancel",
                "0 lock held: the deploy lock on this host was broken by someone else: stopped before any switch +rec aborted r2 \"the deploy lock was broken by someone else\"",
                "finish",
            ],
        ),
    ]
}
