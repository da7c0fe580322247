//! The `pmfleet-agent` command line: PM2's verbs, each one request to the daemon (started on
//! first use) and its answer printed. This is the binary's edge, so errors here are `anyhow`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use pmfleet_shared::display;
use pmfleet_shared::protocol::{
    AgentEvent, AppDetail, ApplyDir, ApplyReport, ProcessInfo, Request, Response, ScaleTo,
    ScriptStart, StartRequest, StartSource, Target,
};

mod daemon_ctl;
mod upgrade;

use crate::client::{Client, ClientError};
use crate::home::AgentHome;

#[derive(Debug, Parser)]
#[command(
    name = "pmfleet-agent",
    version,
    about = "Keeps this host's apps running: fork or cluster mode, zero-downtime reloads, logs, restarts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (what systemd runs; other verbs start it on demand).
    Daemon {
        /// Serve mutual TLS on this address (overrides the agent home's tls/listen file).
        #[arg(long, value_name = "ADDR:PORT")]
        tls_listen: Option<String>,
    },
    /// Start the daemon unless it runs, and check that it answers.
    Ping,
    /// Whether a daemon runs in this agent home (it holds the home's lock): exit 0 when one
    /// does, 3 when none does, 1 when that cannot be told. Starts nothing.
    DaemonStatus {
        #[arg(long)]
        json: bool,
    },
    /// Stop the daemon (SIGTERM to the process verified to hold the home's lock; its apps
    /// stop and come back with the next daemon) and wait until it is gone. Starts nothing.
    StopDaemon {
        /// Seconds to wait for the daemon to end.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Print the agent's version.
    Version {
        #[arg(long)]
        json: bool,
    },
    /// The mutual-TLS identity the controller reaches this agent with.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Run a release unpacked on this host: start or reload every app of its ecosystem file.
    Apply {
        /// The release directory (`releases/<id>`).
        release_dir: PathBuf,
        /// The ecosystem file, relative to the release (default: PM2's names).
        #[arg(long)]
        ecosystem: Option<PathBuf>,
        /// `env_<name>` blocks to apply.
        #[arg(long = "env")]
        env_name: Option<String>,
        /// Milliseconds the whole apply may take (0: each app's listen_timeout only).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// Start every app of an ecosystem file, or one script or command.
    Start(Box<StartArgs>),
    /// Stop an app (or `all`): its kill signal, then SIGKILL after kill_timeout.
    Stop { target: String },
    /// Stop then start an app (or `all`).
    Restart { target: String },
    /// Zero-downtime rolling restart of an app (or `all`); a plain restart in fork mode.
    Reload { target: String },
    /// Stop an app (or `all`) and forget it.
    #[command(alias = "del")]
    Delete { target: String },
    /// Change the number of instances: N, +N, -N or max.
    Scale {
        app: String,
        #[arg(allow_hyphen_values = true)]
        count: ScaleTo,
    },
    /// Every instance: id, name, mode, pid, uptime, restarts, status, CPU, memory.
    #[command(alias = "ls", alias = "status")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// One app's resolved spec, instances and log files.
    #[command(alias = "describe")]
    Show {
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// Print the last lines of the logs, and with --follow every new line.
    Logs {
        app: Option<String>,
        #[arg(long, default_value_t = 15)]
        lines: usize,
        #[arg(short, long)]
        follow: bool,
    },
    /// Print lifecycle events (started, exited, reloads, releases…) as they happen, until
    /// Ctrl-C: `HH:MM:SS app[instance] kind message`.
    Events {
        /// Only this app's events (default: every app's).
        app: Option<String>,
        /// One JSON object per line, as the protocol carries them.
        #[arg(long)]
        json: bool,
    },
    /// Empty the log files of an app (or of every app).
    Flush { app: Option<String> },
    /// Reopen every log file (after an external logrotate).
    ReloadLogs,
    /// Save the process list for `resurrect`.
    #[command(alias = "dump")]
    Save,
    /// Start the apps saved by `save`.
    Resurrect,
    /// Print a systemd unit that starts the agent at boot (and, with --install, install it).
    Startup {
        #[arg(long)]
        install: bool,
    },
    /// Stop every app and the daemon.
    Kill,
    /// Make the running daemon become this binary (or --binary) without stopping any app:
    /// it keeps its pid, its apps' processes, sockets and logs. Exit code 3: the running
    /// daemon is too old to do that (restart it instead; its apps restart).
    Upgrade {
        /// The new agent binary (default: this one).
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// An ecosystem file (`*.config.js`, `.json`, `.yaml`), a script, or a command.
    pub target: String,
    /// `env_<name>` blocks to apply.
    #[arg(long = "env")]
    pub env_name: Option<String>,
    /// Only these apps of the ecosystem file (comma-separated).
    #[arg(long)]
    pub only: Option<String>,
    #[arg(long)]
    pub name: Option<String>,
    /// Cluster mode with N instances: N, max (one per CPU), 0, or -N (CPUs minus N).
    #[arg(short = 'i', long = "instances", allow_hyphen_values = true)]
    pub instances: Option<String>,
    /// `none` executes the script itself.
    #[arg(long)]
    pub interpreter: Option<String>,
    /// The port the agent binds and shares between instances (default: $PORT).
    #[arg(long)]
    pub port: Option<u16>,
    /// A reload waits for READY=1 on NOTIFY_SOCKET.
    #[arg(long)]
    pub wait_ready: bool,
    /// Readiness probe for reloads: an HTTP path (`/health`) or `tcp`.
    #[arg(long)]
    pub healthcheck: Option<String>,
    /// Milliseconds a new instance has to become ready.
    #[arg(long)]
    pub listen_timeout: Option<u64>,
    /// Milliseconds between the kill signal and SIGKILL.
    #[arg(long)]
    pub kill_timeout: Option<u64>,
    /// Restart an instance whose memory passes this (e.g. 200M, 1G).
    #[arg(long, value_parser = parse_size)]
    pub max_memory_restart: Option<u64>,
    /// Restart when files in the working directory change.
    #[arg(long)]
    pub watch: bool,
    /// Restart on a schedule (a cron pattern; a rolling reload in cluster mode).
    #[arg(long, short = 'c', value_name = "CRON")]
    pub cron_restart: Option<String>,
    #[arg(long)]
    pub merge_logs: bool,
    /// Prefix log lines with a timestamp.
    #[arg(long)]
    pub time: bool,
    /// Arguments for the app, after `--`.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// `200M`, `1G`, `512K`, `1048576` (bytes; see [`pmfleet_shared::units`]).
fn parse_size(s: &str) -> Result<u64, String> {
    pmfleet_shared::units::parse_size(s).map_err(|e| e.to_string())
}

/// Whether `start`'s argument names an ecosystem file rather than a script.
fn is_ecosystem(target: &str) -> bool {
    let name = Path::new(target)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    name.starts_with("ecosystem")
        || [
            ".config.js",
            ".config.cjs",
            ".config.mjs",
            ".json",
            ".yaml",
            ".yml",
        ]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// `pmfleet-agent tls …`.
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Make a new key (tls/agent.key in the agent home, mode 0600) and print a certificate
    /// signing request for it; the key never leaves the host.
    Request {
        /// A host name or IP address the certificate must name (repeat for several).
        #[arg(long = "san", required = true, value_name = "NAME")]
        sans: Vec<String>,
    },
    /// Whether mutual TLS is configured: listen address, certificate names and expiry.
    #[command(alias = "show")]
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Make the running daemon read the TLS files again (renewed certificate, CRL, address).
    Reload,
}

/// Run one CLI command (every verb but `daemon`, which `main` runs itself).
pub async fn run(command: Command, home: &AgentHome) -> anyhow::Result<ExitCode> {
    let req = match command {
        Command::Daemon { .. } => bail!("`daemon` is run by main"),
        Command::Version { json } => {
            let version = env!("CARGO_PKG_VERSION");
            if json {
                println!("{}", serde_json::json!({ "version": version }));
            } else {
                println!("pmfleet-agent {version}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Tls(cmd) => return tls(cmd, home).await,
        Command::Upgrade { binary } => return upgrade::run(home, binary).await,
        Command::Ping => Request::Ping,
        Command::DaemonStatus { json } => return daemon_ctl::status(home, json),
        Command::StopDaemon { timeout } => {
            return daemon_ctl::stop(home, std::time::Duration::from_secs(timeout)).await;
        }
        Command::Apply {
            release_dir,
            ecosystem,
            env_name,
            timeout,
            json,
        } => {
            let release_dir = std::env::current_dir()
                .context("cannot read the current directory")?
                .join(release_dir);
            let req = Request::ApplyDir(Box::new(ApplyDir {
                release_dir,
                ecosystem,
                env_name,
                env: BTreeMap::new(),
                timeout_ms: timeout,
            }));
            let mut c = Client::connect(home, true).await?;
            return match c.request(&req).await? {
                Response::Applied(report) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        print_report(&report);
                    }
                    Ok(if report.ok() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                other => Ok(print_response(other)),
            };
        }
        Command::Startup { install } => return startup(install, home),
        Command::Kill => {
            return match Client::connect(home, false).await {
                Err(ClientError::NotRunning) => {
                    println!("the agent is not running");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(e.into()),
                Ok(mut c) => {
                    let resp = c.request(&Request::Kill).await?;
                    // Wait for the daemon to be gone (its lock free), so a following command
                    // starts a new one rather than reaching the old one.
                    let start = std::time::Instant::now();
                    while !matches!(
                        crate::daemon_lock::holder(home),
                        Ok(crate::daemon_lock::Holder::Nobody)
                    ) && start.elapsed() < std::time::Duration::from_secs(10)
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    Ok(print_response(resp))
                }
            };
        }
        Command::Start(a) => Request::Start(Box::new(start_request(*a)?)),
        Command::Stop { target } => Request::Stop {
            target: Target::parse(&target),
        },
        Command::Restart { target } => Request::Restart {
            target: Target::parse(&target),
        },
        Command::Reload { target } => Request::Reload {
            target: Target::parse(&target),
        },
        Command::Delete { target } => Request::Delete {
            target: Target::parse(&target),
        },
        Command::Scale { app, count } => Request::Scale { app, to: count },
        Command::List { json } => {
            let mut c = Client::connect(home, true).await?;
            return match c.request(&Request::List).await? {
                Response::Processes { processes } => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&processes)?);
                    } else {
                        print_table(&processes);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                other => Ok(print_response(other)),
            };
        }
        Command::Show { app, json } => {
            let mut c = Client::connect(home, true).await?;
            return match c.request(&Request::Show { app }).await? {
                Response::App { app } => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&app)?);
                    } else {
                        print_detail(&app);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                other => Ok(print_response(other)),
            };
        }
        Command::Logs { app, lines, follow } => {
            let mut c = Client::connect(home, true).await?;
            let mut resp = c.request(&Request::Logs { app, lines, follow }).await?;
            let mut stdout = std::io::stdout();
            loop {
                match resp {
                    Response::Log(l) => {
                        let file = l.file.strip_suffix(".log").unwrap_or(&l.file);
                        let _ = writeln!(stdout, "{file} | {}", l.line);
                        let _ = stdout.flush();
                    }
                    Response::End => return Ok(ExitCode::SUCCESS),
                    other => return Ok(print_response(other)),
                }
                resp = match c.next().await? {
                    Some(r) => r,
                    None => return Ok(ExitCode::SUCCESS),
                };
            }
        }
        Command::Events { app, json } => return events(home, app, json).await,
        Command::Flush { app } => Request::Flush { app },
        Command::ReloadLogs => Request::ReloadLogs,
        Command::Save => Request::Save,
        Command::Resurrect => Request::Resurrect,
    };
    let mut c = Client::connect(home, true).await?;
    let resp = c.request(&req).await?;
    Ok(print_response(resp))
}

/// `events`: subscribe, then print each event as it comes until the agent ends the stream
/// (or Ctrl-C, or stdout closes).
async fn events(home: &AgentHome, app: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
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
            other => return Ok(print_response(other)),
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

fn start_request(a: StartArgs) -> anyhow::Result<StartRequest> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let source = if is_ecosystem(&a.target) {
        let path = cwd.join(&a.target);
        if !path.is_file() {
            bail!("ecosystem file {} does not exist", path.display());
        }
        StartSource::Ecosystem { path }
    } else {
        StartSource::Script(ScriptStart {
            script: a.target,
            name: a.name,
            instances: a.instances,
            args: a.args,
            interpreter: a.interpreter,
            port: a.port,
            wait_ready: a.wait_ready,
            healthcheck: a.healthcheck,
            listen_timeout_ms: a.listen_timeout,
            kill_timeout_ms: a.kill_timeout,
            max_memory_restart: a.max_memory_restart,
            watch: a.watch,
            merge_logs: a.merge_logs,
            time: a.time,
            cron_restart: a.cron_restart,
        })
    };
    Ok(StartRequest {
        source,
        env_name: a.env_name,
        cwd,
        env,
        only: a.only,
    })
}

fn print_response(resp: Response) -> ExitCode {
    match resp {
        Response::Done { messages } => {
            for m in messages {
                println!("{m}");
            }
            ExitCode::SUCCESS
        }
        Response::Error(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::FAILURE
        }
        Response::Pong { version, pid, .. } => {
            println!("agent {version} running as pid {pid}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("error: unexpected answer from the agent: {other:?}");
            ExitCode::FAILURE
        }
    }
}

fn print_report(report: &ApplyReport) {
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

async fn tls(cmd: TlsCommand, home: &AgentHome) -> anyhow::Result<ExitCode> {
    match cmd {
        TlsCommand::Request { sans } => {
            let csr = crate::identity::request(home, &sans)?;
            print!("{csr}");
            eprintln!(
                "# wrote a new key to {}; install the certificate signed for this request as {}",
                home.tls_key().display(),
                home.tls_cert().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        TlsCommand::Status { json } => {
            let st = crate::identity::status(home);
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
                return Ok(ExitCode::SUCCESS);
            }
            let state = match (st.configured, st.ok) {
                (false, _) => "not configured",
                (true, true) => "configured",
                (true, false) => "configured, but not usable",
            };
            println!("mutual TLS   {state} ({})", st.dir.display());
            if let Some(e) = &st.error {
                println!("error        {e}");
            }
            if let Some(l) = &st.listen {
                println!("listen       {l}");
            }
            println!("key          {}", if st.key { "agent.key" } else { "none" });
            if !st.sans.is_empty() {
                println!("names        {}", st.sans.join(", "));
            }
            if let (Some(until), Some(days)) = (&st.not_after, st.expires_in_days) {
                println!("valid until  {until} ({days} days)");
            }
            if let Some(fp) = &st.fingerprint {
                println!("fingerprint  {fp}");
            }
            println!("revocations  {}", if st.crl { "crl.pem" } else { "none" });
            Ok(if st.configured && !st.ok {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        TlsCommand::Reload => {
            let mut c = Client::connect(home, true).await?;
            let resp = c.request(&Request::ReloadTls).await?;
            Ok(print_response(resp))
        }
    }
}

fn print_table(procs: &[ProcessInfo]) {
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
    print!("{}", display::table(&header, &rows));
    if procs.is_empty() {
        println!("(no apps)");
    }
}

fn print_detail(d: &AppDetail) {
    let s = &d.spec;
    let cmd = std::iter::once(s.program.as_str()).chain(s.program_args.iter().map(String::as_str));
    println!("name            {}", s.name);
    println!("namespace       {}", s.namespace);
    println!("mode            {}", s.exec_mode);
    println!("command         {}", cmd.collect::<Vec<_>>().join(" "));
    println!("cwd             {}", s.cwd.display());
    println!("instances       {}", d.processes.len());
    if let Some(p) = s.port {
        println!("port            {p}");
    }
    println!(
        "kill            {} after {} ms SIGKILL",
        s.kill_signal, s.kill_timeout_ms
    );
    println!(
        "restarts        autorestart {}, max {}, min uptime {} ms",
        s.autorestart, s.max_restarts, s.min_uptime_ms
    );
    if let Some(m) = s.max_memory_restart {
        println!("memory limit    {}", display::bytes(m));
    }
    if !s.watch.is_empty() {
        let w: Vec<_> = s.watch.iter().map(|p| p.display().to_string()).collect();
        println!("watch           {}", w.join(", "));
    }
    if let Some(cron) = &s.cron_restart {
        println!("cron_restart    {cron}");
    }
    let logs = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("out log         {}", logs(&d.out_logs));
    println!("err log         {}", logs(&d.err_logs));
    println!();
    print_table(&d.processes);
}

fn startup(install: bool, home: &AgentHome) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the agent binary")?;
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into());
    let unit = crate::startup::unit(&exe, &user, home.root());
    if !install {
        // The unit alone on stdout, so `pmfleet-agent startup | sudo tee <path>` installs it.
        print!("{unit}");
        let path = crate::startup::UNIT_PATH;
        eprintln!(
            "# To start the agent at boot (or run `pmfleet-agent startup --install` as root):"
        );
        eprintln!("#   pmfleet-agent startup | sudo tee {path} > /dev/null");
        eprintln!("#   sudo systemctl daemon-reload && sudo systemctl enable pmfleet-agent");
        eprintln!("# Then hand the running apps over from this on-demand agent to systemd's:");
        eprintln!(
            "#   pmfleet-agent save && pmfleet-agent kill && sudo systemctl start pmfleet-agent && pmfleet-agent resurrect"
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !crate::startup::systemd_running() {
        eprintln!(
            "error: systemd is not running here (no /run/systemd/system); nothing was installed"
        );
        eprintln!("run `pmfleet-agent daemon` from this host's init system instead");
        return Ok(ExitCode::FAILURE);
    }
    std::fs::write(crate::startup::UNIT_PATH, unit)
        .with_context(|| format!("cannot write {} (run as root)", crate::startup::UNIT_PATH))?;
    for args in [&["daemon-reload"][..], &["enable", "pmfleet-agent"][..]] {
        let status = std::process::Command::new("systemctl")
            .args(args)
            .status()
            .context("cannot run systemctl")?;
        if !status.success() {
            bail!("systemctl {} failed ({status})", args.join(" "));
        }
    }
    println!(
        "installed {} and enabled pmfleet-agent: the agent starts at boot",
        crate::startup::UNIT_PATH
    );
    println!(
        "to hand over now: pmfleet-agent save && pmfleet-agent kill && systemctl start pmfleet-agent && pmfleet-agent resurrect"
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_pm2() {
        assert_eq!(parse_size("200M"), Ok(200 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("100MB"), Ok(100 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn ecosystem_files_are_told_from_scripts() {
        assert!(is_ecosystem("ecosystem.config.js"));
        assert!(is_ecosystem("deploy/apps.config.cjs"));
        assert!(is_ecosystem("apps.yaml"));
        assert!(is_ecosystem("process.json"));
        assert!(!is_ecosystem("server.js"));
        assert!(!is_ecosystem("worker.py"));
    }

    #[test]
    fn verbs_parse() {
        Cli::try_parse_from([
            "pmfleet-agent",
            "start",
            "server.js",
            "-i",
            "max",
            "--name",
            "api",
        ])
        .unwrap();
        Cli::try_parse_from(["pmfleet-agent", "scale", "api", "-1"]).unwrap();
        Cli::try_parse_from(["pmfleet-agent", "scale", "api", "+2"]).unwrap();
        Cli::try_parse_from(["pmfleet-agent", "start", "app.js", "-i", "-1"]).unwrap();
        Cli::try_parse_from(["pmfleet-agent", "logs", "api", "--lines", "50", "--follow"]).unwrap();
        Cli::try_parse_from(["pmfleet-agent", "start", "w.py", "--", "--flag", "x"]).unwrap();
        Cli::try_parse_from(["pmfleet-agent", "daemon", "--tls-listen", "127.0.0.1:7677"]).unwrap();
        Cli::try_parse_from([
            "pmfleet-agent",
            "tls",
            "request",
            "--san",
            "web1",
            "--san",
            "10.0.0.7",
        ])
        .unwrap();
        assert!(Cli::try_parse_from(["pmfleet-agent", "tls", "request"]).is_err());
        Cli::try_parse_from(["pmfleet-agent", "tls", "status", "--json"]).unwrap();
        Cli::try_parse_from(["pmfleet-agent", "version"]).unwrap();
        Cli::try_parse_from(["pmfleet-agent", "events"]).unwrap();
        Cli::try_parse_from(["pmfleet-agent", "events", "api", "--json"]).unwrap();
        Cli::try_parse_from([
            "pmfleet-agent",
            "apply",
            "/srv/app/releases/3",
            "--env",
            "prod",
        ])
        .unwrap();
    }
}
