//! What both command lines do alike at their edge, so `pmfleet` and `pmfleet-agent` behave
//! the same in a terminal, in a pipe and under `--json`:
//!
//! - [`colour`]: whether to colour, and the tones rows are painted in;
//! - [`error`]: an error as one JSON object, for `--json` runs;
//! - [`pipe`]: a closed stdout (`… | head`) ends a read-only command quietly;
//! - [`docs`]: shell completions and man pages, generated from the clap definitions.

pub mod colour;
pub mod docs;
pub mod error;
pub mod pipe;
