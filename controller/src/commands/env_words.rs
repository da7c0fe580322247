//! `[ECOSYSTEM_FILE] ENVIRONMENT`, the words of the commands about one deploy environment
//! (`history`, `secrets`, `ca push-crl`): the file loaded and the environment picked, or the
//! problem said once (as JSON with `--json`) and exit 2.

use std::path::PathBuf;

use pmfleet_shared::cli::error;
use pmfleet_shared::ecosystem::{self, DeployEnv, Ecosystem};

use crate::deploy::Exit;

/// The file and the environment the words name.
pub struct Chosen {
    pub eco: Ecosystem,
    pub env: DeployEnv,
    /// The directory the command runs in (where the file was looked for).
    pub cwd: PathBuf,
}

/// Reads `words` for `pmfleet <verb>`; `Err` once the problem was reported.
pub fn choose(words: &[String], json: bool, verb: &str) -> Result<Chosen, Exit> {
    let (file, env_name) = match words {
        [env] => (None, env),
        [file, env] => (Some(PathBuf::from(file)), env),
        _ => {
            let usage = format!("usage: pmfleet {verb} [ECOSYSTEM_FILE] ENVIRONMENT");
            error::report(json, "usage", &usage);
            return Err(Exit::BadConfig);
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let bad_config = |message: String| {
        error::report(json, "bad_config", &message);
        Exit::BadConfig
    };
    let eco = ecosystem::load_from(file.as_deref(), &cwd).map_err(|e| bad_config(e.to_string()))?;
    let env = eco
        .environment(env_name)
        .map_err(|e| bad_config(e.to_string()))?
        .clone();
    Ok(Chosen { eco, env, cwd })
}
