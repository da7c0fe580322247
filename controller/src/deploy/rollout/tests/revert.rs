//! Reverting: one target for every host or none, switching back when a host fails.

use super::*;

pub(super) fn rows() -> Vec<Row> {
    vec![
        row(
            "states answered in part: wait for the rest",
            revert(2, false),
            locked(2),
            st(0, host_state(&["r1", "r2"], &["r1", "r2"])),
            &[],
        ),
        row(
            "every host agrees on the target: every host switches to it",
            revert(2, false),
            and(locked(2), [st(0, host_state(&["r1", "r2"], &["r1", "r2"]))]),
            st(1, host_state(&["r1", "r2"], &["r1", "r2"])),
            &[
                "info: reverting prod to release r1",
                "switch 0 r1",
                "switch 1 r1",
            ],
        ),
        row(
            "a host not set up: no host reverts",
            revert(2, false),
            and(locked(2), [st(0, host_state(&["r1", "r2"], &["r1", "r2"]))]),
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
            and(locked(2), [st(0, host_state(&["r1", "r2"], &["r1", "r2"]))]),
            st(1, host_state(&["r2"], &["r2"])),
            &[
                "1 failed: cannot revert 1: this host has only 0 deploy(s) to go back through",
                "0 aborted: not reverted: another host cannot revert",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a host that pruned the target: no host reverts",
            revert(2, false),
            and(locked(2), [st(0, host_state(&["r1", "r2"], &["r1", "r2"]))]),
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
            and(locked(2), [st(0, host_state(&["r1", "r2"], &["r1", "r2"]))]),
            st(1, host_state(&["r0", "r2"], &["r0", "r2"])),
            &[
                "0 failed: hosts disagree on the release to revert to (r0 on h1; r1 on h0); revert would split the fleet",
                "1 failed: hosts disagree on the release to revert to (r0 on h1; r1 on h0); revert would split the fleet",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a host whose state cannot be read (dropped) is unreachable",
            revert(2, false),
            and(locked(2), [st(0, host_state(&["r1", "r2"], &["r1", "r2"]))]),
            Event::StateUnread(1, dropped()),
            &[
                "1 unreachable: connection to root@h:22 lost: gone",
                "0 aborted: not reverted: another host cannot revert",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "every host switched: reverted",
            revert(2, false),
            and(read_two(), [Event::Switched(0, Some("r2".into()))]),
            Event::Switched(1, Some("r2".into())),
            &[
                "0 ok: reverted to r1 +rec revert success r1<-r2",
                "1 ok: reverted to r1 +rec revert success r1<-r2",
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
                    st(0, host_state(&["r1", "r2"], &["r1", "r2"])),
                    Event::Switched(0, Some("r2".into())),
                ],
            ),
            Event::Applied(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                "0 ok: reverted to r1 +rec revert success r1<-r2",
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
                "back 0 r2",
            ],
        ),
        row(
            "a host sent back records both switches",
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
                "0 rolled back: switched back to r2: another host failed to revert +rec revert success r1<-r2 +rec revert success r2<-r1 \"switched back: another host failed to revert\"",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a host that cannot go back says so",
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
                "0 rolled back: could not switch back to r2: boom +rec revert success r1<-r2",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "apps that fail on the target: the host goes back to what it served",
            revert(2, true),
            and(read_two(), [Event::Switched(0, Some("r2".into()))]),
            Event::ApplyFailed(0, not_ready()),
            &["back 0 r2"],
        ),
        row(
            "after going back, the agent runs what the host served",
            revert(2, true),
            and(
                read_two(),
                [
                    Event::Switched(0, Some("r2".into())),
                    Event::ApplyFailed(0, not_ready()),
                ],
            ),
            Event::SwitchedBack(0),
            &["apply-back 0 r2 as r1"],
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
                "0 failed: switch: apps not ready: web: never ready +rec revert failed r1<-r2 \"apps not ready: web: never ready\"",
            ],
        ),
        row(
            "interrupted while reading: nothing switches",
            revert(2, false),
            and(locked(2), [st(0, host_state(&["r1", "r2"], &["r1", "r2"]))]),
            Event::Interrupted,
            &[
                "cancel",
                "0 failed: interrupted before the switch: nothing switched",
                "1 failed: interrupted before the switch: nothing switched",
                "unlock 0,1",
                "finish",
            ],
        ),
    ]
}
