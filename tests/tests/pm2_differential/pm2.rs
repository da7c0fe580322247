//! PM2 7 itself: found (installed by `scripts/test.sh` into `target/test-tools`), with a PM2
//! home of its own — one daemon for the whole suite, `pm2 kill`ed when the suite ends — and
//! what it resolved, in the suite's shape.
//!
//! One node process drives that daemon for every file, through PM2's own API: `start(file,
//! {env, only})` is the very call `pm2 start FILE --env E --only A` makes (`lib/binaries/CLI.js`
//! hands its parsed options to it), and `list()` returns what `pm2 jlist` prints. Starting the
//! PM2 CLI three times per file would cost the suite a minute of node start-ups.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::{Value, json};

use super::resolved::{Context, Fields, Outcome, as_text, set};

/// For each request line `{"file", "env", "only"}`: start, list, delete every app, then one
/// `@@ {"error", "list"}` line. Anything PM2 prints itself goes elsewhere than `@@` lines; the
/// driver's own stderr (each file it starts) goes to `driver.err` in the PM2 home.
const DRIVER: &str = r#"
const pm2 = require(process.argv[2]);
const lines = require('readline').createInterface({ input: process.stdin });
const answer = (o) => process.stdout.write('@@ ' + JSON.stringify(o) + '\n');
// Requests are queued from the first line on: a line read before PM2 is connected must not
// be lost.
const queue = [];
let connected = false;
let busy = false;
let closed = false;
const done = () => {
  if (closed && connected && !busy && queue.length === 0) pm2.disconnect();
};
const next = () => {
  if (!connected || busy || queue.length === 0) return done();
  busy = true;
  const req = queue.shift();
  process.stderr.write('starting ' + req.file + '\n');
  const opts = {};
  if (req.env) opts.env = req.env;
  if (req.only) opts.only = req.only;
  pm2.start(req.file, opts, (startErr) => {
    pm2.list((listErr, list) => {
      pm2.delete('all', () => {
        const error = startErr ? String(startErr.message || startErr) : null;
        answer({ error, list: list || [] });
        busy = false;
        next();
      });
    });
  });
};
lines.on('line', (line) => { queue.push(JSON.parse(line)); next(); });
lines.on('close', () => { closed = true; done(); });
pm2.connect((err) => {
  if (err) { answer({ error: String(err), list: [] }); process.exit(1); }
  process.stderr.write('connected\n');
  connected = true;
  next();
});
"#;

/// How long PM2 may take over one file before the suite gives up on it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// One PM2 daemon under a home of its own, and the node process driving it (its answers
/// arrive through a reader thread, so that waiting for one has a deadline); dropping it ends
/// the driver and runs `pm2 kill` for that home only.
pub struct Pm2 {
    bin: PathBuf,
    home: tempfile::TempDir,
    env: BTreeMap<String, String>,
    driver: Option<(Child, ChildStdin, Receiver<String>)>,
}

impl Pm2 {
    pub fn new(bin: PathBuf, env: &BTreeMap<String, String>) -> Pm2 {
        Pm2 {
            bin,
            home: tempfile::tempdir().expect("PM2 home"),
            env: env.clone(),
            driver: None,
        }
    }

    pub fn logs(&self) -> PathBuf {
        self.home.path().join("logs")
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env_clear()
            .envs(&self.env)
            .env("PM2_HOME", self.home.path())
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", self.bin.display()))
    }

    /// `pm2 --version` (its last line: the first run also prints a banner and starts the
    /// daemon).
    pub fn version(&self, dir: &Path) -> String {
        let out = self.run(dir, &["--version"]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().last().unwrap_or_default().trim().to_owned()
    }

    /// Starts the driver in `dir` (the working directory PM2 resolves against).
    pub fn drive(&mut self, dir: &Path) {
        let bin = std::fs::canonicalize(&self.bin).expect("the pm2 binary");
        let package = bin
            .parent()
            .and_then(Path::parent)
            .expect("pm2's package directory");
        let script = self.home.path().join("driver.js");
        std::fs::write(&script, DRIVER).expect("write the driver");
        let mut child = Command::new("node")
            .arg(&script)
            .arg(package)
            .env_clear()
            .envs(&self.env)
            .env("PM2_HOME", self.home.path())
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.home.path().join("driver.err")).expect("driver.err"))
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().expect("driver stdin");
        let stdout = BufReader::new(child.stdout.take().expect("driver stdout"));
        let (answers, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(json) = line.strip_prefix("@@ ")
                    && answers.send(json.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        self.driver = Some((child, stdin, received));
    }

    /// The ends of PM2's own log and of the driver's, to show what they were doing when
    /// PM2 stopped answering.
    fn log_tail(&self) -> String {
        let tail = |name: &str| {
            let log = std::fs::read_to_string(self.home.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(20);
            lines.get(from..).unwrap_or_default().join("\n")
        };
        format!(
            "{}\n--- the driver ---\n{}",
            tail("pm2.log"),
            tail("driver.err")
        )
    }

    /// `pm2 start <file> [--env E] [--only A]`, the list, then `delete all`.
    pub fn resolve(&mut self, ctx: &Context, file: &str, options: &[&str]) -> Outcome {
        let option = |name: &str| {
            options
                .iter()
                .position(|o| *o == name)
                .and_then(|i| options.get(i + 1))
                .map(|v| (*v).to_owned())
        };
        let request = json!({ "file": file, "env": option("--env"), "only": option("--only") });
        let (_, stdin, answers) = self.driver.as_mut().expect("drive() first");
        writeln!(stdin, "{request}").expect("send to the driver");
        stdin.flush().expect("send to the driver");
        let answer: Value = match answers.recv_timeout(ANSWER_TIMEOUT) {
            Ok(json) => serde_json::from_str(&json).expect("the driver's answer"),
            Err(RecvTimeoutError::Timeout) => panic!(
                "PM2 did not answer for {file} within {ANSWER_TIMEOUT:?}; its log ends:\n{}",
                self.log_tail()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the PM2 driver ended; its log ends:\n{}", self.log_tail())
            }
        };
        let procs = answer["list"].as_array().cloned().unwrap_or_default();
        if procs.is_empty() {
            return Outcome::Refused(as_text(&answer["error"]));
        }
        let mut apps: BTreeMap<String, (Fields, Vec<String>, Vec<String>)> = BTreeMap::new();
        for proc in &procs {
            let env = &proc["pm2_env"];
            let name = as_text(&env["name"]);
            let entry = apps
                .entry(name.clone())
                .or_insert_with(|| (fields(ctx, env, &name), Vec::new(), Vec::new()));
            let count = entry
                .0
                .get("instances")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            entry.0.insert("instances", json!(count + 1));
            entry
                .1
                .push(ctx.log(Path::new(&as_text(&env["pm_out_log_path"]))));
            entry
                .2
                .push(ctx.log(Path::new(&as_text(&env["pm_err_log_path"]))));
        }
        Outcome::Started(
            apps.into_iter()
                .map(|(name, (mut f, outs, errs))| {
                    f.insert("out_log", set(outs));
                    f.insert("err_log", set(errs));
                    (name, f)
                })
                .collect(),
        )
    }
}

impl Drop for Pm2 {
    fn drop(&mut self) {
        if let Some((mut child, stdin, _)) = self.driver.take() {
            drop(stdin);
            let _ = child.wait();
        }
        let _ = self.run(self.home.path(), &["kill"]);
    }
}

/// What `pm2 jlist` holds for one process, with PM2's defaults where it holds nothing (PM2
/// applies them when it runs the process: `God.js`, `constants.js`).
fn fields(ctx: &Context, e: &Value, name: &str) -> Fields {
    let or = |key: &str, default: Value| match &e[key] {
        Value::Null => default,
        v => v.clone(),
    };
    let strings = |v: &Value| -> Value {
        match v {
            Value::Array(items) => json!(items.iter().map(as_text).collect::<Vec<_>>()),
            Value::Null => json!([]),
            other => json!([as_text(other)]),
        }
    };
    let cwd = PathBuf::from(as_text(&e["pm_cwd"]));
    let interpreter = match as_text(&e["exec_interpreter"]).as_str() {
        "none" => "none".to_owned(),
        program => ctx.path(&on_path(program, &ctx.base_env)),
    };
    let env: Vec<(String, String)> = e["env"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), as_text(v))).collect())
        .unwrap_or_default();
    let watch: Vec<PathBuf> = match &e["watch"] {
        Value::Bool(true) => vec![PathBuf::from(".")],
        Value::String(s) => vec![PathBuf::from(s)],
        Value::Array(items) => items.iter().map(|i| PathBuf::from(as_text(i))).collect(),
        _ => Vec::new(),
    };
    let stop_exit_codes = match &e["stop_exit_codes"] {
        Value::Array(items) => json!(items),
        Value::Null => json!([]),
        one => json!([one]),
    };
    let positive = |key: &str| match &e[key] {
        Value::Number(n) if n.as_f64().is_some_and(|x| x > 0.0) => json!(n),
        _ => Value::Null,
    };
    let mut f = Fields::new();
    f.insert(
        "script",
        json!(ctx.path(Path::new(&as_text(&e["pm_exec_path"])))),
    );
    f.insert("args", strings(&e["args"]));
    f.insert("interpreter", json!(interpreter));
    f.insert("interpreter_args", strings(&e["node_args"]));
    f.insert("cwd", json!(ctx.path(&cwd)));
    f.insert("instances", json!(0));
    f.insert(
        "exec_mode",
        json!(as_text(&e["exec_mode"]).trim_end_matches("_mode")),
    );
    f.insert("env", ctx.env(env, name));
    f.insert("max_memory_restart", or("max_memory_restart", Value::Null));
    f.insert("autorestart", or("autorestart", json!(true)));
    f.insert("max_restarts", or("max_restarts", json!(16)));
    f.insert("min_uptime", or("min_uptime", json!(1000)));
    f.insert("restart_delay", or("restart_delay", json!(0)));
    f.insert(
        "exp_backoff_restart_delay",
        positive("exp_backoff_restart_delay"),
    );
    f.insert("stop_exit_codes", stop_exit_codes);
    f.insert("kill_timeout", or("kill_timeout", json!(1600)));
    // PM2 7 stops every app with one signal (`PM2_KILL_SIGNAL`, SIGINT): no per-app key.
    f.insert("kill_signal", json!("SIGINT"));
    f.insert("listen_timeout", or("listen_timeout", json!(3000)));
    f.insert("wait_ready", or("wait_ready", json!(false)));
    // `0` is "no cron" to PM2 (`God.registerCron`).
    let cron = match or("cron_restart", Value::Null) {
        v if as_text(&v) == "0" => Value::Null,
        v => v,
    };
    f.insert("cron_restart", cron);
    f.insert("watch", ctx.watch(&cwd, &watch));
    f.insert("ignore_watch", strings(&e["ignore_watch"]));
    f.insert("log_date_format", or("log_date_format", Value::Null));
    f.insert("time", or("time", json!(false)));
    f.insert(
        "instance_var",
        or("instance_var", json!("NODE_APP_INSTANCE")),
    );
    f.insert("increment_var", or("increment_var", Value::Null));
    f.insert("namespace", or("namespace", json!("default")));
    f
}

/// `program` as `execvp` would find it on the suite's PATH (absolute paths as they are).
pub fn on_path(program: &str, env: &BTreeMap<String, String>) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    env.get("PATH")
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}
