//! `logs [app|id|all]`: as in PM2, the last lines and then every new line until Ctrl-C (or
//! until whoever reads the output stops: `logs | head` ends quietly); `--nostream` prints the
//! last lines and exits. `--err`/`--out` keep one stream, `--json` prints one object a line.

use std::io::Write;
use std::process::ExitCode;

use pmfleet_shared::protocol::{LogLine, Request, Response};

use super::print;
use crate::client::Client;
use crate::home::AgentHome;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// An app, an id, or `all` (the default).
    pub app: Option<String>,
    /// Lines of history first.
    #[arg(long, default_value_t = 15)]
    pub lines: usize,
    /// Print the last lines and exit instead of streaming.
    #[arg(long)]
    pub nostream: bool,
    /// Stream new lines (the default; kept for scripts written before it was).
    #[arg(short, long, hide = true)]
    pub follow: bool,
    /// Only the apps' stderr.
    #[arg(long, conflicts_with = "out")]
    pub err: bool,
    /// Only the apps' stdout.
    #[arg(long)]
    pub out: bool,
    /// One JSON object per line: `{"app", "file", "line"}`.
    #[arg(long)]
    pub json: bool,
}

/// Which stream a log file holds, by the agent's file names (`<app>-err.log`,
/// `<app>-err-<i>.log`); a custom `error_file` is told by `err_files`.
pub fn is_err(file: &str, err_files: &[String]) -> bool {
    if err_files.iter().any(|f| f == file) {
        return true;
    }
    let stem = file.strip_suffix(".log").unwrap_or(file);
    let stem = match stem.rsplit_once('-') {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => stem,
    };
    stem.ends_with("-err")
}

pub async fn run(home: &AgentHome, a: LogsArgs, app: Option<String>) -> anyhow::Result<ExitCode> {
    let mut err_files = Vec::new();
    if a.err || a.out {
        let mut c = Client::connect(home, true).await?;
        if let Some(name) = &app
            && let Response::App { app } = c.request(&Request::Show { app: name.clone() }).await?
        {
            err_files = app
                .err_logs
                .iter()
                .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                .collect();
        }
    }
    let mut c = Client::connect(home, true).await?;
    let request = Request::Logs {
        app,
        lines: a.lines,
        follow: !a.nostream,
    };
    let mut resp = c.request(&request).await?;
    let mut stdout = std::io::stdout();
    loop {
        match resp {
            Response::Log(l) => {
                let keep = match (a.err, a.out) {
                    (true, _) => is_err(&l.file, &err_files),
                    (_, true) => !is_err(&l.file, &err_files),
                    _ => true,
                };
                if keep
                    && writeln!(stdout, "{}", line(&l, a.json))
                        .and_then(|()| stdout.flush())
                        .is_err()
                {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Response::End => return Ok(ExitCode::SUCCESS),
            other => return Ok(print::response(other, a.json)),
        }
        resp = match c.next().await? {
            Some(r) => r,
            None => return Ok(ExitCode::SUCCESS),
        };
    }
}

/// `api-out-0 | listening on 3000`, or the line as JSON.
fn line(l: &LogLine, json: bool) -> String {
    if json {
        return serde_json::to_string(l).unwrap_or_default();
    }
    let file = l.file.strip_suffix(".log").unwrap_or(&l.file);
    format!("{file} | {}", l.line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_told_by_file() {
        assert!(is_err("api-err.log", &[]));
        assert!(is_err("api-err-1.log", &[]));
        assert!(!is_err("api-out-1.log", &[]));
        assert!(is_err("errors.log", &["errors.log".to_string()]));
        assert!(!is_err("my-errand-out.log", &[]));
        assert!(is_err("my-errand-err-2.log", &[]));
    }
}
