//! Running the ecosystem file's hooks and `exec` commands on a host, through a login shell.
//!
//! A hook of a run runs in a process group of its own (a new session, `setsid`), whose id it
//! writes to `.pmfleet/hooks/<run>.pid`; a run that stops (Ctrl-C, a lost lock) ends that
//! group with a second command ([`end_hooks`]) and waits for it before giving back its lock,
//! locally and over SSH alike.

use crate::shell::Script;

/// Runs hook `$2` in `<root>/$1` (`$1` = `-`: in the login directory; a missing directory
/// falls back to the root) through the user's login shell, with `SHARED` and the `K=V`
/// pairs that follow in its environment. `$3` is the run's id: the hook runs in its own
/// process group, named in `.pmfleet/hooks/$3.pid` while it runs (`-`: no run, as in `setup`).
/// `$4` = `skip-pm2`: a `pm2` first on the hook's PATH says what it skipped and succeeds.
/// `$5` = `1`: stdin holds `export NAME='value'` lines (the hook's secrets, quoted by
/// [`crate::shell::quote`]), read before the hook starts — so secret values reach its
/// environment without ever being on a command line.
const RUN_HOOK: &str = host_script!(
    r#"d=$1; h=$2; run=$3; pm2=$4; s=$5; shift 5
if [ "$s" = 1 ]; then
  secrets=$(cat)
  eval "$secrets"
  unset secrets
fi
if [ "$d" != "-" ]; then
  if [ -d "$p/$d" ]; then cd "$p/$d"; else cd "$p"; fi
fi
export SHARED="$p/shared" PMFLEET_DEPLOY_PATH="$p"
if [ "$pm2" = skip-pm2 ]; then
  PMFLEET_PM2_SHIM="$p/.pmfleet/bin"; export PMFLEET_PM2_SHIM
  mkdir -p "$PMFLEET_PM2_SHIM"
  cat > "$PMFLEET_PM2_SHIM/pm2.new" <<'SHIM'
#!/bin/sh
echo "pmfleet: skipped \`pm2 $*\`: the pmfleet agent runs these apps and moves them to the new release once it is current (remove this call from the hook; docs/migrating-from-pm2.md)" >&2
exit 0
SHIM
  chmod 755 "$PMFLEET_PM2_SHIM/pm2.new"
  mv -f "$PMFLEET_PM2_SHIM/pm2.new" "$PMFLEET_PM2_SHIM/pm2"
  h='PATH="$PMFLEET_PM2_SHIM:$PATH"; export PATH
'"$h"
fi
if [ "$run" = "-" ] || ! command -v setsid >/dev/null 2>&1; then
  exec env "$@" "${SHELL:-/bin/sh}" -l -c "$h"
fi
g="$p/.pmfleet/hooks"; mkdir -p "$g"; g="$g/$run.pid"
setsid -w sh -c 'echo "$$" > "$0"; exec "$@"' "$g" env "$@" "${SHELL:-/bin/sh}" -l -c "$h" &
c=$!
set +e
wait "$c"; rc=$?
set -e
rm -f "$g"
exit "$rc"
"#
);

/// Ends the hook run `$1` has running, if any: SIGTERM to its process group, SIGKILL after
/// 10 s; returns once the group is gone. Prints `ended` when there was one.
const END_HOOKS: &str = host_script!(
    r#"f="$p/.pmfleet/hooks/$1.pid"
[ -f "$f" ] || exit 0
g=$(cat "$f" 2>/dev/null || true)
case $g in ''|*[!0-9]*) rm -f "$f"; exit 0 ;; esac
gone() { ! kill -0 -"$g" 2>/dev/null; }
if ! gone; then
  kill -TERM -"$g" 2>/dev/null || true
  i=0; while ! gone && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  if ! gone; then
    kill -KILL -"$g" 2>/dev/null || true
    i=0; while ! gone && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  fi
  echo "ended"
fi
rm -f "$f"
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

/// What a hook's `pm2` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pm2 {
    /// PM2 itself, if the host has it (`agent: false`).
    Real,
    /// A stand-in that says the call was skipped: the agent runs the apps.
    Skipped,
}

impl Pm2 {
    /// The environment's: skipped where its agent runs the apps.
    pub fn for_env(env: &pmfleet_shared::ecosystem::DeployEnv) -> Pm2 {
        if env.agent.is_some() {
            Pm2::Skipped
        } else {
            Pm2::Real
        }
    }
}

/// `run`: the id of the run the hook belongs to, so it can be ended (`None`: not ended by
/// anyone, as in `setup`).
pub fn run_hook(
    root: &str,
    dir: HookDir<'_>,
    hook: &str,
    env: &[(String, String)],
    run: Option<&str>,
    pm2: Pm2,
) -> Script {
    hook_script(root, dir, hook, env, run, pm2, false)
}

/// [`run_hook`] for a hook that also gets `secrets` in its environment: the script, and what
/// to stream into its stdin ([`secret_exports`]).
pub fn run_hook_with_secrets(
    root: &str,
    dir: HookDir<'_>,
    hook: &str,
    env: &[(String, String)],
    secrets: &[(String, String)],
    run: Option<&str>,
    pm2: Pm2,
) -> (Script, Vec<u8>) {
    let script = hook_script(root, dir, hook, env, run, pm2, true);
    (script, secret_exports(secrets))
}

/// `export NAME='value'` lines, each value quoted as one shell word.
pub fn secret_exports(secrets: &[(String, String)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, value) in secrets {
        // Names were checked as shell names when the secrets files were read.
        out.push_str(&format!("export {name}={}\n", crate::shell::quote(value)));
    }
    out.into_bytes()
}

fn hook_script(
    root: &str,
    dir: HookDir<'_>,
    hook: &str,
    env: &[(String, String)],
    run: Option<&str>,
    pm2: Pm2,
    secrets: bool,
) -> Script {
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
        .arg(run.unwrap_or("-"))
        .arg(match pm2 {
            Pm2::Real => "-",
            Pm2::Skipped => "skip-pm2",
        })
        .arg(if secrets { "1" } else { "0" })
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
}

pub fn end_hooks(root: &str, run: &str) -> Script {
    Script::new(END_HOOKS).arg(root).arg(run)
}

pub fn exec(root: &str, command: &str) -> Script {
    Script::new(EXEC).arg(root).arg(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::scripts::testing::Host;

    #[test]
    fn a_hook_runs_in_its_own_group_and_is_ended_with_it() {
        let host = Host::set_up();
        let marker = host.path().join("hook.pid");
        // The hook and a child of it, both waiting forever.
        let hook = format!("echo $$ > {}; sleep 1000 & sleep 1000", marker.display());
        let mut running = std::process::Command::new("sh")
            .arg("-c")
            .arg(
                run_hook(
                    &host.root(),
                    HookDir::Root,
                    &hook,
                    &[],
                    Some("run"),
                    Pm2::Real,
                )
                .render(),
            )
            .spawn()
            .unwrap();
        let pid_file = host.path().join(".pmfleet/hooks/run.pid");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !(pid_file.exists() && marker.exists()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the hook never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let group: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(host.run(&end_hooks(&host.root(), "run")), "ended\n");
        let alive = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), None).is_ok();
        assert!(!alive, "the hook's group is gone once end_hooks returns");
        let status = running.wait().unwrap();
        assert!(!status.success());
        assert!(!pid_file.exists());
        assert_eq!(host.run(&end_hooks(&host.root(), "run")), "");
    }

    #[test]
    fn a_hook_of_an_agent_environment_skips_pm2_and_says_so() {
        let host = Host::set_up();
        let hook = "echo before && pm2 reload ecosystem.config.js --env production && echo after";
        let script = run_hook(&host.root(), HookDir::Root, hook, &[], None, Pm2::Skipped);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script.render())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}{stderr}");
        assert_eq!(stdout, "before\nafter\n");
        assert!(
            stderr.contains("skipped `pm2 reload ecosystem.config.js --env production`"),
            "{stderr}"
        );
    }
}
