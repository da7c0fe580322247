//! One file per top-level verb.

pub mod deploy;
