//! CPU and memory of an instance and its process tree, read from /proc.
//!
//! An instance is often more than one process (`npm start` → `node`, a shell wrapper, workers a
//! Python server forks), so every figure covers the whole tree rooted at the pid the agent
//! spawned: RSS is summed over the tree, as PM2 sums it for `max_memory_restart`, and CPU is the
//! tree's CPU time since the previous sample divided by the wall time in between.
//!
//! CPU time counts each process's own time plus the time of the children it has reaped
//! (`cutime`/`cstime`), so a child that exits between two samples moves its time to its parent
//! instead of making the total drop. Only processes that leave the tree while still running
//! (re-parented to init) take their time with them; the difference is then clamped to zero.
//!
//! Everything read here comes from the kernel but about processes that can vanish at any
//! moment, so every read is fallible and every parse is checked.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

/// One measurement of an instance's process tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// CPU use of the tree, 100.0 = one core busy.
    pub cpu_percent: f32,
    /// Resident memory of the tree, in bytes.
    pub rss_bytes: u64,
    /// CPU time of the tree so far (its processes' own and their reaped children's), in
    /// seconds: the counter the metrics endpoint exports.
    pub cpu_seconds: f64,
}

/// Samples process trees, remembering each root's CPU time so the next sample can give the
/// CPU use in between.
#[derive(Debug)]
pub struct Sampler {
    previous: HashMap<u32, Previous>,
    ticks_per_second: f64,
    page_size: u64,
}

/// What a sample of one root pid left for the next one.
#[derive(Debug, Clone, Copy)]
struct Previous {
    /// The root's start time, so a reused pid is not compared with the process it replaced.
    start_time: u64,
    /// CPU ticks of the whole tree.
    ticks: u64,
    at: Instant,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    pub fn new() -> Self {
        Sampler {
            previous: HashMap::new(),
            ticks_per_second: procfs::ticks_per_second() as f64,
            page_size: procfs::page_size(),
        }
    }

    /// RSS and CPU of the tree rooted at `pid`; `None` when `pid` is gone.
    ///
    /// The first sample of a pid gives the average CPU use since the process started; later
    /// ones the use since the previous sample.
    pub fn sample(&mut self, pid: u32) -> Option<Sample> {
        let now = Instant::now();
        let root = Stat::read(pid)?;
        let mut ticks = root.ticks();
        let mut rss_pages = root.rss_pages;
        for child in tree_pids(pid).into_iter().skip(1) {
            if let Some(stat) = Stat::read(child) {
                ticks += stat.ticks();
                rss_pages += stat.rss_pages;
            }
        }

        let cpu_seconds = match self.previous.get(&pid) {
            Some(prev) if prev.start_time == root.start_time => {
                let wall = now.duration_since(prev.at).as_secs_f64();
                (wall > 0.0).then(|| (ticks.saturating_sub(prev.ticks) as f64, wall))
            }
            _ => {
                // Since the root started: its own ticks over its age.
                let age = uptime_seconds()
                    .map(|up| up - root.start_time as f64 / self.ticks_per_second)
                    .filter(|age| *age > 0.0);
                age.map(|age| (ticks as f64, age))
            }
        };
        let cpu_percent = cpu_seconds
            .map(|(t, wall)| (t / self.ticks_per_second / wall * 100.0) as f32)
            .unwrap_or(0.0);

        self.previous.insert(
            pid,
            Previous {
                start_time: root.start_time,
                ticks,
                at: now,
            },
        );
        Some(Sample {
            cpu_percent,
            rss_bytes: rss_pages.saturating_mul(self.page_size),
            cpu_seconds: ticks as f64 / self.ticks_per_second,
        })
    }

    /// Drop what is remembered about `pid` (after its instance stopped).
    pub fn forget(&mut self, pid: u32) {
        self.previous.remove(&pid);
    }
}

/// The start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
/// A pid and its start time together name one process, even after the pid is reused.
pub fn process_start_time(pid: u32) -> Option<u64> {
    Stat::read(pid).map(|s| s.start_time)
}

/// The parent of `pid`; `None` when it is gone.
pub fn parent(pid: u32) -> Option<u32> {
    Stat::read(pid).map(|s| s.ppid)
}

/// The resident memory of this process (the agent itself), in bytes.
pub fn own_rss_bytes() -> Option<u64> {
    let stat = Stat::read(std::process::id())?;
    Some(stat.rss_pages.saturating_mul(procfs::page_size()))
}

/// `pid` followed by all of its descendants (breadth first); empty when `pid` is gone.
pub fn tree_pids(pid: u32) -> Vec<u32> {
    if Stat::read(pid).is_none() {
        return Vec::new();
    }
    // /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN; without it, one scan of
    // every process's parent gives the same answer.
    let scanned = (!has_children_files()).then(parent_map);
    let mut seen = HashSet::from([pid]);
    let mut out = vec![pid];
    let mut next = 0;
    while let Some(&p) = out.get(next) {
        next += 1;
        let children = match &scanned {
            Some(map) => map.get(&p).cloned().unwrap_or_default(),
            None => children_of(p),
        };
        for c in children {
            if seen.insert(c) {
                out.push(c);
            }
        }
    }
    out
}

/// The children of `pid` (empty when it is gone).
pub fn children(pid: u32) -> Vec<u32> {
    if has_children_files() {
        children_of(pid)
    } else {
        parent_map().remove(&pid).unwrap_or_default()
    }
}

fn has_children_files() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| Path::new("/proc/thread-self/children").exists())
}

/// The children of every thread of `pid` (empty when `pid` is gone).
fn children_of(pid: u32) -> Vec<u32> {
    let Some(tasks) = process(pid).and_then(|p| p.tasks().ok()) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| t.children().ok())
        .flatten()
        .collect()
}

/// Every process's children, from one scan of `/proc`.
fn parent_map() -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(all) = procfs::process::all_processes() else {
        return map;
    };
    for p in all.flatten() {
        let (Ok(pid), Some(stat)) = (u32::try_from(p.pid()), Stat::of(&p)) else {
            continue;
        };
        map.entry(stat.ppid).or_default().push(pid);
    }
    map
}

fn process(pid: u32) -> Option<procfs::process::Process> {
    procfs::process::Process::new(i32::try_from(pid).ok()?).ok()
}

/// The fields of `/proc/<pid>/stat` used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
    start_time: u64,
    rss_pages: u64,
}

impl Stat {
    fn read(pid: u32) -> Option<Stat> {
        Stat::of(&process(pid)?)
    }

    fn of(p: &procfs::process::Process) -> Option<Stat> {
        p.stat().ok().and_then(Stat::from)
    }

    /// Parses one stat line (the command name, field 2, may itself hold spaces and
    /// parentheses).
    #[cfg(test)]
    fn parse(text: &str) -> Option<Stat> {
        use procfs::FromRead;
        procfs::process::Stat::from_read(text.as_bytes())
            .ok()
            .and_then(Stat::from)
    }

    fn from(s: procfs::process::Stat) -> Option<Stat> {
        Some(Stat {
            ppid: u32::try_from(s.ppid).ok()?,
            utime: s.utime,
            stime: s.stime,
            // Signed in the kernel's format; negative never happens for these in practice.
            cutime: u64::try_from(s.cutime.max(0)).ok()?,
            cstime: u64::try_from(s.cstime.max(0)).ok()?,
            start_time: s.starttime,
            rss_pages: s.rss,
        })
    }

    fn ticks(&self) -> u64 {
        self.utime + self.stime + self.cutime + self.cstime
    }
}

/// Seconds since boot.
fn uptime_seconds() -> Option<f64> {
    use procfs::Current;
    procfs::Uptime::current().ok().map(|u| u.uptime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line = "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194560 120 0 0 0 \
                    7 3 2 1 20 0 1 0 98765 1234567 321 18446744073709551615 1 1 0 0 0 0 0 0 0 \
                    0 0 0 17 1 0 0 0 0 0";
        let s = Stat::parse(line).expect("parses");
        assert_eq!(
            s,
            Stat {
                ppid: 1,
                utime: 7,
                stime: 3,
                cutime: 2,
                cstime: 1,
                start_time: 98765,
                rss_pages: 321,
            }
        );
        assert_eq!(s.ticks(), 13);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Stat::parse(""), None);
        assert_eq!(Stat::parse("12 (x) S 1 2 3"), None);
        assert_eq!(Stat::parse("12 (x S 1 2 3"), None);
    }

    #[test]
    fn own_process() {
        let me = std::process::id();
        assert!(process_start_time(me).is_some());
        assert_eq!(tree_pids(me).first(), Some(&me));
        let s = Sampler::new().sample(me).expect("sample of self");
        assert!(s.rss_bytes > 1024 * 1024, "{s:?}");
    }

    #[test]
    fn gone_process() {
        // Pid numbers are capped well below this.
        let pid = u32::MAX - 1;
        assert_eq!(process_start_time(pid), None);
        assert!(tree_pids(pid).is_empty());
        assert_eq!(Sampler::new().sample(pid), None);
    }

    /// A shell command in its own process group, killed with its whole group when dropped.
    struct Group(std::process::Child);

    impl Group {
        fn spawn(script: &str) -> Group {
            use std::os::unix::process::CommandExt;
            let child = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .process_group(0)
                .spawn()
                .expect("spawn sh");
            Group(child)
        }

        fn pid(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for Group {
        fn drop(&mut self) {
            let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = self.0.wait();
        }
    }

    /// Polls `f` every 50 ms until it returns `Some`, for at most `secs` seconds.
    fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return Some(v);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    #[test]
    fn rss_covers_the_whole_tree() {
        // Two grandchildren that each touch 64 MiB, under a shell that waits for them.
        let grow = "python3 -c 'import time; b = bytes([1]) * (64 << 20); time.sleep(60)'";
        let g = Group::spawn(&format!("{grow} & {grow} & wait"));
        let mut sampler = Sampler::new();
        let sample = eventually(20, || {
            sampler.sample(g.pid()).filter(|s| s.rss_bytes > 128 << 20)
        });
        let tree = tree_pids(g.pid());
        assert!(sample.is_some(), "tree never reached 128 MiB: {tree:?}");
        assert_eq!(tree.len(), 3, "{tree:?}");
        assert_eq!(tree[0], g.pid());
        // The root alone (a shell) is small.
        let root_rss = Stat::read(g.pid()).map(|s| s.rss_pages * sampler.page_size);
        assert!(root_rss.is_some_and(|r| r < 32 << 20), "{root_rss:?}");
    }

    #[test]
    fn cpu_of_a_busy_grandchild() {
        let g = Group::spawn("sh -c 'while :; do :; done' & wait");
        let mut sampler = Sampler::new();
        eventually(10, || (tree_pids(g.pid()).len() == 2).then_some(()))
            .expect("grandchild started");
        sampler.sample(g.pid()).expect("first sample");
        std::thread::sleep(std::time::Duration::from_millis(600));
        let s = sampler.sample(g.pid()).expect("second sample");
        // Loose bounds: other tests share the two cores.
        assert!(s.cpu_percent > 20.0 && s.cpu_percent < 150.0, "{s:?}");
    }

    #[test]
    fn idle_process_uses_no_cpu() {
        let g = Group::spawn("sleep 60");
        let mut sampler = Sampler::new();
        sampler.sample(g.pid()).expect("first sample");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let s = sampler.sample(g.pid()).expect("second sample");
        assert!(s.cpu_percent < 5.0, "{s:?}");
        assert!(s.rss_bytes > 0);
    }

    #[test]
    fn reused_pid_is_not_compared_with_the_old_process() {
        let mut sampler = Sampler::new();
        let g = Group::spawn("while :; do :; done");
        std::thread::sleep(std::time::Duration::from_millis(300));
        sampler.sample(g.pid()).expect("sample");
        // Pretend the remembered sample came from another process that had this pid, taken a
        // moment ago with no CPU time: compared with it, the busy loop would show thousands of
        // percent. Its start time differs, so the sampler must fall back to the average since
        // the real process started.
        if let Some(prev) = sampler.previous.get_mut(&g.pid()) {
            prev.start_time += 1;
            prev.ticks = 0;
            prev.at = Instant::now() - std::time::Duration::from_millis(10);
        }
        let s = sampler.sample(g.pid()).expect("sample");
        assert!(s.cpu_percent > 10.0 && s.cpu_percent < 150.0, "{s:?}");
        assert!(process_start_time(g.pid()).is_some());
    }
}
