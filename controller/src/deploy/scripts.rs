//! The fixed shell scripts run on a host, one per operation on the host layout.
//!
//! Each script starts with the deploy root as `$1` (`~` expanded *on the host*, as PM2 does)
//! and reads every other value as a positional parameter; see [`crate::shell`]. They use only
//! POSIX `sh`, coreutils and (for `fetch: host`) git.

use pmfleet_shared::protocol::PreparedRelease;

use crate::shell::Script;

/// Expands the deploy root in `$1` into `$p`, then shifts it away.
macro_rules! host_script {
    ($body:expr) => {
        concat!(
            "set -eu\n",
            "p=$1; shift\n",
            "case $p in \"~\") p=$HOME ;; \"~/\"*) p=$HOME/${p#\"~/\"} ;; esac\n",
            $body
        )
    };
}

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
const LINK_SHARED: &str = host_script!(
    r#"r="$p/releases/$1"; n=$2; shift 2; i=0
for x; do
  i=$((i + 1)); s="$p/shared/$x"; t="$r/$x"
  if [ "$i" -le "$n" ]; then
    mkdir -p "$s"
  else
    mkdir -p "$(dirname "$s")"; [ -e "$s" ] || : > "$s"
  fi
  up=../..; rest=$x
  while case $rest in */*) true ;; *) false ;; esac; do rest=${rest#*/}; up=$up/..; done
  rm -rf "$t"; mkdir -p "$(dirname "$t")"; ln -s "$up/shared/$x" "$t"
done
"#
);

/// Runs hook `$2` in `<root>/$1` (`$1` = `-`: in the login directory; a missing directory
/// falls back to the root) through the user's login shell, with `SHARED` and the `K=V`
/// pairs that follow in its environment.
const RUN_HOOK: &str = host_script!(
    r#"d=$1; h=$2; shift 2
if [ "$d" != "-" ]; then
  if [ -d "$p/$d" ]; then cd "$p/$d"; else cd "$p"; fi
fi
export SHARED="$p/shared" PMFLEET_DEPLOY_PATH="$p"
exec env "$@" "${SHELL:-/bin/sh}" -l -c "$h"
"#
);

/// Marks release `$1` as complete (fetched, linked, built): its marker holds `$2`, the apps'
/// environment as JSON (mode 0600, written whole); prints `ecosystem=<name>` for the first of
/// the file names that follow that the release holds.
const MARK_PREPARED: &str = host_script!(
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

/// Removes release `$1`, unless it is current.
const DISCARD: &str = host_script!(
    r#"if [ "$(readlink "$p/current" 2>/dev/null || true)" = "releases/$1" ]; then
  echo "release $1 is current: not removing it" >&2; exit 1
fi
rm -rf "$p/releases/$1" "$p/.pmfleet/prepared/$1"
"#
);

/// Points `current` at release `$1` by renaming a fresh symlink over it; prints the old target.
const SWITCH: &str = host_script!(
    r#"[ -d "$p/releases/$1" ] && [ -f "$p/.pmfleet/prepared/$1" ] || {
  echo "release $1 is not complete on this host" >&2; exit 1
}
readlink "$p/current" 2>/dev/null || true
ln -sfn "releases/$1" "$p/.pmfleet/current.new"
mv -T "$p/.pmfleet/current.new" "$p/current"
"#
);

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

/// Prints `NOSETUP` if the layout is missing; otherwise prints `root=<expanded root>` and
/// removes what a deploy killed half-way left behind: release directories never marked complete (except the current one) and markers
/// without a directory. Prints what it removed.
const CLEANUP: &str = host_script!(
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

/// Prints the host's state: `setup=`, `current=`, `release=`/`incomplete=` lines, then the
/// history after a `--history--` line.
const STATE: &str = host_script!(
    r#"if [ -d "$p/releases" ] && [ -d "$p/.pmfleet" ]; then echo "setup=yes"; else echo "setup=no"; exit 0; fi
echo "root=$p"
echo "current=$(readlink "$p/current" 2>/dev/null || true)"
for d in "$p"/releases/*; do
  [ -d "$d" ] || continue
  r=${d##*/}
  if [ -f "$p/.pmfleet/prepared/$r" ]; then echo "release=$r"; else echo "incomplete=$r"; fi
done
echo "--history--"
[ ! -f "$p/.pmfleet/history.jsonl" ] || tail -n 5000 "$p/.pmfleet/history.jsonl"
"#
);

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

/// Runs command `$1` in `current` (or the root before the first deploy) through a login shell.
const EXEC: &str = host_script!(
    r#"cd "$p/current" 2>/dev/null || cd "$p"
exec "${SHELL:-/bin/sh}" -l -c "$1"
"#
);

/// Describes the agent side of a host; `$1` is the agent's home. Prints `os=`, `arch=`,
/// `sum=` (SHA-256 of the installed agent binary, if any), `systemd=`, `issued=` (what the
/// installed certificate was issued for), `tls=` (`tls status --json` on one line: the
/// certificate's expiry and serial), `crl=` (SHA-256 of the installed `crl.pem`, if any) and
/// `running=`.
const AGENT_PROBE: &str = host_script!(
    r#"echo "os=$(uname -s)"
echo "arch=$(uname -m)"
b="$p/bin/pmfleet-agent"
if [ -x "$b" ]; then echo "sum=$(sha256sum "$b" | cut -d' ' -f1)"; else echo "sum="; fi
if [ -d /run/systemd/system ] && [ "$(id -u)" = 0 ]; then echo "systemd=yes"; else echo "systemd=no"; fi
echo "issued=$(cat "$p/tls/issued-for" 2>/dev/null || true)"
if [ -x "$b" ]; then echo "tls=$(PMFLEET_AGENT_HOME="$p" "$b" tls status --json 2>/dev/null | tr -d '\n' || true)"; else echo "tls="; fi
if [ -f "$p/tls/crl.pem" ]; then echo "crl=$(sha256sum "$p/tls/crl.pem" | cut -d' ' -f1)"; else echo "crl="; fi
if [ -f "$p/agent.pid" ] && kill -0 "$(cat "$p/agent.pid")" 2>/dev/null; then echo "running=yes"; else echo "running=no"; fi
"#
);

/// Installs the agent binary from stdin into `<home>/bin`, atomically, once its SHA-256 is
/// `$1`: an upload cut short (or altered) is removed and refused, and the installed binary
/// stays as it was.
const AGENT_UPLOAD: &str = host_script!(
    r#"mkdir -p "$p/bin"
chmod 700 "$p"
n="$p/bin/.pmfleet-agent.new"
cat > "$n"
got=$(sha256sum "$n" | cut -d' ' -f1)
if [ "$got" != "$1" ]; then
  rm -f "$n"
  echo "the agent binary arrived incomplete or altered (SHA-256 $got, expected $1): the installed agent is left as it was; run setup again" >&2
  exit 1
fi
chmod 755 "$n"
mv -f "$n" "$p/bin/pmfleet-agent"
"#
);

/// Registers the deploy root `$1` (`~` expanded here, symlinks resolved) in `<home>/roots`:
/// the only roots whose releases the agent runs when asked over mutual TLS.
const AGENT_ROOTS: &str = host_script!(
    r#"r=$1
case $r in "~") r=$HOME ;; "~/"*) r=$HOME/${r#"~/"} ;; esac
r=$(cd "$r" && pwd -P)
mkdir -p "$p"
chmod 700 "$p"
touch "$p/roots"
chmod 600 "$p/roots"
grep -qxF "$r" "$p/roots" || printf '%s\n' "$r" >> "$p/roots"
"#
);

/// Installs the fleet's revocation list `$1` (empty: none) as `<home>/tls/crl.pem`,
/// atomically; with `$2` = 1 the running daemon reads its TLS files again, so the revocations
/// apply to the next connection.
const AGENT_CRL: &str = host_script!(
    r#"[ -d "$p/tls" ] || { echo "no agent identity in $p/tls: run setup first" >&2; exit 1; }
umask 077
if [ -n "$1" ]; then
  printf '%s\n' "$1" > "$p/tls/.crl.pem.new"
  mv -f "$p/tls/.crl.pem.new" "$p/tls/crl.pem"
else
  rm -f "$p/tls/crl.pem"
fi
if [ "$2" = 1 ]; then PMFLEET_AGENT_HOME="$p" exec "$p/bin/pmfleet-agent" tls reload; fi
"#
);

/// Has the agent make its key (kept on the host) and print a CSR for the names that follow.
const AGENT_CSR: &str = host_script!(
    r#"for n; do set -- "$@" --san "$n"; shift; done
PMFLEET_AGENT_HOME="$p" exec "$p/bin/pmfleet-agent" tls request "$@"
"#
);

/// Installs the signed certificate `$1`, the fleet CA `$2`, the revocation list `$3` (may be
/// empty), the listen address `$4`, the record `$5` of what was issued, and the address `$6`
/// cluster-mode apps bind to (empty: every interface).
const AGENT_TLS: &str = host_script!(
    r#"umask 077
mkdir -p "$p/tls"
printf '%s\n' "$1" > "$p/tls/agent.pem"
printf '%s\n' "$2" > "$p/tls/ca.pem"
if [ -n "$3" ]; then printf '%s\n' "$3" > "$p/tls/crl.pem"; else rm -f "$p/tls/crl.pem"; fi
printf '%s\n' "$4" > "$p/tls/listen"
printf '%s\n' "$5" > "$p/tls/issued-for"
if [ -n "$6" ]; then printf '%s\n' "$6" > "$p/bind-address"; else rm -f "$p/bind-address"; fi
"#
);

/// Starts the agent daemon (`$1` = `systemd`: as a system service; else in the background,
/// detached from this SSH session, through a login shell so the profile's PATH reaches the
/// apps). `$2` = 1 restarts a running daemon first (it restores its apps when it starts).
const AGENT_START: &str = host_script!(
    r#"b="$p/bin/pmfleet-agent"
if [ "$2" = 1 ] && [ -f "$p/agent.pid" ]; then
  pid=$(cat "$p/agent.pid")
  if kill -TERM "$pid" 2>/dev/null; then
    i=0; while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
  fi
fi
if [ "$1" = systemd ]; then
  PMFLEET_AGENT_HOME="$p" "$b" startup --install
  systemctl restart pmfleet-agent
else
  PMFLEET_AGENT_HOME="$p" "${SHELL:-/bin/sh}" -l -c '"$0" ping' "$b" > /dev/null
fi
"#
);

/// Has the running daemon become the newly installed binary in place: same pid, apps kept
/// running. Exit code 3: the running daemon is too old to do that.
const AGENT_UPGRADE: &str = host_script!(
    r#"PMFLEET_AGENT_HOME="$p" exec "$p/bin/pmfleet-agent" upgrade
"#
);

/// Has the running daemon read its TLS files again (a new certificate and key).
const AGENT_TLS_RELOAD: &str = host_script!(
    r#"PMFLEET_AGENT_HOME="$p" exec "$p/bin/pmfleet-agent" tls reload
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

/// Where a hook runs, relative to the deploy root.
#[derive(Debug, Clone, Copy)]
pub enum HookDir<'a> {
    /// The login directory (`pre-setup`, before the root exists).
    Login,
    /// The deploy root.
    Root,
    /// `current` (falls back to the root before the first deploy).
    Current,
    /// A release being prepared.
    Release(&'a str),
}

pub fn run_hook(root: &str, dir: HookDir<'_>, hook: &str, env: &[(String, String)]) -> Script {
    let dir = match dir {
        HookDir::Login => "-".to_string(),
        HookDir::Root => ".".to_string(),
        HookDir::Current => "current".to_string(),
        HookDir::Release(id) => format!("releases/{id}"),
    };
    Script::new(RUN_HOOK)
        .arg(root)
        .arg(dir)
        .arg(hook)
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
}

/// `MARK_PREPARED`, the marker holding `prepared` (what the agent runs the release with).
pub fn mark_prepared(root: &str, release: &str, prepared: &PreparedRelease) -> Script {
    Script::new(MARK_PREPARED)
        .arg(root)
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

/// `AGENT_ROOTS`: register the deploy root `root` with the agent of `home`.
pub fn agent_roots(home: &str, root: &str) -> Script {
    Script::new(AGENT_ROOTS).arg(home).arg(root)
}

pub fn discard(root: &str, release: &str) -> Script {
    Script::new(DISCARD).arg(root).arg(release)
}

pub fn switch(root: &str, release: &str) -> Script {
    Script::new(SWITCH).arg(root).arg(release)
}

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

pub fn cleanup(root: &str) -> Script {
    Script::new(CLEANUP).arg(root)
}

pub fn state(root: &str) -> Script {
    Script::new(STATE).arg(root)
}

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

pub fn exec(root: &str, command: &str) -> Script {
    Script::new(EXEC).arg(root).arg(command)
}

pub fn agent_probe(home: &str) -> Script {
    Script::new(AGENT_PROBE).arg(home)
}

pub fn agent_upload(home: &str, sha256: &str) -> Script {
    Script::new(AGENT_UPLOAD).arg(home).arg(sha256)
}

/// `AGENT_CRL`: install `crl` (PEM, trimmed; empty for none), and with `reload` have the
/// running daemon apply it.
pub fn agent_crl(home: &str, crl: &str, reload: bool) -> Script {
    Script::new(AGENT_CRL)
        .arg(home)
        .arg(crl)
        .arg(if reload { "1" } else { "0" })
}

pub fn agent_csr(home: &str, sans: &[String]) -> Script {
    Script::new(AGENT_CSR).arg(home).args(sans.iter().cloned())
}

/// What [`agent_tls`] installs on a host.
pub struct AgentTlsFiles<'a> {
    pub cert: &'a str,
    pub ca: &'a str,
    pub crl: &'a str,
    pub listen: &'a str,
    pub issued: &'a str,
    pub bind_address: &'a str,
}

pub fn agent_tls(home: &str, files: &AgentTlsFiles<'_>) -> Script {
    Script::new(AGENT_TLS).arg(home).args([
        files.cert,
        files.ca,
        files.crl,
        files.listen,
        files.issued,
        files.bind_address,
    ])
}

pub fn agent_upgrade(home: &str) -> Script {
    Script::new(AGENT_UPGRADE).arg(home)
}

pub fn agent_tls_reload(home: &str) -> Script {
    Script::new(AGENT_TLS_RELOAD).arg(home)
}

pub fn agent_start(home: &str, systemd: bool, restart: bool) -> Script {
    Script::new(AGENT_START)
        .arg(home)
        .arg(if systemd { "systemd" } else { "background" })
        .arg(if restart { "1" } else { "0" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_paths_are_normalized() {
        assert_eq!(normalize("a//b/./c/"), "a/b/c");
        assert_eq!(normalize("logs"), "logs");
    }

    #[test]
    fn shared_links_are_relative_and_resolve() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().display().to_string();
        let run = |script: Script| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script.render())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(setup_dirs(&root));
        std::fs::create_dir_all(tmp.path().join("releases/r1")).unwrap();
        run(link_shared(
            &root,
            "r1",
            &["logs".into()],
            &["config//.env".into()],
        ));
        let link = tmp.path().join("releases/r1/config/.env");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            std::path::Path::new("../../../shared/config/.env")
        );
        std::fs::write(tmp.path().join("shared/config/.env"), "X=1").unwrap();
        assert_eq!(std::fs::read_to_string(link).unwrap(), "X=1");
        assert!(tmp.path().join("releases/r1/logs").is_dir());
    }

    /// The upload script with `stdin` as what arrived, on a real `sh`: its exit status and
    /// stderr.
    fn upload(home: &std::path::Path, sha256: &str, stdin: &[u8]) -> (bool, String) {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(agent_upload(&home.display().to_string(), sha256).render())
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn an_upload_cut_short_leaves_the_previous_agent_binary_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("agent");
        let binary = home.join("bin/pmfleet-agent");
        let old = b"#!/bin/sh\necho old agent\n".to_vec();
        let new: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let sum = |b: &[u8]| {
            ring::digest::digest(&ring::digest::SHA256, b)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let (ok, err) = upload(&home, &sum(&old), &old);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(&binary).unwrap(), old);

        // The connection dropped after half of the new binary: EOF on stdin, the full sum.
        let (ok, err) = upload(&home, &sum(&new), &new[..new.len() / 2]);
        assert!(!ok, "a truncated upload must fail");
        assert!(err.contains("incomplete"), "{err}");
        assert_eq!(std::fs::read(&binary).unwrap(), old, "the old binary stays");
        assert!(!home.join("bin/.pmfleet-agent.new").exists());

        let (ok, err) = upload(&home, &sum(&new), &new);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(&binary).unwrap(), new);
    }
}
