//! Notifications: telling webhooks (generic JSON, Slack-compatible, ntfy) about deploys and
//! reverts, and — through `pmfleet events <env> --notify` — about the apps (crash loops,
//! errored instances, memory restarts), at most one per app, host and event in a window
//! ([`throttle`]).
//!
//! The controller sends them all: the agents never reach out, so a webhook URL (often a
//! credential) stays on the controller and the hosts need no way out to the internet.
//! Delivery never blocks or fails the run it reports on: each message is sent on a blocking
//! thread with bounded retries and a deadline per attempt ([`deliver`]); the run only waits
//! for what is still on its way at its very end, up to [`FINISH_WAIT`], and a message that
//! could not be sent is one line in the output.

pub mod deliver;
pub mod format;
pub mod message;
pub mod throttle;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pmfleet_shared::ecosystem::{DeployEnv, Ecosystem, NotifyFormat, NotifyTarget};
use tokio::task::JoinSet;

pub use message::{HostOutcome, Message};

use crate::output::Output;
use crate::secrets::Resolved;

/// The longest a run waits, at its end, for notifications still being sent.
pub const FINISH_WAIT: Duration = Duration::from_secs(20);

/// Every webhook environment `env` tells, with where it is written: the top-level ones,
/// then the environment's own.
pub fn targets_of<'e>(eco: &'e Ecosystem, env: &'e DeployEnv) -> Vec<(String, &'e NotifyTarget)> {
    let top = eco
        .notify
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("notify[{i}]"), t));
    let own = env
        .notify
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("deploy.{}.notify[{i}]", env.name), t));
    top.chain(own).collect()
}

/// One webhook, its URL resolved.
struct Target {
    url: String,
    format: NotifyFormat,
    events: Vec<pmfleet_shared::ecosystem::NotifyEvent>,
    agent: ureq::Agent,
}

/// Sends an environment's notifications.
pub struct Notifier {
    targets: Vec<Arc<Target>>,
    out: Arc<Output>,
    pending: Mutex<JoinSet<()>>,
}

impl Notifier {
    /// The notifier of environment `env`; a URL naming a secret takes its value from
    /// `secrets`. `Err`: a URL names a secret that is not resolved, or the HTTP client
    /// cannot be made.
    pub fn new(
        eco: &Ecosystem,
        env: &DeployEnv,
        secrets: Option<&Resolved>,
        out: Arc<Output>,
    ) -> Result<Notifier, String> {
        let mut targets = Vec::new();
        for (field, t) in targets_of(eco, env) {
            let url = match pmfleet_shared::secrets::reference(&t.url) {
                Some(name) => secrets
                    .and_then(|s| s.get(name))
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        format!("{field}.url names secret `{name}`, which is not declared")
                    })?,
                None => t.url.clone(),
            };
            targets.push(Arc::new(Target {
                url,
                format: t.format,
                events: t.events.clone(),
                agent: deliver::agent(t.timeout)?,
            }));
        }
        Ok(Notifier {
            targets,
            out,
            pending: Mutex::new(JoinSet::new()),
        })
    }

    /// Whether any webhook is configured.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Sends `message` to every webhook that wants its event, in the background.
    pub fn send(&self, message: &Message) {
        for target in &self.targets {
            if !target.events.contains(&message.event) {
                continue;
            }
            let body = format::body(target.format, message);
            // Nothing a message holds should be secret; masked all the same.
            let body = format::Body {
                bytes: pmfleet_shared::redact::redact(&String::from_utf8_lossy(&body.bytes))
                    .into_owned()
                    .into_bytes(),
                ..body
            };
            let target = target.clone();
            let out = self.out.clone();
            let event = message.event.name();
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            // A long-lived sender (`events --notify`) never reaches `finish`: what is done
            // is let go of here.
            while pending.try_join_next().is_some() {}
            pending.spawn(async move {
                let sent = {
                    let target = target.clone();
                    tokio::task::spawn_blocking(move || {
                        deliver::deliver(&target.agent, &target.url, &body)
                    })
                    .await
                };
                let why = match sent {
                    Ok(Ok(_)) => return,
                    Ok(Err(why)) => why,
                    Err(e) => e.to_string(),
                };
                out.info(&format!(
                    "notification {event} could not be sent to {}: {why}",
                    deliver::shown(&target.url)
                ));
            });
        }
    }

    /// Waits for the notifications still being sent, at most `wait`; says how many were
    /// given up on.
    pub async fn finish(&self, wait: Duration) {
        let mut pending = {
            let mut guard = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *guard)
        };
        let all = async { while pending.join_next().await.is_some() {} };
        if tokio::time::timeout(wait, all).await.is_err() {
            let left = pending.len();
            pending.detach_all();
            self.out.info(&format!(
                "{left} notification(s) not delivered within {}s: given up",
                wait.as_secs()
            ));
        }
    }
}
