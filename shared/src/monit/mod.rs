//! `monit`: PM2's live terminal view made for a fleet, one screen for `pmfleet monit` (every
//! host of the chosen environments over mutual TLS) and `pmfleet-agent monit` (one host over
//! its local socket).
//!
//! - [`model`]: what is shown and what each key does — pure, table-tested;
//! - [`view`]: drawing it with ratatui;
//! - [`mod@run`]: the terminal, one polling task per host under a deadline, the keys, and the
//!   [`Source`] each command line implements.

pub mod model;
pub mod run;
pub mod view;

pub use model::{HostName, Monit};
pub use run::{Answer, Options, Source, run};
