//! Preparing: the no-split rule, batch sizes, `max_fail`, interrupts, and a failure at every
//! step of preparing.

use super::*;

pub(super) fn rows() -> Vec<Row> {
    let mut rows = vec![
        row(
            "prepared hosts wait for the others",
            all(2),
            begun(2),
            prep(0),
            &[],
        ),
        row(
            "prepared everywhere, batch all: every host switches",
            all(3),
            and(begun(3), [prep(0), prep(1)]),
            prep(2),
            &["switch 0 r2", "switch 1 r2", "switch 2 r2"],
        ),
        row(
            "batch 1: the canary switches alone",
            deploy(3, Batch::Count(1), 0, false),
            and(begun(3), [prep(0), prep(1)]),
            prep(2),
            &["switch 0 r2"],
        ),
        row(
            "batch 2 of 5",
            deploy(5, Batch::Count(2), 0, false),
            and(begun(5), [prep(0), prep(1), prep(2), prep(3)]),
            prep(4),
            &["switch 0 r2", "switch 1 r2"],
        ),
        row(
            "batch 25% of 5 is 2 hosts",
            deploy(5, Batch::Percent(25), 0, false),
            and(begun(5), [prep(0), prep(1), prep(2), prep(3)]),
            prep(4),
            &["switch 0 r2", "switch 1 r2"],
        ),
        row(
            "no split: one host failing its build switches no host",
            all(3),
            and(begun(3), [prep(0), prep(2)]),
            Event::PrepareFailed(1, hook_failed(Step::PostDeploy)),
            &[
                "1 failed: post-deploy: post-deploy exited with status 2 +rec failed r2",
                "0 aborted: not switched: 1 host(s) failed and max_fail is 0; this release was removed +discard r2 +rec aborted r2 \"another host failed\"",
                "2 aborted: not switched: 1 host(s) failed and max_fail is 0; this release was removed +discard r2 +rec aborted r2 \"another host failed\"",
                "end 0,1,2",
                "unlock 0,1,2",
                "finish",
            ],
        ),
        row(
            "a failure within max_fail: the others switch",
            deploy(3, Batch::All, 1, false),
            and(begun(3), [prep(0), prep(2)]),
            Event::PrepareFailed(1, hook_failed(Step::PostDeploy)),
            &[
                "1 failed: post-deploy: post-deploy exited with status 2 +rec failed r2",
                "switch 0 r2",
                "switch 2 r2",
            ],
        ),
        row(
            "a host that drops while preparing is unreachable",
            all(2),
            and(begun(2), [prep(0)]),
            Event::PrepareFailed(
                1,
                StepFailure {
                    step: Step::PostDeploy,
                    error: dropped(),
                },
            ),
            &[
                "1 unreachable: post-deploy: connection to root@h:22 lost: gone +rec failed r2",
                "0 aborted: not switched: 1 host(s) failed and max_fail is 0; this release was removed +discard r2 +rec aborted r2 \"another host failed\"",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a host not set up fails its check",
            deploy(2, Batch::All, 1, false),
            and(begun(2), [prep(0)]),
            Event::PrepareFailed(
                1,
                StepFailure {
                    step: Step::Check,
                    error: HostError::NotSetUp { env: "prod".into() },
                },
            ),
            &[
                "1 failed: check: not set up: run `pmfleet deploy prod setup` first +rec failed r2",
                "switch 0 r2",
            ],
        ),
        row(
            "every host failed within max_fail: nothing to switch",
            deploy(1, Batch::All, 1, false),
            begun(1),
            Event::PrepareFailed(0, hook_failed(Step::PostDeploy)),
            &[
                "0 failed: post-deploy: post-deploy exited with status 2 +rec failed r2",
                "end 0",
                "unlock 0",
                "finish",
            ],
        ),
        row(
            "unreachable and failed hosts add up against max_fail",
            deploy(3, Batch::All, 1, false),
            vec![
                Event::Connected(0),
                Event::Connected(1),
                Event::NotConnected(2, refused_tcp()),
                Event::LockTaken(0),
                Event::LockTaken(1),
                begun_on(0),
                begun_on(1),
                prep(0),
            ],
            Event::PrepareFailed(1, hook_failed(Step::Fetch)),
            &[
                "1 failed: fetch: fetch exited with status 2 +rec failed r2",
                "0 aborted: not switched: 2 host(s) failed and max_fail is 1; this release was removed +discard r2 +rec aborted r2 \"another host failed\"",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "interrupted while preparing: nothing switches, the release goes",
            all(2),
            and(begun(2), [prep(0)]),
            Event::Interrupted,
            &[
                "end-hooks 0,1",
                "cancel",
                "0 failed: interrupted before the switch: nothing switched, the new release was removed +discard r2 +rec aborted r2 \"interrupted\"",
                "1 failed: interrupted before the switch: nothing switched, the new release was removed +discard r2 +rec aborted r2 \"interrupted\"",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "interrupted after a host failed: it keeps its own failure",
            deploy(2, Batch::All, 1, false),
            and(
                begun(2),
                [Event::PrepareFailed(0, hook_failed(Step::PostDeploy))],
            ),
            Event::Interrupted,
            &[
                "end-hooks 0,1",
                "cancel",
                "1 failed: interrupted before the switch: nothing switched, the new release was removed +discard r2 +rec aborted r2 \"interrupted\"",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "an answer after the interrupt changes nothing",
            all(2),
            and(begun(2), [Event::Interrupted]),
            prep(1),
            &[],
        ),
    ];
    // Every step of preparing can fail, and each says which.
    for (name, step) in [
        ("the check can fail", Step::Check),
        ("pre-deploy can fail", Step::PreDeploy),
        ("the fetch can fail", Step::Fetch),
        ("linking shared paths can fail", Step::LinkShared),
        ("post-deploy can fail", Step::PostDeploy),
        ("marking the release complete can fail", Step::Finish),
    ] {
        let expect = format!("0 failed: {step}: {step} exited with status 2 +rec failed r2");
        rows.push(row(
            name,
            deploy(2, Batch::All, 1, false),
            begun(2),
            Event::PrepareFailed(0, hook_failed(step)),
            &[&expect],
        ));
    }
    rows
}
