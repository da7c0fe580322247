//! pmfleet-agent: the process manager that runs on every host.
//!
//! - [`supervisor`]: apps and their instances — spawning, cluster socket handoff, rolling
//!   reloads, the restart policy, persistence. [`supervisor::Supervisor`] is its interface.
//! - [`api`]: the protocol endpoints that call the supervisor: the local socket and the
//!   controller's mutual-TLS endpoint.
//! - [`auto_revert`]: a host going back by itself when its controller vanished before
//!   confirming a rollout.
//! - [`identity`]: the agent's TLS files in `<home>/tls` (`tls request`, `tls status`).
//! - [`daemon`]: one daemon per agent home, `run_with(home, options, shutdown)`; [`upgrade`]: the daemon
//!   re-executing itself into a new binary without stopping its apps; [`daemon_lock`]: the
//!   home's lock, the only thing that says whether an agent runs there; [`pidfd`]: signals
//!   that reach the checked process or nobody.
//! - [`client`] and [`cli`]: the `pmfleet-agent` verbs, talking to the daemon; [`run`]: the
//!   container mode, the daemon in the foreground as PID 1 with every app's lines on stdout.
//! - [`logs`], [`metrics`]: log files and /proc sampling; [`exposition`]: the Prometheus text
//!   the metrics endpoint serves; [`app_metrics`]: the apps' own metrics (a StatsD-style
//!   socket, their endpoints read).

pub mod api;
pub mod app_metrics;
pub mod auto_revert;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod daemon_lock;
pub mod exposition;
pub mod home;
pub mod identity;
pub mod logs;
pub mod metrics;
pub mod pidfd;
pub mod run;
pub mod startup;
pub mod supervisor;
pub mod upgrade;
