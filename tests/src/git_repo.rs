//! Real git repositories made by a test.
