//! `pmfleet logs [file] <env> [app] [--lines N] [--follow]`: the apps' logs from every host
//! of the environment, merged as they arrive, each line prefixed with its host.

use clap::Args;
use pmfleet_shared::protocol::{Request, Response};

use crate::agent::targets as agents;
use crate::deploy::Exit;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The words after the verb, as PM2 takes them.
    #[arg(
        required = true,
        value_name = "ARGS",
        help = "[ECOSYSTEM_FILE] ENVIRONMENT [APP]"
    )]
    pub words: Vec<String>,
    /// Lines of history from each host first.
    #[arg(long, default_value_t = 15)]
    pub lines: usize,
    /// Keep printing new lines until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

pub async fn run(args: LogsArgs) -> Exit {
    let (targets, client, app) = match agents::env_and_app(
        &args.words,
        "usage: pmfleet logs <env> [app] [--lines N] [--follow]",
    ) {
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
