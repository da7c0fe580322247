//! pmfleet-shared: what the controller and the agent agree on.
//!
//! - [`ecosystem`]: the PM2-style ecosystem file (JSON, YAML, JavaScript), parsed into a raw
//!   tree and validated into checked types. Only checked types leave this crate.

pub mod ecosystem;
