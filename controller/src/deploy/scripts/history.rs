//! Appending to `.pmfleet/history.jsonl` (whole lines, a torn last line ended first), and
//! pruning the releases the controller chose.

use crate::shell::Script;

/// Appends one JSON line `$1` to the history.
const RECORD: &str = host_script!(concat!(
    append_fn!(),
    r#"append "$p/.pmfleet/history.jsonl" "$1"
"#
));

/// Removes the complete releases named (never the current one); prints those removed. Only
/// while the run holds the lock.
const PRUNE: &str = owned_script!(
    r#"cur=$(readlink "$p/current" 2>/dev/null || true)
for r; do
  [ "releases/$r" = "$cur" ] && continue
  [ -f "$p/.pmfleet/prepared/$r" ] || continue
  rm -rf "$p/releases/$r" "$p/.pmfleet/prepared/$r"
  printf '%s\n' "$r"
done
"#
);

/// Prints the history file (nothing when there is none yet).
const READ_HISTORY: &str = host_script!(
    r#"cat "$p/.pmfleet/history.jsonl" 2>/dev/null || true
"#
);

pub fn read_history(root: &str) -> Script {
    Script::new(READ_HISTORY).arg(root)
}

pub fn record(root: &str, json_line: &str) -> Script {
    Script::new(RECORD).arg(root).arg(json_line)
}

pub fn prune(root: &str, run: &str, releases: &[String]) -> Script {
    Script::new(PRUNE)
        .arg(root)
        .arg(run)
        .args(releases.iter().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::history;
    use crate::deploy::scripts::testing::Host;

    #[test]
    fn a_torn_history_line_never_swallows_the_next_record() {
        let host = Host::set_up();
        let good = r#"{"id":"a","action":"deploy","release":"r1","sha":"1","ref":"main","who":"t","when":"w","outcome":"success"}"#;
        let next = good.replace("r1", "r2");
        // A writer died half-way through its line.
        std::fs::write(host.history(), format!("{good}\n{{\"id\":\"tor")).unwrap();
        host.run(&record(&host.root(), &next));
        let text = std::fs::read_to_string(host.history()).unwrap();
        let releases: Vec<String> = history::parse(&text)
            .into_iter()
            .map(|r| r.release)
            .collect();
        assert_eq!(releases, ["r1", "r2"], "{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn prune_removes_only_what_it_is_told_and_never_current() {
        let host = Host::set_up();
        for r in ["r1", "r2", "r3"] {
            host.release(r);
        }
        host.current("r1");
        host.lock_for("run");
        let pruned = host.run(&prune(&host.root(), "run", &["r1".into(), "r2".into()]));
        assert_eq!(pruned, "r2\n");
        assert!(host.has_release("r1") && host.has_release("r3"));
        assert!(!host.has_release("r2"));
    }
}
