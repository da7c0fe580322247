//! The supervisor: apps, their instances, and what happens to them.
//!
//! [`Supervisor`] is the one interface to it: a cheap, cloneable handle whose async methods
//! are the verbs (`start`, `reload`, `scale`, `list` …, in `verbs`, `views` and `release`).
//! The local socket calls it for the CLI and the controller's mutual-TLS API calls the same
//! methods, so both behave identically.
//!
//! Inside, each app (`app::AppRuntime`) owns its slots; the slot lifecycle (`slots`) starts,
//! replaces and stops their processes, and each process is owned by one runner task
//! (`instance`) that follows the pure instance lifecycle (`lifecycle`) and the pure
//! [`restart_policy`]. The other decisions are pure too: which readiness signals apply to an
//! instance ([`readiness`]), what a release does to each app (`apply_plan`), how a scale
//! changes the slots (`scaling`). The edges are [`process`] (spawn, signals),
//! `cluster_socket` (binding the shared socket and handing it to a child as fd 3), [`ready`]
//! (waiting for the signals), [`persist`] (the state file), `restore`, `monitor` (CPU,
//! memory, `max_memory_restart`) and [`watch`]. Every instance carries a mark (`marker`) by
//! which its processes are found wherever they went (`family`), and orphans that end up the
//! daemon's children are reaped without touching its own (`reaper`). Every task runs on one
//! [`TaskTracker`] and ends on its cancel token.
//!
//! `start_modes` holds PM2's variants of `start`: `autostart: false` apps added stopped,
//! `startOrReload`.
//!
//! Status changes, reloads and releases are also published as [`events`], for subscribers
//! ([`Supervisor::subscribe`]).

mod app;
mod apply_plan;
mod child;
mod cluster_socket;
mod cron;
mod error;
pub mod events;
mod family;
pub mod handover;
mod instance;
mod lifecycle;
mod maintenance;
mod maintenance_page;
mod marker;
mod monitor;
mod observe;
pub mod persist;
mod probe;
pub mod process;
pub mod readiness;
pub mod ready;
pub(crate) mod reaper;
mod release;
mod release_source;
pub mod restart_policy;
mod restore;
mod scaling;
mod secrets;
mod slots;
pub mod spec;
mod start_modes;
mod verbs;
mod views;
pub mod watch;
pub mod watch_window;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use pmfleet_shared::protocol::{AgentEvent, EventKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::home::AgentHome;
use crate::metrics::Sample;
use app::{AppRuntime, lock};
use events::EventStream;
use process::cpu_count;

pub use error::SupervisorError;

/// Lines saying what a verb did.
pub type Messages = Vec<String>;

/// The handle every caller uses. Cloning is cheap; all clones drive the same apps.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    home: AgentHome,
    /// The `<home>` part of every mark this daemon gives its instances ([`marker`]).
    mark_key: String,
    apps: Mutex<BTreeMap<String, Arc<AppRuntime>>>,
    next_id: AtomicU32,
    tasks: TaskTracker,
    /// Cancelled last, once every app is stopped: ends the monitor, watchers and log pumps.
    tasks_cancel: CancellationToken,
    /// Something persisted changed; the persister rewrites the state file.
    dirty: Notify,
    /// Set when the daemon begins to shut down: from then on nothing is spawned.
    closing: std::sync::atomic::AtomicBool,
    /// Held while a snapshot is taken and written, so the file always ends with the latest.
    persist_lock: Mutex<()>,
    /// The latest CPU/RSS sample of every running pid.
    samples: Mutex<HashMap<u32, Sample>>,
    /// The apps' own metrics, by instance (`observe`).
    app_metrics: crate::app_metrics::Store,
    cpus: u32,
    /// When the daemon started, for `status`.
    started: std::time::Instant,
    /// One `apply_release` at a time: two deploys racing on one host must not both decide
    /// that an app is new and start it twice.
    apply_lock: tokio::sync::Mutex<()>,
    /// The release directory last applied in full (persisted).
    release: Mutex<Option<PathBuf>>,
    /// Lifecycle events, for `events` subscribers; bounded, and never waited for.
    events: tokio::sync::broadcast::Sender<AgentEvent>,
    /// Cancelled when the apps are being handed to a new agent binary: runners hand back
    /// their processes and log pumps stop reading ([`handover`]). Replaced if that fails.
    handover: Mutex<CancellationToken>,
}

impl Supervisor {
    /// Start the supervisor in `home`: stop whatever a previous daemon left running (recorded
    /// pid + start time), then start the recorded apps again, fresh. Background tasks
    /// (persister, resource monitor) run on `tasks`.
    pub async fn start(home: AgentHome, tasks: TaskTracker) -> Supervisor {
        let sup = Supervisor {
            inner: Inner::new(home, tasks),
        };
        sup.restore().await;
        Supervisor::run(sup.inner)
    }

    /// Start the background tasks (persister, resource monitor) of a restored supervisor.
    fn run(inner: Arc<Inner>) -> Supervisor {
        inner.tasks.spawn(persist::persister(inner.clone()));
        inner.tasks.spawn(monitor::monitor(inner.clone()));
        observe::spawn(&inner);
        inner.mark_dirty();
        Supervisor { inner }
    }

    /// The agent home this supervisor keeps its state in.
    pub fn home(&self) -> &AgentHome {
        &self.inner.home
    }

    /// Lifecycle events of `app` (of every app when `None`) from now on. The app need not
    /// exist yet: a subscriber may watch an app being started.
    pub fn subscribe(&self, app: Option<String>) -> EventStream {
        EventStream::new(&self.inner.events, app)
    }

    /// Tells every subscriber about something that happened to a whole deploy root rather
    /// than to one app (a release gone back by itself).
    pub fn announce(&self, kind: EventKind, message: impl Into<String>) {
        self.inner.emit("", None, None, kind, message);
    }
}

impl Inner {
    fn new(home: AgentHome, tasks: TaskTracker) -> Arc<Inner> {
        Arc::new(Inner {
            mark_key: marker::home_key(home.root()),
            home,
            apps: Mutex::new(BTreeMap::new()),
            next_id: AtomicU32::new(0),
            tasks,
            tasks_cancel: CancellationToken::new(),
            dirty: Notify::new(),
            persist_lock: Mutex::new(()),
            closing: Default::default(),
            samples: Mutex::new(HashMap::new()),
            app_metrics: Default::default(),
            cpus: cpu_count(),
            started: std::time::Instant::now(),
            apply_lock: tokio::sync::Mutex::new(()),
            release: Mutex::new(None),
            events: events::channel(),
            handover: Mutex::new(CancellationToken::new()),
        })
    }

    pub(crate) fn handover_token(&self) -> CancellationToken {
        lock(&self.handover).clone()
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.notify_one();
    }
}
