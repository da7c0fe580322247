//! `pmfleet app [file] <env> <reload|restart|stop|start|delete|scale> <app> [N]`: one app
//! command sent to every host of the environment at once, with each host's outcome.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pmfleet_shared::ecosystem;
use pmfleet_shared::protocol::{Request, Response, ScaleTo, Target};

use crate::agent::targets as agents;
use crate::cli::parse_duration;
use crate::deploy::Exit;
use crate::output::table;

#[derive(Debug, Args)]
pub struct AppArgs {
    /// The words after the verb, as PM2 takes them.
    #[arg(
        required = true,
        value_name = "ARGS",
        help = "[ECOSYSTEM_FILE] ENVIRONMENT VERB APP [N]  (VERB: reload, restart, stop, start, delete, scale)"
    )]
    pub words: Vec<String>,
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

pub fn parse(words: &[String]) -> Result<AppCommand, String> {
    let mut rest: Vec<&str> = words.iter().map(String::as_str).collect();
    let file = match rest.first() {
        Some(first) if ecosystem::looks_like_ecosystem_file(first) => {
            Some(PathBuf::from(rest.remove(0)))
        }
        _ => None,
    };
    let usage = "usage: pmfleet app <env> <reload|restart|stop|start|delete|scale> <app|all> [N]";
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
    let command = match parse(&args.words) {
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
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn app_words() {
        let c = parse(&words("production reload api")).unwrap();
        assert_eq!(
            c.request,
            Request::Reload {
                target: Target::App("api".into())
            }
        );
        let c = parse(&words("production scale api +2")).unwrap();
        assert_eq!(
            c.request,
            Request::Scale {
                app: "api".into(),
                to: ScaleTo::Up(2)
            }
        );
        let c = parse(&words("production restart all")).unwrap();
        assert_eq!(
            c.request,
            Request::Restart {
                target: Target::All
            }
        );
        assert!(parse(&words("production scale api")).is_err());
        assert!(parse(&words("production frob api")).is_err());
        assert!(parse(&words("production reload")).is_err());
        assert!(parse(&words("production reload api 3")).is_err());
    }
}
