//! Everything the controller says to the agents on its hosts: the mutual-TLS client
//! ([`client`]), which agents an environment has ([`targets`]), installing and certifying an
//! agent during `setup` ([`provision`]), and having it run a release after a switch ([`apply`]).

pub mod apply;
pub mod client;
pub mod provision;
pub mod sessions;
pub mod targets;

pub use client::{AgentClient, AgentError};
