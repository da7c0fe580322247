//! Whether an agent runs in a home, decided by the one thing that cannot go stale: the
//! home's lock. The daemon holds an exclusive `flock` on `<home>/agent.lock` for its whole
//! life — across an in-place upgrade too, where the locked descriptor is handed to the new
//! binary — and the kernel drops it the moment the daemon is gone, however it ended.
//! `agent.pid` only says which pid the daemon had; once the daemon died that pid may belong to
//! anyone, so it is never trusted on its own.
//!
//! - [`holder`]: is the lock held? Asked with a *shared* lock attempt, so asking never makes
//!   the asker look like a daemon (the daemon's lock is the only exclusive one).
//! - [`holder_pid`]: which process holds it — a candidate (from `agent.pid`, else from
//!   `/proc/locks`) counts only once one of its own descriptors on the lock file is seen
//!   holding the exclusive lock (`/proc/<pid>/fdinfo`).
//! - [`stop`]: SIGTERM to that verified holder, through a pidfd ([`crate::pidfd`]), then wait
//!   until the lock is free.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;

use crate::home::AgentHome;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("another agent is already running in {0}")]
    Held(String),
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: String,
        source: nix::errno::Errno,
    },
}

/// The running daemon's hold on its home.
#[derive(Debug)]
pub struct DaemonLock {
    lock: Flock<File>,
}

impl DaemonLock {
    /// Take the lock on `path`, waiting up to `wait` for a daemon that is still shutting down.
    pub async fn acquire(path: &Path, wait: Duration) -> Result<DaemonLock, LockError> {
        let shown = || path.display().to_string();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| LockError::Open {
                path: shown(),
                source,
            })?;
        let start = Instant::now();
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(DaemonLock { lock }),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) if start.elapsed() < wait => {
                    file = f;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    let home = path.parent().unwrap_or(path).display().to_string();
                    return Err(LockError::Held(home));
                }
                Err((_, source)) => {
                    return Err(LockError::Lock {
                        path: shown(),
                        source,
                    });
                }
            }
        }
    }

    /// Take over the lock a previous binary of this daemon held on descriptor `fd` and left
    /// open across its `exec`. `None` (and `fd` left alone) when `fd` is not open on `path`.
    pub fn adopt(fd: RawFd, path: &Path) -> Option<DaemonLock> {
        if !crate::supervisor::handover::is_open(fd) {
            return None;
        }
        // SAFETY: `fd` is open (checked above) and stays open for this call.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let theirs = nix::sys::stat::fstat(borrowed).ok()?;
        let ours = std::fs::metadata(path).ok()?;
        if theirs.st_dev != ours.dev() || theirs.st_ino != ours.ino() {
            return None;
        }
        crate::supervisor::handover::set_inherited(fd, false);
        // SAFETY: the previous binary left this descriptor to us and nothing in this process
        // owns it; it is open on the lock file (checked above).
        let file = unsafe { File::from_raw_fd(fd) };
        // The lock belongs to this very open file, so taking it again only confirms it.
        Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .ok()
            .map(|lock| DaemonLock { lock })
    }

    /// The lock left open by the binary this process was before an in-place upgrade: the
    /// descriptor on `path` among this process's own. `None` for a daemon started afresh.
    pub fn inherited(path: &Path) -> Option<DaemonLock> {
        let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        fds.into_iter().find_map(|fd| DaemonLock::adopt(fd, path))
    }

    /// The locked descriptor, to be left open across an in-place upgrade.
    pub fn as_raw_fd(&self) -> RawFd {
        self.lock.as_raw_fd()
    }
}

/// Who holds a home's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Nobody: no agent runs in this home.
    Nobody,
    /// A daemon; its pid when it could be verified from here.
    Daemon { pid: Option<u32> },
}

/// Whether a daemon holds `home`'s lock, and which process it is.
pub fn holder(home: &AgentHome) -> io::Result<Holder> {
    let path = home.lock_file();
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Holder::Nobody),
        Err(e) => return Err(e),
    };
    // Shared: compatible with any other asker, refused only by the daemon's exclusive lock.
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(asked) => {
            drop(asked);
            Ok(Holder::Nobody)
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(Holder::Daemon {
            pid: holder_pid(&path, &home.pid_file()),
        }),
        Err((_, e)) => Err(e.into()),
    }
}

/// The process holding the exclusive lock on `lock`: the pid in `pid_file` if it verifiably
/// does, else one found in `/proc/locks` that verifiably does.
pub fn holder_pid(lock: &Path, pid_file: &Path) -> Option<u32> {
    let meta = std::fs::metadata(lock).ok()?;
    let file = (meta.dev(), meta.ino());
    let recorded = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let listed = std::fs::read_to_string("/proc/locks")
        .map(|text| {
            text.lines()
                .filter_map(LockLine::parse)
                .filter(|l| l.flock && l.exclusive && l.inode == file.1)
                .filter_map(|l| l.pid)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    recorded
        .into_iter()
        .chain(listed)
        .find(|pid| holds_lock(*pid, file))
}

/// Whether one of `pid`'s descriptors is open on the file `(dev, inode)` and holds an
/// exclusive flock on it.
pub fn holds_lock(pid: u32, (dev, inode): (u64, u64)) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        // The link's target, as the process sees it.
        let same = std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == dev && m.ino() == inode);
        same && std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .is_ok_and(|info| {
            info.lines()
                .filter_map(|l| l.strip_prefix("lock:"))
                .filter_map(LockLine::parse)
                .any(|l| l.flock && l.exclusive)
        })
    })
}

/// One lock as `/proc/locks` (and each `lock:` line of an fdinfo file) shows it:
/// `1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF`. Waiters (`1: -> FLOCK …`) are not
/// holders and are not parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockLine {
    pub flock: bool,
    pub exclusive: bool,
    /// `None` for open-file-description locks, which show `-1`.
    pub pid: Option<u32>,
    pub inode: u64,
}

impl LockLine {
    pub fn parse(line: &str) -> Option<LockLine> {
        let mut words = line.split_whitespace();
        words.next().filter(|id| id.ends_with(':'))?;
        let kind = words.next().filter(|k| *k != "->")?;
        let _mode = words.next()?;
        let access = words.next()?;
        let pid = words.next()?.parse::<i64>().ok()?;
        let inode = words.next()?.rsplit(':').next()?.parse::<u64>().ok()?;
        Some(LockLine {
            flock: kind == "FLOCK",
            exclusive: access == "WRITE",
            pid: u32::try_from(pid).ok().filter(|p| *p > 0),
            inode,
        })
    }
}

/// What [`stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    NotRunning,
    Stopped { pid: u32 },
}

#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("cannot tell whether an agent runs in {home}: {source}")]
    Probe { home: String, source: io::Error },
    #[error(
        "an agent holds {lock}, but its process cannot be seen from here (another pid namespace or user): stop it where it runs"
    )]
    HolderUnknown { lock: String },
    #[error("cannot signal the agent (pid {pid}): {source}")]
    Signal { pid: u32, source: io::Error },
    #[error("the agent (pid {pid}) still runs {secs} s after SIGTERM")]
    StillRunning { pid: u32, secs: u64 },
}

/// Stop the daemon of `home`: SIGTERM (its apps stop gracefully and stay in the saved list,
/// so they come back with the next daemon) to the verified holder of the lock, then wait up
/// to `timeout` for the lock to be released. No other process is ever signalled.
pub async fn stop(home: &AgentHome, timeout: Duration) -> Result<Stopped, StopError> {
    let probe = |source| StopError::Probe {
        home: home.root().display().to_string(),
        source,
    };
    let lock = home.lock_file();
    let pid = match holder(home).map_err(probe)? {
        Holder::Nobody => return Ok(Stopped::NotRunning),
        Holder::Daemon { pid: Some(pid) } => pid,
        Holder::Daemon { pid: None } => {
            return Err(StopError::HolderUnknown {
                lock: lock.display().to_string(),
            });
        }
    };
    let file = std::fs::metadata(&lock)
        .map(|m| (m.dev(), m.ino()))
        .map_err(probe)?;
    let sent = crate::pidfd::signal_checked(pid, Signal::SIGTERM, |p| holds_lock(p, file))
        .map_err(|source| StopError::Signal { pid, source })?;
    let start = Instant::now();
    loop {
        if holder(home).map_err(probe)? == Holder::Nobody {
            return Ok(Stopped::Stopped { pid });
        }
        if !sent || start.elapsed() >= timeout {
            // Not sent: the holder changed between the look and the signal; say so rather
            // than signal a process that was not checked.
            return Err(StopError::StillRunning {
                pid,
                secs: start.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_lines_parse_as_the_kernel_writes_them() {
        let table = [
            (
                "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF",
                Some(LockLine {
                    flock: true,
                    exclusive: true,
                    pid: Some(4242),
                    inode: 1234567,
                }),
            ),
            (
                "\t2: FLOCK  ADVISORY  READ 77 00:2d:99 0 EOF",
                Some(LockLine {
                    flock: true,
                    exclusive: false,
                    pid: Some(77),
                    inode: 99,
                }),
            ),
            (
                "3: POSIX  ADVISORY  WRITE 12 fd:00:5 0 EOF",
                Some(LockLine {
                    flock: false,
                    exclusive: true,
                    pid: Some(12),
                    inode: 5,
                }),
            ),
            (
                "4: OFDLCK ADVISORY  WRITE -1 08:01:6 0 EOF",
                Some(LockLine {
                    flock: false,
                    exclusive: true,
                    pid: None,
                    inode: 6,
                }),
            ),
            // A waiter is not a holder.
            (
                "1: -> FLOCK  ADVISORY  WRITE 4243 08:01:1234567 0 EOF",
                None,
            ),
            ("", None),
            ("garbage", None),
            ("1: FLOCK ADVISORY WRITE notapid 08:01:1 0 EOF", None),
        ];
        for (line, want) in table {
            assert_eq!(LockLine::parse(line), want, "{line:?}");
        }
    }

    #[tokio::test]
    async fn the_holder_is_found_and_askers_never_look_like_one() {
        let dir = tempfile::tempdir().unwrap();
        let home = AgentHome::new(dir.path());
        assert_eq!(holder(&home).unwrap(), Holder::Nobody, "no lock file yet");
        // A stale pid file naming a live process that holds nothing.
        std::fs::write(home.pid_file(), "1\n").unwrap();
        let lock = DaemonLock::acquire(&home.lock_file(), Duration::ZERO)
            .await
            .unwrap();
        let me = std::process::id();
        assert_eq!(holder(&home).unwrap(), Holder::Daemon { pid: Some(me) });
        // A second daemon is refused.
        let again = DaemonLock::acquire(&home.lock_file(), Duration::ZERO).await;
        assert!(matches!(again, Err(LockError::Held(_))), "{again:?}");
        // Adopting the very descriptor keeps the lock; another descriptor is refused.
        let fd = nix::unistd::dup(&*lock.lock).unwrap();
        let raw = fd.as_raw_fd();
        std::mem::forget(fd);
        let other = dir.path().join("other");
        std::fs::write(&other, "").unwrap();
        assert!(DaemonLock::adopt(raw, &other).is_none());
        let adopted = DaemonLock::adopt(raw, &home.lock_file()).expect("adopted");
        // As across an exec: the first descriptor goes away without unlocking.
        std::mem::forget(lock);
        assert_eq!(holder(&home).unwrap(), Holder::Daemon { pid: Some(me) });
        drop(adopted);
        assert_eq!(holder(&home).unwrap(), Holder::Nobody);
    }
}
