//! App logs: per-app out/err files, timestamps, size-based rotation, tail and follow.
//!
//! - [`LogFile`] (`file`): one file that rotates itself by size and keeps `retain` old files
//!   (`app-out.log.1` … `.N`), so no logrotate module is needed; `reopen` supports an external
//!   logrotate all the same (`reload-logs`), `flush_truncate` is `flush`.
//! - [`pump`] (`pump`): copies an instance's stdout or stderr into a [`LogFile`], line by line.
//! - [`tail`] (`tail`): the last N lines, reaching back into rotated files.
//! - [`follow`] (`follow`): new lines as they come, across rotations, like `tail -F`.
//! - `stamp`: PM2's `log_date_format` (moment.js tokens).
//! - [`daemon_log`]: the daemon's own `agent.log`, rotated the same way; [`filter`]: which
//!   of its own lines it writes (`PMFLEET_LOG`).

pub mod daemon_log;
mod file;
mod filter;
mod follow;
mod pump;
mod stamp;
mod tail;

use std::path::{Path, PathBuf};

pub use daemon_log::DaemonLog;
pub use file::LogFile;
pub use filter::filter;
pub use follow::follow;
pub use pump::{MAX_LINE, pump, pump_until};
pub use stamp::Stamp;
pub use tail::tail;

/// 10 MiB: the default size at which a log file is rotated.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Rotated files kept by default.
pub const DEFAULT_RETAIN: usize = 5;

/// How an app's log files are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Prefix every line with a timestamp and `": "`.
    pub time: bool,
    /// The timestamp format in moment.js notation (`log_date_format`); `None` is PM2's
    /// `YYYY-MM-DDTHH:mm:ss`.
    pub date_format: Option<String>,
    /// Rotate when a line would take the file past this many bytes.
    pub max_size: u64,
    /// Rotated files kept (`path.1` newest … `path.<retain>` oldest); 0 empties the file instead.
    pub retain: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            time: false,
            date_format: None,
            max_size: DEFAULT_MAX_SIZE,
            retain: DEFAULT_RETAIN,
        }
    }
}

/// The default out and err files of an app: `<home>/logs/<app>-out.log` and
/// `<app>-err.log`, or `<app>-out-<i>.log` / `<app>-err-<i>.log` for instance `i` when the
/// instances' logs are not merged. Characters other than letters, digits, `.`, `_` and `-` in
/// the name become `-`, so a name can never leave the logs directory.
pub fn app_log_paths(
    home: &Path,
    app: &str,
    instance: Option<u32>,
    merge: bool,
) -> (PathBuf, PathBuf) {
    let name: String = app
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let suffix = match instance {
        Some(i) if !merge => format!("-{i}"),
        _ => String::new(),
    };
    let dir = home.join("logs");
    (
        dir.join(format!("{name}-out{suffix}.log")),
        dir.join(format!("{name}-err{suffix}.log")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths() {
        let home = Path::new("/var/lib/pmfleet");
        assert_eq!(
            app_log_paths(home, "api", None, false),
            (
                PathBuf::from("/var/lib/pmfleet/logs/api-out.log"),
                PathBuf::from("/var/lib/pmfleet/logs/api-err.log")
            )
        );
        assert_eq!(
            app_log_paths(home, "api", Some(3), false),
            (
                PathBuf::from("/var/lib/pmfleet/logs/api-out-3.log"),
                PathBuf::from("/var/lib/pmfleet/logs/api-err-3.log")
            )
        );
        assert_eq!(
            app_log_paths(home, "api", Some(3), true).0,
            PathBuf::from("/var/lib/pmfleet/logs/api-out.log")
        );
        assert_eq!(
            app_log_paths(home, "../../etc/x y", None, true).0,
            PathBuf::from("/var/lib/pmfleet/logs/..-..-etc-x-y-out.log")
        );
    }
}
