//! What the benchmarks share: reading `RUNS [SIZES]` from the command line, the median
//! they print, and many real agents on loopback ([`agents`]).

pub mod agents;

use std::time::Duration;

/// `RUNS [SIZES]` (`5 50,200`), each defaulting to the values given.
pub fn runs_and_sizes(default_runs: usize, default_sizes: &[usize]) -> (usize, Vec<usize>) {
    let mut args = std::env::args().skip(1);
    let runs = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(default_runs);
    let sizes = args
        .next()
        .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| default_sizes.to_vec());
    (runs, sizes)
}

/// The middle value of `times` (zero when there is none).
pub fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}
