//! Secrets as the controller and the agent both see them: a reference in an env value
//! (`"DB_PASSWORD": "secret:DB_PASSWORD"`), and the one file per deploy root that holds the
//! values on a host, `<root>/.pmfleet/secrets` — written by the controller over SSH (mode
//! 0600, owned by the deploy user), read by the agent each time it starts an instance.
//!
//! The ecosystem file, the release marker and the agent's state file only ever hold the
//! reference; the value exists on the host in this file alone (and in the environment of the
//! processes that get it).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What an env value starts with to name a secret instead of holding a value.
pub const REFERENCE_PREFIX: &str = "secret:";

/// The secrets file, relative to the deploy root.
pub const SECRETS_FILE: &str = ".pmfleet/secrets";

/// The largest secrets file the agent reads.
pub const MAX_SECRETS_LEN: u64 = 1024 * 1024;

/// The secret an env value names, when it is exactly `secret:NAME` with a valid name.
pub fn reference(value: &str) -> Option<&str> {
    value
        .strip_prefix(REFERENCE_PREFIX)
        .filter(|name| valid_name(name))
}

/// A secret's name: letters, digits and `_`, not starting with a digit (an environment
/// variable name a shell can export).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The contents of the secrets file: JSON, one object.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretsFile {
    /// The deploy environment the values were resolved for.
    pub env_name: String,
    /// Name → value.
    pub values: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretsFile {
    // Never the values: a `{:?}` in a log line must not print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsFile")
            .field("env_name", &self.env_name)
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why the secrets file cannot be used. The messages name files and secrets, never values.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "{path} is readable by other users (mode {mode:o}): the deploy writes it 0600; `chmod 600 {path}` or deploy again"
    )]
    Exposed { path: String, mode: u32 },
    #[error(
        "secret `{name}` (env `{key}`) is not in {path}: add it to .pmfleet/secrets (or .pmfleet/secrets.<env>) next to the ecosystem file and deploy again"
    )]
    Missing {
        name: String,
        key: String,
        path: String,
    },
}

impl SecretsFile {
    /// Reads the file at `path`: a regular file (not a link) of at most [`MAX_SECRETS_LEN`]
    /// bytes that no other user can read.
    pub fn read(path: &Path) -> Result<SecretsFile, SecretsError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let unreadable = |reason: String| SecretsError::Unreadable {
            path: shown.clone(),
            reason,
        };
        let meta = std::fs::symlink_metadata(path).map_err(|e| unreadable(e.to_string()))?;
        if !meta.file_type().is_file() {
            return Err(unreadable("not a regular file".into()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretsError::Exposed { path: shown, mode });
        }
        if meta.len() > MAX_SECRETS_LEN {
            return Err(unreadable(format!("larger than {MAX_SECRETS_LEN} bytes")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        // serde_json's message names a position, never the text around it.
        serde_json::from_str(&text).map_err(|e| unreadable(format!("not a secrets file: {e}")))
    }
}

/// Whether any value of `env` is a reference.
pub fn has_references(env: &BTreeMap<String, String>) -> bool {
    env.values().any(|v| reference(v).is_some())
}

/// Replaces every reference in `env` by its value from `file` (read from `path`, named in
/// errors). A reference to a secret the file does not hold is an error naming it.
pub fn resolve_references(
    env: &mut BTreeMap<String, String>,
    file: &SecretsFile,
    path: &Path,
) -> Result<(), SecretsError> {
    for (key, value) in env.iter_mut() {
        let Some(name) = reference(value) else {
            continue;
        };
        match file.values.get(name) {
            Some(secret) => *value = secret.clone(),
            None => {
                return Err(SecretsError::Missing {
                    name: name.to_owned(),
                    key: key.clone(),
                    path: path.display().to_string(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_whole_values_with_a_valid_name() {
        let table = [
            ("secret:DB_PASSWORD", Some("DB_PASSWORD")),
            ("secret:_x1", Some("_x1")),
            ("secret:", None),
            ("secret:1ABC", None),
            ("secret:A-B", None),
            ("secret:A B", None),
            ("Secret:A", None),
            ("xsecret:A", None),
            ("plain", None),
        ];
        for (value, expected) in table {
            assert_eq!(reference(value), expected, "{value}");
        }
    }

    #[test]
    fn debug_never_shows_values() {
        let file = SecretsFile {
            env_name: "production".into(),
            values: [("TOKEN".to_string(), "s3cr3t-value".to_string())].into(),
        };
        let shown = format!("{file:?}");
        assert!(shown.contains("TOKEN"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn the_file_must_be_private_and_references_resolve_from_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        let file = SecretsFile {
            env_name: "production".into(),
            values: [("TOKEN".to_string(), "tok-123456".to_string())].into(),
        };
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretsFile::read(&path).unwrap_err();
        assert!(err.to_string().contains("readable by other users"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let read = SecretsFile::read(&path).unwrap();
        assert_eq!(read, file);

        let mut env: BTreeMap<String, String> = [
            ("API_TOKEN".to_string(), "secret:TOKEN".to_string()),
            ("PLAIN".to_string(), "secret: not a reference".to_string()),
        ]
        .into();
        assert!(has_references(&env));
        resolve_references(&mut env, &read, &path).unwrap();
        assert_eq!(env["API_TOKEN"], "tok-123456");
        assert_eq!(env["PLAIN"], "secret: not a reference");

        let mut missing: BTreeMap<String, String> =
            [("X".to_string(), "secret:NOPE".to_string())].into();
        let err = resolve_references(&mut missing, &read, &path).unwrap_err();
        assert!(err.to_string().contains("secret `NOPE` (env `X`)"), "{err}");
    }
}
