//! The deploy lock file `.pmfleet/lock`: taking it, its heartbeat, reading, releasing and
//! breaking it. No step checks and then removes: a lock is taken by hard-linking a complete
//! temporary file into place (never an empty lock, even on a full disk), and released or
//! broken by first renaming it aside, then looking at what was renamed (never a newer
//! holder's lock); the heartbeat never creates the file.

use crate::shell::Script;

/// Takes the lock with content `$1` (fails if it exists); otherwise prints `HELD <age>`
/// and the holder. Age is the seconds since the holder's last heartbeat (the file's mtime).
const LOCK_ACQUIRE: &str = host_script!(
    r#"l="$p/.pmfleet/lock"
[ -d "$p/.pmfleet" ] || { echo "NOSETUP"; exit 0; }
t="$l.new.$$"
if printf '%s\n' "$1" > "$t" 2>/dev/null && ln -T "$t" "$l" 2>/dev/null; then
  rm -f "$t"; echo "ACQUIRED"; exit 0
fi
rm -f "$t"
[ -e "$l" ] || { echo "cannot write the lock file $l (is the disk full?)" >&2; exit 1; }
now=$(date +%s); m=$(stat -c %Y "$l" 2>/dev/null || echo "$now")
echo "HELD $((now - m))"
cat "$l" 2>/dev/null || true
"#
);

/// Refreshes the heartbeat of the lock held by run `$1`; prints `LOST` if it is not ours.
const LOCK_HEARTBEAT: &str = host_script!(
    r#"l="$p/.pmfleet/lock"
if grep -qF "\"deploy_id\":\"$1\"" "$l" 2>/dev/null; then touch -c "$l"; else echo "LOST"; fi
"#
);

/// Releases the lock if run `$1` holds it.
const LOCK_RELEASE: &str = host_script!(
    r#"l="$p/.pmfleet/lock"; t="$l.release.$$"
mv -f "$l" "$t" 2>/dev/null || exit 0
if grep -qF "\"deploy_id\":\"$1\"" "$t"; then rm -f "$t"; exit 0; fi
# Another run's lock: put it back, unless a newer one was taken meanwhile.
ln -T "$t" "$l" 2>/dev/null || true
rm -f "$t"
"#
);

/// Prints `NONE`, or `HELD <age>` and the holder.
const LOCK_READ: &str = host_script!(
    r#"l="$p/.pmfleet/lock"
[ -f "$l" ] || { echo "NONE"; exit 0; }
now=$(date +%s); m=$(stat -c %Y "$l" 2>/dev/null || echo "$now")
echo "HELD $((now - m))"
cat "$l" 2>/dev/null || true
"#
);

/// Breaks the lock of run `$1` (empty: a lock naming no run). Prints `NONE` (no lock),
/// `BROKEN` and the holder, or `CHANGED` (another run holds it now: left as it is).
const LOCK_BREAK: &str = host_script!(
    r#"l="$p/.pmfleet/lock"; t="$l.break.$$"
mv -f "$l" "$t" 2>/dev/null || { echo "NONE"; exit 0; }
if [ -n "$1" ]; then
  grep -qF "\"deploy_id\":\"$1\"" "$t" && match=1 || match=0
else
  grep -qF '"deploy_id":' "$t" && match=0 || match=1
fi
if [ "$match" = 1 ]; then echo "BROKEN"; cat "$t" 2>/dev/null || true; rm -f "$t"; exit 0; fi
ln -T "$t" "$l" 2>/dev/null || true
rm -f "$t"
echo "CHANGED"
"#
);

pub fn lock_acquire(root: &str, content: &str) -> Script {
    Script::new(LOCK_ACQUIRE).arg(root).arg(content)
}

pub fn lock_heartbeat(root: &str, deploy_id: &str) -> Script {
    Script::new(LOCK_HEARTBEAT).arg(root).arg(deploy_id)
}

pub fn lock_release(root: &str, deploy_id: &str) -> Script {
    Script::new(LOCK_RELEASE).arg(root).arg(deploy_id)
}

pub fn lock_read(root: &str) -> Script {
    Script::new(LOCK_READ).arg(root)
}

/// Breaks the lock if it is still the one of run `deploy_id` (`None`: a lock naming no run).
pub fn lock_break(root: &str, deploy_id: Option<&str>) -> Script {
    Script::new(LOCK_BREAK)
        .arg(root)
        .arg(deploy_id.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::scripts::testing::{Host, sh};

    const MINE: &str = r#"{"holder":"a","deploy_id":"mine","action":"deploy","since":"t","pid":1}"#;
    const THEIRS: &str =
        r#"{"holder":"b","deploy_id":"theirs","action":"deploy","since":"t","pid":2}"#;

    #[test]
    fn a_lock_is_never_an_empty_file() {
        let host = Host::set_up();
        // Writes fail (as on a full disk): no lock file appears, let alone an empty one.
        let out = sh(&format!(
            "ulimit -f 0; trap '' XFSZ; {}",
            lock_acquire(&host.root(), MINE).render()
        ));
        assert!(!out.status.success(), "{out:?}");
        assert!(!host.lock().exists(), "{:?}", std::fs::read(host.lock()));
        assert_eq!(host.run(&lock_acquire(&host.root(), MINE)), "ACQUIRED\n");
        assert_eq!(host.lock_content(), format!("{MINE}\n"));
        assert!(
            host.run(&lock_acquire(&host.root(), THEIRS))
                .starts_with("HELD ")
        );
        assert_eq!(host.lock_content(), format!("{MINE}\n"));
    }

    #[test]
    fn a_heartbeat_never_recreates_a_broken_lock() {
        let host = Host::set_up();
        assert_eq!(host.run(&lock_heartbeat(&host.root(), "mine")), "LOST\n");
        assert!(!host.lock().exists());
        host.run(&lock_acquire(&host.root(), MINE));
        assert_eq!(host.run(&lock_heartbeat(&host.root(), "mine")), "");
        // Someone breaks the lock right after the heartbeat found it was ours.
        host.run_racing(&lock_heartbeat(&host.root(), "mine"), r#"rm -f "$L""#);
        assert!(!host.lock().exists(), "no empty lock left behind");
    }

    #[test]
    fn releasing_never_removes_another_run_s_lock() {
        let host = Host::set_up();
        host.run(&lock_acquire(&host.root(), THEIRS));
        host.run(&lock_release(&host.root(), "mine"));
        assert_eq!(host.lock_content(), format!("{THEIRS}\n"));
        host.run(&lock_release(&host.root(), "theirs"));
        assert!(!host.lock().exists());
        host.run(&lock_release(&host.root(), "theirs"));
        // Right after the release found the lock was ours, another run broke it and took it.
        host.run(&lock_acquire(&host.root(), MINE));
        let take = format!("rm -f \"$L\"; printf '%s\\n' '{THEIRS}' > \"$L\"");
        host.run_racing(&lock_release(&host.root(), "mine"), &take);
        assert_eq!(host.lock_content(), format!("{THEIRS}\n"));
    }

    #[test]
    fn breaking_never_removes_a_newer_holder_s_lock() {
        let host = Host::set_up();
        assert_eq!(host.run(&lock_break(&host.root(), Some("mine"))), "NONE\n");
        // The lock read as "mine" was released and "theirs" took it since.
        host.run(&lock_acquire(&host.root(), THEIRS));
        assert_eq!(
            host.run(&lock_break(&host.root(), Some("mine"))),
            "CHANGED\n"
        );
        assert_eq!(host.lock_content(), format!("{THEIRS}\n"));
        let broken = host.run(&lock_break(&host.root(), Some("theirs")));
        assert!(broken.starts_with("BROKEN\n"), "{broken}");
        assert!(!host.lock().exists());
        // A lock naming no run (unreadable) is broken when that is what was read.
        std::fs::write(host.lock(), "").unwrap();
        assert!(
            host.run(&lock_break(&host.root(), None))
                .starts_with("BROKEN")
        );
    }

    #[test]
    fn reading_shows_the_holder_and_heartbeat() {
        let host = Host::set_up();
        assert_eq!(host.run(&lock_read(&host.root())), "NONE\n");
        host.run(&lock_acquire(&host.root(), MINE));
        let read = host.run(&lock_read(&host.root()));
        assert!(
            read.starts_with("HELD 0\n") || read.starts_with("HELD 1\n"),
            "{read}"
        );
        assert!(read.contains("\"deploy_id\":\"mine\""), "{read}");
    }
}
