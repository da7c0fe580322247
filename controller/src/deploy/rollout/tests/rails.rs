//! The rollout rails: the `release` step once before any switch, the watch window after each
//! batch with the fleet-wide revert a failing window starts, and the rollout confirmed as a
//! whole.

use super::*;

fn release_step() -> Rails {
    Rails {
        release_step: true,
        ..Rails::default()
    }
}

fn watched() -> Rails {
    Rails {
        watch: true,
        ..Rails::default()
    }
}

fn confirmed() -> Rails {
    Rails {
        confirm: true,
        ..Rails::default()
    }
}

fn applied(h: HostId) -> Event {
    Event::Applied(h, "web reloaded".into())
}

fn healthy(h: HostId) -> Event {
    Event::Watched(h, "web healthy for 5 s".into())
}

fn crashed() -> HostError {
    HostError::Agent(ApplyError::Unhealthy(vec![
        "web#0 restarted 1 time(s) (crashed, or over max_memory_restart)".into(),
    ]))
}

/// Prepared on every host but the last one to answer.
fn all_but_last_prepared(n: usize) -> Vec<Event> {
    and(begun(n), (0..n - 1).map(prep))
}

const BACK_ALL: &str = "switched back: 1 host(s) failed and max_fail is 0";

pub(super) fn rows() -> Vec<Row> {
    let step = |n| railed(n, Batch::Count(1), 0, release_step());
    let watch = |n, batch, max_fail| railed(n, batch, max_fail, watched());
    let watch_and_confirm = |n| {
        railed(
            n,
            Batch::Count(1),
            0,
            Rails {
                watch: true,
                confirm: true,
                ..Rails::default()
            },
        )
    };
    let confirm = |n| railed(n, Batch::All, 0, confirmed());
    // Three hosts, one per batch, watched: the canary (0) watched and healthy, host 1
    // switched and running the release.
    let second_batch_running = and(
        prepared(3),
        [sw(0), applied(0), healthy(0), sw(1), applied(1)],
    );
    vec![
        // ---- the release step -----------------------------------------------------------
        row(
            "the release step runs once, on the first host, after every host prepared",
            step(3),
            all_but_last_prepared(3),
            prep(2),
            &["release 0 r2"],
        ),
        row(
            "the release step runs on the host marked primary",
            railed(
                3,
                Batch::Count(1),
                0,
                Rails {
                    release_step: true,
                    primary: Some(2),
                    ..Rails::default()
                },
            ),
            all_but_last_prepared(3),
            prep(2),
            &["release 2 r2"],
        ),
        row(
            "no host switches while the release step runs",
            step(3),
            prepared(3),
            sw(0),
            &[],
        ),
        row(
            "the release step done: the first batch switches",
            step(3),
            prepared(3),
            Event::ReleaseRan(0, "migrated".into()),
            &["note 0 release: migrated", "switch 0 r2"],
        ),
        row(
            "a failing release step switches nothing and removes the release everywhere",
            step(3),
            prepared(3),
            Event::ReleaseFailed(0, hook_failed(Step::Release)),
            &[
                "0 failed: release: release exited with status 2: nothing switched, this release was removed +discard r2 +rec failed r2",
                "1 aborted: not switched: the release step failed on h0; this release was removed +discard r2 +rec aborted r2 \"the release step did not run or failed\"",
                "2 aborted: not switched: the release step failed on h0; this release was removed +discard r2 +rec aborted r2 \"the release step did not run or failed\"",
                "end 0,1,2",
                "unlock 0,1,2",
                "finish",
            ],
        ),
        row(
            "a primary that could not prepare the release: the step does not run elsewhere, nothing switches",
            railed(
                3,
                Batch::Count(1),
                1,
                Rails {
                    release_step: true,
                    primary: Some(1),
                    ..Rails::default()
                },
            ),
            and(begun(3), [prep(0), prep(2)]),
            Event::PrepareFailed(1, hook_failed(Step::PostDeploy)),
            &[
                "1 failed: post-deploy: post-deploy exited with status 2 +rec failed r2",
                "0 aborted: not switched: the release step runs on h1 (primary), which did not prepare the release; this release was removed +discard r2 +rec aborted r2 \"the release step did not run or failed\"",
                "2 aborted: not switched: the release step runs on h1 (primary), which did not prepare the release; this release was removed +discard r2 +rec aborted r2 \"the release step did not run or failed\"",
                "end 0,1,2",
                "unlock 0,1,2",
                "finish",
            ],
        ),
        row(
            "a lock broken during the release step: nothing switches",
            step(2),
            prepared(2),
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
            "an interrupt during the release step ends it: nothing switches",
            step(2),
            prepared(2),
            Event::Interrupted,
            &[
                "end-hooks 0,1",
                "cancel",
                &format!("0 failed: {INTERRUPTED} +discard r2 +rec aborted r2 \"interrupted\""),
                &format!("1 failed: {INTERRUPTED} +discard r2 +rec aborted r2 \"interrupted\""),
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a late answer from a release step that was stopped changes nothing",
            step(2),
            and(prepared(2), [Event::Interrupted]),
            Event::ReleaseRan(0, "migrated".into()),
            &[],
        ),
        // ---- the watch window -----------------------------------------------------------
        row(
            "the canary's apps run the release: its agent watches them, the next batch waits",
            watch(3, Batch::Count(1), 0),
            and(prepared(3), [sw(0)]),
            applied(0),
            &["note 0 reload apps: web reloaded", "watch 0 r2"],
        ),
        row(
            "the canary stayed healthy through its window: the next batch goes",
            watch(3, Batch::Count(1), 0),
            and(prepared(3), [sw(0), applied(0)]),
            healthy(0),
            &["note 0 watch: web healthy for 5 s", "switch 1 r2"],
        ),
        row(
            "a canary failing its window goes back, and the rest never switch",
            watch(3, Batch::Count(1), 0),
            and(prepared(3), [sw(0), applied(0)]),
            Event::WatchFailed(0, crashed()),
            &[
                "back 0 r1: switched back: unhealthy in the watch window: web#0 restarted 1 time(s) (crashed, or over max_memory_restart)",
                "1 aborted: not switched: the rollout stopped +discard r2 +rec aborted r2",
                "2 aborted: not switched: the rollout stopped +discard r2 +rec aborted r2",
            ],
        ),
        row(
            "a window failing in the second batch sends the canary, watched and healthy, back too",
            watch(3, Batch::Count(1), 0),
            second_batch_running.clone(),
            Event::WatchFailed(1, crashed()),
            &[
                "back 1 r1: switched back: unhealthy in the watch window: web#0 restarted 1 time(s) (crashed, or over max_memory_restart)",
                "2 aborted: not switched: the rollout stopped +discard r2 +rec aborted r2",
                &format!("back 0 r1: {BACK_ALL}"),
            ],
        ),
        row(
            "the host whose window failed is back: rolled back, and the run waits for the canary",
            watch(3, Batch::Count(1), 0),
            and(
                second_batch_running.clone(),
                [Event::WatchFailed(1, crashed()), Event::SwitchedBack(1)],
            ),
            Event::AppliedBack(1, "web reloaded".into()),
            &[
                "note 1 reload apps: web reloaded",
                "1 rolled back: unhealthy in the watch window: web#0 restarted 1 time(s) (crashed, or over max_memory_restart); switched back to r1 +discard r2 +rec rolled-back r2<-r1",
            ],
        ),
        row(
            "the canary back after another batch's window failed: rolled back, the run ends",
            watch(3, Batch::Count(1), 0),
            and(
                second_batch_running.clone(),
                [
                    Event::WatchFailed(1, crashed()),
                    Event::SwitchedBack(1),
                    Event::AppliedBack(1, "web reloaded".into()),
                    Event::SwitchedBack(0),
                ],
            ),
            Event::AppliedBack(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                &format!("0 rolled back: {BACK_ALL} +rec rolled-back r2<-r1"),
                "end 0,1,2",
                "unlock 0,1,2",
                "finish",
            ],
        ),
        row(
            "one window failing in a batch ends the other windows of that batch, and they go back",
            watch(3, Batch::All, 0),
            and(prepared(3), [sw(0), sw(1), sw(2), applied(0), applied(1)]),
            Event::WatchFailed(0, crashed()),
            &[
                "back 0 r1: switched back: unhealthy in the watch window: web#0 restarted 1 time(s) (crashed, or over max_memory_restart)",
                "stop-watching 1",
                &format!("back 1 r1: {BACK_ALL}"),
            ],
        ),
        row(
            "a host still reloading when another's window failed goes back once its apps run",
            watch(3, Batch::All, 0),
            and(
                prepared(3),
                [
                    sw(0),
                    sw(1),
                    sw(2),
                    applied(0),
                    applied(1),
                    Event::WatchFailed(0, crashed()),
                ],
            ),
            applied(2),
            &[
                "note 2 reload apps: web reloaded",
                &format!("back 2 r1: {BACK_ALL}"),
            ],
        ),
        row(
            "a window that was ended says nothing more",
            watch(3, Batch::All, 0),
            and(
                prepared(3),
                [
                    sw(0),
                    sw(1),
                    sw(2),
                    applied(0),
                    applied(1),
                    Event::WatchFailed(0, crashed()),
                ],
            ),
            healthy(1),
            &[],
        ),
        row(
            "a window failing within max_fail: that host goes back, the rollout goes on",
            watch(3, Batch::Count(1), 1),
            and(prepared(3), [sw(0), applied(0)]),
            Event::WatchFailed(0, crashed()),
            &[
                "back 0 r1: switched back: unhealthy in the watch window: web#0 restarted 1 time(s) (crashed, or over max_memory_restart)",
            ],
        ),
        row(
            "a host whose window failed within max_fail is rolled back, and the next batch goes",
            watch(3, Batch::Count(1), 1),
            and(
                prepared(3),
                [
                    sw(0),
                    applied(0),
                    Event::WatchFailed(0, crashed()),
                    Event::SwitchedBack(0),
                ],
            ),
            Event::AppliedBack(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                "0 rolled back: unhealthy in the watch window: web#0 restarted 1 time(s) (crashed, or over max_memory_restart); switched back to r1 +discard r2 +rec rolled-back r2<-r1",
                "switch 1 r2",
            ],
        ),
        row(
            "a host that drops during its window counts as failed and goes back",
            watch(2, Batch::Count(1), 0),
            and(prepared(2), [sw(0), applied(0)]),
            Event::WatchFailed(0, dropped()),
            &[
                "back 0 r1: switched back: connection to root@h:22 lost: gone",
                "1 aborted: not switched: the rollout stopped +discard r2 +rec aborted r2",
            ],
        ),
        row(
            "an interrupt during a window finishes the rollout",
            watch(2, Batch::Count(1), 0),
            and(prepared(2), [sw(0), applied(0)]),
            Event::Interrupted,
            &[
                "info: the switch has begun: finishing it, so no host is left behind (interrupt again to quit at once)",
            ],
        ),
        row(
            "every window passed: the rollout is confirmed on every host",
            watch_and_confirm(2),
            and(
                prepared(2),
                [sw(0), applied(0), healthy(0), sw(1), applied(1)],
            ),
            healthy(1),
            &["note 1 watch: web healthy for 5 s", "confirm 0,1"],
        ),
        // ---- the rollout confirmed as a whole ------------------------------------------
        row(
            "every batch switched: the switched hosts are asked to keep the release",
            confirm(2),
            and(prepared(2), [sw(0), sw(1), applied(0)]),
            applied(1),
            &["note 1 reload apps: web reloaded", "confirm 0,1"],
        ),
        row(
            "confirmed on one host: the run waits for the others",
            confirm(2),
            and(prepared(2), [sw(0), sw(1), applied(0), applied(1)]),
            Event::Confirmed(0),
            &[],
        ),
        row(
            "confirmed everywhere: every host serves the release",
            confirm(2),
            and(
                prepared(2),
                [sw(0), sw(1), applied(0), applied(1), Event::Confirmed(0)],
            ),
            Event::Confirmed(1),
            &[
                "0 ok: now serving r2 +prune",
                "1 ok: now serving r2 +prune",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a host that already went back by itself takes the confirmed hosts back with it",
            confirm(2),
            and(
                prepared(2),
                [sw(0), sw(1), applied(0), applied(1), Event::Confirmed(0)],
            ),
            Event::NotConfirmed(1, "went back to r1 by itself".into()),
            &[
                "1 rolled back: went back to r1 by itself",
                "back 0 r1: switched back: h1 did not keep the release, so no host does",
            ],
        ),
        row(
            "a host that does not answer the confirmation goes back by itself; the others go back now",
            confirm(2),
            and(
                prepared(2),
                [sw(0), sw(1), applied(0), applied(1), Event::Confirmed(1)],
            ),
            Event::ConfirmFailed(0, dropped()),
            &[
                "0 unreachable: not confirmed (connection to root@h:22 lost: gone): it goes back by itself once this run is silent for 30 s",
                "back 1 r1: switched back: h0 did not keep the release, so no host does",
            ],
        ),
        row(
            "the confirmed host back after another did not keep the release: rolled back",
            confirm(2),
            and(
                prepared(2),
                [
                    sw(0),
                    sw(1),
                    applied(0),
                    applied(1),
                    Event::Confirmed(0),
                    Event::NotConfirmed(1, "went back to r1 by itself".into()),
                    Event::SwitchedBack(0),
                ],
            ),
            Event::AppliedBack(0, "web reloaded".into()),
            &[
                "note 0 reload apps: web reloaded",
                "0 rolled back: switched back: h1 did not keep the release, so no host does +rec rolled-back r2<-r1",
                "end 0,1",
                "unlock 0,1",
                "finish",
            ],
        ),
        row(
            "a lock broken before the confirmation: that host is not confirmed, the run waits for the others",
            confirm(2),
            and(prepared(2), [sw(0), sw(1), applied(0), applied(1)]),
            Event::ConfirmFailed(1, HostError::LockLost),
            &[
                "1 lock held: not confirmed (the deploy lock on this host was broken by someone else, so this run stopped): it goes back by itself once this run is silent for 30 s",
            ],
        ),
        row(
            "an interrupt while confirming finishes the confirmation",
            confirm(2),
            and(prepared(2), [sw(0), sw(1), applied(0), applied(1)]),
            Event::Interrupted,
            &[
                "info: the switch has begun: finishing it, so no host is left behind (interrupt again to quit at once)",
            ],
        ),
        row(
            "a late confirmation after the run ended changes nothing",
            confirm(1),
            and(prepared(1), [sw(0), applied(0), Event::Confirmed(0)]),
            Event::Confirmed(0),
            &[],
        ),
    ]
}
