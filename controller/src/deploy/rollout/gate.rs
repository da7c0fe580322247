//! Who may start: the hosts that could not be connected to (a deploy goes on within
//! `max_fail`, a revert needs every host), then the lock on every host or on none. Locks are
//! taken one host at a time in one fixed order (by host name), stopping at the first refusal,
//! so of two runs started at the same instant exactly one gets every lock; a refused lock
//! gives back the ones taken, and is waited for with `--lock-wait` when another run holds it.
//! Then the rollout record is written on every host, and a rollout that was interrupted is
//! named. A run whose lock someone breaks stops: before the switch, nothing switches.

use super::{Action, Begun, Busy, HostId, Lock, Phase, Plan, Rollout, Stop};
use crate::deploy::error::HostError;
use crate::deploy::lock::Refusal;
use crate::deploy::report::Status;
use crate::deploy::rollout_record::interrupted_notice;

impl Rollout {
    pub(super) fn connect_answered(
        &mut self,
        h: HostId,
        error: Option<HostError>,
        out: &mut Vec<Action>,
    ) {
        if self.phase != Phase::Connecting {
            return;
        }
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if host.connected.is_some() {
            return;
        }
        host.connected = Some(error.is_none());
        if let Some(e) = error {
            self.failed += 1;
            self.conclude_bare(h, e.status(), e.to_string(), out);
        }
        if self.hosts.iter().any(|host| host.connected.is_none()) {
            return;
        }
        let connected = self.connected();
        let missing = self.hosts.len() - connected.len();
        let (stop, why) = match &self.cfg.plan {
            Plan::Deploy { max_fail, .. } => (
                missing > *max_fail || connected.is_empty(),
                "not deployed: another host could not be reached",
            ),
            Plan::Revert { .. } => (
                missing > 0 || connected.is_empty(),
                "not reverted: every host must revert together, and some could not be reached",
            ),
        };
        if stop {
            for h in connected {
                self.conclude_bare(h, Status::Aborted, why, out);
            }
            self.finish(out);
        } else {
            self.take_locks(out);
        }
    }

    /// The order every run takes the locks in: by host name.
    fn lock_order(&self) -> Vec<HostId> {
        let mut order = self.connected();
        order.sort_by(|a, b| self.cfg.labels[*a].cmp(&self.cfg.labels[*b]));
        order
    }

    fn take_locks(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Locking;
        self.to_lock = self.lock_order();
        self.to_lock.reverse();
        self.take_next_lock(out);
    }

    /// Asks the next host for its lock; true when there was one to ask.
    fn take_next_lock(&mut self, out: &mut Vec<Action>) -> bool {
        match self.to_lock.pop() {
            Some(h) => {
                self.hosts[h].lock = Some(Lock::Asked);
                out.push(Action::TakeLock(vec![h]));
                true
            }
            None => false,
        }
    }

    pub(super) fn lock_answered(
        &mut self,
        h: HostId,
        refusal: Option<Refusal>,
        out: &mut Vec<Action>,
    ) {
        if self.phase != Phase::Locking {
            return;
        }
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if host.lock != Some(Lock::Asked) {
            return;
        }
        let Some(refusal) = refusal else {
            host.lock = Some(Lock::Taken);
            if !self.take_next_lock(out) {
                self.locked(out);
            }
            return;
        };
        host.lock = Some(Lock::Refused {
            message: refusal.to_string(),
            status: refusal.status(),
            held: refusal.is_held(),
        });
        // Every lock or none: give back the ones taken; the hosts after this one were not asked.
        self.to_lock.clear();
        let taken: Vec<HostId> = self
            .connected()
            .into_iter()
            .filter(|h| self.hosts[*h].lock == Some(Lock::Taken))
            .collect();
        for h in &taken {
            self.hosts[*h].lock = None;
        }
        if !taken.is_empty() {
            out.push(Action::ReleaseLock(taken));
        }
        if self.cfg.lock_wait && refusal.is_held() && !self.interrupted {
            self.phase = Phase::WaitingForLock;
            out.push(Action::WaitForLock);
        } else {
            self.lock_refused(out);
        }
    }

    /// Every lock is taken: hold them, and begin.
    fn locked(&mut self, out: &mut Vec<Action>) {
        let connected = self.connected();
        out.push(Action::HoldLock(connected.clone()));
        if self.interrupted {
            self.stop_before_switch(Stop::Interrupted, out);
            return;
        }
        if self.is_deploy() {
            self.begin(connected, self.release().release, out);
        } else {
            for h in &connected {
                self.hosts[*h].busy = Some(Busy::Reading);
            }
            self.phase = Phase::Reading;
            out.push(Action::ReadState(connected));
        }
    }

    /// Writes the rollout record on `hosts`.
    pub(super) fn begin(&mut self, hosts: Vec<HostId>, release: String, out: &mut Vec<Action>) {
        self.phase = Phase::Beginning;
        for h in &hosts {
            // Its record is finished at the end, whether or not the answer comes back.
            self.hosts[*h].begun = true;
            self.hosts[*h].busy = Some(Busy::Beginning);
        }
        out.push(Action::Begin(hosts, release));
    }

    pub(super) fn begin_answered(
        &mut self,
        h: HostId,
        result: Result<Begun, HostError>,
        out: &mut Vec<Action>,
    ) {
        if self.phase != Phase::Beginning || !self.take_busy(h, Busy::Beginning) {
            return;
        }
        match result {
            Ok(begun) => {
                let deploy = self.is_deploy();
                let host = &mut self.hosts[h];
                host.serving = begun.serving.clone();
                if deploy {
                    host.previous = begun.current.clone();
                }
                host.last_rollout = begun.last.filter(|r| r.is_running());
                host.current = begun.current;
            }
            Err(HostError::LockLost) => {
                self.lock_lost(h, out);
                return;
            }
            Err(e) => {
                self.failed += 1;
                let message = format!("could not write the rollout record: {e}");
                if self.is_deploy() {
                    let c = self.deploy_conclusion_of(h, e.status(), message);
                    self.conclude(c, out);
                } else {
                    self.hosts[h].failed = true;
                    self.conclude_bare(h, e.status(), message, out);
                }
            }
        }
        if self.any_busy() {
            return;
        }
        if self.is_deploy() {
            self.notice_interrupted(out);
            self.begun_deploy(out);
        } else {
            self.begun_revert(out);
        }
    }

    /// Names every rollout that began and never finished, and what each host serves now.
    pub(super) fn notice_interrupted(&self, out: &mut Vec<Action>) {
        let records: Vec<_> = self
            .hosts
            .iter()
            .filter_map(|h| h.last_rollout.as_ref())
            .collect();
        if records.is_empty() {
            return;
        }
        let hosts: Vec<(&str, Option<&str>)> = self
            .connected()
            .into_iter()
            .map(|h| {
                (
                    self.cfg.labels[h].as_str(),
                    self.hosts[h].current.as_deref(),
                )
            })
            .collect();
        for notice in interrupted_notice(&records, &hosts) {
            out.push(Action::Info(notice));
        }
    }

    pub(super) fn lock_retry(&mut self, out: &mut Vec<Action>) {
        if self.phase == Phase::WaitingForLock {
            self.take_locks(out);
        }
    }

    pub(super) fn lock_wait_over(&mut self, out: &mut Vec<Action>) {
        if self.phase == Phase::WaitingForLock {
            self.lock_refused(out);
        }
    }

    /// The locks were refused: each refusing host says why, the others did not start.
    pub(super) fn lock_refused(&mut self, out: &mut Vec<Action>) {
        let why = if self.is_deploy() {
            "not deployed: another host is locked or not set up"
        } else {
            "not reverted: another host is locked or not set up"
        };
        for h in self.connected() {
            match self.hosts[h].lock.clone() {
                Some(Lock::Refused {
                    message, status, ..
                }) => self.conclude_bare(h, status, message, out),
                _ => self.conclude_bare(h, Status::Aborted, why, out),
            }
        }
        self.finish(out);
    }

    /// Someone broke this run's lock on `h`: before the switch, the rollout stops; once it
    /// began switching, it stops after the batch in flight (see `deploy` and `revert`).
    pub(super) fn lock_lost(&mut self, h: HostId, out: &mut Vec<Action>) {
        match self.hosts.get(h).and_then(|host| host.lock.as_ref()) {
            Some(Lock::Taken) => {}
            _ => return,
        }
        self.hosts[h].lock = Some(Lock::Lost);
        self.lost.push(h);
        out.push(Action::Note(
            h,
            "lock",
            "the deploy lock was broken by someone else: this run stops".into(),
        ));
        match self.phase {
            Phase::Beginning | Phase::Preparing | Phase::Reading | Phase::Releasing => {
                self.stop_before_switch(Stop::LockLost(h), out)
            }
            Phase::Switching(_) if !self.is_deploy() => {
                self.hosts[h].failed = true;
                self.revert_check(out);
            }
            _ => {}
        }
    }
}
