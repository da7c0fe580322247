//! `pmfleet-agent`: parse, set up tracing, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use pmfleet_agent::cli::{Cli, Command};
use pmfleet_agent::home::AgentHome;
use pmfleet_shared::cli::error;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return error::usage(e),
    };
    if cli.command.ends_on_closed_stdout() {
        pmfleet_shared::cli::pipe::end_quietly_on_closed_stdout();
    }
    let json = cli.command.json();
    let daemon = match &cli.command {
        Command::Daemon { tls_listen } => Some(pmfleet_agent::daemon::DaemonOptions {
            tls_listen: tls_listen.clone(),
        }),
        _ => None,
    };
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let filter = pmfleet_agent::logs::filter(
            std::env::var("PMFLEET_LOG").ok().as_deref(),
            daemon.is_some(),
        );
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(pmfleet_agent::logs::DaemonLog)
                    .with_ansi(false),
            )
            .with(filter)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error::report(json, "internal", &format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let home = AgentHome::from_env();
    runtime.block_on(async move {
        if let Some(options) = daemon {
            let shutdown = CancellationToken::new();
            let on_signal = shutdown.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                on_signal.cancel();
            });
            return match pmfleet_agent::daemon::run_with(home, options, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        if let Command::Run(args) = cli.command {
            return pmfleet_agent::run::run(args, home).await;
        }
        match pmfleet_agent::cli::run(cli.command, &home).await {
            Ok(code) => code,
            Err(e) => {
                error::report(json, "failed", &format!("{e:#}"));
                ExitCode::FAILURE
            }
        }
    })
}
