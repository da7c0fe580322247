//! From what the user wrote to what the agent runs: an ecosystem [`App`] (or a script given on
//! the command line) plus the client's environment and directory become an [`AppSpec`].
//! Every check that can fail before anything is spawned happens here, so a bad `start`
//! leaves nothing behind: a missing script, an interpreter not on `PATH`, a bad signal name.
//!
//! The script is found as PM2 finds it (`Common.prepareAppConf`): in `cwd` first, then on
//! `PATH`; a script with spaces that is no file runs through `bash -c` (`sh -c` without bash).
//! `.py` runs with `python3`, or `python` when there is no `python3` (PM2 prefers `python`,
//! which can still be Python 2).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pmfleet_shared::ecosystem::{App, ExecMode, Instances, Interpreter, Watch, interpreter_for};
use pmfleet_shared::protocol::{AppSpec, ExecModeSpec, InstancesSpec, ScriptStart};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("app `{app}`: script {path} does not exist")]
    ScriptMissing { app: String, path: PathBuf },
    #[error("app `{app}`: script {} does not exist, and `{script}` was not found on PATH either", path.display())]
    ScriptNotFound {
        app: String,
        script: String,
        path: PathBuf,
    },
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
    #[error(
        "invalid app name `{0}`: it must not be empty, `all`, a number, or hold control characters"
    )]
    BadName(String),
    #[error("app `{app}`: --cron-restart: {why}")]
    BadCron { app: String, why: String },
}

/// Turn a checked ecosystem app into a runnable spec.
///
/// `base_dir` is where relative paths resolve (the ecosystem file's directory, or the client's
/// working directory for a script). The environment is layered as PM2 does: the client's
/// own environment, then the app's layers ([`App::resolved_env`]: `deploy.<env_name>.env`,
/// `env` and `port`, `env_<env_name>`).
pub fn resolve(
    app: &App,
    base_dir: &Path,
    client_env: &BTreeMap<String, String>,
    env_name: Option<&str>,
) -> Result<AppSpec, SpecError> {
    let name = app.name_for(env_name);
    if name.is_empty()
        || name == "all"
        || name.chars().all(|c| c.is_ascii_digit())
        || name.chars().any(char::is_control)
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

    let command = Command::of(app, &name, &cwd, &path_var)?;
    let (program, mut program_args) = match &command.interpreter {
        Some(interp) => {
            let program = find_on_path(&name, interp, &cwd, &path_var)?;
            let mut args = app.interpreter_args.clone();
            args.push(command.script.display().to_string());
            (program, args)
        }
        None => {
            if !is_executable(&command.script) {
                return Err(SpecError::NotExecutable {
                    app: name,
                    path: command.script,
                });
            }
            (command.script.display().to_string(), Vec::new())
        }
    };
    program_args.extend(command.args);
    let program_file = Path::new(&program)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    let node =
        program_file == "node" || program_file.starts_with("node-") || program_file == "nodejs";
    let python_named = app
        .env_by_name
        .get(env_name.unwrap_or_default())
        .is_some_and(|e| e.contains_key("PYTHONUNBUFFERED"));
    if program_file.contains("python") && !python_named {
        // PM2 sets it for every python interpreter; only `env_<name>` goes over it.
        env.insert("PYTHONUNBUFFERED".to_owned(), "1".to_owned());
    }

    if crate::supervisor::process::parse_signal(&app.kill_signal).is_none() {
        return Err(SpecError::BadSignal {
            app: name,
            signal: app.kill_signal.clone(),
        });
    }

    // `PORT` after every layer: `env_<name>` may have moved it away from `port`, as in PM2.
    let port = match env.get("PORT") {
        Some(v) => Some(v.trim().parse::<u16>().map_err(|_| SpecError::BadPort {
            app: name.clone(),
            value: v.clone(),
        })?),
        None => app.port,
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
    let log_path = |p: &PathBuf| cwd.join(expand_home(p, env.get("HOME")));

    Ok(AppSpec {
        namespace: app.namespace.clone(),
        program,
        program_args,
        script: app.script.clone(),
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
        out_file: app.out_file.as_ref().map(log_path),
        error_file: app.error_file.as_ref().map(log_path),
        merge_logs: app.merge_logs,
        log_date_format: app.log_date_format.clone(),
        time: app.time,
        instance_var: app.instance_var.clone(),
        increment_var: app.increment_var.clone(),
        healthcheck: app.healthcheck.clone(),
        deploy_timeout_ms: app.deploy_timeout.map(ms),
        cron_restart: app.cron_restart.clone(),
        metrics: app.metrics.clone(),
        secrets_file: None,
        env,
        cwd,
        name,
    })
}

/// What runs, before the interpreter is looked up: the interpreter's name (if any), the
/// script's path, and the arguments after it.
#[derive(Debug, PartialEq, Eq)]
struct Command {
    interpreter: Option<String>,
    script: PathBuf,
    args: Vec<String>,
}

impl Command {
    fn of(app: &App, name: &str, cwd: &Path, path_var: &str) -> Result<Command, SpecError> {
        let in_cwd = cwd.join(&app.script);
        if app.script.contains(' ') && !in_cwd.is_file() {
            // PM2: `bash -c "<script>"`, or `sh -c` without bash; `args` are not passed.
            let shell = ["bash", "sh"]
                .iter()
                .find_map(|sh| find_on_path(name, sh, cwd, path_var).ok())
                .ok_or_else(|| SpecError::NotOnPath {
                    app: name.to_owned(),
                    program: "bash".to_owned(),
                })?;
            return Ok(Command {
                interpreter: None,
                script: PathBuf::from(shell),
                args: vec!["-c".to_owned(), app.script.clone()],
            });
        }
        let script = find_script(name, &app.script, cwd, path_var)?;
        let interpreter = match &app.interpreter {
            Interpreter::Auto => {
                let by_extension = interpreter_for(&script.to_string_lossy());
                by_extension.map(|i| python_or_python3(i, path_var).to_owned())
            }
            Interpreter::None => None,
            Interpreter::Program(p) if p == "none" => None,
            Interpreter::Program(p) => Some(p.clone()),
        };
        Ok(Command {
            interpreter,
            script,
            args: app.args.clone(),
        })
    }
}

/// `.py` runs with `python3`, or `python` when there is no `python3`.
fn python_or_python3<'a>(interpreter: &'a str, path_var: &str) -> &'a str {
    if interpreter == "python3" && lookup("python3", path_var).is_none() {
        "python"
    } else {
        interpreter
    }
}

/// `~/…` under `home` (PM2 expands it in log paths); anything else as written.
fn expand_home(path: &Path, home: Option<&String>) -> PathBuf {
    match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => Path::new(home).join(rest),
        _ => path.to_path_buf(),
    }
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
    if let Some(check) = &s.healthcheck {
        app.healthcheck = Some(pmfleet_shared::protocol::HealthCheck::legacy(check));
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

/// The script as PM2 finds it: `cwd/<script>` when that is a file, else (for a bare name) the
/// first executable of that name on `PATH`.
fn find_script(app: &str, script: &str, cwd: &Path, path_var: &str) -> Result<PathBuf, SpecError> {
    let in_cwd = cwd.join(script);
    if in_cwd.is_file() {
        return Ok(in_cwd);
    }
    if !script.contains('/')
        && let Some(found) = lookup(script, path_var)
    {
        return Ok(found);
    }
    if script.contains('/') {
        return Err(SpecError::ScriptMissing {
            app: app.to_owned(),
            path: in_cwd,
        });
    }
    Err(SpecError::ScriptNotFound {
        app: app.to_owned(),
        script: script.to_owned(),
        path: in_cwd,
    })
}

/// An interpreter: a path (relative to `cwd`), or a name looked up on `PATH` the way `execvp`
/// would, but before spawning, so the error is clear.
fn find_on_path(app: &str, program: &str, cwd: &Path, path_var: &str) -> Result<String, SpecError> {
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
    lookup(program, path_var)
        .map(|p| p.display().to_string())
        .ok_or_else(|| SpecError::NotOnPath {
            app: app.to_string(),
            program: program.to_string(),
        })
}

/// The first executable file `name` on `path_var` (a default search path when empty).
fn lookup(name: &str, path_var: &str) -> Option<PathBuf> {
    let path_var = if path_var.is_empty() {
        "/usr/local/bin:/usr/bin:/bin"
    } else {
        path_var
    };
    std::env::split_paths(path_var)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file() && is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            find_on_path("a", "definitely-not-a-program", dir.path(), "/usr/bin").unwrap_err();
        assert!(matches!(err, SpecError::NotOnPath { .. }));
        assert!(find_on_path("a", "sh", dir.path(), "/usr/bin:/bin").is_ok());
    }

    fn executable(dir: &Path, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\nexec sleep 1\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn env_with_path(dirs: &[&Path]) -> BTreeMap<String, String> {
        let path = std::env::join_paths(dirs).unwrap();
        [("PATH".to_owned(), path.to_string_lossy().into_owned())]
            .into_iter()
            .collect()
    }

    #[test]
    fn a_bare_script_is_found_in_cwd_before_path() {
        let release = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let run = executable(release.path(), "run.sh");
        executable(bin.path(), "run.sh");
        let env = env_with_path(&[bin.path(), Path::new("/usr/bin"), Path::new("/bin")]);
        let mut app = App::from_script("run.sh");
        app.interpreter = Interpreter::None;
        let spec = resolve(&app, release.path(), &env, None).unwrap();
        assert_eq!(spec.program, run.display().to_string(), "cwd first, as PM2");
        std::fs::remove_file(&run).unwrap();
        let spec = resolve(&app, release.path(), &env, None).unwrap();
        assert_eq!(
            spec.program,
            bin.path().join("run.sh").display().to_string(),
            "then PATH"
        );
        std::fs::remove_file(bin.path().join("run.sh")).unwrap();
        let err = resolve(&app, release.path(), &env, None).unwrap_err();
        assert!(matches!(err, SpecError::ScriptNotFound { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("run.sh does not exist, and `run.sh` was not found on PATH"),
            "{err}"
        );
    }

    #[test]
    fn a_command_from_path_keeps_its_args() {
        let dir = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let npm = executable(bin.path(), "npm");
        let mut app = App::from_script("npm");
        app.args = vec!["run".into(), "start".into()];
        let spec = resolve(&app, dir.path(), &env_with_path(&[bin.path()]), None).unwrap();
        assert_eq!(spec.program, npm.display().to_string());
        assert_eq!(spec.program_args, vec!["run", "start"]);
    }

    #[test]
    fn a_script_with_spaces_runs_through_bash() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::from_script("sleep 10 && echo done");
        let env = env_with_path(&[Path::new("/usr/bin"), Path::new("/bin")]);
        let spec = resolve(&app, dir.path(), &env, None).unwrap();
        assert!(spec.program.ends_with("/bash"), "{}", spec.program);
        assert_eq!(spec.program_args, vec!["-c", "sleep 10 && echo done"]);
        assert_eq!(spec.script, "sleep 10 && echo done");
        // A file whose name has a space is run as the file.
        let file = executable(dir.path(), "my tool");
        let mut app = App::from_script("my tool");
        app.interpreter = Interpreter::None;
        let spec = resolve(&app, dir.path(), &env, None).unwrap();
        assert_eq!(spec.program, file.display().to_string());
    }

    #[test]
    fn names_pm2_takes_and_log_paths_from_home() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.js"), "").unwrap();
        let mut app = App::from_script("a.js");
        app.name = "api/v2 eu".into();
        app.out_file = Some("~/logs/out.log".into());
        app.error_file = Some("/dev/null".into());
        let mut env = env_with_path(&[Path::new("/usr/bin"), Path::new("/bin")]);
        env.insert("HOME".into(), "/home/me".into());
        let spec = resolve(&app, dir.path(), &env, None).unwrap();
        assert_eq!(spec.name, "api/v2 eu");
        assert_eq!(spec.out_file, Some(PathBuf::from("/home/me/logs/out.log")));
        assert_eq!(spec.error_file, Some(PathBuf::from("/dev/null")));
        for bad in ["", "all", "42", "a\nb"] {
            app.name = bad.into();
            assert!(matches!(
                resolve(&app, dir.path(), &env, None),
                Err(SpecError::BadName(_))
            ));
        }
    }

    #[test]
    fn env_name_moves_port_and_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.js"), "").unwrap();
        let mut app = App::from_script("a.js");
        app.port = Some(3000);
        app.append_env_to_name = true;
        app.env_by_name.insert(
            "production".into(),
            [("PORT".to_owned(), "4000".to_owned())]
                .into_iter()
                .collect(),
        );
        let env = env_with_path(&[Path::new("/usr/bin"), Path::new("/bin")]);
        let spec = resolve(&app, dir.path(), &env, Some("production")).unwrap();
        assert_eq!(spec.port, Some(4000));
        assert_eq!(spec.env["PORT"], "4000");
        assert_eq!(spec.name, "a-production");
        let spec = resolve(&app, dir.path(), &env, None).unwrap();
        assert_eq!(spec.port, Some(3000));
        assert_eq!(spec.name, "a");
    }

    #[test]
    fn python3_first_then_python() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.py"), "").unwrap();
        let bin = tempfile::tempdir().unwrap();
        executable(bin.path(), "python");
        let app = App::from_script("w.py");
        let spec = resolve(&app, dir.path(), &env_with_path(&[bin.path()]), None).unwrap();
        assert!(spec.program.ends_with("/python"), "{}", spec.program);
        assert_eq!(spec.env["PYTHONUNBUFFERED"], "1");
        executable(bin.path(), "python3");
        let spec = resolve(&app, dir.path(), &env_with_path(&[bin.path()]), None).unwrap();
        assert!(spec.program.ends_with("/python3"), "{}", spec.program);
    }
}
