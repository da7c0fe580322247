//! An instance's processes beyond its process group: everything it started, even what left
//! the group (`setsid`, `setpgid`) and what its parent left behind.
//!
//! The group signal reaches most of an instance; the rest is found two ways, each a scan of
//! `/proc`: the instance's descendants, walked from its leader *before* anything is signalled
//! (once the leader is gone its children are re-parented and the tree no longer leads to
//! them), and every process carrying the instance's mark ([`super::marker`]), which also finds
//! an orphan re-parented to the agent (a child subreaper) or to init. Each process is named by
//! its pid *and* start time and signalled through a pidfd ([`crate::pidfd`]), so a pid that
//! was reused in between is never hit.

use std::collections::HashSet;

use nix::sys::signal::Signal;

use super::marker::{MARK_VAR, env_value};

/// One process, named by pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Member {
    pub pid: u32,
    pub start_time: u64,
    /// Its process group when found: an instance's group gets its own signal.
    pub pgid: u32,
}

/// What `/proc/<pid>/stat` says of a process, as far as this file needs it.
struct Seen {
    start_time: u64,
    pgid: u32,
    zombie: bool,
}

fn seen(pid: u32) -> Option<Seen> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .stat()
        .ok()?;
    Some(Seen {
        start_time: stat.starttime,
        pgid: u32::try_from(stat.pgrp).unwrap_or(0),
        zombie: stat.state == 'Z',
    })
}

impl Member {
    fn of(pid: u32) -> Option<Member> {
        let s = seen(pid)?;
        (!s.zombie).then_some(Member {
            pid,
            start_time: s.start_time,
            pgid: s.pgid,
        })
    }

    /// Still this very process, and not yet dead.
    pub fn alive(&self) -> bool {
        seen(self.pid).is_some_and(|s| s.start_time == self.start_time && !s.zombie)
    }

    /// `signal` to this very process, if it still is.
    pub fn signal(&self, signal: Signal) {
        let start = self.start_time;
        let same = |pid| seen(pid).is_some_and(|s| s.start_time == start);
        if let Err(e) = crate::pidfd::signal_checked(self.pid, signal, same) {
            tracing::warn!(pid = self.pid, "cannot signal: {e}");
        }
    }
}

/// The processes of one instance that its group signal may not reach.
#[derive(Debug, Default)]
pub(crate) struct Family {
    members: Vec<Member>,
    /// The instance's process group (its leader's pid), which is signalled as a group.
    group: Option<u32>,
}

impl Family {
    /// The descendants of `leader` and every process carrying `mark` — never the agent
    /// itself, nor `leader`, whose group is signalled apart.
    pub fn find(leader: Option<u32>, mark: Option<&str>) -> Family {
        let mut family = Family {
            members: Vec::new(),
            group: leader,
        };
        if let Some(leader) = leader {
            family.add(crate::metrics::tree_pids(leader).into_iter().skip(1));
        }
        if let Some(mark) = mark {
            family.add(marked(|m| m == mark).into_iter().map(|(m, _)| m.pid));
        }
        family
    }

    fn add(&mut self, pids: impl IntoIterator<Item = u32>) {
        let me = std::process::id();
        let known: HashSet<u32> = self.members.iter().map(|m| m.pid).collect();
        for pid in pids {
            if pid == me || Some(pid) == self.group || known.contains(&pid) {
                continue;
            }
            if let Some(m) = Member::of(pid) {
                self.members.push(m);
            }
        }
    }

    /// Add what the living members started since, and what carries `mark` now.
    pub fn grow(&mut self, mark: Option<&str>) {
        let live: Vec<u32> = self
            .members
            .iter()
            .filter(|m| m.alive())
            .map(|m| m.pid)
            .collect();
        for pid in live {
            self.add(crate::metrics::tree_pids(pid).into_iter().skip(1));
        }
        if let Some(mark) = mark {
            self.add(marked(|m| m == mark).into_iter().map(|(m, _)| m.pid));
        }
    }

    /// `signal` to every member outside the instance's group (the group gets it as a group).
    pub fn signal_outside_group(&self, signal: Signal) {
        for m in &self.members {
            if Some(m.pgid) != self.group && m.alive() {
                m.signal(signal);
            }
        }
    }

    /// SIGKILL to every member still alive.
    pub fn kill(&self) {
        for m in self.members.iter().filter(|m| m.alive()) {
            m.signal(Signal::SIGKILL);
        }
    }

    #[cfg(test)]
    pub fn members(&self) -> &[Member] {
        &self.members
    }
}

/// End whatever is left of an instance whose leader is gone: every process carrying `mark`
/// and everything those started, with SIGKILL.
pub(crate) fn end_leftovers(mark: Option<&str>) {
    if mark.is_none() {
        return;
    }
    let mut family = Family::find(None, mark);
    family.grow(mark);
    family.kill();
}

/// Every living process (but this one) whose mark satisfies `pick`, with the app named in its
/// environment (`PMFLEET_APP`). One pass over `/proc`; processes whose environment cannot be
/// read (another user's, a kernel thread) are skipped.
pub(crate) fn marked(pick: impl Fn(&str) -> bool) -> Vec<(Member, Option<String>)> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !env_value(&environ, MARK_VAR).is_some_and(&pick) {
            continue;
        }
        if let Some(m) = Member::of(pid) {
            let app = env_value(&environ, "PMFLEET_APP").map(str::to_string);
            out.push((m, app));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// `sh -c script` in a session of its own, with `mark` in its environment.
    fn instance(script: &str, mark: &str) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).env(MARK_VAR, mark);
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
        }
        cmd.spawn().unwrap()
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while !f() {
            assert!(start.elapsed().as_secs() < 10, "timed out: {what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_helper_that_left_the_group_and_the_tree_is_found_by_its_mark() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("helper.pid");
        let mark = super::super::marker::new_mark("family-test");
        // The helper: its own session, its parent (the inner sh) gone at once.
        let script = format!(
            "sh -c 'setsid sleep 1000 & echo $! > {}' ; exec sleep 1000",
            pidfile.display()
        );
        let mut leader = instance(&script, &mark);
        wait_for("helper pid", || {
            std::fs::read_to_string(&pidfile).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
        });
        let helper: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let family = Family::find(Some(leader.id()), Some(&mark));
        let pids: Vec<u32> = family.members().iter().map(|m| m.pid).collect();
        assert!(pids.contains(&helper), "{pids:?} lacks {helper}");
        assert!(
            !pids.contains(&leader.id()),
            "the leader is signalled as a group"
        );
        // Another mark finds nothing of it.
        assert!(
            Family::find(None, Some("family-test:other"))
                .members()
                .is_empty()
        );

        let _ = leader.kill();
        let _ = leader.wait();
        end_leftovers(Some(&mark));
        wait_for("helper gone", || {
            !family
                .members()
                .iter()
                .any(|m| m.pid == helper && m.alive())
        });
    }
}
