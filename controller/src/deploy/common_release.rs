//! The release `revert` with no N goes to: the newest release that every host has served and
//! still holds, other than the ones the hosts serve now. Counting N deploys back can land on a
//! release one host pruned or never had (a host added later, a deploy that failed there);
//! this choice cannot miss. "Newest" follows the hosts' release lines (the order releases were
//! switched to, reverts included), never the release names, which come from the clocks of
//! whichever controllers made them. A release off a host's line (reverted away from, or never
//! switched to: a rolled-back deploy) is never a candidate.

use std::collections::BTreeSet;

use super::host_state::HostState;

/// Why no release can be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoCommon {
    #[error("there are no hosts to revert")]
    NoHosts,
    #[error("no host holds a release to go back to other than the one it serves")]
    NothingBehind,
    /// Each host with the releases it lacks (not present, or not served there before).
    #[error("no release other than the one served is on every host: {}", lacking(.0))]
    Lacking(Vec<(String, Vec<String>)>),
}

fn lacking(hosts: &[(String, Vec<String>)]) -> String {
    hosts
        .iter()
        .map(|(host, releases)| format!("{host} lacks {}", releases.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a host serves: the end of its release line, else its `current`.
fn served(state: &HostState, line: &[String]) -> Option<String> {
    line.last().cloned().or_else(|| state.current.clone())
}

/// The release every host in `hosts` (label, state) can go back to: the newest one on every
/// host's line and among its complete releases, other than what any host serves. Newest is
/// the one switched to most recently on some host (the smallest distance from the end of a
/// line); a tie goes to the greater name.
pub fn newest_common(hosts: &[(&str, &HostState)]) -> Result<String, NoCommon> {
    if hosts.is_empty() {
        return Err(NoCommon::NoHosts);
    }
    let lines: Vec<Vec<String>> = hosts.iter().map(|(_, s)| s.line()).collect();
    let serving: BTreeSet<String> = hosts
        .iter()
        .zip(&lines)
        .filter_map(|((_, s), line)| served(s, line))
        .collect();
    // Usable on a host: on its line and still there.
    let usable = |state: &HostState, line: &[String], release: &str| {
        line.iter().any(|r| r == release) && state.releases.iter().any(|r| r == release)
    };
    let wanted: BTreeSet<&str> = hosts
        .iter()
        .zip(&lines)
        .flat_map(|((_, s), line)| {
            line.iter()
                .map(String::as_str)
                .filter(|r| usable(s, line, r))
                .collect::<Vec<_>>()
        })
        .filter(|r| !serving.contains(*r))
        .collect();
    if wanted.is_empty() {
        return Err(NoCommon::NothingBehind);
    }
    let common: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|r| {
            hosts
                .iter()
                .zip(&lines)
                .all(|((_, s), line)| usable(s, line, r))
        })
        .collect();
    let age = |release: &str| {
        lines
            .iter()
            .filter_map(|line| {
                line.iter()
                    .rposition(|r| r == release)
                    .map(|i| line.len() - i)
            })
            .min()
            .unwrap_or(usize::MAX)
    };
    let newest = common
        .into_iter()
        .min_by(|a, b| age(a).cmp(&age(b)).then_with(|| b.cmp(a)));
    match newest {
        Some(release) => Ok(release.to_string()),
        None => Err(NoCommon::Lacking(
            hosts
                .iter()
                .zip(&lines)
                .filter_map(|((label, s), line)| {
                    let lacks: Vec<String> = wanted
                        .iter()
                        .filter(|r| !usable(s, line, r))
                        .map(|r| r.to_string())
                        .collect();
                    (!lacks.is_empty()).then(|| (label.to_string(), lacks))
                })
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::history::{Action, Record};

    /// A host that deployed `deploys` in order and holds `present`.
    fn host(deploys: &[&str], present: &[&str]) -> HostState {
        HostState {
            setup: true,
            current: deploys.last().map(|r| r.to_string()),
            releases: present.iter().map(|r| r.to_string()).collect(),
            history: deploys
                .iter()
                .map(|r| Record::of(Action::Deploy, r))
                .collect(),
            ..HostState::default()
        }
    }

    fn reverted(mut state: HostState, to: &str) -> HostState {
        state.history.push(Record::of(Action::Revert, to));
        state.current = Some(to.into());
        state
    }

    fn lacking(hosts: &[(&str, &[&str])]) -> NoCommon {
        NoCommon::Lacking(
            hosts
                .iter()
                .map(|(h, r)| (h.to_string(), r.iter().map(|r| r.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn newest_common_table() {
        let cases: Vec<(&str, Vec<HostState>, Result<&str, NoCommon>)> = vec![
            (
                "every host holds the same: the one before what they serve",
                vec![host(&["a", "b", "c"], &["a", "b", "c"]); 2],
                Ok("b"),
            ),
            (
                "one host pruned b: the newest common is a",
                vec![
                    host(&["a", "b", "c"], &["a", "b", "c"]),
                    host(&["a", "b", "c"], &["a", "c"]),
                ],
                Ok("a"),
            ),
            (
                "a host that missed b (added later): a, not b",
                vec![
                    host(&["a", "b", "c"], &["a", "b", "c"]),
                    host(&["a", "c"], &["a", "c"]),
                ],
                Ok("a"),
            ),
            (
                "names from a clock that ran ahead do not count: the line does",
                vec![host(&["z", "b", "c"], &["b", "c", "z"]); 2],
                Ok("b"),
            ),
            (
                "a release reverted away from is never a target",
                vec![reverted(host(&["a", "b", "c"], &["a", "b", "c"]), "b"); 2],
                Ok("a"),
            ),
            (
                "a release never switched to (rolled back) is never a target",
                vec![host(&["a", "c"], &["a", "b", "c"]); 2],
                Ok("a"),
            ),
            (
                "a split fleet: neither served release is a target",
                vec![
                    host(&["a", "b", "c"], &["a", "b", "c"]),
                    host(&["a", "b"], &["a", "b"]),
                ],
                Ok("a"),
            ),
            (
                "nothing in common: each host named with what it lacks",
                vec![
                    host(&["a", "b", "c"], &["b", "c"]),
                    host(&["a", "c"], &["a", "c"]),
                ],
                Err(lacking(&[("web1", &["a"]), ("web2", &["b"])])),
            ),
            (
                "one release ever: nothing to go back to",
                vec![host(&["a"], &["a"]); 2],
                Err(NoCommon::NothingBehind),
            ),
            ("no hosts", vec![], Err(NoCommon::NoHosts)),
        ];
        for (name, states, expected) in cases {
            let labels = ["web1", "web2", "web3"];
            let hosts: Vec<(&str, &HostState)> = labels.iter().copied().zip(&states).collect();
            assert_eq!(
                newest_common(&hosts),
                expected.map(str::to_string),
                "{name}"
            );
        }
    }

    #[test]
    fn the_error_names_what_each_host_lacks() {
        let err = lacking(&[("web1", &["a"]), ("web2", &["b", "d"])]);
        assert_eq!(
            err.to_string(),
            "no release other than the one served is on every host: web1 lacks a; web2 lacks b, d"
        );
    }
}
