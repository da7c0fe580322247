//! The watch window after each batch (`watch_period`, Nomad's `min_healthy_time`): once a
//! host's apps run the release, its agent keeps probing every new instance and watching for
//! crashes, restarts and memory restarts for the window; the next batch goes only when every
//! host of this one stayed healthy. A host whose window fails goes back to the release it
//! served, and counts as failed; once failures pass `max_fail` the rollout stops at once —
//! the other windows end, the hosts not reached never switch, and every host that switched in
//! this rollout, the canary and earlier batches too, goes back to the release it served.

use super::{Action, Busy, HostId, Rollout, Undo};
use crate::deploy::error::HostError;

impl Rollout {
    /// `h`'s apps run the release: its agent watches them.
    pub(super) fn watch_host(&mut self, h: HostId, out: &mut Vec<Action>) {
        self.set_busy(h, Busy::Watching);
        out.push(Action::Watch(h, self.release().release));
    }

    pub(super) fn watch_answered(
        &mut self,
        h: HostId,
        result: Result<String, HostError>,
        out: &mut Vec<Action>,
    ) {
        if !self.take_busy(h, Busy::Watching) {
            return;
        }
        let e = match result {
            Ok(said) => {
                out.push(Action::Note(h, "watch", said));
                self.after_host(out);
                return;
            }
            Err(e) => e,
        };
        self.failed += 1;
        self.back_or_fail(h, &e, Undo::Unhealthy, out);
        if self.failed > self.max_fail() {
            self.stop_switching(out);
        } else {
            self.after_host(out);
        }
    }
}
