//! Everything the controller says to the agents on its hosts: the mutual-TLS client
//! ([`client`]) and the path it takes ([`route`]: direct, or through SSH), which agents an
//! environment has ([`targets`]), installing and certifying an
//! agent during `setup` ([`provision`]), and having it run a release after a switch ([`apply`]).

pub mod apply;
pub mod client;
pub mod provision;
pub mod route;
pub mod sessions;
pub mod targets;

pub use client::{AgentClient, AgentError};
pub use route::Via;
