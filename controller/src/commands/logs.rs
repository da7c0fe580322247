//! `pmfleet logs [file] <env> [app] [--lines N] [--follow]`: the apps' logs from every host
//! of the environment, merged as they arrive, each line prefixed with its host.

use std::path::PathBuf;

use clap::Args;
use pmfleet_shared::ecosystem;
use pmfleet_shared::protocol::{Request, Response};

use crate::agents;
use crate::deploy::Exit;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// [ECOSYSTEM_FILE] ENVIRONMENT [APP]
    #[arg(required = true, value_name = "ARGS")]
    pub words: Vec<String>,
    /// Lines of history from each host first.
    #[arg(long, default_value_t = 15)]
    pub lines: usize,
    /// Keep printing new lines until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

pub async fn run(args: LogsArgs) -> Exit {
    let mut words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    let file = match words.first() {
        Some(first) if ecosystem::looks_like_ecosystem_file(first) => {
            Some(PathBuf::from(words.remove(0)))
        }
        _ => None,
    };
    let (env, app) = match words.as_slice() {
        [env] => (env.to_string(), None),
        [env, app] => (env.to_string(), Some(app.to_string())),
        _ => {
            eprintln!("error: usage: pmfleet logs <env> [app] [--lines N] [--follow]");
            return Exit::BadConfig;
        }
    };
    let (targets, client) = match agents::prepare(file.as_deref(), &env) {
        Ok(v) => v,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::BadConfig;
        }
    };
    let request = Request::Logs {
        app,
        lines: args.lines,
        follow: args.follow,
    };
    agents::stream_all(&targets, &client, &request, |host, response| {
        if let Response::Log(line) = response {
            println!("{host} | {} | {}", line.app, line.line);
        }
    })
    .await
}
