//! One app at run time: its spec, its slots (instance 0..N, each with a stable id), the
//! listening socket it owns in cluster mode, and its open log files.
//!
//! Locking: `op` (async) serializes everything that changes the app's processes — start,
//! stop, reload, scale, a memory or watch restart — so two of them never interleave. The
//! std mutexes guard plain data and are never held across an await.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use pmfleet_shared::protocol::{AppSpec, ExecModeSpec, Status};
use socket2::Socket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::logs::{LogConfig, LogFile, app_log_paths};

/// Lock a std mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) type Sink = Arc<tokio::sync::Mutex<LogFile>>;

pub(crate) struct AppRuntime {
    pub name: String,
    pub spec: Mutex<AppSpec>,
    /// How many instances it should have (`instances` resolved, then `scale`).
    pub count: AtomicU32,
    /// Whether it should be running: false after `stop`, so a restore keeps it stopped.
    pub running: AtomicBool,
    pub op: tokio::sync::Mutex<()>,
    /// Cluster mode: the socket bound once and handed to every instance as fd 3.
    pub listener: Mutex<Option<Socket>>,
    pub slots: Mutex<BTreeMap<u32, Slot>>,
    sinks: Mutex<BTreeMap<PathBuf, Sink>>,
    /// Cancels this run's watcher; replaced on every start.
    pub run_cancel: Mutex<CancellationToken>,
    /// Slots with a memory restart under way, so the monitor does not queue another.
    pub memory_restarts: Mutex<std::collections::BTreeSet<u32>>,
    /// In maintenance: the agent answers its new connections ([`super::maintenance`]).
    pub maintenance: Mutex<Option<super::maintenance::Maintenance>>,
}

/// Instance `index` of an app.
pub(crate) struct Slot {
    /// Stable across restarts and reloads (PM2's `pm_id`).
    pub id: u32,
    /// Restarts of this slot, automatic or asked for (shown by `list`).
    pub restarts: Arc<AtomicU32>,
    /// The task owning the slot's current process; kept after it ends, for its last status.
    pub runner: Option<Runner>,
}

/// Handle on the task that owns one process (and its automatic restarts).
pub(crate) struct Runner {
    /// Cancelling it stops the process gracefully and ends the task.
    pub stop: CancellationToken,
    pub join: Option<JoinHandle<super::instance::RunnerEnd>>,
    pub view: Arc<Mutex<View>>,
    /// The port the process answers its health check on (`PMFLEET_PROBE_PORT`), if it was
    /// given one.
    pub probe_port: Option<u16>,
}

/// What `list` shows of a runner's process.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub pid: Option<u32>,
    pub start_time: Option<u64>,
    pub started: Option<Instant>,
    pub status: Status,
}

impl View {
    pub fn stopped() -> View {
        View {
            pid: None,
            start_time: None,
            started: None,
            status: Status::Stopped,
        }
    }
}

impl AppRuntime {
    pub fn new(spec: AppSpec, count: u32) -> AppRuntime {
        AppRuntime {
            name: spec.name.clone(),
            spec: Mutex::new(spec),
            count: AtomicU32::new(count),
            running: AtomicBool::new(false),
            op: tokio::sync::Mutex::new(()),
            listener: Mutex::new(None),
            slots: Mutex::new(BTreeMap::new()),
            sinks: Mutex::new(BTreeMap::new()),
            run_cancel: Mutex::new(CancellationToken::new()),
            memory_restarts: Mutex::new(Default::default()),
            maintenance: Mutex::new(None),
        }
    }

    pub fn spec(&self) -> AppSpec {
        lock(&self.spec).clone()
    }

    pub fn count(&self) -> u32 {
        self.count.load(Ordering::SeqCst)
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// The out and err files of `slot`.
    pub fn log_paths(&self, home: &std::path::Path, slot: u32) -> (PathBuf, PathBuf) {
        let spec = lock(&self.spec);
        let merge = spec.merge_logs || spec.exec_mode == ExecModeSpec::Fork;
        let (out, err) = app_log_paths(home, &spec.name, Some(slot), merge);
        (
            spec.out_file.clone().unwrap_or(out),
            spec.error_file.clone().unwrap_or(err),
        )
    }

    /// Every log file the app's current slots write to, out files first.
    pub fn all_log_paths(&self, home: &std::path::Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let mut outs = Vec::new();
        let mut errs = Vec::new();
        let mut slots: Vec<u32> = lock(&self.slots).keys().copied().collect();
        if slots.is_empty() {
            slots.push(0);
        }
        for slot in slots {
            let (o, e) = self.log_paths(home, slot);
            if !outs.contains(&o) {
                outs.push(o);
            }
            if !errs.contains(&e) {
                errs.push(e);
            }
        }
        (outs, errs)
    }

    /// The open log file at `path`, opened on first use and shared by every instance
    /// writing there.
    pub fn sink(&self, path: PathBuf) -> std::io::Result<Sink> {
        let mut sinks = lock(&self.sinks);
        if let Some(s) = sinks.get(&path) {
            return Ok(s.clone());
        }
        let cfg = {
            let spec = lock(&self.spec);
            LogConfig {
                time: spec.time || spec.log_date_format.is_some(),
                date_format: spec.log_date_format.clone(),
                ..LogConfig::default()
            }
        };
        let sink = Arc::new(tokio::sync::Mutex::new(LogFile::open(path.clone(), cfg)?));
        sinks.insert(path, sink.clone());
        Ok(sink)
    }

    pub fn open_sinks(&self) -> Vec<Sink> {
        lock(&self.sinks).values().cloned().collect()
    }

    /// Forget open log files (after a spec change, so new settings apply).
    pub fn drop_sinks(&self) {
        lock(&self.sinks).clear();
    }
}
