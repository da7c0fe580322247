//! The agent's metrics in the Prometheus text exposition format (version 0.0.4, which
//! OpenMetrics scrapers read too): one pure function from what the agent knows to the text
//! its metrics endpoint serves, so every name, label and value is checked by a unit test.
//!
//! Names follow Prometheus's conventions: the `pmfleet_` prefix, base units (`_seconds`,
//! `_bytes`), `_total` on counters, an `_info` gauge of 1 carrying text as labels. Every
//! instance series has the labels `host`, `app` and `app_instance` (the slot, PM2's
//! `NODE_APP_INSTANCE`; not `instance`, which Prometheus gives the scraped target). The
//! app's own metrics come out as `pmfleet_custom_<name>` with the same labels plus the ones
//! the app gave them.

use std::fmt::Write as _;

use pmfleet_shared::protocol::{ProcessInfo, Status};

/// Every status a [`Status`] can take, as the `status` label reads it.
const STATUSES: [(Status, &str); 6] = [
    (Status::Launching, "launching"),
    (Status::Online, "online"),
    (Status::Waiting, "waiting"),
    (Status::Stopping, "stopping"),
    (Status::Stopped, "stopped"),
    (Status::Errored, "errored"),
];

/// One app as the metrics see it, beyond its instances.
#[derive(Debug, Clone, PartialEq)]
pub struct AppFigures {
    pub name: String,
    /// The instance count the app is set to run.
    pub desired: u32,
}

/// Everything one exposition is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot<'a> {
    pub hostname: &'a str,
    pub version: &'a str,
    pub agent_rss_bytes: Option<u64>,
    pub agent_uptime_secs: u64,
    pub apps: &'a [AppFigures],
    pub processes: &'a [ProcessInfo],
}

/// The text a scrape gets.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut out = String::with_capacity(1024 + s.processes.len() * 900);
    let host = escape(s.hostname);

    family(
        &mut out,
        "pmfleet_agent_info",
        "gauge",
        "The agent's version (always 1).",
    );
    line(
        &mut out,
        "pmfleet_agent_info",
        &format!("host=\"{host}\",version=\"{}\"", escape(s.version)),
        1.0,
    );
    family(
        &mut out,
        "pmfleet_agent_resident_memory_bytes",
        "gauge",
        "Resident memory of the agent daemon itself.",
    );
    if let Some(rss) = s.agent_rss_bytes {
        line(
            &mut out,
            "pmfleet_agent_resident_memory_bytes",
            &format!("host=\"{host}\""),
            rss as f64,
        );
    }
    family(
        &mut out,
        "pmfleet_agent_uptime_seconds",
        "gauge",
        "Seconds since the agent daemon started.",
    );
    line(
        &mut out,
        "pmfleet_agent_uptime_seconds",
        &format!("host=\"{host}\""),
        s.agent_uptime_secs as f64,
    );

    apps(&mut out, &host, s);
    instances(&mut out, &host, s.processes);
    custom(&mut out, &host, s.processes);
    out
}

fn apps(out: &mut String, host: &str, s: &Snapshot<'_>) {
    family(
        out,
        "pmfleet_app_instances_desired",
        "gauge",
        "Instances the app is set to run.",
    );
    for app in s.apps {
        let labels = format!("host=\"{host}\",app=\"{}\"", escape(&app.name));
        line(
            out,
            "pmfleet_app_instances_desired",
            &labels,
            f64::from(app.desired),
        );
    }
    family(
        out,
        "pmfleet_app_instances_online",
        "gauge",
        "Instances of the app that are online.",
    );
    for app in s.apps {
        let labels = format!("host=\"{host}\",app=\"{}\"", escape(&app.name));
        let online = s
            .processes
            .iter()
            .filter(|p| p.name == app.name && p.status == Status::Online)
            .count();
        line(out, "pmfleet_app_instances_online", &labels, online as f64);
    }
    family(
        out,
        "pmfleet_app_release_info",
        "gauge",
        "The release and commit each app's instances run (always 1).",
    );
    let mut seen: Vec<(&str, &str, &str)> = Vec::new();
    for p in s.processes {
        let release = p.release.as_deref().unwrap_or("");
        let sha = p.sha.as_deref().unwrap_or("");
        if seen.contains(&(p.name.as_str(), release, sha)) {
            continue;
        }
        seen.push((p.name.as_str(), release, sha));
        let labels = format!(
            "host=\"{host}\",app=\"{}\",release=\"{}\",sha=\"{}\"",
            escape(&p.name),
            escape(release),
            escape(sha)
        );
        line(out, "pmfleet_app_release_info", &labels, 1.0);
    }
}

fn instances(out: &mut String, host: &str, processes: &[ProcessInfo]) {
    let labels = |p: &ProcessInfo| {
        format!(
            "host=\"{host}\",app=\"{}\",app_instance=\"{}\"",
            escape(&p.name),
            p.instance
        )
    };
    let bool_value = |b: bool| if b { 1.0 } else { 0.0 };
    type Figure = fn(&ProcessInfo) -> Option<f64>;
    let series: [(&str, &str, &str, Figure); 6] = [
        (
            "pmfleet_instance_up",
            "gauge",
            "1 when the instance has a running process.",
            |p| Some(if p.pid.is_some() { 1.0 } else { 0.0 }),
        ),
        (
            "pmfleet_instance_ready",
            "gauge",
            "1 when the instance is online (it passed its readiness check).",
            |p| Some(if p.status == Status::Online { 1.0 } else { 0.0 }),
        ),
        (
            "pmfleet_instance_cpu_seconds_total",
            "counter",
            "CPU time of the instance's process tree since its process started.",
            |p| p.extra.cpu_seconds,
        ),
        (
            "pmfleet_instance_resident_memory_bytes",
            "gauge",
            "Resident memory of the instance's process tree.",
            |p| p.rss_bytes.map(|b| b as f64),
        ),
        (
            "pmfleet_instance_restarts_total",
            "counter",
            "Restarts of the instance since it was started.",
            |p| Some(f64::from(p.restarts)),
        ),
        (
            "pmfleet_instance_uptime_seconds",
            "gauge",
            "Seconds since the instance's current process started.",
            |p| p.uptime_ms.map(|ms| ms as f64 / 1000.0),
        ),
    ];
    for (name, kind, help, figure) in series {
        family(out, name, kind, help);
        for p in processes {
            if let Some(v) = figure(p) {
                line(out, name, &labels(p), v);
            }
        }
    }
    family(
        out,
        "pmfleet_instance_status",
        "gauge",
        "1 for the status the instance is in, 0 for the others.",
    );
    for p in processes {
        for (status, word) in STATUSES {
            let l = format!("{},status=\"{word}\"", labels(p));
            line(
                out,
                "pmfleet_instance_status",
                &l,
                bool_value(p.status == status),
            );
        }
    }
}

/// The app's own metrics: a key is a name, optionally followed by the app's labels
/// (`jobs_total{queue="a"}`), as [`crate::app_metrics`] keeps them.
fn custom(out: &mut String, host: &str, processes: &[ProcessInfo]) {
    let mut families: Vec<String> = Vec::new();
    for p in processes {
        for key in p.extra.app_metrics.keys() {
            let (name, _) = split_key(key);
            let name = format!("pmfleet_custom_{}", sanitize(name));
            if !families.contains(&name) {
                families.push(name);
            }
        }
    }
    families.sort();
    for fam in families {
        family(
            out,
            &fam,
            "untyped",
            "A metric of the app's own, per instance.",
        );
        for p in processes {
            for (key, value) in &p.extra.app_metrics {
                let (name, extra) = split_key(key);
                if format!("pmfleet_custom_{}", sanitize(name)) != fam {
                    continue;
                }
                let mut labels = format!(
                    "host=\"{host}\",app=\"{}\",app_instance=\"{}\"",
                    escape(&p.name),
                    p.instance
                );
                if !extra.is_empty() {
                    labels.push(',');
                    labels.push_str(extra);
                }
                line(out, &fam, &labels, *value);
            }
        }
    }
}

/// `name{a="b"}` → (`name`, `a="b"`); a plain name has no labels.
fn split_key(key: &str) -> (&str, &str) {
    match key.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or(rest)),
        None => (key, ""),
    }
}

/// A metric name Prometheus accepts: `[a-zA-Z_:][a-zA-Z0-9_:]*`, anything else as `_`.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A label value as the text format writes it.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn line(out: &mut String, name: &str, labels: &str, value: f64) {
    let value = if value.is_finite() {
        format!("{value}")
    } else if value.is_nan() {
        "NaN".to_string()
    } else if value > 0.0 {
        "+Inf".to_string()
    } else {
        "-Inf".to_string()
    };
    let _ = writeln!(out, "{name}{{{labels}}} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmfleet_shared::protocol::ExecModeSpec;

    fn proc(instance: u32, status: Status) -> ProcessInfo {
        let mut p = ProcessInfo {
            id: instance,
            name: "api".into(),
            namespace: "default".into(),
            mode: ExecModeSpec::Cluster,
            instance,
            pid: (status == Status::Online).then_some(100 + instance),
            status,
            uptime_ms: Some(1500),
            restarts: 2,
            cpu_percent: Some(1.0),
            rss_bytes: Some(1 << 20),
            release: Some("r1".into()),
            sha: Some("abc".into()),
            extra: Default::default(),
        };
        p.extra.cpu_seconds = Some(0.25);
        p
    }

    fn rendered(processes: &[ProcessInfo]) -> String {
        render(&Snapshot {
            hostname: "web\"1",
            version: "0.1.0",
            agent_rss_bytes: Some(4096),
            agent_uptime_secs: 7,
            apps: &[AppFigures {
                name: "api".into(),
                desired: 2,
            }],
            processes,
        })
    }

    /// (a line the exposition must hold) for two instances, one online, one errored.
    #[test]
    fn every_series_is_named_and_labelled_as_documented() {
        let text = rendered(&[proc(0, Status::Online), proc(1, Status::Errored)]);
        let host = r#"host="web\"1""#;
        let rows = [
            format!("pmfleet_agent_info{{{host},version=\"0.1.0\"}} 1"),
            format!("pmfleet_agent_resident_memory_bytes{{{host}}} 4096"),
            format!("pmfleet_agent_uptime_seconds{{{host}}} 7"),
            format!("pmfleet_app_instances_desired{{{host},app=\"api\"}} 2"),
            format!("pmfleet_app_instances_online{{{host},app=\"api\"}} 1"),
            format!("pmfleet_app_release_info{{{host},app=\"api\",release=\"r1\",sha=\"abc\"}} 1"),
            format!("pmfleet_instance_up{{{host},app=\"api\",app_instance=\"0\"}} 1"),
            format!("pmfleet_instance_up{{{host},app=\"api\",app_instance=\"1\"}} 0"),
            format!("pmfleet_instance_ready{{{host},app=\"api\",app_instance=\"0\"}} 1"),
            format!("pmfleet_instance_ready{{{host},app=\"api\",app_instance=\"1\"}} 0"),
            format!(
                "pmfleet_instance_cpu_seconds_total{{{host},app=\"api\",app_instance=\"0\"}} 0.25"
            ),
            format!(
                "pmfleet_instance_resident_memory_bytes{{{host},app=\"api\",app_instance=\"1\"}} 1048576"
            ),
            format!("pmfleet_instance_restarts_total{{{host},app=\"api\",app_instance=\"0\"}} 2"),
            format!("pmfleet_instance_uptime_seconds{{{host},app=\"api\",app_instance=\"0\"}} 1.5"),
            format!(
                "pmfleet_instance_status{{{host},app=\"api\",app_instance=\"1\",status=\"errored\"}} 1"
            ),
            format!(
                "pmfleet_instance_status{{{host},app=\"api\",app_instance=\"1\",status=\"online\"}} 0"
            ),
            "# TYPE pmfleet_instance_cpu_seconds_total counter".to_string(),
            "# TYPE pmfleet_instance_restarts_total counter".to_string(),
            "# TYPE pmfleet_instance_resident_memory_bytes gauge".to_string(),
        ];
        for row in rows {
            assert!(text.lines().any(|l| l == row), "missing {row}\n{text}");
        }
        // One release line per (app, release, sha), however many instances run it.
        assert_eq!(text.matches("pmfleet_app_release_info{").count(), 1);
        // Every sample line is `name{labels} value`, every family has HELP and TYPE once.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = l.rsplit_once(' ').unwrap();
            assert!(series.ends_with('}'), "{l}");
            assert!(value.parse::<f64>().is_ok(), "{l}");
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
    }

    #[test]
    fn the_apps_own_metrics_are_relabelled_per_host_and_instance() {
        let mut a = proc(0, Status::Online);
        a.extra.app_metrics.insert("jobs_done".into(), 5.0);
        a.extra
            .app_metrics
            .insert("queue depth{queue=\"mail\"}".into(), 3.0);
        let mut b = proc(1, Status::Online);
        b.extra.app_metrics.insert("jobs_done".into(), 7.0);
        let text = rendered(&[a, b]);
        for row in [
            r#"pmfleet_custom_jobs_done{host="web\"1",app="api",app_instance="0"} 5"#,
            r#"pmfleet_custom_jobs_done{host="web\"1",app="api",app_instance="1"} 7"#,
            r#"pmfleet_custom_queue_depth{host="web\"1",app="api",app_instance="0",queue="mail"} 3"#,
            "# TYPE pmfleet_custom_jobs_done untyped",
        ] {
            assert!(text.lines().any(|l| l == row), "missing {row}\n{text}");
        }
        assert_eq!(text.matches("# TYPE pmfleet_custom_jobs_done").count(), 1);
    }

    #[test]
    fn names_and_values_are_made_safe() {
        let table = [
            ("jobs_done", "jobs_done"),
            ("queue.depth", "queue_depth"),
            ("9lives", "_9lives"),
            ("", "_"),
            ("a:b", "a:b"),
        ];
        for (name, want) in table {
            assert_eq!(sanitize(name), want, "{name}");
        }
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut s = String::new();
        line(&mut s, "x", "", f64::INFINITY);
        line(&mut s, "x", "", f64::NAN);
        assert_eq!(s, "x{} +Inf\nx{} NaN\n");
    }
}
