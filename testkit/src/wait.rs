//! Waiting on a condition, never on a fixed sleep: the condition is polled (every 10 ms at
//! first, backing off to every 100 ms, so a cheap check answers at once and an expensive one —
//! a CLI run, a `status` — does not load a machine that other tests share) until it holds or a
//! deadline passes. A test that waits this way is as fast as the machine allows and only as
//! slow as it must be under load.

use std::time::{Duration, Instant};

const FIRST_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_millis(100);

/// A condition that did not hold in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    pub what: String,
    pub after: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}",
            self.after, self.what
        )
    }
}

impl std::error::Error for TimedOut {}

/// Polls `condition` until it returns true; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, condition: impl FnMut() -> bool) {
    if let Err(e) = poll_until(timeout, what, condition) {
        panic!("{e}");
    }
}

/// Polls `probe` until it returns a value, and returns it; panics naming `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, probe: impl FnMut() -> Option<T>) -> T {
    poll_for(timeout, what, probe).unwrap_or_else(|e| panic!("{e}"))
}

/// [`wait_until`] that returns the timeout as an error (for benchmarks, which report it).
pub fn poll_until(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Result<(), TimedOut> {
    poll_for(timeout, what, || condition().then_some(()))
}

/// [`wait_for`] that returns the timeout as an error.
pub fn poll_for<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let start = Instant::now();
    let mut pause = FIRST_POLL;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(TimedOut {
                what: what.to_string(),
                after: timeout,
            });
        }
        std::thread::sleep(pause.min(timeout - elapsed));
        pause = (pause * 2).min(MAX_POLL);
    }
}

/// [`wait_until`] for async tests: sleeps on the runtime's timer, so the tasks being waited
/// for keep their worker threads.
pub async fn wait_until_async(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = FIRST_POLL;
    while !condition() {
        let elapsed = start.elapsed();
        assert!(
            elapsed < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(pause.min(timeout - elapsed)).await;
        pause = (pause * 2).min(MAX_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_holds_returns_at_once() {
        let start = Instant::now();
        wait_until(Duration::from_secs(5), "true", || true);
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn a_condition_is_polled_until_it_holds() {
        let mut calls = 0;
        let value = wait_for(Duration::from_secs(5), "the third call", || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(value, 3);
    }

    #[test]
    fn a_condition_that_never_holds_times_out_naming_it() {
        let err = poll_until(Duration::from_millis(30), "never", || false).unwrap_err();
        assert_eq!(err.to_string(), "timed out after 30ms waiting for never");
    }

    #[test]
    #[should_panic(expected = "waiting for the moon")]
    fn wait_until_panics_on_timeout() {
        wait_until(Duration::from_millis(20), "the moon", || false);
    }
}
