//! The agent's wire protocol: what its CLI sends over the local Unix socket, and what the
//! controller will send over mutual TLS. Both carry the same frames, so one dispatcher serves both.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON:
//! `{"v": 2, "body": <Request or Response>}`. The version travels in every frame so a peer
//! can refuse an incompatible one with a clear error instead of a confusing parse failure;
//! the length prefix caps what a peer may make us buffer ([`MAX_FRAME_LEN`]).
//!
//! One request gets one response, except [`Request::Logs`], which gets a stream of
//! [`Response::Log`] frames ended by [`Response::End`] (with `follow`, until the client hangs up),
//! and [`Request::Events`], which gets a [`Response::Done`] once subscribed, then
//! [`Response::Event`] frames until the client hangs up.
//!
//! The controller's side of a deploy is [`Request::ApplyRelease`] (start or reload every app of
//! a release's ecosystem file, waiting for readiness) and of `pmfleet status`,
//! [`Request::Status`] (everything the fleet table needs in one round trip, and each deploy
//! root's `current`, rollout record and lock, [`DeployRoot`]). `docs/protocol.md`
//! describes every message with a JSON example, and which ones a remote client may send
//! ([`access`]: the role each request needs).

pub mod access;
mod app;
mod deploy_root;
mod event;
mod frame;
mod health;
mod io;
mod observe;
mod pending;

pub use app::*;
pub use deploy_root::*;
pub use event::*;
pub use frame::*;
pub use health::*;
pub use io::*;
pub use observe::*;
pub use pending::*;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a client asks the agent to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Is the daemon up, and which version is it?
    Ping,
    Start(Box<StartRequest>),
    Stop {
        target: Target,
    },
    Restart {
        target: Target,
    },
    /// Rolling, zero-downtime restart (a plain restart in fork mode).
    Reload {
        target: Target,
    },
    Delete {
        target: Target,
    },
    Scale {
        app: String,
        to: ScaleTo,
    },
    List,
    Show {
        app: String,
    },
    /// The last `lines` of the app's logs (every app's when `app` is `None`), then, with
    /// `follow`, every new line until the client hangs up.
    Logs {
        app: Option<String>,
        lines: usize,
        follow: bool,
    },
    /// Lifecycle events of `app` (of every app when `None`) as they happen: answered with
    /// [`Response::Done`] once subscribed, then one [`Response::Event`] per event until the
    /// client hangs up (or [`Response::End`] when the agent shuts down). Read-only.
    Events {
        #[serde(default)]
        app: Option<String>,
    },
    /// Empty the log files (every app's when `app` is `None`).
    Flush {
        app: Option<String>,
    },
    /// Reopen every log file (after an external logrotate moved them).
    ReloadLogs,
    /// Write the process list to the dump file, for `resurrect`.
    Save,
    /// Start every app of the dump file that is not already running.
    Resurrect,
    /// Stop every app and end the daemon. Accepted on the local socket only.
    Kill,
    /// The agent as a whole: version, host, uptime and every instance, in one answer
    /// ([`Response::Status`]).
    Status,
    /// The agent's metrics in the Prometheus text format ([`Response::Metrics`]): what its
    /// metrics endpoint serves to a scraper. Read-only.
    Metrics,
    /// Run a release the deploy put on the host: start or rolling-reload every app of its
    /// ecosystem file, waiting until each is ready ([`Response::Applied`]). It names a deploy
    /// root the agent was set up for and a release id, nothing else: the directory, the
    /// ecosystem file and the apps' environment all come from what the deploy wrote on the
    /// host over SSH ([`PreparedRelease`]).
    ApplyRelease(Box<ApplyRelease>),
    /// Watch the apps of a release the deploy put on the host for a while after a batch
    /// switched to it — their instances' health checks, crashes, restarts and memory
    /// restarts — and answer once the window is over, or at the first problem
    /// ([`Response::Watched`]). It names a deploy root and a release id, as
    /// [`Request::ApplyRelease`] does, and changes nothing.
    WatchRelease(Box<WatchRelease>),
    /// Answer every new connection to the apps' shared sockets with `503 Service
    /// Unavailable`, a page and `Retry-After` (`on`), or hand them to the apps again (off);
    /// the apps keep running underneath, and deploys and reloads go on as usual.
    Maintenance(Box<MaintenanceRequest>),
    /// [`Request::ApplyRelease`] for a directory, ecosystem file and environment of the
    /// caller's choosing: the agent's CLI (`pmfleet-agent apply`). Accepted on the local socket
    /// only.
    ApplyDir(Box<ApplyDir>),
    /// Read the TLS files of the agent home again (a renewed certificate, a new CRL, another
    /// listen address) and restart the mutual-TLS endpoint with them. Accepted on the local
    /// socket only.
    ReloadTls,
    /// Re-execute the daemon into `binary` without stopping any app: it keeps its pid, and
    /// the new binary takes over the running processes, their sockets and output pipes.
    /// Answered with [`Response::Done`] as the handover begins; the connection then ends when
    /// the daemon becomes the new binary, or gets a [`Response::Error`] if it could not.
    /// `handover` is the handover format the new binary reads. Accepted on the local socket
    /// only.
    Upgrade {
        binary: PathBuf,
        handover: u32,
    },
}

/// `apply_release`: what the controller sends once a release is on the host and `current`
/// points at it.
///
/// The agent runs `<root>/releases/<release>` only when `root` is one of the deploy roots
/// `setup` registered on the host (`<agent home>/roots`), `release` is a plain release id,
/// the directory really is inside `<root>/releases/`, and the deploy marked it complete
/// (`<root>/.pmfleet/prepared/<release>`, which also holds the apps' environment). Every app
/// of the release's ecosystem file is then resolved with its `cwd` (and relative `script`s)
/// under the release, and started if the agent does not know it, or rolling-reloaded with the
/// new spec if it does. Apps the agent runs that the file does not name are left alone.
/// Applying the same release twice changes nothing the second time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyRelease {
    /// The deploy root as the controller knows it (`path` of the environment, `~` expanded on
    /// the host); compared with the registered roots once symlinks are resolved.
    pub root: PathBuf,
    /// The release id: the name of its directory under `<root>/releases/`.
    pub release: String,
    /// How long the whole apply may take, in milliseconds; each new instance gets at most its
    /// app's `listen_timeout` and never more than what is left of this. `0`: only the
    /// `listen_timeout`s bound it.
    #[serde(default)]
    pub timeout_ms: u64,
}

/// `watch_release`: the window after a batch switched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchRelease {
    /// As [`ApplyRelease::root`].
    pub root: PathBuf,
    /// As [`ApplyRelease::release`].
    pub release: String,
    /// How long to watch, in milliseconds (at most [`MAX_WATCH_MS`]).
    pub period_ms: u64,
}

/// The longest watch window an agent keeps: one hour.
pub const MAX_WATCH_MS: u64 = 3_600_000;

/// The answer to [`Request::WatchRelease`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchReport {
    /// The apps watched, by name.
    pub apps: Vec<String>,
    /// What went wrong in the window, one entry per instance that failed (empty: healthy
    /// throughout).
    #[serde(default)]
    pub problems: Vec<String>,
    /// How long it watched, in milliseconds.
    pub watched_ms: u64,
}

impl WatchReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// `maintenance`: which apps, on or off, and the page's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceRequest {
    pub target: Target,
    pub on: bool,
    /// Shown on the page (HTML-escaped; at most [`MAX_MAINTENANCE_MESSAGE`] bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The longest maintenance message accepted.
pub const MAX_MAINTENANCE_MESSAGE: usize = 2048;

/// `apply_dir`: a release directory with an ecosystem file and an environment named by the
/// caller — what [`ApplyRelease`] resolves to on the host, and what the agent's own CLI sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyDir {
    /// The release directory, absolute; symlinks in it are resolved, so the apps keep
    /// running from it after `current` moves on to a newer release.
    pub release_dir: PathBuf,
    /// The ecosystem file, relative to `release_dir`; `None` looks for PM2's names there
    /// (`ecosystem.config.js`, `ecosystem.json`, …).
    #[serde(default)]
    pub ecosystem: Option<PathBuf>,
    /// The deploy environment's name: selects the apps' `env_<name>` blocks.
    #[serde(default)]
    pub env_name: Option<String>,
    /// `deploy.<env>.env` (and `PMFLEET_*`): the lowest precedence, below each app's `env`
    /// and `env_<name>`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// As [`ApplyRelease::timeout_ms`].
    #[serde(default)]
    pub timeout_ms: u64,
    /// The deploy root's secrets file, set by the agent itself when it resolves a remote
    /// [`ApplyRelease`]; never read from a frame.
    #[serde(skip)]
    pub secrets_file: Option<PathBuf>,
}

/// What the deploy writes over SSH into a release's completeness marker,
/// `<root>/.pmfleet/prepared/<id>` (mode 0600), once the release is fetched, linked and
/// built: the environment its apps run with. The agent reads it when it applies the release;
/// a client over mutual TLS never supplies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedRelease {
    /// The deploy environment's name: selects the apps' `env_<name>` blocks.
    pub env_name: String,
    /// `deploy.<env>.env` and `PMFLEET_ENV`, `PMFLEET_RELEASE`, `PMFLEET_SHA`, `PMFLEET_REF`.
    pub env: BTreeMap<String, String>,
}

/// The largest marker the agent reads.
pub const MAX_MARKER_LEN: u64 = 1024 * 1024;

/// The answer to [`Request::ApplyRelease`]: one entry per app of the ecosystem file, in
/// its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub apps: Vec<AppliedApp>,
    /// What the agent ignores in the ecosystem file (keys it does not act on), one sentence each.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl ApplyReport {
    /// Whether every app is running the release and ready.
    pub fn ok(&self) -> bool {
        self.apps.iter().all(|a| a.ok)
    }
}

/// What happened to one app of an applied release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedApp {
    pub name: String,
    pub action: AppliedAction,
    /// The app runs the release and every instance became ready. When false, `message` says
    /// why; a failed reload left the previous instances serving.
    pub ok: bool,
    /// One line for a person: what was done, or what went wrong.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppliedAction {
    /// The app was not running: started, and its instances waited for until ready.
    Started,
    /// Rolling reload with the new spec, one instance at a time, without downtime.
    Reloaded,
    /// Stopped and started again with the new spec: fork mode (no shared socket to hand
    /// over), or the port or exec mode changed.
    Restarted,
    /// Already running exactly this spec with every instance online: nothing was done.
    Unchanged,
}

impl std::fmt::Display for AppliedAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AppliedAction::Started => "started",
            AppliedAction::Reloaded => "reloaded",
            AppliedAction::Restarted => "restarted",
            AppliedAction::Unchanged => "unchanged",
        })
    }
}

/// The answer to [`Request::Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's version (`pmfleet-agent --version`).
    pub version: String,
    /// The host's name as the kernel reports it.
    pub hostname: String,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// The release directory of the last [`Request::ApplyRelease`] whose apps all became
    /// ready; `None` before the first one.
    #[serde(default)]
    pub release: Option<PathBuf>,
    /// Every instance, as [`Request::List`] answers: instances online/total per app, CPU,
    /// memory, restarts and uptime are all derived from these.
    pub processes: Vec<ProcessInfo>,
    /// The host's load, memory and disk, for `monit`'s host bar and the dashboard. `None`
    /// from an agent older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostLoad>,
    /// Every deploy root `setup` registered on the host: where `current` points, the rollout
    /// record and the lock as the host holds them, and which release each app of the root
    /// runs. Empty from an agent older than this field, or one set up for no root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roots: Vec<DeployRoot>,
    /// An `apply_release` is under way: the apps are moving to a release, so what they run
    /// and where `current` points may differ for that one step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub applying: bool,
}

/// `start`: an ecosystem file or a single script, plus what the client's shell knew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRequest {
    pub source: StartSource,
    /// `--env <name>`: selects `env_<name>` blocks.
    pub env_name: Option<String>,
    /// The client's working directory: relative scripts and `cwd`s resolve against it.
    pub cwd: PathBuf,
    /// The client's own environment. As in PM2 it reaches the app, below the app's `env`.
    pub env: BTreeMap<String, String>,
    /// `--only <app>` for an ecosystem file.
    pub only: Option<String>,
}

/// [`StartSource::Ecosystem`]'s `running`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRunning {
    /// Stop it and start it with the new spec.
    #[default]
    Restart,
    /// Cluster mode: replace its instances one at a time with the new spec, each ready before
    /// the old one stops; fork mode has no rolling reload and restarts.
    Reload,
}

impl OnRunning {
    fn is_restart(&self) -> bool {
        *self == OnRunning::Restart
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// One per `start`: the size of the script variant costs nothing worth a box (and a box would
// change every caller that builds one).
#[allow(clippy::large_enum_variant)]
pub enum StartSource {
    /// An ecosystem file (JSON, YAML or JavaScript), read by the agent.
    Ecosystem {
        path: PathBuf,
        /// What happens to an app of the file that the agent already runs: restarted with the
        /// new spec (`start`, `startOrRestart`), or rolled to it without downtime
        /// (`startOrReload`).
        #[serde(default, skip_serializing_if = "OnRunning::is_restart")]
        running: OnRunning,
        /// Apps of the file to add without starting them (`autostart: false`): listed as
        /// stopped until `start <app>` or `restart <app>`. An app the agent already knows is
        /// treated as `running` says.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        idle: Vec<String>,
    },
    /// One script or command, with the CLI's options.
    Script(ScriptStart),
}

/// `start <script> [--name N] [-i N] [-- args]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptStart {
    pub script: String,
    pub name: Option<String>,
    /// `-i`: `max`, `0`, `-1`, or a count; implies cluster mode.
    pub instances: Option<String>,
    pub args: Vec<String>,
    pub interpreter: Option<String>,
    pub port: Option<u16>,
    pub wait_ready: bool,
    pub healthcheck: Option<String>,
    pub listen_timeout_ms: Option<u64>,
    pub kill_timeout_ms: Option<u64>,
    pub max_memory_restart: Option<u64>,
    pub watch: bool,
    pub merge_logs: bool,
    pub time: bool,
    /// `--cron-restart`: a cron pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_restart: Option<String>,
    /// `--no-autorestart`: an exit is final.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_autorestart: bool,
    /// `--log-date-format`: prefix each log line with a timestamp in this format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_date_format: Option<String>,
    /// `-o/--output`: the stdout log file (relative to `cwd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_file: Option<PathBuf>,
    /// `-e/--error`: the stderr log file (relative to `cwd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_file: Option<PathBuf>,
    /// `--node-args` / `--interpreter-args`: words given to the interpreter, before the script.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interpreter_args: Vec<String>,
    /// `--max-restarts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
    /// `--restart-delay`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_delay_ms: Option<u64>,
    /// `--namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Which apps a verb applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    All,
    App(String),
}

impl Target {
    /// `all` means every app, anything else is an app name.
    pub fn parse(s: &str) -> Target {
        if s == "all" {
            Target::All
        } else {
            Target::App(s.to_string())
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Target::All => true,
            Target::App(n) => n == name,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::All => f.write_str("all"),
            Target::App(n) => f.write_str(n),
        }
    }
}

/// `scale <app> 4 | +1 | -1 | max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleTo {
    Exactly(u32),
    Up(u32),
    Down(u32),
    Max,
}

impl std::str::FromStr for ScaleTo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a count: expected N, +N, -N or max");
        if s == "max" {
            return Ok(ScaleTo::Max);
        }
        if let Some(n) = s.strip_prefix('+') {
            return n.parse().map(ScaleTo::Up).map_err(|_| bad());
        }
        if let Some(n) = s.strip_prefix('-') {
            return n.parse().map(ScaleTo::Down).map_err(|_| bad());
        }
        s.parse().map(ScaleTo::Exactly).map_err(|_| bad())
    }
}

/// What the agent answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Pong {
        version: String,
        pid: u32,
        /// When the daemon's current binary started (ms since the epoch): changes when it
        /// upgrades itself in place, though the pid stays.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_ms: Option<u64>,
    },
    /// A verb succeeded; `messages` say what happened, one line each.
    Done {
        messages: Vec<String>,
    },
    Processes {
        processes: Vec<ProcessInfo>,
    },
    App {
        app: Box<AppDetail>,
    },
    Log(LogLine),
    /// The end of a stream of [`Response::Log`] or [`Response::Event`] frames.
    End,
    Error(ApiError),
    Status(AgentStatus),
    Applied(ApplyReport),
    Watched(WatchReport),
    /// One event of an `events` stream ([`Request::Events`]).
    Event(AgentEvent),
    /// The answer to [`Request::Metrics`]: the Prometheus text exposition format.
    Metrics {
        text: String,
    },
}

impl Response {
    /// The answer as a remote client may see it: env values redacted (keys kept). Every
    /// answer the agent sends over mutual TLS goes through here, whatever the client's role.
    pub fn redacted(self) -> Response {
        match self {
            Response::App { mut app } => {
                app.spec = app.spec.redacted();
                Response::App { app }
            }
            other => other,
        }
    }
}

/// A failed request: what kind of failure, and a sentence for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request itself is wrong (bad spec, unknown option, port in use).
    Invalid,
    NotFound,
    /// The operation ran and failed (a reload whose new instance never became ready).
    Failed,
    /// The peer speaks another protocol version.
    Version,
    Internal,
    /// This endpoint does not accept the request (e.g. `kill` from a remote client), or the
    /// client's certificate does not carry a role that allows it.
    Forbidden,
    /// The agent serves as many connections as it takes: try again shortly.
    Busy,
}

/// One line of an app's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub app: String,
    /// The log file it came from.
    pub file: String,
    pub line: String,
}

/// One instance, as `list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Stable across restarts and reloads of the same slot.
    pub id: u32,
    pub name: String,
    pub namespace: String,
    pub mode: ExecModeSpec,
    /// The slot, 0..instances (what `instance_var` holds).
    pub instance: u32,
    pub pid: Option<u32>,
    pub status: Status,
    /// Milliseconds since the current process started.
    pub uptime_ms: Option<u64>,
    pub restarts: u32,
    pub cpu_percent: Option<f32>,
    pub rss_bytes: Option<u64>,
    /// The release the instance runs and its commit, when a deploy started it
    /// (`PMFLEET_RELEASE` / `PMFLEET_SHA` in its environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// What the instance's own code measures (its metrics endpoint, or the lines it sends to
    /// the agent's metrics socket), by name; empty when it reports none. See [`InstanceExtra`].
    #[serde(default, flatten)]
    pub extra: InstanceExtra,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Launching,
    Online,
    /// Waiting out the restart delay after an exit.
    Waiting,
    Stopping,
    Stopped,
    /// Gave up: too many unstable restarts, or it could not be spawned.
    Errored,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Launching => "launching",
            Status::Online => "online",
            Status::Waiting => "waiting restart",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::Errored => "errored",
        })
    }
}

/// `show <app>`: the resolved spec, its instances and where its logs go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppDetail {
    pub spec: AppSpec,
    pub processes: Vec<ProcessInfo>,
    pub out_logs: Vec<PathBuf>,
    pub err_logs: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON shapes `docs/protocol.md` shows for the controller's requests.
    #[test]
    fn control_plane_messages_read_as_documented() {
        let status: Request = serde_json::from_str(r#"{"op":"status"}"#).unwrap();
        assert_eq!(status, Request::Status);
        let apply: Request = serde_json::from_str(
            r#"{"op":"apply_release","root":"/srv/app","release":"20260101-120000",
                "timeout_ms":120000}"#,
        )
        .unwrap();
        let Request::ApplyRelease(a) = apply else {
            panic!("{apply:?}")
        };
        assert_eq!(a.root, PathBuf::from("/srv/app"));
        assert_eq!(a.release, "20260101-120000");
        // What an older controller sent (a directory and an environment) is not a request.
        let old = serde_json::from_str::<Request>(
            r#"{"op":"apply_release","release_dir":"/tmp/x","env":{"NODE_OPTIONS":"--import=data:"}}"#,
        );
        assert!(old.is_err(), "{old:?}");
        let marker: PreparedRelease = serde_json::from_str(
            r#"{"env_name":"production","env":{"NODE_ENV":"production","PMFLEET_RELEASE":"1"}}"#,
        )
        .unwrap();
        assert_eq!(marker.env["PMFLEET_RELEASE"], "1");

        let report = Response::Applied(ApplyReport {
            apps: vec![AppliedApp {
                name: "api".into(),
                action: AppliedAction::Reloaded,
                ok: true,
                message: "api: reloaded 2 instance(s) with zero downtime".into(),
            }],
            warnings: Vec::new(),
        });
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["type"], "applied");
        assert_eq!(json["apps"][0]["action"], "reloaded");
        let back: Response = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);

        let st = Response::Status(AgentStatus {
            version: "0.1.0".into(),
            hostname: "web1".into(),
            uptime_secs: 5,
            release: None,
            processes: Vec::new(),
            roots: Vec::new(),
            applying: false,
            host: None,
        });
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["type"], "status");
        assert!(json.get("roots").is_none() && json.get("applying").is_none());
        assert_eq!(serde_json::from_value::<Response>(json).unwrap(), st);
        // An agent older than the deploy roots answers without them.
        let older: Response = serde_json::from_str(
            r#"{"type":"status","version":"0.1.0","hostname":"web1","uptime_secs":5,"processes":[]}"#,
        )
        .unwrap();
        assert_eq!(older, st);

        let forbidden = serde_json::to_value(ErrorKind::Forbidden).unwrap();
        assert_eq!(forbidden, "forbidden");
        assert_eq!(
            serde_json::to_string(&Request::ReloadTls).unwrap(),
            r#"{"op":"reload_tls"}"#
        );
    }

    /// The `events` request and an event frame, as `docs/protocol.md` shows them.
    #[test]
    fn events_read_as_documented() {
        let req: Request = serde_json::from_str(r#"{"op":"events","app":"api"}"#).unwrap();
        assert_eq!(
            req,
            Request::Events {
                app: Some("api".into())
            }
        );
        let every: Request = serde_json::from_str(r#"{"op":"events"}"#).unwrap();
        assert_eq!(every, Request::Events { app: None });

        let frame: Response = serde_json::from_str(
            r#"{"type":"event","at_ms":1767268800123,"app":"api","instance":1,"pid":4242,
                "kind":"exited","message":"killed by signal 9 (SIGKILL) after 81 s"}"#,
        )
        .unwrap();
        let Response::Event(ev) = &frame else {
            panic!("{frame:?}")
        };
        assert_eq!(ev.kind, EventKind::Exited);
        assert_eq!((ev.instance, ev.pid), (Some(1), Some(4242)));
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(json["type"], "event");
        assert_eq!(json["kind"], "exited");
        let reload = serde_json::to_value(EventKind::ReloadStarted).unwrap();
        assert_eq!(reload, "reload_started");
    }
}
