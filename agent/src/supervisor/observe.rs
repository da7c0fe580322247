//! What the supervisor tells the fleet views and the metrics endpoint beyond `list`: the
//! apps' own metrics (the socket and the endpoint scraper of [`crate::app_metrics`], run
//! as the supervisor's tasks, each value kept for the instance that sent it), the host's
//! load, memory and disk, and the Prometheus exposition ([`crate::exposition`]).

use std::sync::Arc;

use pmfleet_shared::protocol::{HostLoad, Status};
use procfs::Current;

use super::app::lock;
use super::{Inner, Supervisor};
use crate::app_metrics::{self, scrape, socket};
use crate::exposition::{self, AppFigures};

/// How many parents up from a pid an instance's process is looked for (a shell wrapper, a
/// `npm start`, a worker pool).
const MAX_DEPTH: usize = 16;

/// Start the metrics socket and the scraper on the supervisor's tasks.
pub(super) fn spawn(inner: &Arc<Inner>) {
    let path = inner.home.root().join("metrics.sock");
    app_metrics::set_socket_path(path.clone());
    let weak = Arc::downgrade(inner);
    let resolve: socket::Resolve = Arc::new(move |pid| {
        let inner = weak.upgrade()?;
        instance_of(&inner, pid)
    });
    inner.tasks.spawn(socket::serve(
        path,
        inner.app_metrics.clone(),
        resolve,
        inner.tasks_cancel.clone(),
    ));
    inner.tasks.spawn(scraper(Arc::downgrade(inner)));
}

/// The (app, instance) whose process is `pid` or one of its ancestors.
fn instance_of(inner: &Inner, pid: u32) -> Option<(String, u32)> {
    let running: Vec<(u32, String, u32)> = lock(&inner.apps)
        .values()
        .flat_map(|app| {
            lock(&app.slots)
                .iter()
                .filter_map(|(slot, s)| {
                    let pid = lock(&s.runner.as_ref()?.view).pid?;
                    Some((pid, app.name.clone(), *slot))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut at = pid;
    for _ in 0..MAX_DEPTH {
        if let Some((_, app, slot)) = running.iter().find(|(p, _, _)| *p == at) {
            return Some((app.clone(), *slot));
        }
        at = crate::metrics::parent(at).filter(|p| *p > 1)?;
    }
    None
}

/// Every [`scrape::INTERVAL`]: each online instance of each app that names a metrics
/// endpoint is read, one at a time (an app that does not answer costs its timeout only).
async fn scraper(inner: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(scrape::INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let cancel = strong.tasks_cancel.clone();
        drop(strong);
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let sup = Supervisor { inner: strong };
        let mut wanted = Vec::new();
        for p in sup.list() {
            let app = lock(&sup.inner.apps).get(&p.name).cloned();
            let Some(app) = app else { continue };
            let spec = app.spec();
            let Some(endpoint) = &spec.metrics else {
                continue;
            };
            if p.status != Status::Online {
                continue;
            }
            if let Some(port) = scrape::port_of(&spec, endpoint, p.instance) {
                wanted.push((p.name.clone(), p.instance, port, endpoint.path.clone()));
            }
        }
        let store = sup.inner.app_metrics.clone();
        let known: Vec<(String, u32)> = sup
            .list()
            .into_iter()
            .map(|p| (p.name, p.instance))
            .collect();
        drop(sup);
        store.retain(|app, i| known.iter().any(|(a, n)| a == app && *n == i));
        for (app, instance, port, path) in wanted {
            tokio::select! {
                read = scrape::read(port, &path) => match read {
                    Ok(samples) => store.replace(&app, instance, samples),
                    Err(e) => tracing::debug!(app, instance, "metrics endpoint on port {port}: {e}"),
                },
                _ = cancel.cancelled() => return,
            }
        }
    }
}

impl Supervisor {
    /// The agent's metrics in the Prometheus text format.
    pub fn exposition(&self) -> String {
        let status = self.status();
        let apps: Vec<AppFigures> = lock(&self.inner.apps)
            .values()
            .map(|a| AppFigures {
                name: a.name.clone(),
                desired: a.count(),
            })
            .collect();
        exposition::render(&exposition::Snapshot {
            hostname: &status.hostname,
            version: &status.version,
            agent_rss_bytes: crate::metrics::own_rss_bytes(),
            agent_uptime_secs: status.uptime_secs,
            apps: &apps,
            processes: &status.processes,
        })
    }

    /// The host's load, memory and the disk of the agent's home.
    pub fn host_load(&self) -> HostLoad {
        host_load(self.inner.home.root())
    }
}

/// Read the host's figures; what cannot be read is 0.
pub fn host_load(home: &std::path::Path) -> HostLoad {
    let load1 = procfs::LoadAverage::current().map_or(0.0, |l| f64::from(l.one));
    let (memory_total_bytes, memory_available_bytes) = procfs::Meminfo::current()
        .map(|m| (m.mem_total, m.mem_available.unwrap_or(m.mem_free)))
        .unwrap_or((0, 0));
    // The block counts are narrower than u64 on some targets.
    #[allow(clippy::unnecessary_cast)]
    let (disk_total_bytes, disk_available_bytes) = nix::sys::statvfs::statvfs(home)
        .map(|s| {
            let unit = s.fragment_size() as u64;
            (
                (s.blocks() as u64).saturating_mul(unit),
                (s.blocks_available() as u64).saturating_mul(unit),
            )
        })
        .unwrap_or((0, 0));
    HostLoad {
        load1,
        cpus: std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(1)),
        memory_total_bytes,
        memory_available_bytes,
        disk_total_bytes,
        disk_available_bytes,
    }
}
