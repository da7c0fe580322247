//! Evaluating the declared secrets on the controller, in file order: `$NAME` takes an earlier
//! secret of the files, else pmfleet's own environment (an unset one is an error, never an
//! empty value); `$(command)` runs `sh -c command` in the ecosystem file's directory with no
//! stdin and a deadline, and takes its stdout without the trailing newlines, as a shell does.
//! What a failing command printed is never shown, only how it ended: it may be the secret.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::dotenv::Part;
use super::{Declared, Resolved, SecretsError, declared};

/// How long one `$(command)` may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Every secret of environment `env`, resolved and registered for redaction, and warnings
/// (files others can read, values too short to be masked).
pub async fn resolve(
    ecosystem_dir: &Path,
    env: &str,
) -> Result<(Resolved, Vec<String>), SecretsError> {
    let (declared, mut warnings) = declared(ecosystem_dir, env)?;
    let mut resolved = Resolved {
        env_name: env.to_owned(),
        ..Resolved::default()
    };
    for secret in &declared {
        let value = evaluate(secret, &resolved, ecosystem_dir).await?;
        resolved.insert(secret.name.clone(), value);
    }
    for name in &resolved.unmasked {
        warnings.push(format!(
            "secret `{name}` is shorter than {} characters: pmfleet cannot mask it in output",
            pmfleet_shared::redact::MIN_MASKED_LEN
        ));
    }
    Ok((resolved, warnings))
}

async fn evaluate(
    secret: &Declared,
    earlier: &Resolved,
    dir: &Path,
) -> Result<String, SecretsError> {
    let mut value = String::new();
    for part in &secret.parts {
        match part {
            Part::Literal(text) => value.push_str(text),
            Part::Var(var) => match earlier.get(var) {
                Some(v) => value.push_str(v),
                None => match std::env::var(var) {
                    Ok(v) => value.push_str(&v),
                    Err(_) => {
                        return Err(SecretsError::Unset {
                            path: secret.file.display().to_string(),
                            line: secret.line,
                            name: secret.name.clone(),
                            var: var.clone(),
                        });
                    }
                },
            },
            Part::Command(command) => {
                let out = run(command, dir)
                    .await
                    .map_err(|reason| SecretsError::Command {
                        path: secret.file.display().to_string(),
                        line: secret.line,
                        name: secret.name.clone(),
                        command: command.clone(),
                        reason,
                    })?;
                value.push_str(&out);
            }
        }
    }
    Ok(value)
}

/// `$(command)`'s output, or how it failed (never what it printed).
async fn run(command: &str, dir: &Path) -> Result<String, String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Kept from the output: a failing command may print what it should have returned.
        // (A password manager asking for a passphrase talks to the terminal, not stderr.)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not be started: {e}"))?;
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("did not finish within {}s", COMMAND_TIMEOUT.as_secs()))?
        .map_err(|e| format!("failed: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "failed ({}); run it yourself to see why",
            output.status
        ));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| "printed something that is not UTF-8 text".to_owned())?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SECRETS_DIR;

    fn project(base: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(SECRETS_DIR)).unwrap();
        std::fs::write(dir.path().join(SECRETS_DIR).join("secrets"), base).unwrap();
        dir
    }

    #[tokio::test]
    async fn commands_variables_and_earlier_secrets() {
        let dir = project(
            "FROM_CMD=$(printf 'resolve-cmd-value\\n\\n')\n\
             FROM_ENV=$PATH\n\
             JOINED=\"${FROM_CMD}:x\"\n\
             IN_DIR=$(basename \"$(pwd)\")\n",
        );
        let (r, _) = resolve(dir.path(), "production").await.unwrap();
        assert_eq!(r.get("FROM_CMD"), Some("resolve-cmd-value"));
        assert_eq!(
            r.get("FROM_ENV").map(str::to_owned),
            std::env::var("PATH").ok()
        );
        assert_eq!(r.get("JOINED"), Some("resolve-cmd-value:x"));
        let base = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(r.get("IN_DIR"), Some(base.as_str()));
        // Registered: printing it shows the mask.
        assert_eq!(
            pmfleet_shared::redact::redact("v=resolve-cmd-value"),
            "v=[secret FROM_CMD]"
        );
    }

    #[tokio::test]
    async fn failures_name_the_secret_never_the_output() {
        let rows = [
            (
                "A=$PMFLEET_TEST_SURELY_UNSET_VAR\n",
                "takes `$PMFLEET_TEST_SURELY_UNSET_VAR`",
            ),
            (
                "A=$(printf '%s%s' leak ed-xyz; exit 3)\n",
                "failed (exit status: 3)",
            ),
        ];
        for (text, expected) in rows {
            let dir = project(text);
            let err = resolve(dir.path(), "production").await.unwrap_err();
            let message = err.to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains("secrets:1: secret `A`"), "{message}");
            assert!(!message.contains("leaked-xyz"), "{message}");
        }
    }

    #[tokio::test]
    async fn short_values_are_said_to_be_unmasked() {
        let dir = project("SHORT=ab\n");
        let (r, warnings) = resolve(dir.path(), "production").await.unwrap();
        assert_eq!(r.unmasked, ["SHORT"]);
        assert!(
            warnings.iter().any(|w| w.contains("`SHORT` is shorter")),
            "{warnings:?}"
        );
    }
}
