//! The rollout record `.pmfleet/rollout.json` (see docs/deploy.md): written when a rollout
//! begins on a host, finished when it ends, so a rollout whose controller died is seen as
//! interrupted by the next command.

use crate::shell::Script;

/// Writes the rollout record `$1` (a JSON object), adding what `current` points at as
/// `previous` and `"state":"running"`. Prints `current=<target>`, the record it replaces after
/// `--rollout--`, and the end of the history after `--history--`. Only while the run holds
/// the lock.
const BEGIN: &str = owned_script!(
    r#"f="$p/.pmfleet/rollout.json"
cur=$(readlink "$p/current" 2>/dev/null || true)
prev=null
case $cur in releases/*) c=${cur#releases/}; case $c in ''|*[!A-Za-z0-9._-]*) ;; *) prev="\"$c\"" ;; esac ;; esac
echo "current=$cur"
echo "--rollout--"
cat "$f" 2>/dev/null || true
echo "--history--"
[ ! -f "$p/.pmfleet/history.jsonl" ] || tail -n 500 "$p/.pmfleet/history.jsonl"
j=${1%\}}
printf '%s,"previous":%s,"state":"running"}\n' "$j" "$prev" > "$f.new"
mv -f "$f.new" "$f"
"#
);

/// Marks this run's rollout record finished at `$1`. Only while the run holds the lock.
const END: &str = owned_script!(
    r#"f="$p/.pmfleet/rollout.json"
c=$(cat "$f" 2>/dev/null || true)
case $c in *"\"id\":\"$id\""*',"state":"running"}') ;; *) exit 0 ;; esac
c=${c%',"state":"running"}'}
printf '%s,"state":"finished","finished":"%s"}\n' "$c" "$1" > "$f.new"
mv -f "$f.new" "$f"
"#
);

/// `record` is the rollout record as JSON, without `previous` and `state`.
pub fn rollout_begin(root: &str, run: &str, record: &str) -> Script {
    Script::new(BEGIN).arg(root).arg(run).arg(record)
}

pub fn rollout_end(root: &str, run: &str, when: &str) -> Script {
    Script::new(END).arg(root).arg(run).arg(when)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::scripts::testing::Host;

    #[test]
    fn a_rollout_record_is_written_and_finished() {
        let host = Host::set_up();
        host.release("r1");
        host.current("r1");
        host.lock_for("run");
        let begun = host.run(&rollout_begin(
            &host.root(),
            "run",
            r#"{"id":"run","action":"deploy","release":"r2"}"#,
        ));
        assert!(
            begun.starts_with("current=releases/r1\n--rollout--\n--history--\n"),
            "{begun}"
        );
        let record = std::fs::read_to_string(host.rollout()).unwrap();
        assert_eq!(
            record,
            "{\"id\":\"run\",\"action\":\"deploy\",\"release\":\"r2\",\"previous\":\"r1\",\"state\":\"running\"}\n"
        );
        host.run(&rollout_end(&host.root(), "run", "2026-01-01T00:00:00Z"));
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(host.rollout()).unwrap()).unwrap();
        assert_eq!(record["state"], "finished");
        assert_eq!(record["finished"], "2026-01-01T00:00:00Z");
        assert_eq!(record["previous"], "r1");
        // The next run sees the one before.
        host.lock_for("next");
        let begun = host.run(&rollout_begin(&host.root(), "next", r#"{"id":"next"}"#));
        assert!(begun.contains("\"id\":\"run\""), "{begun}");
    }

    #[test]
    fn another_run_s_record_is_never_finished() {
        let host = Host::set_up();
        std::fs::write(host.rollout(), "{\"id\":\"dead\",\"state\":\"running\"}\n").unwrap();
        host.lock_for("run");
        host.run(&rollout_end(&host.root(), "run", "t"));
        assert_eq!(
            std::fs::read_to_string(host.rollout()).unwrap(),
            "{\"id\":\"dead\",\"state\":\"running\"}\n"
        );
    }
}
