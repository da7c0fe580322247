//! `pmfleet app [file] <env> <reload|restart|stop|start|delete|scale> <app> [N]`: one app
//! command sent to every host of the environment at once, with each host's outcome, and one
//! record of it in the controller's audit trail ([`crate::audit`]); and `pmfleet app <env>
//! maintenance on [--message TEXT] | off [app]`: the agents answer new connections to the
//! apps' shared sockets with a 503 page while on.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use pmfleet_shared::ecosystem;
use pmfleet_shared::protocol::{MaintenanceRequest, Request, Response, ScaleTo, Target};

use crate::agent::targets as agents;
use crate::audit::{self, AuditRecord, HostEntry};
use crate::cli::parse_duration;
use crate::deploy::Exit;
use crate::output::table;

#[derive(Debug, Args)]
pub struct AppArgs {
    /// The words after the verb, as PM2 takes them.
    #[arg(
        required = true,
        value_name = "ARGS",
        help = "[ECOSYSTEM_FILE] ENVIRONMENT VERB APP [N]  (VERB: reload, restart, stop, start, delete, scale), or ENVIRONMENT maintenance on|off [APP]"
    )]
    pub words: Vec<String>,
    /// `maintenance on`: the text of the 503 page (HTML-escaped).
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// How long each host may take (a reload waits for the new instances to be ready).
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// The words after `app`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AppCommand {
    pub file: Option<PathBuf>,
    pub env: String,
    pub request: Request,
    pub verb: String,
}

pub fn parse(words: &[String], message: Option<&str>) -> Result<AppCommand, String> {
    let mut rest: Vec<&str> = words.iter().map(String::as_str).collect();
    let file = match rest.first() {
        Some(first) if ecosystem::looks_like_ecosystem_file(first) => {
            Some(PathBuf::from(rest.remove(0)))
        }
        _ => None,
    };
    let usage = "usage: pmfleet app <env> <reload|restart|stop|start|delete|scale> <app|all> [N], or pmfleet app <env> maintenance on|off [app]";
    if let [env, "maintenance", switch, more @ ..] = rest.as_slice() {
        let on = match *switch {
            "on" => true,
            "off" => false,
            other => return Err(format!("`maintenance {other}`: on or off; {usage}")),
        };
        let target = match more {
            [] => Target::All,
            [app] => Target::parse(app),
            _ => return Err(usage.to_string()),
        };
        if !on && message.is_some() {
            return Err("`--message` goes with `maintenance on`".into());
        }
        return Ok(AppCommand {
            file,
            env: env.to_string(),
            request: Request::Maintenance(Box::new(MaintenanceRequest {
                target,
                on,
                message: message.map(str::to_string),
            })),
            verb: format!("maintenance {switch}"),
        });
    }
    if message.is_some() {
        return Err("`--message` goes with `maintenance on`".into());
    }
    let (env, verb, app) = match rest.as_slice() {
        [env, verb, app, ..] => (*env, *verb, *app),
        _ => return Err(usage.to_string()),
    };
    let extra = rest.get(3).copied();
    let target = Target::parse(app);
    let request = match (verb, extra) {
        ("reload", None) => Request::Reload { target },
        ("restart" | "start", None) => Request::Restart { target },
        ("stop", None) => Request::Stop { target },
        ("delete", None) => Request::Delete { target },
        ("scale", Some(n)) => Request::Scale {
            app: app.to_string(),
            to: n.parse::<ScaleTo>()?,
        },
        ("scale", None) => return Err("`scale` needs a count: N, +N, -N or max".into()),
        (_, Some(x)) if verb != "scale" => return Err(format!("unexpected `{x}`; {usage}")),
        _ => return Err(format!("unknown app command `{verb}`; {usage}")),
    };
    if rest.len() > 4 {
        return Err(usage.to_string());
    }
    Ok(AppCommand {
        file,
        env: env.to_string(),
        request,
        verb: verb.to_string(),
    })
}

pub async fn run(args: AppArgs) -> Exit {
    let command = match parse(&args.words, args.message.as_deref()) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::BadConfig;
        }
    };
    let (targets, client) = match agents::prepare(command.file.as_deref(), &command.env) {
        Ok(v) => v,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::BadConfig;
        }
    };
    let began = Instant::now();
    let began_at = crate::deploy::now_rfc3339();
    let results = agents::each(&targets, |target| {
        let client = client.clone();
        let request = command.request.clone();
        let wait = args.timeout;
        async move {
            let answer = client
                .request(&target.host, target.port, &target.via, &request, Some(wait))
                .await;
            (target, answer)
        }
    })
    .await;
    let mut rows = Vec::new();
    let mut exit = Exit::Success;
    for (target, answer) in results {
        let (outcome, message) = match answer {
            Ok(Response::Done { messages }) => ("ok", messages.join("; ")),
            Ok(other) => ("ok", format!("{other:?}")),
            Err(e) if e.is_unreachable() => {
                if exit == Exit::Success {
                    exit = Exit::Unreachable;
                }
                ("unreachable", e.to_string())
            }
            Err(e) => {
                exit = Exit::Failed;
                ("failed", e.to_string())
            }
        };
        rows.push([target.label(), outcome.to_string(), message]);
    }
    println!("{} {}:", command.verb, command.env);
    print!("{}", table(&["HOST", "OUTCOME", "MESSAGE"], &rows));
    record(&command, &rows, exit, &began_at, began.elapsed());
    exit
}

/// Adds the command to the environment's audit trail; what cannot be written is one line on
/// stderr, never a failed command.
fn record(command: &AppCommand, rows: &[[String; 3]], exit: Exit, started: &str, took: Duration) {
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let Ok(eco) = ecosystem::load_from(command.file.as_deref(), &cwd) else {
        return;
    };
    let app = audit::view_action::app_of(&command.request);
    let record = AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        env: command.env.clone(),
        ecosystem: eco.source.clone(),
        action: format!("app {} {app}", command.verb),
        command: audit::command_line(),
        performer: crate::deploy::who_in(eco.source.parent()),
        git_ref: None,
        sha: None,
        release: None,
        hosts: rows
            .iter()
            .map(|[host, outcome, message]| HostEntry {
                // Named as the hosts' own histories name them (`host:port` when a port is set).
                host: eco
                    .environment(&command.env)
                    .ok()
                    .and_then(|env| env.hosts.iter().find(|h| h.host == *host))
                    .map_or_else(|| host.clone(), crate::deploy::fleet::label),
                outcome: outcome.clone(),
                message: crate::notify::message::one_line(message),
            })
            .collect(),
        outcome: if exit == Exit::Success {
            "succeeded"
        } else {
            "failed"
        }
        .to_owned(),
        started: started.to_owned(),
        duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
    };
    let path = audit::path_for(&command.env);
    if let Err(e) = audit::append(&path, &record) {
        eprintln!(
            "warning: could not add to the audit trail {}: {e}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn app_words() {
        let c = parse(&words("production reload api"), None).unwrap();
        assert_eq!(
            c.request,
            Request::Reload {
                target: Target::App("api".into())
            }
        );
        let c = parse(&words("production scale api +2"), None).unwrap();
        assert_eq!(
            c.request,
            Request::Scale {
                app: "api".into(),
                to: ScaleTo::Up(2)
            }
        );
        let c = parse(&words("production restart all"), None).unwrap();
        assert_eq!(
            c.request,
            Request::Restart {
                target: Target::All
            }
        );
        assert!(parse(&words("production scale api"), None).is_err());
        assert!(parse(&words("production frob api"), None).is_err());
        assert!(parse(&words("production reload"), None).is_err());
        assert!(parse(&words("production reload api 3"), None).is_err());
    }

    #[test]
    fn maintenance_words() {
        let c = parse(&words("production maintenance on"), Some("back at 5")).unwrap();
        assert_eq!(
            c.request,
            Request::Maintenance(Box::new(MaintenanceRequest {
                target: Target::All,
                on: true,
                message: Some("back at 5".into()),
            }))
        );
        let c = parse(&words("production maintenance off api"), None).unwrap();
        assert_eq!(
            c.request,
            Request::Maintenance(Box::new(MaintenanceRequest {
                target: Target::App("api".into()),
                on: false,
                message: None,
            }))
        );
        assert!(parse(&words("production maintenance"), None).is_err());
        assert!(parse(&words("production maintenance maybe"), None).is_err());
        assert!(parse(&words("production maintenance off"), Some("x")).is_err());
        assert!(parse(&words("production reload api"), Some("x")).is_err());
    }
}
