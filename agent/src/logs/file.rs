//! One log file with built-in size-based rotation.
//!
//! Rotation renames, never copies: `app-out.log.4 → .5`, …, `app-out.log → .1`, then a fresh
//! `app-out.log` is opened. A renamed file keeps its inode, so a reader that still has it open
//! (see [`follow`](super::follow)) reads it to the end and then moves on to its successor without
//! losing or repeating a line. Each line goes to the file in one `write` on an `O_APPEND`
//! descriptor, and the rename happens only after the last write to the old file returned.
//!
//! Writes are plain blocking appends: a log line lands in the page cache in microseconds, and
//! doing it inline keeps lines in order without a task per file. The methods that take the
//! async path ([`LogFile::write_line`]) are the ones called from the pumps.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::LogConfig;
use super::stamp::{DEFAULT_FORMAT, Stamp};

/// An open log file that rotates itself.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    cfg: LogConfig,
    file: File,
    /// Bytes in the current file (as far as this writer knows).
    size: u64,
    stamp: Option<Stamp>,
    /// Reused for assembling each write.
    buf: Vec<u8>,
}

/// Generation `n` of the log at `path`: the file itself for 0, else the rotated file `.n`.
pub(crate) fn generation_path(path: &Path, n: usize) -> PathBuf {
    if n == 0 {
        path.to_path_buf()
    } else {
        rotated_path(path, n)
    }
}

/// `path` with `.n` appended: `app-out.log.3`.
pub(crate) fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Shifts `path.n → path.n+1` (the oldest kept, `path.retain`, is replaced) and renames
/// `path` to `path.1`, leaving no file at `path`. Renames only: a writer or reader that has a
/// generation open keeps it.
pub(crate) fn shift_generations(path: &Path, retain: usize) -> io::Result<()> {
    for n in (1..retain).rev() {
        match fs::rename(rotated_path(path, n), rotated_path(path, n + 1)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    match fs::rename(path, rotated_path(path, 1)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    /// Opens (creating it and its directory if needed) `path` for appending.
    pub fn open(path: PathBuf, cfg: LogConfig) -> io::Result<LogFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        let stamp = cfg
            .time
            .then(|| Stamp::new(cfg.date_format.as_deref().unwrap_or(DEFAULT_FORMAT)));
        Ok(LogFile {
            path,
            cfg,
            file,
            size,
            stamp,
            buf: Vec::with_capacity(256),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `line` and a newline, with a timestamp prefix (`<time>: `) when `time` is set.
    /// Rotates first when the line would take the file past `max_size`.
    pub async fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_lines(std::iter::once(line))
    }

    /// Appends several lines, in as few writes as rotation allows.
    pub fn write_lines<'a>(&mut self, lines: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let result = self.write_lines_with(&mut buf, lines);
        // Keep the allocation, unless one huge burst made it large.
        if buf.capacity() <= 1 << 20 {
            self.buf = buf;
        }
        result
    }

    fn write_lines_with<'a>(
        &mut self,
        buf: &mut Vec<u8>,
        lines: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<()> {
        for line in lines {
            let start = buf.len();
            if let Some(stamp) = &mut self.stamp {
                stamp.write_now(buf);
                buf.extend_from_slice(b": ");
            }
            buf.extend_from_slice(line);
            buf.push(b'\n');
            let added = (buf.len() - start) as u64;
            let pending = start as u64;
            if self.size + pending + added > self.cfg.max_size && self.size + pending > 0 {
                // Everything before this line goes to the current file, then rotate.
                self.append(buf.get(..start).unwrap_or_default())?;
                buf.drain(..start);
                self.rotate()?;
            }
        }
        self.append(buf)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Shifts `path.n → path.n+1` (the oldest kept, `path.retain`, is replaced), renames `path`
    /// to `path.1` and opens a fresh `path`. With `retain: 0` the file is just emptied.
    fn rotate(&mut self) -> io::Result<()> {
        if self.cfg.retain == 0 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        shift_generations(&self.path, self.cfg.retain)?;
        self.reopen()
    }

    /// Opens `path` again: after an external tool (logrotate) moved it away, new lines go to a
    /// new file at the configured path (`reload-logs`).
    pub fn reopen(&mut self) -> io::Result<()> {
        let file = open_append(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = file;
        Ok(())
    }

    /// Empties the current file and removes the rotated ones (`flush`).
    pub fn flush_truncate(&mut self) -> io::Result<()> {
        let file = open_append(&self.path)?;
        file.set_len(0)?;
        self.file = file;
        self.size = 0;
        // Past `retain` too, in case an earlier configuration kept more.
        let mut n = 1;
        while n <= self.cfg.retain || rotated_path(&self.path, n).exists() {
            match fs::remove_file(rotated_path(&self.path, n)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            n += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_size: u64, retain: usize) -> LogConfig {
        LogConfig {
            max_size,
            retain,
            ..LogConfig::default()
        }
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_default()
    }

    #[tokio::test]
    async fn appends_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/app-out.log");
        let mut f = LogFile::open(path.clone(), LogConfig::default()).expect("open");
        f.write_line(b"one").await.expect("write");
        f.write_line(b"").await.expect("write");
        f.write_line(b"three").await.expect("write");
        assert_eq!(read(&path), "one\n\nthree\n");
        // Reopening appends to what is there.
        let mut f = LogFile::open(path.clone(), LogConfig::default()).expect("open");
        f.write_line(b"four").await.expect("write");
        assert_eq!(read(&path), "one\n\nthree\nfour\n");
        assert_eq!(f.path(), path);
    }

    #[tokio::test]
    async fn timestamps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.log");
        let mut f = LogFile::open(
            path.clone(),
            LogConfig {
                time: true,
                ..LogConfig::default()
            },
        )
        .expect("open");
        f.write_line(b"hello").await.expect("write");
        let text = read(&path);
        // 2026-03-07T09:05:04: hello
        assert_eq!(text.len(), "2026-03-07T09:05:04: hello\n".len(), "{text}");
        assert!(
            text.ends_with(": hello\n") && text.as_bytes()[10] == b'T',
            "{text}"
        );

        let path = dir.path().join("u.log");
        let mut f = LogFile::open(
            path.clone(),
            LogConfig {
                time: true,
                date_format: Some("[day] DD".into()),
                ..LogConfig::default()
            },
        )
        .expect("open");
        f.write_line(b"x").await.expect("write");
        let text = read(&path);
        assert!(
            text.starts_with("day ") && text.ends_with(": x\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn rotates_and_keeps_retain_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        // Each line is 4 bytes ("00x\n"); 3 lines fit in 12 bytes.
        let mut f = LogFile::open(path.clone(), cfg(12, 2)).expect("open");
        for i in 0..10 {
            f.write_line(format!("{i:02}x").as_bytes())
                .await
                .expect("write");
        }
        assert_eq!(read(&path), "09x\n");
        assert_eq!(read(&rotated_path(&path, 1)), "06x\n07x\n08x\n");
        assert_eq!(read(&rotated_path(&path, 2)), "03x\n04x\n05x\n");
        assert!(!rotated_path(&path, 3).exists());
    }

    #[tokio::test]
    async fn batched_writes_rotate_at_the_same_places() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.log");
        let mut f = LogFile::open(path.clone(), cfg(12, 5)).expect("open");
        let lines: Vec<String> = (0..10).map(|i| format!("{i:02}x")).collect();
        f.write_lines(lines.iter().map(|l| l.as_bytes()))
            .expect("write");
        assert_eq!(read(&path), "09x\n");
        assert_eq!(read(&rotated_path(&path, 1)), "06x\n07x\n08x\n");
        assert_eq!(read(&rotated_path(&path, 3)), "00x\n01x\n02x\n");
    }

    #[tokio::test]
    async fn a_line_longer_than_max_size_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let mut f = LogFile::open(path.clone(), cfg(8, 5)).expect("open");
        f.write_line(b"ab").await.expect("write");
        f.write_line(b"0123456789").await.expect("write");
        f.write_line(b"cd").await.expect("write");
        assert_eq!(read(&path), "cd\n");
        assert_eq!(read(&rotated_path(&path, 1)), "0123456789\n");
        assert_eq!(read(&rotated_path(&path, 2)), "ab\n");
    }

    #[tokio::test]
    async fn retain_zero_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.log");
        let mut f = LogFile::open(path.clone(), cfg(8, 0)).expect("open");
        for l in ["aaa", "bbb", "ccc"] {
            f.write_line(l.as_bytes()).await.expect("write");
        }
        assert_eq!(read(&path), "ccc\n");
        assert!(!rotated_path(&path, 1).exists());
    }

    #[tokio::test]
    async fn flush_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e.log");
        let mut f = LogFile::open(path.clone(), cfg(8, 2)).expect("open");
        for l in ["aaa", "bbb", "ccc", "ddd", "eee"] {
            f.write_line(l.as_bytes()).await.expect("write");
        }
        // Left over from a configuration with more rotated files.
        fs::write(rotated_path(&path, 3), "old\n").expect("write");
        fs::write(rotated_path(&path, 4), "older\n").expect("write");
        f.flush_truncate().expect("flush");
        assert_eq!(read(&path), "");
        for n in 1..=4 {
            assert!(!rotated_path(&path, n).exists(), "{n}");
        }
        f.write_line(b"fff").await.expect("write");
        assert_eq!(read(&path), "fff\n");

        // logrotate moves the file away; reload-logs reopens the path.
        fs::rename(&path, dir.path().join("e.log.moved")).expect("rename");
        f.write_line(b"ggg").await.expect("write");
        f.reopen().expect("reopen");
        f.write_line(b"hhh").await.expect("write");
        assert_eq!(read(&dir.path().join("e.log.moved")), "fff\nggg\n");
        assert_eq!(read(&path), "hhh\n");
    }
}
