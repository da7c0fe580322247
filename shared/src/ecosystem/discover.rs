//! Which file is the ecosystem file, and which format it is in.
//!
//! With no file named, pmfleet looks in the working directory under PM2's names, in PM2's
//! order (`Common.getConfigFileCandidates("ecosystem")` in PM2 5.x/6.x: `.json`, `.yml`,
//! `.yaml`, `.config.js`, `.config.cjs`, `.config.mjs`), then under three more names PM2 does
//! not look for but a team may well use. PM2 also falls back to `ecosystem.json5` and
//! `package.json`; pmfleet reads neither.

use std::path::{Path, PathBuf};

use super::error::LoadError;

/// The names looked for, in order; the first that exists wins.
pub const DISCOVERY_ORDER: [&str; 9] = [
    "ecosystem.json",
    "ecosystem.yml",
    "ecosystem.yaml",
    "ecosystem.config.js",
    "ecosystem.config.cjs",
    "ecosystem.config.mjs",
    "ecosystem.config.json",
    "ecosystem.config.yml",
    "ecosystem.config.yaml",
];

/// The three ways an ecosystem file can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    /// CommonJS or an ES module; evaluated by `node`.
    JavaScript,
}

impl Format {
    /// The format a file name implies: `.json`, `.yml`/`.yaml`, `.js`/`.cjs`/`.mjs`.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Format::Json),
            "yml" | "yaml" => Some(Format::Yaml),
            "js" | "cjs" | "mjs" => Some(Format::JavaScript),
            _ => None,
        }
    }
}

/// The ecosystem file in `dir`, looking under [`DISCOVERY_ORDER`]'s names.
pub fn discover(dir: &Path) -> Option<PathBuf> {
    DISCOVERY_ORDER
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// Like [`discover`], but says what was looked for when nothing is there.
pub fn locate(dir: &Path) -> Result<PathBuf, LoadError> {
    discover(dir).ok_or_else(|| LoadError::NotFound {
        dir: dir.to_path_buf(),
        searched: DISCOVERY_ORDER.iter().map(|s| (*s).to_owned()).collect(),
    })
}

/// Whether a command-line word names an ecosystem file rather than an environment, so that
/// `pmfleet deploy ecosystem.config.js production` and `pmfleet deploy production` both work:
/// true for names with an ecosystem extension, and for any existing file.
pub fn looks_like_ecosystem_file(arg: &str) -> bool {
    if arg.is_empty() {
        return false;
    }
    let path = Path::new(arg);
    Format::from_path(path).is_some() || path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_extensions() {
        assert_eq!(
            Format::from_path(Path::new("a/ecosystem.config.js")),
            Some(Format::JavaScript)
        );
        assert_eq!(
            Format::from_path(Path::new("x.cjs")),
            Some(Format::JavaScript)
        );
        assert_eq!(
            Format::from_path(Path::new("x.MJS")),
            Some(Format::JavaScript)
        );
        assert_eq!(Format::from_path(Path::new("x.json")), Some(Format::Json));
        assert_eq!(Format::from_path(Path::new("x.yml")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("x.yaml")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("x.toml")), None);
        assert_eq!(Format::from_path(Path::new("production")), None);
    }

    #[test]
    fn discovery_follows_the_order() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(discover(dir.path()), None);
        match locate(dir.path()) {
            Err(LoadError::NotFound { searched, .. }) => {
                assert_eq!(searched.len(), DISCOVERY_ORDER.len())
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.path().join("ecosystem.config.yaml"), "apps: []").unwrap();
        assert_eq!(
            discover(dir.path()),
            Some(dir.path().join("ecosystem.config.yaml"))
        );
        std::fs::write(
            dir.path().join("ecosystem.config.js"),
            "module.exports = {}",
        )
        .unwrap();
        assert_eq!(
            discover(dir.path()),
            Some(dir.path().join("ecosystem.config.js"))
        );
        std::fs::write(dir.path().join("ecosystem.json"), "{}").unwrap();
        assert_eq!(
            discover(dir.path()),
            Some(dir.path().join("ecosystem.json"))
        );
    }

    #[test]
    fn a_directory_named_like_the_file_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ecosystem.json")).unwrap();
        std::fs::write(dir.path().join("ecosystem.yml"), "apps: []").unwrap();
        assert_eq!(discover(dir.path()), Some(dir.path().join("ecosystem.yml")));
    }

    #[test]
    fn file_or_environment() {
        assert!(looks_like_ecosystem_file("ecosystem.config.js"));
        assert!(looks_like_ecosystem_file("deploy/prod.yaml"));
        assert!(looks_like_ecosystem_file("ecosystem.json"));
        assert!(!looks_like_ecosystem_file("production"));
        assert!(!looks_like_ecosystem_file(""));
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("fleetfile");
        std::fs::write(&odd, "{}").unwrap();
        assert!(looks_like_ecosystem_file(odd.to_str().unwrap()));
    }
}
