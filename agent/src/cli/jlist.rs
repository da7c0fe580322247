//! `jlist` and `prettylist`: the process list in the shape `pm2 jlist` prints, so scripts
//! written against PM2 (`jq '.[] | select(.pm2_env.status != "online") | .name'`) keep
//! working. Only the fields pmfleet has are filled: `pid`, `name`, `pm_id`, `monit` (memory,
//! cpu), and in `pm2_env` the status, exec mode, instances, uptime, restarts, cwd, script,
//! interpreter, args, log paths, the environment (as an `env` object and, as PM2 does, each
//! variable at the top of `pm2_env`), and pmfleet's own release. `list --json` is pmfleet's
//! own shape.

use std::collections::BTreeMap;
use std::path::Path;

use pmfleet_shared::protocol::{AppDetail, ExecModeSpec, ProcessInfo};
use serde_json::{Map, Value, json};

/// The PM2 entry of one instance; `detail` is its app's `show` answer, `now_ms` the clock.
pub fn entry(p: &ProcessInfo, detail: Option<&AppDetail>, now_ms: u64) -> Value {
    let mut env = Map::new();
    if let Some(d) = detail {
        let s = &d.spec;
        let (interpreter, exec_path, args) =
            command_parts(&s.program, &s.program_args, &s.script, &s.cwd);
        for (k, v) in &s.env {
            env.insert(k.clone(), Value::String(v.clone()));
        }
        env.insert("name".into(), json!(p.name));
        env.insert("namespace".into(), json!(p.namespace));
        env.insert("pm_cwd".into(), json!(s.cwd));
        env.insert("pm_exec_path".into(), json!(exec_path));
        env.insert("exec_interpreter".into(), json!(interpreter));
        env.insert("args".into(), json!(args));
        env.insert("instances".into(), json!(d.processes.len()));
        env.insert("autorestart".into(), json!(s.autorestart));
        env.insert("watch".into(), json!(!s.watch.is_empty()));
        env.insert("max_memory_restart".into(), json!(s.max_memory_restart));
        env.insert("kill_timeout".into(), json!(s.kill_timeout_ms));
        env.insert("instance_var".into(), json!(s.instance_var));
        env.insert(s.instance_var.clone(), json!(p.instance));
        let log = |logs: &[std::path::PathBuf]| {
            logs.get(p.instance as usize)
                .or_else(|| logs.first())
                .map(|l| l.display().to_string())
        };
        env.insert("pm_out_log_path".into(), json!(log(&d.out_logs)));
        env.insert("pm_err_log_path".into(), json!(log(&d.err_logs)));
        env.insert(
            "env".into(),
            Value::Object(
                s.env
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        );
    }
    env.insert("pm_id".into(), json!(p.id));
    env.insert("status".into(), json!(p.status.to_string()));
    env.insert(
        "exec_mode".into(),
        json!(match p.mode {
            ExecModeSpec::Cluster => "cluster_mode",
            ExecModeSpec::Fork => "fork_mode",
        }),
    );
    env.insert(
        "pm_uptime".into(),
        json!(p.uptime_ms.map(|u| now_ms.saturating_sub(u))),
    );
    env.insert("restart_time".into(), json!(p.restarts));
    env.insert("unstable_restarts".into(), json!(0));
    if let Some(r) = &p.release {
        env.insert("pmfleet_release".into(), json!(r));
    }
    json!({
        "pid": p.pid.unwrap_or(0),
        "name": p.name,
        "pm_id": p.id,
        "monit": {
            "memory": p.rss_bytes.unwrap_or(0),
            "cpu": p.cpu_percent.unwrap_or(0.0),
        },
        "pm2_env": Value::Object(env),
    })
}

/// The whole list: every instance, with its app's details when the agent gave them.
pub fn list(procs: &[ProcessInfo], details: &BTreeMap<String, AppDetail>, now_ms: u64) -> Value {
    Value::Array(
        procs
            .iter()
            .map(|p| entry(p, details.get(&p.name), now_ms))
            .collect(),
    )
}

/// `(exec_interpreter, pm_exec_path, args)` as PM2 names them, from the command the agent
/// runs: the interpreter is `none` when the script is executed itself.
fn command_parts(
    program: &str,
    program_args: &[String],
    script: &str,
    cwd: &Path,
) -> (String, String, Vec<String>) {
    let script_path = cwd.join(script).display().to_string();
    if let Some(at) = program_args.iter().position(|a| *a == script_path) {
        let interpreter = Path::new(program)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.to_owned());
        let args = program_args.get(at + 1..).unwrap_or_default().to_vec();
        return (interpreter, script_path, args);
    }
    ("none".to_owned(), program.to_owned(), program_args.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_reads_as_pm2_names_it() {
        let cwd = Path::new("/srv/app");
        let (i, p, a) = command_parts(
            "/usr/bin/node",
            &[
                "--inspect".into(),
                "/srv/app/server.js".into(),
                "--port".into(),
                "3".into(),
            ],
            "server.js",
            cwd,
        );
        assert_eq!((i.as_str(), p.as_str()), ("node", "/srv/app/server.js"));
        assert_eq!(a, ["--port", "3"]);
        let (i, p, a) = command_parts("/usr/bin/npm", &["start".into()], "npm", cwd);
        assert_eq!((i.as_str(), p.as_str()), ("none", "/usr/bin/npm"));
        assert_eq!(a, ["start"]);
    }
}
