//! `watch`: restart an app when files under its watched paths change.
//!
//! Polling, not inotify: one walk per second of the watched trees, comparing a fingerprint
//! (newest mtime, file count, total size). It needs no extra dependency, works on every file
//! system, costs nothing when no app watches, and its debounce is built in: a change restarts
//! the app only once the tree has been quiet for one more poll.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pmfleet_shared::protocol::EventKind;
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::app::AppRuntime;

/// Directories never worth watching.
const ALWAYS_IGNORED: &[&str] = &["node_modules", ".git", "__pycache__"];
/// Stop walking after this many entries: a watch on a huge tree must not eat the CPU.
const MAX_ENTRIES: usize = 20_000;
pub const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    newest: Option<SystemTime>,
    files: usize,
    bytes: u64,
}

/// The fingerprint of every watched path, skipping the agent's own home and `ignore` entries:
/// a name (`tmp`, matched against every path component below the watched root), a relative
/// path (`public/uploads`), or a `*.ext` suffix.
pub fn fingerprint(paths: &[PathBuf], ignore: &[String], skip: &Path) -> Fingerprint {
    let mut fp = Fingerprint::default();
    let mut seen = 0;
    for root in paths {
        let mut stack = vec![root.clone()];
        while let Some(path) = stack.pop() {
            seen += 1;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            if seen > MAX_ENTRIES || path.starts_with(skip) || ignored(rel, ignore) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if let Ok(entries) = std::fs::read_dir(&path) {
                    stack.extend(entries.flatten().map(|e| e.path()));
                }
                continue;
            }
            fp.files += 1;
            fp.bytes += meta.len();
            if let Ok(m) = meta.modified() {
                fp.newest = fp.newest.max(Some(m));
            }
        }
    }
    fp
}

/// Whether `rel` (relative to a watched root) is ignored.
fn ignored(rel: &Path, ignore: &[String]) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if ALWAYS_IGNORED.contains(&name) || name.ends_with(".log") {
        return true;
    }
    ignore.iter().any(|i| {
        let i = i.trim_start_matches("./").trim_end_matches('/');
        if i.is_empty() {
            return false;
        }
        if let Some(suffix) = i.strip_prefix('*') {
            return !suffix.is_empty() && name.ends_with(suffix);
        }
        rel.starts_with(i) || rel.components().any(|c| c.as_os_str() == i)
    })
}

/// Restarts `app` when its watched files change and then stay quiet for one poll.
pub(super) async fn watcher(inner: Arc<Inner>, app: Arc<AppRuntime>, cancel: CancellationToken) {
    let spec = app.spec();
    let skip = inner.home.root().to_path_buf();
    let scan = move || fingerprint(&spec.watch, &spec.ignore_watch, &skip);
    let mut last = scan();
    let mut changed = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = cancel.cancelled() => return,
        }
        let now = scan();
        if now != last {
            last = now;
            changed = true;
            continue;
        }
        if changed {
            tracing::info!(app = %app.name, "watched files changed; restarting");
            let why = "watched files changed";
            inner.emit(&app.name, None, None, EventKind::Restarting, why);
            let (inner, app) = (inner.clone(), app.clone());
            // The restart cancels this watcher and starts a new one.
            inner.clone().tasks.spawn(async move {
                let _op = app.op.lock().await;
                if let Err(e) = inner.restart_app(&app).await {
                    tracing::error!(app = %app.name, "watch restart: {e}");
                }
            });
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_moves_the_fingerprint_and_ignored_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.js"), "1").unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let paths = vec![dir.path().to_path_buf()];
        let ignore = vec!["tmp".to_string(), "*.bak".to_string()];
        let skip = Path::new("/nonexistent");
        let before = fingerprint(&paths, &ignore, skip);
        std::fs::write(dir.path().join("tmp/x"), "changed").unwrap();
        std::fs::write(dir.path().join("out.log"), "log line").unwrap();
        std::fs::write(dir.path().join("a.js.bak"), "backup").unwrap();
        assert_eq!(fingerprint(&paths, &ignore, skip), before);
        std::fs::write(dir.path().join("b.js"), "2").unwrap();
        assert_ne!(fingerprint(&paths, &ignore, skip), before);
    }
}
