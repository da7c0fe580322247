//! The `pmfleet-agent` command line: PM2's verbs, each one request to the daemon (started on
//! first use) and its answer printed. This is the binary's edge, so errors here are `anyhow`.
//!
//! Where a verb means something else than in PM2, its help says so; docs/migrating-from-pm2.md
//! lists every PM2 command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pmfleet_shared::cli::colour::Palette;
use pmfleet_shared::cli::docs::Shell;
use pmfleet_shared::cli::error;
use pmfleet_shared::protocol::{ApplyDir, OnRunning, Request, Response, ScaleTo};

mod daemon_ctl;
mod environ;
mod events;
mod init;
mod jlist;
pub mod logs;
mod monit;
mod print;
pub mod start;
mod startup;
pub mod targets;
mod tls;
mod upgrade;
mod verbs;

pub use start::{StartArgs, StartOrArgs};
pub use tls::TlsCommand;

use crate::client::{Client, ClientError};
use crate::home::AgentHome;

#[derive(Debug, Parser)]
#[command(
    name = "pmfleet-agent",
    version,
    about = "Keeps this host's apps running: fork or cluster mode, zero-downtime reloads, logs, restarts",
    after_help = "PM2's verbs work as in PM2 (ids, several apps, `all`); where one differs its help says how."
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
    /// Run the apps of an ecosystem file in the foreground: a container's entrypoint.
    ///
    /// PM2's `pm2-runtime`: every app's log lines on stdout/stderr, SIGTERM/SIGINT stop the
    /// apps gracefully, orphans are reaped, and the exit code says how the apps ended.
    Run(crate::run::RunArgs),
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
    /// Start the apps of an ecosystem file, a script, or a command.
    ///
    /// A name or id the agent knows is restarted (as in PM2). An app already running is
    /// restarted with the new spec.
    Start(Box<StartArgs>),
    /// Start the apps of a file that do not run, restart those that do (with the file's spec).
    #[command(name = "startOrRestart", alias = "start-or-restart")]
    StartOrRestart(StartOrArgs),
    /// Start the apps of a file that do not run, reload those that do (zero downtime).
    ///
    /// A rolling reload to the file's spec in cluster mode, a restart in fork mode (as PM2's
    /// reload). What PM2 users put in `post-deploy`; with pmfleet's agents a deploy reloads
    /// the apps itself.
    #[command(name = "startOrReload", alias = "start-or-reload")]
    StartOrReload(StartOrArgs),
    /// The same as `startOrReload` (PM2 keeps both names).
    #[command(name = "startOrGracefulReload", alias = "start-or-graceful-reload")]
    StartOrGracefulReload(StartOrArgs),
    /// Stop apps: their kill signal, then SIGKILL after kill_timeout.
    ///
    /// Names, ids, namespaces, ecosystem files or `all`. Unlike PM2, an id stops its whole app
    /// (PM2 stops that one instance): pmfleet acts on apps.
    Stop(Targets),
    /// Stop then start apps (with downtime: use `reload`).
    ///
    /// Names, ids, namespaces, files or `all`; unlike PM2, an id restarts its whole app.
    Restart(Targets),
    /// Zero-downtime rolling restart of apps; a plain restart in fork mode.
    ///
    /// Names, ids, namespaces, files or `all`. Each new instance is ready before an old one
    /// stops. Unlike PM2, a new instance that never becomes ready fails the reload and the old
    /// ones keep serving.
    Reload(Targets),
    /// Stop apps and forget them.
    ///
    /// Names, ids, namespaces, files or `all`; unlike PM2, an id deletes its whole app.
    #[command(alias = "del")]
    Delete(Targets),
    /// Change the number of instances: N, +N, -N or max.
    Scale {
        app: String,
        #[arg(allow_hyphen_values = true)]
        count: ScaleTo,
    },
    /// Every instance: id, name, mode, pid, uptime, restarts, status, CPU, memory.
    #[command(alias = "ls", alias = "status", alias = "l", alias = "ps")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// The process list as JSON, in the shape `pm2 jlist` prints.
    ///
    /// The fields pmfleet has; `list --json` is pmfleet's own shape.
    Jlist,
    /// `jlist`, indented.
    Prettylist,
    /// One app's resolved spec, instances and log files (by name or id).
    ///
    /// Prints pmfleet's fields, not PM2's.
    #[command(alias = "describe", alias = "desc", alias = "info")]
    Show {
        #[arg(value_name = "APP|ID")]
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// The environment of one instance, as its process has it.
    ///
    /// Read from `/proc/<pid>/environ`. PM2 prints its process metadata too; that is in
    /// `jlist`.
    Env {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// The pids of an app's instances (of every app without one), one per line.
    Pid { app: Option<String> },
    /// Print the last lines of the logs, then stream new ones until Ctrl-C (as PM2).
    ///
    /// `--nostream` prints the last lines and exits.
    Logs(logs::LogsArgs),
    /// PM2's monit: this host's apps live in the terminal (CPU, memory, logs, settings, their
    /// own metrics), with restart, reload and stop.
    Monit,
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
    #[command(alias = "reloadLogs")]
    ReloadLogs,
    /// Save the process list for `resurrect`.
    #[command(alias = "dump")]
    Save,
    /// Start the apps saved by `save`.
    Resurrect,
    /// Write a commented ecosystem.config.js here (`init simple`: one app).
    ///
    /// Unlike PM2's, it never replaces an existing file unless --force.
    #[command(alias = "ecosystem")]
    Init {
        /// `simple` for a one-app file.
        mode: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// Print a systemd unit that starts the agent at boot as you, with your PATH.
    ///
    /// Your PATH, so node from nvm is found at boot. With --install (as root), install and
    /// enable it; PM2's `startup` installs at once.
    Startup {
        #[arg(long)]
        install: bool,
    },
    /// Stop every app and the daemon, and empty the process list.
    Kill,
    /// Make the running daemon become this binary (or --binary) without stopping any app:
    /// it keeps its pid, its apps' processes, sockets and logs. Exit code 3: the running
    /// daemon is too old to do that (restart it instead; its apps restart).
    Upgrade {
        /// The new agent binary (default: this one).
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
    },
    /// Print the shell completion script.
    ///
    /// `pmfleet-agent completions bash > /etc/bash_completion.d/pmfleet-agent`.
    Completions { shell: Shell },
    /// Write the man pages (pmfleet-agent.1, pmfleet-agent-start.1, …) into a directory.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

/// The apps a verb acts on.
#[derive(Debug, clap::Args)]
pub struct Targets {
    /// App names, ids, namespaces, ecosystem files, or `all`.
    #[arg(required = true, value_name = "APP|ID|NAMESPACE|FILE|all")]
    pub targets: Vec<String>,
    /// With an ecosystem file: only these of its apps (comma-separated).
    #[arg(long)]
    pub only: Option<String>,
}

impl Command {
    /// Whether the command's output is JSON (its errors are then JSON too).
    pub fn json(&self) -> bool {
        match self {
            Command::DaemonStatus { json }
            | Command::Version { json }
            | Command::Apply { json, .. }
            | Command::List { json }
            | Command::Show { json, .. }
            | Command::Env { json, .. }
            | Command::Events { json, .. } => *json,
            Command::Logs(a) => a.json,
            Command::Run(a) => a.json,
            Command::Tls(TlsCommand::Status { json }) => *json,
            Command::Jlist | Command::Prettylist => true,
            _ => false,
        }
    }

    /// Whether a closed stdout may end the command at once ([`pmfleet_shared::cli::pipe`]):
    /// every verb prints after the daemon answered (or, for `logs` and `events`, only reads),
    /// so nothing is cut short; the daemon and a container's `run` never end that way.
    pub fn ends_on_closed_stdout(&self) -> bool {
        !matches!(self, Command::Daemon { .. } | Command::Run(_))
    }
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

/// Run one CLI command (every verb but `daemon` and `run`, which `main` runs itself).
pub async fn run(command: Command, home: &AgentHome) -> anyhow::Result<ExitCode> {
    let palette = Palette::stdout();
    let req = match command {
        Command::Daemon { .. } | Command::Run(_) => anyhow::bail!("run by main"),
        Command::Version { json } => {
            let version = env!("CARGO_PKG_VERSION");
            if json {
                println!("{}", serde_json::json!({ "version": version }));
            } else {
                println!("pmfleet-agent {version}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Tls(cmd) => return tls::run(cmd, home).await,
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
                secrets_file: None,
            }));
            let mut c = Client::connect(home, true).await?;
            return match c.request(&req).await? {
                Response::Applied(report) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        print::report(&report);
                    }
                    Ok(if report.ok() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                other => Ok(print::response(other, json)),
            };
        }
        Command::Startup { install } => return startup::run(install, home),
        Command::Init { mode, force } => return init::run(mode.as_deref(), force),
        Command::Completions { shell } => {
            pmfleet_shared::cli::docs::completions(
                <Cli as clap::CommandFactory>::command(),
                shell,
                &mut std::io::stdout(),
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man { dir } => {
            pmfleet_shared::cli::docs::man_pages(<Cli as clap::CommandFactory>::command(), &dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            eprintln!("{}", pmfleet_shared::cli::docs::install_hint(&dir));
            return Ok(ExitCode::SUCCESS);
        }
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
                    Ok(print::response(resp, false))
                }
            };
        }
        Command::Start(a) => return verbs::start(home, *a).await,
        Command::StartOrRestart(a) => return verbs::start_or(home, a, OnRunning::Restart).await,
        Command::StartOrReload(a) | Command::StartOrGracefulReload(a) => {
            return verbs::start_or(home, a, OnRunning::Reload).await;
        }
        Command::Stop(t) => return verbs::act(home, t, |target| Request::Stop { target }).await,
        Command::Restart(t) => {
            return verbs::act(home, t, |target| Request::Restart { target }).await;
        }
        Command::Reload(t) => {
            return verbs::act(home, t, |target| Request::Reload { target }).await;
        }
        Command::Delete(t) => {
            return verbs::act(home, t, |target| Request::Delete { target }).await;
        }
        Command::Scale { app, count } => Request::Scale { app, to: count },
        Command::List { json } => {
            let procs = match verbs::list(home).await? {
                Ok(p) => p,
                Err(resp) => return Ok(print::response(resp, json)),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&procs)?);
            } else {
                print!("{}", print::table(&procs, palette));
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Jlist => return verbs::jlist(home, false).await,
        Command::Monit => return monit::run(home).await,
        Command::Prettylist => return verbs::jlist(home, true).await,
        Command::Show { app, json } => {
            let app = match verbs::app_name(home, &app).await? {
                Ok(name) => name,
                Err(message) => {
                    error::report(json, "not_found", &message);
                    return Ok(ExitCode::FAILURE);
                }
            };
            let mut c = Client::connect(home, true).await?;
            return match c.request(&Request::Show { app }).await? {
                Response::App { app } => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&app)?);
                    } else {
                        print!("{}", print::detail(&app, palette));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                other => Ok(print::response(other, json)),
            };
        }
        Command::Env { id, json } => return environ::run(home, &id, json).await,
        Command::Pid { app } => {
            let procs = match verbs::list(home).await? {
                Ok(p) => p,
                Err(resp) => return Ok(print::response(resp, false)),
            };
            for p in procs
                .iter()
                .filter(|p| app.as_ref().is_none_or(|a| *a == p.name))
            {
                if let Some(pid) = p.pid {
                    println!("{pid}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Logs(a) => {
            let app = match a.app.as_deref() {
                None | Some("all") => None,
                Some(word) => match verbs::app_name(home, word).await? {
                    Ok(name) => Some(name),
                    Err(message) => {
                        error::report(a.json, "not_found", &message);
                        return Ok(ExitCode::FAILURE);
                    }
                },
            };
            return logs::run(home, a, app).await;
        }
        Command::Events { app, json } => return events::run(home, app, json).await,
        Command::Flush { app } => Request::Flush { app },
        Command::ReloadLogs => Request::ReloadLogs,
        Command::Save => Request::Save,
        Command::Resurrect => Request::Resurrect,
    };
    let mut c = Client::connect(home, true).await?;
    let resp = c.request(&req).await?;
    Ok(print::response(resp, false))
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

    fn parse(args: &[&str]) -> Command {
        let mut all = vec!["pmfleet-agent"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
    }

    #[test]
    fn verbs_parse() {
        parse(&["start", "server.js", "-i", "max", "--name", "api"]);
        parse(&["scale", "api", "-1"]);
        parse(&["scale", "api", "+2"]);
        parse(&["start", "app.js", "-i", "-1"]);
        parse(&["logs", "api", "--lines", "50", "--follow"]);
        parse(&["start", "w.py", "--", "--flag", "x"]);
        parse(&["daemon", "--tls-listen", "127.0.0.1:7677"]);
        parse(&["tls", "request", "--san", "web1", "--san", "10.0.0.7"]);
        assert!(Cli::try_parse_from(["pmfleet-agent", "tls", "request"]).is_err());
        parse(&["tls", "status", "--json"]);
        parse(&["version"]);
        parse(&["events"]);
        parse(&["events", "api", "--json"]);
        parse(&["apply", "/srv/app/releases/3", "--env", "prod"]);
    }

    #[test]
    fn pm2s_everyday_command_lines_parse() {
        let Command::Stop(t) = parse(&["stop", "0"]) else {
            panic!()
        };
        assert_eq!(t.targets, ["0"]);
        let Command::Restart(t) = parse(&["restart", "api", "worker"]) else {
            panic!()
        };
        assert_eq!(t.targets, ["api", "worker"]);
        let Command::Start(a) = parse(&["start", "npm", "--", "start"]) else {
            panic!()
        };
        assert_eq!(
            (a.targets.as_slice(), a.args.as_slice()),
            (&["npm".to_string()][..], &["start".to_string()][..])
        );
        let Command::Start(a) = parse(&[
            "start",
            "app.js",
            "--watch",
            "--max-memory-restart",
            "200M",
            "--no-autorestart",
            "--time",
            "--log-date-format",
            "YYYY-MM-DD",
            "--merge-logs",
            "-o",
            "out.log",
            "-e",
            "err.log",
            "--interpreter",
            "node",
            "--node-args",
            "--inspect",
        ]) else {
            panic!()
        };
        assert!(a.watch && a.no_autorestart && a.time && a.merge_logs);
        assert_eq!(a.max_memory_restart, Some(200 << 20));
        assert_eq!(a.node_args.as_deref(), Some("--inspect"));
        let Command::Start(a) = parse(&[
            "start",
            "ecosystem.config.js",
            "--only",
            "a,b",
            "--env",
            "production",
        ]) else {
            panic!()
        };
        assert_eq!(a.only.as_deref(), Some("a,b"));
        assert!(matches!(
            parse(&[
                "startOrReload",
                "ecosystem.config.js",
                "--env",
                "production"
            ]),
            Command::StartOrReload(_)
        ));
        assert!(matches!(
            parse(&["startOrRestart", "e.json"]),
            Command::StartOrRestart(_)
        ));
        assert!(matches!(
            parse(&["startOrGracefulReload", "e.json"]),
            Command::StartOrGracefulReload(_)
        ));
        assert!(matches!(parse(&["jlist"]), Command::Jlist));
        assert!(matches!(parse(&["prettylist"]), Command::Prettylist));
        assert!(matches!(parse(&["describe", "0"]), Command::Show { .. }));
        assert!(matches!(parse(&["env", "0"]), Command::Env { .. }));
        assert!(matches!(parse(&["init"]), Command::Init { .. }));
        assert!(matches!(parse(&["reloadLogs"]), Command::ReloadLogs));
        let Command::Logs(l) = parse(&["logs", "--nostream"]) else {
            panic!()
        };
        assert!(l.nostream);
        assert!(matches!(
            parse(&["completions", "bash"]),
            Command::Completions { .. }
        ));
        assert!(matches!(
            parse(&["man", "--dir", "/tmp/m"]),
            Command::Man { .. }
        ));
        assert!(matches!(
            parse(&["run", "ecosystem.config.js", "--env", "production"]),
            Command::Run(_)
        ));
        assert!(
            Cli::try_parse_from(["pmfleet-agent", "stop"]).is_err(),
            "stop needs a target"
        );
    }

    #[test]
    fn json_commands_and_read_only_commands_are_known() {
        assert!(parse(&["list", "--json"]).json());
        assert!(parse(&["jlist"]).json());
        assert!(!parse(&["list"]).json());
        assert!(parse(&["list"]).ends_on_closed_stdout());
        assert!(!parse(&["daemon"]).ends_on_closed_stdout());
        assert!(!parse(&["run", "e.json"]).ends_on_closed_stdout());
    }
}
