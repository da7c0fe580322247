//! [`AppSpec`]: an app fully resolved for one host — interpreter chosen, environment merged,
//! paths absolute, instance count a number. This is what the agent runs, what it persists,
//! and what `show` prints; the ecosystem file is not needed again once it exists.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecModeSpec {
    Fork,
    Cluster,
}

impl std::fmt::Display for ExecModeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExecModeSpec::Fork => "fork",
            ExecModeSpec::Cluster => "cluster",
        })
    }
}

/// How many instances were asked for, kept so `scale max` and a restore on a machine with
/// another CPU count resolve it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstancesSpec {
    Count(u32),
    Max,
    AllBut(u32),
}

impl InstancesSpec {
    /// PM2's rule: `max` is one per CPU, a negative count is CPUs minus that many, at least 1.
    pub fn resolve(self, cpus: u32) -> u32 {
        match self {
            InstancesSpec::Count(n) => n.max(1),
            InstancesSpec::Max => cpus.max(1),
            InstancesSpec::AllBut(n) => cpus.saturating_sub(n).max(1),
        }
    }
}

/// One app, resolved. Durations are milliseconds so the JSON reads the same in any language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSpec {
    pub name: String,
    pub namespace: String,
    /// What is executed: the interpreter, or the script itself.
    pub program: String,
    /// Arguments after `program`: interpreter args, the script, then the app's args.
    pub program_args: Vec<String>,
    /// The script as written (for display).
    pub script: String,
    pub cwd: PathBuf,
    /// The merged environment (client's, then `env`, then `env_<name>`).
    pub env: BTreeMap<String, String>,
    pub exec_mode: ExecModeSpec,
    pub instances: InstancesSpec,
    /// The port the agent binds once and hands to every instance (cluster mode).
    pub port: Option<u16>,
    /// True when `program` is node: cluster mode injects the `listen()` preload.
    pub node: bool,
    pub max_memory_restart: Option<u64>,
    pub autorestart: bool,
    pub max_restarts: u32,
    pub min_uptime_ms: u64,
    pub restart_delay_ms: u64,
    pub exp_backoff_restart_delay_ms: Option<u64>,
    pub stop_exit_codes: Vec<i32>,
    pub kill_signal: String,
    pub kill_timeout_ms: u64,
    pub listen_timeout_ms: u64,
    pub wait_ready: bool,
    /// Watched paths, absolute; empty = no watching.
    pub watch: Vec<PathBuf>,
    pub ignore_watch: Vec<String>,
    pub out_file: Option<PathBuf>,
    pub error_file: Option<PathBuf>,
    pub merge_logs: bool,
    pub log_date_format: Option<String>,
    pub time: bool,
    pub instance_var: String,
    pub increment_var: Option<String>,
    /// The app's health gate: what proves a new instance ready, and what the watch window
    /// after a deploy keeps probing ([`super::HealthCheck`]).
    pub healthcheck: Option<super::HealthCheck>,
    /// `deploy_timeout`: how long a new instance may take to pass its gate (its readiness
    /// signal and its health check); `None`: `listen_timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_timeout_ms: Option<u64>,
    /// A cron pattern ([`crate::ecosystem::CronSchedule`]): restart (reload in cluster mode)
    /// on that schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_restart: Option<String>,
    /// The deploy root's secrets file ([`crate::secrets::SECRETS_FILE`]) that `secret:NAME`
    /// values of `env` are read from when an instance starts; `None`: such values are kept
    /// as they are (an app started by hand). Only the reference is ever stored in the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_file: Option<PathBuf>,
    /// The app's own metrics endpoint, read by the agent every few seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsEndpoint>,
}

/// `metrics`: where the agent reads an app's own Prometheus text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsEndpoint {
    /// The HTTP path, e.g. `/metrics`.
    pub path: String,
    /// A port of the endpoint's own, instance N listening on `port + N` (it finds its port in
    /// `PMFLEET_METRICS_PORT`); `None`: the app's `port` (in cluster mode, whichever instance
    /// takes the connection answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// What an env value reads as in an answer to a remote client.
pub const REDACTED: &str = "[redacted]";

impl AppSpec {
    /// The spec with every env value replaced by [`REDACTED`]: what a remote client is
    /// shown. The keys stay, so a person can still see which variables an app gets.
    pub fn redacted(mut self) -> AppSpec {
        for value in self.env.values_mut() {
            *value = REDACTED.to_string();
        }
        self
    }
}
