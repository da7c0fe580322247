//! Who may start: the hosts that could not be connected to (a deploy goes on within
//! `max_fail`, a revert needs every host), then the lock on every host or on none — a refused
//! lock gives back the ones taken, and is waited for with `--lock-wait` when another run holds
//! it.

use super::{Action, Busy, HostId, Lock, Phase, Plan, Rollout};
use crate::deploy::error::HostError;
use crate::deploy::lock::Refusal;
use crate::deploy::report::Status;

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

    fn take_locks(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Locking;
        let connected = self.connected();
        for h in &connected {
            self.hosts[*h].lock = Some(Lock::Asked);
        }
        out.push(Action::TakeLock(connected));
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
        host.lock = Some(match refusal {
            None => Lock::Taken,
            Some(r) => Lock::Refused {
                message: r.to_string(),
                status: r.status(),
                held: r.is_held(),
            },
        });
        let connected = self.connected();
        if connected
            .iter()
            .any(|h| self.hosts[*h].lock == Some(Lock::Asked))
        {
            return;
        }
        let refused: Vec<HostId> = connected
            .iter()
            .copied()
            .filter(|h| matches!(self.hosts[*h].lock, Some(Lock::Refused { .. })))
            .collect();
        if refused.is_empty() {
            out.push(Action::HoldLock(connected.clone()));
            if self.interrupted {
                self.stop_before_switch(out);
                return;
            }
            for h in &connected {
                self.hosts[*h].busy = Some(if self.is_deploy() {
                    Busy::Preparing
                } else {
                    Busy::Reading
                });
            }
            if self.is_deploy() {
                self.phase = Phase::Preparing;
                let release = self.release().release;
                out.push(Action::Prepare(connected, release));
            } else {
                self.phase = Phase::Reading;
                out.push(Action::ReadState(connected));
            }
            return;
        }
        // Every lock or none: give back the ones taken.
        let taken: Vec<HostId> = connected
            .iter()
            .copied()
            .filter(|h| self.hosts[*h].lock == Some(Lock::Taken))
            .collect();
        for h in &taken {
            self.hosts[*h].lock = None;
        }
        if !taken.is_empty() {
            out.push(Action::ReleaseLock(taken));
        }
        let only_held = refused
            .iter()
            .all(|h| matches!(self.hosts[*h].lock, Some(Lock::Refused { held: true, .. })));
        if self.cfg.lock_wait && only_held && !self.interrupted {
            self.phase = Phase::WaitingForLock;
            out.push(Action::WaitForLock);
        } else {
            self.lock_refused(out);
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
}
