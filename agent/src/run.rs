//! `pmfleet-agent run FILE [--env E]`: the container mode (PM2's `pm2-runtime`). The daemon
//! runs in this process, in the foreground, with the apps of one ecosystem file, and this
//! process does what a container's PID 1 must:
//!
//! - every app's log lines go to its stdout and stderr, prefixed `app[instance] | ` (one JSON
//!   object a line with `--json`), so `docker logs` shows them;
//! - orphans are reaped (the daemon's reaper: it is a child subreaper, and PID 1 here);
//! - SIGTERM and SIGINT stop every app gracefully (its kill signal, then SIGKILL after its
//!   `kill_timeout`) while their last lines are still printed, then the process exits 0; a
//!   second signal exits at once (130);
//! - when every app has ended by itself, the process exits with a code that says how
//!   ([`final_code`]): 0 when they ended well, their exit code, 1 when one gave up
//!   restarting (errored), 2 when nothing could be started.
//!
//! Cluster mode, reloads (`pmfleet-agent reload` from `docker exec`, which reaches this
//! daemon through the home's socket) and the restart policy work as usual. A container starts
//! from its image, so the home's saved process list and log files are not taken over (they
//! are moved aside): `run` starts with the file's apps only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pmfleet_shared::protocol::{
    LogLine, OnRunning, ProcessInfo, Request, Response, Status, Target,
};
use tokio_util::sync::CancellationToken;

use crate::cli::start;
use crate::client::Client;
use crate::daemon::{DaemonOptions, run_with};
use crate::daemon_lock::{self, Holder};
use crate::home::AgentHome;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The ecosystem file (default: the one of this directory, under PM2's names).
    pub file: Option<PathBuf>,
    /// `env_<name>` blocks to apply.
    #[arg(long = "env")]
    pub env_name: Option<String>,
    /// Only these apps of the file (comma-separated).
    #[arg(long)]
    pub only: Option<String>,
    /// Log lines and the agent's own messages as JSON objects, one per line.
    #[arg(long)]
    pub json: bool,
    /// Keep running when every app has ended (PM2's `--no-auto-exit`), until a signal.
    #[arg(long)]
    pub no_auto_exit: bool,
}

/// The exit code when nothing could be started (a bad file, every app `autostart: false`).
pub const NOTHING_STARTED: u8 = 2;

/// How long the log stream may stay silent before the last lines count as printed.
const LOGS_SETTLED: Duration = Duration::from_millis(300);
/// At most this long to print the last lines once the apps are gone.
const LOGS_DRAIN_MAX: Duration = Duration::from_secs(3);

/// Where the output goes, and in which shape.
#[derive(Debug, Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    /// A message of the agent's own (not an app's), on stderr.
    fn agent(&self, message: &str) {
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"event": "agent", "message": message})
            );
        } else {
            eprintln!("pmfleet-agent: {message}");
        }
    }

    fn log(&self, line: &Labelled) {
        let text = if self.json {
            serde_json::json!({
                "event": "log", "app": line.app, "instance": line.instance,
                "stream": if line.err { "err" } else { "out" }, "line": line.line,
            })
            .to_string()
        } else {
            match line.instance {
                Some(i) => format!("{}[{i}] | {}", line.app, line.line),
                None => format!("{} | {}", line.app, line.line),
            }
        };
        // Nobody reading (a closed pipe) must never stop PID 1: the line is dropped.
        use std::io::Write;
        let _ = if line.err {
            writeln!(std::io::stderr(), "{text}")
        } else {
            writeln!(std::io::stdout(), "{text}")
        };
    }
}

/// One app line, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub app: String,
    pub instance: Option<u32>,
    pub err: bool,
    pub line: String,
}

/// Which stream and instance a log file is, from the agent's file names (`<app>-out.log`,
/// `<app>-err-<i>.log`); a file the app named itself (`out_file`) is told by `err_files`, and
/// its instance is not known. A merged file of a one-instance app is instance 0.
pub fn label(l: &LogLine, err_files: &[String], single: bool) -> Labelled {
    let stem = l.file.strip_suffix(".log").unwrap_or(&l.file);
    let rest = stem.strip_prefix(&format!("{}-", l.app));
    let (err, instance) = match rest.map(|r| r.split_once('-').unwrap_or((r, ""))) {
        Some(("out", n)) => (false, n.parse().ok()),
        Some(("err", n)) => (true, n.parse().ok()),
        _ => (err_files.contains(&l.file), None),
    };
    Labelled {
        app: l.app.clone(),
        instance: instance.or(single.then_some(0)),
        err,
        line: l.line.clone(),
    }
}

/// `exit code 3 after 0.5 s` → 3, `killed by signal 9 (SIGKILL) after …` → 137, as a shell
/// reports them; anything else → `None`.
pub fn exit_code_of(message: &str) -> Option<i32> {
    let number = |rest: &str| {
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse::<i32>().ok())
    };
    if let Some(rest) = message.strip_prefix("exit code ") {
        return number(rest);
    }
    if let Some(rest) = message.strip_prefix("killed by signal ") {
        return number(rest).map(|s| 128 + s);
    }
    None
}

/// How the apps ended, as one exit code: the highest of every instance's — an errored one
/// (it gave up restarting) counts at least 1, a stopped one its last exit code (0 when it
/// never exited by itself). Capped to what an exit status holds.
pub fn final_code(instances: &[(Status, Option<i32>)]) -> u8 {
    let code = instances
        .iter()
        .map(|(status, last)| match status {
            Status::Errored => last.unwrap_or(1).max(1),
            _ => last.unwrap_or(0),
        })
        .max()
        .unwrap_or(0);
    u8::try_from(code.clamp(0, 255)).unwrap_or(1)
}

/// Whether an instance still runs or is about to run again.
fn live(status: Status) -> bool {
    matches!(
        status,
        Status::Online | Status::Launching | Status::Waiting | Status::Stopping
    )
}

/// Runs the apps of the file until they are gone or a signal comes; the process's exit code.
pub async fn run(args: RunArgs, home: AgentHome) -> ExitCode {
    let out = Out { json: args.json };
    match drive(args, home, out).await {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            if out.json {
                eprintln!(
                    "{}",
                    pmfleet_shared::cli::error::json_line("failed", &message)
                );
            } else {
                eprintln!("error: {message}");
            }
            ExitCode::from(NOTHING_STARTED)
        }
    }
}

async fn drive(args: RunArgs, home: AgentHome, out: Out) -> Result<u8, String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let path = match &args.file {
        Some(f) => cwd.join(f),
        None => pmfleet_shared::ecosystem::locate(&cwd).map_err(|e| e.to_string())?,
    };
    let checked = start::check_file(&path, args.env_name.as_deref(), args.only.as_deref())
        .map_err(|e| format!("{e:#}"))?;
    for w in &checked.warnings {
        out.agent(&format!("warning: {w}"));
    }
    if let Ok(Holder::Daemon { pid }) = daemon_lock::holder(&home) {
        return Err(format!(
            "an agent already runs in {} (pid {}); give `run` a home of its own (PMFLEET_AGENT_HOME)",
            home.root().display(),
            pid.map_or("unknown".into(), |p| p.to_string())
        ));
    }
    start_afresh(&home, out);

    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(run_with(
        home.clone(),
        DaemonOptions::default(),
        shutdown.clone(),
    ));
    let stop_asked = CancellationToken::new();
    watch_signals(stop_asked.clone(), out);

    let result = supervise(&args, &home, out, checked, &stop_asked).await;
    shutdown.cancel();
    match daemon.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(format!("the agent ended abnormally: {e}")),
    }
    result
}

/// The home's saved process list and old log files belong to another life of the
/// container (or to the host's own agent): they are moved aside, one generation kept as
/// `state.json.before-run` and `logs.before-run/`, so only the file's apps run, only their
/// lines are printed, and nothing is lost. What was moved is said.
fn start_afresh(home: &AgentHome, out: Out) {
    let aside = |path: std::path::PathBuf| {
        let mut to = path.clone().into_os_string();
        to.push(".before-run");
        let to = std::path::PathBuf::from(to);
        if !path.exists() {
            return None;
        }
        let _ = std::fs::remove_dir_all(&to);
        let _ = std::fs::remove_file(&to);
        std::fs::rename(&path, &to).ok().map(|()| to)
    };
    let moved: Vec<String> = [home.state_file(), home.state_backup(), home.logs_dir()]
        .into_iter()
        .filter_map(aside)
        .map(|p| p.display().to_string())
        .collect();
    if !moved.is_empty() {
        out.agent(&format!(
            "starting afresh: the home's earlier process list and logs are kept as {}",
            moved.join(", ")
        ));
    }
}

/// The first SIGTERM or SIGINT asks for a graceful stop; a second one exits at once.
fn watch_signals(stop: CancellationToken, out: Out) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        for n in 0.. {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if n > 0 {
                out.agent(&format!("{name} again: exiting now"));
                std::process::exit(130);
            }
            out.agent(&format!("{name}: stopping every app gracefully"));
            stop.cancel();
        }
    });
}

async fn connect(home: &AgentHome) -> Result<Client, String> {
    let start = Instant::now();
    loop {
        match Client::connect(home, false).await {
            Ok(c) => return Ok(c),
            Err(_) if start.elapsed() < Duration::from_secs(15) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(format!("the agent did not open its socket: {e}")),
        }
    }
}

async fn list(home: &AgentHome) -> Result<Vec<ProcessInfo>, String> {
    let mut c = connect(home).await?;
    match c.request(&Request::List).await.map_err(|e| e.to_string())? {
        Response::Processes { processes } => Ok(processes),
        other => Err(format!("unexpected answer: {other:?}")),
    }
}

/// Starts the apps, prints their lines, and waits until they are gone or a stop is asked;
/// the exit code.
async fn supervise(
    args: &RunArgs,
    home: &AgentHome,
    out: Out,
    checked: start::Checked,
    stop_asked: &CancellationToken,
) -> Result<u8, String> {
    let idle = checked.idle.clone();
    let req = start::file_request(
        checked,
        args.env_name.clone(),
        args.only.clone(),
        OnRunning::Restart,
    )
    .map_err(|e| e.to_string())?;
    // Exits are recorded from before the apps start: one that ends at once counts too.
    let exits = Arc::new(std::sync::Mutex::new(BTreeMap::<(String, u32), i32>::new()));
    let (subscribed, on_subscribed) = tokio::sync::oneshot::channel();
    let events = tokio::spawn(record_exits(home.clone(), exits.clone(), subscribed));
    let _ = on_subscribed.await;
    let mut c = connect(home).await?;
    match c
        .request(&Request::Start(Box::new(req)))
        .await
        .map_err(|e| e.to_string())?
    {
        Response::Done { messages } => {
            for m in &messages {
                out.agent(m);
            }
        }
        Response::Error(e) => return Err(e.message),
        other => return Err(format!("unexpected answer: {other:?}")),
    }
    let procs = list(home).await?;
    if !idle.is_empty() && procs.iter().all(|p| idle.contains(&p.name)) {
        out.agent("no app was started (autostart: false on every one)");
        return Ok(NOTHING_STARTED);
    }

    // Which file is which stream, and which apps have a single instance.
    let mut err_files = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for p in &procs {
        *counts.entry(p.name.clone()).or_default() += 1;
    }
    for app in counts.keys() {
        if let Ok(Response::App { app }) = c.request(&Request::Show { app: app.clone() }).await {
            err_files.extend(
                app.err_logs
                    .iter()
                    .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned())),
            );
        }
    }

    let last_line = Arc::new(std::sync::Mutex::new(Instant::now()));
    let logs_done = Arc::new(AtomicBool::new(false));
    let logs = tokio::spawn(print_logs(
        home.clone(),
        out,
        err_files,
        counts,
        last_line.clone(),
        logs_done.clone(),
    ));

    let signalled = loop {
        tokio::select! {
            _ = stop_asked.cancelled() => break true,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let procs = list(home).await?;
        if !args.no_auto_exit && !procs.iter().any(|p| live(p.status)) {
            break false;
        }
    };
    let code = if signalled {
        let mut c = connect(home).await?;
        let _ = c
            .request(&Request::Stop {
                target: Target::All,
            })
            .await;
        out.agent("every app stopped");
        0
    } else {
        let procs = list(home).await?;
        let exits = exits.lock().map(|e| e.clone()).unwrap_or_default();
        let ended: Vec<(Status, Option<i32>)> = procs
            .iter()
            .map(|p| (p.status, exits.get(&(p.name.clone(), p.instance)).copied()))
            .collect();
        let code = final_code(&ended);
        out.agent(&format!("every app has ended; exiting with {code}"));
        code
    };
    // The last lines an app wrote before it went: printed before the process ends.
    let drain = Instant::now();
    while drain.elapsed() < LOGS_DRAIN_MAX && !logs_done.load(Ordering::SeqCst) {
        let quiet = last_line.lock().map_or(LOGS_SETTLED, |t| t.elapsed());
        if quiet >= LOGS_SETTLED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    logs.abort();
    events.abort();
    Ok(code)
}

/// Follows every app's logs and prints each line as it comes.
async fn print_logs(
    home: AgentHome,
    out: Out,
    err_files: Vec<String>,
    counts: BTreeMap<String, usize>,
    last_line: Arc<std::sync::Mutex<Instant>>,
    done: Arc<AtomicBool>,
) {
    let _done = DoneOnDrop(done);
    let Ok(mut c) = connect(&home).await else {
        return;
    };
    // The home's logs were emptied before the apps started: the history is this run's.
    let req = Request::Logs {
        app: None,
        lines: 1000,
        follow: true,
    };
    let mut resp = match c.request(&req).await {
        Ok(r) => r,
        Err(_) => return,
    };
    loop {
        if let Response::Log(l) = &resp {
            let single = counts.get(&l.app) == Some(&1);
            out.log(&label(l, &err_files, single));
            if let Ok(mut t) = last_line.lock() {
                *t = Instant::now();
            }
        } else {
            return;
        }
        resp = match c.next().await {
            Ok(Some(r)) => r,
            _ => return,
        };
    }
}

struct DoneOnDrop(Arc<AtomicBool>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Keeps the last exit code of every instance, from the agent's events; says when it is
/// subscribed (or gave up).
async fn record_exits(
    home: AgentHome,
    exits: Arc<std::sync::Mutex<BTreeMap<(String, u32), i32>>>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let Ok(mut c) = connect(&home).await else {
        return;
    };
    let answer = c.request(&Request::Events { app: None }).await;
    let _ = subscribed.send(());
    if answer.is_err() {
        return;
    }
    while let Ok(Some(Response::Event(ev))) = c.next().await {
        if ev.kind == pmfleet_shared::protocol::EventKind::Exited
            && let (Some(i), Some(code)) = (ev.instance, exit_code_of(&ev.message))
            && let Ok(mut e) = exits.lock()
        {
            e.insert((ev.app.clone(), i), code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(app: &str, file: &str) -> LogLine {
        LogLine {
            app: app.into(),
            file: file.into(),
            line: "hello".into(),
        }
    }

    #[test]
    fn log_files_say_their_stream_and_instance() {
        let errs = ["errors.log".to_string()];
        let table = [
            // (app, file, one instance) → (instance, err)
            ("api", "api-out-1.log", false, Some(1), false),
            ("api", "api-err-0.log", false, Some(0), true),
            ("api", "api-out.log", false, None, false),
            ("api", "api-out.log", true, Some(0), false),
            ("api", "api-err.log", true, Some(0), true),
            ("my-app", "my-app-err-3.log", false, Some(3), true),
            ("api", "errors.log", false, None, true),
            ("api", "custom.log", true, Some(0), false),
        ];
        for (app, file, single, instance, err) in table {
            let l = label(&line(app, file), &errs, single);
            assert_eq!((l.instance, l.err), (instance, err), "{file}");
        }
    }

    #[test]
    fn exit_messages_give_the_code_a_shell_would() {
        assert_eq!(exit_code_of("exit code 3 after 0.5 s"), Some(3));
        assert_eq!(exit_code_of("exit code 0"), Some(0));
        assert_eq!(
            exit_code_of("killed by signal 9 (SIGKILL) after 2.0 s"),
            Some(137)
        );
        assert_eq!(exit_code_of("killed by signal 15"), Some(143));
        assert_eq!(exit_code_of("ended (status unknown)"), None);
    }

    #[test]
    fn the_exit_code_says_how_the_apps_ended() {
        use Status::*;
        type Ended<'a> = &'a [(Status, Option<i32>)];
        let table: [(Ended, u8); 8] = [
            (&[], 0),
            (&[(Stopped, Some(0))], 0),
            (&[(Stopped, None)], 0),
            (&[(Stopped, Some(3))], 3),
            (&[(Stopped, Some(0)), (Stopped, Some(4))], 4),
            (&[(Errored, Some(0))], 1),
            (&[(Errored, None), (Stopped, Some(0))], 1),
            (&[(Errored, Some(137)), (Stopped, Some(2))], 137),
        ];
        for (instances, want) in table {
            assert_eq!(final_code(instances), want, "{instances:?}");
        }
    }
}
