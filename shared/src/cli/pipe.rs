//! `pmfleet status | head -3` must end quietly once `head` has what it wants. Rust ignores
//! `SIGPIPE`, so every later write fails with `EPIPE`, and `println!` panics on that (a
//! backtrace where the user expected nothing). A command whose output comes after its work
//! (a listing, an agent verb printing the daemon's answer) instead takes the default action
//! back, as `cat` and `ls` have it: the write that finds the pipe closed ends the process,
//! silently. Commands that print while they work — a deploy, an app command across the
//! fleet, the agent's daemon, a container's PID 1 — keep ignoring `SIGPIPE` and never stop
//! half-way because nobody reads their output.

/// Restore the default `SIGPIPE` action for the rest of this process.
pub fn end_quietly_on_closed_stdout() {
    // SAFETY: setting a signal's disposition to its default is async-signal-safe and involves
    // no handler; it is done before any thread of ours writes to stdout.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
