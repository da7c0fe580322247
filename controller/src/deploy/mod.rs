//! The deploy engine: what happens on the hosts for `setup`, `update`, `revert`, `list`,
//! `current`, `previous`, `exec` and `unlock`. See docs/deploy.md for the host layout and the
//! order of steps.

pub mod archive;
pub mod common_release;
pub mod error;
pub(crate) mod fleet;
pub mod history;
pub mod host_state;
mod inspect;
pub mod lock;
pub mod performer;
mod prepare;
mod prune;
mod remote;
pub mod report;
mod revert;
pub mod revision;
pub mod rollout;
pub mod rollout_record;
pub mod scripts;
mod setup;
mod update;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use inspect::{Which, exec, list, lock, show_release, unlock};
pub use report::{Exit, HostReport, Status};
pub use revert::revert;
pub use setup::setup;
pub use update::{run_local_hook, update};

use crate::output::Output;
use crate::ssh::Connector;

/// What every deploy operation needs besides the environment itself.
pub struct Context {
    pub out: Arc<Output>,
    pub connector: Connector,
    /// Who is deploying: the CI actor in CI, else `user@machine`.
    pub who: String,
    /// The controller's repository caches.
    pub cache_root: PathBuf,
    /// Where `pre-deploy-local` runs: the ecosystem file's directory.
    pub workdir: PathBuf,
    /// `--lock-wait`: how long to wait for another deploy's lock.
    pub lock_wait: Option<Duration>,
    /// Cancelled on Ctrl-C / SIGTERM: a deploy that has not switched yet stops, removes its
    /// new release and gives back its lock.
    pub cancel: tokio_util::sync::CancellationToken,
    /// `setup --upgrade-agent`: replace agents whose binary differs from this one.
    pub upgrade_agent: bool,
    /// The environment's secrets, resolved (empty when it has none, or for a verb that needs
    /// none): written to each host by a deploy and given to its hooks.
    pub secrets: Arc<crate::secrets::Resolved>,
    /// Told once a deploy knows what it deploys (for the `deploy_started` notification).
    pub on_started: Option<OnStarted>,
    /// This command's id: a deploy's or revert's run id (in the lock and every history
    /// record), and the id of the audit records of the other verbs.
    pub run_id: String,
}

/// What a deploy deploys, once the ref is resolved.
#[derive(Debug, Clone)]
pub struct Started {
    pub release: String,
    pub sha: String,
    pub git_ref: String,
}

/// A callback for [`Started`].
pub type OnStarted = Arc<dyn Fn(&Started) + Send + Sync>;

/// Who is deploying, as recorded in the lock, the history and the audit trail
/// ([`performer`]): the actor or the CI's, else the git user of `repo`'s repository, else
/// `user@machine`.
pub fn who_in(repo: Option<&Path>) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".to_string());
    let machine = hostname().unwrap_or_else(|| "unknown-host".to_string());
    performer::choose(
        |name| std::env::var(name).ok(),
        || repo.and_then(performer::git_user),
        format!("{user}@{machine}"),
    )
}

/// The name of the current uid in the password database (when `$USER` is not set, as under
/// cron or CI).
fn user_from_passwd() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| user.name)
}

/// This machine's name, as the kernel has it.
pub fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

pub use pmfleet_shared::display::now_rfc3339;

/// A new release id: the UTC time to the millisecond, `20261124-061530-123`, so release
/// directories sort by age. Made once per deploy; the same on every host.
pub fn new_release_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{:03}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}
