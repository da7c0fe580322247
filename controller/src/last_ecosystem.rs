//! The ecosystem file the controller last worked with, remembered so that `pmfleet status`
//! works outside the project directory: every command that loads a file by name or from the
//! working directory writes its absolute path to `<cache>/pmfleet/last-ecosystem`
//! (`$XDG_CACHE_HOME`, else `~/.cache`), and a command that finds no file where it runs reads
//! it back, saying which file it used.

use std::path::{Path, PathBuf};

use pmfleet_shared::ecosystem::{self, Ecosystem, LoadError};

/// Where the path is kept, under the controller's cache directory.
pub fn memo_path() -> PathBuf {
    crate::deploy::revision::default_cache_root()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
        .join("last-ecosystem")
}

/// Remembers `file` (absolute) in `memo`; a cache that cannot be written is not an error.
pub fn remember(memo: &Path, file: &Path) {
    if let Some(dir) = memo.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = memo.with_extension("tmp");
    if std::fs::write(&tmp, file.display().to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, memo);
    }
}

/// The file remembered in `memo`, if it still exists.
pub fn recall(memo: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(memo).ok()?;
    let path = PathBuf::from(text.trim());
    (path.is_absolute() && path.is_file()).then_some(path)
}

/// [`ecosystem::load_from`], remembering the file it loaded; when `file` is `None` and `cwd`
/// has none, the remembered one is loaded instead and returned as the second value.
pub fn load(
    file: Option<&Path>,
    cwd: &Path,
    memo: &Path,
) -> Result<(Ecosystem, Option<PathBuf>), LoadError> {
    if file.is_none()
        && ecosystem::discover(cwd).is_none()
        && let Some(last) = recall(memo)
    {
        let eco = ecosystem::load(&last)?;
        return Ok((eco, Some(last)));
    }
    let eco = ecosystem::load_from(file, cwd)?;
    remember(memo, &eco.source);
    Ok((eco, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"apps": [], "deploy": {"production": {"host": "web1", "repo": "r", "path": "/srv/a", "ref": "main"}}}"#;

    #[test]
    fn the_last_file_is_used_where_there_is_none() {
        let project = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let memo = cache.path().join("pmfleet/last-ecosystem");
        std::fs::write(project.path().join("ecosystem.json"), FILE).unwrap();

        // Nothing remembered yet, nothing here: the loader's own not-found error.
        assert!(load(None, elsewhere.path(), &memo).is_err());
        // In the project: loaded and remembered.
        let (eco, recalled) = load(None, project.path(), &memo).unwrap();
        assert_eq!(recalled, None);
        assert!(eco.deploy.contains_key("production"));
        // Elsewhere: the remembered one, said so.
        let (eco, recalled) = load(None, elsewhere.path(), &memo).unwrap();
        assert_eq!(recalled.as_deref(), Some(eco.source.as_path()));
        // A file named explicitly always wins.
        let other = elsewhere.path().join("other.json");
        std::fs::write(&other, FILE).unwrap();
        let (eco, recalled) = load(Some(&other), project.path(), &memo).unwrap();
        assert_eq!((eco.source, recalled), (other.clone(), None));
        assert_eq!(recall(&memo), Some(other.clone()));
        // A remembered file that is gone is forgotten.
        std::fs::remove_file(&other).unwrap();
        assert_eq!(recall(&memo), None);
    }
}
