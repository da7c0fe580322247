//! One file per top-level verb.

pub mod app;
pub mod ca;
pub mod config;
pub mod dashboard;
pub mod deploy;
pub mod deploy_reporting;
pub mod env_words;
pub mod events;
pub mod history;
pub mod logs;
pub mod monit;
pub mod secrets;
pub mod status;
