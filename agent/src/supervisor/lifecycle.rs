//! The instance lifecycle: a pure state machine saying what a slot's runner does next.
//!
//! A runner ([`super::instance`]) owns one slot's process. Everything that can happen to it is
//! an [`Event`] (the process exited, a stop or a handover was asked for, the restart delay
//! ran out, a relaunch worked or failed); [`Lifecycle::handle`] answers with the [`Action`]s
//! to carry out, in order, and moves to the next [`State`]. Whether and when an exited
//! process is started again is the restart policy's call ([`super::restart_policy::decide`]);
//! this machine applies it. Nothing here spawns, signals, sleeps or reads a clock, so every
//! rule is a row of the table at the bottom.

use std::time::Duration;

use pmfleet_shared::protocol::Status;

use super::events::took;
use super::restart_policy::{Decision, ExitEvent, RestartPolicy, RestartState, decide};

/// Where a slot's runner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Its process runs.
    Running,
    /// The process exited and the restart delay is being waited out.
    Waiting,
    /// The delay is over and a new process is being spawned.
    Launching,
    /// The runner has ended (stopped, errored, or handed over).
    Ended,
}

/// What happened to the slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// The process ended on its own (or something other than the agent killed it).
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
        uptime: Duration,
    },
    /// Someone asked the slot to stop (stop, delete, restart, reload, scale down).
    StopAsked,
    /// The agent is handing its apps to a new binary.
    HandoverAsked,
    /// The restart delay ran out. `closing`: the agent is shutting down meanwhile.
    DelayOver { closing: bool },
    /// The new process was spawned.
    Launched,
    /// The new process could not be spawned.
    LaunchFailed(String),
}

/// What the runner does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// SIGKILL whatever the ended leader left in its process group.
    KillGroup,
    /// Publish how the process ended (`exit code 1 after 2.0 s`).
    ReportExit(String),
    /// Show the slot as waiting, publish that a restart comes, and wait `after`.
    WaitToRestart { after: Duration },
    /// Stop the running process gracefully (kill signal, SIGKILL after `kill_timeout`).
    StopGracefully,
    /// Spawn the slot's process again.
    Launch,
    /// The relaunched process runs: count the restart and show it online.
    Online,
    /// Record a final status and publish why; `with_pid` names the process that ended.
    End {
        status: Status,
        why: String,
        with_pid: bool,
    },
    /// Give the running process to the new binary, untouched.
    HandOver,
    /// Hand over a slot that was waiting out its restart delay (no process).
    HandOverWaiting,
}

/// One slot's lifecycle: where it is and what the restart policy remembers.
#[derive(Debug, Clone)]
pub(crate) struct Lifecycle {
    pub state: State,
    restarts: RestartState,
}

impl Lifecycle {
    /// A slot whose process was just started.
    pub fn running() -> Lifecycle {
        Lifecycle {
            state: State::Running,
            restarts: RestartState::default(),
        }
    }

    /// What to do about `event` under `policy`; moves to the next state. An event that does
    /// not apply where the slot is (a late exit after it ended) asks for nothing.
    pub fn handle(&mut self, policy: &RestartPolicy, event: Event) -> Vec<Action> {
        use Action as A;
        match (self.state, event) {
            (State::Running, Event::StopAsked) => self.end(vec![A::StopGracefully]),
            (State::Running, Event::HandoverAsked) => self.end(vec![A::HandOver]),
            (
                State::Running,
                Event::Exited {
                    code,
                    signal,
                    uptime,
                },
            ) => {
                let mut out = vec![
                    A::KillGroup,
                    A::ReportExit(format!(
                        "{} after {}",
                        describe_exit(code, signal),
                        took(uptime)
                    )),
                ];
                let exit = ExitEvent::Exited {
                    code,
                    signal,
                    uptime,
                };
                match decide(policy, &mut self.restarts, exit) {
                    Decision::Stop => {
                        out.push(ended(Status::Stopped, "left stopped by its restart policy"));
                        self.state = State::Ended;
                    }
                    Decision::Errored => {
                        out.push(ended(
                            Status::Errored,
                            format!(
                                "{} unstable restarts (each up less than min_uptime {} ms): given up",
                                policy.max_restarts,
                                policy.min_uptime.as_millis()
                            ),
                        ));
                        self.state = State::Ended;
                    }
                    Decision::Restart { after } => {
                        out.push(A::WaitToRestart { after });
                        self.state = State::Waiting;
                    }
                }
                out
            }
            (State::Waiting, Event::StopAsked) => self.end(vec![gone(
                Status::Stopped,
                "stopped during the restart delay",
            )]),
            (State::Waiting, Event::HandoverAsked) => self.end(vec![A::HandOverWaiting]),
            (State::Waiting, Event::DelayOver { closing: true }) => self.end(vec![gone(
                Status::Stopped,
                "not restarted: the agent is shutting down",
            )]),
            (State::Waiting, Event::DelayOver { closing: false }) => {
                self.state = State::Launching;
                vec![A::Launch]
            }
            (State::Launching, Event::Launched) => {
                self.state = State::Running;
                vec![A::Online]
            }
            (State::Launching, Event::LaunchFailed(why)) => self.end(vec![gone(
                Status::Errored,
                format!("cannot restart: {why}"),
            )]),
            _ => Vec::new(),
        }
    }

    fn end(&mut self, actions: Vec<Action>) -> Vec<Action> {
        self.state = State::Ended;
        actions
    }
}

/// A final status for the process that just ended.
fn ended(status: Status, why: impl Into<String>) -> Action {
    Action::End {
        status,
        why: why.into(),
        with_pid: true,
    }
}

/// A final status for a slot with no process at the moment.
fn gone(status: Status, why: impl Into<String>) -> Action {
    Action::End {
        status,
        why: why.into(),
        with_pid: false,
    }
}

/// `exit code 1`, `killed by signal 9 (SIGKILL)`: how a process ended, for event messages.
pub(crate) fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(name) => format!("killed by signal {sig} ({name})"),
            Err(_) => format!("killed by signal {sig}"),
        },
        (None, None) => "ended (status unknown)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn exit(code: i32, up: u64) -> Event {
        Event::Exited {
            code: Some(code),
            signal: None,
            uptime: ms(up),
        }
    }

    fn killed(sig: i32, up: u64) -> Event {
        Event::Exited {
            code: None,
            signal: Some(sig),
            uptime: ms(up),
        }
    }

    fn pm2() -> RestartPolicy {
        RestartPolicy::default()
    }

    fn with(f: impl FnOnce(&mut RestartPolicy)) -> RestartPolicy {
        let mut p = pm2();
        f(&mut p);
        p
    }

    fn report(s: &str) -> Action {
        Action::ReportExit(s.to_string())
    }

    fn wait(after: u64) -> Action {
        Action::WaitToRestart { after: ms(after) }
    }

    struct Row {
        name: &'static str,
        policy: RestartPolicy,
        /// Events that bring the slot where the row starts.
        before: Vec<Event>,
        event: Event,
        actions: Vec<Action>,
        then: State,
    }

    fn row(
        name: &'static str,
        policy: RestartPolicy,
        before: Vec<Event>,
        event: Event,
        actions: Vec<Action>,
        then: State,
    ) -> Row {
        Row {
            name,
            policy,
            before,
            event,
            actions,
            then,
        }
    }

    /// The events of one crash and its restart, back to running.
    fn crash_and_back(up: u64) -> Vec<Event> {
        vec![
            exit(1, up),
            Event::DelayOver { closing: false },
            Event::Launched,
        ]
    }

    #[test]
    fn transitions() {
        use Action as A;
        let waiting = vec![exit(1, 5_000)];
        let launching = vec![exit(1, 5_000), Event::DelayOver { closing: false }];
        let unstable =
            |n: usize| -> Vec<Event> { (0..n).flat_map(|_| crash_and_back(10)).collect() };
        let rows = vec![
            row(
                "a stop while running stops it gracefully",
                pm2(),
                vec![],
                Event::StopAsked,
                vec![A::StopGracefully],
                State::Ended,
            ),
            row(
                "a handover while running hands the process over",
                pm2(),
                vec![],
                Event::HandoverAsked,
                vec![A::HandOver],
                State::Ended,
            ),
            row(
                "a crash kills the group, reports it and waits out the delay",
                pm2(),
                vec![],
                exit(1, 5_000),
                vec![A::KillGroup, report("exit code 1 after 5.0 s"), wait(0)],
                State::Waiting,
            ),
            row(
                "a clean exit is restarted too",
                pm2(),
                vec![],
                exit(0, 5_000),
                vec![A::KillGroup, report("exit code 0 after 5.0 s"), wait(0)],
                State::Waiting,
            ),
            row(
                "a signal death names the signal",
                pm2(),
                vec![],
                killed(9, 2_000),
                vec![
                    A::KillGroup,
                    report("killed by signal 9 (SIGKILL) after 2.0 s"),
                    wait(0),
                ],
                State::Waiting,
            ),
            row(
                "restart_delay is waited",
                with(|p| p.restart_delay = ms(250)),
                vec![],
                exit(1, 5_000),
                vec![A::KillGroup, report("exit code 1 after 5.0 s"), wait(250)],
                State::Waiting,
            ),
            row(
                "the backoff grows across restarts of one slot",
                with(|p| p.exp_backoff = Some(ms(100))),
                unstable(2),
                exit(1, 10),
                vec![A::KillGroup, report("exit code 1 after 10 ms"), wait(225)],
                State::Waiting,
            ),
            row(
                "autorestart false leaves it stopped",
                with(|p| p.autorestart = false),
                vec![],
                exit(1, 5_000),
                vec![
                    A::KillGroup,
                    report("exit code 1 after 5.0 s"),
                    ended(Status::Stopped, "left stopped by its restart policy"),
                ],
                State::Ended,
            ),
            row(
                "a stop exit code leaves it stopped",
                with(|p| p.stop_exit_codes = vec![3]),
                vec![],
                exit(3, 5_000),
                vec![
                    A::KillGroup,
                    report("exit code 3 after 5.0 s"),
                    ended(Status::Stopped, "left stopped by its restart policy"),
                ],
                State::Ended,
            ),
            row(
                "too many unstable restarts: errored",
                with(|p| p.max_restarts = 2),
                unstable(2),
                exit(1, 10),
                vec![
                    A::KillGroup,
                    report("exit code 1 after 10 ms"),
                    ended(
                        Status::Errored,
                        "2 unstable restarts (each up less than min_uptime 1000 ms): given up",
                    ),
                ],
                State::Ended,
            ),
            row(
                "a stable run between crashes keeps it restarting",
                with(|p| p.max_restarts = 1),
                [unstable(1), crash_and_back(5_000)].concat(),
                exit(1, 10),
                vec![A::KillGroup, report("exit code 1 after 10 ms"), wait(0)],
                State::Waiting,
            ),
            row(
                "max_restarts 0 errors at once on an unstable exit",
                with(|p| p.max_restarts = 0),
                vec![],
                exit(1, 10),
                vec![
                    A::KillGroup,
                    report("exit code 1 after 10 ms"),
                    ended(
                        Status::Errored,
                        "0 unstable restarts (each up less than min_uptime 1000 ms): given up",
                    ),
                ],
                State::Ended,
            ),
            row(
                "a stop during the delay ends it without a process",
                pm2(),
                waiting.clone(),
                Event::StopAsked,
                vec![gone(Status::Stopped, "stopped during the restart delay")],
                State::Ended,
            ),
            row(
                "a handover during the delay hands over a waiting slot",
                pm2(),
                waiting.clone(),
                Event::HandoverAsked,
                vec![A::HandOverWaiting],
                State::Ended,
            ),
            row(
                "the delay over: relaunch",
                pm2(),
                waiting.clone(),
                Event::DelayOver { closing: false },
                vec![A::Launch],
                State::Launching,
            ),
            row(
                "the delay over while the agent shuts down: no relaunch",
                pm2(),
                waiting.clone(),
                Event::DelayOver { closing: true },
                vec![gone(
                    Status::Stopped,
                    "not restarted: the agent is shutting down",
                )],
                State::Ended,
            ),
            row(
                "relaunched: online again",
                pm2(),
                launching.clone(),
                Event::Launched,
                vec![A::Online],
                State::Running,
            ),
            row(
                "a relaunch that cannot spawn errors",
                pm2(),
                launching.clone(),
                Event::LaunchFailed("No such file or directory".into()),
                vec![gone(
                    Status::Errored,
                    "cannot restart: No such file or directory",
                )],
                State::Ended,
            ),
            row(
                "a relaunched process is stopped like the first",
                pm2(),
                crash_and_back(5_000),
                Event::StopAsked,
                vec![A::StopGracefully],
                State::Ended,
            ),
            row(
                "nothing happens after the end",
                pm2(),
                vec![Event::StopAsked],
                exit(1, 10),
                vec![],
                State::Ended,
            ),
            row(
                "a delay that is not being waited is ignored",
                pm2(),
                vec![],
                Event::DelayOver { closing: false },
                vec![],
                State::Running,
            ),
            row(
                "a late launch result while running is ignored",
                pm2(),
                vec![],
                Event::Launched,
                vec![],
                State::Running,
            ),
        ];
        let mut failures = Vec::new();
        for r in rows {
            let mut m = Lifecycle::running();
            for e in r.before {
                m.handle(&r.policy, e);
            }
            let got = m.handle(&r.policy, r.event);
            if got != r.actions || m.state != r.then {
                failures.push(format!(
                    "{}: expected {:?} then {:?}, got {:?} then {:?}",
                    r.name, r.actions, r.then, got, m.state
                ));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn exits_are_described_with_their_code_or_signal() {
        assert_eq!(describe_exit(Some(1), None), "exit code 1");
        assert_eq!(describe_exit(None, Some(9)), "killed by signal 9 (SIGKILL)");
        assert_eq!(describe_exit(None, None), "ended (status unknown)");
    }
}
