//! What a remote `apply_release` may make the agent run: only a release that SSH put on the
//! host. The request names a deploy root and a release id; everything else — the directory,
//! the ecosystem file inside it, the apps' environment — is read from files the controller
//! wrote over SSH, never from the frame:
//!
//! - `<agent home>/roots`: the deploy roots `setup` registered on this host, one absolute path
//!   per line. The requested root must be one of them once symlinks are resolved.
//! - `<root>/releases/<id>`: the release, a real directory directly inside `<root>/releases/`
//!   (a symlink pointing elsewhere is refused); `id` is a plain name.
//! - `<root>/.pmfleet/prepared/<id>`: the deploy's completeness marker, a regular file holding
//!   the apps' environment ([`PreparedRelease`]), where a secret is only named
//!   (`secret:NAME`).
//! - `<root>/.pmfleet/secrets`: the values of those secrets (mode 0600), read by each
//!   instance of the release as it starts ([`pmfleet_shared::secrets`]).
//!
//! [`resolve`] turns an accepted request into the [`ApplyDir`] the supervisor runs; the
//! checks on names are pure functions, tested by tables.

use std::path::{Path, PathBuf};

use pmfleet_shared::protocol::{
    ApiError, ApplyDir, ApplyRelease, ErrorKind, MAX_MARKER_LEN, PreparedRelease,
};

/// The file in the agent home listing the deploy roots setup registered.
pub const ROOTS_FILE: &str = "roots";

/// The longest release id accepted.
const MAX_ID_LEN: usize = 128;

/// Why a remote `apply_release` is refused.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(
        "`{0}` is not a release id: use letters, digits, `.`, `-` and `_`, not starting with `.`"
    )]
    BadId(String),
    #[error(
        "{root} is not a deploy root this agent was set up for ({known}): only `pmfleet deploy <env> setup` adds one"
    )]
    UnknownRoot { root: String, known: String },
    #[error("release {id}: {path} is not a directory inside {releases}")]
    Outside {
        id: String,
        path: PathBuf,
        releases: PathBuf,
    },
    #[error("release {id} is not on this host ({path}: {reason})")]
    Missing {
        id: String,
        path: PathBuf,
        reason: String,
    },
    #[error("release {id} was not marked complete by a deploy ({path}: {reason}): deploy it again")]
    NotPrepared {
        id: String,
        path: PathBuf,
        reason: String,
    },
}

impl GateError {
    pub fn to_api(&self) -> ApiError {
        let kind = match self {
            GateError::UnknownRoot { .. } | GateError::Outside { .. } => ErrorKind::Forbidden,
            GateError::BadId(_) | GateError::NotPrepared { .. } => ErrorKind::Invalid,
            GateError::Missing { .. } => ErrorKind::NotFound,
        };
        ApiError {
            kind,
            message: self.to_string(),
        }
    }
}

/// A release id: a plain file name of letters, digits, `.`, `-` and `_`, not starting with a
/// dot (so never `.` or `..`).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `~` and `~/…` against `home` (the agent's `$HOME`, the SSH user's home); anything else as
/// it is.
pub fn expand_home(root: &Path, home: Option<&Path>) -> PathBuf {
    let (Some(home), Ok(rest)) = (home, root.strip_prefix("~")) else {
        return root.to_path_buf();
    };
    home.join(rest)
}

/// The registered roots in the text of the roots file: absolute paths, one per line.
pub fn registered(text: &str) -> Vec<PathBuf> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// The roots registered in `agent_home` (none when the file is missing or cannot be read).
pub fn registered_in(agent_home: &Path) -> Vec<PathBuf> {
    let text = super::deploy_roots::read_small(&agent_home.join(ROOTS_FILE))
        .ok()
        .flatten()
        .unwrap_or_default();
    registered(&text)
}

/// Resolve a remote `apply_release` against what SSH put on the host, or say why not.
pub fn resolve(agent_home: &Path, req: &ApplyRelease) -> Result<ApplyDir, GateError> {
    let id = &req.release;
    if !valid_id(id) {
        return Err(GateError::BadId(id.clone()));
    }
    let roots_text = std::fs::read_to_string(agent_home.join(ROOTS_FILE)).unwrap_or_default();
    let roots: Vec<PathBuf> = registered(&roots_text)
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let asked = expand_home(&req.root, home.as_deref());
    let root = std::fs::canonicalize(&asked)
        .ok()
        .filter(|r| asked.is_absolute() && roots.contains(r))
        .ok_or_else(|| GateError::UnknownRoot {
            root: req.root.display().to_string(),
            known: if roots.is_empty() {
                "none is".to_string()
            } else {
                let list: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                format!("it serves {}", list.join(", "))
            },
        })?;
    let releases = root.join("releases");
    let asked_dir = releases.join(id);
    let dir = std::fs::canonicalize(&asked_dir).map_err(|e| GateError::Missing {
        id: id.clone(),
        path: asked_dir.clone(),
        reason: e.to_string(),
    })?;
    let inside = std::fs::canonicalize(&releases)
        .ok()
        .is_some_and(|real| dir.parent() == Some(real.as_path()) && dir.is_dir());
    if !inside {
        return Err(GateError::Outside {
            id: id.clone(),
            path: dir,
            releases,
        });
    }
    let marker = root.join(".pmfleet").join("prepared").join(id);
    let prepared = read_marker(&marker).map_err(|reason| GateError::NotPrepared {
        id: id.clone(),
        path: marker.clone(),
        reason,
    })?;
    Ok(ApplyDir {
        release_dir: dir,
        ecosystem: None,
        env_name: Some(prepared.env_name),
        env: prepared.env,
        timeout_ms: req.timeout_ms,
        // Read by each instance as it starts; only the path is kept in the spec.
        secrets_file: Some(root.join(pmfleet_shared::secrets::SECRETS_FILE)),
    })
}

/// The marker: a regular file (not a link) of at most [`MAX_MARKER_LEN`] bytes of JSON.
fn read_marker(path: &Path) -> Result<PreparedRelease, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_MARKER_LEN {
        return Err(format!("larger than {MAX_MARKER_LEN} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    if text.trim().is_empty() {
        return Err("it holds no environment (an older pmfleet prepared it)".into());
    }
    serde_json::from_str(&text).map_err(|e| format!("not a release marker: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_ids_are_plain_names() {
        let table = [
            ("20260101-120000", true),
            ("20260101-120000-ab12", true),
            ("v1.2.3_rc1", true),
            ("", false),
            (".", false),
            ("..", false),
            (".hidden", false),
            ("../../etc", false),
            ("a/b", false),
            ("/abs", false),
            ("a b", false),
            ("a\nb", false),
            ("é", false),
        ];
        for (id, ok) in table {
            assert_eq!(valid_id(id), ok, "{id:?}");
        }
        assert!(!valid_id(&"a".repeat(MAX_ID_LEN + 1)));
    }

    #[test]
    fn roots_are_absolute_lines_and_tilde_is_the_agents_home() {
        assert_eq!(
            registered("/srv/app\n  /srv/other  \n\nrelative\n~/x\n"),
            [PathBuf::from("/srv/app"), PathBuf::from("/srv/other")]
        );
        let home = Path::new("/home/deploy");
        let table = [
            ("~", "/home/deploy"),
            ("~/app", "/home/deploy/app"),
            ("/srv/app", "/srv/app"),
            ("~other/app", "~other/app"),
        ];
        for (root, want) in table {
            assert_eq!(expand_home(Path::new(root), Some(home)), Path::new(want));
        }
        assert_eq!(expand_home(Path::new("~/x"), None), Path::new("~/x"));
    }

    /// A host as setup and a deploy leave it, and requests that must and must not run.
    #[test]
    fn only_complete_releases_of_registered_roots_resolve() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("agent");
        let root = tmp.path().join("srv/app");
        let other = tmp.path().join("srv/other");
        for dir in [
            &home,
            &root.join("releases/1"),
            &root.join(".pmfleet/prepared"),
        ] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::create_dir_all(other.join("releases/1")).unwrap();
        std::fs::create_dir_all(root.join("releases/2")).unwrap();
        std::fs::create_dir_all(root.join("releases/3")).unwrap();
        std::fs::write(home.join(ROOTS_FILE), format!("{}\n", root.display())).unwrap();
        let marker = r#"{"env_name":"production","env":{"PMFLEET_RELEASE":"1"}}"#;
        std::fs::write(root.join(".pmfleet/prepared/1"), marker).unwrap();
        std::fs::write(root.join(".pmfleet/prepared/3"), "").unwrap();
        // A release that is a link out of the releases directory, with a marker.
        std::os::unix::fs::symlink(&other, root.join("releases/evil")).unwrap();
        std::fs::write(root.join(".pmfleet/prepared/evil"), marker).unwrap();
        // A marker that is a link.
        std::fs::create_dir_all(root.join("releases/4")).unwrap();
        std::os::unix::fs::symlink(
            root.join(".pmfleet/prepared/1"),
            root.join(".pmfleet/prepared/4"),
        )
        .unwrap();

        let ask = |root: &Path, id: &str| {
            resolve(
                &home,
                &ApplyRelease {
                    root: root.to_path_buf(),
                    release: id.into(),
                    timeout_ms: 7,
                },
            )
        };
        let ok = ask(&root, "1").unwrap();
        assert_eq!(
            ok.release_dir,
            std::fs::canonicalize(root.join("releases/1")).unwrap()
        );
        assert_eq!(ok.env_name.as_deref(), Some("production"));
        assert_eq!(ok.env["PMFLEET_RELEASE"], "1");
        assert_eq!((ok.ecosystem, ok.timeout_ms), (None, 7));
        // The same root through a symlink is the same root.
        std::os::unix::fs::symlink(&root, tmp.path().join("app-link")).unwrap();
        assert!(ask(&tmp.path().join("app-link"), "1").is_ok());

        // (root, id, what the refusal says)
        let table: [(&Path, &str, &str); 8] = [
            (&other, "1", "not a deploy root"),
            (Path::new("/"), "1", "not a deploy root"),
            (Path::new("relative"), "1", "not a deploy root"),
            (&root, "../../other/releases/1", "not a release id"),
            (&root, "2", "not marked complete"),
            (&root, "3", "holds no environment"),
            (&root, "evil", "not a directory inside"),
            (&root, "4", "not a regular file"),
        ];
        for (root, id, want) in table {
            let err = ask(root, id).unwrap_err().to_string();
            assert!(err.contains(want), "{} {id}: {err}", root.display());
        }
        let err = ask(&root, "9").unwrap_err();
        assert_eq!(err.to_api().kind, ErrorKind::NotFound, "{err}");
        assert_eq!(
            ask(&other, "1").unwrap_err().to_api().kind,
            ErrorKind::Forbidden
        );
        // No roots file: nothing resolves.
        std::fs::remove_file(home.join(ROOTS_FILE)).unwrap();
        assert!(ask(&root, "1").unwrap_err().to_string().contains("none is"));
    }
}
