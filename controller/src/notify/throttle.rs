//! At most one notification per app, host and event in a window: a crash-looping or leaking
//! app on twenty hosts would otherwise page a team once per restart. The first event of a kind
//! is told at once and opens the window; the same event within it is only counted; when the
//! window ends with events held back, one summary says how many (and the last reason), and a
//! new window opens, so a storm that goes on is told once per window. A window that ends with
//! nothing held back closes: the next event is told at once again. Pure: the caller sends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pmfleet_shared::ecosystem::NotifyEvent;

use super::Message;

/// What notifications are counted together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub host: String,
    pub app: String,
    pub event: NotifyEvent,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    held_back: u32,
    /// The last event held back, as it would have been told.
    last: Option<Message>,
}

/// The open windows.
#[derive(Debug)]
pub struct Throttle {
    window: Duration,
    open: HashMap<Key, Window>,
}

impl Throttle {
    /// A window of `window`; `Duration::ZERO` tells every event.
    pub fn new(window: Duration) -> Throttle {
        Throttle {
            window,
            open: HashMap::new(),
        }
    }

    /// Whether `message` (about `key`, at `now`) is to be sent now; `false`: it is counted
    /// and told in the window's summary.
    pub fn admit(&mut self, key: Key, message: &Message, now: Instant) -> bool {
        if self.window.is_zero() {
            return true;
        }
        match self.open.get_mut(&key) {
            Some(w) if now.duration_since(w.opened) < self.window => {
                w.held_back += 1;
                w.last = Some(message.clone());
                false
            }
            _ => {
                self.open.insert(
                    key,
                    Window {
                        opened: now,
                        held_back: 0,
                        last: None,
                    },
                );
                true
            }
        }
    }

    /// The summaries of the windows that ended by `now`, to send: each the last event held
    /// back, its `held_back` count set and its reason saying so.
    pub fn due(&mut self, now: Instant) -> Vec<Message> {
        let window = self.window;
        self.summaries(now, |w| now.duration_since(w.opened) >= window)
    }

    /// The summaries of every window that holds events back, ended or not: what is told
    /// when the sender stops.
    pub fn drain(&mut self) -> Vec<Message> {
        let summaries = self.summaries(Instant::now(), |_| true);
        self.open.clear();
        summaries
    }

    /// The summaries of the windows `ended` says are over, each opened again at `now`.
    fn summaries(&mut self, now: Instant, ended: impl Fn(&Window) -> bool) -> Vec<Message> {
        let window = self.window;
        let mut summaries = Vec::new();
        self.open.retain(|_, w| {
            if !ended(w) {
                return true;
            }
            let Some(mut last) = w.last.take().filter(|_| w.held_back > 0) else {
                return false;
            };
            let count = w.held_back;
            let reason = last.reason.take().unwrap_or_default();
            last.reason = Some(format!(
                "{count} more in the last {} (held back to one message per window; the last: {reason})",
                pmfleet_shared::display::uptime(u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
            ));
            last.held_back = Some(count);
            summaries.push(last);
            *w = Window {
                opened: now,
                held_back: 0,
                last: None,
            };
            true
        });
        summaries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(app: &str) -> Key {
        Key {
            host: "web-1".into(),
            app: app.into(),
            event: NotifyEvent::MemoryRestart,
        }
    }

    fn message(reason: &str) -> Message {
        let mut m = Message::new(NotifyEvent::MemoryRestart, "production", "ops");
        m.reason = Some(reason.into());
        m
    }

    #[test]
    fn one_message_per_window_and_a_summary_of_the_rest() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut t = Throttle::new(Duration::from_secs(60));
        // (second, app, admitted)
        let table = [
            (0, "hog", true),
            (5, "hog", false),
            (10, "hog", false),
            (10, "api", true),
            (59, "hog", false),
        ];
        for (s, app, want) in table {
            assert_eq!(
                t.admit(key(app), &message(&format!("at {s}")), at(s)),
                want,
                "{app} at {s}s"
            );
        }
        assert!(t.due(at(59)).is_empty(), "no window has ended yet");
        let due = t.due(at(60));
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].held_back, Some(3));
        let reason = due[0].reason.clone().unwrap_or_default();
        assert!(
            reason.starts_with("3 more in the last 1m") && reason.ends_with("the last: at 59)"),
            "{reason}"
        );
        // hog's storm goes on: its new window holds the next one back as well.
        assert!(!t.admit(key("hog"), &message("at 61"), at(61)));
        // api's window ended with nothing held back: no summary, and it closes.
        assert!(t.due(at(70)).is_empty());
        assert!(t.admit(key("api"), &message("at 71"), at(71)));
        // hog's second window: one held back.
        let due = t.due(at(120));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].held_back, Some(1));
        // Quiet since: the window closes, the next event is told at once.
        assert!(t.due(at(180)).is_empty());
        assert!(t.admit(key("hog"), &message("at 181"), at(181)));
    }

    #[test]
    fn stopping_tells_what_every_window_holds_back() {
        let now = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(60));
        assert!(t.admit(key("hog"), &message("first"), now));
        assert!(!t.admit(key("hog"), &message("second"), now));
        assert!(t.admit(key("api"), &message("only"), now));
        let drained = t.drain();
        assert_eq!(drained.len(), 1, "{drained:?}");
        assert_eq!(drained[0].held_back, Some(1));
        assert!(t.drain().is_empty());
        assert!(t.admit(key("hog"), &message("again"), now));
    }

    #[test]
    fn a_zero_window_tells_every_event() {
        let mut t = Throttle::new(Duration::ZERO);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(t.admit(key("hog"), &message("x"), now));
        }
        assert!(t.due(now + Duration::from_secs(3600)).is_empty());
    }
}
