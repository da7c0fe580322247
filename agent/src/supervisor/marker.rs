//! The mark every instance carries in its environment, `PMFLEET_AGENT_MARK=<home>:<spawn>`,
//! which the processes it starts inherit like any other variable. `<home>` names the agent
//! home (a key kept in it, see [`home_key`]), `<spawn>` this one spawn (the daemon's pid, when its
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

/// The file in the agent home holding its key.
const KEY_FILE: &str = "home-id";

/// The `<home>` part of the marks of the agent whose home is `root`: 16 hex digits made at
/// random the first time and kept in `<home>/home-id`. Not derived from the home's path: hosts
/// that share one process table (containers, the test hosts of one machine, two users' homes
/// bind-mounted at the same path) would then share a key, and one daemon would end another's
/// apps. A daemon that replaces itself in place, or restarts, finds the same key again.
pub fn home_key(root: &Path) -> String {
    let path = root.join(KEY_FILE);
    if let Some(key) = read_key(&path) {
        return key;
    }
    // Only the daemon asks, and one daemon of a home runs at a time (the home's lock): a
    // missing or damaged file is simply written anew.
    let fresh = random_key();
    if let Err(e) = crate::home::write_atomic(&path, fresh.as_bytes()) {
        tracing::warn!("cannot keep the home's key in {}: {e}", path.display());
    }
    fresh
}

fn read_key(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let key = text.trim();
    (key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit())).then(|| key.to_string())
}

/// 64 random bits as 16 hex digits, from the kernel's random source (`/dev/urandom`; the
/// clock and the pid stand in only if it cannot be read).
fn random_key() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    let value = match read {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            now ^ u64::from(std::process::id()).rotate_left(32)
        }
    };
    format!("{value:016x}")
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
        assert_eq!(key, home_key(dir.path()), "kept in the home");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(key, home_key(other.path()), "another home, another key");
        let (a, b) = (new_mark(&key), new_mark(&key));
        assert_ne!(a, b);
        assert!(of_home(&a, &key));
        assert!(!of_home(&a, "0123456789abcdef"));
        assert!(!of_home("no-colon", &key));
    }

    #[test]
    fn homes_at_the_same_path_in_two_mount_namespaces_get_two_keys() {
        // What two hosts sharing one process table see: the same path, each its own file.
        let dir = tempfile::tempdir().unwrap();
        let key = home_key(dir.path());
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        assert_ne!(key, home_key(dir.path()));
        std::fs::write(dir.path().join(KEY_FILE), "not a key\n").unwrap();
        let fresh = home_key(dir.path());
        assert_eq!(fresh.len(), 16);
        assert_eq!(
            fresh,
            home_key(dir.path()),
            "a damaged key is replaced, then kept"
        );
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
