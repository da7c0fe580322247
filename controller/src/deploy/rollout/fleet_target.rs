//! Where `revert` with no N would take the fleet once a deploy is done, worked out once per
//! run from every host's state, before any host prunes: each host prunes alone, so without it
//! hosts whose release lines differ (one missed a deploy) could each keep a different release
//! and leave none in common.

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::RolloutHost;
use crate::deploy::common_release::newest_common;
use crate::deploy::host_state::HostState;

/// The fleet's revert target, shared by the run's prunes: `Ok(None)` when the hosts hold no
/// release in common (nothing to protect), `Err` why it could not be worked out (then no host
/// prunes).
pub(super) type Shared = Arc<OnceCell<Result<Option<String>, String>>>;

/// Reads every host's state and picks the release `revert` with no N would go to.
pub(super) async fn fleet_target<H: RolloutHost>(
    hosts: &[(String, Arc<H>)],
) -> Result<Option<String>, String> {
    let reads = hosts.iter().map(|(_, host)| host.read_state());
    let results = futures_util::future::join_all(reads).await;
    let mut states: Vec<(&str, HostState)> = Vec::new();
    for ((label, _), result) in hosts.iter().zip(results) {
        match result {
            Ok(state) => states.push((label.as_str(), state)),
            Err(e) => {
                return Err(format!(
                    "could not read {label}'s releases to keep the one `revert` goes to ({e})"
                ));
            }
        }
    }
    let states: Vec<(&str, &HostState)> = states.iter().map(|(l, s)| (*l, s)).collect();
    Ok(newest_common(&states).ok())
}
