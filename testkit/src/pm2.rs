//! PM2 7 itself, for the tests that compare with it or run it as a PM2 user's hooks would:
//! `$PMFLEET_PM2`, else the copy `scripts/test.sh` installs into `target/test-tools`, else
//! `pm2` on PATH.

use std::path::{Path, PathBuf};

/// The `pm2` executable, or why there is none (and how to install it).
pub fn find() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PMFLEET_PM2") {
        return Ok(PathBuf::from(path));
    }
    let installed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tools/node_modules/.bin/pm2");
    if installed.is_file() {
        return Ok(installed);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("pm2"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "PM2 is not installed: run ./scripts/test.sh, or `npm install --prefix target/test-tools pm2@7`".to_owned()
        })
}
