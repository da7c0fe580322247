//! The apps' own metrics (PM2's custom metrics), for apps in any language and without a
//! pmfleet library: values an app's code measures (users online, queue length, jobs done)
//! shown beside CPU and memory by `monit`, the dashboard and the agent's metrics endpoint.
//!
//! Two ways in, each its own file:
//! - [`socket`]: the agent listens on a Unix socket (`<home>/metrics.sock`) whose path every
//!   instance finds in `PMFLEET_METRICS_SOCKET`, and reads StatsD-style lines from it
//!   ([`statsd`]); the sender is told apart by its pid (the kernel's peer credentials), so
//!   each value lands on the instance that sent it.
//! - [`scrape`]: when the app names a metrics endpoint (`metrics: "/metrics"` on its `port`,
//!   or `{ "path", "port" }` with one port per instance), the agent reads it every few
//!   seconds ([`prom_text`] reads the Prometheus text format).
//!
//! What either brings is kept in a [`Store`] by (app, instance), bounded per instance.

pub mod prom_text;
pub mod scrape;
pub mod socket;
pub mod statsd;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use pmfleet_shared::protocol::{MAX_APP_METRIC_NAME, MAX_APP_METRICS};

/// The environment variable naming the metrics socket in every instance's environment.
pub const SOCKET_VAR: &str = "PMFLEET_METRICS_SOCKET";

/// The environment variable giving an instance the port its own metrics endpoint listens on
/// (`metrics: { "port": P }`: instance N gets P + N).
pub const PORT_VAR: &str = "PMFLEET_METRICS_PORT";

/// The metrics socket this daemon serves, once it does (one daemon per process).
static SOCKET_PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Say where the metrics socket is, for the environment of every instance started from now on.
pub fn set_socket_path(path: std::path::PathBuf) {
    let _ = SOCKET_PATH.set(path);
}

/// What an instance's environment gets: the socket's path ([`SOCKET_VAR`]) and, when its
/// metrics endpoint has a port of its own, the port it is to listen on ([`PORT_VAR`]).
pub fn add_env(
    env: &mut BTreeMap<String, String>,
    spec: &pmfleet_shared::protocol::AppSpec,
    instance: u32,
) {
    match SOCKET_PATH.get() {
        Some(path) => {
            env.insert(SOCKET_VAR.into(), path.display().to_string());
        }
        None => {
            env.remove(SOCKET_VAR);
        }
    }
    if let Some(endpoint) = &spec.metrics
        && let Some(port) = scrape::port_of(spec, endpoint, instance)
        && endpoint.port.is_some()
    {
        env.insert(PORT_VAR.into(), port.to_string());
    }
}

/// One change an app asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A counter: add to it.
    Add(f64),
    /// A gauge (or a timing's last value): set it.
    Set(f64),
}

/// Each instance's values, by (app, instance) then metric key.
type Values = HashMap<(String, u32), BTreeMap<String, f64>>;

/// The latest values of every instance, by (app, instance) then metric key.
#[derive(Debug, Clone, Default)]
pub struct Store {
    values: Arc<Mutex<Values>>,
}

impl Store {
    /// Apply one update to `key` of (`app`, `instance`). A new key past
    /// [`MAX_APP_METRICS`] for that instance, or one too long, is dropped.
    pub fn update(&self, app: &str, instance: u32, key: &str, update: Update) {
        if key.is_empty() || key.len() > MAX_APP_METRIC_NAME {
            return;
        }
        let mut values = lock(&self.values);
        let metrics = values.entry((app.to_string(), instance)).or_default();
        if !metrics.contains_key(key) && metrics.len() >= MAX_APP_METRICS {
            return;
        }
        let slot = metrics.entry(key.to_string()).or_insert(0.0);
        match update {
            Update::Add(v) => *slot += v,
            Update::Set(v) => *slot = v,
        }
    }

    /// Replace every value of (`app`, `instance`) by what a scrape read (at most
    /// [`MAX_APP_METRICS`] of them).
    pub fn replace(&self, app: &str, instance: u32, read: Vec<(String, f64)>) {
        let kept: BTreeMap<String, f64> = read
            .into_iter()
            .filter(|(k, _)| !k.is_empty() && k.len() <= MAX_APP_METRIC_NAME)
            .take(MAX_APP_METRICS)
            .collect();
        lock(&self.values).insert((app.to_string(), instance), kept);
    }

    /// What (`app`, `instance`) reported; empty when nothing.
    pub fn of(&self, app: &str, instance: u32) -> BTreeMap<String, f64> {
        lock(&self.values)
            .get(&(app.to_string(), instance))
            .cloned()
            .unwrap_or_default()
    }

    /// Forget every instance `keep` says no longer exists.
    pub fn retain(&self, keep: impl Fn(&str, u32) -> bool) {
        lock(&self.values).retain(|(app, i), _| keep(app, *i));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_gauges_set_and_each_instance_is_bounded() {
        let store = Store::default();
        store.update("api", 0, "jobs", Update::Add(1.0));
        store.update("api", 0, "jobs", Update::Add(2.0));
        store.update("api", 0, "users", Update::Set(5.0));
        store.update("api", 0, "users", Update::Set(4.0));
        store.update("api", 1, "jobs", Update::Add(1.0));
        let zero = store.of("api", 0);
        assert_eq!((zero["jobs"], zero["users"]), (3.0, 4.0));
        assert_eq!(store.of("api", 1)["jobs"], 1.0);
        for i in 0..(MAX_APP_METRICS + 10) {
            store.update("api", 2, &format!("m{i}"), Update::Set(1.0));
        }
        assert_eq!(store.of("api", 2).len(), MAX_APP_METRICS);
        store.update(
            "api",
            3,
            &"x".repeat(MAX_APP_METRIC_NAME + 1),
            Update::Set(1.0),
        );
        assert!(store.of("api", 3).is_empty());
        store.replace("web", 0, vec![("a".into(), 1.0)]);
        store.replace("web", 0, vec![("b".into(), 2.0)]);
        assert_eq!(store.of("web", 0).keys().collect::<Vec<_>>(), ["b"]);
        store.retain(|app, _| app == "web");
        assert!(store.of("api", 0).is_empty());
        assert_eq!(store.of("web", 0)["b"], 2.0);
    }
}
