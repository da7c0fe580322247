//! The ecosystem file: `apps: [...]` and `deploy: { <env>: {...} }`, as PM2 reads it.
//!
//! Loading goes file → spanned value tree (with line:column) → checked [`Ecosystem`], and every
//! problem found on the way is reported at once as a [`Diagnostic`].
//!
//! - [`discover`] / [`locate`] find the file in a directory, in PM2's order;
//! - [`load`] reads JSON and YAML itself and JavaScript through `node`;
//! - [`parse_str`] validates text already in hand;
//! - [`Ecosystem::environment`] picks a `deploy.<env>` block.

mod app;
mod app_values;
mod cron;
mod defaults;
mod deploy;
mod diagnostic;
mod discover;
mod error;
mod fields;
mod health;
mod hosts;
mod interpreter;
mod javascript;
mod json;
mod keys;
mod load;
mod metrics_listen;
mod model;
mod notify;
mod pm2_calls;
mod value;
mod words;
mod yaml;

pub use cron::{CalendarTime, CronSchedule};
pub use defaults::TIME_FORMAT;
pub use deploy::DEFAULT_KEEP_RELEASES;
pub use diagnostic::did_you_mean;
pub use discover::{DISCOVERY_ORDER, Format, discover, locate, looks_like_ecosystem_file};
pub use error::LoadError;
pub use interpreter::{interpreter_for, is_node};
pub use javascript::NodeOptions;
pub use load::{load, load_from, load_with_node, parse_str};
pub use metrics_listen::{DEFAULT_METRICS_PORT, MetricsListen};
pub use model::*;
pub use notify::{
    DEFAULT_TIMEOUT as DEFAULT_NOTIFY_TIMEOUT, NotifyEvent, NotifyFormat, NotifyTarget,
};
pub use words::split_args;
