//! `pmfleet`: parse, set up tracing, hand over to the library, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use pmfleet_shared::cli::error;

fn main() -> ExitCode {
    let cli = match pmfleet::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return error::usage(e),
    };
    if cli.command.ends_on_closed_stdout() {
        pmfleet_shared::cli::pipe::end_quietly_on_closed_stdout();
    }
    let json = cli.command.json();
    pmfleet::redaction::install_panic_hook();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PMFLEET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(pmfleet::redaction::RedactedStderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            error::report(
                json,
                "internal",
                &format!("cannot start the async runtime: {e}"),
            );
            return ExitCode::from(1);
        }
    };
    let exit = runtime.block_on(pmfleet::run(cli));
    // Every host's outcome is known and printed: don't wait for connections still closing.
    runtime.shutdown_background();
    ExitCode::from(exit as u8)
}
