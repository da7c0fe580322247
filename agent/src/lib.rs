//! pmfleet-agent: the process manager that runs on every host.

pub mod logs;
pub mod metrics;
pub mod supervisor;
