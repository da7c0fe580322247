//! `env <id>`: the environment of one instance, as its process really has it (read from
//! `/proc/<pid>/environ`: the client's and the file's variables, `NODE_APP_INSTANCE`, the
//! cluster socket's `LISTEN_*`, …). An instance that is not running shows the environment the
//! agent would give it (its app's resolved `env`). PM2 prints its own process metadata with
//! it; pmfleet prints the variables only (`jlist` has the metadata).

use std::collections::BTreeMap;
use std::process::ExitCode;

use pmfleet_shared::cli::error;
use pmfleet_shared::protocol::{Request, Response};

use super::print;
use crate::client::Client;
use crate::home::AgentHome;

/// `KEY=value` pairs of a `/proc/<pid>/environ` (NUL-separated).
pub fn parse_environ(bytes: &[u8]) -> BTreeMap<String, String> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            (!k.is_empty()).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

pub async fn run(home: &AgentHome, word: &str, json: bool) -> anyhow::Result<ExitCode> {
    let mut c = Client::connect(home, true).await?;
    let procs = match c.request(&Request::List).await? {
        Response::Processes { processes } => processes,
        other => return Ok(print::response(other, json)),
    };
    let found = match word.parse::<u32>() {
        Ok(id) => procs.iter().find(|p| p.id == id),
        Err(_) => procs.iter().find(|p| p.name == word),
    };
    let Some(p) = found else {
        error::report(
            json,
            "not_found",
            &format!("no process with id {word} (see `pmfleet-agent list`)"),
        );
        return Ok(ExitCode::FAILURE);
    };
    let live = p
        .pid
        .and_then(|pid| std::fs::read(format!("/proc/{pid}/environ")).ok())
        .map(|bytes| parse_environ(&bytes));
    let env = match live {
        Some(env) => env,
        None => match c
            .request(&Request::Show {
                app: p.name.clone(),
            })
            .await?
        {
            Response::App { app } => app.spec.env,
            other => return Ok(print::response(other, json)),
        },
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&env)?);
    } else {
        for (k, v) in env {
            println!("{k}: {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environ_is_read_as_the_kernel_writes_it() {
        let env = parse_environ(b"PATH=/usr/bin\0EMPTY=\0EQ=a=b\0=junk\0noequals\0");
        assert_eq!(env["PATH"], "/usr/bin");
        assert_eq!(env["EMPTY"], "");
        assert_eq!(env["EQ"], "a=b");
        assert_eq!(env.len(), 3);
    }
}
