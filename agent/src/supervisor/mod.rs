//! The supervisor: apps, their instances, and what happens to them.

pub mod policy;
