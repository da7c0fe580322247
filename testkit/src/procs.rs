//! Processes as `/proc` shows them: alive or not, found by command line, their descendants,
//! their mount namespace, and the files and sockets they hold open. Tests read these to wait
//! for what really happened (a follower opened the log, a daemon exited) and to clean up
//! exactly the processes they started.

use std::path::Path;

/// True while `pid` runs; a zombie is dead for our purposes.
pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        })
        .unwrap_or(false)
}

/// Every live process whose command line mentions `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(needle))
                && pid_alive(*pid)
        })
        .collect()
}

/// Every pid in `/proc`.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Parent pid from /proc/PID/stat (the field after the parenthesised command name).
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Every process below `root` in the process tree.
pub fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut found = vec![root];
    let mut index = 0;
    while let Some(&parent) = found.get(index) {
        for (pid, ppid) in &parents {
            if *ppid == parent && !found.contains(pid) {
                found.push(*pid);
            }
        }
        index += 1;
    }
    found.retain(|pid| *pid != root);
    found
}

/// Sends `signal` to `pid` (a negative pid: to that process group).
pub fn signal(pid: i32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions; callers pass pids they started.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// The identity of `pid`'s mount namespace (`mnt:[4026531841]`).
pub fn mount_namespace(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(|link| link.to_string_lossy().into_owned())
}

/// Every process in mount namespace `namespace`; never any when it is the test's own.
pub fn processes_in_namespace(namespace: &str) -> Vec<u32> {
    if mount_namespace(std::process::id()).as_deref() == Some(namespace) {
        return Vec::new();
    }
    all_pids()
        .into_iter()
        .filter(|pid| mount_namespace(*pid).as_deref() == Some(namespace))
        .collect()
}

/// Where each of `pid`'s descriptors points (`/path/file`, `socket:[123]`, `pipe:[456]`), as
/// seen from `pid`'s own mount namespace.
pub fn open_descriptors(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|link| link.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// How many of `pid`'s descriptors are open on `path` (as `pid` names it).
pub fn open_count(pid: u32, path: &Path) -> usize {
    let path = path.to_string_lossy();
    open_descriptors(pid)
        .iter()
        .filter(|target| **target == path)
        .count()
}

/// The inodes of `pid`'s sockets, to find its connections in `/proc/net/tcp`.
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    open_descriptors(pid)
        .iter()
        .filter_map(|target| {
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// A live process that is not the agent (a `sleep`), for tests that check something is never
/// taken for the agent nor signalled; killed when dropped.
pub struct Stranger(std::process::Child);

impl Stranger {
    pub fn start() -> Stranger {
        let child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .expect("start a sleep");
        Stranger(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Alive, and not even signalled: `sleep` dies of SIGTERM, so being alive is the proof.
    pub fn untouched(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process the test stopped with SIGSTOP (an agent that must look hung); continued with
/// SIGCONT when dropped, so a failing test leaves nothing stopped behind.
pub struct Paused(u32);

impl Paused {
    pub fn new(pid: u32) -> Paused {
        signal(pid as i32, libc::SIGSTOP);
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0 as i32, libc::SIGCONT);
    }
}

/// How many processes of a test's app run on this machine (every test host shares it): found
/// by `PORT=<port>` in their environment and `server.js` on their command line, and with
/// `release`, `PMFLEET_RELEASE=<release>` too.
pub fn app_processes(port: u16, release: Option<&str>) -> usize {
    let port = format!("PORT={port}");
    let release = release.map(|r| format!("PMFLEET_RELEASE={r}"));
    all_pids()
        .into_iter()
        .filter(|pid| {
            let dir = Path::new("/proc").join(pid.to_string());
            let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let has = |n: &str| environ.split(|b| *b == 0).any(|v| v == n.as_bytes());
            has(&port)
                && release.as_deref().is_none_or(has)
                && String::from_utf8_lossy(&cmdline).contains("server.js")
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_alive_found_below_us_and_dead_once_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(pid_alive(pid));
        assert_eq!(parent_of(pid), Some(std::process::id()));
        assert!(descendants(std::process::id()).contains(&pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!pid_alive(pid));
    }

    #[test]
    fn open_files_are_counted_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("held");
        std::fs::write(&path, "x").unwrap();
        let me = std::process::id();
        assert_eq!(open_count(me, &path), 0);
        let _one = std::fs::File::open(&path).unwrap();
        let _two = std::fs::File::open(&path).unwrap();
        assert_eq!(open_count(me, &path), 2);
    }
}
