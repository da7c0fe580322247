//! pmfleet's side: what really runs — `pmfleet-agent start <file>` in an agent home of its
//! own, then `list --json` and `show <app> --json` — in the suite's shape.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pmfleet_testkit::AgentHome;
use serde_json::{Value, json};

use super::resolved::{Context, Fields, Outcome, as_text, set};

/// The agent, started with the suite's environment; dropping it stops its daemon.
pub struct Agent {
    home: AgentHome,
    env: BTreeMap<String, String>,
}

impl Agent {
    pub fn new(env: &BTreeMap<String, String>) -> Agent {
        Agent {
            home: AgentHome::with_binary(pmfleet_testkit::binaries::agent_bin()),
            env: env.clone(),
        }
    }

    pub fn logs(&self) -> PathBuf {
        self.home.home.path().join("logs")
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(self.home.binary())
            .args(args)
            .env_clear()
            .envs(&self.env)
            .env("PMFLEET_AGENT_HOME", self.home.home.path())
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("run pmfleet-agent {args:?}: {e}"))
    }

    fn json(&self, dir: &Path, args: &[&str]) -> Value {
        let out = self.run(dir, args);
        assert!(
            out.status.success(),
            "pmfleet-agent {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("pmfleet-agent {args:?} is not JSON: {e}"))
    }

    /// `pmfleet-agent start <file> <options>`, what it runs, then `delete all`.
    pub fn resolve(&self, ctx: &Context, file: &str, options: &[&str]) -> Outcome {
        let mut args = vec!["start", file];
        args.extend(options);
        let started = self.run(&ctx.dir, &args);
        if !started.status.success() {
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&started.stdout),
                String::from_utf8_lossy(&started.stderr)
            );
            let _ = self.run(&ctx.dir, &["delete", "all"]);
            return Outcome::Refused(said);
        }
        let list = self.json(&ctx.dir, &["list", "--json"]);
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for proc in list.as_array().into_iter().flatten() {
            *counts.entry(as_text(&proc["name"])).or_default() += 1;
        }
        let mut apps = BTreeMap::new();
        for (name, count) in counts {
            let shown = self.json(&ctx.dir, &["show", &name, "--json"]);
            let mut f = fields(ctx, &shown);
            f.insert("instances", json!(count));
            apps.insert(name, f);
        }
        let _ = self.run(&ctx.dir, &["delete", "all"]);
        Outcome::Started(apps)
    }
}

/// The spec the agent runs, split back into PM2's parts: the interpreter and its arguments,
/// the script, the script's arguments.
fn fields(ctx: &Context, shown: &Value) -> Fields {
    let s = &shown["spec"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|items| items.iter().map(as_text).collect())
            .unwrap_or_default()
    };
    let cwd = PathBuf::from(as_text(&s["cwd"]));
    let program = as_text(&s["program"]);
    let program_args = strings(&s["program_args"]);
    let written = as_text(&s["script"]);
    let is_script = |arg: &str| {
        Path::new(arg) == cwd.join(&written)
            || (!written.contains('/')
                && Path::new(arg).file_name().and_then(|n| n.to_str()) == Some(written.as_str()))
    };
    let (interpreter, interpreter_args, script, args) =
        match program_args.iter().position(|a| is_script(a)) {
            Some(i) if !is_script(&program) && !written.contains(' ') => (
                ctx.path(Path::new(&program)),
                program_args.get(..i).unwrap_or_default().to_vec(),
                program_args.get(i).cloned().unwrap_or_default(),
                program_args.get(i + 1..).unwrap_or_default().to_vec(),
            ),
            _ => ("none".to_owned(), Vec::new(), program, program_args),
        };
    let env: Vec<(String, String)> = s["env"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), as_text(v))).collect())
        .unwrap_or_default();
    let watch: Vec<PathBuf> = strings(&s["watch"])
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let logs = |key: &str| {
        set(strings(&shown[key])
            .iter()
            .map(|p| ctx.log(Path::new(p)))
            .collect())
    };
    let name = as_text(&s["name"]);
    let mut f = Fields::new();
    f.insert("script", json!(ctx.path(Path::new(&script))));
    f.insert("args", json!(args));
    f.insert("interpreter", json!(interpreter));
    f.insert("interpreter_args", json!(interpreter_args));
    f.insert("cwd", json!(ctx.path(&cwd)));
    f.insert("exec_mode", s["exec_mode"].clone());
    f.insert("env", ctx.env(env, &name));
    f.insert("max_memory_restart", s["max_memory_restart"].clone());
    f.insert("autorestart", s["autorestart"].clone());
    f.insert("max_restarts", s["max_restarts"].clone());
    f.insert("min_uptime", s["min_uptime_ms"].clone());
    f.insert("restart_delay", s["restart_delay_ms"].clone());
    f.insert(
        "exp_backoff_restart_delay",
        s["exp_backoff_restart_delay_ms"].clone(),
    );
    f.insert("stop_exit_codes", s["stop_exit_codes"].clone());
    f.insert("kill_timeout", s["kill_timeout_ms"].clone());
    f.insert("kill_signal", s["kill_signal"].clone());
    f.insert("listen_timeout", s["listen_timeout_ms"].clone());
    f.insert("wait_ready", s["wait_ready"].clone());
    f.insert("cron_restart", s["cron_restart"].clone());
    f.insert("watch", ctx.watch(&cwd, &watch));
    f.insert("ignore_watch", json!(strings(&s["ignore_watch"])));
    f.insert("out_log", logs("out_logs"));
    f.insert("err_log", logs("err_logs"));
    f.insert("log_date_format", s["log_date_format"].clone());
    f.insert("time", s["time"].clone());
    f.insert("instance_var", s["instance_var"].clone());
    f.insert("increment_var", s["increment_var"].clone());
    f.insert("namespace", s["namespace"].clone());
    f
}
