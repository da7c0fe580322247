//! Drawing a [`Monit`] with ratatui, PM2's monit layout made for a fleet: the process list
//! (host, app, instance, status, CPU and memory with sparklines of their recent values,
//! restarts, uptime, pid), beside it the selected app's metadata and its own metrics, below
//! them its log lines, then a bar per host (load, memory, disk) and the status line (keys, a
//! confirmation, the last outcome). `l` gives the log lines the whole screen.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row as TableRow, Table, TableState, Wrap};

use super::model::{Mode, Monit, Reach};
use crate::display;
use crate::protocol::{ProcessInfo, Status};

/// The keys, as the status line lists them.
pub const KEYS: &str = "↑↓ select  / filter  r restart  R reload  s stop  l logs  q quit";

/// Draw the whole screen.
pub fn draw(frame: &mut Frame<'_>, m: &Monit) {
    let area = frame.area();
    if m.mode == Mode::Logs {
        let [head, body, foot] = split_v(
            area,
            [
                Constraint::Length(1),
                Constraint::Min(3),
                Constraint::Length(1),
            ],
        );
        frame.render_widget(Paragraph::new(header(m)), head);
        logs(frame, m, body);
        frame.render_widget(Paragraph::new(status_line(m)), foot);
        return;
    }
    let bar_height = (m.hosts.len().min(6) as u16).saturating_add(2);
    let [head, main, log, bar, foot] = split_v(
        area,
        [
            Constraint::Length(1),
            Constraint::Min(6),
            Constraint::Length(9),
            Constraint::Length(bar_height),
            Constraint::Length(1),
        ],
    );
    frame.render_widget(Paragraph::new(header(m)), head);
    let [list, meta] = split_h(
        main,
        [Constraint::Percentage(68), Constraint::Percentage(32)],
    );
    processes(frame, m, list);
    metadata(frame, m, meta);
    logs(frame, m, log);
    host_bar(frame, m, bar);
    frame.render_widget(Paragraph::new(status_line(m)), foot);
}

fn split_v<const N: usize>(area: Rect, c: [Constraint; N]) -> [Rect; N] {
    Layout::default()
        .direction(Direction::Vertical)
        .constraints(c)
        .areas(area)
}

fn split_h<const N: usize>(area: Rect, c: [Constraint; N]) -> [Rect; N] {
    Layout::default()
        .direction(Direction::Horizontal)
        .constraints(c)
        .areas(area)
}

fn header(m: &Monit) -> Line<'static> {
    let (up, all) = m.answering();
    let refresh = m
        .refresh_period()
        .map_or("-".to_string(), |p| format!("{:.1}s", p.as_secs_f64()));
    let mut spans = vec![
        Span::styled(
            " pmfleet monit ",
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(" hosts {up}/{all} answering  refresh {refresh}")),
    ];
    if !m.filter.is_empty() {
        spans.push(Span::raw(format!("  filter: {}", m.filter)));
    }
    Line::from(spans)
}

fn status_line(m: &Monit) -> Line<'static> {
    match &m.mode {
        Mode::Filtering(text) => Line::from(format!(
            " filter (host or app): {text}_   Enter apply, Esc clear"
        )),
        Mode::Confirm(p) => {
            let host = m.hosts.get(p.host).map_or("?", |h| h.name.label.as_str());
            Line::from(Span::styled(
                format!(" {} {} on {host}? [y/N]", p.verb.word(), p.app),
                Style::default()
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
            ))
        }
        _ => match &m.message {
            Some(msg) => Line::from(format!(" {msg}   |  {KEYS}")),
            None => Line::from(format!(" {KEYS}")),
        },
    }
}

/// A sparkline of `values` in at most `width` characters (the most recent ones), scaled to
/// `max` (or to the largest value when `max` is `None`).
pub fn sparkline(
    values: impl DoubleEndedIterator<Item = f64> + ExactSizeIterator,
    width: usize,
    max: Option<f64>,
) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let skip = values.len().saturating_sub(width);
    let values: Vec<f64> = values.skip(skip).collect();
    let top = max.unwrap_or_else(|| values.iter().copied().fold(0.0, f64::max));
    values
        .iter()
        .map(|v| {
            if top <= 0.0 || !v.is_finite() {
                BARS[0]
            } else {
                let at = ((v / top) * 7.0).round().clamp(0.0, 7.0) as usize;
                BARS.get(at).copied().unwrap_or(BARS[7])
            }
        })
        .collect()
}

fn status_style(s: Status) -> Style {
    match s {
        Status::Online => Style::default().fg(Color::Green),
        Status::Errored => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        Status::Stopped | Status::Stopping => Style::default().fg(Color::Yellow),
        Status::Launching | Status::Waiting => Style::default().fg(Color::Cyan),
    }
}

fn processes(frame: &mut Frame<'_>, m: &Monit, area: Rect) {
    let header = TableRow::new([
        "HOST", "APP", "#", "STATUS", "CPU", "", "MEM", "", "↺", "UPTIME", "PID",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows: Vec<TableRow<'_>> = m
        .rows()
        .into_iter()
        .map(|r| {
            let host = m
                .hosts
                .get(r.host)
                .map_or("?", |h| h.name.label.as_str())
                .to_string();
            match r.process {
                Some(p) => instance_row(m, r.host, host, p),
                None => {
                    let (word, style) = match m.hosts.get(r.host).map(|h| &h.reach) {
                        Some(Reach::Down { .. }) => (
                            "unreachable",
                            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
                        ),
                        _ => ("waiting", Style::default().fg(Color::DarkGray)),
                    };
                    TableRow::new(vec![
                        Cell::from(host),
                        Cell::from("-"),
                        Cell::from(""),
                        Cell::from(word).style(style),
                    ])
                }
            }
        })
        .collect();
    let widths = [
        Constraint::Min(10),
        Constraint::Min(8),
        Constraint::Length(2),
        Constraint::Length(11),
        Constraint::Length(5),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(3),
        Constraint::Length(7),
        Constraint::Length(7),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(" processes "))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶");
    let mut state = TableState::default().with_selected(Some(m.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn instance_row<'a>(m: &Monit, host: usize, label: String, p: &ProcessInfo) -> TableRow<'a> {
    let history = m.history(host, &p.name, p.instance);
    let cpu_line = history.map_or(String::new(), |h| {
        sparkline(h.cpu.iter().copied(), 10, Some(100.0))
    });
    let mem_line = history.map_or(String::new(), |h| {
        sparkline(h.memory.iter().copied(), 10, None)
    });
    TableRow::new(vec![
        Cell::from(label),
        Cell::from(p.name.clone()),
        Cell::from(p.instance.to_string()),
        Cell::from(p.status.to_string()).style(status_style(p.status)),
        Cell::from(p.cpu_percent.map_or("-".into(), |c| format!("{c:.0}%"))),
        Cell::from(cpu_line).style(Style::default().fg(Color::Cyan)),
        Cell::from(p.rss_bytes.map_or("-".into(), display::bytes)),
        Cell::from(mem_line).style(Style::default().fg(Color::Magenta)),
        Cell::from(p.restarts.to_string()),
        Cell::from(p.uptime_ms.map_or("-".into(), display::uptime)),
        Cell::from(p.pid.map_or("-".into(), |p| p.to_string())),
    ])
}

fn metadata(frame: &mut Frame<'_>, m: &Monit, area: Rect) {
    let mut lines: Vec<Line<'_>> = Vec::new();
    let field = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(
                format!("{k:<12}"),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Span::raw(v),
        ])
    };
    let rows = m.rows();
    match rows.get(m.selected) {
        Some(row) => {
            let host = m.hosts.get(row.host);
            lines.push(field(
                "host",
                host.map_or("?".into(), |h| h.name.label.clone()),
            ));
            if let Some(h) = host.filter(|h| !h.name.env.is_empty()) {
                lines.push(field("environment", h.name.env.clone()));
            }
            match (row.process, host.map(|h| &h.reach)) {
                (Some(p), _) => {
                    lines.push(field("app", format!("{} [{}]", p.name, p.instance)));
                    lines.push(field(
                        "release",
                        p.release.clone().unwrap_or_else(|| "-".into()),
                    ));
                    lines.push(field(
                        "sha",
                        p.sha
                            .clone()
                            .map_or("-".into(), |s| s.chars().take(12).collect()),
                    ));
                    lines.push(field(
                        "ref",
                        p.extra.git_ref.clone().unwrap_or_else(|| "-".into()),
                    ));
                    if let Some((who, when)) =
                        p.release.as_deref().and_then(|r| m.deployed(row.host, r))
                    {
                        lines.push(field("deployed", format!("{when} by {who}")));
                    }
                    if let Some(spec) = m.details.get(&(row.host, p.name.clone())) {
                        lines.push(field("script", spec.script.clone()));
                        lines.push(field("exec mode", spec.exec_mode.to_string()));
                        lines.push(field("interpreter", spec.program.clone()));
                        lines.push(field(
                            "port",
                            spec.port.map_or("-".into(), |p| p.to_string()),
                        ));
                        let ready = match (&spec.healthcheck, spec.wait_ready) {
                            (Some(h), _) => format!("probe {}", h.describe()),
                            (None, true) => "wait_ready (READY=1)".into(),
                            (None, false) => {
                                format!("listen_timeout {} ms", spec.listen_timeout_ms)
                            }
                        };
                        lines.push(field("readiness", ready));
                    }
                    if !p.extra.app_metrics.is_empty() {
                        lines.push(Line::from(Span::styled(
                            "app metrics",
                            Style::default().add_modifier(Modifier::UNDERLINED),
                        )));
                        for (k, v) in &p.extra.app_metrics {
                            lines.push(field(k, format!("{v}")));
                        }
                    }
                }
                (None, Some(Reach::Down { error, since })) => {
                    lines.push(field(
                        "state",
                        format!("unreachable for {}", display::seconds(since.elapsed())),
                    ));
                    lines.push(Line::from(error.clone()));
                }
                (None, _) => lines.push(field("state", "waiting for its first answer".into())),
            }
        }
        None => lines.push(Line::from("no host or app matches the filter")),
    }
    let p = Paragraph::new(lines)
        .wrap(Wrap { trim: true })
        .block(Block::default().borders(Borders::ALL).title(" metadata "));
    frame.render_widget(p, area);
}

fn logs(frame: &mut Frame<'_>, m: &Monit, area: Rect) {
    let title = match &m.logs_for {
        Some((h, app)) => format!(
            " logs: {app} on {} ",
            m.hosts.get(*h).map_or("?", |h| h.name.label.as_str())
        ),
        None => " logs ".to_string(),
    };
    let height = usize::from(area.height.saturating_sub(2));
    let skip = m.logs.len().saturating_sub(height);
    let lines: Vec<Line<'_>> = m
        .logs
        .iter()
        .skip(skip)
        .map(|l| Line::from(l.as_str()))
        .collect();
    let p = Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(p, area);
}

fn host_bar(frame: &mut Frame<'_>, m: &Monit, area: Rect) {
    let height = usize::from(area.height.saturating_sub(2)).max(1);
    // Keep the selected row's host in view.
    let focus = m.selected_host().unwrap_or(0);
    let start = focus.saturating_sub(height.saturating_sub(1));
    let lines: Vec<Line<'_>> = m
        .hosts
        .iter()
        .enumerate()
        .skip(start)
        .take(height)
        .map(|(i, h)| {
            let name = format!("{:<16}", h.name.label);
            let marker = if i == focus { "▶ " } else { "  " };
            match &h.reach {
                Reach::Up { status, .. } => match &status.host {
                    Some(load) => Line::from(vec![
                        Span::raw(marker),
                        Span::raw(name),
                        Span::raw(format!(" load {:>5.2}/{} ", load.load1, load.cpus)),
                        meter("mem", load.memory_used()),
                        meter("disk", load.disk_used()),
                        Span::raw(format!(" agent {}", status.version)),
                    ]),
                    None => Line::from(format!(
                        "{marker}{name} agent {} (no host figures)",
                        status.version
                    )),
                },
                Reach::Down { .. } => Line::from(vec![
                    Span::raw(marker),
                    Span::raw(name),
                    Span::styled(
                        " unreachable",
                        Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
                    ),
                ]),
                Reach::Waiting => Line::from(format!("{marker}{name} waiting")),
            }
        })
        .collect();
    let p = Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" hosts "));
    frame.render_widget(p, area);
}

fn meter(label: &str, share: f64) -> Span<'static> {
    let filled = (share * 10.0).round().clamp(0.0, 10.0) as usize;
    let bar: String = "█".repeat(filled) + &"░".repeat(10 - filled);
    let color = if share > 0.9 {
        Color::Red
    } else if share > 0.75 {
        Color::Yellow
    } else {
        Color::Green
    };
    Span::styled(
        format!(" {label} {bar} {:>3.0}%", share * 100.0),
        Style::default().fg(color),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_their_top() {
        let table: [(&[f64], usize, Option<f64>, &str); 5] = [
            (&[0.0, 50.0, 100.0], 10, Some(100.0), "▁▅█"),
            (&[1.0, 2.0, 4.0], 10, None, "▃▅█"),
            (&[5.0, 1.0, 2.0, 3.0], 2, None, "▆█"),
            (&[0.0, 0.0], 5, None, "▁▁"),
            (&[200.0], 5, Some(100.0), "█"),
        ];
        for (values, width, max, want) in table {
            assert_eq!(
                sparkline(values.iter().copied(), width, max),
                want,
                "{values:?}"
            );
        }
    }
}
