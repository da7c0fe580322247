//! The deploy lock file `.pmfleet/lock`: taking it, its heartbeat, releasing and breaking it.

use crate::shell::Script;

/// Takes the lock with content `$1` (fails if it exists); otherwise prints `HELD <age>`
/// and the holder. Age is the seconds since the holder's last heartbeat (the file's mtime).
const LOCK_ACQUIRE: &str = host_script!(
    r#"l="$p/.pmfleet/lock"
[ -d "$p/.pmfleet" ] || { echo "NOSETUP"; exit 0; }
if ( set -C; printf '%s\n' "$1" > "$l" ) 2>/dev/null; then echo "ACQUIRED"; exit 0; fi
now=$(date +%s); m=$(stat -c %Y "$l" 2>/dev/null || echo "$now")
echo "HELD $((now - m))"
cat "$l" 2>/dev/null || true
"#
);

/// Refreshes the heartbeat of the lock held by deploy `$1`; prints `LOST` if it is not ours.
const LOCK_HEARTBEAT: &str = host_script!(
    r#"l="$p/.pmfleet/lock"
if grep -qF "\"deploy_id\":\"$1\"" "$l" 2>/dev/null; then touch "$l"; else echo "LOST"; fi
"#
);

/// Releases the lock if deploy `$1` holds it.
const LOCK_RELEASE: &str = host_script!(
    r#"l="$p/.pmfleet/lock"
if grep -qF "\"deploy_id\":\"$1\"" "$l" 2>/dev/null; then rm -f "$l"; fi
"#
);

/// Breaks the lock when its heartbeat is at least `$1` seconds old, or always when `$2` is 1.
/// Prints `NONE`, `BROKEN <age>` or `FRESH <age>`, then the holder.
const LOCK_BREAK: &str = host_script!(
    r#"l="$p/.pmfleet/lock"
[ -f "$l" ] || { echo "NONE"; exit 0; }
now=$(date +%s); m=$(stat -c %Y "$l" 2>/dev/null || echo "$now"); age=$((now - m))
if [ "$2" = 1 ] || [ "$age" -ge "$1" ]; then
  echo "BROKEN $age"; cat "$l" 2>/dev/null || true; rm -f "$l"
else
  echo "FRESH $age"; cat "$l" 2>/dev/null || true
fi
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

pub fn lock_break(root: &str, stale_after_secs: u64, force: bool) -> Script {
    Script::new(LOCK_BREAK)
        .arg(root)
        .arg(stale_after_secs.to_string())
        .arg(if force { "1" } else { "0" })
}
