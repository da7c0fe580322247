//! [`AgentEvent`]: one thing that happened to an app or one of its instances, as the agent
//! streams it to an `events` subscriber ([`super::Request::Events`]).
//!
//! Events say what changed, when; the state itself is what `list` and `status` answer. A
//! subscriber sees only what happens after it subscribed, and one that cannot keep up is told
//! how many events it missed ([`EventKind::Lagged`]) instead of slowing the agent down.

use serde::{Deserialize, Serialize};

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEvent {
    /// When it happened, in milliseconds since the Unix epoch (the agent's clock).
    pub at_ms: u64,
    /// The app it happened to. For [`EventKind::Lagged`]: the subscription's app, or empty
    /// when it follows every app. Empty for an event of a whole deploy root
    /// ([`EventKind::AutoReverted`]), which every subscriber is sent.
    pub app: String,
    /// The slot (0..instances) for an instance's event; `None` for an event of the whole app.
    #[serde(default)]
    pub instance: Option<u32>,
    /// The process the event is about, when there is one.
    #[serde(default)]
    pub pid: Option<u32>,
    pub kind: EventKind,
    /// One line for a person: an exit code or signal, a restart delay, why a reload failed.
    pub message: String,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A process was spawned for an instance.
    Started,
    /// The instance counts as online: at once after `started` when nothing waits for it,
    /// after it became ready during a reload or a release.
    Online,
    /// The process ended on its own or was killed by something other than the agent; the
    /// message carries the exit code or signal.
    Exited,
    /// The restart policy starts the instance again after its delay.
    Restarting,
    /// The instance is left stopped: too many unstable restarts, or it could not be spawned.
    Errored,
    /// The agent is stopping the process (its kill signal, then SIGKILL after `kill_timeout`).
    Stopping,
    /// The instance is stopped, by request or because its policy does not restart it.
    Stopped,
    /// The app was stopped and forgotten (`delete`).
    Deleted,
    /// A rolling reload of the app began (or, in fork mode, the restart `reload` does).
    ReloadStarted,
    /// Every instance of the app was replaced.
    ReloadFinished,
    /// A new instance never became ready: the reload stopped there and the old instances
    /// keep serving.
    ReloadFailed,
    /// An `apply_release` began with this app.
    ReleaseStarted,
    /// The app runs the applied release and every instance is ready.
    ReleaseApplied,
    /// The app does not run the applied release; the message says why.
    ReleaseFailed,
    /// This subscriber fell behind and missed events; the message says how many.
    Lagged,
    /// A deploy root went back by itself: its switch was never confirmed, so the agent
    /// switched `current` back; the message says from which release to which, and why.
    AutoReverted,
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventKind::Started => "started",
            EventKind::Online => "online",
            EventKind::Exited => "exited",
            EventKind::Restarting => "restarting",
            EventKind::Errored => "errored",
            EventKind::Stopping => "stopping",
            EventKind::Stopped => "stopped",
            EventKind::Deleted => "deleted",
            EventKind::ReloadStarted => "reload_started",
            EventKind::ReloadFinished => "reload_finished",
            EventKind::ReloadFailed => "reload_failed",
            EventKind::ReleaseStarted => "release_started",
            EventKind::ReleaseApplied => "release_applied",
            EventKind::ReleaseFailed => "release_failed",
            EventKind::Lagged => "lagged",
            EventKind::AutoReverted => "auto_reverted",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_display_as_they_serialize() {
        let kinds = [
            EventKind::Started,
            EventKind::Online,
            EventKind::Exited,
            EventKind::Restarting,
            EventKind::Errored,
            EventKind::Stopping,
            EventKind::Stopped,
            EventKind::Deleted,
            EventKind::ReloadStarted,
            EventKind::ReloadFinished,
            EventKind::ReloadFailed,
            EventKind::ReleaseStarted,
            EventKind::ReleaseApplied,
            EventKind::ReleaseFailed,
            EventKind::Lagged,
            EventKind::AutoReverted,
        ];
        for k in kinds {
            assert_eq!(serde_json::to_value(k).unwrap(), k.to_string());
        }
    }
}
