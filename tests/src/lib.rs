//! The end-to-end test harness: real OpenSSH `sshd` hosts, each with its own view of the deploy
//! root, and real git repositories. Shared by the e2e tests and the benchmarks.

pub mod git_repo;
pub mod sshd;
