//! Lifecycle events: what the supervisor publishes as instances change status and reloads or
//! releases begin and end, for `events` subscribers.
//!
//! One bounded [`broadcast`] channel carries them. Publishing never waits: with nobody
//! subscribed an event is dropped, and a subscriber that falls more than [`CAPACITY`] events
//! behind loses the oldest ones and is told how many with a single [`EventKind::Lagged`] event,
//! so a slow client can never hold up a restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pmfleet_shared::protocol::{AgentEvent, EventKind};
use tokio::sync::broadcast::{self, error::RecvError};

use super::Inner;

/// Events kept for subscribers that have not read them yet.
pub const CAPACITY: usize = 1024;

/// The sending side, owned by the supervisor.
pub(crate) fn channel() -> broadcast::Sender<AgentEvent> {
    broadcast::channel(CAPACITY).0
}

/// One subscription: the events of one app, or of every app, from the moment it was made.
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<AgentEvent>,
    app: Option<String>,
}

impl EventStream {
    pub(crate) fn new(tx: &broadcast::Sender<AgentEvent>, app: Option<String>) -> EventStream {
        EventStream {
            rx: tx.subscribe(),
            app,
        }
    }

    /// The next event that passes the filter; a [`EventKind::Lagged`] event when some were
    /// lost; `None` once the supervisor is gone.
    pub async fn next(&mut self) -> Option<AgentEvent> {
        loop {
            match self.rx.recv().await {
                // An event of a whole deploy root (empty app) concerns every app.
                Ok(ev) if ev.app.is_empty() || self.app.as_ref().is_none_or(|a| *a == ev.app) => {
                    return Some(ev);
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    return Some(AgentEvent {
                        at_ms: now_ms(),
                        app: self.app.clone().unwrap_or_default(),
                        instance: None,
                        pid: None,
                        kind: EventKind::Lagged,
                        message: format!("missed {n} events"),
                    });
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `1.2 s`, `81 s`, `350 ms`: how long something lasted, for event messages.
pub(crate) fn took(d: Duration) -> String {
    match d.as_millis() {
        ms @ 0..1000 => format!("{ms} ms"),
        ms @ 1000..10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} s", d.as_secs()),
    }
}

impl Inner {
    /// Publish an event; never waits, and costs nothing but the event when nobody listens.
    pub(crate) fn emit(
        &self,
        app: &str,
        instance: Option<u32>,
        pid: Option<u32>,
        kind: EventKind,
        message: impl Into<String>,
    ) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let _ = self.events.send(AgentEvent {
            at_ms: now_ms(),
            app: app.to_string(),
            instance,
            pid,
            kind,
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(app: &str, n: u32) -> AgentEvent {
        AgentEvent {
            at_ms: 0,
            app: app.into(),
            instance: Some(n),
            pid: None,
            kind: EventKind::Started,
            message: String::new(),
        }
    }

    #[tokio::test]
    async fn a_filtered_stream_sees_only_its_app() {
        let tx = broadcast::channel(16).0;
        let mut api = EventStream::new(&tx, Some("api".into()));
        let mut every = EventStream::new(&tx, None);
        for (app, n) in [("worker", 0), ("api", 1), ("worker", 2), ("api", 3)] {
            tx.send(event(app, n)).unwrap();
        }
        drop(tx);
        let mut seen = Vec::new();
        while let Some(ev) = api.next().await {
            seen.push(ev.instance);
        }
        assert_eq!(seen, [Some(1), Some(3)]);
        let mut all = 0;
        while every.next().await.is_some() {
            all += 1;
        }
        assert_eq!(all, 4);
    }

    /// An event of a whole deploy root (no app) reaches a stream that follows one app too.
    #[tokio::test]
    async fn a_root_event_reaches_every_stream() {
        let tx = broadcast::channel(16).0;
        let mut api = EventStream::new(&tx, Some("api".into()));
        for (app, n) in [("worker", 0), ("", 1), ("api", 2)] {
            tx.send(event(app, n)).unwrap();
        }
        drop(tx);
        let mut seen = Vec::new();
        while let Some(ev) = api.next().await {
            seen.push(ev.instance);
        }
        assert_eq!(seen, [Some(1), Some(2)]);
    }

    /// A subscriber that fell behind gets one `lagged` event saying how many it lost, then
    /// the events still kept, and the sender never waited for it.
    #[tokio::test]
    async fn a_slow_subscriber_is_told_what_it_missed() {
        let tx = broadcast::channel(4).0;
        let mut slow = EventStream::new(&tx, None);
        for n in 0..10 {
            tx.send(event("api", n)).unwrap();
        }
        let lagged = slow.next().await.unwrap();
        assert_eq!(lagged.kind, EventKind::Lagged);
        assert_eq!(lagged.message, "missed 6 events");
        assert_eq!(lagged.app, "");
        let mut rest = Vec::new();
        drop(tx);
        while let Some(ev) = slow.next().await {
            rest.push(ev.instance.unwrap());
        }
        assert_eq!(rest, [6, 7, 8, 9]);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(took(Duration::from_millis(350)), "350 ms");
        assert_eq!(took(Duration::from_millis(1234)), "1.2 s");
        assert_eq!(took(Duration::from_secs(81)), "81 s");
    }
}
