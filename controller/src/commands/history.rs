//! `pmfleet history [file] <env> [--json] [--limit N]`: who deployed what, when — the
//! controller's audit records and every host's `history.jsonl` merged into one timeline
//! ([`crate::audit::timeline`]), with the hosts whose history disagrees named under each run.

use std::sync::Arc;

use clap::Args;

use crate::audit::{self, timeline};
use crate::deploy::fleet::Fleet;
use crate::deploy::{Exit, history, scripts};
use crate::output::{Mode, Output};
use crate::ssh::{ClientSettings, Connector};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The words after the verb, as PM2 takes them.
    #[arg(
        required = true,
        value_name = "ARGS",
        help = "[ECOSYSTEM_FILE] ENVIRONMENT"
    )]
    pub words: Vec<String>,
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show the newest N runs (default 20).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

pub async fn run(args: HistoryArgs) -> Exit {
    let super::env_words::Chosen { eco, env, .. } =
        match super::env_words::choose(&args.words, args.json, "history") {
            Ok(chosen) => chosen,
            Err(exit) => return exit,
        };
    // Connection progress is not what this command is about: kept out of its output.
    let quiet = Arc::new(Output::capturing());
    let fleet = Fleet::connect(&env, &Connector::new(ClientSettings::default()), &quiet).await;
    let mut hosts: Vec<timeline::HostHistory> = fleet
        .not_connected
        .iter()
        .map(|r| (r.host.clone(), Err(r.message.clone())))
        .collect();
    let reads = crate::deploy::fleet::each(&fleet.members, |m| {
        let root = env.path.clone();
        async move {
            let read = m
                .run(&scripts::read_history(&root))
                .await
                .map(|c| history::parse(&c.stdout))
                .map_err(|e| e.to_string());
            (m.label.clone(), read)
        }
    })
    .await;
    hosts.extend(reads);
    let controller = audit::read(&audit::path_for(&env.name), &eco.source);
    let merged = timeline::merge(&controller, &hosts, args.limit);
    let out = Output::new(if args.json { Mode::Json } else { Mode::Plain });
    if args.json {
        out.print_block(&format!(
            "{}\n",
            serde_json::to_string_pretty(&merged).unwrap_or_default()
        ));
    } else {
        out.print_block(&render(&merged));
    }
    let disagree =
        !merged.notes.is_empty() || merged.entries.iter().any(|e| !e.disagreements.is_empty());
    if disagree {
        Exit::Failed
    } else {
        Exit::Success
    }
}

/// `text` as it may reach a terminal: a history line is written by whoever could write the
/// file, so control characters (escape sequences, carriage returns) become `?`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The table, each run's disagreements under it, then the notes.
pub fn render(t: &timeline::Timeline) -> String {
    let rows: Vec<[String; 8]> = t
        .entries
        .iter()
        .map(|e| {
            let hosts: Vec<String> = e.hosts.iter().map(|(h, o)| format!("{h}:{o}")).collect();
            [
                e.when.clone(),
                e.action.clone(),
                e.release.clone().unwrap_or_else(|| "-".into()),
                e.sha
                    .as_deref()
                    .map(|s| s.get(..7).unwrap_or(s).to_owned())
                    .unwrap_or_else(|| "-".into()),
                e.performer.clone(),
                e.outcome.clone().unwrap_or_else(|| "-".into()),
                e.duration_ms
                    .map(|ms| {
                        pmfleet_shared::display::seconds(std::time::Duration::from_millis(ms))
                    })
                    .unwrap_or_else(|| "-".into()),
                if hosts.is_empty() {
                    "-".into()
                } else {
                    hosts.join(" ")
                },
            ]
            .map(|cell| printable(&cell))
        })
        .collect();
    let mut text = String::new();
    if rows.is_empty() {
        text.push_str("no deploys recorded\n");
    } else {
        let table = crate::output::table(
            &[
                "WHEN", "ACTION", "RELEASE", "SHA", "WHO", "OUTCOME", "TIME", "HOSTS",
            ],
            &rows,
        );
        let mut lines = table.lines();
        if let Some(header) = lines.next() {
            text.push_str(header);
            text.push('\n');
        }
        for (line, entry) in lines.zip(&t.entries) {
            text.push_str(line);
            text.push('\n');
            if let Some(m) = &entry.message {
                text.push_str(&format!("  {}\n", printable(m)));
            }
            for d in &entry.disagreements {
                text.push_str(&format!("  ! {}\n", printable(d)));
            }
        }
    }
    for note in &t.notes {
        text.push_str(&format!("! {}\n", printable(note)));
    }
    text
}
