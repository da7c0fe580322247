//! `events [app] [--json]`: lifecycle events (started, exited, reloads, releases…) as they
//! happen, until Ctrl-C or until stdout closes.

use std::io::Write;
use std::process::ExitCode;

use pmfleet_shared::protocol::{AgentEvent, Request, Response};

use super::print;
use crate::client::Client;
use crate::home::AgentHome;

/// `events`: subscribe, then print each event as it comes until the agent ends the stream
/// (or Ctrl-C, or stdout closes).
pub async fn run(home: &AgentHome, app: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let mut c = Client::connect(home, true).await?;
    let mut resp = c.request(&Request::Events { app }).await?;
    let mut stdout = std::io::stdout();
    let mut clock = crate::logs::Stamp::new("HH:mm:ss");
    loop {
        match resp {
            // The subscription is live: every event from here on is printed.
            Response::Done { messages } => {
                for m in messages {
                    eprintln!("{m} (Ctrl-C to stop)");
                }
            }
            Response::Event(ev) => {
                let line = if json {
                    serde_json::to_string(&ev)?
                } else {
                    event_line(&ev, &mut clock)
                };
                if writeln!(stdout, "{line}")
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Response::End => return Ok(ExitCode::SUCCESS),
            other => return Ok(print::response(other, json)),
        }
        resp = match c.next().await? {
            Some(r) => r,
            None => return Ok(ExitCode::SUCCESS),
        };
    }
}

/// `14:03:07 api[1] exited killed by signal 9 (SIGKILL) after 81 s (pid 4242)`.
fn event_line(ev: &AgentEvent, clock: &mut crate::logs::Stamp) -> String {
    let mut who = ev.app.clone();
    if let Some(i) = ev.instance {
        who.push_str(&format!("[{i}]"));
    }
    let mut line = format!(
        "{} {who} {} {}",
        clock.format_unix_ms(ev.at_ms),
        ev.kind,
        ev.message
    );
    if let Some(pid) = ev.pid {
        line.push_str(&format!(" (pid {pid})"));
    }
    line
}
