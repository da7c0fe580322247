//! `pmfleet secrets [file] <env> [--json]`: the names of the secrets an environment resolves
//! and where each comes from (which file and line, which command or variable), and where the
//! ecosystem file uses them — never a value. Nothing is run: a `$(command)` is named, not
//! executed.

use clap::Args;
use pmfleet_shared::cli::error;
use serde::Serialize;

use crate::deploy::Exit;
use crate::secrets::{self, references};

#[derive(Debug, Args)]
pub struct SecretsArgs {
    /// The words after the verb, as PM2 takes them.
    #[arg(
        required = true,
        value_name = "ARGS",
        help = "[ECOSYSTEM_FILE] ENVIRONMENT"
    )]
    pub words: Vec<String>,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One secret, as listed.
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    file: String,
    line: usize,
    /// `$(command)`, `$VAR`, or text written in the file.
    source: String,
    /// The fields of the ecosystem file that name it.
    used_by: Vec<String>,
}

pub fn run(args: SecretsArgs) -> Exit {
    let super::env_words::Chosen { eco, env, cwd } =
        match super::env_words::choose(&args.words, args.json, "secrets") {
            Ok(chosen) => chosen,
            Err(exit) => return exit,
        };
    let env_name = env.name.clone();
    let env = &env;
    let dir = eco
        .source
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or(cwd);
    let (declared, warnings) = match secrets::declared(&dir, &env_name) {
        Ok(d) => d,
        Err(e) => {
            error::report(args.json, "bad_config", &e.to_string());
            return Exit::BadConfig;
        }
    };
    let refs = references::references(&eco, env);
    let names: Vec<String> = declared.iter().map(|d| d.name.clone()).collect();
    let missing = references::missing(&refs, &names);
    let listed: Vec<Listed> = declared
        .iter()
        .map(|d| Listed {
            name: d.name.clone(),
            file: d
                .file
                .strip_prefix(&dir)
                .unwrap_or(&d.file)
                .display()
                .to_string(),
            line: d.line,
            source: d.source(),
            used_by: refs
                .iter()
                .filter(|r| r.name == d.name)
                .map(|r| r.field.clone())
                .collect(),
        })
        .collect();
    if args.json {
        let doc = serde_json::json!({
            "environment": env_name,
            "secrets": listed,
            "missing": missing,
            "warnings": warnings,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        if listed.is_empty() {
            println!(
                "{env_name}: no secrets (none declared in {dir}/.pmfleet/secrets or secrets.{env_name})",
                dir = dir.display()
            );
        }
        let rows: Vec<[String; 4]> = listed
            .iter()
            .map(|l| {
                [
                    l.name.clone(),
                    format!("{}:{}", l.file, l.line),
                    l.source.clone(),
                    if l.used_by.is_empty() {
                        "(not used)".to_owned()
                    } else {
                        l.used_by.join(", ")
                    },
                ]
            })
            .collect();
        if !rows.is_empty() {
            print!(
                "{}",
                crate::output::table(&["NAME", "DECLARED", "FROM", "USED BY"], &rows)
            );
        }
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        for m in &missing {
            eprintln!("error: {m}");
        }
    }
    if missing.is_empty() {
        Exit::Success
    } else {
        Exit::BadConfig
    }
}
