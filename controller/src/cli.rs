//! The command line, shaped like PM2's: `pmfleet deploy [file] <env> [command] [args]`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use pmfleet_shared::units::{self, Bare};

#[derive(Debug, Parser)]
#[command(
    name = "pmfleet",
    version,
    about = "Deploy a git revision to a fleet of hosts over SSH, atomically.",
    after_help = "Exit codes: 0 success, 1 a host failed, 2 bad configuration or usage, 3 a host was unreachable, 4 a deploy lock is held."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up hosts, deploy, revert and inspect releases (as `pm2 deploy`).
    #[command(after_help = DEPLOY_HELP)]
    Deploy(DeployArgs),
    /// The fleet CA: certificates for agents, the controller and CI runners.
    Ca(crate::commands::ca::CaArgs),
    /// Every host and app of the fleet in one table (asks each host's agent).
    Status(crate::commands::status::StatusArgs),
    /// Reload, restart, stop, start, delete or scale an app on every host of an environment.
    App(crate::commands::app::AppArgs),
    /// The apps' logs from every host of an environment, each line prefixed with its host.
    Logs(crate::commands::logs::LogsArgs),
    /// The agents' lifecycle events from every host of an environment, as they happen.
    Events(crate::commands::events::EventsArgs),
    /// PM2's monit for the whole fleet: every host's apps live in the terminal, their logs, reload/restart/stop.
    Monit(crate::commands::monit::MonitArgs),
    /// The fleet in a browser: hosts × apps, charts over time, deploy history, live logs, actions (127.0.0.1; the token printed at start, or with --tls a fleet client certificate).
    Dashboard(crate::commands::dashboard::DashboardArgs),
    /// Check the ecosystem file and print its environments and apps as pmfleet reads them, touching no host.
    Config(crate::commands::config::ConfigArgs),
    /// The names of an environment's secrets and where each comes from (never a value).
    Secrets(crate::commands::secrets::SecretsArgs),
    /// Who deployed what, when: the controller's records and every host's history in one timeline.
    History(crate::commands::history::HistoryArgs),
    /// Print the shell completion script (`pmfleet completions bash > /etc/bash_completion.d/pmfleet`).
    Completions {
        shell: pmfleet_shared::cli::docs::Shell,
    },
    /// Write the man pages (pmfleet.1, pmfleet-deploy.1, …) into a directory.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

impl Command {
    /// Whether the command's output is JSON (its errors are then JSON too).
    pub fn json(&self) -> bool {
        match self {
            Command::Deploy(a) => a.json,
            Command::Status(a) => a.json,
            Command::Events(a) => a.json,
            Command::Config(a) => a.json,
            Command::Secrets(a) => a.json,
            Command::History(a) => a.json,
            Command::Ca(a) => matches!(
                a.command,
                crate::commands::ca::CaCommand::List { json: true }
            ),
            _ => false,
        }
    }

    /// Whether the command only reads, so a closed stdout (`pmfleet status | head`) may end
    /// it at once; a deploy or an app command must never stop half-way for that.
    pub fn ends_on_closed_stdout(&self) -> bool {
        matches!(
            self,
            Command::Status(_)
                | Command::Config(_)
                | Command::Secrets(_)
                | Command::History(_)
                | Command::Logs(_)
                | Command::Events(_)
                | Command::Completions { .. }
                | Command::Man { .. }
        )
    }
}

const DEPLOY_HELP: &str = "Commands:
  setup            create the layout on every host (idempotent)
  update           deploy `ref` to every host (the default)
  revert [N]       switch back N deploys; with no N, to the newest release every host holds
  list             releases on every host, and which host holds each
  current          the release each host serves
  previous         the release `revert 1` would go to
  exec <CMD>       run CMD in `current` on every host
  ref <REF>        deploy REF instead of the file's `ref`
  lock             hold the environment on purpose (a freeze; --message says why)
  unlock           release a manual lock, or break one whose holder died

Examples:
  pmfleet deploy production setup
  pmfleet deploy ecosystem.config.js production
  pmfleet deploy staging revert 2
  pmfleet deploy production exec \"uptime\"";

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The words after `deploy`, as PM2 takes them.
    #[arg(
        required = true,
        value_name = "ARGS",
        help = "[ECOSYSTEM_FILE] ENVIRONMENT [COMMAND [ARGS]]"
    )]
    pub words: Vec<String>,

    /// Deploy this ref (branch, `origin/branch`, tag or SHA) instead of the file's `ref`.
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,

    /// Wait up to this long for another deploy's lock (e.g. `30s`, `5m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_wait: Option<std::time::Duration>,

    /// With `unlock`: break the lock even if its holder still sends heartbeats.
    #[arg(long)]
    pub force: bool,

    /// With `lock`: why the environment is held, shown to everyone it refuses.
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,

    /// With `setup`: replace an installed agent whose binary differs from this `pmfleet-agent`;
    /// the running agent becomes the new binary in place, its apps keep running.
    #[arg(long)]
    pub upgrade_agent: bool,

    /// Trust hosts not yet in known_hosts and remember their keys (a changed key is still refused).
    #[arg(long)]
    pub accept_new_host_key: bool,

    /// SSH connect timeout (TCP, handshake and authentication).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub connect_timeout: std::time::Duration,

    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `words` say to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Setup,
    Update {
        git_ref: Option<String>,
    },
    /// `revert N`, or `revert` (the newest release every host holds).
    Revert(Option<usize>),
    List,
    Current,
    Previous,
    Exec(String),
    Lock,
    Unlock,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployCommand {
    pub file: Option<PathBuf>,
    pub env: String,
    pub verb: Verb,
}

/// Reads `[file] <env> [command] [args]`; `is_file` says whether the first word names an
/// ecosystem file.
pub fn parse_words(
    words: &[String],
    is_file: impl Fn(&str) -> bool,
) -> Result<DeployCommand, String> {
    let mut rest = words.iter().map(String::as_str);
    let mut first = rest
        .next()
        .ok_or("missing the environment: pmfleet deploy <env>")?;
    let mut file = None;
    if is_file(first) {
        file = Some(PathBuf::from(first));
        first = rest.next().ok_or_else(|| {
            format!("missing the environment after {first}: pmfleet deploy {first} <env>")
        })?;
    }
    let env = first.to_string();
    let command = rest.next();
    let arg = rest.next();
    let extra: Vec<&str> = rest.collect();
    let too_many = |cmd: &str| {
        Err(format!(
            "unexpected argument(s) after `{cmd}`: {}",
            extra.join(" ")
        ))
    };
    if !extra.is_empty() {
        return too_many(command.unwrap_or(""));
    }
    let no_arg = |verb: Verb, name: &str| match arg {
        Some(a) => Err(format!("`{name}` takes no argument, got `{a}`")),
        None => Ok(verb),
    };
    let verb = match command {
        None | Some("update") | Some("deploy") => no_arg(Verb::Update { git_ref: None }, "update")?,
        Some("setup") => no_arg(Verb::Setup, "setup")?,
        Some("revert") => {
            let n = match arg {
                None => None,
                Some(a) => Some(a.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("`revert` takes a number of deploys to go back (1 or more), got `{a}`")
                })?),
            };
            Verb::Revert(n)
        }
        Some("list") => no_arg(Verb::List, "list")?,
        Some("current") | Some("curr") => no_arg(Verb::Current, "current")?,
        Some("previous") | Some("prev") => no_arg(Verb::Previous, "previous")?,
        Some("lock") => no_arg(Verb::Lock, "lock")?,
        Some("unlock") => no_arg(Verb::Unlock, "unlock")?,
        Some("exec") | Some("run") => Verb::Exec(
            arg.ok_or("`exec` needs a command: pmfleet deploy <env> exec \"uptime\"")?
                .to_string(),
        ),
        Some("ref") => Verb::Update {
            git_ref: Some(
                arg.ok_or("`ref` needs a ref: pmfleet deploy <env> ref origin/main")?
                    .to_string(),
            ),
        },
        Some(other) => {
            return Err(format!(
                "unknown deploy command `{other}`; expected setup, update, revert [N], list, current, previous, exec <cmd>, ref <ref>, lock or unlock"
            ));
        }
    };
    Ok(DeployCommand { file, env, verb })
}

/// A duration flag: `30s`, `5m`, `1h`, `500ms`; digits alone are seconds (see
/// [`pmfleet_shared::units`]).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    units::parse_duration(text, Bare::Seconds).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    fn parse(s: &str) -> Result<DeployCommand, String> {
        parse_words(&words(s), |w| w.ends_with(".js") || w.ends_with(".json"))
    }

    #[test]
    fn pm2_shapes() {
        let c = parse("production").unwrap();
        assert_eq!(
            (c.file, c.env.as_str(), c.verb),
            (None, "production", Verb::Update { git_ref: None })
        );
        let c = parse("ecosystem.config.js production setup").unwrap();
        assert_eq!(c.file, Some(PathBuf::from("ecosystem.config.js")));
        assert_eq!(c.verb, Verb::Setup);
        assert_eq!(
            parse("staging revert 2").unwrap().verb,
            Verb::Revert(Some(2))
        );
        assert_eq!(
            parse("staging revert 1").unwrap().verb,
            Verb::Revert(Some(1))
        );
        assert_eq!(parse("staging revert").unwrap().verb, Verb::Revert(None));
        assert_eq!(parse("staging curr").unwrap().verb, Verb::Current);
        assert_eq!(parse("staging prev").unwrap().verb, Verb::Previous);
        assert_eq!(
            parse("staging exec uptime").unwrap().verb,
            Verb::Exec("uptime".into())
        );
        assert_eq!(
            parse("staging ref v1.2").unwrap().verb,
            Verb::Update {
                git_ref: Some("v1.2".into())
            }
        );
    }

    #[test]
    fn bad_words_say_what_to_do() {
        assert!(parse("staging revert 0").unwrap_err().contains("1 or more"));
        assert!(parse("staging revert x").is_err());
        assert!(
            parse("staging frobnicate")
                .unwrap_err()
                .contains("unknown deploy command")
        );
        assert!(parse("staging list extra").is_err());
        assert!(
            parse("staging exec")
                .unwrap_err()
                .contains("needs a command")
        );
        assert!(
            parse("app.json")
                .unwrap_err()
                .contains("missing the environment")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap().as_secs(), 30);
        assert_eq!(parse_duration("5m").unwrap().as_secs(), 300);
        assert_eq!(parse_duration("10").unwrap().as_secs(), 10);
        assert!(parse_duration("soon").is_err());
    }
}
