//! Reverting: one target for every host or none, a rollout interrupted half-way counted as
//! done everywhere, switching back (and running the apps of what a host served again) when a
//! host fails.

use super::*;

fn r1_r2() -> HostState {
    host_state(&["r1", "r2"], &["r1", "r2"])
}

/// A host the interrupted deploy of r9 reached (`switched`) or not, with its record.
fn after_dead_deploy(switched: bool) -> HostState {
    let mut state = if switched {
        host_state(&["r0", "r1", "r9"], &["r0", "r1", "r9"])
    } else {
        host_state(&["r0", "r1"], &["r0", "r1", "r9"])
    };
    state.rollout = Some(RolloutRecord {
        id: "dead".into(),
        action: "deploy".into(),
        who: "alice@laptop".into(),
        started: "2026-11-24T06:15:30Z".into(),
        release: "r9".into(),
        hosts: labels(2),
        previous: Some("r1".into()),
        state: "running".into(),
        finished: None,
    });
    state
}

pub(super) fn rows() -> Vec<Row> {
    vec![
        row(
            "states answered in part: wait for the rest",
            revert(2, false),
            locked(2),
            st(0, r1_r2()),
            &[],
        ),
        row(
            "every host agrees on the target: the rollout begins",
            revert(2, false),
            and(locked(2), [st(0, r1_r2())]),
            st(1, r1_r2()),
            &["info: reverting prod to release r1", "begin 0,1 r1"],
        ),
        row(
            "begun everywhere: every host switches to the target",
            revert(2, false),
            read_two().into_iter().take(7).collect(),
            revert_begun(1),
            &["switch 0 r1", "switch 1 r1"],
        ),
        row(
            "a host that cannot begin: none moves",
            revert(2, false),
            read_two().into_iter().take(7).collect(),
            Event::BeginFailed(1, boom()),
            &[
                "1 failed: could not write the rollout record: boom",
                "0 aborted: not reverted: another host cannot revert",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a host not set up: no host reverts",
            revert(2, false),
            and(locked(2), [st(0, r1_r2())]),
            st(1, HostState::default()),
            &[
                "1 failed: not set up: run `pmfleet deploy prod setup` first",
                "0 aborted: not reverted: another host cannot revert",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a host without enough history: no host reverts",
            revert(2, false),
            and(locked(2), [st(0, r1_r2())]),
            st(1, host_state(&["r2"], &["r2"])),
            &[
                "1 failed: cannot revert 1: this host has only 0 deploy(s) to go back through",
                "0 aborted: not reverted: another host cannot revert",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "revert with no N: the newest release every host holds, though revert 1 differs",
            revert_newest(2),
            and(
                locked(2),
                [st(0, host_state(&["r0", "r1", "r2"], &["r0", "r1", "r2"]))],
            ),
            st(1, host_state(&["r0", "r2"], &["r0", "r2"])),
            &["info: reverting prod to release r0", "begin 0,1 r0"],
        ),
        row(
            "revert with no N and nothing in common: no host reverts, each told what it lacks",
            revert_newest(2),
            and(
                locked(2),
                [st(0, host_state(&["r0", "r1", "r2"], &["r1", "r2"]))],
            ),
            st(1, host_state(&["r0", "r2"], &["r0", "r2"])),
            &[
                "0 failed: no release other than the one served is on every host: h0 lacks r0; h1 lacks r1",
                "1 failed: no release other than the one served is on every host: h0 lacks r0; h1 lacks r1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a host that pruned the target: no host reverts",
            revert(2, false),
            and(locked(2), [st(0, r1_r2())]),
            st(1, host_state(&["r1", "r2"], &["r2"])),
            &[
                "1 failed: release r1 is no longer on this host (pruned: keep_releases is 5)",
                "0 aborted: not reverted: another host cannot revert",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "hosts that disagree on the target would split the fleet",
            revert(2, false),
            and(locked(2), [st(0, r1_r2())]),
            st(1, host_state(&["r0", "r2"], &["r0", "r2"])),
            &[
                "0 failed: hosts disagree on the release to revert to (r0 on h1; r1 on h0); revert would split the fleet",
                "1 failed: hosts disagree on the release to revert to (r0 on h1; r1 on h0); revert would split the fleet",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a deploy that died after its canary counts as done: every host goes back to the release before it",
            revert(2, false),
            and(locked(2), [st(0, after_dead_deploy(true))]),
            st(1, after_dead_deploy(false)),
            &[
                "info: rollout dead (deploy of r9 by alice@laptop, started 2026-11-24T06:15:30Z) was interrupted: h0 serves r9; h1 serves r1",
                "info: reverting prod to release r1",
                "begin 0,1 r1",
            ],
        ),
        row(
            "a host whose state cannot be read (dropped) is unreachable",
            revert(2, false),
            and(locked(2), [st(0, r1_r2())]),
            Event::StateUnread(1, dropped()),
            &[
                "1 unreachable: connection to root@h:22 lost: gone",
                "0 aborted: not reverted: another host cannot revert",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "every host switched: reverted (each switch recorded itself)",
            revert(2, false),
            and(read_two(), [Event::Switched(0, Some("r2".into()))]),
            Event::Switched(1, Some("r2".into())),
            &[
                "0 ok: reverted to r1",
                "1 ok: reverted to r1",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "with agents: the target's apps run once switched",
            revert(2, true),
            read_two(),
            Event::Switched(0, Some("r2".into())),
            &["apply 0 r1"],
        ),
        row(
            "with agents: every host's apps ready: reverted",
            revert(1, true),
            and(
                locked(1),
                [
                    st(0, r1_r2()),
                    revert_begun(0),
                    Event::Switched(0, Some("r2".into())),
                ],
            ),
            Event::Applied(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                "0 ok: reverted to r1",
                "end 0",
                "unlock 0",
                "finish",
            ],
        ),
        row(
            "a failed switch sends the other hosts back",
            revert(2, false),
            and(read_two(), [Event::Switched(0, Some("r2".into()))]),
            Event::SwitchFailed(1, boom()),
            &[
                "1 failed: switch: boom +rec revert failed r1<-r2 \"boom\"",
                "back 0 r2: switched back: another host failed to revert",
            ],
        ),
        row(
            "a host sent back (no agents) is rolled back",
            revert(2, false),
            and(
                read_two(),
                [
                    Event::Switched(0, Some("r2".into())),
                    Event::SwitchFailed(1, boom()),
                ],
            ),
            Event::SwitchedBack(0),
            &[
                "0 rolled back: switched back to r2: another host failed to revert",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a host sent back has its agent run what it served again",
            revert(2, true),
            and(
                read_two(),
                [
                    Event::Switched(0, Some("r2".into())),
                    Event::Applied(0, "ok".into()),
                    Event::SwitchFailed(1, boom()),
                ],
            ),
            Event::SwitchedBack(0),
            &["apply-back 0 r2"],
        ),
        row(
            "a host sent back is rolled back once its apps run what it serves",
            revert(2, true),
            and(
                read_two(),
                [
                    Event::Switched(0, Some("r2".into())),
                    Event::Applied(0, "ok".into()),
                    Event::SwitchFailed(1, boom()),
                    Event::SwitchedBack(0),
                ],
            ),
            Event::AppliedBack(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                "0 rolled back: switched back to r2: another host failed to revert",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "apps that fail to go back after a revert are shown",
            revert(2, true),
            and(
                read_two(),
                [
                    Event::Switched(0, Some("r2".into())),
                    Event::Applied(0, "ok".into()),
                    Event::SwitchFailed(1, boom()),
                    Event::SwitchedBack(0),
                ],
            ),
            Event::ApplyBackFailed(0, not_ready()),
            &[
                "note 0 switch back: apps of r2: apps not ready: web: never ready",
                "0 rolled back: switched back to r2: another host failed to revert",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a host that cannot go back is still on the target: a failure",
            revert(2, false),
            and(
                read_two(),
                [
                    Event::Switched(0, Some("r2".into())),
                    Event::SwitchFailed(1, boom()),
                ],
            ),
            Event::SwitchBackFailed(0, boom()),
            &[
                "0 failed: serving r1 still: could not switch back to r2: boom",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "apps that fail on the target: the host goes back to what it served",
            revert(2, true),
            and(read_two(), [Event::Switched(0, Some("r2".into()))]),
            Event::ApplyFailed(0, not_ready()),
            &["back 0 r2: switched back: apps not ready: web: never ready"],
        ),
        row(
            "after going back, the agent runs what the host served, as it was",
            revert(2, true),
            and(
                read_two(),
                [
                    Event::Switched(0, Some("r2".into())),
                    Event::ApplyFailed(0, not_ready()),
                ],
            ),
            Event::SwitchedBack(0),
            &["apply-back 0 r2"],
        ),
        row(
            "the host whose apps failed is a failure",
            revert(2, true),
            and(
                read_two(),
                [
                    Event::Switched(0, Some("r2".into())),
                    Event::ApplyFailed(0, not_ready()),
                    Event::SwitchedBack(0),
                ],
            ),
            Event::AppliedBack(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                "0 failed: switch: apps not ready: web: never ready +rec revert failed r1<-r2 \"apps not ready: web: never ready\"",
            ],
        ),
        row(
            "a lock broken during the switch sends every host back",
            revert(2, false),
            and(read_two(), [Event::Switched(0, Some("r2".into()))]),
            Event::SwitchFailed(1, HostError::LockLost),
            &[
                "note 1 lock: the deploy lock was broken by someone else: this run stops",
                "back 0 r2: switched back: another host failed to revert",
                "1 lock held: switch: the deploy lock on this host was broken by someone else, so this run stopped +rec revert failed r1<-r2 \"the deploy lock on this host was broken by someone else, so this run stopped\"",
            ],
        ),
        row(
            "interrupted while reading: nothing switches",
            revert(2, false),
            and(locked(2), [st(0, r1_r2())]),
            Event::Interrupted,
            &[
                "cancel",
                "0 failed: interrupted before the switch: nothing switched",
                "1 failed: interrupted before the switch: nothing switched",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "interrupted while beginning: nothing switches",
            revert(2, false),
            read_two().into_iter().take(6).collect(),
            Event::Interrupted,
            &[
                "cancel",
                "0 failed: interrupted before the switch: nothing switched",
                "1 failed: interrupted before the switch: nothing switched",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
    ]
}
