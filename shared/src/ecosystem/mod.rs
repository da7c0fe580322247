//! The ecosystem file: `apps: [...]` and `deploy: { <env>: {...} }`, as PM2 reads it.
//!
//! Loading goes file → spanned value tree (with line:column) → checked [`Ecosystem`], and every
//! problem found on the way is reported at once as a [`Diagnostic`].

mod model;

pub use model::*;
