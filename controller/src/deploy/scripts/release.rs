//! The release layout on a host: creating it, fetching a commit into a new release, linking
//! shared paths, marking a release complete, switching `current`, and cleaning up after a
//! deploy that died.

use pmfleet_shared::protocol::PreparedRelease;

use crate::shell::Script;

/// Creates the layout; prints the expanded root.
const SETUP_DIRS: &str = host_script!(
    r#"mkdir -p "$p/releases" "$p/shared" "$p/.pmfleet/prepared"
printf '%s\n' "$p"
"#
);

/// Makes or refreshes the bare mirror under `<path>/repo`. `$1` repo.
const MIRROR: &str = host_script!(
    r#"command -v git >/dev/null 2>&1 || {
  echo "git is not installed on this host: install it, or set fetch: \"push\" to send the code from the controller" >&2
  exit 127
}
[ -d "$p/repo" ] || git init -q --bare "$p/repo"
git --git-dir="$p/repo" fetch -q --prune -- "$1" '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'
"#
);

/// Exports commit `$2` of repo `$1` through the mirror into release `$3`.
const FETCH_HOST: &str = host_script!(
    r#"g="$p/repo"
[ -d "$g" ] || { echo "no mirror at $g: run setup first" >&2; exit 1; }
if ! git --git-dir="$g" cat-file -e "$2^{commit}" 2>/dev/null; then
  git --git-dir="$g" fetch -q --prune -- "$1" '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'
fi
if ! git --git-dir="$g" cat-file -e "$2^{commit}" 2>/dev/null; then
  git --git-dir="$g" fetch -q -- "$1" "$2" 2>/dev/null || { echo "commit $2 is not in $1" >&2; exit 1; }
fi
r="$p/releases/$3"
mkdir "$r"
git --git-dir="$g" archive --format=tar -o "$r.tar" "$2"
tar -x -C "$r" -f "$r.tar"
rm -f "$r.tar"
"#
);

/// Unpacks a tar archive from stdin into release `$1`.
const FETCH_PUSH: &str = host_script!(
    r#"r="$p/releases/$1"
mkdir "$r"
tar -x -C "$r"
"#
);

/// Links `shared/<x>` into release `$1`: the next `$2` names are directories, the rest files.
/// The links are relative (`../../shared/x`), so they hold wherever the root is mounted.
///
/// Nothing outside the deploy root is ever created or replaced: every directory on the way to
/// `<x>`, in the release (whose symlinks come from the repository) and in `shared/`, must
/// resolve inside the release or `shared/` respectively, and a shared file that is a dangling
/// symlink is refused; the script says which path leads where.
const LINK_SHARED: &str = host_script!(
    r#"r="$p/releases/$1"; n=$2; shift 2; i=0
CDPATH=
rr=$(cd -P "$r" && pwd); sr=$(cd -P "$p/shared" && pwd)
# inside BASE REAL REL: every existing directory on the way to BASE/REL resolves inside REAL.
inside() {
  cur=$1; rest=$3
  while :; do
    case $rest in */*) part=${rest%%/*}; rest=${rest#*/} ;; *) return 0 ;; esac
    cur="$cur/$part"
    if [ -L "$cur" ] || [ -e "$cur" ]; then
      real=$(cd -P "$cur" 2>/dev/null && pwd) || {
        echo "shared path $x: $cur is not a directory: refusing to link it" >&2; return 1
      }
      case "$real/" in
        "$2"/*) ;;
        *) echo "shared path $x: $cur is a symlink leading outside $1 (to $real): refusing to link it" >&2; return 1 ;;
      esac
    fi
  done
}
for x; do
  i=$((i + 1)); s="$p/shared/$x"; t="$r/$x"
  inside "$p/shared" "$sr" "$x" || exit 1
  inside "$r" "$rr" "$x" || exit 1
  if [ "$i" -le "$n" ]; then
    mkdir -p "$s"
  else
    mkdir -p "$(dirname "$s")"
    if [ -L "$s" ] && [ ! -e "$s" ]; then
      echo "shared path $x: shared/$x is a symlink to a missing file: refusing to create it" >&2; exit 1
    fi
    [ -e "$s" ] || : > "$s"
  fi
  up=../..; rest=$x
  while case $rest in */*) true ;; *) false ;; esac; do rest=${rest#*/}; up=$up/..; done
  rm -rf "$t"; mkdir -p "$(dirname "$t")"; ln -s "$up/shared/$x" "$t"
done
"#
);

/// Marks release `$1` as complete (fetched, linked, built): its marker holds `$2`, the apps'
/// environment as JSON (mode 0600, written whole); prints `ecosystem=<name>` for the first of
/// the file names that follow that the release holds. Only while the run holds the lock: a
/// run whose lock was broken during its build never gets a release ready to switch to.
const MARK_PREPARED: &str = owned_script!(
    r#"r="$p/releases/$1"; m="$p/.pmfleet/prepared/$1"; t="$p/.pmfleet/prepared/.$1.tmp"; j=$2; shift 2
[ -d "$r" ]
( umask 077; printf '%s\n' "$j" > "$t" )
mv -f "$t" "$m"
for f; do if [ -f "$r/$f" ]; then echo "ecosystem=$f"; exit 0; fi; done
"#
);

/// Gives release `$1`'s marker the environment `$2` (JSON) when it holds none — a release
/// prepared by an older pmfleet, whose markers were empty. A marker that has one is kept.
const FILL_MARKER: &str = host_script!(
    r#"m="$p/.pmfleet/prepared/$1"; t="$p/.pmfleet/prepared/.$1.tmp"
if [ -f "$m" ] && [ ! -s "$m" ]; then
  ( umask 077; printf '%s\n' "$2" > "$t" )
  mv -f "$t" "$m"
fi
"#
);

/// Removes release `$1`, unless it is current (only while the run holds the lock).
const DISCARD: &str = owned_script!(
    r#"if [ "$(readlink "$p/current" 2>/dev/null || true)" = "releases/$1" ]; then
  echo "release $1 is current: not removing it" >&2; exit 1
fi
rm -rf "$p/releases/$1" "$p/.pmfleet/prepared/$1"
"#
);

/// Points `current` at release `$1` by renaming a fresh symlink over it, and records the
/// switch (history line `$2`) in the same step; prints the old target. With `$3` (seconds),
/// the switch first leaves the pending record `.pmfleet/pending` naming this run, the release
/// and the one `current` pointed at, so the host's agent can go back by itself should the run
/// fall silent before it confirms; without it (a switch back, a revert) the record goes. Only
/// while the run holds the lock.
const SWITCH: &str = owned_script!(concat!(
    append_fn!(),
    r#"[ -d "$p/releases/$1" ] && [ -f "$p/.pmfleet/prepared/$1" ] || {
  echo "release $1 is not complete on this host" >&2; exit 1
}
old=$(readlink "$p/current" 2>/dev/null || true)
f="$p/.pmfleet/pending"; o=${old#releases/}; q=$3
case "$o$1" in *[!A-Za-z0-9._-]*) o= ;; esac
case "$q" in *[!0-9]*) q= ;; esac
if [ -n "$q" ] && [ -n "$o" ] && [ "$o" != "$1" ]; then
  printf '{"rollout":"%s","release":"%s","previous":"%s","since":%s,"quiet_secs":%s}\n' \
    "$id" "$1" "$o" "$(date +%s)" "$q" > "$f.new"
  mv -f "$f.new" "$f"
else
  rm -f "$f"
fi
ln -sfn "releases/$1" "$p/.pmfleet/current.new"
mv -T "$p/.pmfleet/current.new" "$p/current"
append "$p/.pmfleet/history.jsonl" "$2" || echo "could not record the switch in the history" >&2
printf '%s\n' "$old"
"#
));

/// Confirms the rollout of release `$1`: when `current` still points at it, the pending
/// record goes and `KEPT` is printed; otherwise (the agent went back by itself) `WENT-BACK
/// <current>` and the agent's record of why. Only while the run holds the lock.
const CONFIRM: &str = owned_script!(
    r#"cur=$(readlink "$p/current" 2>/dev/null || true)
if [ "$cur" = "releases/$1" ]; then rm -f "$p/.pmfleet/pending"; echo "KEPT"; exit 0; fi
echo "WENT-BACK ${cur#releases/}"
cat "$p/.pmfleet/auto-reverted" 2>/dev/null || true
"#
);

/// Prints `NOSETUP` if the layout is missing; otherwise prints `root=<expanded root>` and
/// removes what a deploy killed half-way left behind: release directories never marked
/// complete (except the current one) and markers without a directory. Prints what it removed.
/// Only while the run holds the lock (never another run's release in the making).
const CLEANUP: &str = owned_script!(
    r#"[ -d "$p/releases" ] && [ -d "$p/.pmfleet/prepared" ] || { echo "NOSETUP"; exit 0; }
echo "root=$p"
cur=$(readlink "$p/current" 2>/dev/null || true)
for d in "$p"/releases/*; do
  [ -d "$d" ] || continue
  r=${d##*/}
  [ -f "$p/.pmfleet/prepared/$r" ] && continue
  [ "releases/$r" = "$cur" ] && continue
  rm -rf "$d"; printf '%s\n' "$r"
done
for m in "$p"/.pmfleet/prepared/*; do
  [ -f "$m" ] || continue
  [ -d "$p/releases/${m##*/}" ] || rm -f "$m"
done
rm -f "$p"/releases/*.tar
"#
);

/// Prints the host's state: `setup=`, `current=`, `release=`/`incomplete=` lines, the lock
/// after `--lock--`, the last rollout's record after `--rollout--`, then the history after a
/// `--history--` line.
const STATE: &str = host_script!(
    r#"if [ -d "$p/releases" ] && [ -d "$p/.pmfleet" ]; then echo "setup=yes"; else echo "setup=no"; exit 0; fi
echo "root=$p"
echo "current=$(readlink "$p/current" 2>/dev/null || true)"
for d in "$p"/releases/*; do
  [ -d "$d" ] || continue
  r=${d##*/}
  if [ -f "$p/.pmfleet/prepared/$r" ]; then echo "release=$r"; else echo "incomplete=$r"; fi
done
echo "--lock--"
cat "$p/.pmfleet/lock" 2>/dev/null || true
echo "--rollout--"
cat "$p/.pmfleet/rollout.json" 2>/dev/null || true
echo "--history--"
[ ! -f "$p/.pmfleet/history.jsonl" ] || tail -n 5000 "$p/.pmfleet/history.jsonl"
"#
);

pub fn setup_dirs(root: &str) -> Script {
    Script::new(SETUP_DIRS).arg(root)
}

pub fn mirror(root: &str, repo: &str) -> Script {
    Script::new(MIRROR).arg(root).arg(repo)
}

pub fn fetch_host(root: &str, repo: &str, sha: &str, release: &str) -> Script {
    Script::new(FETCH_HOST)
        .arg(root)
        .arg(repo)
        .arg(sha)
        .arg(release)
}

pub fn fetch_push(root: &str, release: &str) -> Script {
    Script::new(FETCH_PUSH).arg(root).arg(release)
}

pub fn link_shared(root: &str, release: &str, dirs: &[String], files: &[String]) -> Script {
    Script::new(LINK_SHARED)
        .arg(root)
        .arg(release)
        .arg(dirs.len().to_string())
        .args(dirs.iter().map(|d| normalize(d)))
        .args(files.iter().map(|f| normalize(f)))
}

/// `a//b/./c/` → `a/b/c`, so the script can count the depth by slashes. (The ecosystem
/// loader has already refused absolute paths and `..`.)
fn normalize(relative: &str) -> String {
    relative
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// `MARK_PREPARED`, the marker holding `prepared` (what the agent runs the release with).
pub fn mark_prepared(root: &str, run: &str, release: &str, prepared: &PreparedRelease) -> Script {
    Script::new(MARK_PREPARED)
        .arg(root)
        .arg(run)
        .arg(release)
        .arg(marker_json(prepared))
        .args(pmfleet_shared::ecosystem::DISCOVERY_ORDER)
}

/// `FILL_MARKER`: give an empty marker (left by an older pmfleet) `prepared`.
pub fn fill_marker(root: &str, release: &str, prepared: &PreparedRelease) -> Script {
    Script::new(FILL_MARKER)
        .arg(root)
        .arg(release)
        .arg(marker_json(prepared))
}

fn marker_json(prepared: &PreparedRelease) -> String {
    // A map of strings always serializes; one line, as the scripts write it.
    serde_json::to_string(prepared).unwrap_or_default()
}

pub fn discard(root: &str, run: &str, release: &str) -> Script {
    Script::new(DISCARD).arg(root).arg(run).arg(release)
}

/// Switches to `release` and appends `history_line` (the switch's record) in one step;
/// `pending`: leaves the pending record, which lets the host go back by itself after that many
/// seconds of silence from the run (`None`: removes it).
pub fn switch(
    root: &str,
    run: &str,
    release: &str,
    history_line: &str,
    pending: Option<u64>,
) -> Script {
    Script::new(SWITCH)
        .arg(root)
        .arg(run)
        .arg(release)
        .arg(history_line)
        .arg(pending.map(|q| q.to_string()).unwrap_or_default())
}

/// Confirms the rollout of `release` on the host (see `CONFIRM`).
pub fn confirm(root: &str, run: &str, release: &str) -> Script {
    Script::new(CONFIRM).arg(root).arg(run).arg(release)
}

pub fn cleanup(root: &str, run: &str) -> Script {
    Script::new(CLEANUP).arg(root).arg(run)
}

pub fn state(root: &str) -> Script {
    Script::new(STATE).arg(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::scripts::LOCK_LOST_STATUS;
    use crate::deploy::scripts::testing::Host;

    #[test]
    fn shared_paths_are_normalized() {
        assert_eq!(normalize("a//b/./c/"), "a/b/c");
        assert_eq!(normalize("logs"), "logs");
    }

    #[test]
    fn shared_links_are_relative_and_resolve() {
        let host = Host::set_up();
        let root = host.root();
        std::fs::create_dir_all(host.path().join("releases/r1")).unwrap();
        host.run(&link_shared(
            &root,
            "r1",
            &["logs".into()],
            &["config//.env".into()],
        ));
        let link = host.path().join("releases/r1/config/.env");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            std::path::Path::new("../../../shared/config/.env")
        );
        std::fs::write(host.path().join("shared/config/.env"), "X=1").unwrap();
        assert_eq!(std::fs::read_to_string(link).unwrap(), "X=1");
        assert!(host.path().join("releases/r1/logs").is_dir());
    }

    #[test]
    fn a_symlink_in_the_release_never_leads_shared_paths_outside_the_root() {
        let host = Host::set_up();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join(".env"), "precious").unwrap();
        let release = host.path().join("releases/r1");
        std::fs::create_dir_all(&release).unwrap();
        // As committed in the repository: `config` -> a directory elsewhere on the host.
        std::os::unix::fs::symlink(outside.path(), release.join("config")).unwrap();
        for (dirs, files) in [
            (vec![], vec!["config/.env".to_string()]),
            (vec!["config/logs".to_string()], vec![]),
        ] {
            let (_, stderr) = host.fails(&link_shared(&host.root(), "r1", &dirs, &files));
            assert!(stderr.contains("leading outside"), "{stderr}");
            assert!(
                stderr.contains(&outside.path().display().to_string()),
                "{stderr}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(outside.path().join(".env")).unwrap(),
            "precious"
        );
        assert!(!outside.path().join("logs").exists());
        // A symlink that stays inside the release is fine.
        std::fs::remove_file(release.join("config")).unwrap();
        std::fs::create_dir_all(release.join("conf.d")).unwrap();
        std::os::unix::fs::symlink("conf.d", release.join("config")).unwrap();
        host.run(&link_shared(
            &host.root(),
            "r1",
            &[],
            &["config/.env".into()],
        ));
        assert!(release.join("conf.d/.env").is_symlink());
    }

    #[test]
    fn a_symlink_in_shared_never_creates_a_file_outside_the_root() {
        let host = Host::set_up();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host.path().join("releases/r1")).unwrap();
        std::os::unix::fs::symlink(outside.path(), host.path().join("shared/config")).unwrap();
        let (_, stderr) = host.fails(&link_shared(
            &host.root(),
            "r1",
            &[],
            &["config/.env".into()],
        ));
        assert!(stderr.contains("leading outside"), "{stderr}");
        assert!(!outside.path().join(".env").exists());
        std::fs::remove_file(host.path().join("shared/config")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("missing"),
            host.path().join("shared/.env"),
        )
        .unwrap();
        let (_, stderr) = host.fails(&link_shared(&host.root(), "r1", &[], &[".env".into()]));
        assert!(stderr.contains("missing file"), "{stderr}");
        assert!(!outside.path().join("missing").exists());
    }

    #[test]
    fn a_run_that_lost_its_lock_can_neither_switch_nor_remove_a_release() {
        let host = Host::set_up();
        host.release("r1");
        host.release("r2");
        host.current("r1");
        std::fs::create_dir_all(host.path().join("releases/theirs")).unwrap();
        // Another run broke this run's lock and holds it now.
        host.lock_for("theirs");
        for script in [
            switch(&host.root(), "mine", "r2", "{}", None),
            discard(&host.root(), "mine", "r2"),
            cleanup(&host.root(), "mine"),
        ] {
            let (status, stderr) = host.fails(&script);
            assert_eq!(status, LOCK_LOST_STATUS, "{stderr}");
            assert!(
                stderr.contains("no longer holds the deploy lock"),
                "{stderr}"
            );
        }
        assert_eq!(host.current_target().as_deref(), Some("releases/r1"));
        assert!(host.has_release("r2"));
        assert!(
            host.has_release("theirs"),
            "another run's release in the making is kept"
        );
        assert!(!host.history().exists(), "nothing recorded");
    }

    #[test]
    fn a_switch_is_recorded_in_the_same_step() {
        let host = Host::set_up();
        host.release("r1");
        host.release("r2");
        host.current("r1");
        host.lock_for("mine");
        let line = r#"{"id":"mine","release":"r2"}"#;
        assert_eq!(
            host.run(&switch(&host.root(), "mine", "r2", line, None)),
            "releases/r1\n"
        );
        assert_eq!(host.current_target().as_deref(), Some("releases/r2"));
        assert_eq!(
            std::fs::read_to_string(host.history()).unwrap(),
            format!("{line}\n")
        );
        // An incomplete release is never switched to, and nothing is recorded.
        std::fs::create_dir_all(host.path().join("releases/r3")).unwrap();
        let (_, stderr) = host.fails(&switch(&host.root(), "mine", "r3", "{}", None));
        assert!(stderr.contains("not complete"), "{stderr}");
        assert_eq!(
            std::fs::read_to_string(host.history())
                .unwrap()
                .lines()
                .count(),
            1
        );
    }

    #[test]
    fn a_switch_leaves_the_pending_record_the_agent_reads_and_the_confirmation_removes_it() {
        let host = Host::set_up();
        host.release("r1");
        host.release("r2");
        host.current("r1");
        host.lock_for("mine");
        let pending = host.path().join(".pmfleet/pending");
        host.run(&switch(&host.root(), "mine", "r2", "{}", Some(30)));
        let record: pmfleet_shared::protocol::Pending =
            serde_json::from_str(&std::fs::read_to_string(&pending).unwrap()).unwrap();
        assert_eq!(
            (record.rollout.as_str(), record.release.as_str()),
            ("mine", "r2")
        );
        assert_eq!((record.previous.as_str(), record.quiet_secs), ("r1", 30));
        assert_eq!(host.run(&confirm(&host.root(), "mine", "r2")), "KEPT\n");
        assert!(!pending.exists(), "confirmed: the host keeps r2 for good");
        // A switch back (no pending) removes a pending record.
        host.run(&switch(&host.root(), "mine", "r2", "{}", Some(30)));
        host.run(&switch(&host.root(), "mine", "r1", "{}", None));
        assert!(!pending.exists());
        // The host went back by itself: the confirmation says so and keeps nothing.
        assert!(
            host.run(&confirm(&host.root(), "mine", "r2"))
                .starts_with("WENT-BACK r1")
        );
    }
}
