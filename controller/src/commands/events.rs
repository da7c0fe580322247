//! `pmfleet events [file] <env> [app]`: the agents' lifecycle events (started, online, exited,
//! restarting, errored, reloads, releases applied) from every host, as they happen.

use clap::Args;
use pmfleet_shared::protocol::{Request, Response};

use crate::agent::targets as agents;
use crate::deploy::Exit;

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
    agents::stream_all(
        &targets,
        &client,
        &Request::Events { app },
        move |host, response| {
            let Response::Event(event) = response else {
                return;
            };
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
        },
    )
    .await
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
