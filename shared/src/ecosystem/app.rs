//! Validation of `apps[]` entries into [`App`], reading what PM2 reads the way PM2 reads it:
//! its spellings of every key, `null` or `""` for "not set", numbers written as strings, env
//! values of any type, names with `/` or spaces, `exec_mode` decided as PM2 decides it.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use super::app_values::{
    read_cron, read_exec_mode, read_exit_codes, read_instances, read_log_path, read_name,
    read_signal, read_var_name, read_watch, read_words,
};
use super::defaults::{TIME_FORMAT, name_from_script};
use super::diagnostic::{FieldPath, Report};
use super::fields::{self, EnvBlock};
use super::health::read_healthcheck;
use super::keys::{self, KeyDef, Schema};
use super::model::{App, ExecMode, Instances, Interpreter};
use super::value::{Kind, Value};

static APP_SCHEMA: Schema = Schema {
    keys: &[
        KeyDef::new("name"),
        // `cmd` and `command` are taken before `exec` (`Common.verifyConfs` copies them to
        // `script` before the schema's aliases are read).
        KeyDef::spelled("script", &["script", "cmd", "command", "exec"]),
        KeyDef::new("args"),
        KeyDef::spelled(
            "interpreter",
            &["exec_interpreter", "interpreter", "execInterpreter"],
        ),
        KeyDef::spelled(
            "interpreter_args",
            &[
                "node_args",
                "interpreter_args",
                "interpreterArgs",
                "nodeArgs",
            ],
        ),
        KeyDef::new("cwd"),
        KeyDef::new("instances"),
        KeyDef::new("exec_mode"),
        KeyDef::new("env"),
        KeyDef::new("port"),
        KeyDef::new("max_memory_restart"),
        KeyDef::new("autorestart"),
        KeyDef::new("autostart"),
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
        KeyDef::spelled(
            "out_file",
            &["out_file", "out_log", "output", "out", "outFile"],
        ),
        KeyDef::spelled(
            "error_file",
            &[
                "error_file",
                "err_log",
                "err_file",
                "err",
                "error",
                "errorFile",
            ],
        ),
        KeyDef::spelled("merge_logs", &["merge_logs", "combine_logs", "mergeLogs"]),
        KeyDef::new("log_date_format"),
        KeyDef::new("time"),
        KeyDef::new("instance_var"),
        KeyDef::new("increment_var"),
        KeyDef::spelled("cron_restart", &["cron_restart", "cron", "cronRestart"]),
        KeyDef::new("namespace"),
        KeyDef::new("append_env_to_name"),
        KeyDef::new("execute_command"),
        KeyDef::new("healthcheck"),
        KeyDef::new("metrics"),
        KeyDef::new("deploy_timeout"),
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
        ("force", ""),
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

/// Reads `apps`: an array of app objects (or, as PM2 allows, a single object). `at` is the
/// field the apps are under (`apps`, `pm2`, or the top level for a file that is one app).
pub(crate) fn read_apps(r: &mut Report, v: &Value, at: &FieldPath) -> Vec<App> {
    let items: Vec<(FieldPath, &Value)> = match &v.kind {
        Kind::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (at.index(i), item))
            .collect(),
        Kind::Map(_) => vec![(at.clone(), v)],
        _ => {
            r.expected(v, at, "an array of apps", None);
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

/// What an app entry said beyond the [`App`] itself, for the decisions taken at the end.
#[derive(Default)]
struct Written<'v> {
    name: Option<&'v Value>,
    script: Option<(String, &'v Value)>,
    args: Option<&'v Value>,
    exec_mode: Option<ExecMode>,
    instances: bool,
    merge_logs: bool,
    execute_command: bool,
    log_date_format: Option<&'v Value>,
}

/// One app; `None` (after reporting) when anything in it is wrong. Also returns the `name`
/// value, to point at it when the name turns out to be taken.
fn read_app<'v>(r: &mut Report, v: &'v Value, f: &FieldPath) -> Option<(App, Option<&'v Value>)> {
    let entries = fields::object(r, v, f)?;
    let errors_before = r.error_count();
    let mut app = App::default();
    let mut written = Written::default();

    let plain = entries.iter().filter(|e| !e.key.starts_with("env_"));
    let selected = keys::select(r, &APP_SCHEMA, plain, f);
    // In the order written, so that problems are reported in it.
    for entry in entries {
        let field = f.key(&entry.key);
        if let Some(env_name) = entry.key.strip_prefix("env_") {
            read_named_env(r, &mut app, env_name, entry, &field);
            continue;
        }
        let Some((key, _)) = selected
            .entries
            .iter()
            .find(|(_, chosen)| std::ptr::eq(*chosen, entry))
        else {
            continue;
        };
        let value = &entry.value;
        // PM2 reads `null` and `""` as "not set" (a script is the exception: it is required).
        let unset = matches!(&value.kind, Kind::Null) || value.as_str() == Some("");
        if unset && *key != "script" {
            continue;
        }
        read_key(r, &mut app, &mut written, key, value, &field);
    }

    match written.script.take() {
        Some((script, value)) => finish_script(r, &mut app, &written, script, value, f),
        None if !selected.has("script") => r.error(
            v,
            f,
            "missing required key `script`",
            Some("add `script`: the file or command to run, e.g. \"dist/server.js\"".to_owned()),
        ),
        None => {}
    }
    finish_exec_mode(r, &mut app, &written, f);
    // PM2 (`Common.verifyConfs`) merges the logs of an app not written in cluster mode whose
    // instance count is 0 (`0`, `max`), before it picks cluster mode for it. (Without an
    // instance count it does too, which changes nothing: one instance has one log.)
    if !written.merge_logs
        && written.exec_mode != Some(ExecMode::Cluster)
        && app.instances == Instances::Max
    {
        app.merge_logs = true;
    }
    if app.time {
        if let Some(format) = written.log_date_format
            && app.log_date_format.as_deref() != Some(TIME_FORMAT)
        {
            r.warning_at(
                format.pos,
                &f.key("log_date_format"),
                format!("`time: true` replaces log_date_format with \"{TIME_FORMAT}\", as PM2 does"),
                Some("drop `time` to keep your format (a log_date_format alone also timestamps the lines)".to_owned()),
            );
        }
        app.log_date_format = Some(TIME_FORMAT.to_owned());
    }

    (r.error_count() == errors_before).then_some((app, written.name))
}

/// One key of an app entry, already known to be set.
fn read_key<'v>(
    r: &mut Report,
    app: &mut App,
    written: &mut Written<'v>,
    key: &str,
    value: &'v Value,
    field: &FieldPath,
) {
    match key {
        "name" => {
            written.name = Some(value);
            if let Some(n) = read_name(r, value, field) {
                app.name = n;
            }
        }
        "script" => {
            if let Some(s) = fields::text(r, value, field) {
                written.script = Some((s, value));
            }
        }
        "args" => {
            written.args = Some(value);
            app.args = read_words(r, value, field).unwrap_or_default();
        }
        "interpreter" => {
            if let Some(i) = fields::text(r, value, field) {
                app.interpreter = if i == "none" {
                    Interpreter::None
                } else {
                    Interpreter::Program(i)
                };
            }
        }
        "interpreter_args" => {
            app.interpreter_args = read_words(r, value, field).unwrap_or_default()
        }
        "cwd" => app.cwd = fields::text(r, value, field).map(PathBuf::from),
        "instances" => {
            written.instances = true;
            if let Some(i) = read_instances(r, value, field) {
                app.instances = i;
            }
        }
        "exec_mode" => written.exec_mode = read_exec_mode(r, value, field),
        "env" => app.env = fields::env_map(r, value, field, EnvBlock::App).unwrap_or_default(),
        "port" => app.port = fields::port(r, value, field),
        "max_memory_restart" => app.max_memory_restart = fields::bytes(r, value, field),
        "autorestart" => set(&mut app.autorestart, fields::boolean(r, value, field)),
        "autostart" => set(&mut app.autostart, fields::boolean(r, value, field)),
        "max_restarts" => set(
            &mut app.max_restarts,
            fields::int_in(
                r,
                value,
                field,
                0,
                i64::from(u32::MAX),
                "a number of restarts (0 or more)",
            )
            .and_then(|n| u32::try_from(n).ok()),
        ),
        "min_uptime" => set(&mut app.min_uptime, fields::duration(r, value, field)),
        "restart_delay" => set(&mut app.restart_delay, fields::duration(r, value, field)),
        "exp_backoff_restart_delay" => {
            app.exp_backoff_restart_delay =
                fields::duration(r, value, field).filter(|d| !d.is_zero());
        }
        "stop_exit_codes" => {
            app.stop_exit_codes = read_exit_codes(r, value, field).unwrap_or_default()
        }
        "kill_timeout" => set(&mut app.kill_timeout, fields::duration(r, value, field)),
        "kill_signal" => set(&mut app.kill_signal, read_signal(r, value, field)),
        "listen_timeout" => set(&mut app.listen_timeout, fields::duration(r, value, field)),
        "wait_ready" => set(&mut app.wait_ready, fields::boolean(r, value, field)),
        "watch" => set(&mut app.watch, read_watch(r, value, field)),
        "ignore_watch" => app.ignore_watch = read_words(r, value, field).unwrap_or_default(),
        "out_file" => app.out_file = read_log_path(r, value, field),
        "error_file" => app.error_file = read_log_path(r, value, field),
        "merge_logs" => {
            written.merge_logs = true;
            set(&mut app.merge_logs, fields::boolean(r, value, field));
        }
        "log_date_format" => {
            written.log_date_format = Some(value);
            app.log_date_format = fields::text(r, value, field);
        }
        "time" => set(&mut app.time, fields::boolean(r, value, field)),
        "instance_var" => set(&mut app.instance_var, read_var_name(r, value, field)),
        "increment_var" => app.increment_var = read_var_name(r, value, field),
        "cron_restart" => app.cron_restart = read_cron(r, value, field),
        "namespace" => set(&mut app.namespace, fields::text(r, value, field)),
        "append_env_to_name" => set(
            &mut app.append_env_to_name,
            fields::boolean(r, value, field),
        ),
        "execute_command" => {
            written.execute_command = fields::boolean(r, value, field).unwrap_or(false)
        }
        "healthcheck" => app.healthcheck = read_healthcheck(r, value, field),
        "metrics" => app.metrics = super::app_values::read_metrics(r, value, field),
        "deploy_timeout" => app.deploy_timeout = fields::duration(r, value, field),
        _ => {}
    }
}

/// `env_<name>`: the app's environment for `--env <name>`.
fn read_named_env(
    r: &mut Report,
    app: &mut App,
    env_name: &str,
    entry: &super::value::Entry,
    field: &FieldPath,
) {
    if env_name.is_empty() || matches!(entry.value.kind, Kind::Null) {
        r.warning_at(
            entry.key_pos,
            field,
            format!("`{}` names no environment and is ignored", entry.key),
            Some("e.g. `env_production`, used with `--env production`".to_owned()),
        );
    } else if app.env_by_name.contains_key(env_name) {
        r.error_at(
            entry.key_pos,
            field,
            format!("`{}` is given twice", entry.key),
            None,
        );
    } else if let Some(env) = fields::env_map(r, &entry.value, field, EnvBlock::App) {
        app.env_by_name.insert(env_name.to_owned(), env);
    }
}

/// The script, the name it gives the app, and a script with spaces (which PM2 runs through
/// `bash -c`, dropping `args`).
fn finish_script(
    r: &mut Report,
    app: &mut App,
    written: &Written<'_>,
    script: String,
    value: &Value,
    f: &FieldPath,
) {
    if written.name.is_none() || app.name.is_empty() {
        app.name = name_from_script(&script);
    }
    if script.contains(' ')
        && let Some(args) = written.args
    {
        r.warning(
            args,
            &f.key("args"),
            format!(
                "PM2 runs a script with spaces ({}) through `bash -c` and ignores `args`; so does pmfleet",
                value.describe()
            ),
            Some("put the arguments in `script`, or name the program in `script` and keep `args`".to_owned()),
        );
        app.args.clear();
    }
    app.script = script;
}

/// `exec_mode` as PM2 decides it when the file does not say: cluster when node runs the app
/// and `instances` is written (a count, `max`/0, or -1), fork otherwise; `execute_command`
/// forces fork.
fn finish_exec_mode(r: &mut Report, app: &mut App, written: &Written<'_>, f: &FieldPath) {
    let pm2_cluster = matches!(
        app.instances,
        Instances::Count(_) | Instances::Max | Instances::AllBut(1)
    );
    app.exec_mode = match written.exec_mode {
        _ if written.execute_command => ExecMode::Fork,
        Some(mode) => mode,
        None if written.instances && pm2_cluster && app.runs_on_node() => ExecMode::Cluster,
        None => ExecMode::Fork,
    };
    if app.exec_mode == ExecMode::Fork
        && written.exec_mode.is_none()
        && app.instances != Instances::Count(1)
        && let Some(port) = app.port
    {
        r.warning_at(
            None,
            &f.key("exec_mode"),
            format!(
                "without `exec_mode` these instances run in fork mode, as in PM2 (node does not run the script), and each one binds port {port} itself"
            ),
            Some("write `exec_mode: \"cluster\"` to have the agent bind the port once and share it".to_owned()),
        );
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Every `deploy.<env>.env` block of the file goes into each app, as its lowest layer with
/// `--env <env>` ([`App::resolved_env`]).
pub(crate) fn attach_deploy_env(
    apps: &mut [App],
    blocks: &BTreeMap<String, BTreeMap<String, String>>,
) {
    for app in apps {
        app.deploy_env_by_name = blocks.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecosystem::{Diagnostic, Watch, json};
    use std::path::Path;
    use std::time::Duration;

    fn read(text: &str) -> (Vec<App>, Vec<Diagnostic>) {
        let v = json::parse(text).unwrap();
        let mut r = Report::new(Path::new("e.json"));
        let apps = read_apps(&mut r, &v, &FieldPath::root().key("apps"));
        (apps, r.into_diagnostics())
    }

    fn one(text: &str) -> (App, Vec<Diagnostic>) {
        let (apps, diags) = read(&format!("[{text}]"));
        assert_eq!(apps.len(), 1, "{text}: {diags:#?}");
        (apps.into_iter().next().unwrap(), diags)
    }

    #[test]
    fn defaults_are_pm2s() {
        let (apps, diags) = read(r#"[{"script": "dist/server.js"}]"#);
        assert!(diags.is_empty());
        assert_eq!(apps[0], App::from_script("dist/server.js"));
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
                "log_date_format": "YYYY-MM-DD", "instance_var": "INSTANCE_ID", "exec_mode": "cluster",
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
        assert_eq!(a.log_date_format.as_deref(), Some("YYYY-MM-DD"));
        assert!(!a.time);
        assert_eq!(a.instance_var, "INSTANCE_ID");
        assert_eq!(a.increment_var.as_deref(), Some("PORT"));
        assert_eq!(a.cron_restart.as_deref(), Some("0 3 * * *"));
        assert_eq!(a.namespace, "web");
        assert_eq!(
            a.healthcheck,
            Some(crate::protocol::HealthCheck::legacy("/health"))
        );
    }

    #[test]
    fn metrics_name_the_apps_own_endpoint() {
        use crate::protocol::MetricsEndpoint;
        let endpoint = |path: &str, port| {
            Some(MetricsEndpoint {
                path: path.into(),
                port,
            })
        };
        let table = [
            (r#""/metrics""#, endpoint("/metrics", None), 0),
            (r#"{"port": 9464}"#, endpoint("/metrics", Some(9464)), 0),
            (
                r#"{"path": "/m", "port": "9464"}"#,
                endpoint("/m", Some(9464)),
                0,
            ),
            (r#""metrics""#, None, 1),
            (r#"{"path": "no slash"}"#, None, 1),
            (r#"{"pth": "/m"}"#, None, 1),
            ("true", None, 1),
        ];
        for (value, want, errors) in table {
            let (apps, diags) = read(&format!(
                r#"[{{"name": "api", "script": "a.js", "metrics": {value}}}]"#
            ));
            assert_eq!(diags.len(), errors, "{value}: {diags:?}");
            if errors == 0 {
                assert_eq!(apps[0].metrics, want, "{value}");
            } else {
                assert!(diags[0].field.starts_with("apps[0].metrics"), "{diags:?}");
            }
        }
    }

    #[test]
    fn exec_mode_is_decided_as_pm2_decides_it() {
        // (keys, mode): PM2 7's `determineExecMode` for the same app.
        let cases = [
            (r#""script": "a.js""#, ExecMode::Fork),
            (r#""script": "a.js", "instances": 1"#, ExecMode::Cluster),
            (r#""script": "a.js", "instances": 4"#, ExecMode::Cluster),
            (r#""script": "a.js", "instances": "4""#, ExecMode::Cluster),
            (r#""script": "a.js", "instances": 0"#, ExecMode::Cluster),
            (r#""script": "a.js", "instances": "max""#, ExecMode::Cluster),
            (r#""script": "a.js", "instances": -1"#, ExecMode::Cluster),
            (r#""script": "a.js", "instances": -2"#, ExecMode::Fork),
            (
                r#""script": "a.js", "instances": 2, "exec_mode": "fork_mode""#,
                ExecMode::Fork,
            ),
            (
                r#""script": "a.js", "instances": 2, "exec_mode": """#,
                ExecMode::Cluster,
            ),
            (
                r#""script": "a.js", "exec_mode": "cluster""#,
                ExecMode::Cluster,
            ),
            (
                r#""script": "a.js", "execMode": "cluster""#,
                ExecMode::Cluster,
            ),
            (r#""script": "w.py", "instances": 4"#, ExecMode::Fork),
            (r#""script": "run.sh", "instances": 2"#, ExecMode::Fork),
            (
                r#""script": "server", "interpreter": "/usr/bin/node", "instances": 2"#,
                ExecMode::Cluster,
            ),
            (
                r#""script": "a.js", "instances": 2, "interpreter": "none""#,
                ExecMode::Fork,
            ),
            (
                r#""script": "a.js", "instances": 2, "execute_command": true"#,
                ExecMode::Fork,
            ),
            (
                r#""script": "a.js", "instances": 2, "exec_mode": "cluster", "execute_command": true"#,
                ExecMode::Fork,
            ),
        ];
        for (text, mode) in cases {
            let (app, diags) = one(&format!("{{{text}}}"));
            assert!(diags.is_empty(), "{text}: {diags:?}");
            assert_eq!(app.exec_mode, mode, "{text}");
        }
        let (_, diags) = one(r#"{"script": "w.py", "instances": 2, "port": 8000}"#);
        assert_eq!(diags.len(), 1);
        assert!(
            diags[0].message.contains("binds port 8000 itself"),
            "{diags:?}"
        );
    }

    #[test]
    fn one_per_cpu_merges_the_logs_as_in_pm2() {
        let (app, _) = one(r#"{"script": "a.js", "instances": "max"}"#);
        assert_eq!(app.exec_mode, ExecMode::Cluster);
        assert!(app.merge_logs);
        let (app, _) = one(r#"{"script": "a.js", "instances": 0, "exec_mode": "cluster"}"#);
        assert!(!app.merge_logs, "written in cluster mode");
        let (app, _) = one(r#"{"script": "a.js", "instances": "max", "merge_logs": false}"#);
        assert!(!app.merge_logs, "written");
        let (app, _) = one(r#"{"script": "a.js", "instances": 2}"#);
        assert!(!app.merge_logs);
    }

    #[test]
    fn instances_as_pm2_reads_them() {
        for (text, want) in [
            ("4", Instances::Count(4)),
            ("\"4\"", Instances::Count(4)),
            ("\" 3 \"", Instances::Count(3)),
            ("0", Instances::Max),
            ("-1", Instances::AllBut(1)),
            ("-3", Instances::AllBut(3)),
            ("\"MAX\"", Instances::Max),
        ] {
            let (app, diags) = one(&format!(r#"{{"script": "a.js", "instances": {text}}}"#));
            assert!(diags.is_empty(), "{text}: {diags:?}");
            assert_eq!(app.instances, want, "{text}");
        }
        let (app, diags) = one(r#"{"script": "a.js", "instances": "lots"}"#);
        assert_eq!(app.instances, Instances::Max);
        assert!(!diags[0].is_error());
        assert!(diags[0].message.contains("one per CPU"));
        let (app, diags) = one(r#"{"script": "a.js", "instances": "2 workers"}"#);
        assert_eq!(app.instances, Instances::Count(2));
        assert!(diags.is_empty());
        let (apps, diags) =
            read(r#"[{"script": "a.js", "instances": 1.5, "exec_mode": "clustr"}]"#);
        assert!(apps.is_empty());
        assert_eq!(diags.len(), 2);
        assert_eq!(diags[1].hint.as_deref(), Some("did you mean `cluster`?"));
    }

    #[test]
    fn what_pm2_tolerates() {
        let (app, diags) = one(
            r#"{"name": "api/v2 (eu)", "script": "a.js", "cwd": null, "interpreter": "", "out_file": "",
                "error_file": "NULL", "namespace": "", "instance_var": "MY-VAR",
                "env": {"N": 1.5, "B": false, "O": {"a": [1, "x"]}, "Z": null, "my.var": "x", "MY-VAR": "y"},
                "max_memory_restart": "1G", "kill_timeout": "3000", "max_restarts": "5", "args": ["a", 1, true]}"#,
        );
        assert!(diags.is_empty(), "{diags:#?}");
        assert_eq!(app.name, "api/v2 (eu)");
        assert_eq!(app.cwd, None);
        assert_eq!(app.interpreter, Interpreter::Auto);
        assert_eq!(app.out_file, None);
        assert_eq!(app.error_file.as_deref(), Some(Path::new("/dev/null")));
        assert_eq!(app.namespace, "default");
        assert_eq!(app.instance_var, "MY-VAR");
        assert_eq!(app.env["N"], "1.5");
        assert_eq!(app.env["B"], "false");
        assert_eq!(app.env["O"], r#"{"a":[1,"x"]}"#);
        assert_eq!(app.env["Z"], "null");
        assert_eq!(app.env["my.var"], "x");
        assert_eq!(app.max_memory_restart, Some(1 << 30));
        assert_eq!(app.kill_timeout, Duration::from_secs(3));
        assert_eq!(app.max_restarts, 5);
        assert_eq!(app.args, vec!["a", "1", "true"]);
    }

    #[test]
    fn scripts_with_spaces_and_commands() {
        let (app, diags) = one(r#"{"script": "python3 -m http.server 8000"}"#);
        assert!(diags.is_empty());
        assert_eq!(app.name, "python3 -m http", "PM2's name for it");
        assert_eq!(app.script, "python3 -m http.server 8000");
        let (app, diags) = one(r#"{"name": "sp", "script": "sleep 10 && echo", "args": "x"}"#);
        assert!(app.args.is_empty());
        assert_eq!(diags.len(), 1);
        assert!(!diags[0].is_error());
        assert!(diags[0].message.contains("bash -c"), "{diags:?}");
        let (app, diags) = one(r#"{"name": "npm", "script": "npm", "args": "run start"}"#);
        assert!(diags.is_empty());
        assert_eq!(app.args, vec!["run", "start"]);
        let (app, _) = one(r#"{"cmd": "a.js"}"#);
        assert_eq!(app.script, "a.js");
        let (app, diags) = one(r#"{"exec": "b.js", "command": "a.js"}"#);
        assert_eq!(app.script, "a.js", "`command` comes before `exec` in PM2");
        assert_eq!(diags.len(), 1);
    }

    #[test]
    fn spellings_given_together() {
        let (app, diags) = one(
            r#"{"script": "a.js", "merge_logs": false, "combine_logs": true, "node_args": "--x", "interpreter_args": "--y",
                "exec_interpreter": "node", "interpreter": "bash", "err": "e1.log", "error": "e2.log"}"#,
        );
        assert!(
            app.merge_logs,
            "PM2 skips a false merge_logs for combine_logs"
        );
        assert_eq!(app.interpreter_args, vec!["--x"]);
        assert_eq!(app.interpreter, Interpreter::Program("node".into()));
        assert_eq!(app.error_file.as_deref(), Some(Path::new("e1.log")));
        assert_eq!(diags.len(), 4, "{diags:#?}");
        assert!(diags.iter().all(|d| !d.is_error()));
        let fields: Vec<&str> = diags.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "apps[0].merge_logs",
                "apps[0].interpreter_args",
                "apps[0].interpreter",
                "apps[0].error"
            ]
        );
    }

    #[test]
    fn time_takes_pm2s_format() {
        let (app, diags) = one(r#"{"script": "a.js", "time": true}"#);
        assert!(diags.is_empty());
        assert_eq!(app.log_date_format.as_deref(), Some(TIME_FORMAT));
        let (app, diags) = one(r#"{"script": "a.js", "time": true, "log_date_format": "YYYY"}"#);
        assert_eq!(app.log_date_format.as_deref(), Some(TIME_FORMAT));
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("replaces log_date_format"));
    }

    #[test]
    fn duplicate_names_and_missing_script() {
        let (apps, diags) =
            read(r#"[{"script": "a.js"}, {"script": "lib/a.js"}, {"name": "x"}, {"script": ""}]"#);
        assert_eq!(apps.len(), 1);
        assert_eq!(diags.len(), 3);
        assert_eq!(diags[0].field, "apps[1].name");
        assert!(diags[0].message.contains("two apps are named `a`"));
        assert_eq!(diags[1].field, "apps[2]");
        assert_eq!(diags[1].message, "missing required key `script`");
        assert_eq!(diags[2].field, "apps[3].script");
    }

    #[test]
    fn unknown_and_unimplemented_keys_are_warnings() {
        let (apps, diags) = read(
            r#"[{"script": "a.js", "isntances": 2, "vizion": false, "uid": "www", "logFile": "x"}]"#,
        );
        assert_eq!(apps.len(), 1);
        assert_eq!(diags.len(), 4);
        assert!(diags.iter().all(|d| !d.is_error()));
        assert_eq!(diags[0].hint.as_deref(), Some("did you mean `instances`?"));
        assert!(diags[3].message.contains("`log_file` is a PM2 setting"));
    }

    #[test]
    fn bad_values() {
        let (_, diags) = read(
            r#"[{"script": "a.js", "name": "all", "max_memory_restart": "lots", "kill_signal": "SIGTREM",
                "cron_restart": "daily", "healthcheck": "health", "instance_var": "A=B", "args": "a\u0000b",
                "stop_exit_codes": [0, 300], "env": {"A=B": 1}}]"#,
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
                "apps[0].env[\"A=B\"]",
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
        let (app, diags) = one(r#"{"script": "a.js", "cron_restart": 0}"#);
        assert!(diags.is_empty());
        assert_eq!(app.cron_restart, None);
    }

    #[test]
    fn env_blocks_without_a_name_are_ignored() {
        let (app, diags) = one(r#"{"script": "a.js", "env_": {"A": 1}, "env_prod": null}"#);
        assert!(app.env_by_name.is_empty());
        assert_eq!(diags.len(), 2);
        assert!(diags.iter().all(|d| !d.is_error()));
    }
}
