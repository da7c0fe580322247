//! `cron_restart`: restart an app on a schedule, in the host's local time, as PM2 does — but
//! a cluster-mode app is rolling-reloaded, so a scheduled restart never drops a request.
//!
//! [`next_run`] finds the next second the pattern fires at (croner's search, in local time); [`cron_restarts`] is the app's
//! task, started with the app like its file watcher. It re-reads the app's pattern every few
//! seconds, so a new release that changes (or adds, or removes) `cron_restart` applies without
//! a restart.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[cfg(test)]
use chrono::TimeZone;
use chrono::{DateTime, Local};

#[cfg(test)]
use pmfleet_shared::ecosystem::CalendarTime;
use pmfleet_shared::ecosystem::CronSchedule;
use pmfleet_shared::protocol::{EventKind, ExecModeSpec};
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::app::{AppRuntime, lock};

/// How often the task looks at the app's pattern again.
const RECHECK: Duration = Duration::from_secs(5);
/// The first second after `after` at which `schedule` fires, in local time.
pub(crate) fn next_run(schedule: &CronSchedule, after: SystemTime) -> Option<SystemTime> {
    let after: DateTime<Local> = after.into();
    schedule.next_after(&after).map(SystemTime::from)
}

/// `t` (seconds since the epoch) as the local calendar shows it.
#[cfg(test)]
fn local(t: i64) -> Option<(CalendarTime, DateTime<Local>)> {
    use chrono::{Datelike, Timelike};
    let at = Local.timestamp_opt(t, 0).single()?;
    Some((
        CalendarTime {
            second: at.second().min(59),
            minute: at.minute(),
            hour: at.hour(),
            day: at.day(),
            month: at.month(),
            weekday: at.weekday().num_days_from_sunday(),
        },
        at,
    ))
}

/// Restarts `app` each time its `cron_restart` pattern fires, until `cancel`.
pub(crate) async fn cron_restarts(
    inner: Arc<Inner>,
    app: Arc<AppRuntime>,
    cancel: CancellationToken,
) {
    let mut pattern: Option<String> = None;
    let mut schedule: Option<CronSchedule> = None;
    let mut next: Option<SystemTime> = None;
    loop {
        let now = SystemTime::now();
        let current = lock(&app.spec).cron_restart.clone();
        if current != pattern {
            pattern = current;
            schedule = pattern
                .as_deref()
                .and_then(|p| match CronSchedule::parse(p) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(app = %app.name, "cron_restart: {e}");
                        None
                    }
                });
            next = schedule.as_ref().and_then(|s| next_run(s, now));
        }
        if let (Some(at), Some(p), Some(s)) = (next, &pattern, &schedule)
            && now >= at
        {
            if !fire(&inner, &app, p).await {
                // A restart started the app's tasks afresh, this one included.
                return;
            }
            next = next_run(s, SystemTime::now().max(at));
            continue;
        }
        let wait = next
            .and_then(|at| at.duration_since(now).ok())
            .map_or(RECHECK, |d| d.min(RECHECK));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// One scheduled restart: a rolling reload in cluster mode (this task goes on), else a
/// restart (which starts a new task for the app; this one must end: `false`).
async fn fire(inner: &Arc<Inner>, app: &Arc<AppRuntime>, pattern: &str) -> bool {
    let _op = app.op.lock().await;
    if !app.is_running() {
        return true;
    }
    let why = format!("cron_restart `{pattern}`");
    inner.emit(&app.name, None, None, EventKind::Restarting, &*why);
    tracing::info!(app = %app.name, "{why}: restarting");
    if app.spec().exec_mode == ExecModeSpec::Cluster {
        let slots: Vec<u32> = lock(&app.slots).keys().copied().collect();
        for slot in slots {
            if let Err(e) = inner.reload_slot(app, slot).await {
                tracing::error!(app = %app.name, slot, "{why}: {e}");
                break;
            }
        }
        return true;
    }
    if let Err(e) = inner.restart_app(app).await {
        tracing::error!(app = %app.name, "{why}: {e}");
    }
    false
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn secs(t: SystemTime) -> i64 {
        i64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
    }

    #[test]
    fn the_next_run_is_the_first_matching_second() {
        let now = SystemTime::now();
        for pattern in [
            "*/7 * * * * *",
            "*/2 * * * *",
            "15 */3 * * *",
            "@daily",
            "0 0 1 * mon",
        ] {
            let s = CronSchedule::parse(pattern).unwrap();
            let next = next_run(&s, now).unwrap();
            let (at, _) = local(secs(next)).unwrap();
            assert!(s.matches(&at), "{pattern}: {at:?}");
            assert!(next > now, "{pattern}");
            // Nothing in between fires (checked second by second for up to two days).
            let from = secs(now) + 1;
            for t in from..secs(next).min(from + 2 * 86_400) {
                assert!(
                    !s.matches(&local(t).unwrap().0),
                    "{pattern} fires earlier, at {t}"
                );
            }
        }
    }

    #[test]
    fn a_pattern_that_never_fires_gives_up() {
        let never = CronSchedule::parse("0 0 30 2 *").unwrap();
        assert_eq!(next_run(&never, SystemTime::now()), None);
    }
}
