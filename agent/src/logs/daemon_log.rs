//! The daemon's own log, `<home>/agent.log`, rotated by size like an app's log
//! ([`super::LogFile`]: the same renames, `agent.log.1` newest … `.5` oldest).
//!
//! The daemon does not open that file: whoever starts it in the background points its stdout
//! and stderr there (`pmfleet-agent` itself, for the controller's setup too), so everything it
//! writes — its log lines, a panic — goes there. [`attach`] checks that stderr really is that
//! file (under systemd it is the journal, in a terminal the terminal: nothing to rotate then);
//! from then on every log line goes through [`DaemonLog`], which, when the line would take the
//! file past its size, renames the generations, opens a fresh `agent.log` and makes it the
//! daemon's stdout and stderr (`dup2`) before writing the line. A line is one `write` on an
//! `O_APPEND` descriptor, and the rename and the `dup2` happen between two lines, under the
//! same lock as the writes: every line lands whole in exactly one generation, nothing is lost.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::file::{open_append, shift_generations};

/// The variable that sets the size at which `agent.log` rotates (bytes, or `K`/`M`/`G`).
pub const MAX_SIZE_VAR: &str = "PMFLEET_AGENT_LOG_MAX_SIZE";

/// Where the daemon's output goes, once [`attach`] found it is a file to rotate.
struct Rotating {
    path: PathBuf,
    max_size: u64,
    retain: usize,
    /// stdout is the same file as stderr (and so follows it into each new generation).
    stdout_too: bool,
}

static ROTATING: Mutex<Option<Rotating>> = Mutex::new(None);

fn rotating() -> std::sync::MutexGuard<'static, Option<Rotating>> {
    ROTATING.lock().unwrap_or_else(|e| e.into_inner())
}

/// `(dev, inode)` of what `fd` is open on.
fn identity(fd: impl AsFd) -> Option<(u64, u64)> {
    let st = nix::sys::stat::fstat(fd).ok()?;
    Some((st.st_dev, st.st_ino))
}

/// Rotate the daemon's output from now on, if its stderr is the file at `path`; whether it is.
pub fn attach(path: &Path, max_size: u64, retain: usize) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let file = Some((meta.dev(), meta.ino()));
    if identity(io::stderr()) != file {
        return false;
    }
    *rotating() = Some(Rotating {
        path: path.to_path_buf(),
        max_size,
        retain,
        stdout_too: identity(io::stdout()) == file,
    });
    true
}

impl Rotating {
    /// Rotate first if `len` more bytes would take the current file past `max_size`.
    fn make_room(&self, len: usize) -> io::Result<()> {
        let size = nix::sys::stat::fstat(io::stderr())?.st_size;
        let size = u64::try_from(size).unwrap_or(0);
        if size == 0 || size + len as u64 <= self.max_size {
            return Ok(());
        }
        if self.retain == 0 {
            return nix::unistd::ftruncate(io::stderr(), 0).map_err(Into::into);
        }
        shift_generations(&self.path, self.retain)?;
        let fresh = open_append(&self.path)?;
        if self.stdout_too {
            nix::unistd::dup2_stdout(&fresh)?;
        }
        nix::unistd::dup2_stderr(&fresh)?;
        Ok(())
    }
}

/// The daemon's log writer (a tracing `MakeWriter`): stderr, rotated once [`attach`]ed.
#[derive(Debug, Clone, Copy, Default)]
pub struct DaemonLog;

/// One log line's writer; see [`DaemonLog`].
#[derive(Debug)]
pub struct DaemonLogWriter;

impl Write for DaemonLogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let rotating = rotating();
        if let Some(r) = rotating.as_ref()
            && let Err(e) = r.make_room(buf.len())
        {
            // Keep logging to the file as it is; say once per line why it grows.
            let _ = writeln!(io::stderr(), "cannot rotate {}: {e}", r.path.display());
        }
        io::stderr().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for DaemonLog {
    type Writer = DaemonLogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        DaemonLogWriter
    }
}
