//! Validation of `apps[]` entries into [`App`], PM2's defaults, and PM2's env precedence.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diagnostic::{FieldPath, Report, suggestion_hint};
use super::fields::{self, KeyDef, KeyWalk, Schema};
use super::model::{App, ExecMode, Instances, Interpreter, Watch};
use super::value::{Kind, Value};
use super::words;

static APP_SCHEMA: Schema = Schema {
    keys: &[
        KeyDef::new("name"),
        KeyDef::with_aliases("script", &["exec"]),
        KeyDef::new("args"),
        KeyDef::with_aliases("interpreter", &["exec_interpreter"]),
        KeyDef::with_aliases("interpreter_args", &["node_args", "interpreterArgs"]),
        KeyDef::new("cwd"),
        KeyDef::new("instances"),
        KeyDef::new("exec_mode"),
        KeyDef::new("env"),
        KeyDef::new("port"),
        KeyDef::new("max_memory_restart"),
        KeyDef::new("autorestart"),
        KeyDef::new("max_restarts"),
        KeyDef::new("min_uptime"),
        KeyDef::new("restart_delay"),
        KeyDef::new("exp_backoff_restart_delay"),
        KeyDef::new("stop_exit_codes"),
        KeyDef::new("kill_timeout"),
        KeyDef::new("kill_signal"),
        KeyDef::new("listen_timeout"),
        KeyDef::new("wait_ready"),
        KeyDef::new("watch"),
        KeyDef::new("ignore_watch"),
        KeyDef::with_aliases("out_file", &["output", "out", "out_log"]),
        KeyDef::with_aliases("error_file", &["error", "err", "err_file", "err_log"]),
        KeyDef::with_aliases("merge_logs", &["combine_logs"]),
        KeyDef::new("log_date_format"),
        KeyDef::new("time"),
        KeyDef::new("instance_var"),
        KeyDef::new("increment_var"),
        KeyDef::with_aliases("cron_restart", &["cron"]),
        KeyDef::new("namespace"),
        KeyDef::new("healthcheck"),
    ],
    unimplemented: &[
        (
            "log_file",
            "pmfleet writes `out_file` and `error_file`; there is no third, combined log",
        ),
        (
            "log",
            "pmfleet writes `out_file` and `error_file`; there is no third, combined log",
        ),
        (
            "pid_file",
            "the agent tracks its processes itself; no pid files are written",
        ),
        (
            "pid",
            "the agent tracks its processes itself; no pid files are written",
        ),
        ("log_type", "logs are written as plain lines"),
        (
            "disable_logs",
            "point `out_file`/`error_file` at /dev/null instead",
        ),
        ("name_prefix", ""),
        (
            "filter_env",
            "apps start from the agent's environment plus the ecosystem env blocks",
        ),
        ("append_env_to_name", ""),
        ("install_url", ""),
        ("source_map_support", ""),
        ("disable_source_map_support", ""),
        (
            "shutdown_with_message",
            "apps are stopped with `kill_signal`",
        ),
        ("watch_delay", ""),
        ("watch_options", ""),
        ("vizion", ""),
        ("execute_command", ""),
        ("force", ""),
        ("autostart", "every app in the file is started"),
        ("post_update", "use the deploy hooks (`post-deploy`)"),
        ("trace", ""),
        ("disable_trace", ""),
        ("v8", ""),
        ("event_loop_inspector", ""),
        ("deep_monitoring", ""),
        ("pmx", ""),
        ("automation", ""),
        ("io", ""),
        ("treekill", "the whole process group is always signalled"),
        ("kill_retry_time", ""),
        ("windowsHide", "pmfleet runs on Linux"),
        ("write", ""),
        ("username", ""),
        ("uid", "apps run as the user the agent runs as"),
        ("user", "apps run as the user the agent runs as"),
        ("gid", "apps run as the user the agent runs as"),
    ],
};

/// Signals an app may be stopped with.
const SIGNALS: [&str; 10] = [
    "SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGWINCH",
    "SIGABRT", "SIGALRM",
];

/// PM2's defaults, the one place they are written: every app starts from these (the file
/// readers, `start <script>`), and the agent's restart policy and stop signal fall back to them.
impl Default for App {
    fn default() -> App {
        App {
            name: String::new(),
            script: String::new(),
            args: Vec::new(),
            interpreter: Interpreter::Auto,
            interpreter_args: Vec::new(),
            cwd: None,
            instances: Instances::Count(1),
            exec_mode: ExecMode::Fork,
            env: BTreeMap::new(),
            env_by_name: BTreeMap::new(),
            port: None,
            max_memory_restart: None,
            autorestart: true,
            max_restarts: 16,
            min_uptime: Duration::from_millis(1000),
            restart_delay: Duration::ZERO,
            exp_backoff_restart_delay: None,
            stop_exit_codes: Vec::new(),
            kill_signal: "SIGINT".to_owned(),
            kill_timeout: Duration::from_millis(1600),
            listen_timeout: Duration::from_millis(3000),
            wait_ready: false,
            watch: Watch::Off,
            ignore_watch: Vec::new(),
            out_file: None,
            error_file: None,
            merge_logs: false,
            log_date_format: None,
            time: false,
            instance_var: "NODE_APP_INSTANCE".to_owned(),
            increment_var: None,
            cron_restart: None,
            namespace: "default".to_owned(),
            healthcheck: None,
        }
    }
}

impl App {
    /// An app for `script` with every PM2 default, named after the file (as
    /// `pm2 start server.js` names it `server`).
    pub fn from_script(script: &str) -> App {
        let name = Path::new(script)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| script.to_owned());
        App {
            name,
            script: script.to_owned(),
            ..App::default()
        }
    }

    /// The environment the app's processes get, in PM2's order of precedence (later wins):
    /// `deploy.<env>.env`, then `env`, then `env_<env_name>`, then `PORT` from `port`
    /// (PM2 sets `PORT` last, over all of them).
    pub fn resolved_env(
        &self,
        deploy_env: Option<&BTreeMap<String, String>>,
        env_name: Option<&str>,
    ) -> BTreeMap<String, String> {
        let mut out = deploy_env.cloned().unwrap_or_default();
        out.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(named) = env_name.and_then(|n| self.env_by_name.get(n)) {
            out.extend(named.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(port) = self.port {
            out.insert("PORT".to_owned(), port.to_string());
        }
        out
    }
}

/// Reads `apps`: an array of app objects (or, as PM2 allows, a single object).
pub(crate) fn read_apps(r: &mut Report, v: &Value) -> Vec<App> {
    let f = FieldPath::root().key("apps");
    let items: Vec<(FieldPath, &Value)> = match &v.kind {
        Kind::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (f.index(i), item))
            .collect(),
        Kind::Map(_) => vec![(f.clone(), v)],
        _ => {
            r.expected(v, &f, "an array of apps", None);
            return Vec::new();
        }
    };
    let mut apps = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    for (field, item) in items {
        if let Some((app, name_value)) = read_app(r, item, &field) {
            if !names.insert(app.name.clone()) {
                let at = name_value.unwrap_or(item);
                r.error(
                    at,
                    &field.key("name"),
                    format!("two apps are named `{}`", app.name),
                    Some("app names must be unique; set `name` on one of them".to_owned()),
                );
                continue;
            }
            apps.push(app);
        }
    }
    apps
}

/// One app; `None` (after reporting) when anything in it is wrong. Also returns the `name`
/// value, to point at it when the name turns out to be taken.
fn read_app<'v>(r: &mut Report, v: &'v Value, f: &FieldPath) -> Option<(App, Option<&'v Value>)> {
    let entries = fields::object(r, v, f)?;
    let errors_before = r.error_count();
    let mut walk = KeyWalk::new();
    let mut app = App::from_script("");
    let mut name: Option<&Value> = None;
    let mut script = None;
    let mut exec_mode = None;

    for entry in entries {
        let field = f.key(&entry.key);
        let value = &entry.value;
        if let Some(env_name) = entry.key.strip_prefix("env_") {
            if env_name.is_empty() {
                r.error_at(
                    entry.key_pos,
                    &field,
                    "`env_` needs an environment name",
                    Some("e.g. `env_production`, used with `--env production`".to_owned()),
                );
            } else if app.env_by_name.contains_key(env_name) {
                r.error_at(
                    entry.key_pos,
                    &field,
                    format!("`{}` is given twice", entry.key),
                    None,
                );
            } else if let Some(env) = fields::env_map(r, value, &field) {
                app.env_by_name.insert(env_name.to_owned(), env);
            }
            continue;
        }
        let Some(canonical) = walk.accept(r, &APP_SCHEMA, entry, &field) else {
            continue;
        };
        match canonical {
            "name" => {
                name = Some(value);
                if let Some(n) = read_name(r, value, &field) {
                    app.name = n;
                }
            }
            "script" => script = fields::text(r, value, &field),
            "args" => app.args = read_words(r, value, &field).unwrap_or_default(),
            "interpreter" => {
                if let Some(i) = fields::text(r, value, &field) {
                    app.interpreter = if i == "none" {
                        Interpreter::None
                    } else {
                        Interpreter::Program(i)
                    };
                }
            }
            "interpreter_args" => {
                app.interpreter_args = read_words(r, value, &field).unwrap_or_default()
            }
            "cwd" => app.cwd = fields::text(r, value, &field).map(PathBuf::from),
            "instances" => {
                if let Some(i) = read_instances(r, value, &field) {
                    app.instances = i;
                }
            }
            "exec_mode" => exec_mode = read_exec_mode(r, value, &field),
            "env" => app.env = fields::env_map(r, value, &field).unwrap_or_default(),
            "port" => app.port = fields::port(r, value, &field),
            "max_memory_restart" => app.max_memory_restart = fields::bytes(r, value, &field),
            "autorestart" => set(&mut app.autorestart, fields::boolean(r, value, &field)),
            "max_restarts" => set(
                &mut app.max_restarts,
                fields::int_in(
                    r,
                    value,
                    &field,
                    0,
                    i64::from(u32::MAX),
                    "a number of restarts (0 or more)",
                )
                .and_then(|n| u32::try_from(n).ok()),
            ),
            "min_uptime" => set(&mut app.min_uptime, fields::duration(r, value, &field)),
            "restart_delay" => set(&mut app.restart_delay, fields::duration(r, value, &field)),
            "exp_backoff_restart_delay" => {
                app.exp_backoff_restart_delay =
                    fields::duration(r, value, &field).filter(|d| !d.is_zero());
            }
            "stop_exit_codes" => {
                app.stop_exit_codes = read_exit_codes(r, value, &field).unwrap_or_default()
            }
            "kill_timeout" => set(&mut app.kill_timeout, fields::duration(r, value, &field)),
            "kill_signal" => set(&mut app.kill_signal, read_signal(r, value, &field)),
            "listen_timeout" => set(&mut app.listen_timeout, fields::duration(r, value, &field)),
            "wait_ready" => set(&mut app.wait_ready, fields::boolean(r, value, &field)),
            "watch" => set(&mut app.watch, read_watch(r, value, &field)),
            "ignore_watch" => {
                app.ignore_watch = fields::string_list(r, value, &field).unwrap_or_default()
            }
            "out_file" => app.out_file = fields::text(r, value, &field).map(PathBuf::from),
            "error_file" => app.error_file = fields::text(r, value, &field).map(PathBuf::from),
            "merge_logs" => set(&mut app.merge_logs, fields::boolean(r, value, &field)),
            "log_date_format" => app.log_date_format = fields::text(r, value, &field),
            "time" => set(&mut app.time, fields::boolean(r, value, &field)),
            "instance_var" => set(&mut app.instance_var, read_var_name(r, value, &field)),
            "increment_var" => app.increment_var = read_var_name(r, value, &field),
            "cron_restart" => app.cron_restart = read_cron(r, value, &field),
            "namespace" => set(&mut app.namespace, fields::text(r, value, &field)),
            "healthcheck" => app.healthcheck = read_healthcheck(r, value, &field),
            _ => {}
        }
    }

    match script {
        Some(s) => {
            app.script = s;
            if name.is_none() {
                app.name = App::from_script(&app.script).name;
            }
        }
        None if !walk.has("script") => {
            r.error(
                v,
                f,
                "missing required key `script`",
                Some(
                    "add `script`: the file or command to run, e.g. \"dist/server.js\"".to_owned(),
                ),
            );
        }
        None => {}
    }
    app.exec_mode = exec_mode.unwrap_or(if app.instances == Instances::Count(1) {
        ExecMode::Fork
    } else {
        ExecMode::Cluster
    });

    (r.error_count() == errors_before).then_some((app, name))
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn read_name(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    let name = fields::text(r, v, f)?;
    let problem = if name.chars().any(char::is_control) {
        Some("an app name must not contain control characters or line breaks")
    } else if name.contains('/') {
        Some("an app name must not contain `/` (it names log files)")
    } else if name == "all" {
        Some("`all` is reserved: `stop all` means every app")
    } else if name.chars().all(|c| c.is_ascii_digit()) {
        Some("an app name cannot be a number (numbers select apps by id)")
    } else {
        None
    };
    match problem {
        Some(message) => {
            r.error(v, f, message, None);
            None
        }
        None => Some(name),
    }
}

/// `args` / `interpreter_args`: a string split like a shell would, or an array.
fn read_words(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Vec<String>> {
    match &v.kind {
        Kind::Str(s) => match words::split(s) {
            Ok(list) => Some(list),
            Err(problem) => {
                r.error(
                    v,
                    f,
                    problem,
                    Some("or write the arguments as an array of strings".to_owned()),
                );
                None
            }
        },
        Kind::Seq(items) => fields::string_items(r, items, f, |item| {
            fields::env_string(item)
                .filter(|s| !matches!(item.kind, Kind::Bool(_)) && !s.contains('\0'))
        }),
        _ => {
            r.expected(v, f, "a string or an array of strings", None);
            None
        }
    }
}

/// `instances`: a count, `"max"` or `0` (one per CPU), or `-N` (all CPUs but N).
fn read_instances(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Instances> {
    if v.as_str()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("max"))
    {
        return Some(Instances::Max);
    }
    let parsed = fields::integer(v).and_then(|n| match n {
        0 => Some(Instances::Max),
        n if n > 0 => u32::try_from(n).ok().map(Instances::Count),
        n => u32::try_from(n.unsigned_abs()).ok().map(Instances::AllBut),
    });
    if parsed.is_none() {
        r.expected(
            v,
            f,
            "a number of instances",
            Some(
                "write a number, \"max\" or 0 for one per CPU, or -1 for all CPUs but one"
                    .to_owned(),
            ),
        );
    }
    parsed
}

fn read_exec_mode(r: &mut Report, v: &Value, f: &FieldPath) -> Option<ExecMode> {
    match v.as_str() {
        Some("fork" | "fork_mode") => Some(ExecMode::Fork),
        Some("cluster" | "cluster_mode") => Some(ExecMode::Cluster),
        other => {
            let hint = other
                .and_then(|s| suggestion_hint(s, ["fork", "cluster", "fork_mode", "cluster_mode"]))
                .or_else(|| Some("use \"fork\" or \"cluster\"".to_owned()));
            r.expected(v, f, "\"fork\" or \"cluster\"", hint);
            None
        }
    }
}

fn read_exit_codes(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Vec<i32>> {
    let code = |r: &mut Report, item: &Value, field: &FieldPath| {
        let c = fields::int_in(r, item, field, 0, 255, "an exit code (0-255)");
        c.and_then(|n| i32::try_from(n).ok())
    };
    match &v.kind {
        Kind::Seq(items) => {
            let codes: Vec<Option<i32>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| code(r, item, &f.index(i)))
                .collect();
            codes.into_iter().collect()
        }
        _ => code(r, v, f).map(|c| vec![c]),
    }
}

fn read_signal(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    let raw = fields::text(r, v, f)?;
    let upper = raw.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if SIGNALS.contains(&name.as_str()) {
        return Some(name);
    }
    let hint = suggestion_hint(&name, SIGNALS)
        .or_else(|| Some(format!("use one of {}", SIGNALS.join(", "))));
    r.error(v, f, format!("unknown signal {}", v.describe()), hint);
    None
}

fn read_watch(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Watch> {
    match &v.kind {
        Kind::Bool(true) => Some(Watch::On),
        Kind::Bool(false) => Some(Watch::Off),
        Kind::Str(s) if s == "true" => Some(Watch::On),
        Kind::Str(s) if s == "false" => Some(Watch::Off),
        Kind::Str(_) | Kind::Seq(_) => fields::string_list(r, v, f).map(Watch::Paths),
        _ => {
            r.expected(v, f, "true, false, or an array of paths", None);
            None
        }
    }
}

fn read_var_name(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    let name = fields::string(r, v, f)?;
    if fields::is_env_name(&name) {
        Some(name)
    } else {
        r.error(
            v,
            f,
            format!("{} is not a valid environment variable name", v.describe()),
            Some("names are letters, digits and `_`, and do not start with a digit".to_owned()),
        );
        None
    }
}

/// `cron_restart`: a cron pattern ([`super::cron`]); `0` turns it off, as in PM2.
fn read_cron(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    if matches!(v.kind, Kind::Int(0)) || v.as_str() == Some("0") {
        return None;
    }
    let cron = fields::text(r, v, f)?;
    let cron = cron.trim().to_owned();
    match super::cron::CronSchedule::parse(&cron) {
        Ok(_) => Some(cron),
        Err(why) => {
            r.error(
                v,
                f,
                format!("{} is not a cron pattern: {why}", v.describe()),
                Some("write five fields (minute hour day month weekday), e.g. \"0 3 * * *\", six with seconds first, or a nickname such as \"@daily\"".to_owned()),
            );
            None
        }
    }
}

/// `healthcheck`: an HTTP path such as `/health`, or `tcp`.
fn read_healthcheck(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    let check = fields::text(r, v, f)?;
    if check == "tcp"
        || (check.starts_with('/') && !check.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Some(check);
    }
    r.error(
        v,
        f,
        format!("expected an HTTP path such as \"/health\" or \"tcp\", found {}", v.describe()),
        Some("the agent probes the app's own port: a path is fetched over HTTP, \"tcp\" only connects".to_owned()),
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecosystem::{Diagnostic, json};

    fn read(text: &str) -> (Vec<App>, Vec<Diagnostic>) {
        let v = json::parse(text).unwrap();
        let mut r = Report::new(Path::new("e.json"));
        let apps = read_apps(&mut r, &v);
        (apps, r.into_diagnostics())
    }

    #[test]
    fn defaults_are_pm2s() {
        let app = App::from_script("dist/server.js");
        assert_eq!(app.name, "server");
        assert_eq!(app.instances, Instances::Count(1));
        assert_eq!(app.exec_mode, ExecMode::Fork);
        assert!(app.autorestart);
        assert_eq!(app.max_restarts, 16);
        assert_eq!(app.min_uptime, Duration::from_secs(1));
        assert_eq!(app.kill_timeout, Duration::from_millis(1600));
        assert_eq!(app.listen_timeout, Duration::from_secs(3));
        assert_eq!(app.kill_signal, "SIGINT");
        assert_eq!(app.instance_var, "NODE_APP_INSTANCE");
        assert_eq!(app.namespace, "default");
        assert_eq!(App::from_script("bin/worker").name, "worker");
        let (apps, diags) = read(r#"[{"script": "dist/server.js"}]"#);
        assert!(diags.is_empty());
        assert_eq!(apps[0], app);
    }

    #[test]
    fn every_pm2_key() {
        let (apps, diags) = read(
            r#"[{"name": "api", "script": "server.js", "args": "--port 3000 'a b'", "interpreter": "none",
                "node_args": ["--max-old-space-size=512"], "cwd": "/srv/api", "instances": "max",
                "env": {"NODE_ENV": "dev", "N": 1}, "env_production": {"NODE_ENV": "production"},
                "port": 3000, "max_memory_restart": "150M", "autorestart": false, "max_restarts": 3,
                "min_uptime": "2s", "restart_delay": 500, "exp_backoff_restart_delay": 100,
                "stop_exit_codes": [0, 3], "kill_timeout": 5000, "kill_signal": "sigterm",
                "listen_timeout": "10s", "wait_ready": true, "watch": ["src"], "ignore_watch": "node_modules",
                "output": "/var/log/api.out", "error_file": "/var/log/api.err", "combine_logs": true,
                "log_date_format": "YYYY-MM-DD", "time": true, "instance_var": "INSTANCE_ID",
                "increment_var": "PORT", "cron_restart": "0 3 * * *", "namespace": "web", "healthcheck": "/health"}]"#,
        );
        assert!(diags.is_empty(), "{diags:#?}");
        let a = &apps[0];
        assert_eq!(a.name, "api");
        assert_eq!(a.args, vec!["--port", "3000", "a b"]);
        assert_eq!(a.interpreter, Interpreter::None);
        assert_eq!(a.interpreter_args, vec!["--max-old-space-size=512"]);
        assert_eq!(a.cwd.as_deref(), Some(Path::new("/srv/api")));
        assert_eq!(a.instances, Instances::Max);
        assert_eq!(a.exec_mode, ExecMode::Cluster);
        assert_eq!(a.env["N"], "1");
        assert_eq!(a.env_by_name["production"]["NODE_ENV"], "production");
        assert_eq!(a.port, Some(3000));
        assert_eq!(a.max_memory_restart, Some(150 * 1024 * 1024));
        assert!(!a.autorestart);
        assert_eq!(a.max_restarts, 3);
        assert_eq!(a.min_uptime, Duration::from_secs(2));
        assert_eq!(a.restart_delay, Duration::from_millis(500));
        assert_eq!(
            a.exp_backoff_restart_delay,
            Some(Duration::from_millis(100))
        );
        assert_eq!(a.stop_exit_codes, vec![0, 3]);
        assert_eq!(a.kill_timeout, Duration::from_secs(5));
        assert_eq!(a.kill_signal, "SIGTERM");
        assert_eq!(a.listen_timeout, Duration::from_secs(10));
        assert!(a.wait_ready);
        assert_eq!(a.watch, Watch::Paths(vec!["src".into()]));
        assert_eq!(a.ignore_watch, vec!["node_modules"]);
        assert_eq!(a.out_file.as_deref(), Some(Path::new("/var/log/api.out")));
        assert!(a.merge_logs);
        assert!(a.time);
        assert_eq!(a.instance_var, "INSTANCE_ID");
        assert_eq!(a.increment_var.as_deref(), Some("PORT"));
        assert_eq!(a.cron_restart.as_deref(), Some("0 3 * * *"));
        assert_eq!(a.namespace, "web");
        assert_eq!(a.healthcheck.as_deref(), Some("/health"));
    }

    #[test]
    fn instances_and_exec_mode() {
        let cases = [
            (r#""instances": 1"#, Instances::Count(1), ExecMode::Fork),
            (r#""instances": 4"#, Instances::Count(4), ExecMode::Cluster),
            (
                r#""instances": "4""#,
                Instances::Count(4),
                ExecMode::Cluster,
            ),
            (r#""instances": 0"#, Instances::Max, ExecMode::Cluster),
            (
                r#""instances": -1"#,
                Instances::AllBut(1),
                ExecMode::Cluster,
            ),
            (
                r#""instances": -2, "exec_mode": "fork_mode""#,
                Instances::AllBut(2),
                ExecMode::Fork,
            ),
            (
                r#""exec_mode": "cluster""#,
                Instances::Count(1),
                ExecMode::Cluster,
            ),
        ];
        for (text, instances, mode) in cases {
            let (apps, diags) = read(&format!(r#"[{{"script": "a.js", {text}}}]"#));
            assert!(diags.is_empty(), "{text}: {diags:?}");
            assert_eq!(apps[0].instances, instances, "{text}");
            assert_eq!(apps[0].exec_mode, mode, "{text}");
        }
        let (_, diags) =
            read(r#"[{"script": "a.js", "instances": "lots", "exec_mode": "clustr"}]"#);
        assert_eq!(diags.len(), 2);
        assert_eq!(diags[1].hint.as_deref(), Some("did you mean `cluster`?"));
    }

    #[test]
    fn env_precedence_is_pm2s() {
        let (apps, _) = read(
            r#"[{"script": "a.js", "env": {"A": "app", "B": "app"}, "env_production": {"B": "named", "C": "named"}}]"#,
        );
        let deploy: BTreeMap<String, String> = [("A", "deploy"), ("B", "deploy"), ("D", "deploy")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let env = apps[0].resolved_env(Some(&deploy), Some("production"));
        assert_eq!(env["A"], "app");
        assert_eq!(env["B"], "named");
        assert_eq!(env["C"], "named");
        assert_eq!(env["D"], "deploy");
        let env = apps[0].resolved_env(None, Some("staging"));
        assert_eq!(env.len(), 2);
        assert_eq!(env["B"], "app");
        let mut with_port = apps[0].clone();
        with_port.port = Some(8080);
        assert_eq!(with_port.resolved_env(None, None)["PORT"], "8080");
    }

    #[test]
    fn duplicate_names_and_missing_script() {
        let (apps, diags) = read(r#"[{"script": "a.js"}, {"script": "lib/a.js"}, {"name": "x"}]"#);
        assert_eq!(apps.len(), 1);
        assert_eq!(diags.len(), 2);
        assert_eq!(diags[0].field, "apps[1].name");
        assert!(diags[0].message.contains("two apps are named `a`"));
        assert_eq!(diags[1].field, "apps[2]");
        assert_eq!(diags[1].message, "missing required key `script`");
    }

    #[test]
    fn unknown_and_unimplemented_keys() {
        let (apps, diags) =
            read(r#"[{"script": "a.js", "isntances": 2, "vizion": false, "uid": "www"}]"#);
        assert!(apps.is_empty());
        assert_eq!(diags.len(), 3);
        assert_eq!(diags[0].hint.as_deref(), Some("did you mean `instances`?"));
        assert!(!diags[1].is_error());
        assert!(!diags[2].is_error());
        let (apps, diags) = read(r#"[{"script": "a.js", "log_file": "x.log"}]"#);
        assert_eq!(apps.len(), 1);
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("`log_file` is a PM2 setting"));
    }

    #[test]
    fn aliases_cannot_both_be_given() {
        let (_, diags) = read(r#"[{"script": "a.js", "out_file": "a", "output": "b"}]"#);
        assert_eq!(diags.len(), 1);
        assert!(
            diags[0].message.contains("`output` repeats `out_file`"),
            "{diags:?}"
        );
    }

    #[test]
    fn bad_values() {
        let (_, diags) = read(
            r#"[{"script": "a.js", "name": "all", "max_memory_restart": "lots", "kill_signal": "SIGTREM",
                "cron_restart": "daily", "healthcheck": "health", "instance_var": "1X", "args": "'open",
                "stop_exit_codes": [0, 300], "env_": {}}]"#,
        );
        let fields: Vec<&str> = diags.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "apps[0].name",
                "apps[0].max_memory_restart",
                "apps[0].kill_signal",
                "apps[0].cron_restart",
                "apps[0].healthcheck",
                "apps[0].instance_var",
                "apps[0].args",
                "apps[0].stop_exit_codes[1]",
                "apps[0].env_",
            ],
            "{diags:#?}"
        );
        assert_eq!(diags[2].hint.as_deref(), Some("did you mean `SIGTERM`?"));
    }

    #[test]
    fn a_single_app_object_is_accepted() {
        let (apps, diags) = read(r#"{"script": "a.js"}"#);
        assert!(diags.is_empty());
        assert_eq!(apps.len(), 1);
    }

    #[test]
    fn cron_zero_disables() {
        let (apps, diags) = read(r#"[{"script": "a.js", "cron_restart": 0}]"#);
        assert!(diags.is_empty());
        assert_eq!(apps[0].cron_restart, None);
    }
}
