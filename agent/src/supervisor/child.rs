//! An instance's process as the supervisor holds it: either spawned by this daemon (a tokio
//! [`Child`](tokio::process::Child)), or adopted — a child the daemon had already spawned
//! before it re-executed itself into a new binary ([`super::handover`]). Both are real
//! children of the daemon; only who reaps them differs.
//!
//! An adopted process is reaped by a small thread blocked in `waitpid` on exactly that pid
//! (never `-1`, so tokio's own children are left to tokio); its exit status reaches the async
//! side through a watch channel. Both kinds are registered with the orphan [`super::reaper`],
//! which therefore never waits for them.

use std::io;
use std::process::ExitStatus;

use tokio::sync::watch;

pub(crate) enum ChildProcess {
    Spawned(tokio::process::Child),
    Adopted(Adopted),
}

pub(crate) struct Adopted {
    pid: u32,
    status: watch::Receiver<Option<io::Result<ExitStatus>>>,
}

impl ChildProcess {
    /// Take over `pid`, a child of this process that nobody waits for yet.
    pub fn adopt(pid: u32) -> io::Result<ChildProcess> {
        let (tx, rx) = watch::channel(None);
        let raw = i32::try_from(pid).map_err(|_| io::Error::other(format!("bad pid {pid}")))?;
        super::reaper::own(pid);
        std::thread::Builder::new()
            .name(format!("reap-{pid}"))
            .stack_size(64 * 1024)
            .spawn(move || {
                let status = wait_pid(raw);
                super::reaper::disown(pid);
                let _ = tx.send(Some(status));
            })?;
        Ok(ChildProcess::Adopted(Adopted { pid, status: rx }))
    }

    /// The pid while the process has not been reaped.
    pub fn id(&self) -> Option<u32> {
        match self {
            ChildProcess::Spawned(c) => c.id(),
            ChildProcess::Adopted(a) => a.status.borrow().is_none().then_some(a.pid),
        }
    }

    /// Wait for the process to exit (cancel-safe).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            ChildProcess::Spawned(c) => {
                let pid = c.id();
                let status = c.wait().await;
                if let (Some(pid), Ok(_)) = (pid, &status) {
                    super::reaper::disown(pid);
                }
                status
            }
            ChildProcess::Adopted(a) => {
                let seen = a
                    .status
                    .wait_for(Option::is_some)
                    .await
                    .map_err(|_| io::Error::other("the reaper thread ended"))?;
                match seen.as_ref() {
                    Some(Ok(status)) => Ok(*status),
                    Some(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
                    None => Err(io::Error::other("no status")),
                }
            }
        }
    }
}

/// Block until `pid` exits and return how it ended.
fn wait_pid(pid: i32) -> io::Result<ExitStatus> {
    use nix::sys::wait::{WaitStatus, waitpid};
    use std::os::unix::process::ExitStatusExt;
    loop {
        // The raw status, as `ExitStatus` holds it: code << 8, or the signal (| 0x80 on core).
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus::from_raw((code & 0xff) << 8)),
            Ok(WaitStatus::Signaled(_, sig, core)) => {
                return Ok(ExitStatus::from_raw(
                    sig as i32 | if core { 0x80 } else { 0 },
                ));
            }
            // Stopped or continued (not asked for): keep waiting for the end.
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_adopted_child_is_reaped_with_its_status() {
        // A std child: tokio does not know it, as after a re-exec.
        let child = std::process::Command::new("sh")
            .args(["-c", "sleep 0.2; exit 7"])
            .spawn()
            .unwrap();
        let pid = child.id();
        std::mem::forget(child);
        let mut adopted = ChildProcess::adopt(pid).unwrap();
        assert_eq!(adopted.id(), Some(pid));
        let status = adopted.wait().await.unwrap();
        assert_eq!(status.code(), Some(7));
        assert_eq!(adopted.id(), None);
        // Waiting again answers the same.
        assert_eq!(adopted.wait().await.unwrap().code(), Some(7));
    }
}
