//! Scaling: how many instances `scale` asks for, and what that does to an app's slots. Pure;
//! `scale` (in `verbs`) and a release that changes `instances` (in `release`) both carry out
//! the same [`ScalePlan`].

use std::ops::Range;

use pmfleet_shared::protocol::ScaleTo;

/// The instance count `to` asks for when the app has `now`, on a host with `cpus` CPUs:
/// never fewer than one.
pub(crate) fn target(now: u32, to: ScaleTo, cpus: u32) -> u32 {
    match to {
        ScaleTo::Exactly(n) => n,
        ScaleTo::Up(n) => now.saturating_add(n),
        ScaleTo::Down(n) => now.saturating_sub(n),
        ScaleTo::Max => cpus,
    }
    .max(1)
}

/// What changing an app from `now` to `want` instances does to its slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScalePlan {
    /// The same count: nothing.
    Keep,
    /// Start these slots (the app runs).
    Add(Range<u32>),
    /// Stop the processes of the slots from this one on and forget the slots (the app runs).
    Remove { from: u32 },
    /// The app is stopped: only forget the slots from this one on (they have no process);
    /// the next start creates as many as the count says.
    Trim { from: u32 },
}

/// The plan for going from `now` to `want` instances.
pub(crate) fn plan(now: u32, want: u32, running: bool) -> ScalePlan {
    if !running {
        return ScalePlan::Trim { from: want };
    }
    match want.cmp(&now) {
        std::cmp::Ordering::Equal => ScalePlan::Keep,
        std::cmp::Ordering::Greater => ScalePlan::Add(now..want),
        std::cmp::Ordering::Less => ScalePlan::Remove { from: want },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let rows = [
            (2, ScaleTo::Exactly(4), 8, 4),
            (2, ScaleTo::Exactly(0), 8, 1),
            (2, ScaleTo::Up(3), 8, 5),
            (u32::MAX, ScaleTo::Up(1), 8, u32::MAX),
            (4, ScaleTo::Down(1), 8, 3),
            (4, ScaleTo::Down(4), 8, 1),
            (1, ScaleTo::Down(9), 8, 1),
            (1, ScaleTo::Max, 8, 8),
            (16, ScaleTo::Max, 2, 2),
            (3, ScaleTo::Max, 0, 1),
        ];
        for (now, to, cpus, want) in rows {
            assert_eq!(target(now, to, cpus), want, "{now} {to:?} on {cpus} CPUs");
        }
    }

    #[test]
    fn plans() {
        let rows = [
            (2, 2, true, ScalePlan::Keep),
            (2, 5, true, ScalePlan::Add(2..5)),
            (1, 2, true, ScalePlan::Add(1..2)),
            (5, 2, true, ScalePlan::Remove { from: 2 }),
            (2, 1, true, ScalePlan::Remove { from: 1 }),
            (5, 2, false, ScalePlan::Trim { from: 2 }),
            (2, 5, false, ScalePlan::Trim { from: 5 }),
            (2, 2, false, ScalePlan::Trim { from: 2 }),
        ];
        for (now, want, running, expected) in rows {
            assert_eq!(
                plan(now, want, running),
                expected,
                "{now} -> {want}, running: {running}"
            );
        }
    }
}
