//! `pmfleet events [file] <env> [app]`: the agents' lifecycle events (started, online, exited,
//! restarting, errored, reloads, releases applied) from every host, as they happen. With
//! `--notify` it also tells the environment's webhooks about crash loops, errored instances,
//! memory restarts and hosts that went back by themselves (run it as a service next to the
//! fleet): the agents never call out. Each is told at most once per app, host and event in
//! `--notify-window`; what is held back when it is stopped (SIGINT, SIGTERM) is told then.

use clap::Args;
use pmfleet_shared::protocol::{Request, Response};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pmfleet_shared::ecosystem;

use crate::agent::targets as agents;
use crate::deploy::Exit;
use crate::notify::throttle::{Key, Throttle};
use crate::notify::{HostOutcome, Message, Notifier};
use crate::output::Output;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The words after the verb, as PM2 takes them.
    #[arg(
        required = true,
        value_name = "ARGS",
        help = "[ECOSYSTEM_FILE] ENVIRONMENT [APP]"
    )]
    pub words: Vec<String>,
    /// One JSON object per event.
    #[arg(long)]
    pub json: bool,
    /// Also send crash loops, errored instances, memory restarts and hosts gone back by
    /// themselves to the environment's `notify` webhooks.
    #[arg(long)]
    pub notify: bool,
    /// With --notify: the same event of the same app on the same host is told at most once
    /// in this window; the rest are counted and told in one summary when it ends (0: tell
    /// every event).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = crate::cli::parse_duration)]
    pub notify_window: Duration,
}

pub async fn run(args: EventsArgs) -> Exit {
    let (targets, client, app) =
        match agents::env_and_app(&args.words, "usage: pmfleet events <env> [app] [--json]") {
            Ok(v) => v,
            Err(message) => {
                pmfleet_shared::cli::error::report(args.json, "bad_config", &message.to_string());
                return Exit::BadConfig;
            }
        };
    let json = args.json;
    let notifier = if args.notify {
        match notifier(&args.words).await {
            Ok(n) => Some(n),
            Err(message) => {
                pmfleet_shared::cli::error::report(args.json, "bad_config", &message);
                return Exit::BadConfig;
            }
        }
    } else {
        None
    };
    let throttle = Arc::new(Mutex::new(Throttle::new(args.notify_window)));
    if let Some((n, _, _)) = &notifier {
        // The summaries of the windows that ended, once a second.
        let (n, throttle) = (n.clone(), throttle.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let due = throttle
                    .lock()
                    .map(|mut t| t.due(Instant::now()))
                    .unwrap_or_default();
                for summary in &due {
                    n.send(summary);
                }
            }
        });
    }
    // What the stop signal needs, kept apart from what the stream's callback takes.
    let on_stop = notifier
        .as_ref()
        .map(|(n, _, _)| (n.clone(), throttle.clone()));
    let request = Request::Events { app };
    let streams = agents::stream_all(&targets, &client, &request, move |host, response| {
        let Response::Event(event) = response else {
            return;
        };
        if let Some((n, env, who)) = &notifier
            && let Some(kind) = crate::notify::message::from_agent_event(&event)
        {
            let mut m = Message::new(kind, env, who);
            m.app = (!event.app.is_empty()).then(|| event.app.clone());
            m.hosts = vec![HostOutcome {
                host: host.to_owned(),
                outcome: kind.name().replace('_', " "),
            }];
            m.outcome = kind.name().replace('_', " ");
            m.reason = Some(crate::notify::message::one_line(&event.message));
            let key = Key {
                host: host.to_owned(),
                app: event.app.clone(),
                event: kind,
            };
            let admitted = throttle
                .lock()
                .is_ok_and(|mut t| t.admit(key, &m, Instant::now()));
            if admitted {
                n.send(&m);
            }
        }
        if json {
            let mut value = serde_json::to_value(&event).unwrap_or_default();
            if let Some(obj) = value.as_object_mut() {
                obj.insert("host".into(), host.into());
            }
            println!("{value}");
        } else {
            let instance = event.instance.map(|i| format!("[{i}]")).unwrap_or_default();
            let kind = serde_json::to_value(event.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            println!(
                "{host} | {} | {}{instance} {kind} {}",
                clock(event.at_ms),
                event.app,
                event.message
            );
        }
    });
    let Some((n, throttle)) = on_stop else {
        return streams.await;
    };
    // Told to stop (Ctrl-C, or SIGTERM from a service manager): what the windows still hold
    // back is told before going, and what is on its way gets its time.
    tokio::select! {
        exit = streams => exit,
        () = stop_signal() => {
            let held = throttle.lock().map(|mut t| t.drain()).unwrap_or_default();
            for summary in &held {
                n.send(summary);
            }
            n.finish(crate::notify::FINISH_WAIT).await;
            Exit::Success
        }
    }
}

/// SIGINT or SIGTERM (never, when they cannot be listened for).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        }
        _ => std::future::pending().await,
    }
}

/// The environment's notifier (a URL naming a secret resolves the secrets first), its name
/// and who is watching.
async fn notifier(words: &[String]) -> Result<(Arc<Notifier>, String, String), String> {
    let mut words: Vec<&str> = words.iter().map(String::as_str).collect();
    let file = match words.first() {
        Some(first) if ecosystem::looks_like_ecosystem_file(first) => {
            Some(std::path::PathBuf::from(words.remove(0)))
        }
        _ => None,
    };
    let env_name = words
        .first()
        .ok_or("usage: pmfleet events <env> --notify")?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let eco = ecosystem::load_from(file.as_deref(), &cwd).map_err(|e| e.to_string())?;
    let env = eco.environment(env_name).map_err(|e| e.to_string())?;
    let needs_secrets = crate::notify::targets_of(&eco, env)
        .iter()
        .any(|(_, t)| pmfleet_shared::secrets::reference(&t.url).is_some());
    let secrets = if needs_secrets {
        let dir = eco
            .source
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or(cwd);
        Some(
            crate::secrets::resolve(&dir, env_name)
                .await
                .map_err(|e| e.to_string())?
                .0,
        )
    } else {
        None
    };
    let out = Arc::new(Output::new(crate::output::Mode::Plain));
    let n = Notifier::new(&eco, env, secrets.as_ref(), out)?;
    if n.is_empty() {
        return Err(format!(
            "--notify: environment `{env_name}` has no `notify` webhook (nor does the file's top level)"
        ));
    }
    Ok((
        Arc::new(n),
        env.name.clone(),
        crate::deploy::who_in(eco.source.parent()),
    ))
}

/// `HH:MM:SS` (UTC) of a Unix time in milliseconds.
fn clock(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_reads_utc() {
        assert_eq!(super::clock(1_767_268_800_123), "12:00:00");
    }
}
