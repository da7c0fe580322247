//! Running the ecosystem file's hooks and `exec` commands on a host, through a login shell.

use crate::shell::Script;

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

/// Runs command `$1` in `current` (or the root before the first deploy) through a login shell.
const EXEC: &str = host_script!(
    r#"cd "$p/current" 2>/dev/null || cd "$p"
exec "${SHELL:-/bin/sh}" -l -c "$1"
"#
);

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

pub fn exec(root: &str, command: &str) -> Script {
    Script::new(EXEC).arg(root).arg(command)
}
