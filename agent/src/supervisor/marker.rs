//! The mark every instance carries in its environment, `PMFLEET_AGENT_MARK=<home>:<spawn>`,
//! which the processes it starts inherit like any other variable. `<home>` names the agent
//! home (a hash of its canonical path), `<spawn>` this one spawn (the daemon's pid, when its
//! binary started, a counter), so no two processes ever spawned by any daemon carry the same
//! mark.
//!
//! It lets the agent find an instance's processes that left both its process group and its
//! tree — a helper that called `setsid` and whose parent exited — when it stops the instance,
//! and a starting daemon find everything a dead predecessor of the same home left running,
//! even when no readable state file says what that was. A process that scrubs its own
//! environment is not found this way (see docs/agent.md).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable's name.
pub const MARK_VAR: &str = "PMFLEET_AGENT_MARK";

/// The `<home>` part of the marks of the agent whose home is `root`: 16 hex digits of the
/// FNV-1a hash of its canonical path (the path itself when it cannot be resolved). Written out
/// here rather than taken from std's hasher, whose output may change between Rust releases —
/// and a daemon must recognise the marks of the binary it replaced.
pub fn home_key(root: &Path) -> String {
    let path = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in path.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// A new mark for one spawn by this daemon in the home `key`.
pub fn new_mark(key: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let started = crate::daemon::started_ms().unwrap_or(0);
    format!("{key}:{:x}.{started:x}.{seq}", std::process::id())
}

/// Whether `mark` was given out in the home `key`.
pub fn of_home(mark: &str, key: &str) -> bool {
    mark.split_once(':').is_some_and(|(home, _)| home == key)
}

/// The value of `name` in a `/proc/<pid>/environ` image (`NAME=value` entries, NUL-separated).
pub fn env_value<'a>(environ: &'a [u8], name: &str) -> Option<&'a str> {
    environ.split(|b| *b == 0).find_map(|entry| {
        let value = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        std::str::from_utf8(value).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_name_their_home_and_are_never_given_twice() {
        let dir = tempfile::tempdir().unwrap();
        let key = home_key(dir.path());
        assert_eq!(key.len(), 16);
        assert_eq!(key, home_key(&dir.path().join(".")), "canonical path");
        assert_ne!(key, home_key(&dir.path().join("other")));
        let (a, b) = (new_mark(&key), new_mark(&key));
        assert_ne!(a, b);
        assert!(of_home(&a, &key));
        assert!(!of_home(&a, "0123456789abcdef"));
        assert!(!of_home("no-colon", &key));
        // Stable across releases: the hash is spelled out, not std's.
        assert_eq!(home_key(Path::new("/nonexistent/pmfleet")), {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in b"/nonexistent/pmfleet" {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            format!("{h:016x}")
        });
    }

    #[test]
    fn environment_images_are_read_entry_by_entry() {
        let env =
            b"PATH=/bin\0PMFLEET_AGENT_MARK_X=no\0PMFLEET_AGENT_MARK=k:1.2.3\0PMFLEET_APP=api\0";
        let table: [(&[u8], &str, Option<&str>); 6] = [
            (env, MARK_VAR, Some("k:1.2.3")),
            (env, "PMFLEET_APP", Some("api")),
            (env, "PATH", Some("/bin")),
            (env, "HOME", None),
            (b"", MARK_VAR, None),
            (b"PMFLEET_AGENT_MARK\0", MARK_VAR, None),
        ];
        for (image, name, want) in table {
            assert_eq!(env_value(image, name), want, "{name}");
        }
    }
}
