//! The watch window after a deploy's batch switched (`watch_period`): for a while, every
//! instance of the release's apps keeps being probed and watched, and the first crash, restart
//! (a memory restart included), instance that is no longer online, or health check failing
//! [`UNHEALTHY_AFTER`] times in a row ends the window with that problem and the instance's last
//! log lines. [`judge`] is the pure decision for one instance at one look; the loop around it
//! probes and reads the slots.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pmfleet_shared::protocol::{HealthCheck, Status, WatchReport};

use super::Supervisor;
use super::app::{AppRuntime, lock};
use super::probe::{self, Aim};
use super::readiness;
use super::slots::{bound_ip, log_tail};

/// Failed health checks in a row that make an instance unhealthy: one failure may be a blip.
pub const UNHEALTHY_AFTER: u32 = 3;

/// The longest pause between two looks.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// One instance as seen at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub pid: Option<u32>,
    pub status: Status,
    pub restarts: u32,
}

/// What one look at an instance says, given how it was when the window began (`start`), how
/// it is now (`None`: the slot is gone), and how many health checks in a row failed.
pub fn judge(start: Seen, now: Option<Seen>, failed_checks: u32) -> Option<String> {
    let Some(now) = now else {
        return Some("is gone".to_string());
    };
    if now.restarts > start.restarts {
        let n = now.restarts - start.restarts;
        return Some(format!(
            "restarted {n} time(s) (crashed, or over max_memory_restart)"
        ));
    }
    if now.pid != start.pid && now.status == Status::Online {
        return Some("was replaced by another process".to_string());
    }
    if now.status != Status::Online {
        return Some(format!("is {}", now.status));
    }
    (failed_checks >= UNHEALTHY_AFTER)
        .then(|| format!("failed its health check {failed_checks} times in a row"))
}

/// An instance being watched.
struct Watched {
    app: Arc<AppRuntime>,
    slot: u32,
    start: Seen,
    failed: u32,
    last_failure: Option<String>,
}

impl Supervisor {
    /// Watches the apps running from `dir` for `period`; see the module documentation.
    pub async fn watch_release(&self, dir: &Path, period: Duration) -> WatchReport {
        let began = Instant::now();
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let apps: Vec<Arc<AppRuntime>> = lock(&self.inner.apps)
            .values()
            .filter(|a| a.spec().cwd.starts_with(&dir))
            .cloned()
            .collect();
        let mut watched: Vec<Watched> = Vec::new();
        for app in &apps {
            for (slot, seen) in seen_slots(app) {
                watched.push(Watched {
                    app: app.clone(),
                    slot,
                    start: seen,
                    failed: 0,
                    last_failure: None,
                });
            }
        }
        let pause = apps
            .iter()
            .filter_map(|a| a.spec().healthcheck.map(|h| h.interval_ms))
            .map(Duration::from_millis)
            .chain([LOOK_EVERY])
            .min()
            .unwrap_or(LOOK_EVERY)
            .max(Duration::from_millis(100));
        let names = apps.iter().map(|a| a.name.clone()).collect();
        let mut problems = Vec::new();
        let deadline = began + period;
        while problems.is_empty() && Instant::now() < deadline {
            for w in &mut watched {
                let now = seen_slots(&w.app)
                    .into_iter()
                    .find(|(s, _)| *s == w.slot)
                    .map(|(_, seen)| seen);
                match self.check(&w.app, w.slot, now).await {
                    Some(Ok(())) => w.failed = 0,
                    Some(Err(why)) => {
                        w.failed += 1;
                        w.last_failure = Some(why);
                    }
                    None => {}
                }
                if let Some(why) = judge(w.start, now, w.failed) {
                    let last = w
                        .last_failure
                        .as_deref()
                        .filter(|_| w.failed >= UNHEALTHY_AFTER)
                        .map(|l| format!(" (last: {l})"))
                        .unwrap_or_default();
                    let logs = log_tail(&w.app, &self.inner.home, w.slot);
                    problems.push(format!(
                        "{} instance {} {why}{last} within the watch window{logs}",
                        w.app.name, w.slot
                    ));
                }
            }
            if problems.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(pause.min(left)).await;
            }
        }
        WatchReport {
            apps: names,
            problems,
            watched_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// One health check of `slot` (`None`: the app has none that reaches it).
    async fn check(
        &self,
        app: &AppRuntime,
        slot: u32,
        now: Option<Seen>,
    ) -> Option<Result<(), String>> {
        let spec = app.spec();
        let has_listener = lock(&app.listener).is_some();
        let plan = readiness::plan(&spec, has_listener);
        let aim: (Aim, HealthCheck) = if let Some(p) = &plan.probe {
            let probe_port = lock(&app.slots)
                .get(&slot)
                .and_then(|s| s.runner.as_ref())
                .and_then(|r| r.probe_port);
            let pid = now.and_then(|n| n.pid)?;
            let aim = probe::aim_at(&spec, p.target, bound_ip(app), probe_port, pid)?;
            (aim, p.check.clone())
        } else if let Some((port, check)) = &plan.app_probe {
            let ip = bound_ip(app).unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
            (
                Aim::Addr(std::net::SocketAddr::new(ip, *port)),
                check.clone(),
            )
        } else {
            return None;
        };
        Some(probe::attempt(&aim.0, &aim.1).await)
    }
}

/// Every slot of `app` as it is now.
fn seen_slots(app: &AppRuntime) -> Vec<(u32, Seen)> {
    lock(&app.slots)
        .iter()
        .map(|(slot, s)| {
            let view = s.runner.as_ref().map(|r| lock(&r.view).clone());
            let seen = Seen {
                pid: view.as_ref().and_then(|v| v.pid),
                status: view.map_or(Status::Stopped, |v| v.status),
                restarts: s.restarts.load(Ordering::SeqCst),
            };
            (*slot, seen)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(pid: u32, status: Status, restarts: u32) -> Option<Seen> {
        Some(Seen {
            pid: Some(pid),
            status,
            restarts,
        })
    }

    #[test]
    fn judgements() {
        let start = Seen {
            pid: Some(10),
            status: Status::Online,
            restarts: 2,
        };
        let rows: Vec<(&str, Option<Seen>, u32, Option<&str>)> = vec![
            ("healthy", seen(10, Status::Online, 2), 0, None),
            (
                "a failed check or two is a blip",
                seen(10, Status::Online, 2),
                2,
                None,
            ),
            (
                "three failed checks in a row",
                seen(10, Status::Online, 2),
                3,
                Some("failed its health check 3 times in a row"),
            ),
            (
                "a crash, restarted already",
                seen(11, Status::Online, 3),
                0,
                Some("restarted 1 time(s) (crashed, or over max_memory_restart)"),
            ),
            (
                "a crash, waiting out its restart delay",
                Some(Seen {
                    pid: None,
                    status: Status::Waiting,
                    restarts: 2,
                }),
                0,
                Some("is waiting restart"),
            ),
            (
                "a restart loop that gave up",
                Some(Seen {
                    pid: None,
                    status: Status::Errored,
                    restarts: 5,
                }),
                0,
                Some("restarted 3 time(s) (crashed, or over max_memory_restart)"),
            ),
            (
                "stopped under it",
                seen(10, Status::Stopped, 2),
                0,
                Some("is stopped"),
            ),
            ("its slot removed", None, 0, Some("is gone")),
            (
                "another process in its place",
                seen(12, Status::Online, 2),
                0,
                Some("was replaced by another process"),
            ),
        ];
        for (name, now, failed, expected) in rows {
            assert_eq!(judge(start, now, failed).as_deref(), expected, "{name}");
        }
    }
}
