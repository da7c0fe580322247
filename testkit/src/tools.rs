//! Programs some tests drive besides pmfleet's own — Prometheus, tmux, Chromium and its
//! WebDriver — which `scripts/test.sh` installs from Debian's packages when missing; a test
//! without one is skipped with a line saying so ([`crate::require_tool!`]), or fails under
//! `CI=true`. Also a helper to read a program's artifacts directory under `target/`.

use std::path::{Path, PathBuf};

/// Why the program at `path` cannot run here (`None` when it can).
pub fn missing(path: &str, package: &str) -> Option<String> {
    if Path::new(path).is_file() {
        None
    } else {
        Some(format!(
            "{path} is missing: install Debian's `{package}` (scripts/test.sh does)"
        ))
    }
}

/// `target/test-artifacts/<name>/`, created: where a test leaves what a person may want to
/// look at afterwards (screenshots, captured screens). Never committed.
pub fn artifacts_dir(name: &str) -> PathBuf {
    let dir = crate::assets::workspace()
        .join("target")
        .join("test-artifacts")
        .join(name);
    let _ = std::fs::create_dir_all(&dir);
    dir
}
