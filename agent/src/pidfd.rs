//! A process pinned by a pidfd (`pidfd_open(2)`, Linux 5.3): once the descriptor is open, a
//! signal sent through it reaches that very process or nobody — never a stranger that was
//! given the same pid after the process ended. Whoever checks a process before signalling it
//! (the home lock's holder, an instance's leftover) opens the pidfd first, checks, then
//! signals through it, so nothing can change between the check and the signal.
//!
//! On a kernel without pidfds, [`signal_checked`] checks again right before a plain `kill`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::signal::Signal;

/// An open pidfd.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
}

impl PidFd {
    /// Pin `pid`. Fails with `ESRCH` when it is gone, `ENOSYS` on a kernel without pidfds.
    pub fn open(pid: u32) -> io::Result<PidFd> {
        let raw = i32::try_from(pid)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor (close-on-exec)
        // or -1; it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::other("pidfd out of range"))?;
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        Ok(PidFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Send `signal` to the pinned process (a no-op once it has exited).
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        // SAFETY: pidfd_send_signal reads only its arguments; a null siginfo means "as kill".
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Send `signal` to `pid` only if `check(pid)` holds with the process pinned. `Ok(false)`
/// when the check failed (or the process is gone), so nothing was sent.
pub fn signal_checked(pid: u32, signal: Signal, check: impl Fn(u32) -> bool) -> io::Result<bool> {
    match PidFd::open(pid) {
        Ok(fd) => {
            if !check(pid) {
                return Ok(false);
            }
            match fd.signal(signal) {
                Ok(()) => Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            if !check(pid) {
                return Ok(false);
            }
            let raw = i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
            match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), signal) {
                Ok(()) => Ok(true),
                Err(nix::errno::Errno::ESRCH) => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_reaches_the_pinned_process_only_when_the_check_holds() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(!signal_checked(pid, Signal::SIGTERM, |_| false).unwrap());
        assert!(child.try_wait().unwrap().is_none(), "not signalled");
        assert!(signal_checked(pid, Signal::SIGTERM, |p| p == pid).unwrap());
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        // Reaped: the pid names nobody now (or a stranger, whom the check must protect).
        assert!(!signal_checked(pid, Signal::SIGTERM, |_| false).unwrap());
    }
}
