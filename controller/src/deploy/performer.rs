//! Who is deploying, as the lock, the history, the audit trail and the notifications name
//! them: `PMFLEET_ACTOR`; else the CI's actor (`alice via github-actions`); else the git user
//! of the ecosystem file's repository (`user.name <user.email>`, as `git config` answers
//! there); else `user@machine`. [`choose`] is the pure order, table-tested; [`git_user`] asks
//! git.

use std::path::Path;
use std::time::Duration;

/// The CI systems whose actor is named, by the variable that holds it.
const CI_ACTORS: [(&str, &str); 3] = [
    ("GITHUB_ACTOR", "github-actions"),
    ("GITLAB_USER_LOGIN", "gitlab-ci"),
    ("BUILDKITE_BUILD_CREATOR", "buildkite"),
];

/// How long `git config` may take before the git user is left out.
const GIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The performer from the environment (`var`), the git user (asked only when the environment
/// names nobody), and the local `user@machine`, in that order.
pub fn choose(
    var: impl Fn(&str) -> Option<String>,
    git: impl FnOnce() -> Option<String>,
    local: String,
) -> String {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if let Some(actor) = set("PMFLEET_ACTOR") {
        return actor;
    }
    for (name, system) in CI_ACTORS {
        if let Some(actor) = set(name) {
            return format!("{actor} via {system}");
        }
    }
    git().unwrap_or(local)
}

/// `user.name <user.email>` (or either alone) as git configures them in `dir`'s repository;
/// `None` when git names nobody there, or cannot be asked.
pub fn git_user(dir: &Path) -> Option<String> {
    let ask = |key: &str| -> Option<String> {
        let mut child = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["config", "--get", key])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let started = std::time::Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if started.elapsed() < GIT_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
        let out = child.wait_with_output().ok()?;
        let value = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !value.is_empty()).then_some(value)
    };
    match (ask("user.name"), ask("user.email")) {
        (Some(name), Some(email)) => Some(format!("{name} <{email}>")),
        (Some(one), None) | (None, Some(one)) => Some(one),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actor_then_the_ci_then_git_then_the_local_user() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let git = || || Some("Alice <alice@example.com>".to_string());
        let local = || "alice@laptop".to_string();
        assert_eq!(
            choose(env(&[("PMFLEET_ACTOR", "release-bot")]), git(), local()),
            "release-bot"
        );
        assert_eq!(
            choose(env(&[("GITHUB_ACTOR", "bob")]), git(), local()),
            "bob via github-actions"
        );
        assert_eq!(
            choose(env(&[("PMFLEET_ACTOR", " ")]), git(), local()),
            "Alice <alice@example.com>",
            "a blank variable names nobody"
        );
        assert_eq!(choose(env(&[]), || None, local()), "alice@laptop");
    }

    #[test]
    fn the_git_user_is_read_from_the_repository_of_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let status = std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .status()
                .unwrap();
            assert!(status.success(), "git {args:?}");
        };
        git(&["init", "-q"]);
        // The repository's own settings win over the machine's.
        git(&["config", "user.name", "Alice Example"]);
        git(&["config", "user.email", "alice@example.com"]);
        assert_eq!(
            git_user(dir.path()).as_deref(),
            Some("Alice Example <alice@example.com>")
        );
    }
}
