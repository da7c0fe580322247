use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pmfleet::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PMFLEET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let exit = runtime.block_on(pmfleet::run(cli));
    // Every host's outcome is known and printed: don't wait for connections still closing.
    runtime.shutdown_background();
    ExitCode::from(exit as u8)
}
