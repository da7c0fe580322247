//! One file per top-level verb.

pub mod ca;
pub mod deploy;
