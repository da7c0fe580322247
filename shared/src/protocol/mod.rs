//! The agent's wire protocol: what its CLI sends over the local Unix socket, and what the
//! controller will send over mutual TLS. Both carry the same frames, so one dispatcher serves both.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON:
//! `{"v": 1, "body": <Request or Response>}`. The version travels in every frame so a peer
//! can refuse an incompatible one with a clear error instead of a confusing parse failure;
//! the length prefix caps what a peer may make us buffer ([`MAX_FRAME_LEN`]).
//!
//! One request gets one response, except [`Request::Logs`] with `follow`, which gets a stream
//! of [`Response::Log`] frames until the client hangs up.

mod app;
mod frame;

pub use app::*;
pub use frame::*;

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
    /// Stop every app and end the daemon.
    Kill,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StartSource {
    /// An ecosystem file (JSON, YAML or JavaScript), read by the agent.
    Ecosystem { path: PathBuf },
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
    /// The end of a stream of [`Response::Log`] frames.
    End,
    Error(ApiError),
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
