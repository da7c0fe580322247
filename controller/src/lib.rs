//! The pmfleet controller: reads the deploy environments of an ecosystem file and drives
//! every host over SSH.
//!
//! - [`cli`]: the command line; [`commands`]: one module per verb.
//! - [`deploy`]: the engine — host layout, locks, history, rollout.
//! - [`agent`]: talking to the agents (mutual TLS, setup, apply-release).
//! - [`ssh`]: the russh client; [`transport`]: SSH or local execution behind one type.
//! - [`shell`]: the only place values are quoted for a shell.
//! - [`output`]: progress, plain lines, JSON, summary tables; [`last_ecosystem`]: the file
//!   a command last used, for `status` outside the project directory.
//! - [`secrets`]: an environment's secrets files resolved on the controller; [`redaction`]:
//!   masking them in logs and panics too; [`notify`]: webhooks told about runs and apps;
//!   [`audit`]: the controller's record of every run, and `history` across hosts.

pub mod agent;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod concurrent;
pub mod deploy;
pub mod last_ecosystem;
pub mod notify;
pub mod output;
pub mod pki;
pub mod redaction;
pub mod secrets;
pub mod shell;
pub mod ssh;
pub mod transport;

use deploy::Exit;

/// Runs a parsed command line and returns the exit code.
pub async fn run(cli: cli::Cli) -> Exit {
    match cli.command {
        cli::Command::Deploy(args) => commands::deploy::run(args).await,
        cli::Command::Ca(args) => commands::ca::run(args).await,
        cli::Command::Status(args) => commands::status::run(args).await,
        cli::Command::Monit(args) => commands::monit::run(args).await,
        cli::Command::Dashboard(args) => commands::dashboard::run(args).await,
        cli::Command::App(args) => commands::app::run(args).await,
        cli::Command::Logs(args) => commands::logs::run(args).await,
        cli::Command::Events(args) => commands::events::run(args).await,
        cli::Command::Config(args) => commands::config::run(args),
        cli::Command::Secrets(args) => commands::secrets::run(args),
        cli::Command::History(args) => commands::history::run(args).await,
        cli::Command::Completions { shell } => {
            let cmd = <cli::Cli as clap::CommandFactory>::command();
            pmfleet_shared::cli::docs::completions(cmd, shell, &mut std::io::stdout());
            Exit::Success
        }
        cli::Command::Man { dir } => {
            let cmd = <cli::Cli as clap::CommandFactory>::command();
            match pmfleet_shared::cli::docs::man_pages(cmd, &dir) {
                Ok(_) => {
                    eprintln!("{}", pmfleet_shared::cli::docs::install_hint(&dir));
                    Exit::Success
                }
                Err(e) => {
                    eprintln!("error: cannot write man pages into {}: {e}", dir.display());
                    Exit::Failed
                }
            }
        }
    }
}
