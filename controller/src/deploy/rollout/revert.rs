//! The revert's rules once every lock is taken: every host must be set up, have the release
//! `N` deploys back along its history, and still hold it; every host must name the same one
//! (hosts that disagree would split the fleet). A rollout that was interrupted half-way counts
//! as done on every host, so the hosts it reached and those it did not agree again: `revert 1`
//! after a deploy that died after its canary brings every host back to the release before it.
//! `revert` with no N goes instead to the newest release every host holds, other than what
//! they serve, or fails on every host saying what each one lacks.
//! Then every host switches at once and its agent runs the target's apps; a host whose switch
//! or apps fail goes back to what it served, and so do the hosts that succeeded — each one's
//! agent running that release again: a revert moves every host or none.

use std::collections::BTreeMap;

use super::RevertTo;
use super::{Action, Busy, Conclusion, Entry, HostId, Phase, Plan, ReleaseVars, Rollout, Undo};
use crate::deploy::common_release::newest_common;
use crate::deploy::error::HostError;
use crate::deploy::history::{self, Action as RecordAction, Outcome, Record};
use crate::deploy::host_state::HostState;
use crate::deploy::report::Status;
use crate::deploy::rollout_record::RolloutRecord;

/// What the hosts' states say about a revert of `steps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every host goes to this release.
    Target(String),
    /// These hosts cannot revert (status and why); the others wait.
    Problems(Vec<(HostId, Status, String)>),
}

/// The revert's target, or why there is none. `states` holds every host's state (or why it
/// could not be read), with its label.
pub fn verdict(
    states: &[(HostId, &str, Result<&HostState, &HostError>)],
    steps: usize,
    env: &str,
    keep_releases: usize,
) -> Verdict {
    let mut targets: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (h, label, state) in states {
        let state = match state {
            Err(e) => {
                problems.push((*h, e.status(), e.to_string()));
                continue;
            }
            Ok(state) => state,
        };
        if !state.setup {
            problems.push((
                *h,
                Status::Failed,
                format!("not set up: run `pmfleet deploy {env} setup` first"),
            ));
            continue;
        }
        match state.revert_target(steps) {
            None => problems.push((
                *h,
                Status::Failed,
                format!(
                    "cannot revert {steps}: this host has only {} deploy(s) to go back through",
                    state.line().len().saturating_sub(1)
                ),
            )),
            Some(target) if !state.releases.contains(&target) => problems.push((
                *h,
                Status::Failed,
                format!(
                    "release {target} is no longer on this host (pruned: keep_releases is {keep_releases})"
                ),
            )),
            Some(target) => targets.entry(target).or_default().push(label),
        }
    }
    if problems.is_empty() && targets.len() > 1 {
        let detail: Vec<String> = targets
            .iter()
            .map(|(target, hosts)| format!("{target} on {}", hosts.join(", ")))
            .collect();
        let message = format!(
            "hosts disagree on the release to revert to ({}); revert would split the fleet",
            detail.join("; ")
        );
        problems = states
            .iter()
            .map(|(h, _, _)| (*h, Status::Failed, message.clone()))
            .collect();
    }
    match targets.into_keys().next() {
        Some(target) if problems.is_empty() => Verdict::Target(target),
        _ => Verdict::Problems(problems),
    }
}

/// The target of `revert` with no N: the newest release every host holds (see
/// [`newest_common`]); when there is none, every host fails with what each one lacks.
pub fn verdict_newest(
    states: &[(HostId, &str, Result<&HostState, &HostError>)],
    env: &str,
) -> Verdict {
    let mut problems = Vec::new();
    let mut readable = Vec::new();
    for (h, label, state) in states {
        match state {
            Err(e) => problems.push((*h, e.status(), e.to_string())),
            Ok(state) if !state.setup => problems.push((
                *h,
                Status::Failed,
                format!("not set up: run `pmfleet deploy {env} setup` first"),
            )),
            Ok(state) => readable.push((*label, *state)),
        }
    }
    if !problems.is_empty() || states.is_empty() {
        return Verdict::Problems(problems);
    }
    match newest_common(&readable) {
        Ok(target) => Verdict::Target(target),
        Err(e) => Verdict::Problems(
            states
                .iter()
                .map(|(h, _, _)| (*h, Status::Failed, e.to_string()))
                .collect(),
        ),
    }
}

/// `state`'s history as if `interrupted` had finished on that host too: a deploy that did not
/// switch it is added, a revert that did not switch it is added. So the next revert counts
/// from the same place on every host.
pub fn as_if_finished(state: &HostState, interrupted: &RolloutRecord) -> HostState {
    let mut state = state.clone();
    if state.current.as_deref() == Some(interrupted.release.as_str()) {
        return state;
    }
    state.history.push(Record {
        id: interrupted.id.clone(),
        action: if interrupted.action == "revert" {
            RecordAction::Revert
        } else {
            RecordAction::Deploy
        },
        release: interrupted.release.clone(),
        previous: state.current.clone(),
        sha: String::new(),
        git_ref: String::new(),
        who: interrupted.who.clone(),
        when: interrupted.started.clone(),
        outcome: Outcome::Success,
        message: Some("interrupted".into()),
    });
    state
}

impl Rollout {
    fn revert_to(&self) -> RevertTo {
        match self.cfg.plan {
            Plan::Revert { to } => to,
            Plan::Deploy { .. } => RevertTo::Steps(0),
        }
    }

    pub(super) fn state_answered(
        &mut self,
        h: HostId,
        result: Result<HostState, HostError>,
        out: &mut Vec<Action>,
    ) {
        if self.phase != Phase::Reading || !self.take_busy(h, Busy::Reading) {
            return;
        }
        match result {
            Ok(state) => {
                let host = &mut self.hosts[h];
                host.previous = state.current.clone();
                host.current = state.current.clone();
                host.last_rollout = state.interrupted().cloned();
                host.state = Some(state);
            }
            Err(HostError::LockLost) => {
                self.lock_lost(h, out);
                return;
            }
            Err(e) => self.hosts[h].unread = Some(e),
        }
        if self.any_busy() {
            return;
        }
        self.notice_interrupted(out);
        // The latest rollout that never finished counts as done everywhere.
        let interrupted = self
            .hosts
            .iter()
            .filter_map(|host| host.last_rollout.as_ref())
            .max_by(|a, b| a.started.cmp(&b.started))
            .cloned();
        let connected = self.connected();
        let effective: Vec<(HostId, Option<HostState>)> = connected
            .iter()
            .map(|h| {
                let state = self.hosts[*h].state.as_ref().map(|s| match &interrupted {
                    Some(r) => as_if_finished(s, r),
                    None => s.clone(),
                });
                (*h, state)
            })
            .collect();
        let states: Vec<(HostId, &str, Result<&HostState, &HostError>)> = effective
            .iter()
            .filter_map(|(h, state)| {
                let state = match (state, &self.hosts[*h].unread) {
                    (Some(state), _) => Ok(state),
                    (None, Some(e)) => Err(e),
                    (None, None) => return None,
                };
                Some((*h, self.cfg.labels[*h].as_str(), state))
            })
            .collect();
        let verdict = match self.revert_to() {
            RevertTo::Steps(steps) => {
                verdict(&states, steps, &self.cfg.env, self.cfg.keep_releases)
            }
            RevertTo::NewestCommon => verdict_newest(&states, &self.cfg.env),
        };
        match verdict {
            Verdict::Problems(problems) => {
                let bad: Vec<HostId> = problems.iter().map(|(h, _, _)| *h).collect();
                for (h, status, message) in problems {
                    self.conclude_bare(h, status, message, out);
                }
                for h in connected.into_iter().filter(|h| !bad.contains(h)) {
                    self.conclude_bare(
                        h,
                        Status::Aborted,
                        "not reverted: another host cannot revert",
                        out,
                    );
                }
                self.finish(out);
            }
            Verdict::Target(target) => {
                out.push(Action::Info(format!(
                    "reverting {} to release {target}",
                    self.cfg.env
                )));
                self.target = Some(target.clone());
                self.begin(connected, target, out);
            }
        }
    }

    /// The rollout record is on every host: every host switches to the target.
    pub(super) fn begun_revert(&mut self, out: &mut Vec<Action>) {
        let hosts: Vec<HostId> = self
            .connected()
            .into_iter()
            .filter(|h| !self.hosts[*h].concluded)
            .collect();
        if hosts.len() < self.connected().len() {
            // A host could not begin: none moves.
            for h in hosts {
                self.conclude_bare(
                    h,
                    Status::Aborted,
                    "not reverted: another host cannot revert",
                    out,
                );
            }
            self.finish(out);
            return;
        }
        self.phase = Phase::Switching(0);
        let target = self.target();
        for h in hosts {
            self.set_busy(h, Busy::Switching);
            let entry = self.revert_entry(h, Outcome::Success, None);
            out.push(Action::Switch(h, target.clone(), entry));
        }
    }

    fn target(&self) -> String {
        self.target.clone().unwrap_or_default()
    }

    /// What `h`'s history says about `release`: the variables its apps get.
    fn vars_of(&self, h: HostId, release: &str) -> ReleaseVars {
        let record = self.hosts[h]
            .state
            .as_ref()
            .and_then(|s| history::latest_for(&s.history, release));
        ReleaseVars {
            sha: record.map(|r| r.sha.clone()).filter(|s| !s.is_empty()),
            git_ref: record.map(|r| r.git_ref.clone()).filter(|s| !s.is_empty()),
            release: release.to_string(),
        }
    }

    fn target_vars(&self, h: HostId) -> ReleaseVars {
        self.vars_of(h, &self.target())
    }

    fn revert_entry(&self, h: HostId, outcome: Outcome, message: Option<String>) -> Entry {
        let vars = self.target_vars(h);
        Entry {
            action: RecordAction::Revert,
            release: vars.release,
            previous: self.hosts[h].previous.clone(),
            sha: vars.sha.unwrap_or_default(),
            git_ref: vars.git_ref.unwrap_or_default(),
            outcome,
            message,
        }
    }

    /// The record of `h` going back to `previous`, written by the switch back itself.
    fn revert_back_entry(&self, h: HostId, previous: &str, why: &str) -> Entry {
        let vars = self.vars_of(h, previous);
        Entry {
            action: RecordAction::Revert,
            release: previous.to_string(),
            previous: Some(self.target()),
            sha: vars.sha.unwrap_or_default(),
            git_ref: vars.git_ref.unwrap_or_default(),
            outcome: Outcome::Success,
            message: Some(why.to_string()),
        }
    }

    pub(super) fn revert_switched(&mut self, h: HostId, out: &mut Vec<Action>) {
        if self.cfg.agents {
            self.set_busy(h, Busy::Applying);
            out.push(Action::Apply {
                host: h,
                release: self.target(),
                vars: self.target_vars(h),
            });
        } else {
            self.hosts[h].switched = true;
            self.revert_check(out);
        }
    }

    pub(super) fn revert_switch_failed(&mut self, h: HostId, e: HostError, out: &mut Vec<Action>) {
        if matches!(e, HostError::LockLost) {
            self.lock_lost(h, out);
        }
        self.hosts[h].failed = true;
        self.revert_failed_here(h, e.status(), e.to_string(), out);
    }

    pub(super) fn revert_applied(&mut self, h: HostId, done: String, out: &mut Vec<Action>) {
        out.push(Action::Note(h, "reload apps", done));
        self.hosts[h].switched = true;
        self.revert_check(out);
    }

    pub(super) fn revert_apply_failed(&mut self, h: HostId, e: HostError, out: &mut Vec<Action>) {
        self.hosts[h].failed = true;
        match self.hosts[h].previous.clone() {
            // The apps stay on what they ran; so does `current`.
            Some(previous) => {
                self.hosts[h].undo = Some(Undo::RevertFailed(e.to_string()));
                self.set_busy(h, Busy::SwitchingBack);
                let entry = self.revert_back_entry(h, &previous, &format!("switched back: {e}"));
                out.push(Action::SwitchBack(h, previous, entry));
            }
            None => self.revert_failed_here(h, Status::Failed, e.to_string(), out),
        }
    }

    /// `h` could not revert: record and report it.
    fn revert_failed_here(
        &mut self,
        h: HostId,
        status: Status,
        error: String,
        out: &mut Vec<Action>,
    ) {
        let c = Conclusion {
            host: h,
            status,
            message: format!("switch: {error}"),
            release: Some(self.target_vars(h)),
            discard: None,
            records: vec![self.revert_entry(h, Outcome::Failed, Some(error))],
            prune: false,
        };
        self.conclude(c, out);
        self.revert_check(out);
    }

    pub(super) fn revert_switched_back(&mut self, h: HostId, out: &mut Vec<Action>) {
        match (self.cfg.agents, self.hosts[h].previous.clone()) {
            // Back on what it served: its agent runs that again (with its own variables).
            (true, Some(previous)) => {
                self.set_busy(h, Busy::ApplyingBack);
                let vars = self.vars_of(h, &previous);
                out.push(Action::ApplyBack {
                    host: h,
                    release: previous,
                    vars,
                });
            }
            _ => self.revert_undone(h, None, out),
        }
    }

    pub(super) fn revert_switch_back_failed(
        &mut self,
        h: HostId,
        e: HostError,
        out: &mut Vec<Action>,
    ) {
        if matches!(e, HostError::LockLost) {
            self.lock_lost(h, out);
        }
        self.revert_undone(h, Some(e), out);
    }

    pub(super) fn revert_applied_back(
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
        self.revert_undone(h, None, out);
    }

    /// `h` went back (or could not: `failed` says why): conclude it.
    fn revert_undone(&mut self, h: HostId, failed: Option<HostError>, out: &mut Vec<Action>) {
        let previous = self.hosts[h].previous.clone().unwrap_or_default();
        match self.hosts[h].undo.clone() {
            Some(Undo::RevertFailed(error)) => {
                let error = match failed {
                    None => error,
                    Some(e) => format!("{error}; could not switch back to {previous}: {e}"),
                };
                self.revert_failed_here(h, Status::Failed, error, out)
            }
            Some(Undo::OthersFailed(_)) => {
                let (status, message) = match failed {
                    None => (
                        Status::RolledBack,
                        format!("switched back to {previous}: another host failed to revert"),
                    ),
                    Some(e) => (
                        Status::Failed,
                        format!(
                            "serving {} still: could not switch back to {previous}: {e}",
                            self.target()
                        ),
                    ),
                };
                let c = Conclusion {
                    host: h,
                    status,
                    message,
                    release: Some(self.target_vars(h)),
                    discard: None,
                    records: Vec::new(),
                    prune: false,
                };
                self.conclude(c, out);
                self.revert_check(out);
            }
            _ => self.revert_check(out),
        }
    }

    /// Once every host answered: done when none failed; otherwise the hosts that switched go
    /// back to what they served.
    pub(super) fn revert_check(&mut self, out: &mut Vec<Action>) {
        if self.any_busy() {
            return;
        }
        match self.phase {
            Phase::Switching(_) => {}
            Phase::Undoing => {
                self.finish(out);
                return;
            }
            _ => return,
        }
        let hosts = self.connected();
        let any_failed = hosts.iter().any(|h| self.hosts[*h].failed);
        if any_failed {
            self.phase = Phase::Undoing;
        }
        let target = self.target();
        for h in hosts {
            if !self.hosts[h].switched || self.hosts[h].concluded {
                continue;
            }
            match (any_failed, self.hosts[h].previous.clone()) {
                (true, Some(previous)) => {
                    self.hosts[h].undo = Some(Undo::OthersFailed(previous.clone()));
                    self.set_busy(h, Busy::SwitchingBack);
                    let entry = self.revert_back_entry(
                        h,
                        &previous,
                        "switched back: another host failed to revert",
                    );
                    out.push(Action::SwitchBack(h, previous, entry));
                }
                _ => {
                    let c = Conclusion {
                        host: h,
                        status: Status::Ok,
                        message: format!("reverted to {target}"),
                        release: Some(self.target_vars(h)),
                        discard: None,
                        records: Vec::new(),
                        prune: false,
                    };
                    self.conclude(c, out);
                }
            }
        }
        if !self.any_busy() {
            self.finish(out);
        }
    }
}
