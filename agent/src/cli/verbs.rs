//! The verbs that name apps with words (`stop`, `restart`, `reload`, `delete`, `start`,
//! `startOr…`) and those that read the whole list (`jlist`): each asks the daemon what runs,
//! reads the words as PM2 does ([`super::targets`], [`super::start`]), and sends one request
//! per app.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use pmfleet_shared::cli::colour::{Palette, Tone};
use pmfleet_shared::cli::error;
use pmfleet_shared::protocol::{OnRunning, ProcessInfo, Request, Response, StartRequest, Target};

use super::{
    StartArgs, StartOrArgs, Targets, is_ecosystem, jlist as pm2_shape, print, start, targets,
};
use crate::client::Client;
use crate::home::AgentHome;

/// Every instance the agent runs, or the agent's error answer.
pub(super) async fn list(home: &AgentHome) -> anyhow::Result<Result<Vec<ProcessInfo>, Response>> {
    let mut c = Client::connect(home, true).await?;
    Ok(match c.request(&Request::List).await? {
        Response::Processes { processes } => Ok(processes),
        other => Err(other),
    })
}

/// An app's name from a word that may be its id.
pub(super) async fn app_name(
    home: &AgentHome,
    word: &str,
) -> anyhow::Result<Result<String, String>> {
    let Ok(id) = word.parse::<u32>() else {
        return Ok(Ok(word.to_owned()));
    };
    let procs = list(home).await?.unwrap_or_default();
    Ok(match procs.iter().find(|p| p.id == id) {
        Some(p) => Ok(p.name.clone()),
        None if procs.iter().any(|p| p.name == word) => Ok(word.to_owned()),
        None => Err(format!(
            "no process with id {id} (see `pmfleet-agent list`)"
        )),
    })
}

/// The app names of an ecosystem file, after `--only`.
fn file_apps(word: &str, only: Option<&str>) -> Result<Vec<String>, String> {
    let path = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join(word);
    let eco = pmfleet_shared::ecosystem::load(&path).map_err(|e| e.to_string())?;
    Ok(eco
        .apps
        .into_iter()
        .map(|a| a.name)
        .filter(|n| only.is_none_or(|o| o.split([',', ' ']).any(|x| x == n)))
        .collect())
}

/// `stop`, `restart`, `reload`, `delete`: one request per app the words name; fails when one
/// of them does.
pub(super) async fn act(
    home: &AgentHome,
    t: Targets,
    request: impl Fn(Target) -> Request,
) -> anyhow::Result<ExitCode> {
    let procs = match list(home).await? {
        Ok(p) => p,
        Err(resp) => return Ok(print::response(resp, false)),
    };
    let only = t.only.as_deref();
    let resolved = match targets::resolve(&t.targets, &procs, is_ecosystem, |w| file_apps(w, only))
    {
        Ok(r) => r,
        Err(message) => {
            error::report(false, "not_found", &message);
            return Ok(ExitCode::FAILURE);
        }
    };
    for note in &resolved.notes {
        eprintln!("note: {note}");
    }
    let mut code = ExitCode::SUCCESS;
    for target in resolved.targets {
        let mut c = Client::connect(home, true).await?;
        if print::response(c.request(&request(target)).await?, false) != ExitCode::SUCCESS {
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}

/// `start`: each word in turn ([`start::classify`]); none means this directory's file.
pub(super) async fn start(home: &AgentHome, a: StartArgs) -> anyhow::Result<ExitCode> {
    let words = if a.targets.is_empty() {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let found = pmfleet_shared::ecosystem::locate(&cwd).map_err(|e| anyhow::anyhow!("{e}"))?;
        vec![found.display().to_string()]
    } else {
        a.targets.clone()
    };
    let procs = list(home).await?.unwrap_or_default();
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut code = ExitCode::SUCCESS;
    for word in &words {
        let known = procs
            .iter()
            .any(|p| p.name == *word || p.namespace == *word || word.parse() == Ok(p.id));
        let what = start::classify(word, is_ecosystem(word), known, cwd.join(word).is_file());
        let ok = match what {
            start::StartWord::Ecosystem(path) => {
                let flags = a.script_flags();
                if !flags.is_empty() {
                    eprintln!(
                        "warning: {} set a script's settings; with an ecosystem file they are ignored (write them in the file)",
                        flags.join(", ")
                    );
                }
                let checked =
                    start::check_file(&cwd.join(path), a.env_name.as_deref(), a.only.as_deref())?;
                let req = start::file_request(
                    checked_with_warnings(checked),
                    a.env_name.clone(),
                    a.only.clone(),
                    OnRunning::Restart,
                )?;
                send_start(home, req).await?
            }
            start::StartWord::Known(_) => {
                let t = Targets {
                    targets: vec![word.clone()],
                    only: None,
                };
                act(home, t, |target| Request::Restart { target }).await? == ExitCode::SUCCESS
            }
            script @ (start::StartWord::Script(_) | start::StartWord::Command(_)) => {
                let s = start::script_start(&script, &a)?;
                send_start(home, start::script_request(s, a.env_name.clone())?).await?
            }
        };
        if !ok {
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}

/// `startOrRestart` / `startOrReload`.
pub(super) async fn start_or(
    home: &AgentHome,
    a: StartOrArgs,
    running: OnRunning,
) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let path = match &a.file {
        Some(f) => cwd.join(f),
        None => pmfleet_shared::ecosystem::locate(&cwd).map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let checked = start::check_file(&path, a.env_name.as_deref(), a.only.as_deref())?;
    let req = start::file_request(checked_with_warnings(checked), a.env_name, a.only, running)?;
    Ok(if send_start(home, req).await? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints the warnings of a checked file (the file's own are printed with the agent's answer).
fn checked_with_warnings(checked: start::Checked) -> start::Checked {
    let palette = Palette::stdout();
    for w in &checked.warnings {
        eprintln!("{}", palette.paint(&format!("warning: {w}"), Tone::Warn));
    }
    checked
}

/// Sends one start request and prints the answer; whether it succeeded.
async fn send_start(home: &AgentHome, req: StartRequest) -> anyhow::Result<bool> {
    let mut c = Client::connect(home, true).await?;
    let resp = c.request(&Request::Start(Box::new(req))).await?;
    Ok(print::response(resp, false) == ExitCode::SUCCESS)
}

/// `jlist` / `prettylist`.
pub(super) async fn jlist(home: &AgentHome, pretty: bool) -> anyhow::Result<ExitCode> {
    let procs = match list(home).await? {
        Ok(p) => p,
        Err(resp) => return Ok(print::response(resp, true)),
    };
    let mut details = BTreeMap::new();
    let mut c = Client::connect(home, true).await?;
    for p in &procs {
        if !details.contains_key(&p.name)
            && let Response::App { app } = c
                .request(&Request::Show {
                    app: p.name.clone(),
                })
                .await?
        {
            details.insert(p.name.clone(), *app);
        }
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    let value = pm2_shape::list(&procs, &details, now_ms);
    if pretty {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{value}");
    }
    Ok(ExitCode::SUCCESS)
}
