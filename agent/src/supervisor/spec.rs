//! From what the user wrote to what the agent runs: an ecosystem [`App`] (or a script given on
//! the command line) plus the client's environment and directory become an [`AppSpec`].
//! Every check that can fail before anything is spawned happens here, so a bad `start`
//! leaves nothing behind: a missing script, an interpreter not on `PATH`, a bad signal name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pmfleet_shared::ecosystem::{App, ExecMode, Instances, Interpreter, Watch};
use pmfleet_shared::protocol::{AppSpec, ExecModeSpec, InstancesSpec, ScriptStart};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("app `{app}`: script {path} does not exist")]
    ScriptMissing { app: String, path: PathBuf },
    #[error("app `{app}`: `{program}` was not found on PATH")]
    NotOnPath { app: String, program: String },
    #[error("app `{app}`: {path} is not an executable file")]
    NotExecutable { app: String, path: PathBuf },
    #[error("app `{app}`: working directory {path} does not exist")]
    CwdMissing { app: String, path: PathBuf },
    #[error("app `{app}`: unknown kill_signal `{signal}`")]
    BadSignal { app: String, signal: String },
    #[error("app `{app}`: `{value}` is not a valid instance count (expected N, -N or max)")]
    BadInstances { app: String, value: String },
    #[error("app `{app}`: PORT `{value}` is not a port number")]
    BadPort { app: String, value: String },
    #[error("invalid app name `{0}`: use letters, digits, `-`, `_` and `.`")]
    BadName(String),
    #[error("app `{app}`: --cron-restart: {why}")]
    BadCron { app: String, why: String },
}

/// The interpreter PM2 picks for a script's extension; `None` means execute the script itself.
pub fn interpreter_for(script: &str) -> Option<&'static str> {
    let ext = Path::new(script).extension()?.to_str()?;
    Some(match ext {
        "js" | "cjs" | "mjs" => "node",
        "py" => "python3",
        "sh" => "bash",
        "rb" => "ruby",
        "php" => "php",
        "pl" => "perl",
        _ => return None,
    })
}

/// Turn a checked ecosystem app into a runnable spec.
///
/// `base_dir` is where relative paths resolve (the ecosystem file's directory, or the client's
/// working directory for a script). The environment is layered as PM2 does: the client's
/// own environment, then the app's `env`, then `env_<env_name>`.
pub fn resolve(
    app: &App,
    base_dir: &Path,
    client_env: &BTreeMap<String, String>,
    env_name: Option<&str>,
) -> Result<AppSpec, SpecError> {
    let name = app.name.clone();
    if name.is_empty()
        || name == "all"
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(SpecError::BadName(name));
    }
    let cwd = match &app.cwd {
        Some(c) => base_dir.join(c),
        None => base_dir.to_path_buf(),
    };
    if !cwd.is_dir() {
        return Err(SpecError::CwdMissing {
            app: name,
            path: cwd,
        });
    }
    let mut env = client_env.clone();
    env.extend(app.resolved_env(None, env_name));
    let path_var = env.get("PATH").cloned().unwrap_or_default();

    let interpreter = match &app.interpreter {
        Interpreter::Auto => interpreter_for(&app.script).map(str::to_string),
        Interpreter::None => None,
        Interpreter::Program(p) if p == "none" => None,
        Interpreter::Program(p) => Some(p.clone()),
    };
    let (program, mut program_args) = match interpreter {
        Some(interp) => {
            let program = find_program(&name, &interp, &cwd, &path_var)?;
            let script = cwd.join(&app.script);
            if !script.is_file() {
                return Err(SpecError::ScriptMissing {
                    app: name,
                    path: script,
                });
            }
            let mut args = app.interpreter_args.clone();
            args.push(script.display().to_string());
            (program, args)
        }
        None => (
            find_program(&name, &app.script, &cwd, &path_var)?,
            Vec::new(),
        ),
    };
    program_args.extend(app.args.iter().cloned());
    let node = Path::new(&program)
        .file_name()
        .and_then(|f| f.to_str())
        .is_some_and(|f| f == "node" || f.starts_with("node-") || f == "nodejs");

    if crate::supervisor::process::parse_signal(&app.kill_signal).is_none() {
        return Err(SpecError::BadSignal {
            app: name,
            signal: app.kill_signal.clone(),
        });
    }

    let port = match app.port {
        Some(p) => Some(p),
        None => match env.get("PORT") {
            Some(v) => Some(v.trim().parse::<u16>().map_err(|_| SpecError::BadPort {
                app: name.clone(),
                value: v.clone(),
            })?),
            None => None,
        },
    };
    let exec_mode = match app.exec_mode {
        ExecMode::Fork => ExecModeSpec::Fork,
        ExecMode::Cluster => ExecModeSpec::Cluster,
    };
    if let (Some(p), ExecModeSpec::Cluster) = (port, exec_mode) {
        env.entry("PORT".into()).or_insert_with(|| p.to_string());
    }
    let instances = match app.instances {
        Instances::Count(n) => InstancesSpec::Count(n),
        Instances::Max => InstancesSpec::Max,
        Instances::AllBut(n) => InstancesSpec::AllBut(n),
    };
    let watch = match &app.watch {
        Watch::Off => Vec::new(),
        Watch::On => vec![cwd.clone()],
        Watch::Paths(p) => p.iter().map(|p| cwd.join(p)).collect(),
    };
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);

    Ok(AppSpec {
        namespace: app.namespace.clone(),
        program,
        program_args,
        script: app.script.clone(),
        env,
        exec_mode,
        instances,
        port,
        node,
        max_memory_restart: app.max_memory_restart,
        autorestart: app.autorestart,
        max_restarts: app.max_restarts,
        min_uptime_ms: ms(app.min_uptime),
        restart_delay_ms: ms(app.restart_delay),
        exp_backoff_restart_delay_ms: app.exp_backoff_restart_delay.map(ms),
        stop_exit_codes: app.stop_exit_codes.clone(),
        kill_signal: app.kill_signal.clone(),
        kill_timeout_ms: ms(app.kill_timeout),
        listen_timeout_ms: ms(app.listen_timeout),
        wait_ready: app.wait_ready,
        watch,
        ignore_watch: app.ignore_watch.clone(),
        out_file: app.out_file.as_ref().map(|p| cwd.join(p)),
        error_file: app.error_file.as_ref().map(|p| cwd.join(p)),
        merge_logs: app.merge_logs,
        log_date_format: app.log_date_format.clone(),
        time: app.time,
        instance_var: app.instance_var.clone(),
        increment_var: app.increment_var.clone(),
        healthcheck: app.healthcheck.clone(),
        cron_restart: app.cron_restart.clone(),
        cwd,
        name,
    })
}

/// The [`App`] a `start <script>` command line describes (PM2's defaults plus the flags).
pub fn app_from_script(s: &ScriptStart) -> Result<App, SpecError> {
    let mut app = App::from_script(&s.script);
    if let Some(name) = &s.name {
        app.name = name.clone();
    }
    if let Some(i) = &s.instances {
        app.instances = parse_instances(&app.name, i)?;
        app.exec_mode = ExecMode::Cluster;
    }
    app.args = s.args.clone();
    if let Some(i) = &s.interpreter {
        app.interpreter = if i == "none" {
            Interpreter::None
        } else {
            Interpreter::Program(i.clone())
        };
    }
    if s.port.is_some() {
        app.port = s.port;
    }
    app.wait_ready |= s.wait_ready;
    if s.healthcheck.is_some() {
        app.healthcheck = s.healthcheck.clone();
    }
    if let Some(ms) = s.listen_timeout_ms {
        app.listen_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = s.kill_timeout_ms {
        app.kill_timeout = std::time::Duration::from_millis(ms);
    }
    if s.max_memory_restart.is_some() {
        app.max_memory_restart = s.max_memory_restart;
    }
    if s.watch {
        app.watch = Watch::On;
    }
    if let Some(cron) = s.cron_restart.as_deref().filter(|c| c.trim() != "0") {
        pmfleet_shared::ecosystem::CronSchedule::parse(cron).map_err(|why| SpecError::BadCron {
            app: app.name.clone(),
            why,
        })?;
        app.cron_restart = Some(cron.trim().to_string());
    }
    app.merge_logs |= s.merge_logs;
    app.time |= s.time;
    app.autorestart &= !s.no_autorestart;
    if s.log_date_format.is_some() {
        app.log_date_format = s.log_date_format.clone();
    }
    if s.out_file.is_some() {
        app.out_file = s.out_file.clone();
    }
    if s.error_file.is_some() {
        app.error_file = s.error_file.clone();
    }
    if !s.interpreter_args.is_empty() {
        app.interpreter_args = s.interpreter_args.clone();
    }
    if let Some(n) = s.max_restarts {
        app.max_restarts = n;
    }
    if let Some(ms) = s.restart_delay_ms {
        app.restart_delay = std::time::Duration::from_millis(ms);
    }
    if let Some(ns) = &s.namespace {
        app.namespace = ns.clone();
    }
    Ok(app)
}

/// `-i` as PM2 reads it: `max`, `0` and `-1` are one per CPU, `-N` is CPUs minus N.
fn parse_instances(app: &str, value: &str) -> Result<Instances, SpecError> {
    let bad = || SpecError::BadInstances {
        app: app.to_string(),
        value: value.to_string(),
    };
    if value == "max" {
        return Ok(Instances::Max);
    }
    let n: i64 = value.trim().parse().map_err(|_| bad())?;
    Ok(match n {
        0 | -1 => Instances::Max,
        n if n < 0 => Instances::AllBut(u32::try_from(-n).map_err(|_| bad())?),
        n => Instances::Count(u32::try_from(n).map_err(|_| bad())?),
    })
}

/// Find `program` the way `execvp` would, but before spawning, so the error is clear.
fn find_program(app: &str, program: &str, cwd: &Path, path_var: &str) -> Result<String, SpecError> {
    if program.contains('/') {
        let path = cwd.join(program);
        if !path.is_file() {
            return Err(SpecError::ScriptMissing {
                app: app.to_string(),
                path,
            });
        }
        if !is_executable(&path) {
            return Err(SpecError::NotExecutable {
                app: app.to_string(),
                path,
            });
        }
        return Ok(path.display().to_string());
    }
    let path_var = if path_var.is_empty() {
        "/usr/local/bin:/usr/bin:/bin"
    } else {
        path_var
    };
    std::env::split_paths(path_var)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file() && is_executable(p))
        .map(|p| p.display().to_string())
        .ok_or_else(|| SpecError::NotOnPath {
            app: app.to_string(),
            program: program.to_string(),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_follows_the_extension() {
        let table = [
            ("app.js", Some("node")),
            ("app.mjs", Some("node")),
            ("app.cjs", Some("node")),
            ("w.py", Some("python3")),
            ("run.sh", Some("bash")),
            ("x.rb", Some("ruby")),
            ("i.php", Some("php")),
            ("t.pl", Some("perl")),
            ("server", None),
            ("bin/server.bin", None),
        ];
        for (script, want) in table {
            assert_eq!(interpreter_for(script), want, "{script}");
        }
    }

    #[test]
    fn instances_read_like_pm2() {
        assert_eq!(parse_instances("a", "max"), Ok(Instances::Max));
        assert_eq!(parse_instances("a", "0"), Ok(Instances::Max));
        assert_eq!(parse_instances("a", "-1"), Ok(Instances::Max));
        assert_eq!(parse_instances("a", "-2"), Ok(Instances::AllBut(2)));
        assert_eq!(parse_instances("a", "4"), Ok(Instances::Count(4)));
        assert!(parse_instances("a", "many").is_err());
        assert_eq!(InstancesSpec::AllBut(3).resolve(2), 1);
        assert_eq!(InstancesSpec::Max.resolve(8), 8);
    }

    #[test]
    fn missing_program_is_reported_before_spawning() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            find_program("a", "definitely-not-a-program", dir.path(), "/usr/bin").unwrap_err();
        assert!(matches!(err, SpecError::NotOnPath { .. }));
        assert!(find_program("a", "sh", dir.path(), "/usr/bin:/bin").is_ok());
    }
}
