//! `pmfleet status [file] [env…]`: every host of the environments asked concurrently; one
//! table of hosts and apps. Unreachable hosts are shown, never hidden, and make the exit code
//! non-zero, as does an errored app.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pmfleet_shared::display;
use pmfleet_shared::ecosystem;
use pmfleet_shared::protocol::{AgentStatus, ExecModeSpec, Request, Response, Status};
use serde::Serialize;

use crate::agent::AgentClient;
use crate::agent::targets::{self as agents, AgentTarget};
use crate::cli::parse_duration;
use crate::deploy::Exit;
use crate::deploy::revision::short_sha;
use crate::output::table;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The words after the verb, as PM2 takes them.
    #[arg(
        value_name = "ARGS",
        help = "[ECOSYSTEM_FILE] [ENVIRONMENT…] (every environment when none is named)"
    )]
    pub words: Vec<String>,
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Redraw every 2 seconds until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// How long to wait for each host.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// What one host said (or why it said nothing).
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub env: String,
    pub host: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentStatus>,
    /// Whole days until the agent's certificate expires, as it presented it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_expires_in_days: Option<i64>,
}

/// One app on one host, instances folded together.
#[derive(Debug, Clone, Serialize)]
pub struct AppRow {
    pub name: String,
    pub mode: String,
    pub online: usize,
    pub total: usize,
    pub errored: usize,
    /// `None` until the agent has sampled the instances.
    pub cpu_percent: Option<f32>,
    pub rss_bytes: Option<u64>,
    pub restarts: u32,
    pub uptime_ms: Option<u64>,
    pub release: Option<String>,
    pub sha: Option<String>,
}

pub async fn run(args: StatusArgs) -> Exit {
    let (file, envs) = split_words(&args.words);
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let eco = match ecosystem::load_from(file.as_deref(), &cwd) {
        Ok(eco) => eco,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::BadConfig;
        }
    };
    let targets = match agents::targets(&eco, &envs) {
        Ok(t) => t,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::BadConfig;
        }
    };
    if targets.is_empty() {
        eprintln!("error: no host runs a pmfleet agent in these environments (`agent: false`?)");
        return Exit::BadConfig;
    }
    let client = match agents::client(args.timeout) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::BadConfig;
        }
    };
    loop {
        let hosts = ask_all(&client, &targets).await;
        let exit = exit_for(&hosts);
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json(&hosts)).unwrap_or_default()
            );
        } else {
            if args.watch {
                print!("\x1b[H\x1b[2J");
            }
            print!("{}", render(&hosts));
        }
        for warning in expiry_warnings(&hosts) {
            eprintln!("warning: {warning}");
        }
        if !args.watch {
            return exit;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = tokio::signal::ctrl_c() => return exit,
        }
    }
}

fn split_words(words: &[String]) -> (Option<PathBuf>, Vec<String>) {
    match words.first() {
        Some(first) if ecosystem::looks_like_ecosystem_file(first) => (
            Some(PathBuf::from(first)),
            words.iter().skip(1).cloned().collect(),
        ),
        _ => (None, words.to_vec()),
    }
}

/// Asks every agent at once.
pub async fn ask_all(client: &AgentClient, targets: &[AgentTarget]) -> Vec<HostStatus> {
    agents::each(targets, |target| {
        let client = client.clone();
        async move {
            let answer = client
                .request_with_cert(&target.host, target.port, &Request::Status, None)
                .await;
            let host = target.label();
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let days =
                |not_after: Option<i64>| not_after.map(|t| pmfleet_shared::tls::days_left(t, now));
            match answer {
                Ok((Response::Status(status), not_after)) => HostStatus {
                    env: target.env,
                    host: host.clone(),
                    reachable: true,
                    error: None,
                    agent: Some(status),
                    cert_expires_in_days: days(not_after),
                },
                Ok((other, not_after)) => HostStatus {
                    env: target.env,
                    host: host.clone(),
                    reachable: true,
                    error: Some(format!("unexpected answer: {other:?}")),
                    agent: None,
                    cert_expires_in_days: days(not_after),
                },
                Err(e) => HostStatus {
                    env: target.env,
                    reachable: !e.is_unreachable(),
                    host: host.clone(),
                    error: Some(e.to_string()),
                    agent: None,
                    cert_expires_in_days: None,
                },
            }
        }
    })
    .await
}

/// One line per host whose agent certificate expires within
/// [`pki::AGENT_RENEW_WITHIN_DAYS`](crate::pki::AGENT_RENEW_WITHIN_DAYS), saying how to renew it.
pub fn expiry_warnings(hosts: &[HostStatus]) -> Vec<String> {
    hosts
        .iter()
        .filter_map(|h| {
            let days = h.cert_expires_in_days?;
            (days < crate::pki::AGENT_RENEW_WITHIN_DAYS).then(|| {
                format!(
                    "{}: the agent's certificate expires in {days} day(s): `pmfleet deploy {} setup` renews it",
                    h.host, h.env
                )
            })
        })
        .collect()
}

/// Folds a host's instances into one row per app.
pub fn app_rows(status: &AgentStatus) -> Vec<AppRow> {
    let mut rows: BTreeMap<String, AppRow> = BTreeMap::new();
    for p in &status.processes {
        let row = rows.entry(p.name.clone()).or_insert_with(|| AppRow {
            name: p.name.clone(),
            mode: match p.mode {
                ExecModeSpec::Cluster => "cluster".into(),
                ExecModeSpec::Fork => "fork".into(),
            },
            online: 0,
            total: 0,
            errored: 0,
            cpu_percent: None,
            rss_bytes: None,
            restarts: 0,
            uptime_ms: None,
            release: p.release.clone(),
            sha: p.sha.clone(),
        });
        row.total += 1;
        match p.status {
            Status::Online => row.online += 1,
            Status::Errored => row.errored += 1,
            _ => {}
        }
        if let Some(cpu) = p.cpu_percent {
            row.cpu_percent = Some(row.cpu_percent.unwrap_or(0.0) + cpu);
        }
        if let Some(rss) = p.rss_bytes {
            row.rss_bytes = Some(row.rss_bytes.unwrap_or(0) + rss);
        }
        row.restarts += p.restarts;
        row.uptime_ms = match (row.uptime_ms, p.uptime_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    rows.into_values().collect()
}

fn exit_for(hosts: &[HostStatus]) -> Exit {
    let errored = hosts
        .iter()
        .filter_map(|h| h.agent.as_ref())
        .any(|a| a.processes.iter().any(|p| p.status == Status::Errored));
    if hosts.iter().any(|h| h.agent.is_none()) {
        Exit::Unreachable
    } else if errored {
        Exit::Failed
    } else {
        Exit::Success
    }
}

fn json(hosts: &[HostStatus]) -> serde_json::Value {
    serde_json::Value::Array(
        hosts
            .iter()
            .map(|h| {
                let mut value = serde_json::to_value(h).unwrap_or_default();
                if let (Some(agent), Some(obj)) = (&h.agent, value.as_object_mut()) {
                    obj.insert(
                        "apps".into(),
                        serde_json::to_value(app_rows(agent)).unwrap_or_default(),
                    );
                }
                value
            })
            .collect(),
    )
}

/// The fleet table.
pub fn render(hosts: &[HostStatus]) -> String {
    let mut rows: Vec<[String; 12]> = Vec::new();
    for h in hosts {
        let Some(agent) = &h.agent else {
            let state = if h.reachable { "error" } else { "unreachable" };
            rows.push(row_with([
                (0, h.env.clone()),
                (1, h.host.clone()),
                (2, state.to_string()),
                (11, h.error.clone().unwrap_or_default()),
            ]));
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
        }
        let dash = || "-".to_string();
        for app in apps {
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
    table(
        &[
            "ENV", "HOST", "AGENT", "RELEASE", "SHA", "APP", "MODE", "ONLINE", "CPU", "MEM",
            "RESTARTS", "UPTIME",
        ],
        &rows,
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(display::uptime(5_000), "5s");
        assert_eq!(display::uptime(125_000), "2m");
        assert_eq!(display::uptime(7_200_000), "2h");
        assert_eq!(display::bytes(50 * 1024 * 1024), "50.0 MiB");
    }

    #[test]
    fn unreachable_hosts_are_rows_and_fail_the_exit_code() {
        let hosts = vec![HostStatus {
            env: "production".into(),
            host: "web1".into(),
            reachable: false,
            error: Some("connection refused".into()),
            agent: None,
            cert_expires_in_days: None,
        }];
        let text = render(&hosts);
        assert!(
            text.contains("web1") && text.contains("unreachable"),
            "{text}"
        );
        assert_eq!(exit_for(&hosts), Exit::Unreachable);
    }

    #[test]
    fn agent_certificates_near_expiry_are_warned_about() {
        let host = |name: &str, days: Option<i64>| HostStatus {
            env: "production".into(),
            host: name.into(),
            reachable: true,
            error: None,
            agent: None,
            cert_expires_in_days: days,
        };
        let hosts = vec![
            host("web1", Some(365)),
            host("web2", Some(29)),
            host("web3", Some(30)),
            host("web4", Some(-2)),
            host("web5", None),
        ];
        let warnings = expiry_warnings(&hosts);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("web2: "), "{warnings:?}");
        assert!(warnings[0].contains("in 29 day(s)"), "{warnings:?}");
        assert!(
            warnings[0].contains("pmfleet deploy production setup"),
            "{warnings:?}"
        );
        assert!(warnings[1].starts_with("web4: "), "{warnings:?}");
    }
}
