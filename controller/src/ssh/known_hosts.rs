//! Host key checking against known_hosts files, strict by default.
//!
//! Matching is done by `russh::keys::known_hosts` (plain, hashed `|1|` and `[host]:port`
//! entries). This module turns its answers for several files into one verdict, learns new keys
//! when asked to, and reports a changed key with the real file line: russh numbers lines without
//! counting comment lines, so its line is mapped back before it reaches a message.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use russh::keys::{Algorithm, HashAlg, PublicKey};

use super::error::SshError;

/// Serialises appends to known_hosts files within this process, so two connections learning
/// keys at once neither interleave lines nor learn the same key twice.
static LEARN_LOCK: Mutex<()> = Mutex::new(());

/// The verdict on a host key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostKeyStatus {
    /// Some file lists exactly this key for the host.
    Known,
    /// No file lists a key of this type for the host.
    Unknown,
    /// A file lists a different key of the same type for the host (and none lists this one).
    Changed { path: PathBuf, line: usize },
}

/// "SHA256:..." as OpenSSH prints it.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Checks `key` for `host`:`port` against every file (missing files list nothing).
pub(crate) fn check(
    host: &str,
    port: u16,
    key: &PublicKey,
    files: &[PathBuf],
) -> Result<HostKeyStatus, SshError> {
    let answers = files
        .iter()
        .map(|path| {
            let answer = russh::keys::known_hosts::check_known_hosts_path(host, port, key, path)
                .map_err(Answer::from_error)
                .map(|known| {
                    if known {
                        Answer::Match
                    } else {
                        Answer::NoMatch
                    }
                });
            (path.clone(), answer.unwrap_or_else(|answer| answer))
        })
        .collect::<Vec<_>>();
    combine(answers)
}

/// One file's answer, as russh gives it.
#[derive(Debug)]
enum Answer {
    Match,
    NoMatch,
    /// russh's line number (comment lines not counted).
    Mismatch(usize),
    Failed(String),
}

impl Answer {
    fn from_error(error: russh::keys::Error) -> Answer {
        match error {
            russh::keys::Error::KeyChanged { line } => Answer::Mismatch(line),
            other => Answer::Failed(other.to_string()),
        }
    }
}

/// A match in any file wins (as in OpenSSH); otherwise a mismatch anywhere is a changed key;
/// an unreadable file is an error rather than "unknown", so a broken file never silently turns
/// strict checking into a prompt to learn.
fn combine(answers: Vec<(PathBuf, Answer)>) -> Result<HostKeyStatus, SshError> {
    if answers.iter().any(|(_, a)| matches!(a, Answer::Match)) {
        return Ok(HostKeyStatus::Known);
    }
    for (path, answer) in &answers {
        if let Answer::Mismatch(line) = answer {
            return Ok(HostKeyStatus::Changed {
                path: path.clone(),
                line: file_line(path, *line),
            });
        }
    }
    for (path, answer) in answers {
        if let Answer::Failed(message) = answer {
            return Err(SshError::KnownHosts { path, message });
        }
    }
    Ok(HostKeyStatus::Unknown)
}

/// Maps russh's line number (which skips comment lines) to the line in the file.
fn file_line(path: &Path, russh_line: usize) -> usize {
    match std::fs::read_to_string(path) {
        Ok(text) => real_line(&text, russh_line),
        Err(_) => russh_line,
    }
}

fn real_line(text: &str, russh_line: usize) -> usize {
    let mut counted = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.starts_with('#') {
            continue;
        }
        counted += 1;
        if counted == russh_line {
            return index + 1;
        }
    }
    russh_line
}

/// Appends `key` for `host`:`port` to `path`, unless it is there already.
pub(crate) fn learn(host: &str, port: u16, key: &PublicKey, path: &Path) -> Result<(), SshError> {
    let _guard = LEARN_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let known = russh::keys::known_hosts::check_known_hosts_path(host, port, key, path).map_err(
        |error| SshError::KnownHosts {
            path: path.to_path_buf(),
            message: error.to_string(),
        },
    )?;
    if known {
        return Ok(());
    }
    append_entry(host, port, key, path).map_err(|message| SshError::KnownHosts {
        path: path.to_path_buf(),
        message: format!("cannot record the host key: {message}"),
    })
}

/// Appends one `host key` line in the format russh's `learn_known_hosts_path` writes, without
/// its blank first line in a new file.
fn append_entry(host: &str, port: u16, key: &PublicKey, path: &Path) -> Result<(), String> {
    use std::io::Write;

    let entry = key.to_openssh().map_err(|error| error.to_string())?;
    let host_field = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| error.to_string())?;
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let separator = if existing.is_empty() || existing.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| error.to_string())?;
    file.write_all(format!("{separator}{host_field} {entry}\n").as_bytes())
        .map_err(|error| error.to_string())
}

/// The key algorithms recorded for the host, so they can be asked for first during the key
/// exchange (as OpenSSH does): a host known by its ECDSA key is then not reported "unknown"
/// because it offered an Ed25519 key first.
pub(crate) fn recorded_algorithms(host: &str, port: u16, files: &[PathBuf]) -> Vec<Algorithm> {
    let mut algorithms = Vec::new();
    for path in files {
        if let Ok(keys) = russh::keys::known_hosts::known_host_keys_path(host, port, path) {
            for (_, key) in keys {
                let algorithm = key.algorithm();
                if !algorithms.contains(&algorithm) {
                    algorithms.push(algorithm);
                }
            }
        }
    }
    algorithms
}

/// `preferred` with the recorded algorithms moved to the front (all RSA signature variants
/// count as RSA).
pub(crate) fn prefer_recorded(preferred: &[Algorithm], recorded: &[Algorithm]) -> Vec<Algorithm> {
    let is_recorded = |algorithm: &Algorithm| {
        recorded
            .iter()
            .any(|r| r == algorithm || (r.clone().is_rsa() && algorithm.clone().is_rsa()))
    };
    let mut ordered: Vec<Algorithm> = preferred
        .iter()
        .filter(|a| is_recorded(a))
        .cloned()
        .collect();
    ordered.extend(preferred.iter().filter(|a| !is_recorded(a)).cloned());
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(openssh: &str) -> PublicKey {
        PublicKey::from_openssh(openssh).unwrap()
    }

    #[test]
    fn outcome_mapping() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            combine(vec![(p("/a"), Answer::NoMatch), (p("/b"), Answer::Match)]).unwrap(),
            HostKeyStatus::Known
        );
        assert_eq!(
            combine(vec![(p("/a"), Answer::NoMatch), (p("/b"), Answer::NoMatch)]).unwrap(),
            HostKeyStatus::Unknown
        );
        assert_eq!(combine(vec![]).unwrap(), HostKeyStatus::Unknown);
        // A match elsewhere wins over a stale entry.
        assert_eq!(
            combine(vec![
                (p("/a"), Answer::Mismatch(1)),
                (p("/b"), Answer::Match)
            ])
            .unwrap(),
            HostKeyStatus::Known
        );
        assert!(matches!(
            combine(vec![
                (p("/missing/a"), Answer::Mismatch(4)),
                (p("/b"), Answer::NoMatch)
            ])
            .unwrap(),
            HostKeyStatus::Changed { line: 4, .. }
        ));
        assert!(matches!(
            combine(vec![(p("/a"), Answer::Failed("bad".into()))]),
            Err(SshError::KnownHosts { .. })
        ));
    }

    #[test]
    fn real_line_skips_comments_like_russh_does() {
        let text = "# header\n# more\nhost1 ssh-ed25519 AAAA\n\nhost2 ssh-ed25519 BBBB\n";
        assert_eq!(real_line(text, 1), 3);
        assert_eq!(real_line(text, 2), 4);
        assert_eq!(real_line(text, 3), 5);
    }

    #[test]
    fn check_against_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!("# managed\n[10.0.0.1]:2222 {KEY_A}\n10.0.0.2 {KEY_A}\n"),
        )
        .unwrap();
        let files = vec![path.clone(), dir.path().join("missing")];
        assert_eq!(
            check("10.0.0.1", 2222, &key(KEY_A), &files).unwrap(),
            HostKeyStatus::Known
        );
        assert_eq!(
            check("10.0.0.2", 22, &key(KEY_A), &files).unwrap(),
            HostKeyStatus::Known
        );
        // Same host, other port: a different entry.
        assert_eq!(
            check("10.0.0.1", 22, &key(KEY_A), &files).unwrap(),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            check("10.0.0.1", 2222, &key(KEY_B), &files).unwrap(),
            HostKeyStatus::Changed {
                path: path.clone(),
                line: 2
            }
        );
    }

    #[test]
    fn learn_appends_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".ssh/known_hosts");
        learn("10.0.0.3", 2200, &key(KEY_B), &path).unwrap();
        learn("10.0.0.3", 2200, &key(KEY_B), &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("[10.0.0.3]:2200 ssh-ed25519 "), "{text}");
        assert_eq!(
            check("10.0.0.3", 2200, &key(KEY_B), &[path]).unwrap(),
            HostKeyStatus::Known
        );
    }

    #[test]
    fn recorded_algorithms_go_first() {
        let preferred = [
            Algorithm::Ed25519,
            Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP256,
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa { hash: None },
        ];
        let ordered = prefer_recorded(&preferred, &[Algorithm::Rsa { hash: None }]);
        assert_eq!(ordered[0], preferred[2]);
        assert_eq!(ordered[1], preferred[3]);
        assert_eq!(ordered[2], preferred[0]);
        assert_eq!(prefer_recorded(&preferred, &[]), preferred.to_vec());
    }

    #[test]
    fn fingerprint_format() {
        assert!(fingerprint(&key(KEY_A)).starts_with("SHA256:"));
    }
}
