//! Appending to `.pmfleet/history.jsonl`, and pruning old releases after a successful switch.

use crate::shell::Script;

/// Appends one JSON line `$1` to the history.
const RECORD: &str = host_script!(
    r#"printf '%s\n' "$1" >> "$p/.pmfleet/history.jsonl"
"#
);

/// Appends history line `$1`, then removes complete releases beyond the newest `$2`, except
/// the ones named after it; prints the releases removed.
const RECORD_AND_PRUNE: &str = host_script!(
    r#"printf '%s\n' "$1" >> "$p/.pmfleet/history.jsonl"
keep=$2; shift 2
ls -1 "$p/releases" | sort -r | {
  n=0
  while IFS= read -r r; do
    [ -f "$p/.pmfleet/prepared/$r" ] || continue
    n=$((n + 1)); [ "$n" -le "$keep" ] && continue
    for k; do [ "$r" = "$k" ] && continue 2; done
    rm -rf "$p/releases/$r" "$p/.pmfleet/prepared/$r"
    printf '%s\n' "$r"
  done
}
"#
);

pub fn record(root: &str, json_line: &str) -> Script {
    Script::new(RECORD).arg(root).arg(json_line)
}

pub fn record_and_prune(root: &str, json_line: &str, keep: usize, protect: &[String]) -> Script {
    Script::new(RECORD_AND_PRUNE)
        .arg(root)
        .arg(json_line)
        .arg(keep.to_string())
        .args(protect.iter().cloned())
}
