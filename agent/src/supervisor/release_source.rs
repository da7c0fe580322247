//! Where a release comes from, as `apply_release` takes it: the release directory (absolute,
//! real, symlinks resolved), its ecosystem file (inside it), and the part of the daemon's own
//! environment its apps inherit.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::SupervisorError;

/// Variables an app started by the controller inherits from the host (the daemon's own
/// environment), below the deploy environment: enough to find interpreters and to run as the
/// agent's user. The rest of the daemon's environment (its home, systemd's variables) stays out.
const HOST_VARS: [&str; 9] = [
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR",
];

/// The release directory as the apps will run from it: absolute, existing, symlinks resolved
/// (so a `current` link moving on later never changes what a running app executes).
pub(super) fn release_dir(dir: &Path) -> Result<PathBuf, SupervisorError> {
    if !dir.is_absolute() {
        return Err(SupervisorError::Release(format!(
            "release directory {} is not an absolute path",
            dir.display()
        )));
    }
    let real = std::fs::canonicalize(dir).map_err(|e| {
        SupervisorError::Release(format!("release directory {}: {e}", dir.display()))
    })?;
    if !real.is_dir() {
        return Err(SupervisorError::Release(format!(
            "release directory {} is not a directory",
            dir.display()
        )));
    }
    Ok(real)
}

/// The ecosystem file named relative to the release, which it may not leave.
pub(super) fn ecosystem_in(dir: &Path, rel: &Path) -> Result<PathBuf, SupervisorError> {
    let escapes = rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)));
    if escapes {
        return Err(SupervisorError::Release(format!(
            "ecosystem file {}: expected a path inside the release directory",
            rel.display()
        )));
    }
    let path = dir.join(rel);
    if !path.is_file() {
        return Err(SupervisorError::Release(format!(
            "ecosystem file {} does not exist",
            path.display()
        )));
    }
    Ok(path)
}

/// The part of the daemon's environment an app of a release inherits ([`HOST_VARS`] and the
/// `LC_*` locale variables).
pub(super) fn host_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| HOST_VARS.contains(&k.as_str()) || k.starts_with("LC_"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ecosystem_file_stays_inside_the_release() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ecosystem.json"), "{}").unwrap();
        assert!(ecosystem_in(dir.path(), Path::new("ecosystem.json")).is_ok());
        for bad in ["../ecosystem.json", "/etc/passwd", "a/../../x.json"] {
            let err = ecosystem_in(dir.path(), Path::new(bad)).unwrap_err();
            assert!(
                err.to_string().contains("inside the release"),
                "{bad}: {err}"
            );
        }
        assert!(ecosystem_in(dir.path(), Path::new("missing.json")).is_err());
    }

    #[test]
    fn the_release_directory_is_absolute_and_real() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("releases/1");
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("current")).unwrap();
        assert_eq!(
            release_dir(&dir.path().join("current")).unwrap(),
            std::fs::canonicalize(&real).unwrap()
        );
        assert!(release_dir(Path::new("releases/1")).is_err());
        assert!(release_dir(&dir.path().join("nope")).is_err());
    }
}
