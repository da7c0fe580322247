//! No split fleet when the controller dies: a host whose switch was never confirmed goes back
//! by itself (deploy-rs's "magic rollback", for a fleet).
//!
//! Every second the agent looks at each deploy root `setup` registered for a pending record
//! (`<root>/.pmfleet/pending`, written over SSH by the switch, removed when the controller
//! confirms the whole rollout; [`pmfleet_shared::protocol::Pending`]). [`decide()`] says whether
//! to wait (the run that switched still sends heartbeats on its deploy lock, or the quiet time
//! since its last sign of life is not over, or a manual lock freezes the environment) or to go
//! back. Going back takes the deploy lock for itself (breaking the dead run's lock only if it
//! is still the one judged dead), switches `current` to the release it pointed at before the
//! switch — which the record names and which must be a complete release of that root: the
//! agent may undo, never invent — records the switch in the history (a `revert`, by
//! `pmfleet-agent`, with why), removes the record, runs that release's apps again (a rolling
//! reload, their environment from its marker), writes `<root>/.pmfleet/auto-reverted`, gives
//! the lock back, and tells every `events` subscriber ([`EventKind::AutoReverted`]). `status`
//! shows a pending record with what the agent will do about it, and the last time the host
//! went back by itself.

pub mod decide;
pub mod root_files;

use std::path::Path;
use std::time::{Duration, SystemTime};

use pmfleet_shared::protocol::{ApplyRelease, AutoReverted, EventKind, Pending};
use tokio_util::sync::CancellationToken;

use crate::api::release_gate;
use crate::supervisor::Supervisor;
use decide::{Decision, Facts, decide};
use root_files::Root;

/// How often the roots are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How long the apps of the release gone back to may take to run again.
const APPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// Looks at the roots until `shutdown`.
pub async fn run(sup: Supervisor, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        for root in roots(sup.home().root()) {
            match root.pending() {
                Ok(Some(pending)) => act(&sup, &root, pending).await,
                Ok(None) => {}
                Err(why) => tracing::warn!(root = %root.path.display(), "pending record: {why}"),
            }
        }
    }
}

/// The deploy roots registered in `agent_home`.
fn roots(agent_home: &Path) -> Vec<Root> {
    release_gate::registered_in(agent_home)
        .into_iter()
        .map(|path| Root { path })
        .collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn facts(root: &Root, pending: Pending) -> Facts {
    Facts {
        previous_complete: root.complete(&pending.previous),
        current: root.current(),
        lock: root.lock(),
        now: now_secs(),
        pending,
    }
}

/// What `status` says about `root`: its pending record and what will happen to it, and the
/// last time the host went back by itself.
pub fn describe(root: &Path) -> (Option<Pending>, Option<String>, Option<AutoReverted>) {
    let root = Root {
        path: root.to_path_buf(),
    };
    let auto = root.auto_reverted();
    match root.pending() {
        Ok(Some(pending)) => {
            let note = match decide(&facts(&root, pending.clone())) {
                Decision::Wait { note } => note,
                Decision::Revert { why } => {
                    format!("going back to {} now: {why}", pending.previous)
                }
                Decision::Drop { why } => format!("stale: {why}"),
            };
            (Some(pending), Some(note), auto)
        }
        Ok(None) => (None, None, auto),
        Err(why) => (None, Some(why), auto),
    }
}

async fn act(sup: &Supervisor, root: &Root, pending: Pending) {
    let facts = facts(root, pending.clone());
    match decide(&facts) {
        Decision::Wait { .. } => {}
        Decision::Drop { why } => {
            tracing::warn!(root = %root.path.display(), rollout = %pending.rollout, "pending record dropped: {why}");
            root.remove_pending(&pending.rollout);
        }
        Decision::Revert { why } => go_back(sup, root, &pending, facts.lock.as_ref(), &why).await,
    }
}

/// The run id the agent holds the lock under while it goes back.
fn run_id(rollout: &str) -> String {
    format!("auto-revert-{rollout}")
}

async fn go_back(
    sup: &Supervisor,
    root: &Root,
    pending: &Pending,
    stale: Option<&decide::LockFacts>,
    why: &str,
) {
    let id = run_id(&pending.rollout);
    let machine = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let holder = serde_json::json!({
        "holder": format!("pmfleet-agent@{machine}"),
        "deploy_id": id,
        "action": "auto-revert",
        "since": pmfleet_shared::display::now_rfc3339(),
        "pid": std::process::id(),
        "machine": machine,
    });
    match root.take_lock(&holder.to_string(), stale) {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(root = %root.path.display(), "cannot take the deploy lock to go back: {e}");
            return;
        }
    }
    // Under the lock: still the same record, and `current` still its release.
    let again = root.pending().ok().flatten();
    if again.as_ref() != Some(pending)
        || root.current().as_deref() != Some(pending.release.as_str())
    {
        root.release_lock(&id);
        return;
    }
    tracing::warn!(root = %root.path.display(), rollout = %pending.rollout, "going back to {} by itself: {why}", pending.previous);
    if let Err(e) = root.switch(&pending.previous) {
        tracing::error!(root = %root.path.display(), "cannot switch back to {}: {e}", pending.previous);
        root.release_lock(&id);
        return;
    }
    let (sha, git_ref) = root.sha_and_ref(&pending.previous);
    let record = serde_json::json!({
        "id": pending.rollout,
        "action": "revert",
        "release": pending.previous,
        "previous": pending.release,
        "sha": sha,
        "ref": git_ref,
        "who": format!("pmfleet-agent@{machine}"),
        "when": pmfleet_shared::display::now_rfc3339(),
        "outcome": "success",
        "message": format!("went back by itself: {why}"),
    });
    if let Err(e) = root.append_history(&record.to_string()) {
        tracing::warn!(root = %root.path.display(), "could not record the switch back: {e}");
    }
    root.remove_pending(&pending.rollout);
    let (apps_back, said) = run_again(sup, root, &pending.previous).await;
    let record = AutoReverted {
        rollout: pending.rollout.clone(),
        from: pending.release.clone(),
        to: pending.previous.clone(),
        when: pmfleet_shared::display::now_rfc3339(),
        why: if apps_back {
            why.to_string()
        } else {
            format!(
                "{why}; the apps of {} did not come back: {said}",
                pending.previous
            )
        },
        apps_back,
    };
    if let Err(e) = root.write_auto_reverted(&record) {
        tracing::warn!(root = %root.path.display(), "could not record going back: {e}");
    }
    root.release_lock(&id);
    sup.announce(EventKind::AutoReverted, announcement(&root.path, &record));
}

/// The message of the [`EventKind::AutoReverted`] event: from which release to which, where,
/// and why.
fn announcement(root: &Path, record: &AutoReverted) -> String {
    format!(
        "went back by itself from release {} to {} in {}: {}",
        record.from,
        record.to,
        root.display(),
        record.why
    )
}

/// Runs the apps of `release` again; whether they all came back, and what was said.
async fn run_again(sup: &Supervisor, root: &Root, release: &str) -> (bool, String) {
    let req = ApplyRelease {
        root: root.path.clone(),
        release: release.to_string(),
        timeout_ms: u64::try_from(APPLY_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
    };
    let dir = match release_gate::resolve(sup.home().root(), &req) {
        Ok(dir) => dir,
        Err(e) => return (false, e.to_string()),
    };
    match sup.apply_release(dir).await {
        Ok(report) => {
            let said: Vec<String> = report.apps.iter().map(|a| a.message.clone()).collect();
            (report.ok(), said.join("; "))
        }
        Err(e) => (false, e.report()),
    }
}
