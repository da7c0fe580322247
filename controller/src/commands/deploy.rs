//! `pmfleet deploy ...`: load the ecosystem file, pick the environment, run the verb, print
//! the summary, and turn the per-host outcomes into an exit code.

use std::path::Path;
use std::sync::Arc;

use pmfleet_shared::cli::error;
use pmfleet_shared::ecosystem;

use crate::cli::{DeployArgs, Verb, parse_words};
use crate::deploy::rollout::RevertTo;
use crate::deploy::{self, Context, Exit, HostReport, Which};
use crate::last_ecosystem;
use crate::output::{Mode, Output};
use crate::ssh::{ClientSettings, Connector};

pub async fn run(args: DeployArgs) -> Exit {
    let command = match parse_words(&args.words, ecosystem::looks_like_ecosystem_file) {
        Ok(c) if args.message.is_some() && c.verb != Verb::Lock => {
            error::report(args.json, "usage", "`--message` goes with `lock`");
            return Exit::BadConfig;
        }
        Ok(c) => c,
        Err(message) => {
            error::report(args.json, "usage", &message);
            return Exit::BadConfig;
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let eco = match ecosystem::load_from(command.file.as_deref(), &cwd) {
        Ok(eco) => eco,
        Err(message) => {
            error::report(args.json, "bad_config", &message.to_string());
            return Exit::BadConfig;
        }
    };
    // So that `pmfleet status` run elsewhere asks about this fleet.
    last_ecosystem::remember(&last_ecosystem::memo_path(), &eco.source);
    for warning in &eco.warnings {
        eprintln!("warning: {warning}");
    }
    let env = match eco.environment(&command.env) {
        Ok(env) => env.clone(),
        Err(e) => {
            error::report(args.json, "bad_config", &e.to_string());
            return Exit::BadConfig;
        }
    };

    let out = Arc::new(Output::new(Mode::detect(args.json)));
    let settings = ClientSettings {
        accept_new_host_keys: args.accept_new_host_key,
        connect_timeout: args.connect_timeout,
        ..ClientSettings::default()
    };
    let mut ctx = Context {
        out: out.clone(),
        connector: Connector::new(settings),
        who: deploy::who_in(eco.source.parent()),
        cache_root: deploy::revision::default_cache_root(),
        workdir: eco
            .source
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.clone()),
        lock_wait: args.lock_wait,
        cancel: tokio_util::sync::CancellationToken::new(),
        upgrade_agent: args.upgrade_agent,
        secrets: Default::default(),
        on_started: None,
        run_id: uuid::Uuid::new_v4().to_string(),
    };
    watch_interrupts(ctx.cancel.clone(), out.clone());
    let asked_ref = match &command.verb {
        Verb::Update { git_ref } => git_ref.clone().or_else(|| args.git_ref.clone()),
        _ => None,
    };
    let reporting = match super::deploy_reporting::prepare(
        &command.verb,
        &eco,
        &env,
        &mut ctx,
        asked_ref,
    )
    .await
    {
        Ok(r) => r,
        Err(message) => {
            error::report(args.json, "bad_config", &message);
            return Exit::BadConfig;
        }
    };

    let (title, reports, summary) = match &command.verb {
        Verb::Setup => {
            if env.agent.is_some() && !args.json {
                make_fleet_ca_on_a_terminal();
            }
            match deploy::setup(&ctx, &env).await {
                Ok(reports) => ("setup", reports, true),
                Err(e) => {
                    error::report(args.json, "agent", &e.to_string());
                    return Exit::Failed;
                }
            }
        }
        Verb::Update { git_ref } => {
            let git_ref = git_ref.as_deref().or(args.git_ref.as_deref());
            ("deploy", deploy::update(&ctx, &env, git_ref).await, true)
        }
        Verb::Revert(n) => {
            let to = n.map_or(RevertTo::NewestCommon, RevertTo::Steps);
            ("revert", deploy::revert(&ctx, &env, to).await, true)
        }
        Verb::List => ("list", deploy::list(&ctx, &env).await, false),
        Verb::Current => (
            "current",
            deploy::show_release(&ctx, &env, Which::Current).await,
            false,
        ),
        Verb::Previous => (
            "previous",
            deploy::show_release(&ctx, &env, Which::Previous).await,
            false,
        ),
        Verb::Exec(cmd) => ("exec", deploy::exec(&ctx, &env, cmd).await, true),
        Verb::Lock => (
            "lock",
            deploy::lock(&ctx, &env, args.message.as_deref()).await,
            true,
        ),
        Verb::Unlock => ("unlock", deploy::unlock(&ctx, &env, args.force).await, true),
    };
    let exit = deploy::report::exit_for(&reports);
    if summary {
        let rows: Vec<_> = reports.iter().map(HostReport::row).collect();
        out.summary(&format!("{title} {}: {}", env.name, verdict(exit)), &rows);
    }
    reporting.conclude(&ctx, &env, &eco, &reports, exit).await;
    exit
}

/// The first `setup` on a machine with no fleet CA, run by someone at a terminal (not CI):
/// makes the CA, saying where, instead of failing. Elsewhere setup says, once, what to run.
fn make_fleet_ca_on_a_terminal() {
    use std::io::IsTerminal;
    let interactive = std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
        && std::env::var_os("CI").is_none();
    let Ok(dir) = crate::pki::default_dir() else {
        return;
    };
    if !interactive || dir.join(crate::pki::CA_CERT_FILE).exists() {
        return;
    }
    match crate::pki::Ca::init(&dir) {
        Ok(ca) => eprintln!(
            "made the fleet CA in {} (fingerprint {}); its key never leaves this machine: back it up",
            dir.display(),
            ca.fingerprint()
        ),
        Err(e) => eprintln!("warning: could not make the fleet CA: {e}"),
    }
}

/// First Ctrl-C or SIGTERM: stop safely (see [`Context::cancel`]); the second exits at once.
fn watch_interrupts(cancel: tokio_util::sync::CancellationToken, out: Arc<Output>) {
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        for count in 0.. {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if count > 0 {
                std::process::exit(130);
            }
            out.info("interrupted: stopping safely (removing the unswitched release, releasing the lock); interrupt again to quit at once");
            cancel.cancel();
        }
    });
}

fn verdict(exit: Exit) -> &'static str {
    match exit {
        Exit::Success => "succeeded",
        Exit::Failed => "FAILED",
        Exit::BadConfig => "bad configuration",
        Exit::Unreachable => "FAILED (unreachable hosts)",
        Exit::LockHeld => "refused (locked)",
    }
}
