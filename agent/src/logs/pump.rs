//! Copies an instance's stdout or stderr into its log file, line by line.
//!
//! Lines are cut at `\n`. A line longer than [`MAX_LINE`] is split (at a UTF-8 character
//! boundary when there is one nearby) so one runaway write cannot hold the whole output in
//! memory, and a last line without a newline is written when the stream ends.
//!
//! The pipe is always drained, even when the log file cannot be written (disk full): an app
//! blocked on a full stdout pipe is worse than a gap in its log. Lost lines are reported once
//! through `tracing`, and the first write error is returned when the stream ends.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::LogFile;

/// The longest line written as one; longer ones are split.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads `reader` to its end and writes each line to `sink`.
pub async fn pump(reader: impl AsyncRead + Unpin, sink: Arc<Mutex<LogFile>>) -> io::Result<()> {
    pump_until(reader, sink, &CancellationToken::new(), Vec::new())
        .await
        .map(drop)
}

/// [`pump`], starting with `carried` (the unfinished line another pump stopped with), until
/// `stop` is cancelled: then it returns the unfinished line it holds, having written every
/// complete one, and leaves what it has not read in the pipe for whoever reads it next (the
/// new daemon after an in-place upgrade). At the end of the stream it returns nothing.
pub async fn pump_until(
    mut reader: impl AsyncRead + Unpin,
    sink: Arc<Mutex<LogFile>>,
    stop: &CancellationToken,
    carried: Vec<u8>,
) -> io::Result<Vec<u8>> {
    let mut chunk = vec![0u8; 16 * 1024];
    // Bytes read but not yet written: the unfinished line, then the new chunk.
    let mut pending: Vec<u8> = carried;
    let mut lines: Vec<Range<usize>> = Vec::new();
    let mut write_error: Option<io::Error> = None;
    loop {
        // Reading is cancel-safe: nothing is taken from the pipe unless the read completes.
        let n = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(pending),
            n = reader.read(&mut chunk) => n?,
        };
        let eof = n == 0;
        pending.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let consumed = cut_lines(&pending, eof, &mut lines);
        if !lines.is_empty() {
            let all = lines
                .iter()
                .map(|r| pending.get(r.clone()).unwrap_or_default());
            let result = sink.lock().await.write_lines(all);
            if let Err(e) = result
                && write_error.is_none()
            {
                tracing::warn!(error = %e, "cannot write to the log file; dropping lines");
                write_error = Some(e);
            }
        }
        pending.drain(..consumed);
        if eof {
            return write_error.map_or(Ok(Vec::new()), Err);
        }
    }
}

/// Finds the lines to write in `buf` (as ranges, without their newline) and returns how many
/// bytes they use up. Lines longer than [`MAX_LINE`] are cut into pieces; at `eof` the
/// unfinished rest is a line too.
fn cut_lines(buf: &[u8], eof: bool, lines: &mut Vec<Range<usize>>) -> usize {
    lines.clear();
    let mut start = 0;
    let long = |start: usize, end: usize, lines: &mut Vec<Range<usize>>| -> usize {
        let mut start = start;
        while end - start > MAX_LINE {
            let cut = start + char_boundary(buf.get(start..end).unwrap_or_default(), MAX_LINE);
            lines.push(start..cut);
            start = cut;
        }
        start
    };
    while let Some(i) = buf
        .get(start..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
    {
        let end = start + i;
        let from = long(start, end, lines);
        lines.push(from..end);
        start = end + 1;
    }
    start = long(start, buf.len(), lines);
    if eof && start < buf.len() {
        lines.push(start..buf.len());
        start = buf.len();
    }
    start
}

/// A cut position at or just before `at` that does not split a UTF-8 character (looking back
/// at most 3 bytes; binary data is cut at `at`).
fn char_boundary(bytes: &[u8], at: usize) -> usize {
    (at.saturating_sub(3)..=at)
        .rev()
        .find(|&i| i > 0 && bytes.get(i).is_some_and(|&b| (b & 0xC0) != 0x80))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::super::LogConfig;
    use super::*;

    async fn run(chunks: Vec<Vec<u8>>) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.log");
        let sink = Arc::new(Mutex::new(
            LogFile::open(path.clone(), LogConfig::default()).expect("open"),
        ));
        let mut builder = tokio_test_reader(chunks);
        pump(&mut builder, sink).await.expect("pump");
        std::fs::read_to_string(&path).expect("read")
    }

    /// A reader that returns the given chunks one read at a time.
    fn tokio_test_reader(chunks: Vec<Vec<u8>>) -> impl AsyncRead + Unpin {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for c in chunks {
                if tx.write_all(&c).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        rx
    }

    #[tokio::test]
    async fn lines_across_chunks() {
        let out = run(vec![
            b"one\ntw".to_vec(),
            b"o\nthr".to_vec(),
            b"ee".to_vec(),
            b"\nfour\nfive\n\nsix".to_vec(),
        ])
        .await;
        assert_eq!(out, "one\ntwo\nthree\nfour\nfive\n\nsix\n");
    }

    #[tokio::test]
    async fn empty_stream() {
        assert_eq!(run(vec![]).await, "");
    }

    #[tokio::test]
    async fn long_lines_are_split() {
        let long = "é".repeat(MAX_LINE); // 2 bytes each: 2 × MAX_LINE bytes
        let mut input = b"a\n".to_vec();
        input.extend_from_slice(long.as_bytes());
        input.extend_from_slice(b"\nb\n");
        let out = run(vec![input]).await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&"a"));
        assert_eq!(lines.last(), Some(&"b"));
        let middle = &lines[1..lines.len() - 1];
        assert!(middle.len() >= 2, "{}", middle.len());
        assert!(middle.iter().all(|l| l.len() <= MAX_LINE));
        assert_eq!(middle.concat(), long);
    }

    #[tokio::test]
    async fn long_line_across_many_chunks() {
        let long = vec![b'x'; 3 * MAX_LINE + 10];
        let chunks: Vec<Vec<u8>> = long.chunks(1000).map(<[u8]>::to_vec).collect();
        let mut chunks = chunks;
        chunks.push(b"\nend".to_vec());
        let out = run(chunks).await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines.len(),
            5,
            "{:?}",
            lines.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[3].len(), 10);
        assert_eq!(lines[4], "end");
    }

    #[test]
    fn cuts() {
        let mut lines = Vec::new();
        assert_eq!(cut_lines(b"ab\ncd\n\nef", false, &mut lines), 7);
        assert_eq!(lines, [0..2, 3..5, 6..6]);
        assert_eq!(cut_lines(b"ab\ncd\n\nef", true, &mut lines), 9);
        assert_eq!(lines, [0..2, 3..5, 6..6, 7..9]);
        assert_eq!(cut_lines(b"", true, &mut lines), 0);
        assert!(lines.is_empty());
        let long = vec![b'x'; MAX_LINE + 5];
        assert_eq!(cut_lines(&long, false, &mut lines), MAX_LINE);
        assert_eq!(lines, vec![0..MAX_LINE; 1]);
    }

    #[test]
    fn boundaries() {
        let s = "aé".as_bytes(); // 61 C3 A9
        assert_eq!(char_boundary(s, 2), 1);
        assert_eq!(char_boundary(s, 1), 1);
        assert_eq!(char_boundary(&[0x80; 10], 8), 8);
    }
}
