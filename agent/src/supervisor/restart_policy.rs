//! The restart policy: a pure state machine deciding what to do when an instance exits.
//!
//! The supervisor owns one [`RestartState`] per instance and calls [`decide`] with every exit;
//! the answer says whether to start the instance again (and after how long), leave it stopped,
//! or mark it errored. Nothing here spawns, sleeps or reads a clock: the uptime of the run that
//! ended comes in with the event, so every rule is covered by the table at the bottom.
//!
//! The rules follow PM2 (`lib/God.js` `handleExit` and `lib/Worker.js`), with two deliberate
//! differences noted below:
//!
//! - A stop asked for by the user, `autorestart: false`, or an exit code listed in
//!   `stop_exit_codes` leaves the instance stopped. PM2 reports a signal death as exit code 0,
//!   so `stop_exit_codes: [0]` there also swallows crashes by signal; here a signal death never
//!   matches `stop_exit_codes`.
//! - A run shorter than `min_uptime` is *unstable*. After `max_restarts` consecutive unstable
//!   restarts, the next unstable exit marks the instance errored and it is not restarted until
//!   someone starts it again ([`RestartState::reset`]). A run that lasted at least `min_uptime`
//!   clears the count. PM2's documentation describes the same thing ("consecutive unstable
//!   restarts"), but its code counts only inside a window of `min_uptime × max_restarts` after
//!   the app was created and never clears the count, so an app that crash-loops after that window
//!   is restarted forever, and `max_restarts: N` allows only N − 1 restarts (`>=`).
//! - `restart_delay` is waited before every automatic restart.
//! - `exp_backoff_restart_delay` replaces `restart_delay` when set: the first restart waits the
//!   configured delay, each consecutive one 1.5 × the previous (rounded down to whole
//!   milliseconds as PM2 does), capped at 15 s. PM2's worker resets the backoff once an instance
//!   has been up for more than 30 s (`EXP_BACKOFF_RESET_TIMER`); here the same reset happens when
//!   the run that just ended lasted more than 30 s, which is the only moment the backoff is read.

use std::time::Duration;

use pmfleet_shared::ecosystem::App;

/// The longest exponential backoff delay (PM2: 15000 ms).
pub const MAX_BACKOFF: Duration = Duration::from_millis(15_000);

/// A run longer than this resets the exponential backoff (PM2's `EXP_BACKOFF_RESET_TIMER`).
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(30);

/// How an app wants to be restarted: the restart fields of its ecosystem entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// `autorestart`: restart after an unexpected exit at all.
    pub autorestart: bool,
    /// `max_restarts`: consecutive unstable restarts allowed before the instance is errored.
    pub max_restarts: u32,
    /// `min_uptime`: a run shorter than this is unstable.
    pub min_uptime: Duration,
    /// `restart_delay`: wait this long before each restart (when there is no backoff).
    pub restart_delay: Duration,
    /// `exp_backoff_restart_delay`: the first delay of the exponential backoff; `None` disables it.
    pub exp_backoff: Option<Duration>,
    /// `stop_exit_codes`: exit codes that mean "done, do not restart".
    pub stop_exit_codes: Vec<i32>,
}

impl Default for RestartPolicy {
    /// PM2's defaults (autorestart, 16 restarts, 1 s min uptime, no delay, no backoff), as
    /// the ecosystem model defines them for every app.
    fn default() -> Self {
        let app = App::default();
        RestartPolicy {
            autorestart: app.autorestart,
            max_restarts: app.max_restarts,
            min_uptime: app.min_uptime,
            restart_delay: app.restart_delay,
            exp_backoff: app.exp_backoff_restart_delay,
            stop_exit_codes: app.stop_exit_codes,
        }
    }
}

/// What the policy remembers about one instance between exits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartState {
    /// Automatic restarts decided so far (PM2's `restart_time`, shown as "restarts").
    restarts: u32,
    /// Consecutive restarts after runs shorter than `min_uptime`.
    unstable_restarts: u32,
    /// The delay of the previous backoff restart; `None` when the backoff starts over.
    prev_backoff: Option<Duration>,
}

impl RestartState {
    /// Automatic restarts decided for this instance so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Consecutive unstable restarts so far (0 after a stable run).
    pub fn unstable_restarts(&self) -> u32 {
        self.unstable_restarts
    }

    /// Forget the instability and the backoff, keep the restart count: what a manual start,
    /// restart or reload does (PM2's `resetState`). Call it before starting an errored instance.
    pub fn reset(&mut self) {
        self.unstable_restarts = 0;
        self.prev_backoff = None;
    }
}

/// Why an instance is no longer running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitEvent {
    /// The process ended on its own (or was killed by something other than the agent).
    Exited {
        /// The exit code, when it exited normally.
        code: Option<i32>,
        /// The signal number, when a signal killed it.
        signal: Option<i32>,
        /// How long this run lasted.
        uptime: Duration,
    },
    /// The agent stopped it because someone asked (stop, delete, restart, reload, scale down).
    StoppedByUser,
}

/// What to do with the instance that exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start it again once `after` has passed.
    Restart { after: Duration },
    /// Leave it stopped.
    Stop,
    /// Too many unstable restarts: leave it stopped and report it as errored.
    Errored,
}

/// Decide what happens after `event`, updating `state`.
pub fn decide(policy: &RestartPolicy, state: &mut RestartState, event: ExitEvent) -> Decision {
    let (code, uptime) = match event {
        ExitEvent::StoppedByUser => return Decision::Stop,
        ExitEvent::Exited { code, uptime, .. } => (code, uptime),
    };
    if !policy.autorestart {
        return Decision::Stop;
    }
    if code.is_some_and(|c| policy.stop_exit_codes.contains(&c)) {
        return Decision::Stop;
    }

    if uptime < policy.min_uptime {
        if state.unstable_restarts >= policy.max_restarts {
            return Decision::Errored;
        }
        state.unstable_restarts += 1;
    } else {
        state.unstable_restarts = 0;
    }

    let after = match policy.exp_backoff {
        None => policy.restart_delay,
        Some(first) => {
            if uptime > BACKOFF_RESET_AFTER {
                state.prev_backoff = None;
            }
            let next = match state.prev_backoff {
                None => first,
                Some(prev) => {
                    let grown = (prev.as_millis() as f64 * 1.5).floor() as u64;
                    Duration::from_millis(grown).min(MAX_BACKOFF)
                }
            };
            state.prev_backoff = Some(next);
            next
        }
    };
    state.restarts += 1;
    Decision::Restart { after }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// An exit with code `code` after `up` milliseconds.
    fn exit(code: i32, up: u64) -> ExitEvent {
        ExitEvent::Exited {
            code: Some(code),
            signal: None,
            uptime: ms(up),
        }
    }

    /// A death by signal `sig` after `up` milliseconds.
    fn killed(sig: i32, up: u64) -> ExitEvent {
        ExitEvent::Exited {
            code: None,
            signal: Some(sig),
            uptime: ms(up),
        }
    }

    fn restart(after: u64) -> Decision {
        Decision::Restart { after: ms(after) }
    }

    fn pm2() -> RestartPolicy {
        RestartPolicy::default()
    }

    fn with(f: impl FnOnce(&mut RestartPolicy)) -> RestartPolicy {
        let mut p = pm2();
        f(&mut p);
        p
    }

    fn backoff(first: u64) -> RestartPolicy {
        with(|p| p.exp_backoff = Some(ms(first)))
    }

    struct Row {
        name: &'static str,
        policy: RestartPolicy,
        prior: Vec<ExitEvent>,
        event: ExitEvent,
        expected: Decision,
    }

    fn row(
        name: &'static str,
        policy: RestartPolicy,
        prior: Vec<ExitEvent>,
        event: ExitEvent,
        expected: Decision,
    ) -> Row {
        Row {
            name,
            policy,
            prior,
            event,
            expected,
        }
    }

    #[test]
    fn decisions() {
        let crash_loop = |n: usize| vec![exit(1, 10); n];
        let rows = vec![
            row(
                "user stop",
                pm2(),
                vec![],
                ExitEvent::StoppedByUser,
                Decision::Stop,
            ),
            row(
                "user stop ignores everything else",
                with(|p| p.autorestart = true),
                crash_loop(16),
                ExitEvent::StoppedByUser,
                Decision::Stop,
            ),
            row(
                "crash after a stable run",
                pm2(),
                vec![],
                exit(1, 5_000),
                restart(0),
            ),
            row(
                "clean exit restarts too",
                pm2(),
                vec![],
                exit(0, 5_000),
                restart(0),
            ),
            row(
                "signal death restarts",
                pm2(),
                vec![],
                killed(9, 5_000),
                restart(0),
            ),
            row(
                "autorestart false",
                with(|p| p.autorestart = false),
                vec![],
                exit(1, 5_000),
                Decision::Stop,
            ),
            row(
                "stop exit code",
                with(|p| p.stop_exit_codes = vec![0, 3]),
                vec![],
                exit(3, 5_000),
                Decision::Stop,
            ),
            row(
                "exit code not in stop_exit_codes",
                with(|p| p.stop_exit_codes = vec![0]),
                vec![],
                exit(2, 5_000),
                restart(0),
            ),
            row(
                "a signal never matches stop_exit_codes",
                with(|p| p.stop_exit_codes = vec![0, 15]),
                vec![],
                killed(15, 5_000),
                restart(0),
            ),
            row(
                "stop exit code wins over the unstable limit",
                with(|p| {
                    p.stop_exit_codes = vec![7];
                    p.max_restarts = 0;
                }),
                vec![],
                exit(7, 10),
                Decision::Stop,
            ),
            row(
                "first unstable exit restarts",
                pm2(),
                vec![],
                exit(1, 10),
                restart(0),
            ),
            row(
                "the 16th unstable restart is still allowed",
                pm2(),
                crash_loop(15),
                exit(1, 10),
                restart(0),
            ),
            row(
                "the 17th unstable exit errors",
                pm2(),
                crash_loop(16),
                exit(1, 10),
                Decision::Errored,
            ),
            row(
                "max_restarts 0 errors at the first unstable exit",
                with(|p| p.max_restarts = 0),
                vec![],
                exit(1, 10),
                Decision::Errored,
            ),
            row(
                "max_restarts 0 still restarts after a stable run",
                with(|p| p.max_restarts = 0),
                vec![],
                exit(1, 1_000),
                restart(0),
            ),
            row(
                "uptime exactly min_uptime is stable",
                with(|p| p.max_restarts = 1),
                vec![exit(1, 10)],
                exit(1, 1_000),
                restart(0),
            ),
            row(
                "a stable run clears the unstable count",
                with(|p| p.max_restarts = 2),
                vec![exit(1, 10), exit(1, 10), exit(1, 2_000), exit(1, 10)],
                exit(1, 10),
                restart(0),
            ),
            row(
                "without a stable run the count keeps growing",
                with(|p| p.max_restarts = 2),
                vec![exit(1, 10), exit(1, 10)],
                exit(1, 10),
                Decision::Errored,
            ),
            row(
                "custom min_uptime",
                with(|p| {
                    p.min_uptime = ms(10_000);
                    p.max_restarts = 1;
                }),
                vec![exit(1, 9_000)],
                exit(1, 9_999),
                Decision::Errored,
            ),
            row(
                "restart_delay",
                with(|p| p.restart_delay = ms(250)),
                vec![],
                exit(1, 5_000),
                restart(250),
            ),
            row(
                "restart_delay on unstable restarts too",
                with(|p| p.restart_delay = ms(250)),
                crash_loop(3),
                exit(1, 10),
                restart(250),
            ),
            row(
                "backoff: first delay",
                backoff(100),
                vec![],
                exit(1, 10),
                restart(100),
            ),
            row(
                "backoff: ×1.5",
                backoff(100),
                crash_loop(1),
                exit(1, 10),
                restart(150),
            ),
            row(
                "backoff: ×1.5 again, floored",
                backoff(100),
                crash_loop(2),
                exit(1, 10),
                restart(225),
            ),
            row(
                "backoff: 337 after 225 (floor of 337.5)",
                backoff(100),
                crash_loop(3),
                exit(1, 10),
                restart(337),
            ),
            row(
                "backoff replaces restart_delay",
                with(|p| {
                    p.exp_backoff = Some(ms(100));
                    p.restart_delay = ms(5_000);
                }),
                vec![],
                exit(1, 10),
                restart(100),
            ),
            row(
                "backoff is capped at 15 s",
                with(|p| {
                    p.exp_backoff = Some(ms(10_000));
                    p.max_restarts = 100;
                }),
                crash_loop(1),
                exit(1, 10),
                restart(15_000),
            ),
            row(
                "backoff stays at the cap",
                with(|p| {
                    p.exp_backoff = Some(ms(10_000));
                    p.max_restarts = 100;
                }),
                crash_loop(5),
                exit(1, 10),
                restart(15_000),
            ),
            row(
                "a first delay above the cap is used once as given",
                backoff(20_000),
                vec![],
                exit(1, 10),
                restart(20_000),
            ),
            row(
                "backoff keeps growing across stable runs shorter than 30 s",
                backoff(100),
                vec![exit(1, 10), exit(1, 20_000)],
                exit(1, 10),
                restart(225),
            ),
            row(
                "backoff starts over after a run of more than 30 s",
                backoff(100),
                vec![exit(1, 10), exit(1, 10), exit(1, 10)],
                exit(1, 30_001),
                restart(100),
            ),
            row(
                "exactly 30 s does not reset the backoff",
                backoff(100),
                vec![exit(1, 10)],
                exit(1, 30_000),
                restart(150),
            ),
            row(
                "backoff still errors after too many unstable restarts",
                with(|p| {
                    p.exp_backoff = Some(ms(100));
                    p.max_restarts = 3;
                }),
                crash_loop(3),
                exit(1, 10),
                Decision::Errored,
            ),
        ];

        let mut failures = Vec::new();
        for r in rows {
            let mut state = RestartState::default();
            for e in r.prior {
                decide(&r.policy, &mut state, e);
            }
            let got = decide(&r.policy, &mut state, r.event);
            if got != r.expected {
                failures.push(format!(
                    "{}: expected {:?}, got {:?}",
                    r.name, r.expected, got
                ));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn counters() {
        let p = with(|p| p.max_restarts = 2);
        let mut s = RestartState::default();
        decide(&p, &mut s, exit(1, 10));
        decide(&p, &mut s, exit(1, 10));
        assert_eq!((s.restarts(), s.unstable_restarts()), (2, 2));
        assert_eq!(decide(&p, &mut s, exit(1, 10)), Decision::Errored);
        // An errored exit is not a restart.
        assert_eq!((s.restarts(), s.unstable_restarts()), (2, 2));
        // The user starts it again: instability is forgotten, the restart count is not.
        s.reset();
        assert_eq!((s.restarts(), s.unstable_restarts()), (2, 0));
        assert_eq!(decide(&p, &mut s, exit(1, 10)), restart(0));
        assert_eq!(decide(&p, &mut s, exit(1, 5_000)), restart(0));
        assert_eq!((s.restarts(), s.unstable_restarts()), (4, 0));
        // Stops are not restarts.
        decide(&p, &mut s, ExitEvent::StoppedByUser);
        assert_eq!(s.restarts(), 4);
    }

    #[test]
    fn reset_restarts_the_backoff() {
        let p = backoff(100);
        let mut s = RestartState::default();
        assert_eq!(decide(&p, &mut s, exit(1, 10)), restart(100));
        assert_eq!(decide(&p, &mut s, exit(1, 10)), restart(150));
        s.reset();
        assert_eq!(decide(&p, &mut s, exit(1, 10)), restart(100));
    }

    #[test]
    fn backoff_sequence_matches_pm2() {
        // PM2 with exp_backoff_restart_delay: 100 waits 100, 150, 225, 337, 505, 757, 1135 …
        // up to 15000 ms.
        let p = with(|p| {
            p.exp_backoff = Some(ms(100));
            p.max_restarts = u32::MAX;
        });
        let mut s = RestartState::default();
        let delays: Vec<u64> = (0..14)
            .map(|_| match decide(&p, &mut s, exit(1, 10)) {
                Decision::Restart { after } => after.as_millis() as u64,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            delays,
            [
                100, 150, 225, 337, 505, 757, 1135, 1702, 2553, 3829, 5743, 8614, 12921, 15000
            ]
        );
    }
}
