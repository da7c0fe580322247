//! `cron_restart`: restart an app on a schedule, in the host's local time, as PM2 does — but
//! a cluster-mode app is rolling-reloaded, so a scheduled restart never drops a request.
//!
//! [`next_run`] finds the next second the pattern fires at; [`cron_restarts`] is the app's
//! task, started with the app like its file watcher. It re-reads the app's pattern every few
//! seconds, so a new release that changes (or adds, or removes) `cron_restart` applies without
//! a restart.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pmfleet_shared::ecosystem::{CalendarTime, CronSchedule};
use pmfleet_shared::protocol::{EventKind, ExecModeSpec};
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::app::{AppRuntime, lock};

/// How often the task looks at the app's pattern again.
const RECHECK: Duration = Duration::from_secs(5);
/// How far ahead a pattern is searched (a pattern that never fires, like Feb 30, gives up).
const HORIZON_SECS: i64 = 5 * 366 * 86_400;

/// The first second after `after` at which `schedule` fires, in local time.
pub(crate) fn next_run(schedule: &CronSchedule, after: SystemTime) -> Option<SystemTime> {
    let start = after.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let mut t = i64::try_from(start).ok()? + 1;
    let limit = t + HORIZON_SECS;
    while t < limit {
        let (c, tm) = local(t)?;
        t = if !schedule.date_in(&c) {
            next_midnight(tm)?.max(t + 1)
        } else if !schedule.hour_in(c.hour) {
            t + i64::from(3600 - c.minute * 60 - c.second)
        } else if !schedule.minute_in(c.minute) {
            t + i64::from(60 - c.second)
        } else if !schedule.second_in(c.second) {
            t + 1
        } else {
            return Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(t).ok()?));
        };
    }
    None
}

/// `t` (seconds since the epoch) as the local calendar shows it.
fn local(t: i64) -> Option<(CalendarTime, libc::tm)> {
    let time: libc::time_t = t;
    // SAFETY: localtime_r only writes the tm it is given; a zeroed tm is a valid value.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&time, &mut tm).is_null() {
            return None;
        }
        tm
    };
    let field = |v: libc::c_int| u32::try_from(v).ok();
    Some((
        CalendarTime {
            second: field(tm.tm_sec)?.min(59),
            minute: field(tm.tm_min)?,
            hour: field(tm.tm_hour)?,
            day: field(tm.tm_mday)?,
            month: field(tm.tm_mon)? + 1,
            weekday: field(tm.tm_wday)?,
        },
        tm,
    ))
}

/// The start of the local day after the one `tm` is in (daylight saving time included).
fn next_midnight(mut tm: libc::tm) -> Option<i64> {
    tm.tm_mday += 1;
    tm.tm_hour = 0;
    tm.tm_min = 0;
    tm.tm_sec = 0;
    tm.tm_isdst = -1;
    // SAFETY: mktime normalizes the tm it is given and returns seconds since the epoch.
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then_some(t)
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
