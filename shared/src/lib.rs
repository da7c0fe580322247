//! pmfleet-shared: what the controller and the agent agree on.
//!
//! - [`ecosystem`]: the PM2-style ecosystem file (JSON, YAML, JavaScript), parsed into a raw
//!   tree and validated into checked types. Only checked types leave this crate.
//! - [`protocol`]: the agent's length-prefixed JSON frames; [`tls`]: the mutual-TLS setup.
//! - [`secrets`]: a secret named in an env value, and the one file on a host holding the
//!   values; [`redact`]: the values a process must never print, masked in any text.
//! - [`units`]: durations and sizes as written (`2s`, `150M`); [`display`]: tables, sizes and
//!   uptimes as both command lines print them; [`cli`]: what both command lines do alike at
//!   their edge (colour, JSON errors, a closed stdout, completions and man pages).
//! - [`monit`]: the live terminal view of hosts and apps both command lines open.

// File input never panics the reader: no unwrap/expect/indexing outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod cli;
pub mod display;
pub mod ecosystem;
pub mod monit;
pub mod protocol;
pub mod redact;
pub mod secrets;
pub mod tls;
pub mod units;
