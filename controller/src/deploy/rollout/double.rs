//! An in-memory host for the driver's tests: the second implementation of [`RolloutHost`].
//! It keeps what a real host's deploy root would hold (releases, `current`, the history, the
//! lock) and what its agent runs, and fails any operation it is told to — as a script error,
//! or as a connection that dropped.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use super::{Begun, Confirmed, Heartbeat, Prepared, Pruned, ReleaseVars, RolloutHost};
use crate::deploy::error::{HostError, Step, StepFailure};
use crate::deploy::history::{self, Record};
use crate::deploy::host_state::HostState;
use crate::deploy::lock::{Acquire, Holder};
use crate::deploy::rollout_record::RolloutRecord;
use crate::ssh::SshError;
use crate::transport::TransportError;

/// An operation the double can be told to fail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    Lock,
    Begin,
    Prepare(Step),
    Read,
    /// Switching to this release.
    Switch(String),
    /// Running the apps of this release.
    Apply(String),
    Record,
    /// The `release` step.
    Release,
    /// The watch window over this release's apps.
    Watch(String),
    Confirm,
}

/// What the host holds.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    pub releases: BTreeSet<String>,
    pub current: Option<String>,
    pub history: Vec<Record>,
    /// The lock file's content.
    pub lock: Option<String>,
    /// What the agent runs: the release, and what its apps were told.
    pub apps: Option<(String, ReleaseVars)>,
    pub rollout: Option<RolloutRecord>,
    /// How many times the agent restarted the apps (applied a release or variables other
    /// than the ones running).
    pub restarts: usize,
    /// Hooks were ended by a run that stopped.
    pub hooks_ended: bool,
    /// A switch left a pending record (the release switched to); the confirmation or a
    /// switch back removes it.
    pub pending: Option<String>,
    /// How many times the `release` step ran here.
    pub release_steps: usize,
}

#[derive(Debug, Default)]
pub struct Double {
    pub disk: Mutex<Disk>,
    failing: Mutex<HashSet<Op>>,
    dropping: Mutex<HashSet<Op>>,
    /// Prepare never ends (until cancelled).
    hang_in_prepare: bool,
    /// The run that took the lock here.
    run: Mutex<Option<String>>,
    /// When this operation starts, another run breaks this run's lock and takes it.
    lose_lock_at: Mutex<Option<Op>>,
    /// Taking the lock for this run takes this long (another run may come first).
    slow_lock_for: Option<(String, std::time::Duration)>,
}

impl Double {
    /// A host serving `current`, deployed after the releases before it in `line`.
    pub fn serving(line: &[&str]) -> Double {
        let mut disk = Disk::default();
        for release in line {
            disk.releases.insert(release.to_string());
            disk.history.push(Record {
                id: "earlier".into(),
                action: crate::deploy::history::Action::Deploy,
                release: release.to_string(),
                previous: disk.current.clone(),
                sha: format!("sha-{release}"),
                git_ref: "main".into(),
                who: "t".into(),
                when: "2026-01-01T00:00:00Z".into(),
                outcome: crate::deploy::history::Outcome::Success,
                message: None,
            });
            disk.current = Some(release.to_string());
            disk.apps = Some((
                release.to_string(),
                ReleaseVars {
                    release: release.to_string(),
                    sha: Some(format!("sha-{release}")),
                    git_ref: Some("main".into()),
                },
            ));
        }
        Double {
            disk: Mutex::new(disk),
            ..Double::default()
        }
    }

    /// `op` fails with a script error.
    pub fn fail(self, op: Op) -> Double {
        self.failing_ops().insert(op);
        self
    }

    /// `op` fails as if the connection dropped.
    pub fn drop_at(self, op: Op) -> Double {
        self.dropping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(op);
        self
    }

    /// Someone breaks the lock and takes it when `op` starts.
    pub fn lose_lock_at(self, op: Op) -> Double {
        *self.lose_lock_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(op);
        self
    }

    /// Taking the lock for run `run` takes `delay`.
    pub fn slow_lock_for(mut self, run: &str, delay: std::time::Duration) -> Double {
        self.slow_lock_for = Some((run.to_string(), delay));
        self
    }

    /// Preparing never ends (until the run cancels it).
    pub fn hanging_in_prepare(mut self) -> Double {
        self.hang_in_prepare = true;
        self
    }

    /// The lock is held by another run.
    pub fn locked_by_other(self) -> Double {
        let holder = Holder::new("bob@elsewhere", "other", "deploy");
        self.disk().lock = Some(serde_json::to_string(&holder).unwrap_or_default());
        self
    }

    pub fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failing_ops(&self) -> std::sync::MutexGuard<'_, HashSet<Op>> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self, op: Op) -> Result<(), HostError> {
        let lose = self
            .lose_lock_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            == Some(&op);
        if lose {
            let holder = Holder::new("bob@elsewhere", "other", "deploy");
            self.disk().lock = Some(serde_json::to_string(&holder).unwrap_or_default());
        }
        if self
            .dropping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&op)
        {
            return Err(HostError::transport(TransportError::Ssh(
                SshError::ConnectionLost {
                    destination: "root@double:22".into(),
                    message: "gone".into(),
                },
            )));
        }
        if self.failing_ops().contains(&op) {
            return Err(HostError::Exit {
                status: 1,
                reason: format!("{op:?} failed"),
            });
        }
        Ok(())
    }

    /// Steps that change the host check the run still holds the lock, like the real scripts.
    fn owned(&self) -> Result<(), HostError> {
        let run = self.run.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match run {
            Some(run) if self.lock_is(&run) => Ok(()),
            _ => Err(HostError::LockLost),
        }
    }

    fn lock_is(&self, deploy_id: &str) -> bool {
        self.disk()
            .lock
            .as_deref()
            .and_then(|l| serde_json::from_str::<Holder>(l).ok())
            .is_some_and(|h| h.deploy_id == deploy_id)
    }
}

impl RolloutHost for Double {
    async fn take_lock(&self, content: &str) -> Result<Acquire, HostError> {
        if let Some((run, delay)) = &self.slow_lock_for
            && content.contains(&format!("\"deploy_id\":\"{run}\""))
        {
            tokio::time::sleep(*delay).await;
        }
        self.check(Op::Lock)?;
        let mut disk = self.disk();
        match &disk.lock {
            Some(held) => Ok(Acquire::Held {
                holder: serde_json::from_str(held).ok(),
                heartbeat_age: 1,
            }),
            None => {
                disk.lock = Some(content.to_string());
                let holder: Option<Holder> = serde_json::from_str(content).ok();
                *self.run.lock().unwrap_or_else(|e| e.into_inner()) = holder.map(|h| h.deploy_id);
                Ok(Acquire::Acquired)
            }
        }
    }

    async fn heartbeat(&self, deploy_id: &str) -> Result<Heartbeat, HostError> {
        Ok(if self.lock_is(deploy_id) {
            Heartbeat::Kept
        } else {
            Heartbeat::Lost
        })
    }

    async fn release_lock(&self, deploy_id: &str) -> Result<(), HostError> {
        if self.lock_is(deploy_id) {
            self.disk().lock = None;
        }
        Ok(())
    }

    async fn begin(&self, record: &RolloutRecord) -> Result<Begun, HostError> {
        self.check(Op::Begin)?;
        self.owned()?;
        let mut disk = self.disk();
        let serving = disk.current.clone().map(|release| {
            let r = history::latest_for(&disk.history, &release);
            ReleaseVars {
                sha: r.map(|r| r.sha.clone()),
                git_ref: r.map(|r| r.git_ref.clone()),
                release,
            }
        });
        let mut record = record.clone();
        record.previous = disk.current.clone();
        record.state = "running".into();
        let last = disk.rollout.replace(record);
        Ok(Begun {
            current: disk.current.clone(),
            serving,
            last,
        })
    }

    async fn end(&self) -> Result<(), HostError> {
        self.owned()?;
        if let Some(record) = &mut self.disk().rollout {
            record.state = "finished".into();
            record.finished = Some("now".into());
        }
        Ok(())
    }

    async fn end_hooks(&self) -> Result<(), HostError> {
        self.disk().hooks_ended = true;
        Ok(())
    }

    async fn prepare(&self, release: &str) -> Result<Prepared, StepFailure> {
        if self.hang_in_prepare {
            std::future::pending::<()>().await;
        }
        for step in [
            Step::Check,
            Step::PreDeploy,
            Step::Fetch,
            Step::LinkShared,
            Step::PostDeploy,
            Step::Finish,
        ] {
            let checked = self.check(Op::Prepare(step)).and_then(|()| {
                // Like the real scripts: the check and marking the release complete need the lock.
                if step == Step::Check || step == Step::Finish {
                    self.owned()
                } else {
                    Ok(())
                }
            });
            if step == Step::Fetch {
                self.disk().releases.insert(release.to_string());
            }
            if let Err(error) = checked {
                // A failing step removes the new release, like the real one.
                self.disk().releases.remove(release);
                return Err(StepFailure { step, error });
            }
        }
        Ok(Prepared { has_apps: true })
    }

    async fn read_state(&self) -> Result<HostState, HostError> {
        self.check(Op::Read)?;
        let disk = self.disk();
        Ok(HostState {
            setup: true,
            root: "/srv/app".into(),
            current: disk.current.clone(),
            releases: disk.releases.iter().cloned().collect(),
            incomplete: Vec::new(),
            lock: disk
                .lock
                .as_deref()
                .and_then(|l| serde_json::from_str(l).ok()),
            rollout: disk.rollout.clone(),
            history: disk.history.clone(),
        })
    }

    async fn switch(&self, release: &str, record: &Record) -> Result<Option<String>, HostError> {
        self.check(Op::Switch(release.to_string()))?;
        self.owned()?;
        let mut disk = self.disk();
        if !disk.releases.contains(release) {
            return Err(HostError::Exit {
                status: 1,
                reason: format!("release {release} is not complete on this host"),
            });
        }
        let previous = disk.current.replace(release.to_string());
        disk.pending =
            (record.action == crate::deploy::history::Action::Deploy).then(|| release.to_string());
        disk.history.push(record.clone());
        Ok(previous)
    }

    async fn apply(&self, release: &str, vars: &ReleaseVars) -> Result<String, HostError> {
        self.check(Op::Apply(release.to_string()))?;
        let mut disk = self.disk();
        let wanted = (release.to_string(), vars.clone());
        if disk.apps.as_ref() == Some(&wanted) {
            return Ok(format!("web unchanged on {release}"));
        }
        disk.restarts += 1;
        disk.apps = Some(wanted);
        Ok(format!("web reloaded to {release}"))
    }

    async fn run_release(&self, _release: &str) -> Result<String, StepFailure> {
        self.check(Op::Release)
            .map_err(StepFailure::new(Step::Release))?;
        self.disk().release_steps += 1;
        Ok("migrated".into())
    }

    async fn watch(&self, release: &str) -> Result<String, HostError> {
        self.check(Op::Watch(release.to_string()))?;
        Ok(format!("web healthy on {release}"))
    }

    async fn confirm(&self, release: &str) -> Result<Confirmed, HostError> {
        self.check(Op::Confirm)?;
        self.owned()?;
        let mut disk = self.disk();
        if disk.current.as_deref() != Some(release) {
            return Ok(Confirmed::WentBack(format!(
                "went back to {} by itself",
                disk.current.clone().unwrap_or_default()
            )));
        }
        disk.pending = None;
        Ok(Confirmed::Kept)
    }

    async fn discard(&self, release: &str) -> Result<(), HostError> {
        self.owned()?;
        let mut disk = self.disk();
        if disk.current.as_deref() != Some(release) {
            disk.releases.remove(release);
        }
        Ok(())
    }

    async fn record(&self, record: &Record) -> Result<(), HostError> {
        self.check(Op::Record)?;
        self.disk().history.push(record.clone());
        Ok(())
    }

    async fn prune(&self, _fleet_target: Option<&str>) -> Result<Pruned, HostError> {
        self.owned()?;
        Ok(Pruned::Removed {
            count: 0,
            in_use: Vec::new(),
        })
    }
}
