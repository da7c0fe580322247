//! The end-to-end test harness: real OpenSSH `sshd` hosts, each with its own view of the
//! deploy root, real git repositories, and the real `pmfleet` binary run in a project
//! directory. Shared by the e2e tests and the benchmarks.

pub mod git_repo;
pub mod project;
pub mod sshd;
