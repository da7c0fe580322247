//! Connecting and locking: the hosts that could not be reached, held locks, `--lock-wait`,
//! interrupts before any lock.

use super::*;

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
            "every host connected: take every lock",
            all(2),
            connected(1),
            Event::Connected(1),
            &["lock 0,1"],
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
                "lock 0,1",
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
            "locks answered in part: wait for the rest",
            all(2),
            and(connected(2), [Event::LockTaken(0)]),
            Event::LockTaken(0),
            &[],
        ),
        row(
            "every lock taken: hold them and prepare everywhere",
            all(2),
            and(connected(2), [Event::LockTaken(0)]),
            Event::LockTaken(1),
            &["hold 0,1", "prepare 0,1 r2"],
        ),
        row(
            "a revert reads every host's state once locked",
            revert(2, false),
            and(connected(2), [Event::LockTaken(1)]),
            Event::LockTaken(0),
            &["hold 0,1", "read 0,1"],
        ),
        row(
            "a held lock: the taken ones are given back, the holder is named",
            all(3),
            and(connected(3), [Event::LockTaken(0), Event::LockTaken(2)]),
            Event::LockRefused(1, held(3)),
            &[
                "unlock 0,2",
                &format!("0 aborted: {NOT_LOCKED}"),
                &format!("1 lock held: {HELD}"),
                &format!("2 aborted: {NOT_LOCKED}"),
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
            "--lock-wait does not wait for a host that is not set up",
            waiting(all(2)),
            and(connected(2), [Event::LockRefused(0, held(3))]),
            Event::LockRefused(1, Refusal::NotSetUp { env: "prod".into() }),
            &[
                &format!("0 lock held: {HELD}"),
                "1 failed: not set up: run `pmfleet deploy prod setup` first",
                "finish",
            ],
        ),
        row(
            "--lock-wait: after the pause, every lock is asked again",
            waiting(all(2)),
            and(
                connected(2),
                [Event::LockTaken(0), Event::LockRefused(1, held(3))],
            ),
            Event::LockRetry,
            &["lock 0,1"],
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
            "interrupted while locking: once locked, nothing is prepared",
            all(2),
            and(connected(2), [Event::Interrupted, Event::LockTaken(0)]),
            Event::LockTaken(1),
            &[
                "hold 0,1",
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
    ]
}
