//! The deploy's rules once every lock is taken. The no-split rule: the release is prepared on
//! every host first, and if more hosts failed (or could not be reached) than `max_fail`, no
//! host switches and the release is removed everywhere. Then `current` switches in batches,
//! the first batch being the canary; a host whose apps do not become ready goes back to the
//! release it served; once failures pass `max_fail` (or someone breaks the lock) the rollout
//! stops, the hosts not reached yet never switch, and those already switched go back. A host
//! that goes back has its agent run the release it served, with that release's own
//! `PMFLEET_RELEASE`/`PMFLEET_SHA`/`PMFLEET_REF`, so its kept instances are left alone.

use super::{Action, Busy, Conclusion, Entry, HostId, Phase, Plan, Prepared, Rails, Rollout, Undo};
use crate::deploy::error::{HostError, StepFailure};
use crate::deploy::history::{Action as RecordAction, Outcome};
use crate::deploy::report::Status;
use crate::deploy::rollout::ReleaseVars;
use pmfleet_shared::ecosystem::Batch;

/// Hosts per batch.
pub fn batch_size(batch: Batch, hosts: usize) -> usize {
    let size = match batch {
        Batch::All => hosts,
        Batch::Count(n) => n,
        Batch::Percent(p) => (hosts * usize::from(p)).div_ceil(100),
    };
    size.clamp(1, hosts.max(1))
}

impl Rollout {
    /// The release being deployed, its batch setting and `max_fail`.
    fn deploy_plan(&self) -> Option<(&ReleaseVars, Batch, usize)> {
        match &self.cfg.plan {
            Plan::Deploy {
                release,
                batch,
                max_fail,
                ..
            } => Some((release, *batch, *max_fail)),
            Plan::Revert { .. } => None,
        }
    }

    /// The deploy's rails (none for a revert).
    pub(super) fn rails(&self) -> Rails {
        match &self.cfg.plan {
            Plan::Deploy { rails, .. } => *rails,
            Plan::Revert { .. } => Rails::default(),
        }
    }

    pub(super) fn release(&self) -> ReleaseVars {
        self.deploy_plan()
            .map(|(r, _, _)| r.clone())
            .unwrap_or_else(|| ReleaseVars {
                release: String::new(),
                sha: None,
                git_ref: None,
            })
    }

    pub(super) fn max_fail(&self) -> usize {
        self.deploy_plan().map_or(0, |(_, _, m)| m)
    }

    /// A history record of this deploy on a host.
    pub(super) fn deploy_entry(
        &self,
        outcome: Outcome,
        previous: Option<String>,
        message: &str,
    ) -> Entry {
        let release = self.release();
        Entry {
            action: RecordAction::Deploy,
            release: release.release,
            previous,
            sha: release.sha.unwrap_or_default(),
            git_ref: release.git_ref.unwrap_or_default(),
            outcome,
            message: (!message.is_empty()).then(|| message.to_string()),
        }
    }

    /// The record of `h` going back to `previous`, written by the switch back itself: a
    /// revert to it, so the release line drops the release that did not stay.
    pub(super) fn back_entry(&self, h: HostId, previous: &str, why: &str) -> Entry {
        let vars = self.serving_vars(h, previous);
        Entry {
            action: RecordAction::Revert,
            release: previous.to_string(),
            previous: Some(self.release().release),
            sha: vars.sha.unwrap_or_default(),
            git_ref: vars.git_ref.unwrap_or_default(),
            outcome: Outcome::Success,
            message: Some(why.to_string()),
        }
    }

    /// What the apps of `previous` (the release `h` served) are told again.
    fn serving_vars(&self, h: HostId, previous: &str) -> ReleaseVars {
        self.hosts[h]
            .serving
            .clone()
            .filter(|v| v.release == previous)
            .unwrap_or_else(|| ReleaseVars {
                release: previous.to_string(),
                sha: None,
                git_ref: None,
            })
    }

    /// A host's end in this deploy: report `status`, remove the release when `discard`, and
    /// record `outcome` (unless the switch recorded it already).
    pub(super) fn deploy_conclusion(
        &self,
        h: HostId,
        status: Status,
        message: String,
        discard: bool,
        outcome: Outcome,
        record_message: &str,
    ) -> Conclusion {
        let release = self.release();
        let previous = match outcome {
            Outcome::RolledBack | Outcome::Success => self.hosts[h].previous.clone(),
            _ => None,
        };
        Conclusion {
            host: h,
            status,
            discard: discard.then(|| release.release.clone()),
            records: vec![self.deploy_entry(outcome, previous, record_message)],
            release: Some(release),
            message,
            prune: false,
        }
    }

    /// A host that failed before anything was made on it.
    pub(super) fn deploy_conclusion_of(
        &self,
        h: HostId,
        status: Status,
        message: String,
    ) -> Conclusion {
        let record = message.clone();
        self.deploy_conclusion(h, status, message, false, Outcome::Failed, &record)
    }

    /// The rollout record is on every host: prepare the release everywhere.
    pub(super) fn begun_deploy(&mut self, out: &mut Vec<Action>) {
        let ready: Vec<HostId> = self
            .connected()
            .into_iter()
            .filter(|h| self.hosts[*h].begun && !self.hosts[*h].concluded)
            .collect();
        self.phase = Phase::Preparing;
        for h in &ready {
            self.hosts[*h].busy = Some(Busy::Preparing);
        }
        if ready.is_empty() {
            self.prepared_everywhere(out);
        } else {
            out.push(Action::Prepare(ready, self.release().release));
        }
    }

    pub(super) fn prepare_answered(
        &mut self,
        h: HostId,
        result: Result<Prepared, StepFailure>,
        out: &mut Vec<Action>,
    ) {
        if self.phase != Phase::Preparing || !self.take_busy(h, Busy::Preparing) {
            return;
        }
        match result {
            Ok(prepared) => self.hosts[h].prepared = Some(prepared),
            Err(StepFailure {
                error: HostError::LockLost,
                ..
            }) => {
                self.lock_lost(h, out);
                return;
            }
            Err(failure) => {
                // The failing step removed the release on that host.
                self.failed += 1;
                let message = failure.to_string();
                let c = self.deploy_conclusion_of(h, failure.error.status(), message);
                self.conclude(c, out);
            }
        }
        if !self.any_busy() {
            self.prepared_everywhere(out);
        }
    }

    /// Every host answered: switch, or (the no-split rule) switch none.
    fn prepared_everywhere(&mut self, out: &mut Vec<Action>) {
        let ready: Vec<HostId> = self
            .connected()
            .into_iter()
            .filter(|h| self.hosts[*h].prepared.is_some() && !self.hosts[*h].concluded)
            .collect();
        let max_fail = self.max_fail();
        if self.failed > max_fail {
            let why = format!(
                "not switched: {} host(s) failed and max_fail is {max_fail}; this release was removed",
                self.failed
            );
            for h in ready {
                let c = self.deploy_conclusion(
                    h,
                    Status::Aborted,
                    why.clone(),
                    true,
                    Outcome::Aborted,
                    "another host failed",
                );
                self.conclude(c, out);
            }
            self.finish(out);
            return;
        }
        let batch = self.deploy_plan().map_or(Batch::All, |(_, b, _)| b);
        let size = batch_size(batch, ready.len());
        self.batches = ready.chunks(size).map(<[HostId]>::to_vec).collect();
        if self.rails().release_step {
            self.run_release_step(&ready, out);
        } else {
            self.start_batch(0, out);
        }
    }

    pub(super) fn start_batch(&mut self, index: usize, out: &mut Vec<Action>) {
        let Some(batch) = self.batches.get(index).cloned() else {
            self.complete(out);
            return;
        };
        self.phase = Phase::Switching(index);
        let release = self.release().release;
        for h in batch {
            self.set_busy(h, Busy::Switching);
            let entry = self.deploy_entry(Outcome::Success, self.hosts[h].previous.clone(), "");
            out.push(Action::Switch(h, release.clone(), entry));
        }
    }

    pub(super) fn deploy_switched(
        &mut self,
        h: HostId,
        previous: Option<String>,
        out: &mut Vec<Action>,
    ) {
        self.hosts[h].previous = previous;
        if self.phase == Phase::Undoing {
            // The rollout stopped while this host switched: straight back.
            self.hosts[h].switched = true;
            self.send_back(h, self.stop_reason(), out);
            self.after_host(out);
            return;
        }
        let has_apps = self.hosts[h].prepared.as_ref().is_some_and(|p| p.has_apps);
        if self.cfg.agents && has_apps {
            self.set_busy(h, Busy::Applying);
            let release = self.release();
            out.push(Action::Apply {
                host: h,
                release: release.release.clone(),
                vars: release,
            });
            return;
        }
        if self.cfg.agents {
            out.push(Action::Note(
                h,
                "reload apps",
                "this release has no ecosystem file: no apps for the agent to run".into(),
            ));
        }
        self.hosts[h].switched = true;
        self.after_host(out);
    }

    pub(super) fn deploy_switch_failed(&mut self, h: HostId, e: HostError, out: &mut Vec<Action>) {
        if matches!(e, HostError::LockLost) {
            self.lock_lost(h, out);
        }
        self.failed += 1;
        let message = format!("switch: {e}");
        let lost = matches!(e, HostError::LockLost);
        let c = self.deploy_conclusion(
            h,
            e.status(),
            message.clone(),
            !lost,
            Outcome::Failed,
            &message,
        );
        self.conclude(c, out);
        self.after_host(out);
    }

    pub(super) fn deploy_applied(&mut self, h: HostId, done: String, out: &mut Vec<Action>) {
        out.push(Action::Note(h, "reload apps", done));
        self.hosts[h].switched = true;
        match self.phase {
            Phase::Undoing => {
                self.send_back(h, self.stop_reason(), out);
                self.after_host(out);
            }
            _ if self.rails().watch => self.watch_host(h, out),
            _ => self.after_host(out),
        }
    }

    pub(super) fn deploy_apply_failed(&mut self, h: HostId, e: HostError, out: &mut Vec<Action>) {
        // Counted as failed once it is back (`deploy_undone`), or now when it cannot go back.
        if !self.back_or_fail(h, &e, Undo::NotReady, out) {
            self.failed += 1;
            self.after_host(out);
        }
    }

    /// `h`'s new release, switched to, failed with `e`: back to the release it served, `undo`
    /// keeping why — `true` — or, with none to go back to, concluded failed — `false`.
    pub(super) fn back_or_fail(
        &mut self,
        h: HostId,
        e: &HostError,
        undo: fn(String) -> Undo,
        out: &mut Vec<Action>,
    ) -> bool {
        match self.hosts[h].previous.clone() {
            Some(previous) => {
                self.hosts[h].undo = Some(undo(format!("{e}; switched back to {previous}")));
                self.set_busy(h, Busy::SwitchingBack);
                let entry = self.back_entry(h, &previous, &format!("switched back: {e}"));
                out.push(Action::SwitchBack(h, previous, entry));
                true
            }
            None => {
                let message = format!("{e}; no previous release to go back to");
                let c = self.deploy_conclusion(
                    h,
                    Status::Failed,
                    message.clone(),
                    false,
                    Outcome::Failed,
                    &message,
                );
                self.conclude(c, out);
                false
            }
        }
    }

    pub(super) fn deploy_switched_back(&mut self, h: HostId, out: &mut Vec<Action>) {
        match (self.cfg.agents, self.hosts[h].previous.clone()) {
            (true, Some(previous)) => {
                self.set_busy(h, Busy::ApplyingBack);
                let vars = self.serving_vars(h, &previous);
                out.push(Action::ApplyBack {
                    host: h,
                    release: previous,
                    vars,
                });
            }
            _ => self.deploy_undone(h, None, out),
        }
    }

    pub(super) fn deploy_switch_back_failed(
        &mut self,
        h: HostId,
        e: HostError,
        out: &mut Vec<Action>,
    ) {
        if matches!(e, HostError::LockLost) {
            self.lock_lost(h, out);
        }
        out.push(Action::Note(h, "switch back", format!("failed: {e}")));
        self.deploy_undone(h, Some(e), out);
    }

    pub(super) fn deploy_applied_back(
        &mut self,
        h: HostId,
        result: Result<String, HostError>,
        out: &mut Vec<Action>,
    ) {
        match result {
            Ok(done) => out.push(Action::Note(h, "reload apps", done)),
            Err(e) => {
                let previous = self.hosts[h].previous.clone().unwrap_or_default();
                out.push(Action::Note(
                    h,
                    "switch back",
                    format!("apps of {previous}: {e}"),
                ));
            }
        }
        self.deploy_undone(h, None, out);
    }

    /// The message of a host's failed release once it is done going back, counting it as
    /// failed now unless it was counted when its watch window failed.
    fn count_undone(&mut self, undo: Undo) -> String {
        match undo {
            Undo::NotReady(message) => {
                self.failed += 1;
                message
            }
            Undo::Unhealthy(message) => message,
            _ => String::new(),
        }
    }

    /// `h` went back (or could not: `failed` says why): conclude it.
    fn deploy_undone(&mut self, h: HostId, failed: Option<HostError>, out: &mut Vec<Action>) {
        let previous = self.hosts[h].previous.clone().unwrap_or_default();
        match (self.hosts[h].undo.take(), failed) {
            (Some(undo @ (Undo::NotReady(_) | Undo::Unhealthy(_))), None) => {
                let message = self.count_undone(undo);
                let c = self.deploy_conclusion(
                    h,
                    Status::RolledBack,
                    message.clone(),
                    true,
                    Outcome::RolledBack,
                    &message,
                );
                self.conclude(c, out);
            }
            (Some(undo @ (Undo::NotReady(_) | Undo::Unhealthy(_))), Some(e)) => {
                // Still on the new release, whose apps are not well: a failure, not a rollback.
                let message = self.count_undone(undo).replace(
                    &format!("; switched back to {previous}"),
                    &format!("; could not switch back to {previous}: {e}"),
                );
                let c = self.deploy_conclusion(
                    h,
                    Status::Failed,
                    message.clone(),
                    false,
                    Outcome::Failed,
                    &message,
                );
                self.conclude(c, out);
            }
            (Some(Undo::Stopped(why)), None) => {
                let c = self.deploy_conclusion(
                    h,
                    Status::RolledBack,
                    why.clone(),
                    false,
                    Outcome::RolledBack,
                    &why,
                );
                self.conclude(c, out);
            }
            (Some(Undo::Stopped(_)), Some(e)) => {
                let message = format!(
                    "serving {} still: could not switch back to {previous} after the rollout stopped: {e}",
                    self.release().release
                );
                let c = Conclusion {
                    records: Vec::new(),
                    ..self.deploy_conclusion(h, Status::Failed, message, false, Outcome::Failed, "")
                };
                self.conclude(c, out);
            }
            _ => {}
        }
        self.after_host(out);
    }

    /// A host is done with its step: the batch goes on, or (stopping) the run ends once no
    /// host is busy.
    pub(super) fn after_host(&mut self, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Switching(_) => self.batch_check(out),
            Phase::Undoing if !self.any_busy() => self.finish(out),
            _ => {}
        }
    }

    /// When every host of the current batch is done: the next batch, or stop when failures
    /// passed `max_fail` or the lock was lost, or the end.
    fn batch_check(&mut self, out: &mut Vec<Action>) {
        let Phase::Switching(index) = self.phase else {
            return;
        };
        if self.any_busy() {
            return;
        }
        if self.failed <= self.max_fail() && self.lost.is_empty() {
            self.start_batch(index + 1, out);
        } else {
            self.stop_switching(out);
        }
    }

    /// Why the switched hosts go back when the rollout stops.
    pub(super) fn stop_reason(&self) -> String {
        match self.lost.first() {
            Some(l) => format!(
                "switched back: the deploy lock on {} was broken by someone else",
                self.cfg.labels[*l]
            ),
            None => format!(
                "switched back: {} host(s) failed and max_fail is {}",
                self.failed,
                self.max_fail()
            ),
        }
    }

    /// The rollout stops: the hosts not reached never switch, the watches still running
    /// end, and every host that switched in this rollout — the canary and earlier batches
    /// too — goes back to the release it served. Hosts still busy go back when they answer.
    pub(super) fn stop_switching(&mut self, out: &mut Vec<Action>) {
        let index = match self.phase {
            Phase::Switching(index) => index,
            _ => self.batches.len(),
        };
        self.phase = Phase::Undoing;
        let why = "not switched: the rollout stopped".to_string();
        let rest: Vec<HostId> = self
            .batches
            .iter()
            .skip(index + 1)
            .flatten()
            .copied()
            .collect();
        for h in rest {
            let c = self.deploy_conclusion(
                h,
                Status::Aborted,
                why.clone(),
                true,
                Outcome::Aborted,
                &why,
            );
            self.conclude(c, out);
        }
        let watching: Vec<HostId> = (0..self.hosts.len())
            .filter(|h| self.hosts[*h].busy == Some(Busy::Watching))
            .collect();
        if !watching.is_empty() {
            for h in &watching {
                self.hosts[*h].busy = None;
            }
            out.push(Action::StopWatching(watching));
        }
        let back = self.stop_reason();
        let switched: Vec<HostId> = self.batches.iter().flatten().copied().collect();
        for h in switched {
            if self.hosts[h].switched && !self.hosts[h].concluded && self.hosts[h].busy.is_none() {
                self.send_back(h, back.clone(), out);
            }
        }
        if !self.any_busy() {
            self.finish(out);
        }
    }

    /// `h` goes back because the rollout stopped (or, with no release to go back to, is
    /// concluded as it is).
    pub(super) fn send_back(&mut self, h: HostId, why: String, out: &mut Vec<Action>) {
        match self.hosts[h].previous.clone() {
            Some(previous) => {
                self.hosts[h].undo = Some(Undo::Stopped(why.clone()));
                self.set_busy(h, Busy::SwitchingBack);
                let entry = self.back_entry(h, &previous, &why);
                out.push(Action::SwitchBack(h, previous, entry));
            }
            None => {
                let c = self.deploy_conclusion(
                    h,
                    Status::RolledBack,
                    why.clone(),
                    false,
                    Outcome::RolledBack,
                    &why,
                );
                self.conclude(c, out);
            }
        }
    }

    /// Every batch switched within `max_fail`: when switches leave pending records, the
    /// rollout is confirmed on every host first (`confirm`); then the switched hosts serve
    /// the release (their switches recorded it) and old releases are pruned.
    fn complete(&mut self, out: &mut Vec<Action>) {
        if self.rails().confirm {
            self.confirm_all(out);
        } else {
            self.conclude_served(out);
        }
    }

    /// Every switched host serves the release: concluded, pruned; the run ends.
    pub(super) fn conclude_served(&mut self, out: &mut Vec<Action>) {
        let release = self.release();
        let hosts: Vec<HostId> = self.batches.iter().flatten().copied().collect();
        for h in hosts {
            if !self.hosts[h].switched || self.hosts[h].concluded {
                continue;
            }
            let c = Conclusion {
                host: h,
                status: Status::Ok,
                message: format!("now serving {}", release.release),
                release: Some(release.clone()),
                discard: None,
                records: Vec::new(),
                prune: true,
            };
            self.conclude(c, out);
        }
        self.finish(out);
    }
}
