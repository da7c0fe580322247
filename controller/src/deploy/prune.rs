//! Which old releases go after a deploy: the newest `keep_releases` stay, counted along the
//! release line of the history (the order they were switched to, reverts included), not by
//! their names, which come from the clocks of whichever controllers made them. The current
//! release, the one `revert 1` goes back to, the one `revert` with no N goes to (the newest
//! release on every host, which the driver works out from every host's state; see
//! [`super::common_release`]) and every release an app still runs from always stay; when the
//! agent cannot say which those are, nothing goes.

use super::host_state::HostState;

/// The complete releases to remove from a host in `state`, keeping `keep`, every release in
/// `in_use` and `fleet_target` (where `revert` with no N would take the fleet).
pub fn prune_plan(
    state: &HostState,
    keep: usize,
    in_use: &[String],
    fleet_target: Option<&str>,
) -> Vec<String> {
    let line = state.line();
    let mut protected: Vec<&str> = in_use.iter().map(String::as_str).collect();
    protected.extend(state.current.as_deref());
    protected.extend(fleet_target);
    if let Some(target) = line.len().checked_sub(2).and_then(|i| line.get(i)) {
        protected.push(target);
    }
    // Newest first: the release line from its end, then releases never switched to (failed
    // or rolled back), which are the first to go.
    let mut order: Vec<&str> = line
        .iter()
        .rev()
        .map(String::as_str)
        .filter(|r| state.releases.iter().any(|c| c == r))
        .collect();
    let mut others: Vec<&str> = state
        .releases
        .iter()
        .map(String::as_str)
        .filter(|r| !order.contains(r))
        .collect();
    others.sort_unstable_by(|a, b| b.cmp(a));
    order.extend(others);
    order
        .into_iter()
        .skip(keep.max(1))
        .filter(|r| !protected.contains(r))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::history::{Action, Record};

    fn state(deploys: &[&str], releases: &[&str], current: &str) -> HostState {
        HostState {
            setup: true,
            current: Some(current.into()),
            releases: releases.iter().map(|r| r.to_string()).collect(),
            history: deploys
                .iter()
                .map(|r| Record::of(Action::Deploy, r))
                .collect(),
            ..HostState::default()
        }
    }

    #[test]
    fn prune_keeps_the_revert_target_whatever_the_release_names() {
        // A controller whose clock ran ahead made `2099…` first; two deploys followed.
        let s = state(
            &[
                "20991231-000000-000",
                "20261201-000000-000",
                "20261202-000000-000",
            ],
            &[
                "20261201-000000-000",
                "20261202-000000-000",
                "20991231-000000-000",
            ],
            "20261202-000000-000",
        );
        assert_eq!(prune_plan(&s, 2, &[], None), ["20991231-000000-000"]);
    }

    #[test]
    fn prune_table() {
        let cases: Vec<(HostState, usize, Vec<String>, Vec<&str>)> = vec![
            (
                state(&["a", "b", "c", "d"], &["a", "b", "c", "d"], "d"),
                2,
                vec![],
                vec!["b", "a"],
            ),
            (
                state(&["a", "b", "c", "d"], &["a", "b", "c", "d"], "d"),
                9,
                vec![],
                vec![],
            ),
            // keep 1 still keeps what `revert 1` needs.
            (
                state(&["a", "b", "c"], &["a", "b", "c"], "c"),
                1,
                vec![],
                vec!["a"],
            ),
            // An app still running from `a` keeps it.
            (
                state(&["a", "b", "c", "d"], &["a", "b", "c", "d"], "d"),
                2,
                vec!["a".into()],
                vec!["b"],
            ),
            // A release never switched to goes first.
            (
                state(&["a", "c"], &["a", "b", "c"], "c"),
                2,
                vec![],
                vec!["b"],
            ),
            // After a revert to `b`, `c` and `d` left the line: they go before `a`.
            (
                HostState {
                    history: vec![
                        Record::of(Action::Deploy, "a"),
                        Record::of(Action::Deploy, "b"),
                        Record::of(Action::Deploy, "c"),
                        Record::of(Action::Deploy, "d"),
                        Record::of(Action::Revert, "b"),
                    ],
                    ..state(&[], &["a", "b", "c", "d"], "b")
                },
                2,
                vec![],
                vec!["d", "c"],
            ),
            (state(&[], &[], "a"), 2, vec![], vec![]),
        ];
        for (s, keep, in_use, expected) in cases {
            assert_eq!(
                prune_plan(&s, keep, &in_use, None),
                expected,
                "{s:?} keep {keep}"
            );
        }
    }

    #[test]
    fn prune_never_removes_where_revert_with_no_n_goes() {
        // web1 deployed a, b, c, d; web2 missed c (it was down). `revert 1` would go to c on
        // web1 and b on web2: the only release both hold behind d is b (then a).
        let web1 = state(&["a", "b", "c", "d"], &["a", "b", "c", "d"], "d");
        let web2 = state(&["a", "b", "d"], &["a", "b", "d"], "d");
        let target =
            crate::deploy::common_release::newest_common(&[("web1", &web1), ("web2", &web2)]);
        assert_eq!(target.as_deref(), Ok("b"));
        // Counting by host alone, keep 2 would take b from web1 and leave nothing in common.
        assert_eq!(prune_plan(&web1, 2, &[], None), ["b", "a"]);
        // With the fleet's target kept, b stays on both.
        let cases = [(&web1, vec!["a"]), (&web2, vec!["a"])];
        for (s, expected) in cases {
            assert_eq!(prune_plan(s, 2, &[], Some("b")), expected, "{s:?}");
        }
    }
}
