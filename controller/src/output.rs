//! What the user sees: live per-host progress on a terminal, plain `host | step | message`
//! lines in a pipe or under `CI=true`, or one JSON object per line with `--json`.
//!
//! Every byte goes through [`redact`] on its way out (progress bars included), so a secret
//! the run resolved is masked in whatever a host, a hook or an error says.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use pmfleet_shared::redact::redact;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Plain,
    Json,
}

impl Mode {
    /// `--json` wins; otherwise live progress only on a terminal outside CI.
    pub fn detect(json: bool) -> Mode {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        if json {
            Mode::Json
        } else if ci || !std::io::stderr().is_terminal() || !std::io::stdout().is_terminal() {
            Mode::Plain
        } else {
            Mode::Live
        }
    }
}

/// One row of the final summary table.
#[derive(Debug, Clone)]
pub struct SummaryRow {
    pub host: String,
    pub outcome: String,
    pub release: String,
    pub sha: String,
    pub elapsed: Duration,
    pub message: String,
}

pub struct Output {
    mode: Mode,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// Where the text goes instead of stdout (tests read it back).
    captured: Option<Mutex<String>>,
}

impl Output {
    pub fn new(mode: Mode) -> Output {
        Output {
            mode,
            multi: (mode == Mode::Live).then(MultiProgress::new),
            bars: Mutex::new(HashMap::new()),
            captured: None,
        }
    }

    /// Plain lines kept in memory rather than printed; [`Output::captured`] returns them.
    pub fn capturing() -> Output {
        Output {
            captured: Some(Mutex::new(String::new())),
            ..Output::new(Mode::Plain)
        }
    }

    /// Everything written so far by a [`Output::capturing`] output.
    pub fn captured(&self) -> String {
        self.captured
            .as_ref()
            .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A message about the whole run ("resolved origin/main to 1a2b3c4").
    pub fn info(&self, message: &str) {
        match self.mode {
            Mode::Json => self.json(&serde_json::json!({"event": "info", "message": message})),
            Mode::Live => self.println(message),
            Mode::Plain => self.println(&format!("pmfleet | {message}")),
        }
    }

    /// A host starts a step.
    pub fn step(&self, host: &str, step: &str) {
        match self.mode {
            Mode::Live => self.bar(host).set_message(redact(step).into_owned()),
            Mode::Plain => self.println(&format!("{host} | {step} | started")),
            Mode::Json => {
                self.json(&serde_json::json!({"event": "step", "host": host, "step": step}))
            }
        }
    }

    /// A line of output from a host (hook or command output).
    pub fn line(&self, host: &str, step: &str, line: &str) {
        match self.mode {
            Mode::Json => self.json(
                &serde_json::json!({"event": "output", "host": host, "step": step, "line": line}),
            ),
            _ => self.println(&format!("{host} | {step} | {line}")),
        }
    }

    /// A host finished (successfully or not) with a one-line outcome.
    pub fn done(&self, host: &str, ok: bool, message: &str) {
        match self.mode {
            Mode::Live => {
                let bar = self.bar(host);
                let mark = if ok {
                    console::style("✓").green()
                } else {
                    console::style("✗").red()
                };
                bar.finish_with_message(format!("{mark} {}", redact(message)));
            }
            Mode::Plain => self.println(&format!(
                "{host} | {} | {message}",
                if ok { "done" } else { "failed" }
            )),
            Mode::Json => self.json(
                &serde_json::json!({"event": "done", "host": host, "ok": ok, "message": message}),
            ),
        }
    }

    /// The summary table at the end of a run.
    pub fn summary(&self, title: &str, rows: &[SummaryRow]) {
        self.clear_bars();
        if let Some(multi) = &self.multi {
            // The table says what the bars said: make room for it rather than redraw above it.
            let _ = multi.clear();
            let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
            for bar in bars.values() {
                multi.remove(bar);
            }
        }
        if self.mode == Mode::Json {
            for row in rows {
                self.json(&serde_json::json!({
                    "event": "summary", "host": row.host, "outcome": row.outcome,
                    "release": row.release, "sha": row.sha,
                    "seconds": row.elapsed.as_secs_f64(), "message": row.message,
                }));
            }
            return;
        }
        let headers = ["HOST", "OUTCOME", "RELEASE", "SHA", "TIME", "MESSAGE"];
        let cells: Vec<[String; 6]> = rows
            .iter()
            .map(|r| {
                [
                    r.host.clone(),
                    r.outcome.clone(),
                    r.release.clone(),
                    r.sha.clone(),
                    pmfleet_shared::display::seconds(r.elapsed),
                    r.message.clone(),
                ]
            })
            .collect();
        let mut text = format!("\n{title}\n");
        text.push_str(&table(&headers, &cells));
        self.print_block(&text);
    }

    /// Prints a block of text as is (listings, tables).
    pub fn print_block(&self, text: &str) {
        if let Some(multi) = &self.multi {
            multi.suspend(|| self.print(text));
        } else {
            self.print(text);
        }
    }

    fn println(&self, line: &str) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(redact(line));
            }
            None => self.print(&format!("{line}\n")),
        }
    }

    fn json(&self, value: &serde_json::Value) {
        self.print(&format!("{value}\n"));
    }

    fn print(&self, text: &str) {
        let text = &*redact(text);
        match &self.captured {
            Some(captured) => captured
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(text),
            None => print_stdout(text),
        }
    }

    fn bar(&self, host: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.entry(host.to_string())
            .or_insert_with(|| {
                let bar = ProgressBar::new_spinner().with_prefix(redact(host).into_owned());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                match &self.multi {
                    Some(multi) => multi.add(bar),
                    None => bar,
                }
            })
            .clone()
    }

    fn clear_bars(&self) {
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        for bar in bars.values() {
            if !bar.is_finished() {
                bar.finish();
            }
        }
    }
}

fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Left-aligned columns separated by two spaces: the one table renderer, shared with the agent's
/// CLI.
pub use pmfleet_shared::display::table;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "BB"],
            &[
                ["xxx".to_string(), "y".to_string()],
                ["z".to_string(), "".to_string()],
            ],
        );
        assert_eq!(t, "A    BB\nxxx  y\nz\n");
    }
}
