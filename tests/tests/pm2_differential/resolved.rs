//! What one side made of one ecosystem file, in one shape for both: per app, the fields the
//! suite compares, each as plain JSON, with what cannot be the same on two process managers
//! (their own directories and ids) written the same way.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};

/// The fields compared, in the order differences are printed.
pub const FIELDS: [&str; 29] = [
    "script",
    "args",
    "interpreter",
    "interpreter_args",
    "cwd",
    "instances",
    "exec_mode",
    "env",
    "max_memory_restart",
    "autorestart",
    "max_restarts",
    "min_uptime",
    "restart_delay",
    "exp_backoff_restart_delay",
    "stop_exit_codes",
    "kill_timeout",
    "kill_signal",
    "listen_timeout",
    "wait_ready",
    "cron_restart",
    "watch",
    "ignore_watch",
    "out_log",
    "err_log",
    "log_date_format",
    "time",
    "instance_var",
    "increment_var",
    "namespace",
];

/// One app as resolved: field → value.
pub type Fields = BTreeMap<&'static str, Value>;

/// What `start` did with a file.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing was started; the tool's own words.
    Refused(String),
    /// The apps, by name.
    Started(BTreeMap<String, Fields>),
}

/// Where the two runs differ from each other by construction, and how values are written so
/// that only a real difference shows.
#[derive(Debug, Clone)]
pub struct Context {
    /// The directory holding the corpus copy (the working directory of both tools).
    pub dir: PathBuf,
    /// The environment both tools were started with.
    pub base_env: BTreeMap<String, String>,
    /// Each tool's default log directory (`$PM2_HOME/logs`, `<agent home>/logs`).
    pub pm2_logs: PathBuf,
    pub agent_logs: PathBuf,
}

impl Context {
    /// A path as compared: `.` components dropped, the corpus directory written `<dir>`.
    pub fn path(&self, path: &Path) -> String {
        let clean: PathBuf = path
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect();
        match clean.strip_prefix(&self.dir) {
            Ok(rest) if rest.as_os_str().is_empty() => "<dir>".to_owned(),
            Ok(rest) => format!("<dir>/{}", rest.display()),
            Err(_) => clean.display().to_string(),
        }
    }

    /// A log file as compared: a default one as `<logs>/<file>`, both tools' error-file
    /// names (`-error` in PM2, `-err` in pmfleet) as `-err`, and an instance number — PM2's
    /// process id, pmfleet's instance — as `-N`.
    pub fn log(&self, path: &Path) -> String {
        let instance = |name: &str| -> String {
            match name
                .strip_suffix(".log")
                .and_then(|stem| stem.rsplit_once('-'))
            {
                Some((head, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
                    format!("{head}-N.log")
                }
                _ => name.to_owned(),
            }
        };
        for logs in [&self.pm2_logs, &self.agent_logs] {
            if let Ok(rest) = path.strip_prefix(logs) {
                let name = instance(&rest.display().to_string());
                let name = name
                    .replace("-error-N.log", "-err-N.log")
                    .replace("-error.log", "-err.log");
                return format!("<logs>/{name}");
            }
        }
        let shown = self.path(path);
        match shown.rsplit_once('/') {
            Some((dir, file)) => format!("{dir}/{}", instance(file)),
            None => instance(&shown),
        }
    }

    /// The environment a file gave an app: every variable that is not the tools' own and not
    /// what both were started with.
    pub fn env(&self, env: impl IntoIterator<Item = (String, String)>, app: &str) -> Value {
        let mut out = serde_json::Map::new();
        for (k, v) in env {
            let internal = k.starts_with("PM2_")
                || k.starts_with("PMFLEET_")
                || k == "unique_id"
                // PM2 sets PWD to an app's `cwd` as written; nothing reads it back.
                || k == "PWD"
                // PM2's module configuration slot, `{}` under the app's own name.
                || (k == app && v == "{}");
            if internal || self.base_env.get(&k) == Some(&v) {
                continue;
            }
            out.insert(k, Value::String(v));
        }
        Value::Object(out)
    }

    /// The watched paths: `true` is the app's directory, paths are relative to it.
    pub fn watch(&self, cwd: &Path, paths: &[PathBuf]) -> Value {
        let mut shown: Vec<String> = paths.iter().map(|p| self.path(&cwd.join(p))).collect();
        shown.sort();
        json!(shown)
    }
}

/// A JSON scalar as a process sees it in its environment or argv (JavaScript's `String(x)`).
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// A sorted list of strings.
pub fn set(mut items: Vec<String>) -> Value {
    items.sort();
    items.dedup();
    json!(items)
}
