//! The fixed shell scripts run on a host, one per operation on the host layout.
//!
//! Each script starts with the deploy root as `$1` (`~` expanded *on the host*, as PM2 does)
//! and reads every other value as a positional parameter; see [`crate::shell`]. They use only
//! POSIX `sh`, coreutils and (for `fetch: host`) git.

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

/// [`host_script!`] for a step a run may only take while it holds the deploy lock: `$1` (after
/// the root) is the run's id, and the script stops at once, with exit status
/// [`LOCK_LOST_STATUS`], when the lock file does not name it. The check and the step are one
/// remote command, so a run whose lock was broken can neither switch `current` nor remove a
/// release of the run that holds the lock now.
macro_rules! owned_script {
    ($body:expr) => {
        host_script!(concat!(
            "id=$1; shift\n",
            "grep -qF \"\\\"deploy_id\\\":\\\"$id\\\"\" \"$p/.pmfleet/lock\" 2>/dev/null || {\n",
            "  echo \"this run ($id) no longer holds the deploy lock on this host: someone broke it; not touching the host\" >&2\n",
            "  exit 75\n",
            "}\n",
            $body
        ))
    };
}

/// A shell function, `append FILE LINE`: appends `LINE` and a newline in one write, after
/// ending a torn last line (one without its newline, left by a writer that died) so the new
/// line never joins it.
macro_rules! append_fn {
    () => {
        r#"append() {
  if [ -s "$1" ] && [ -n "$(tail -c 1 "$1")" ]; then printf '\n' >> "$1"; fi
  printf '%s\n' "$2" >> "$1"
}
"#
    };
}

/// The exit status of a script that checks the lock (`owned_script!`) when its run no longer
/// holds it.
pub const LOCK_LOST_STATUS: i32 = 75;

mod agent;
mod history;
mod hook;
mod lock;
mod release;
mod rollout;
mod secrets;
#[cfg(test)]
mod testing;

pub use agent::*;
pub use history::*;
pub use hook::*;
pub use lock::*;
pub use release::*;
pub use rollout::*;
pub use secrets::*;
