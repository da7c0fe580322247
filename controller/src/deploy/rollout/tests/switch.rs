//! Switching a deploy: batches and the canary, stopping past `max_fail`, switching back,
//! apps that never become ready.

use super::*;

pub(super) fn rows() -> Vec<Row> {
    let one = |batch| deploy(3, batch, 0, false);
    let agents = |n, batch, max_fail| deploy(n, batch, max_fail, true);
    vec![
        row(
            "switched hosts wait for the rest of their batch",
            all(2),
            prepared(2),
            sw(0),
            &[],
        ),
        row(
            "the last batch switched: every host serves the release",
            all(2),
            and(prepared(2), [sw(0)]),
            sw(1),
            &[
                "0 ok: now serving r2 +rec success r2<-r1 +prune",
                "1 ok: now serving r2 +rec success r2<-r1 +prune",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a first deploy has no previous release",
            all(1),
            prepared(1),
            Event::Switched(0, None),
            &[
                "0 ok: now serving r2 +rec success r2 +prune",
                "unlock 0",
                "finish",
            ],
        ),
        row(
            "batch 1: the canary switched, the next batch goes",
            one(Batch::Count(1)),
            prepared(3),
            sw(0),
            &["switch 1 r2"],
        ),
        row(
            "batch 1: the last batch ends the rollout",
            one(Batch::Count(1)),
            and(prepared(3), [sw(0), sw(1)]),
            sw(2),
            &[
                "0 ok: now serving r2 +rec success r2<-r1 +prune",
                "1 ok: now serving r2 +rec success r2<-r1 +prune",
                "2 ok: now serving r2 +rec success r2<-r1 +prune",
                "unlock 0,1,2",
                "finish",
            ],
        ),
        row(
            "a failed switch past max_fail stops the rollout: the canary goes back, the rest never moves",
            one(Batch::Count(1)),
            and(prepared(3), [sw(0)]),
            Event::SwitchFailed(1, boom()),
            &[
                "1 failed: switch: boom +discard r2 +rec failed r2",
                &format!("2 aborted: {STOPPED} +discard r2 +rec aborted r2"),
                "back 0 r1",
            ],
        ),
        row(
            "the canary back after the stop: rolled back, its release kept",
            one(Batch::Count(1)),
            and(prepared(3), [sw(0), Event::SwitchFailed(1, boom())]),
            Event::SwitchedBack(0),
            &[
                &format!("0 rolled back: {BACK_1_OF_0} +rec rolled-back r2<-r1"),
                "unlock 0,1,2",
                "finish",
            ],
        ),
        row(
            "a canary that cannot go back says so, and is still rolled back",
            one(Batch::Count(1)),
            and(prepared(3), [sw(0), Event::SwitchFailed(1, boom())]),
            Event::SwitchBackFailed(0, boom()),
            &[
                "note 0 switch back: failed: boom",
                &format!("0 rolled back: {BACK_1_OF_0} +rec rolled-back r2<-r1"),
                "unlock 0,1,2",
                "finish",
            ],
        ),
        row(
            "a canary with no previous release is not switched anywhere",
            one(Batch::Count(1)),
            and(prepared(3), [Event::Switched(0, None)]),
            Event::SwitchFailed(1, boom()),
            &[
                "1 failed: switch: boom +discard r2 +rec failed r2",
                &format!("2 aborted: {STOPPED} +discard r2 +rec aborted r2"),
                &format!("0 rolled back: {BACK_1_OF_0} +rec rolled-back r2"),
                "unlock 0,1,2",
                "finish",
            ],
        ),
        row(
            "batch all: a failed switch sends the switched hosts back once all answered",
            all(3),
            and(prepared(3), [sw(0), Event::SwitchFailed(1, boom())]),
            sw(2),
            &["back 0 r1", "back 2 r1"],
        ),
        row(
            "a failed switch within max_fail: the rollout goes on",
            deploy(3, Batch::Count(1), 1, false),
            and(prepared(3), [sw(0)]),
            Event::SwitchFailed(1, boom()),
            &[
                "1 failed: switch: boom +discard r2 +rec failed r2",
                "switch 2 r2",
            ],
        ),
        row(
            "a host that drops during its switch is unreachable",
            deploy(2, Batch::All, 1, false),
            and(prepared(2), [sw(0)]),
            Event::SwitchFailed(1, dropped()),
            &[
                "1 unreachable: switch: connection to root@h:22 lost: gone +discard r2 +rec failed r2",
                "0 ok: now serving r2 +rec success r2<-r1 +prune",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "interrupted after the switch began: the rollout finishes",
            all(2),
            and(prepared(2), [sw(0)]),
            Event::Interrupted,
            &[
                "info: the switch has begun: finishing it, so no host is left behind (interrupt again to quit at once)",
            ],
        ),
        row(
            "a second interrupt changes nothing more",
            all(2),
            and(prepared(2), [Event::Interrupted]),
            Event::Interrupted,
            &[],
        ),
        row(
            "a lock broken by someone else is shown",
            all(2),
            prepared(2),
            Event::LockLost(1),
            &["note 1 lock: the deploy lock was broken by someone else"],
        ),
        row(
            "a lost lock on a host never locked is ignored",
            all(2),
            connected(2),
            Event::LockLost(1),
            &[],
        ),
        row(
            "a switch answer from a host not switching is ignored",
            all(2),
            prepared(2),
            Event::SwitchedBack(0),
            &[],
        ),
        // With agents.
        row(
            "the agent runs the apps once switched",
            agents(2, Batch::All, 0),
            prepared(2),
            sw(0),
            &["apply 0 r2"],
        ),
        row(
            "a release without an ecosystem file has no apps to run",
            agents(1, Batch::All, 0),
            and(
                locked(1),
                [Event::Prepared(0, Prepared { has_apps: false })],
            ),
            sw(0),
            &[
                "note 0 reload apps: this release has no ecosystem file: no apps for the agent to run",
                "0 ok: now serving r2 +rec success r2<-r1 +prune",
                "unlock 0",
                "finish",
            ],
        ),
        row(
            "apps ready: the host serves the release",
            agents(1, Batch::All, 0),
            and(prepared(1), [sw(0)]),
            Event::Applied(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                "0 ok: now serving r2 +rec success r2<-r1 +prune",
                "unlock 0",
                "finish",
            ],
        ),
        row(
            "apps not ready: back to the previous release",
            agents(2, Batch::All, 0),
            and(prepared(2), [sw(0)]),
            Event::ApplyFailed(0, not_ready()),
            &["back 0 r1"],
        ),
        row(
            "apps not ready on a first deploy: nothing to go back to",
            agents(2, Batch::All, 1),
            and(prepared(2), [Event::Switched(0, None)]),
            Event::ApplyFailed(0, not_ready()),
            &[
                "0 rolled back: apps not ready: web: never ready; no previous release to go back to +discard r2 +rec rolled-back r2",
            ],
        ),
        row(
            "switched back after apps not ready: the agent runs the previous release again",
            agents(2, Batch::All, 0),
            and(prepared(2), [sw(0), Event::ApplyFailed(0, not_ready())]),
            Event::SwitchedBack(0),
            &["apply-back 0 r1 as r2"],
        ),
        row(
            "apps back on the previous release: rolled back, the release removed",
            agents(2, Batch::All, 1),
            and(
                prepared(2),
                [
                    sw(0),
                    Event::ApplyFailed(0, not_ready()),
                    Event::SwitchedBack(0),
                    sw(1),
                    Event::Applied(1, "web reloaded".into()),
                ],
            ),
            Event::AppliedBack(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                "0 rolled back: apps not ready: web: never ready; switched back to r1 +discard r2 +rec rolled-back r2<-r1",
                "1 ok: now serving r2 +rec success r2<-r1 +prune",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "apps that fail to go back are shown",
            agents(1, Batch::All, 1),
            and(
                prepared(1),
                [
                    sw(0),
                    Event::ApplyFailed(0, not_ready()),
                    Event::SwitchedBack(0),
                ],
            ),
            Event::ApplyBackFailed(0, not_ready()),
            &[
                "note 0 switch back: apps of r1: apps not ready: web: never ready",
                "0 rolled back: apps not ready: web: never ready; switched back to r1 +discard r2 +rec rolled-back r2<-r1",
                "unlock 0",
                "finish",
            ],
        ),
        row(
            "a host that cannot switch back after apps not ready says so",
            agents(1, Batch::All, 1),
            and(prepared(1), [sw(0), Event::ApplyFailed(0, not_ready())]),
            Event::SwitchBackFailed(0, boom()),
            &[
                "note 0 switch back: failed: boom",
                "0 rolled back: apps not ready: web: never ready; switched back to r1 +discard r2 +rec rolled-back r2<-r1",
                "unlock 0",
                "finish",
            ],
        ),
        row(
            "apps not ready on the canary past max_fail: the rest never moves",
            agents(3, Batch::Count(1), 0),
            and(
                prepared(3),
                [
                    sw(0),
                    Event::ApplyFailed(0, not_ready()),
                    Event::SwitchedBack(0),
                ],
            ),
            Event::AppliedBack(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                "0 rolled back: apps not ready: web: never ready; switched back to r1 +discard r2 +rec rolled-back r2<-r1",
                &format!("1 aborted: {STOPPED} +discard r2 +rec aborted r2"),
                &format!("2 aborted: {STOPPED} +discard r2 +rec aborted r2"),
                "unlock 0,1,2",
                "finish",
            ],
        ),
        row(
            "apps not ready within max_fail: the next batch goes",
            agents(2, Batch::Count(1), 1),
            and(
                prepared(2),
                [
                    sw(0),
                    Event::ApplyFailed(0, not_ready()),
                    Event::SwitchedBack(0),
                ],
            ),
            Event::AppliedBack(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                "0 rolled back: apps not ready: web: never ready; switched back to r1 +discard r2 +rec rolled-back r2<-r1",
                "switch 1 r2",
            ],
        ),
        row(
            "stopped with agents: the canary's apps go back too",
            agents(3, Batch::Count(1), 0),
            and(
                prepared(3),
                [
                    sw(0),
                    Event::Applied(0, "ok".into()),
                    Event::SwitchFailed(1, boom()),
                ],
            ),
            Event::SwitchedBack(0),
            &["apply-back 0 r1 as r2"],
        ),
        row(
            "stopped with agents: the canary concluded once its apps are back",
            agents(3, Batch::Count(1), 0),
            and(
                prepared(3),
                [
                    sw(0),
                    Event::Applied(0, "ok".into()),
                    Event::SwitchFailed(1, boom()),
                    Event::SwitchedBack(0),
                ],
            ),
            Event::AppliedBack(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                &format!("0 rolled back: {BACK_1_OF_0} +rec rolled-back r2<-r1"),
                "unlock 0,1,2",
                "finish",
            ],
        ),
    ]
}
