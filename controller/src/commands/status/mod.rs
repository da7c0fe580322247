//! `pmfleet status [file] [env…]`: every host of the environments asked concurrently; one
//! table of hosts and apps. Unreachable hosts are shown, never hidden, and make the exit code
//! non-zero, as does an errored app. The default table fits 100 columns (`--wide` has every
//! column), and outside the project directory the last ecosystem file used is asked about.
//!
//! The table itself is drawn by `table`. Below it, per environment ([`fleet_state`]): a
//! rollout that began and never finished, a fleet split across releases, a host whose
//! `current` is not what its apps run, and the command that converges it. Any of them makes
//! the exit code 1.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pmfleet_shared::ecosystem;
use pmfleet_shared::protocol::{AgentStatus, ExecModeSpec, LockSeen, Request, Response, Status};
use serde::Serialize;

use pmfleet_shared::cli::colour::{Palette, Tone};
use pmfleet_shared::cli::error;

pub mod fleet_state;
mod table;

pub use table::render;

use fleet_state::{Finding, HostView};

use crate::agent::AgentClient;
use crate::agent::targets::{self as agents, AgentTarget};
use crate::cli::parse_duration;
use crate::deploy::Exit;
use crate::deploy::lock;
use crate::last_ecosystem;

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
    /// Every column (agent version, release id, errors in the table); the default table
    /// fits 100 columns.
    #[arg(long)]
    pub wide: bool,
    /// The ecosystem file (default: the one here, else the last one a command used).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// How wide the default table may be.
pub const WIDTH: usize = 100;

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
    let file = args.file.clone().or(file);
    let fail = |message: &str| {
        error::report(args.json, "bad_config", message);
        Exit::BadConfig
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let memo = last_ecosystem::memo_path();
    let eco = match last_ecosystem::load(file.as_deref(), &cwd, &memo) {
        Ok((eco, None)) => eco,
        Ok((eco, Some(last))) => {
            if !args.json {
                eprintln!(
                    "using {} (the last ecosystem file used; --file names another)",
                    last.display()
                );
            }
            eco
        }
        Err(message) => return fail(&message.to_string()),
    };
    let targets = match agents::targets(&eco, &envs) {
        Ok(t) => t,
        Err(message) => return fail(&message.to_string()),
    };
    if targets.is_empty() {
        return fail("no host runs a pmfleet agent in these environments (`agent: false`?)");
    }
    let client = match agents::client(args.timeout) {
        Ok(c) => c,
        Err(message) => return fail(&message.to_string()),
    };
    let paths: BTreeMap<String, String> = eco
        .deploy
        .iter()
        .map(|(name, env)| (name.clone(), env.path.clone()))
        .collect();
    let palette = Palette::stdout();
    loop {
        let hosts = ask_all(&client, &targets).await;
        let fleet = fleet_findings(&hosts, &paths, lock_alive);
        let exit = exit_with(exit_for(&hosts), &fleet);
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json(&hosts, &fleet)).unwrap_or_default()
            );
        } else {
            if args.watch {
                print!("\x1b[H\x1b[2J");
            }
            print!("{}", render(&hosts, args.wide, palette));
            print!("{}", render_fleet(&fleet, palette));
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

pub(crate) fn split_words(words: &[String]) -> (Option<PathBuf>, Vec<String>) {
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
                .request_with_cert(
                    &target.host,
                    target.port,
                    &target.via,
                    &Request::Status,
                    None,
                )
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

/// What status says about each environment's releases ([`fleet_state::findings`]), in the
/// order the environments' hosts came: the hosts that answered, each through the deploy root
/// that is its environment's `path` (`paths`: environment → path).
pub fn fleet_findings(
    hosts: &[HostStatus],
    paths: &BTreeMap<String, String>,
    lock_alive: impl Fn(&LockSeen) -> bool,
) -> Vec<(String, Vec<Finding>)> {
    let mut views: Vec<(String, Vec<HostView>)> = Vec::new();
    for h in hosts {
        let Some(agent) = &h.agent else { continue };
        let Some(root) = paths
            .get(&h.env)
            .and_then(|path| fleet_state::root_for(&agent.roots, path))
        else {
            continue;
        };
        let view = HostView::of(&h.host, root, agent.applying, &lock_alive);
        match views.iter_mut().find(|(env, _)| *env == h.env) {
            Some((_, list)) => list.push(view),
            None => views.push((h.env.clone(), vec![view])),
        }
    }
    views
        .into_iter()
        .map(|(env, hosts)| {
            let found = fleet_state::findings(&env, &hosts);
            (env, found)
        })
        .filter(|(_, found)| !found.is_empty())
        .collect()
}

/// Whether a lock's holder looks alive from here: its heartbeat is fresh and, when it ran on
/// this machine, its process is still there ([`lock::liveness`]).
pub fn lock_alive(seen: &LockSeen) -> bool {
    let holder = lock::Holder {
        holder: seen.holder.clone(),
        deploy_id: seen.deploy_id.clone(),
        action: seen.action.clone(),
        since: seen.since.clone(),
        pid: seen.pid,
        machine: seen.machine.clone(),
        manual: seen.manual,
        message: seen.message.clone(),
    };
    if holder.manual {
        // A freeze sends no heartbeat: it stays until someone unlocks it.
        return true;
    }
    lock::liveness(seen.heartbeat_age_secs, holder.alive_here()) == lock::Liveness::Alive
}

/// The findings below the table: each environment's, then the command that converges it.
pub fn render_fleet(fleet: &[(String, Vec<Finding>)], palette: Palette) -> String {
    let mut out = String::new();
    for (env, found) in fleet {
        for finding in found {
            let tone = if finding.fails() {
                Tone::Bad
            } else {
                Tone::Warn
            };
            out.push_str(&palette.paint(&format!("{env}: {}", finding.message()), tone));
            out.push('\n');
        }
        if let Some(converge) = found.iter().find_map(Finding::converge) {
            out.push_str(&format!("  to converge: {}\n", converge.text()));
        }
    }
    out
}

/// The exit code once the fleet's findings are in: an unreachable host still says so (3);
/// otherwise an interrupted rollout, a split fleet or a host at odds with itself is a failure.
fn exit_with(exit: Exit, fleet: &[(String, Vec<Finding>)]) -> Exit {
    let fails = fleet.iter().flat_map(|(_, f)| f).any(Finding::fails);
    match exit {
        Exit::Success if fails => Exit::Failed,
        other => other,
    }
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

/// One object per host; each carries its apps and what status says about its environment's
/// releases that concerns it (`findings`, the same objects for every host of an environment
/// but a host's own disagreement).
fn json(hosts: &[HostStatus], fleet: &[(String, Vec<Finding>)]) -> serde_json::Value {
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
                    let findings: Vec<&Finding> = fleet
                        .iter()
                        .filter(|(env, _)| *env == h.env)
                        .flat_map(|(_, found)| found)
                        .filter(|f| f.concerns(&h.host))
                        .collect();
                    obj.insert(
                        "findings".into(),
                        serde_json::to_value(findings).unwrap_or_default(),
                    );
                }
                value
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmfleet_shared::display;

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
        let text = render(&hosts, false, Palette::plain());
        assert!(
            text.contains("web1") && text.contains("unreachable"),
            "{text}"
        );
        assert_eq!(exit_for(&hosts), Exit::Unreachable);
    }

    fn agent_with(apps: &[(&str, Status, u32)]) -> AgentStatus {
        use pmfleet_shared::protocol::ProcessInfo;
        let mut processes = Vec::new();
        let mut id = 0;
        for (name, status, n) in apps {
            for i in 0..*n {
                processes.push(ProcessInfo {
                    id,
                    name: name.to_string(),
                    namespace: "default".into(),
                    mode: ExecModeSpec::Cluster,
                    instance: i,
                    pid: Some(100 + id),
                    status: *status,
                    uptime_ms: Some(3_600_000),
                    restarts: 2,
                    cpu_percent: Some(1.5),
                    rss_bytes: Some(80 << 20),
                    release: Some("20260101-120000".into()),
                    sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
                    extra: Default::default(),
                });
                id += 1;
            }
        }
        AgentStatus {
            version: "0.1.0".into(),
            hostname: "h".into(),
            uptime_secs: 5,
            release: None,
            processes,
            roots: Vec::new(),
            applying: false,
            host: None,
        }
    }

    fn fleet() -> Vec<HostStatus> {
        let host = |env: &str, name: &str, agent: Option<AgentStatus>| HostStatus {
            env: env.into(),
            host: name.into(),
            reachable: agent.is_some(),
            error: agent
                .is_none()
                .then(|| "connection refused (os error 111)".into()),
            agent,
            cert_expires_in_days: None,
        };
        vec![
            host(
                "production-eu-west",
                "web-frontend-01.eu-west-1.compute.internal:7677",
                Some(agent_with(&[
                    ("checkout-api-service", Status::Online, 4),
                    ("background-worker", Status::Errored, 2),
                ])),
            ),
            host(
                "production-eu-west",
                "web2.example.com",
                Some(agent_with(&[("api", Status::Stopped, 1)])),
            ),
            host("staging", "10.0.0.9", None),
        ]
    }

    #[test]
    fn the_default_table_fits_100_columns_one_row_per_app_and_host() {
        let text = render(&fleet(), false, Palette::plain());
        let table: Vec<&str> = text.lines().take(5).collect();
        for line in &table {
            assert!(
                line.chars().count() <= WIDTH,
                "{} wide: {line}",
                line.chars().count()
            );
        }
        // A header, three apps (instances folded), the unreachable host; its error below.
        assert_eq!(text.lines().count(), 6, "{text}");
        assert!(table[1].contains("0/2 errored"), "{text}");
        assert!(table[2].contains("4/4 online"), "{text}");
        assert!(table[3].contains("0/1 stopped"), "{text}");
        assert!(table[4].contains("unreachable"), "{text}");
        assert!(
            text.contains("10.0.0.9: unreachable: connection refused"),
            "{text}"
        );
        assert!(
            !text.contains("agent 0.1.0"),
            "the agent version is for --wide: {text}"
        );
    }

    #[test]
    fn wide_has_every_column() {
        let text = render(&fleet(), true, Palette::plain());
        let header = text.lines().next().unwrap();
        for column in ["AGENT", "RELEASE", "RESTARTS"] {
            assert!(header.contains(column), "{header}");
        }
        assert!(
            text.contains("20260101-120000") && text.contains("connection refused"),
            "{text}"
        );
    }

    #[test]
    fn errored_and_stopped_rows_stand_out_in_colour_only() {
        let plain = render(&fleet(), false, Palette::plain());
        assert!(!plain.contains('\x1b'));
        let coloured = render(&fleet(), false, Palette { enabled: true });
        let lines: Vec<&str> = coloured.lines().collect();
        assert!(
            lines[1].starts_with("\x1b[1;31m"),
            "errored: {:?}",
            lines[1]
        );
        assert!(!lines[2].contains('\x1b'), "online: {:?}", lines[2]);
        assert!(lines[3].starts_with("\x1b[33m"), "stopped: {:?}", lines[3]);
        assert!(
            lines[4].starts_with("\x1b[1;31m"),
            "unreachable: {:?}",
            lines[4]
        );
    }

    /// Three hosts of one environment, the controller killed after the first switched: the
    /// notice below the table, the command, the exit code, and the JSON.
    #[test]
    fn an_interrupted_rollout_is_said_below_the_table_and_fails_the_exit_code() {
        use pmfleet_shared::protocol::{DeployRoot, RolloutSeen, RootApp};
        let record = RolloutSeen {
            id: "dead".into(),
            action: "deploy".into(),
            who: "alice@laptop".into(),
            started: "2026-11-24T06:15:30Z".into(),
            release: "r2".into(),
            state: "running".into(),
            ..RolloutSeen::default()
        };
        let host = |name: &str, current: &str| {
            let mut agent = agent_with(&[("web", Status::Online, 2)]);
            agent.roots = vec![
                DeployRoot {
                    path: "/srv/other".into(),
                    ..DeployRoot::default()
                },
                DeployRoot {
                    path: "/srv/app".into(),
                    current: Some(current.into()),
                    rollout: Some(record.clone()),
                    lock: Some(LockSeen {
                        deploy_id: "dead".into(),
                        ..LockSeen::default()
                    }),
                    apps: vec![RootApp {
                        name: "web".into(),
                        release: Some(current.into()),
                        online: 2,
                        total: 2,
                    }],
                    ..DeployRoot::default()
                },
            ];
            HostStatus {
                env: "production".into(),
                host: name.into(),
                reachable: true,
                error: None,
                agent: Some(agent),
                cert_expires_in_days: None,
            }
        };
        let hosts = vec![host("web1", "r2"), host("web2", "r1"), host("web3", "r1")];
        let paths = BTreeMap::from([("production".to_string(), "/srv/app/".to_string())]);
        let dead = fleet_findings(&hosts, &paths, |_| false);
        let text = render_fleet(&dead, Palette::plain());
        assert_eq!(
            text,
            "production: rollout dead (deploy of r2 by alice@laptop, started 2026-11-24T06:15:30Z) was interrupted: web1 serves r2; web2, web3 serve r1\n  to converge: `pmfleet deploy production unlock` (the run's lock is still there), then `pmfleet deploy production`\n"
        );
        assert_eq!(exit_with(exit_for(&hosts), &dead), Exit::Failed);
        let json = json(&hosts, &dead);
        let finding = &json[1]["findings"][0];
        assert_eq!(finding["kind"], "interrupted_rollout");
        assert_eq!(finding["rollout"]["who"], "alice@laptop");
        assert_eq!(finding["serving"][1]["hosts"][1], "web3");
        assert_eq!(finding["converge"]["command"], "pmfleet deploy production");
        assert_eq!(json[0]["agent"]["roots"][1]["current"], "r2");

        // Its run alive: said, not a failure.
        let live = fleet_findings(&hosts, &paths, |_| true);
        assert!(render_fleet(&live, Palette::plain()).contains("is in progress"));
        assert_eq!(exit_with(exit_for(&hosts), &live), Exit::Success);
        // An environment whose path is no root of the agents: nothing to say.
        let elsewhere = BTreeMap::from([("production".to_string(), "/srv/x".to_string())]);
        assert!(fleet_findings(&hosts, &elsewhere, |_| false).is_empty());
        // An unreachable host keeps its own exit code.
        assert_eq!(exit_with(Exit::Unreachable, &dead), Exit::Unreachable);
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
