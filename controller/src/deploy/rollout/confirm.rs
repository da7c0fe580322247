//! The rollout confirmed as a whole. With agents, every switch leaves the host a pending
//! record (`.pmfleet/pending`, see [`pmfleet_shared::protocol::Pending`]): until the run
//! confirms it, the host's agent goes back to the release it served by itself once the run
//! falls silent (no heartbeat on its lock for [`pmfleet_shared::protocol::QUIET_SECS`]).
//! Once every batch switched and every watch window passed, the run confirms every switched
//! host; a host that cannot be confirmed — it already went back by itself, or it does not
//! answer and will go back — takes the rest of the fleet with it: every confirmed host goes
//! back to the release it served, so the fleet never stays split.

use super::{Action, Busy, Conclusion, HostId, Phase, Rollout};
use crate::deploy::report::Status;

impl Rollout {
    /// Every batch switched: ask every switched host to keep the release.
    pub(super) fn confirm_all(&mut self, out: &mut Vec<Action>) {
        let hosts = self.switched_open();
        if hosts.is_empty() {
            self.conclude_served(out);
            return;
        }
        self.phase = Phase::Confirming;
        for h in &hosts {
            self.set_busy(*h, Busy::Confirming);
        }
        out.push(Action::Confirm(hosts));
    }

    /// `h` answered the confirmation: kept the release (`None`), or did not (how it is
    /// reported, and why).
    pub(super) fn confirm_answered(
        &mut self,
        h: HostId,
        failed: Option<(Status, String)>,
        out: &mut Vec<Action>,
    ) {
        if self.phase != Phase::Confirming || !self.take_busy(h, Busy::Confirming) {
            return;
        }
        if let Some((status, why)) = failed {
            self.failed += 1;
            self.hosts[h].unconfirmed = true;
            // What happened on the host it recorded itself (the agent's switch back), or
            // will (it goes back once this run is silent).
            let c = Conclusion {
                records: Vec::new(),
                ..self.deploy_conclusion(h, status, why, false, super::Outcome::Failed, "")
            };
            self.conclude(c, out);
        }
        if self.any_busy() {
            return;
        }
        let unconfirmed: Vec<HostId> = (0..self.hosts.len())
            .filter(|h| self.hosts[*h].unconfirmed)
            .collect();
        if unconfirmed.is_empty() {
            self.conclude_served(out);
            return;
        }
        // No split fleet: the confirmed hosts follow the ones that go back.
        self.phase = Phase::Undoing;
        let names: Vec<&str> = unconfirmed
            .iter()
            .map(|h| self.cfg.labels.get(*h).map_or("?", String::as_str))
            .collect();
        let why = format!(
            "switched back: {} did not keep the release, so no host does",
            names.join(", ")
        );
        let confirmed = self.switched_open();
        for h in confirmed {
            self.send_back(h, why.clone(), out);
        }
        self.after_host(out);
    }

    /// The hosts of every batch that switched and are not concluded yet.
    fn switched_open(&self) -> Vec<HostId> {
        self.batches
            .iter()
            .flatten()
            .copied()
            .filter(|h| self.hosts[*h].switched && !self.hosts[*h].concluded)
            .collect()
    }
}
