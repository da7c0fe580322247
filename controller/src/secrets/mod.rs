//! An environment's secrets on the controller: the files that declare them, next to the
//! ecosystem file — `.pmfleet/secrets` (every environment) then `.pmfleet/secrets.<env>`
//! (which wins for a name in both) — in dotenv form ([`dotenv`]), and their values, resolved
//! at deploy time ([`resolve`]): `$(command)` run on the controller (a password manager's
//! CLI), `$NAME` from the controller's environment (CI secrets).
//!
//! Every value is registered with [`pmfleet_shared::redact`] the moment it is known, so
//! nothing pmfleet prints afterwards can show it. [`references`] says which secrets the
//! ecosystem file names (`"KEY": "secret:NAME"`) and splits a hook's environment into what
//! may go on a command line and what must not.

pub mod dotenv;
pub mod references;
mod resolve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use resolve::resolve;

/// The directory next to the ecosystem file that holds the secrets files.
pub const SECRETS_DIR: &str = ".pmfleet";

/// One secret as declared, not evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub name: String,
    pub parts: Vec<dotenv::Part>,
    pub file: PathBuf,
    pub line: usize,
}

impl Declared {
    /// Where the value comes from, in words (`pmfleet secrets`): never the value itself.
    pub fn source(&self) -> String {
        use dotenv::Part;
        let pieces: Vec<String> = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Literal(_) => "text written in the file".to_owned(),
                Part::Var(v) => format!("${v}"),
                Part::Command(c) => format!("$({c})"),
            })
            .collect();
        let mut seen = Vec::new();
        for p in pieces {
            if !seen.contains(&p) {
                seen.push(p);
            }
        }
        if seen.is_empty() {
            "empty".to_owned()
        } else {
            seen.join(" + ")
        }
    }
}

/// Why an environment's secrets cannot be used. Messages name files, lines, secrets and
/// commands, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
    #[error(
        "{path}:{line}: secret `{name}` takes `${var}`, which is set neither earlier in the secrets files nor in pmfleet's environment"
    )]
    Unset {
        path: String,
        line: usize,
        name: String,
        var: String,
    },
    #[error("{path}:{line}: secret `{name}`: `$({command})` {reason}")]
    Command {
        path: String,
        line: usize,
        name: String,
        command: String,
        reason: String,
    },
}

/// The files of environment `env` that exist, in the order they are read.
pub fn files(ecosystem_dir: &Path, env: &str) -> Vec<PathBuf> {
    let dir = ecosystem_dir.join(SECRETS_DIR);
    [dir.join("secrets"), dir.join(format!("secrets.{env}"))]
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
}

/// Every secret environment `env` declares, in the order of the files (a name declared again
/// in a later file replaces the earlier one, keeping its place), and a warning per file that
/// other users can read.
pub fn declared(
    ecosystem_dir: &Path,
    env: &str,
) -> Result<(Vec<Declared>, Vec<String>), SecretsError> {
    use std::os::unix::fs::PermissionsExt;
    let mut out: Vec<Declared> = Vec::new();
    let mut warnings = Vec::new();
    for path in files(ecosystem_dir, env) {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| SecretsError::Unreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.permissions().mode() & 0o077 != 0
        {
            warnings.push(format!(
                "{shown} can be read by other users of this machine: `chmod 600 {shown}`"
            ));
        }
        let entries = dotenv::parse(&text).map_err(|e| SecretsError::Syntax {
            path: shown.clone(),
            line: e.line,
            message: e.message,
        })?;
        for entry in entries {
            let declared = Declared {
                name: entry.name,
                parts: entry.parts,
                file: path.clone(),
                line: entry.line,
            };
            match out.iter_mut().find(|d| d.name == declared.name) {
                Some(earlier) => *earlier = declared,
                None => out.push(declared),
            }
        }
    }
    Ok((out, warnings))
}

/// An environment's secrets, resolved. Its `Debug` shows names only.
#[derive(Clone, Default)]
pub struct Resolved {
    pub env_name: String,
    values: BTreeMap<String, String>,
    /// Secrets too short to be masked in output (see [`pmfleet_shared::redact::MIN_MASKED_LEN`]).
    pub unmasked: Vec<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("env_name", &self.env_name)
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Resolved {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// What is written on every host: the secrets file's JSON.
    pub fn host_file(&self) -> Vec<u8> {
        let file = pmfleet_shared::secrets::SecretsFile {
            env_name: self.env_name.clone(),
            values: self.values.clone(),
        };
        // A map of strings always serializes.
        serde_json::to_vec(&file).unwrap_or_default()
    }

    /// Secrets given as they are (tests, and values resolved elsewhere); each is registered
    /// for redaction.
    pub fn from_values(env_name: &str, values: BTreeMap<String, String>) -> Resolved {
        let mut resolved = Resolved {
            env_name: env_name.to_owned(),
            ..Resolved::default()
        };
        for (name, value) in values {
            resolved.insert(name, value);
        }
        resolved
    }

    fn insert(&mut self, name: String, value: String) {
        if !value.is_empty() && !pmfleet_shared::redact::register(&name, &value) {
            self.unmasked.push(name.clone());
        }
        self.values.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_file_wins_and_keeps_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join(SECRETS_DIR);
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("secrets"), "A=1\nB=$(pass b)\n").unwrap();
        std::fs::write(secrets.join("secrets.production"), "B=$CI_B\nC='x'\n").unwrap();
        std::fs::write(secrets.join("secrets.staging"), "D=1\n").unwrap();
        let (found, _) = declared(dir.path(), "production").unwrap();
        let names: Vec<(&str, String)> = found
            .iter()
            .map(|d| (d.name.as_str(), d.source()))
            .collect();
        assert_eq!(
            names,
            [
                ("A", "text written in the file".to_string()),
                ("B", "$CI_B".to_string()),
                ("C", "text written in the file".to_string())
            ]
        );
        let (only_base, _) = declared(dir.path(), "other").unwrap();
        assert_eq!(only_base.len(), 2);
        let err = {
            std::fs::write(secrets.join("secrets.bad"), "A=1\n=2\n").unwrap();
            declared(dir.path(), "bad").unwrap_err()
        };
        assert!(err.to_string().contains("secrets.bad:2:"), "{err}");
    }

    #[test]
    fn debug_shows_names_only() {
        let r = Resolved::from_values(
            "p",
            [("TOKEN".to_string(), "debug-secret-value".to_string())].into(),
        );
        let shown = format!("{r:?}");
        assert!(
            shown.contains("TOKEN") && !shown.contains("debug-secret"),
            "{shown}"
        );
    }
}
