//! Appending to `.pmfleet/history.jsonl` (whole lines, a torn last line ended first) and to
//! `.pmfleet/audit.jsonl` (the host's record of what switches no release: setups, broken
//! locks), reading both back, and pruning the releases the controller chose.

use crate::shell::Script;

/// Appends one JSON line `$1` to the history.
const RECORD: &str = host_script!(concat!(
    append_fn!(),
    r#"append "$p/.pmfleet/history.jsonl" "$1"
"#
));

/// Appends one JSON line `$1` to the host's audit file.
const RECORD_EVENT: &str = host_script!(concat!(
    append_fn!(),
    r#"append "$p/.pmfleet/audit.jsonl" "$1"
"#
));

/// Removes the complete releases named (never the current one, never one a process still
/// runs in or from: its working directory or executable inside the release, as far as
/// `/proc` lets this user see); prints `removed <id>` or `in-use <id> <pid>`. Only while the
/// run holds the lock.
const PRUNE: &str = owned_script!(
    r#"cur=$(readlink "$p/current" 2>/dev/null || true)
user_of() {
  real=$(cd "$1" 2>/dev/null && pwd -P) || return 1
  for d in /proc/[0-9]*; do
    for link in "$d/cwd" "$d/exe"; do
      t=$(readlink "$link" 2>/dev/null) || continue
      case "$t" in "$real"|"$real"/*) printf '%s\n' "${d#/proc/}"; return 0 ;; esac
    done
  done
  return 1
}
for r; do
  [ "releases/$r" = "$cur" ] && continue
  [ -f "$p/.pmfleet/prepared/$r" ] || continue
  if pid=$(user_of "$p/releases/$r"); then
    printf 'in-use %s %s\n' "$r" "$pid"
    continue
  fi
  rm -rf "$p/releases/$r" "$p/.pmfleet/prepared/$r"
  printf 'removed %s\n' "$r"
done
"#
);

/// Prints the history file, then the audit file (nothing for one not there yet), each ended
/// by a line break so a torn last line never runs into the next file's first.
const READ_HISTORY: &str = host_script!(
    r#"for f in "$p/.pmfleet/history.jsonl" "$p/.pmfleet/audit.jsonl"; do
  [ -f "$f" ] || continue
  cat "$f"; echo
done
"#
);

pub fn read_history(root: &str) -> Script {
    Script::new(READ_HISTORY).arg(root)
}

pub fn record(root: &str, json_line: &str) -> Script {
    Script::new(RECORD).arg(root).arg(json_line)
}

/// A record of a setup or a broken lock: into `.pmfleet/audit.jsonl`, so `history.jsonl`
/// stays one record per deploy and revert.
pub fn record_event(root: &str, json_line: &str) -> Script {
    Script::new(RECORD_EVENT).arg(root).arg(json_line)
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
    fn events_go_to_the_audit_file_and_are_read_back_after_a_torn_history() {
        let host = Host::set_up();
        let deploy = r#"{"id":"a","action":"deploy","release":"r1","sha":"1","ref":"main","who":"t","when":"w","outcome":"success"}"#;
        let setup = r#"{"id":"s","action":"setup","release":"","sha":"","ref":"","who":"t","when":"w","outcome":"success"}"#;
        std::fs::write(host.history(), format!("{deploy}\n{{\"id\":\"tor")).unwrap();
        host.run(&record_event(&host.root(), setup));
        let history = std::fs::read_to_string(host.history()).unwrap();
        assert!(!history.contains(r#""id":"s""#), "{history}");
        let ids: Vec<String> = history::parse(&host.run(&read_history(&host.root())))
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["a", "s"]);
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
        assert_eq!(pruned, "removed r2\n");
        assert!(host.has_release("r1") && host.has_release("r3"));
        assert!(!host.has_release("r2"));
    }

    #[test]
    fn prune_never_removes_a_release_a_process_still_runs_in() {
        let host = Host::set_up();
        for r in ["r1", "r2", "r3"] {
            host.release(r);
        }
        host.current("r3");
        host.lock_for("run");
        // A process the agent does not know (PM2's, say) still working in r1.
        let dir = std::path::Path::new(&host.root()).join("releases/r1");
        let mut squatter = std::process::Command::new("sleep")
            .arg("60")
            .current_dir(&dir)
            .spawn()
            .unwrap();
        let pruned = host.run(&prune(&host.root(), "run", &["r1".into(), "r2".into()]));
        let _ = squatter.kill();
        let _ = squatter.wait();
        assert_eq!(
            pruned,
            format!("in-use r1 {}\nremoved r2\n", squatter.id()),
            "{pruned}"
        );
        assert!(host.has_release("r1"));
        assert!(!host.has_release("r2"));
    }
}
