//! The dashboard's pages as HTML, from what the hosts last answered and the history — pure
//! functions, so what each page shows is tested without a browser: the fleet (hosts × apps,
//! coloured by state, unreachable hosts visible), an app (its instances on every host, CPU
//! and memory over time, live logs, actions), a host, and the deploy history per environment.
//! Every value is escaped; no environment value of an app is ever in a page (the agents send
//! none to remote clients, and no page shows one).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use pmfleet_shared::display;
use pmfleet_shared::protocol::{AgentStatus, ProcessInfo, Status};

use super::charts::{self, Series};
use super::store::{Rollout, Sample};

/// A host as the dashboard knows it.
#[derive(Debug, Clone)]
pub struct HostState {
    pub label: String,
    pub env: String,
    /// `None` until it first answers; then its last answer, or why it gave none.
    pub answer: Option<Result<AgentStatus, String>>,
}

pub use pmfleet_shared::display::html_escape as escape;

/// `s` percent-encoded for a path segment or a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A whole page around `body`; `refresh` reloads it every so many seconds.
pub fn layout(title: &str, body: &str, refresh: Option<u32>) -> String {
    let refresh = refresh.map_or(String::new(), |s| {
        format!(r#"<meta http-equiv="refresh" content="{s}">"#)
    });
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh}<title>{} · pmfleet</title><link rel="stylesheet" href="/dashboard.css"><script src="/dashboard.js" defer></script></head><body><nav><a href="/">fleet</a> <a href="/history">deploy history</a></nav><h1>{}</h1>{body}</body></html>"#,
        escape(title),
        escape(title)
    )
}

/// The state of `app` on a host, from its instances: (word, CSS class, online, total).
pub fn app_state(instances: &[&ProcessInfo]) -> (&'static str, &'static str, usize, usize) {
    let total = instances.len();
    let online = instances
        .iter()
        .filter(|p| p.status == Status::Online)
        .count();
    let (word, class) = if total == 0 {
        ("-", "none")
    } else if instances.iter().any(|p| p.status == Status::Errored) {
        ("errored", "bad")
    } else if online == total {
        ("online", "ok")
    } else if online == 0 && instances.iter().all(|p| p.status == Status::Stopped) {
        ("stopped", "warn")
    } else {
        ("partial", "warn")
    };
    (word, class, online, total)
}

/// Every app name any host runs, sorted.
pub fn app_names(hosts: &[HostState]) -> Vec<String> {
    let names: BTreeSet<&str> = hosts
        .iter()
        .filter_map(|h| h.answer.as_ref()?.as_ref().ok())
        .flat_map(|s| s.processes.iter().map(|p| p.name.as_str()))
        .collect();
    names.into_iter().map(str::to_string).collect()
}

/// The fleet: one row per host, one column per app.
pub fn fleet(hosts: &[HostState]) -> String {
    let apps = app_names(hosts);
    let mut body = String::from(
        r#"<table class="grid" id="fleet"><tr><th>host</th><th>environment</th><th>agent</th>"#,
    );
    for app in &apps {
        let _ = write!(
            body,
            r#"<th><a href="/app/{}">{}</a></th>"#,
            encode(app),
            escape(app)
        );
    }
    body.push_str("</tr>");
    for (i, h) in hosts.iter().enumerate() {
        let _ = write!(
            body,
            r#"<tr data-host="{}"><td><a href="/host/{i}">{}</a></td><td>{}</td>"#,
            escape(&h.label),
            escape(&h.label),
            escape(&h.env)
        );
        let span = apps.len() + 1;
        match &h.answer {
            None => {
                let _ = write!(
                    body,
                    r#"<td class="none" colspan="{span}" data-state="waiting">waiting for an answer</td>"#
                );
            }
            Some(Err(e)) => {
                let _ = write!(
                    body,
                    r#"<td class="down" colspan="{span}" data-state="unreachable">unreachable: {}</td>"#,
                    escape(e)
                );
            }
            Some(Ok(status)) => {
                let _ = write!(body, "<td>{}</td>", escape(&status.version));
                for app in &apps {
                    let instances: Vec<&ProcessInfo> =
                        status.processes.iter().filter(|p| &p.name == app).collect();
                    let (word, class, online, total) = app_state(&instances);
                    let text = if total == 0 {
                        String::new()
                    } else {
                        format!("{word} {online}/{total}")
                    };
                    let _ = write!(
                        body,
                        r#"<td class="{class}" data-app="{}" data-state="{word}">{text}</td>"#,
                        escape(app)
                    );
                }
            }
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
    layout("fleet", &body, Some(2))
}

/// The instances of `app` on every host, as a table (also served alone, to refresh it).
pub fn instances(app: &str, hosts: &[HostState]) -> String {
    let mut t = String::from(
        "<table><tr><th>host</th><th>#</th><th>status</th><th>CPU</th><th>memory</th><th>restarts</th><th>uptime</th><th>pid</th><th>release</th><th>its own metrics</th></tr>",
    );
    for h in hosts {
        let Some(Ok(status)) = &h.answer else {
            if let Some(Err(e)) = &h.answer {
                let _ = write!(
                    t,
                    r#"<tr class="down"><td>{}</td><td colspan="9">unreachable: {}</td></tr>"#,
                    escape(&h.label),
                    escape(e)
                );
            }
            continue;
        };
        for p in status.processes.iter().filter(|p| p.name == app) {
            let class = match p.status {
                Status::Online => "ok",
                Status::Errored => "bad",
                _ => "warn",
            };
            let _ = write!(
                t,
                r#"<tr data-host="{}" data-instance="{}"><td>{}</td><td>{}</td><td class="{class}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="pid">{}</td><td>{}</td><td class="metrics">{}</td></tr>"#,
                escape(&h.label),
                p.instance,
                escape(&h.label),
                p.instance,
                escape(&p.status.to_string()),
                p.cpu_percent.map_or("-".into(), |c| format!("{c:.0}%")),
                p.rss_bytes.map_or("-".into(), display::bytes),
                p.restarts,
                p.uptime_ms.map_or("-".into(), display::uptime),
                p.pid.map_or("-".into(), |p| p.to_string()),
                escape(p.release.as_deref().unwrap_or("-")),
                escape(&own_metrics(p)),
            );
        }
    }
    t.push_str("</table>");
    t
}

/// The app's own metrics of an instance, as `name=value` pairs.
pub fn own_metrics(p: &ProcessInfo) -> String {
    p.extra
        .app_metrics
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An app: its instances, its actions per host (only `verbs`, those the session may use),
/// charts from `samples`, live logs.
pub fn app(
    name: &str,
    hosts: &[HostState],
    samples: &[Sample],
    csrf: &str,
    verbs: &[&str],
    message: Option<&str>,
) -> String {
    let mut body = String::new();
    if let Some(m) = message {
        let _ = write!(body, r#"<p class="message" id="message">{}</p>"#, escape(m));
    }
    let _ = write!(
        body,
        r#"<div id="instances" data-src="/app/{}/instances">{}</div>"#,
        encode(name),
        instances(name, hosts)
    );
    body.push_str("<h2>actions</h2>");
    if verbs.is_empty() {
        body.push_str(
            r#"<p class="note" id="no-actions">the certificate this browser signed in with may look but not act (see <code>pmfleet ca issue --role</code>)</p>"#,
        );
    }
    for (i, h) in hosts.iter().enumerate() {
        let runs = matches!(&h.answer, Some(Ok(s)) if s.processes.iter().any(|p| p.name == name));
        if !runs || verbs.is_empty() {
            continue;
        }
        let _ = write!(
            body,
            r#"<div class="actions" data-host="{}">{}: "#,
            escape(&h.label),
            escape(&h.label)
        );
        for verb in ["reload", "restart", "stop"] {
            if !verbs.contains(&verb) {
                continue;
            }
            let _ = write!(
                body,
                r#"<form method="post" action="/action" data-confirm="{verb} {} on {}?"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="host" value="{i}"><input type="hidden" name="app" value="{}"><input type="hidden" name="verb" value="{verb}"><button type="submit" id="{verb}-{i}">{verb}</button></form>"#,
                escape(name),
                escape(&h.label),
                escape(name),
            );
        }
        if verbs.contains(&"scale") {
            let _ = write!(
                body,
                r#"<form method="post" action="/action" data-confirm="scale {} on {}?"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="host" value="{i}"><input type="hidden" name="app" value="{}"><input type="hidden" name="verb" value="scale"><input name="instances" id="instances-{i}" size="4" placeholder="N, +N, -N, max"><button type="submit" id="scale-{i}">scale</button></form>"#,
                escape(name),
                escape(&h.label),
                escape(name),
            );
        }
        body.push_str("</div>");
    }
    body.push_str("<h2>CPU and memory</h2>");
    let mut cpu: Vec<Series> = Vec::new();
    let mut mem: Vec<Series> = Vec::new();
    for s in samples {
        let key = format!("{} {}[{}]", s.host, s.app, s.instance);
        let line = |list: &mut Vec<Series>, v: f64| match list.iter_mut().find(|l| l.name == key) {
            Some(l) => l.points.push((s.at, v)),
            None => list.push(Series {
                name: key.clone(),
                points: vec![(s.at, v)],
            }),
        };
        line(&mut cpu, s.cpu.unwrap_or(0.0));
        line(&mut mem, s.rss.map_or(0.0, |b| b as f64));
    }
    body.push_str(&charts::svg("CPU %", &cpu, |v| format!("{v:.0}%")));
    body.push_str(&charts::svg("memory", &mem, |v| display::bytes(v as u64)));
    body.push_str("<h2>logs</h2>");
    for (i, h) in hosts.iter().enumerate() {
        let runs = matches!(&h.answer, Some(Ok(s)) if s.processes.iter().any(|p| p.name == name));
        if runs {
            let _ = write!(
                body,
                r#"<h3>{}</h3><pre class="logs" id="logs-{i}" data-src="/logs/{i}/{}"></pre>"#,
                escape(&h.label),
                encode(name)
            );
        }
    }
    layout(name, &body, None)
}

/// A host: its figures, its deploy roots and their last rollout, its apps.
pub fn host(h: &HostState) -> String {
    let mut body = format!("<p>environment {}</p>", escape(&h.env));
    match &h.answer {
        None => body.push_str("<p>waiting for an answer</p>"),
        Some(Err(e)) => {
            let _ = write!(body, r#"<p class="down">unreachable: {}</p>"#, escape(e));
        }
        Some(Ok(s)) => {
            let _ = write!(
                body,
                "<p>agent {} on {}, up {}</p>",
                escape(&s.version),
                escape(&s.hostname),
                display::uptime(s.uptime_secs.saturating_mul(1000))
            );
            if let Some(load) = &s.host {
                let _ = write!(
                    body,
                    r#"<p id="load">load {:.2} over {} CPUs · memory {:.0}% used · disk {:.0}% used</p>"#,
                    load.load1,
                    load.cpus,
                    load.memory_used() * 100.0,
                    load.disk_used() * 100.0
                );
            }
            body.push_str("<h2>deploy roots</h2><table><tr><th>path</th><th>current</th><th>last rollout</th></tr>");
            for root in &s.roots {
                let rollout = root.rollout.as_ref().map_or("-".to_string(), |r| {
                    format!(
                        "{} of {} by {}, {} ({})",
                        r.action, r.release, r.who, r.started, r.state
                    )
                });
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&root.path.display().to_string()),
                    escape(root.current.as_deref().unwrap_or("-")),
                    escape(&rollout)
                );
            }
            body.push_str("</table><h2>apps</h2><ul>");
            let mut names: Vec<&str> = s.processes.iter().map(|p| p.name.as_str()).collect();
            names.dedup();
            for n in names {
                let _ = write!(
                    body,
                    r#"<li><a href="/app/{}">{}</a></li>"#,
                    encode(n),
                    escape(n)
                );
            }
            body.push_str("</ul>");
        }
    }
    layout(&h.label, &body, Some(5))
}

/// One rollout across its hosts, for the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRow {
    pub id: String,
    pub action: String,
    pub who: String,
    pub started: String,
    pub release: String,
    pub hosts: Vec<String>,
    /// `finished` once every host's record says so.
    pub state: String,
    /// From the start to the last host's finish.
    pub duration: Option<String>,
}

/// The records of each host, one row per rollout (they share its id), latest first.
pub fn rollout_rows(records: &[Rollout]) -> Vec<RolloutRow> {
    let mut rows: Vec<RolloutRow> = Vec::new();
    let mut finishes: Vec<Vec<Option<String>>> = Vec::new();
    for r in records {
        match rows.iter().position(|row| row.id == r.id) {
            Some(at) => {
                if let Some(row) = rows.get_mut(at) {
                    row.hosts.push(r.host.clone());
                }
                if let Some(f) = finishes.get_mut(at) {
                    f.push(r.finished.clone());
                }
            }
            None => {
                rows.push(RolloutRow {
                    id: r.id.clone(),
                    action: r.action.clone(),
                    who: r.who.clone(),
                    started: r.started.clone(),
                    release: r.release.clone(),
                    hosts: vec![r.host.clone()],
                    state: String::new(),
                    duration: None,
                });
                finishes.push(vec![r.finished.clone()]);
            }
        }
    }
    for (row, f) in rows.iter_mut().zip(&finishes) {
        let all_done = f.iter().all(Option::is_some);
        row.state = if all_done {
            "finished"
        } else {
            "running or interrupted"
        }
        .to_string();
        let last = f.iter().flatten().max();
        row.duration = match (all_done, last) {
            (true, Some(end)) => seconds_between(&row.started, end).map(|s| format!("{s}s")),
            _ => None,
        };
        row.hosts.sort();
    }
    rows.sort_by(|a, b| b.started.cmp(&a.started));
    rows
}

fn seconds_between(start: &str, end: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let a = time::OffsetDateTime::parse(start, &Rfc3339).ok()?;
    let b = time::OffsetDateTime::parse(end, &Rfc3339).ok()?;
    Some((b - a).whole_seconds())
}

/// The deploy history of each environment.
pub fn history(envs: &[(String, Vec<Rollout>)]) -> String {
    let mut body = String::new();
    for (env, records) in envs {
        let _ = write!(
            body,
            r#"<h2>{}</h2><table class="history" data-env="{}"><tr><th>started</th><th>action</th><th>who</th><th>release</th><th>hosts</th><th>outcome</th><th>duration</th></tr>"#,
            escape(env),
            escape(env)
        );
        for r in rollout_rows(records) {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.started),
                escape(&r.action),
                escape(&r.who),
                escape(&r.release),
                escape(&r.hosts.join(", ")),
                escape(&r.state),
                escape(r.duration.as_deref().unwrap_or("-")),
            );
        }
        body.push_str("</table>");
    }
    layout("deploy history", &body, Some(10))
}

#[cfg(test)]
mod tests;
