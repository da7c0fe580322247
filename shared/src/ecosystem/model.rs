//! The checked ecosystem types. Everything here has passed validation: hosts have a name,
//! ports are numbers, defaults are filled in the way PM2 fills them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A validated ecosystem file.
#[derive(Debug, Clone, PartialEq)]
pub struct Ecosystem {
    /// The file it was read from (absolute).
    pub source: PathBuf,
    pub apps: Vec<App>,
    /// `deploy.<env>`, by environment name.
    pub deploy: BTreeMap<String, DeployEnv>,
    /// Problems that did not stop loading: unknown keys, PM2 keys pmfleet does not implement,
    /// spellings given together, and one line for each environment that cannot be used.
    pub warnings: Vec<Diagnostic>,
    /// `deploy.<env>` blocks that cannot be used, each with every problem found in it. They
    /// stop only the commands that use them ([`Ecosystem::environment`]); starting the apps,
    /// or deploying another environment, goes on.
    pub broken_environments: BTreeMap<String, Vec<Diagnostic>>,
    /// Problems with `deploy` itself (not an object, a name given twice): no environment can
    /// be used, the apps still can.
    pub deploy_errors: Vec<Diagnostic>,
    /// Top-level `notify` (ours): the webhooks every environment tells.
    pub notify: Vec<super::NotifyTarget>,
}

/// One `deploy.<env>` block.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployEnv {
    /// The environment's name (`production`).
    pub name: String,
    /// Every host, with `user` and `port` already resolved (host entry, then env, then none).
    pub hosts: Vec<HostSpec>,
    /// `key`: an identity file on the controller (`~` expanded locally).
    pub key: Option<PathBuf>,
    /// `ssh_options`, as `Key=Value` strings (PM2 passes them to `ssh -o`).
    pub ssh_options: Vec<String>,
    /// `ref`, as written (`origin/main`, a branch, a tag or a SHA).
    pub git_ref: String,
    /// `repo`: the git URL or path the code comes from.
    pub repo: String,
    /// `path`: the deploy root on the host; `~` expands on the host, so it is kept as written.
    pub path: String,
    pub hooks: Hooks,
    /// `deploy.<env>.env`: injected into every hook and into the apps.
    pub env: BTreeMap<String, String>,
    /// How many releases to keep on each host (ours; default 5).
    pub keep_releases: usize,
    /// Directories under `shared/` symlinked into every release (ours; default none).
    pub shared_dirs: Vec<String>,
    /// Files under `shared/` symlinked into every release (ours; default none).
    pub shared_files: Vec<String>,
    /// How the code reaches the host (ours; default [`FetchMode::Host`]).
    pub fetch: FetchMode,
    /// How many hosts switch at once (ours; default: all).
    pub batch: Batch,
    /// Failed hosts tolerated before the rollout stops (ours; default 0).
    pub max_fail: usize,
    /// The pmfleet agent on each host (ours; default on). `None`: `agent: false`, the hosts run
    /// no agent and the apps are restarted by `post-deploy`, as with PM2.
    pub agent: Option<AgentSettings>,
    /// How long the agents keep watching a batch after it switched — probing every new
    /// instance, counting crashes and restarts — before the next batch goes (ours; Nomad's
    /// `min_healthy_time`; default 0: no window).
    pub watch_period: Duration,
    /// The host marked `primary: true`, by its index in `hosts`: where the `release` step runs
    /// (default: the first host).
    pub primary: Option<usize>,
    /// `notify` (ours): the webhooks this environment tells, besides the top-level ones.
    pub notify: Vec<super::NotifyTarget>,
}

/// `agent: { port, home }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// The mutual-TLS port the agent listens on (default 7677).
    pub port: u16,
    /// The agent's home on the host (default `~/.pmfleet-agent`); `~` expands on the host.
    pub home: String,
    /// `bind: "host"`: cluster-mode apps listen on the host's own address (the `host` entry,
    /// when it is an IP address) instead of every interface (`bind: "all"`, the default).
    pub bind_host: bool,
    /// `metrics`: where the agent serves its Prometheus metrics (default: nowhere).
    pub metrics: super::MetricsListen,
    /// `via`: how the controller reaches the agent's mutual-TLS port.
    pub via: AgentVia,
}

/// How the controller reaches an agent; mutual TLS, with its roles, either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AgentVia {
    /// `via: "tls"` (the default): dialled directly on the host's address.
    #[default]
    Direct,
    /// `via: "ssh"`: the agent listens on the host's loopback only, and the controller
    /// reaches it through a channel forwarded over its SSH connection to the host.
    Ssh,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            port: 7677,
            home: "~/.pmfleet-agent".to_string(),
            bind_host: false,
            metrics: super::MetricsListen::Off,
            via: AgentVia::Direct,
        }
    }
}

/// One host of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// As written: a name, an address, or a `~/.ssh/config` alias. `localhost` runs locally.
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
}

/// PM2's deploy hooks. Each is a shell command, run on the host through a login shell
/// (`pre_deploy_local` runs on the controller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub pre_setup: Option<String>,
    pub post_setup: Option<String>,
    pub pre_deploy_local: Option<String>,
    pub pre_deploy: Option<String>,
    pub post_deploy: Option<String>,
    /// Ours (Fly's `release_command`): run once, on one host, after every host prepared the
    /// release and before any switches (migrations).
    pub release: Option<String>,
    /// Ours: runs on the controller when a deploy or a revert fails.
    pub on_failure: Option<String>,
    /// `agent: false` only: runs in `current` once the host switched to a release (forward,
    /// back or by revert), Capistrano's `deploy:published`; PM2-run apps move there.
    pub published: Option<String>,
}

/// How a release's code reaches a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FetchMode {
    /// The host fetches from `repo` into a bare mirror under `<path>/repo`.
    #[default]
    Host,
    /// The controller streams the commit's tree as a tar archive over SSH.
    Push,
}

/// How many hosts switch per batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Batch {
    #[default]
    All,
    Count(usize),
    Percent(u8),
}

/// One `apps[]` entry, with PM2's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub name: String,
    pub script: String,
    pub args: Vec<String>,
    pub interpreter: Interpreter,
    pub interpreter_args: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub instances: Instances,
    pub exec_mode: ExecMode,
    /// `env`: the app's base environment.
    pub env: BTreeMap<String, String>,
    /// `env_<name>` blocks, by `<name>`.
    pub env_by_name: BTreeMap<String, BTreeMap<String, String>>,
    /// `deploy.<name>.env` of the same file, by `<name>`: the lowest layer of the app's
    /// environment when it runs with `--env <name>`, as `pm2 start --env <name>` merges it.
    pub deploy_env_by_name: BTreeMap<String, BTreeMap<String, String>>,
    pub port: Option<u16>,
    /// `max_memory_restart`, in bytes.
    pub max_memory_restart: Option<u64>,
    pub autorestart: bool,
    /// `autostart`: false adds the app to the list without starting it (PM2's meaning). Default
    /// true.
    pub autostart: bool,
    /// Default 16.
    pub max_restarts: u32,
    /// Default 1 s.
    pub min_uptime: Duration,
    /// Default 0.
    pub restart_delay: Duration,
    /// `exp_backoff_restart_delay`: the first backoff delay; `None` disables backoff.
    pub exp_backoff_restart_delay: Option<Duration>,
    pub stop_exit_codes: Vec<i32>,
    /// Default SIGINT.
    pub kill_signal: String,
    /// Default 1.6 s.
    pub kill_timeout: Duration,
    /// Default 3 s.
    pub listen_timeout: Duration,
    pub wait_ready: bool,
    pub watch: Watch,
    pub ignore_watch: Vec<String>,
    pub out_file: Option<PathBuf>,
    pub error_file: Option<PathBuf>,
    pub merge_logs: bool,
    pub log_date_format: Option<String>,
    /// `time: true`: prefix log lines with a timestamp.
    pub time: bool,
    /// Default `NODE_APP_INSTANCE`.
    pub instance_var: String,
    pub increment_var: Option<String>,
    pub cron_restart: Option<String>,
    /// Default `default`.
    pub namespace: String,
    /// `append_env_to_name`: with `--env <name>` the app runs as `<app>-<name>` (see
    /// [`App::name_for`]).
    pub append_env_to_name: bool,
    /// Ours: the health gate of every new instance, and what the watch window after a
    /// deploy keeps probing ([`crate::protocol::HealthCheck`]).
    pub healthcheck: Option<crate::protocol::HealthCheck>,
    /// Ours (Kamal's name): how long a new instance may take to pass its gate; `None`:
    /// `listen_timeout`.
    pub deploy_timeout: Option<Duration>,
    /// Ours: the app's own metrics endpoint, which the agent reads (PM2's custom metrics).
    pub metrics: Option<crate::protocol::MetricsEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpreter {
    /// Chosen from the script's extension, as PM2 does (`.js` → node, `.py` → python …; see
    /// [`interpreter_for`](super::interpreter_for)).
    Auto,
    /// `interpreter: "none"`: execute the script itself.
    None,
    /// `interpreter: "bash"` or a path.
    Program(String),
}

/// `instances` as PM2 reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    Count(u32),
    /// `max` or `0`: one per CPU.
    Max,
    /// Negative (`-1`, `-2` …): CPUs minus this many (at least 1), as PM2 reads it.
    AllBut(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecMode {
    Fork,
    Cluster,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    Off,
    /// `watch: true`: the app's cwd.
    On,
    /// `watch: ["src", "config"]`.
    Paths(Vec<String>),
}

/// One problem in an ecosystem file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line and column, where the format gives them.
    pub location: Option<(usize, usize)>,
    /// The field path, e.g. `deploy.production.host[1].port`.
    pub field: String,
    pub message: String,
    /// What to do about it, e.g. "did you mean `post-deploy`?".
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}
