//! The fleet table `pmfleet status` prints: by default one narrow row per host and app that
//! fits [`WIDTH`] columns, with the errors of unreachable hosts below it; with `--wide`,
//! every column. Rows of errored apps and unreachable hosts stand out in colour, stopped or
//! partly online apps too.

use pmfleet_shared::cli::colour::{Palette, Tone};
use pmfleet_shared::display;

use super::{AppRow, HostStatus, WIDTH, app_rows};
use crate::deploy::revision::short_sha;
use crate::output::table;

/// The fleet table: by default one narrow row per host and app (fitting [`WIDTH`]) and the
/// errors of unreachable hosts below it; `wide`, every column. Rows of errored apps and
/// unreachable hosts stand out in colour, stopped or partly online apps too.
pub fn render(hosts: &[HostStatus], wide: bool, palette: Palette) -> String {
    if wide {
        return render_wide(hosts, palette);
    }
    let mut rows: Vec<[String; 10]> = Vec::new();
    let mut tones = Vec::new();
    let mut notes = String::new();
    let dash = || "-".to_string();
    for h in hosts {
        let Some(agent) = &h.agent else {
            let state = if h.reachable { "error" } else { "unreachable" };
            rows.push([
                h.env.clone(),
                h.host.clone(),
                dash(),
                dash(),
                state.to_string(),
                dash(),
                dash(),
                dash(),
                dash(),
                dash(),
            ]);
            tones.push(Some(Tone::Bad));
            notes.push_str(&format!(
                "{}: {state}: {}\n",
                h.host,
                h.error.as_deref().unwrap_or("no answer")
            ));
            continue;
        };
        let apps = app_rows(agent);
        if apps.is_empty() {
            let mut row: [String; 10] = Default::default();
            row[0] = h.env.clone();
            row[1] = h.host.clone();
            row[2] = "(no apps)".into();
            rows.push(row);
            tones.push(None);
        }
        for app in apps {
            let (word, tone) = health(&app);
            rows.push([
                h.env.clone(),
                h.host.clone(),
                app.name.clone(),
                app.mode.clone(),
                format!("{}/{} {word}", app.online, app.total),
                app.cpu_percent
                    .map(|c| format!("{c:.0}%"))
                    .unwrap_or_else(dash),
                app.rss_bytes.map(display::bytes).unwrap_or_else(dash),
                app.restarts.to_string(),
                app.uptime_ms.map(display::uptime).unwrap_or_else(dash),
                app.sha
                    .as_deref()
                    .map(|s| short_sha(s).to_string())
                    .unwrap_or_else(dash),
            ]);
            tones.push(tone);
        }
    }
    let headers = [
        "ENV", "HOST", "APP", "MODE", "STATUS", "CPU", "MEM", "↺", "UPTIME", "SHA",
    ];
    let rows = display::fit(&headers, &rows, WIDTH, &[0, 1, 2]);
    let mut out = palette.rows(&table(&headers, &rows), &tones);
    out.push_str(&notes);
    out
}

/// What an app's instances add up to, and whether its row should stand out.
fn health(app: &AppRow) -> (&'static str, Option<Tone>) {
    if app.total > 0 && app.online == app.total {
        ("online", None)
    } else if app.errored > 0 {
        ("errored", Some(Tone::Bad))
    } else if app.online == 0 {
        ("stopped", Some(Tone::Warn))
    } else {
        ("degraded", Some(Tone::Warn))
    }
}

/// `--wide`: every column, errors in the last.
fn render_wide(hosts: &[HostStatus], palette: Palette) -> String {
    let mut rows: Vec<[String; 12]> = Vec::new();
    let mut tones = Vec::new();
    for h in hosts {
        let Some(agent) = &h.agent else {
            let state = if h.reachable { "error" } else { "unreachable" };
            rows.push(row_with([
                (0, h.env.clone()),
                (1, h.host.clone()),
                (2, state.to_string()),
                (11, h.error.clone().unwrap_or_default()),
            ]));
            tones.push(Some(Tone::Bad));
            continue;
        };
        let version = format!("agent {}", agent.version);
        let apps = app_rows(agent);
        if apps.is_empty() {
            rows.push(row_with([
                (0, h.env.clone()),
                (1, h.host.clone()),
                (2, version.clone()),
                (5, "(no apps)".to_string()),
            ]));
            tones.push(None);
        }
        let dash = || "-".to_string();
        for app in apps {
            tones.push(health(&app).1);
            rows.push([
                h.env.clone(),
                h.host.clone(),
                version.clone(),
                app.release.clone().unwrap_or_else(dash),
                app.sha
                    .as_deref()
                    .map(|s| short_sha(s).to_string())
                    .unwrap_or_else(dash),
                app.name.clone(),
                app.mode.clone(),
                format!("{}/{}", app.online, app.total),
                app.cpu_percent
                    .map(|c| format!("{c:.1}%"))
                    .unwrap_or_else(dash),
                app.rss_bytes.map(display::bytes).unwrap_or_else(dash),
                app.restarts.to_string(),
                app.uptime_ms.map(display::uptime).unwrap_or_else(dash),
            ]);
        }
    }
    let t = table(
        &[
            "ENV", "HOST", "AGENT", "RELEASE", "SHA", "APP", "MODE", "ONLINE", "CPU", "MEM",
            "RESTARTS", "UPTIME",
        ],
        &rows,
    );
    palette.rows(&t, &tones)
}

/// A table row with only the given columns filled.
fn row_with<const N: usize>(cells: [(usize, String); N]) -> [String; 12] {
    let mut row: [String; 12] = Default::default();
    for (column, text) in cells {
        if let Some(cell) = row.get_mut(column) {
            *cell = text;
        }
    }
    row
}
