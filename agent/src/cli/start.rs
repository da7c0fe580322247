//! `start` and its PM2 variants `startOrRestart`, `startOrReload` and `startOrGracefulReload`:
//! what each word names ([`classify`], PM2's order), the script flags, and the ecosystem
//! file read here first so that `--env` naming an environment no app defines is said, and
//! `autostart: false` apps are added stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use pmfleet_shared::ecosystem::{self, Ecosystem};
use pmfleet_shared::protocol::{OnRunning, ScriptStart, StartRequest, StartSource};

/// `start`'s words and flags.
#[derive(Debug, Default, clap::Args)]
pub struct StartArgs {
    /// Ecosystem files, scripts, commands (`"python3 -m http.server 8000"`, run by bash as
    /// PM2 does), or names or ids of apps the agent knows (restarted, as in PM2). None: the
    /// ecosystem file of this directory.
    #[arg(value_name = "FILE|SCRIPT|COMMAND|APP|ID")]
    pub targets: Vec<String>,
    /// `env_<name>` blocks to apply.
    #[arg(long = "env")]
    pub env_name: Option<String>,
    /// Only these apps of the ecosystem file (comma-separated).
    #[arg(long)]
    pub only: Option<String>,
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// Cluster mode with N instances: N, max (one per CPU), 0, or -N (CPUs minus N).
    #[arg(short = 'i', long = "instances", allow_hyphen_values = true)]
    pub instances: Option<String>,
    /// `none` executes the script itself.
    #[arg(long)]
    pub interpreter: Option<String>,
    /// Arguments for the interpreter, space-separated (`--node-args="--max-old-space-size=512"`).
    #[arg(long, alias = "interpreter-args", allow_hyphen_values = true)]
    pub node_args: Option<String>,
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
    #[arg(long, short = 'k')]
    pub kill_timeout: Option<u64>,
    /// Restart an instance whose memory passes this (e.g. 200M, 1G).
    #[arg(long, value_parser = super::parse_size)]
    pub max_memory_restart: Option<u64>,
    /// Restart when files in the working directory change.
    #[arg(long)]
    pub watch: bool,
    /// Restart on a schedule (a cron pattern; a rolling reload in cluster mode).
    #[arg(long, short = 'c', alias = "cron", value_name = "CRON")]
    pub cron_restart: Option<String>,
    /// One log file per stream for all instances, instead of one per instance.
    #[arg(long)]
    pub merge_logs: bool,
    /// Prefix log lines with a timestamp.
    #[arg(long)]
    pub time: bool,
    /// Prefix log lines with a timestamp in this format (`YYYY-MM-DD HH:mm:ss`).
    #[arg(long, value_name = "FORMAT")]
    pub log_date_format: Option<String>,
    /// The stdout log file.
    #[arg(long = "output", short = 'o', value_name = "PATH")]
    pub out_file: Option<PathBuf>,
    /// The stderr log file.
    #[arg(long = "error", short = 'e', value_name = "PATH")]
    pub error_file: Option<PathBuf>,
    /// An exit is final: the app is not started again.
    #[arg(long)]
    pub no_autorestart: bool,
    /// Unstable restarts (shorter than min_uptime) before the app is errored.
    #[arg(long)]
    pub max_restarts: Option<u32>,
    /// Milliseconds to wait before restarting an app that exited.
    #[arg(long)]
    pub restart_delay: Option<u64>,
    #[arg(long)]
    pub namespace: Option<String>,
    /// Arguments for the app, after `--`.
    #[arg(last = true)]
    pub args: Vec<String>,
}

impl StartArgs {
    /// The flags that only mean something for a script, among those given.
    pub fn script_flags(&self) -> Vec<&'static str> {
        let given = [
            ("--name", self.name.is_some()),
            ("-i", self.instances.is_some()),
            ("--interpreter", self.interpreter.is_some()),
            ("--node-args", self.node_args.is_some()),
            ("--port", self.port.is_some()),
            ("--wait-ready", self.wait_ready),
            ("--healthcheck", self.healthcheck.is_some()),
            ("--listen-timeout", self.listen_timeout.is_some()),
            ("--kill-timeout", self.kill_timeout.is_some()),
            ("--max-memory-restart", self.max_memory_restart.is_some()),
            ("--watch", self.watch),
            ("--cron-restart", self.cron_restart.is_some()),
            ("--merge-logs", self.merge_logs),
            ("--time", self.time),
            ("--log-date-format", self.log_date_format.is_some()),
            ("--output", self.out_file.is_some()),
            ("--error", self.error_file.is_some()),
            ("--no-autorestart", self.no_autorestart),
            ("--max-restarts", self.max_restarts.is_some()),
            ("--restart-delay", self.restart_delay.is_some()),
            ("--namespace", self.namespace.is_some()),
            ("--", !self.args.is_empty()),
        ];
        given
            .into_iter()
            .filter_map(|(flag, set)| set.then_some(flag))
            .collect()
    }
}

/// `startOrRestart`, `startOrReload`, `startOrGracefulReload`: an ecosystem file, `--env`,
/// `--only`.
#[derive(Debug, clap::Args)]
pub struct StartOrArgs {
    /// The ecosystem file (default: the one of this directory).
    pub file: Option<PathBuf>,
    /// `env_<name>` blocks to apply.
    #[arg(long = "env")]
    pub env_name: Option<String>,
    /// Only these apps of the file (comma-separated).
    #[arg(long)]
    pub only: Option<String>,
}

/// What one word of `start` names, in PM2's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartWord {
    /// An ecosystem file: every app in it.
    Ecosystem(PathBuf),
    /// An app the agent knows, by name, namespace or id: restarted.
    Known(String),
    /// A file or a program to run.
    Script(String),
    /// Words with spaces that are not a file: run by bash (`bash -c`), as PM2 does.
    Command(String),
}

/// PM2's reading of a `start` word: a config file first; then an app it knows (by name,
/// namespace or numeric id); then a file; then, when it has a space, a shell command; else a
/// program found on `PATH`.
pub fn classify(word: &str, is_ecosystem_file: bool, known: bool, is_file: bool) -> StartWord {
    if is_ecosystem_file {
        StartWord::Ecosystem(PathBuf::from(word))
    } else if known {
        StartWord::Known(word.to_owned())
    } else if !is_file && word.chars().any(char::is_whitespace) {
        StartWord::Command(word.trim().to_owned())
    } else {
        StartWord::Script(word.to_owned())
    }
}

/// The app a script or command becomes, with the flags.
pub fn script_start(word: &StartWord, a: &StartArgs) -> anyhow::Result<ScriptStart> {
    let (script, name, args, interpreter) = match word {
        StartWord::Command(cmd) => {
            if !a.args.is_empty() {
                bail!(
                    "arguments after `--` cannot be added to a command; write them in it: \"{cmd} {}\"",
                    a.args.join(" ")
                );
            }
            // PM2 names such an app after the whole command cut at its last dot
            // (`python3 -m http`); pmfleet names it after the program.
            let program = cmd.split_whitespace().next().unwrap_or(cmd);
            let stem = Path::new(program)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| program.to_owned());
            (
                "bash".to_owned(),
                a.name.clone().or(Some(stem)),
                vec!["-c".to_owned(), cmd.clone()],
                Some("none".to_owned()),
            )
        }
        StartWord::Script(s) => (
            s.clone(),
            a.name.clone(),
            a.args.clone(),
            a.interpreter.clone(),
        ),
        StartWord::Ecosystem(_) | StartWord::Known(_) => bail!("not a script: {word:?}"),
    };
    let interpreter_args = match &a.node_args {
        Some(words) => shlex::split(words)
            .with_context(|| format!("--node-args: cannot split {words:?} into words"))?,
        None => Vec::new(),
    };
    Ok(ScriptStart {
        script,
        name,
        instances: a.instances.clone(),
        args,
        interpreter,
        port: a.port,
        wait_ready: a.wait_ready,
        healthcheck: a.healthcheck.clone(),
        listen_timeout_ms: a.listen_timeout,
        kill_timeout_ms: a.kill_timeout,
        max_memory_restart: a.max_memory_restart,
        watch: a.watch,
        merge_logs: a.merge_logs,
        time: a.time,
        cron_restart: a.cron_restart.clone(),
        no_autorestart: a.no_autorestart,
        log_date_format: a.log_date_format.clone(),
        out_file: a.out_file.clone(),
        error_file: a.error_file.clone(),
        interpreter_args,
        max_restarts: a.max_restarts,
        restart_delay_ms: a.restart_delay,
        namespace: a.namespace.clone(),
    })
}

/// An ecosystem file, read here before the agent reads it: what to tell the user, and which
/// apps to add stopped.
pub struct Checked {
    pub path: PathBuf,
    pub warnings: Vec<String>,
    pub idle: Vec<String>,
}

/// Reads the file and checks what the agent will not: an `--env` no app defines (PM2 starts
/// the apps with their plain `env` without a word), and `autostart: false`.
pub fn check_file(
    path: &Path,
    env_name: Option<&str>,
    only: Option<&str>,
) -> anyhow::Result<Checked> {
    if !path.is_file() {
        bail!("ecosystem file {} does not exist", path.display());
    }
    let eco = ecosystem::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut warnings = Vec::new();
    if let Some(env) = env_name
        && let Some(w) = unknown_env(&eco, env)
    {
        warnings.push(w);
    }
    let selected = |name: &str| only.is_none_or(|o| o.split([',', ' ']).any(|n| n == name));
    let idle = eco
        .apps
        .iter()
        .filter(|a| !a.autostart && selected(&a.name))
        .map(|a| a.name.clone())
        .collect();
    Ok(Checked {
        path: path.to_path_buf(),
        warnings,
        idle,
    })
}

/// The warning for `--env <name>` when neither an app's `env_<name>` nor `deploy.<name>`
/// exists in the file.
pub fn unknown_env(eco: &Ecosystem, env: &str) -> Option<String> {
    let mut known: Vec<&str> = eco
        .apps
        .iter()
        .flat_map(|a| a.env_by_name.keys().map(String::as_str))
        .chain(eco.deploy.keys().map(String::as_str))
        .chain(eco.broken_environments.keys().map(String::as_str))
        .collect();
    known.sort_unstable();
    known.dedup();
    if known.contains(&env) {
        return None;
    }
    let hint = match ecosystem::did_you_mean(env, known.iter().copied()) {
        Some(close) => format!("; did you mean `{close}`?"),
        None if known.is_empty() => "; the file defines no env_<name> block".to_owned(),
        None => format!("; the file defines {}", known.join(", ")),
    };
    Some(format!(
        "--env {env}: no app of {} has `env_{env}` (nor is there a deploy.{env}); the apps start with their `env` only{hint}",
        eco.source.display()
    ))
}

/// The request for an ecosystem file.
pub fn file_request(
    checked: Checked,
    env_name: Option<String>,
    only: Option<String>,
    running: OnRunning,
) -> anyhow::Result<StartRequest> {
    Ok(StartRequest {
        source: StartSource::Ecosystem {
            path: checked.path,
            running,
            idle: checked.idle,
        },
        env_name,
        cwd: std::env::current_dir().context("cannot read the current directory")?,
        env: client_env(),
        only,
    })
}

/// The request for one script or command.
pub fn script_request(
    script: ScriptStart,
    env_name: Option<String>,
) -> anyhow::Result<StartRequest> {
    Ok(StartRequest {
        source: StartSource::Script(script),
        env_name,
        cwd: std::env::current_dir().context("cannot read the current directory")?,
        env: client_env(),
        only: None,
    })
}

/// As in PM2, the environment of the `start` command reaches the app.
fn client_env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_read_in_pm2s_order() {
        let table = [
            // (word, ecosystem file, known app, a file here) → what it is
            (
                "ecosystem.json",
                true,
                false,
                true,
                StartWord::Ecosystem("ecosystem.json".into()),
            ),
            ("api", false, true, false, StartWord::Known("api".into())),
            ("3", false, true, false, StartWord::Known("3".into())),
            (
                "server.js",
                false,
                false,
                true,
                StartWord::Script("server.js".into()),
            ),
            ("npm", false, false, false, StartWord::Script("npm".into())),
            (
                "python3 -m http.server 8000",
                false,
                false,
                false,
                StartWord::Command("python3 -m http.server 8000".into()),
            ),
            (
                "my app.sh",
                false,
                false,
                true,
                StartWord::Script("my app.sh".into()),
            ),
            ("api", true, true, true, StartWord::Ecosystem("api".into())),
        ];
        for (word, eco, known, file, want) in table {
            assert_eq!(classify(word, eco, known, file), want, "{word}");
        }
    }

    #[test]
    fn a_command_runs_through_bash_named_after_its_program() {
        let cmd = StartWord::Command("python3 -m http.server 8000".into());
        let s = script_start(&cmd, &StartArgs::default()).unwrap();
        assert_eq!(s.script, "bash");
        assert_eq!(s.interpreter.as_deref(), Some("none"));
        assert_eq!(s.args, ["-c", "python3 -m http.server 8000"]);
        assert_eq!(s.name.as_deref(), Some("python3"));
        let named = StartArgs {
            name: Some("web".into()),
            ..StartArgs::default()
        };
        assert_eq!(
            script_start(&cmd, &named).unwrap().name.as_deref(),
            Some("web")
        );
        let extra = StartArgs {
            args: vec!["x".into()],
            ..StartArgs::default()
        };
        assert!(script_start(&cmd, &extra).is_err());
    }

    #[test]
    fn script_flags_reach_the_request() {
        let a = StartArgs {
            node_args: Some("--max-old-space-size=512 --trace-warnings".into()),
            no_autorestart: true,
            out_file: Some("out.log".into()),
            args: vec!["start".into()],
            ..StartArgs::default()
        };
        let s = script_start(&StartWord::Script("npm".into()), &a).unwrap();
        assert_eq!(
            s.interpreter_args,
            ["--max-old-space-size=512", "--trace-warnings"]
        );
        assert!(s.no_autorestart);
        assert_eq!(s.args, ["start"]);
        assert_eq!(s.out_file, Some(PathBuf::from("out.log")));
        assert_eq!(
            a.script_flags(),
            ["--node-args", "--output", "--no-autorestart", "--"]
        );
    }

    fn eco(json: &str) -> Ecosystem {
        ecosystem::parse_str(json, ecosystem::Format::Json, Path::new("/srv/e.json")).unwrap()
    }

    #[test]
    fn an_env_no_app_defines_is_said() {
        let e = eco(
            r#"{"apps": [{"name": "a", "script": "a.js", "env_production": {"X": "1"}}],
                "deploy": {"staging": {"host": "h", "repo": "r", "path": "/p", "ref": "main"}}}"#,
        );
        assert_eq!(unknown_env(&e, "production"), None);
        assert_eq!(unknown_env(&e, "staging"), None);
        let w = unknown_env(&e, "prodution").unwrap();
        assert!(w.contains("did you mean `production`"), "{w}");
        let w = unknown_env(&e, "qa").unwrap();
        assert!(w.contains("defines production, staging"), "{w}");
        let bare = eco(r#"{"apps": [{"name": "a", "script": "a.js"}]}"#);
        let w = unknown_env(&bare, "production").unwrap();
        assert!(w.contains("no env_<name> block"), "{w}");
    }
}
