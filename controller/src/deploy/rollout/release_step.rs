//! The `release` step (Fly's `release_command`, Capistrano's `primary`): the deploy's
//! migrations, run exactly once, on one host — the one marked `primary: true`, else the first
//! host of the environment — after every host prepared the release and before any host
//! switches, with the lock held on every host. When it fails nothing switches and the new
//! release is removed everywhere; a primary that did not prepare the release stops the
//! rollout the same way (the step must run where it was asked to).

use super::{Action, Busy, HostId, Phase, Rollout};
use crate::deploy::error::{HostError, StepFailure};
use crate::deploy::history::Outcome;
use crate::deploy::report::Status;

impl Rollout {
    /// Every host prepared (within `max_fail`): run the step on its host, or stop.
    pub(super) fn run_release_step(&mut self, ready: &[HostId], out: &mut Vec<Action>) {
        let host = match self.rails().primary {
            Some(p) if ready.contains(&p) => p,
            Some(p) => {
                let why = format!(
                    "not switched: the release step runs on {} (primary), which did not prepare the release; this release was removed",
                    self.cfg.labels.get(p).map_or("?", String::as_str)
                );
                self.abort_all(ready, &why, out);
                return;
            }
            None => match ready.first() {
                Some(first) => *first,
                None => {
                    self.start_batch(0, out);
                    return;
                }
            },
        };
        self.phase = Phase::Releasing;
        self.set_busy(host, Busy::Releasing);
        out.push(Action::RunRelease(host, self.release().release));
    }

    pub(super) fn release_answered(
        &mut self,
        h: HostId,
        result: Result<String, StepFailure>,
        out: &mut Vec<Action>,
    ) {
        if self.phase != Phase::Releasing || !self.take_busy(h, Busy::Releasing) {
            return;
        }
        match result {
            Ok(said) => {
                out.push(Action::Note(h, "release", said));
                self.start_batch(0, out);
            }
            Err(StepFailure {
                error: HostError::LockLost,
                ..
            }) => self.lock_lost(h, out),
            Err(failure) => {
                self.failed += 1;
                let message = format!("{failure}: nothing switched, this release was removed");
                let c = self.deploy_conclusion(
                    h,
                    failure.error.status(),
                    message.clone(),
                    true,
                    Outcome::Failed,
                    &message,
                );
                self.conclude(c, out);
                let why = format!(
                    "not switched: the release step failed on {}; this release was removed",
                    self.cfg.labels.get(h).map_or("?", String::as_str)
                );
                let ready: Vec<HostId> = self.batches.iter().flatten().copied().collect();
                self.abort_all(&ready, &why, out);
            }
        }
    }

    /// Nothing switches: every host of `ready` not concluded yet is aborted, its new release
    /// removed; the run ends.
    fn abort_all(&mut self, ready: &[HostId], why: &str, out: &mut Vec<Action>) {
        for h in ready {
            let c = self.deploy_conclusion(
                *h,
                Status::Aborted,
                why.to_string(),
                true,
                Outcome::Aborted,
                "the release step did not run or failed",
            );
            self.conclude(c, out);
        }
        self.finish(out);
    }
}
