//! What `list`, `show` and the verbs print for a person: the process table (errored and
//! stopped rows stand out in colour on a terminal), an app's details, the agent's answers.

use std::path::PathBuf;
use std::process::ExitCode;

use pmfleet_shared::cli::colour::{Palette, Tone, status_tone};
use pmfleet_shared::cli::error;
use pmfleet_shared::display;
use pmfleet_shared::protocol::{AppDetail, ApplyReport, ErrorKind, ProcessInfo, Response};

/// The process table: one row per instance.
pub fn table(procs: &[ProcessInfo], palette: Palette) -> String {
    let header = [
        "id", "name", "mode", "pid", "uptime", "↺", "status", "cpu", "mem",
    ];
    let rows: Vec<[String; 9]> = procs
        .iter()
        .map(|p| {
            [
                p.id.to_string(),
                p.name.clone(),
                p.mode.to_string(),
                p.pid.map_or("-".into(), |p| p.to_string()),
                p.uptime_ms.map_or("-".into(), display::uptime),
                p.restarts.to_string(),
                p.status.to_string(),
                p.cpu_percent.map_or("-".into(), |c| format!("{c:.0}%")),
                p.rss_bytes.map_or("-".into(), display::bytes),
            ]
        })
        .collect();
    let tones: Vec<Option<Tone>> = procs.iter().map(|p| status_tone(p.status)).collect();
    let mut out = palette.rows(&display::table(&header, &rows), &tones);
    if procs.is_empty() {
        out.push_str("(no apps)\n");
    }
    out
}

/// `show <app>`: the resolved spec, then its instances.
pub fn detail(d: &AppDetail, palette: Palette) -> String {
    let s = &d.spec;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
    let cmd = std::iter::once(s.program.as_str()).chain(s.program_args.iter().map(String::as_str));
    line("name", s.name.clone());
    line("namespace", s.namespace.clone());
    line("mode", s.exec_mode.to_string());
    line("command", cmd.collect::<Vec<_>>().join(" "));
    line("cwd", s.cwd.display().to_string());
    line("instances", d.processes.len().to_string());
    if let Some(p) = s.port {
        line("port", p.to_string());
    }
    line(
        "kill",
        format!("{} after {} ms SIGKILL", s.kill_signal, s.kill_timeout_ms),
    );
    line(
        "restarts",
        format!(
            "autorestart {}, max {}, min uptime {} ms",
            s.autorestart, s.max_restarts, s.min_uptime_ms
        ),
    );
    if let Some(m) = s.max_memory_restart {
        line("memory limit", display::bytes(m));
    }
    if !s.watch.is_empty() {
        let w: Vec<_> = s.watch.iter().map(|p| p.display().to_string()).collect();
        line("watch", w.join(", "));
    }
    if let Some(cron) = &s.cron_restart {
        line("cron_restart", cron.clone());
    }
    let logs = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    line("out log", logs(&d.out_logs));
    line("err log", logs(&d.err_logs));
    out.push('\n');
    out.push_str(&table(&d.processes, palette));
    out
}

/// The short word an error kind has in `--json` output: the one the protocol uses.
pub fn kind_word(kind: ErrorKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(word)) => word,
        _ => "failed".to_owned(),
    }
}

/// Prints a verb's answer: its messages, or the error (as JSON with `json`).
pub fn response(resp: Response, json: bool) -> ExitCode {
    let warn = Palette {
        enabled: !json && Palette::stdout().enabled,
    };
    match resp {
        Response::Done { messages } => {
            for m in messages {
                if let Some(rest) = m.strip_prefix("warning: ") {
                    println!("{}", warn.paint(&format!("warning: {rest}"), Tone::Warn));
                } else {
                    println!("{m}");
                }
            }
            ExitCode::SUCCESS
        }
        Response::Error(e) => {
            error::report(json, &kind_word(e.kind), &e.message);
            ExitCode::FAILURE
        }
        Response::Pong { version, pid, .. } => {
            println!("agent {version} running as pid {pid}");
            ExitCode::SUCCESS
        }
        other => {
            error::report(
                json,
                "internal",
                &format!("unexpected answer from the agent: {other:?}"),
            );
            ExitCode::FAILURE
        }
    }
}

/// `apply`'s report.
pub fn report(report: &ApplyReport) {
    for w in &report.warnings {
        println!("warning: {w}");
    }
    for a in &report.apps {
        if a.ok {
            println!("{}", a.message);
        } else {
            eprintln!("error: {}", a.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use pmfleet_shared::protocol::{ExecModeSpec, Status};

    use super::*;

    fn proc(id: u32, status: Status) -> ProcessInfo {
        ProcessInfo {
            id,
            name: "api".into(),
            namespace: "default".into(),
            mode: ExecModeSpec::Fork,
            instance: 0,
            pid: None,
            status,
            uptime_ms: None,
            restarts: 0,
            cpu_percent: None,
            rss_bytes: None,
            release: None,
            sha: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn errored_and_stopped_rows_stand_out_on_a_terminal_only() {
        let procs = [
            proc(0, Status::Online),
            proc(1, Status::Errored),
            proc(2, Status::Stopped),
        ];
        let plain = table(&procs, Palette::plain());
        assert!(!plain.contains('\x1b'), "{plain}");
        let coloured = table(&procs, Palette { enabled: true });
        let lines: Vec<&str> = coloured.lines().collect();
        assert!(
            !lines[1].contains('\x1b'),
            "online stays plain: {:?}",
            lines[1]
        );
        assert!(lines[2].starts_with("\x1b[1;31m"), "{:?}", lines[2]);
        assert!(lines[3].starts_with("\x1b[33m"), "{:?}", lines[3]);
    }
}
