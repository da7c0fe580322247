//! The revert's rules once every lock is taken: every host must be set up, have the release
//! `N` deploys back along its history, and still hold it; every host must name the same one
//! (hosts that disagree would split the fleet). Then every host switches at once and its
//! agent runs the target's apps; a host whose switch or apps fail goes back to what it served,
//! and so do the hosts that succeeded: a revert moves every host or none.

use std::collections::BTreeMap;

use super::{Action, Busy, Conclusion, Entry, HostId, Phase, Plan, ReleaseVars, Rollout, Undo};
use crate::deploy::error::HostError;
use crate::deploy::history::{self, Action as RecordAction, Outcome};
use crate::deploy::host_state::HostState;
use crate::deploy::report::Status;

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

impl Rollout {
    fn steps(&self) -> usize {
        match self.cfg.plan {
            Plan::Revert { steps } => steps,
            Plan::Deploy { .. } => 0,
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
                self.hosts[h].previous = state.current.clone();
                self.hosts[h].state = Some(state);
            }
            Err(e) => self.hosts[h].unread = Some(e),
        }
        if self.any_busy() {
            return;
        }
        let connected = self.connected();
        let states: Vec<(HostId, &str, Result<&HostState, &HostError>)> = connected
            .iter()
            .filter_map(|h| {
                let host = &self.hosts[*h];
                let state = match (&host.state, &host.unread) {
                    (Some(state), _) => Ok(state),
                    (None, Some(e)) => Err(e),
                    (None, None) => return None,
                };
                Some((*h, self.cfg.labels[*h].as_str(), state))
            })
            .collect();
        let verdict = verdict(&states, self.steps(), &self.cfg.env, self.cfg.keep_releases);
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
                self.phase = Phase::Switching(0);
                for h in connected {
                    self.set_busy(h, Busy::Switching);
                    out.push(Action::Switch(h, target.clone()));
                }
                self.target = Some(target);
            }
        }
    }

    fn target(&self) -> String {
        self.target.clone().unwrap_or_default()
    }

    /// What `h`'s history says about the target: the variables its apps get.
    fn target_vars(&self, h: HostId) -> ReleaseVars {
        let target = self.target();
        let record = self.hosts[h]
            .state
            .as_ref()
            .and_then(|s| history::latest_for(&s.history, &target));
        ReleaseVars {
            sha: record.map(|r| r.sha.clone()).filter(|s| !s.is_empty()),
            git_ref: record.map(|r| r.git_ref.clone()),
            release: target,
        }
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
                out.push(Action::SwitchBack(h, previous));
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
        match self.hosts[h].undo.clone() {
            Some(Undo::RevertFailed(error)) => {
                match (self.cfg.agents, self.hosts[h].previous.clone()) {
                    (true, Some(previous)) => {
                        self.set_busy(h, Busy::ApplyingBack);
                        out.push(Action::ApplyBack {
                            host: h,
                            release: previous,
                            vars: self.target_vars(h),
                        });
                    }
                    _ => self.revert_failed_here(h, Status::Failed, error, out),
                }
            }
            Some(Undo::OthersFailed(previous)) => {
                let mut back = self.revert_entry(h, Outcome::Success, None);
                back.previous = Some(back.release.clone());
                back.release = previous.clone();
                back.sha = String::new();
                back.git_ref = String::new();
                back.message = Some("switched back: another host failed to revert".into());
                let c = Conclusion {
                    host: h,
                    status: Status::RolledBack,
                    message: format!("switched back to {previous}: another host failed to revert"),
                    release: Some(self.target_vars(h)),
                    discard: None,
                    records: vec![self.revert_entry(h, Outcome::Success, None), back],
                    prune: false,
                };
                self.conclude(c, out);
                self.revert_check(out);
            }
            _ => self.revert_check(out),
        }
    }

    pub(super) fn revert_switch_back_failed(
        &mut self,
        h: HostId,
        e: HostError,
        out: &mut Vec<Action>,
    ) {
        match self.hosts[h].undo.clone() {
            Some(Undo::RevertFailed(error)) => {
                self.revert_failed_here(h, Status::Failed, error, out)
            }
            Some(Undo::OthersFailed(previous)) => {
                let c = Conclusion {
                    host: h,
                    status: Status::RolledBack,
                    message: format!("could not switch back to {previous}: {e}"),
                    release: Some(self.target_vars(h)),
                    discard: None,
                    records: vec![self.revert_entry(h, Outcome::Success, None)],
                    prune: false,
                };
                self.conclude(c, out);
                self.revert_check(out);
            }
            _ => self.revert_check(out),
        }
    }

    pub(super) fn revert_applied_back(&mut self, h: HostId, out: &mut Vec<Action>) {
        match self.hosts[h].undo.clone() {
            Some(Undo::RevertFailed(error)) => {
                self.revert_failed_here(h, Status::Failed, error, out)
            }
            _ => self.revert_check(out),
        }
    }

    /// Once every host answered: done when none failed; otherwise the hosts that switched go
    /// back to what they served.
    fn revert_check(&mut self, out: &mut Vec<Action>) {
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
                    out.push(Action::SwitchBack(h, previous));
                }
                _ => {
                    let c = Conclusion {
                        host: h,
                        status: Status::Ok,
                        message: format!("reverted to {target}"),
                        release: Some(self.target_vars(h)),
                        discard: None,
                        records: vec![self.revert_entry(h, Outcome::Success, None)],
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
