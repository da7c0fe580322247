//! Where to connect and how: `~/.ssh/config` and the ecosystem file's `ssh_options`, read the way
//! OpenSSH reads them, so a fleet that works with `ssh host` works with pmfleet.
//!
//! OpenSSH rules kept here: the first value obtained for an option wins, command-line values
//! (the ecosystem's `user`/`port`/`key`, then `ssh_options`) come before the config file,
//! `Host` patterns are matched against the name as given (the alias), `IdentityFile` accumulates,
//! and `Include` applies inside the block it appears in. Only the options pmfleet uses are
//! understood; `Match` blocks are skipped with a warning.

mod file;
mod options;
mod syntax;
mod target;
#[cfg(test)]
mod tests;

pub(crate) use target::{Target, hostname_of};
