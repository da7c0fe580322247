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

mod agent;
mod history;
mod hook;
mod lock;
mod release;

pub use agent::*;
pub use history::*;
pub use hook::*;
pub use lock::*;
pub use release::*;
