//! Following a log as it grows, like `tail -F`, across rotations and truncations.
//!
//! The follower keeps the file it is reading open and polls the path. When the path names
//! another file (a rotation renamed ours to `path.1` and opened a new one), the open file is read
//! to its end first — the writer renames only after its last write to it returned, so that end
//! is final — and then every file written after it is read in order. That matters when several
//! rotations happen between two polls: the successors are found by listing `path`, `path.1`,
//! `path.2`, … newest first and stopping at the file being read (matched by device and inode).
//! Listing newest first is what makes a rotation during the listing harmless: it only shifts
//! files towards names not yet visited, so a file may be seen twice (and is skipped the second
//! time by inode) but never missed.
//!
//! When the file being read is not among them any more (rotated beyond `retain`, or moved away
//! by an external logrotate), the successors are the files modified no earlier than it was.
//!
//! A file that shrinks while it keeps its inode was truncated (`flush`, or a copy-truncate
//! logrotate): reading starts over at its beginning. A truncation followed, before the next poll,
//! by more bytes than had been read cannot be told from growth; that is the one case in which
//! lines can be missed.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::MAX_LINE;
use super::file::generation_path;

/// How often the file is checked when nothing new was read.
const POLL: Duration = Duration::from_millis(100);

/// Stop listing rotated files after this many (a safety bound, far above any `retain`).
const MAX_ROTATED: usize = 10_000;

/// Calls `out` with every line appended to the log at `path` from now on, until `cancel` fires.
/// Waits for the file if it does not exist yet. Invalid UTF-8 is replaced.
pub async fn follow(
    path: &Path,
    cancel: CancellationToken,
    mut out: impl FnMut(&str),
) -> io::Result<()> {
    let mut current = loop {
        match Open::at_end(path) {
            Ok(f) => break f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            () = tokio::time::sleep(POLL) => {}
        }
    };
    let mut lines = Lines::default();
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let progressed = step(path, &mut current, &mut lines, &mut out)?;
        if progressed {
            tokio::task::yield_now().await;
        } else {
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// Reads what is new, handling a rotation or truncation; true when anything happened.
fn step(
    path: &Path,
    current: &mut Open,
    lines: &mut Lines,
    out: &mut impl FnMut(&str),
) -> io::Result<bool> {
    let mut progressed = current.read_new(lines, out)? > 0;
    match fs::metadata(path) {
        Ok(meta) if FileId::of(&meta) == current.id => {
            if meta.len() < current.pos {
                current.rewind()?;
                lines.clear();
                progressed = true;
            }
        }
        Ok(_) => progressed |= switch(path, current, lines, out)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            progressed |= switch(path, current, lines, out)?;
        }
        Err(e) => return Err(e),
    }
    Ok(progressed)
}

/// `current` was rotated away: finish it, read the files written after it, and continue with
/// the newest. False when no successor exists yet (the new file is not created yet).
fn switch(
    path: &Path,
    current: &mut Open,
    lines: &mut Lines,
    out: &mut impl FnMut(&str),
) -> io::Result<bool> {
    let mut successors = successors(path, current)?;
    let Some(newest) = successors.pop() else {
        return Ok(false);
    };
    current.read_new(lines, out)?;
    lines.finish(out);
    for mut done in successors {
        done.read_new(lines, out)?;
        lines.finish(out);
    }
    *current = newest;
    Ok(true)
}

/// The files written after `current`, oldest first, opened at their start.
fn successors(path: &Path, current: &Open) -> io::Result<Vec<Open>> {
    let mut newest_first: Vec<Open> = Vec::new();
    let mut missing_in_a_row = 0;
    for n in 0..=MAX_ROTATED {
        let p = generation_path(path, n);
        let file = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // One name can be missing for a moment while a rotation shifts the files;
                // two in a row is the end of the list. The current path may be missing
                // between a rotation's rename and the creation of the new file.
                if n > 0 {
                    missing_in_a_row += 1;
                    if missing_in_a_row >= 2 {
                        break;
                    }
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        missing_in_a_row = 0;
        let meta = file.metadata()?;
        let id = FileId::of(&meta);
        if id == current.id {
            newest_first.reverse();
            return Ok(newest_first);
        }
        if !newest_first.iter().any(|o| o.id == id) {
            newest_first.push(Open {
                file,
                id,
                pos: 0,
                modified: meta.modified().ok(),
            });
        }
    }
    // The current file is gone from the list: keep what was modified no earlier than it.
    let since = current.file.metadata().ok().and_then(|m| m.modified().ok());
    newest_first.retain(|o| match (o.modified, since) {
        (Some(m), Some(s)) => m >= s,
        _ => true,
    });
    newest_first.reverse();
    Ok(newest_first)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A log file being read.
struct Open {
    file: File,
    id: FileId,
    /// Bytes read so far.
    pos: u64,
    modified: Option<SystemTime>,
}

impl Open {
    fn at_end(path: &Path) -> io::Result<Open> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        let pos = file.seek(SeekFrom::End(0))?;
        Ok(Open {
            file,
            id: FileId::of(&meta),
            pos,
            modified: meta.modified().ok(),
        })
    }

    fn rewind(&mut self) -> io::Result<()> {
        self.pos = self.file.seek(SeekFrom::Start(0))?;
        Ok(())
    }

    /// Reads to the current end of the file, passing complete lines to `out`.
    fn read_new(&mut self, lines: &mut Lines, out: &mut impl FnMut(&str)) -> io::Result<usize> {
        let mut buf = [0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = match self.file.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.pos += n as u64;
            total += n;
            lines.push(buf.get(..n).unwrap_or_default(), out);
        }
    }
}

/// Cuts bytes into lines, keeping an unfinished one for the next read.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, mut data: &[u8], out: &mut impl FnMut(&str)) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            let (line, rest) = data.split_at(i);
            if self.partial.is_empty() {
                out(&String::from_utf8_lossy(line));
            } else {
                self.partial.extend_from_slice(line);
                out(&String::from_utf8_lossy(&self.partial));
                self.partial.clear();
            }
            data = rest.get(1..).unwrap_or_default();
        }
        self.partial.extend_from_slice(data);
        if self.partial.len() > MAX_LINE {
            self.finish(out);
        }
    }

    /// Emits an unfinished line (end of a rotated file, or an over-long line).
    fn finish(&mut self, out: &mut impl FnMut(&str)) {
        if !self.partial.is_empty() {
            out(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
    }

    fn clear(&mut self) {
        self.partial.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LogConfig, LogFile};
    use super::*;
    use crate::logs::file::rotated_path;
    use std::sync::{Arc, Mutex};

    /// Runs `follow` in the background, collecting lines.
    struct Follower {
        lines: Arc<Mutex<Vec<String>>>,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    impl Follower {
        fn start(path: &Path) -> Follower {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let cancel = CancellationToken::new();
            let (l, c, p) = (lines.clone(), cancel.clone(), path.to_path_buf());
            let task = tokio::spawn(async move {
                follow(&p, c, |s| l.lock().expect("lock").push(s.to_string())).await
            });
            Follower {
                lines,
                cancel,
                task,
            }
        }

        /// Waits until `n` lines were seen (or 5 s passed), then stops and returns them.
        async fn collect(self, n: usize) -> Vec<String> {
            for _ in 0..100 {
                if self.lines.lock().expect("lock").len() >= n {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Give a few polls for lines that should not be there.
            tokio::time::sleep(POLL * 3).await;
            self.cancel.cancel();
            self.task.await.expect("join").expect("follow");
            self.lines.lock().expect("lock").clone()
        }
    }

    /// Lets the follower open the file and reach its end.
    async fn settle() {
        tokio::time::sleep(POLL * 2).await;
    }

    #[tokio::test]
    async fn new_lines_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.log");
        fs::write(&p, "old\n").expect("write");
        let f = Follower::start(&p);
        settle().await;
        let mut log = LogFile::open(p.clone(), LogConfig::default()).expect("open");
        log.write_line(b"new 1").await.expect("write");
        log.write_line(b"new 2").await.expect("write");
        assert_eq!(f.collect(2).await, ["new 1", "new 2"]);
    }

    #[tokio::test]
    async fn waits_for_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("later.log");
        let f = Follower::start(&p);
        settle().await;
        let mut log = LogFile::open(p.clone(), LogConfig::default()).expect("open");
        settle().await;
        log.write_line(b"hello").await.expect("write");
        assert_eq!(f.collect(1).await, ["hello"]);
    }

    #[tokio::test]
    async fn partial_lines_wait_for_their_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("b.log");
        fs::write(&p, "").expect("write");
        let f = Follower::start(&p);
        settle().await;
        let mut raw = fs::OpenOptions::new().append(true).open(&p).expect("open");
        use std::io::Write;
        raw.write_all(b"hal").expect("write");
        settle().await;
        raw.write_all(b"f\nwhole\n").expect("write");
        assert_eq!(f.collect(2).await, ["half", "whole"]);
    }

    #[tokio::test]
    async fn many_rotations_between_polls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.log");
        let cfg = LogConfig {
            max_size: 40,
            retain: 50,
            ..LogConfig::default()
        };
        let mut log = LogFile::open(p.clone(), cfg).expect("open");
        let f = Follower::start(&p);
        settle().await;
        // ~5 lines per file, 40 files in one go: far more rotations than polls.
        let expected: Vec<String> = (0..200).map(|i| format!("line {i:03}")).collect();
        for l in &expected {
            log.write_line(l.as_bytes()).await.expect("write");
        }
        assert_eq!(f.collect(200).await, expected);
    }

    #[tokio::test]
    async fn truncation_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("d.log");
        let mut log = LogFile::open(p.clone(), LogConfig::default()).expect("open");
        let f = Follower::start(&p);
        settle().await;
        log.write_line(b"a fairly long line before the flush")
            .await
            .expect("write");
        settle().await;
        log.flush_truncate().expect("flush");
        settle().await;
        log.write_line(b"after").await.expect("write");
        assert_eq!(
            f.collect(2).await,
            ["a fairly long line before the flush", "after"]
        );
    }

    #[tokio::test]
    async fn external_logrotate_then_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("e.log");
        // An old rotated file that must not be replayed.
        fs::write(rotated_path(&p, 1), "ancient\n").expect("write");
        let mut log = LogFile::open(p.clone(), LogConfig::default()).expect("open");
        log.write_line(b"before").await.expect("write");
        let f = Follower::start(&p);
        settle().await;
        log.write_line(b"one").await.expect("write");
        fs::rename(&p, dir.path().join("e.log-20260101")).expect("rename");
        log.write_line(b"two").await.expect("write");
        // Keep the new file's modification time clearly after the old one's.
        tokio::time::sleep(Duration::from_millis(20)).await;
        log.reopen().expect("reopen");
        log.write_line(b"three").await.expect("write");
        assert_eq!(f.collect(3).await, ["one", "two", "three"]);
    }

    #[tokio::test]
    async fn cancel_stops_waiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cancel = CancellationToken::new();
        cancel.cancel();
        follow(&dir.path().join("never.log"), cancel, |_| {})
            .await
            .expect("follow");
    }
}
