//! The last lines of a log, read backwards from the end so a large file costs no more than the
//! lines asked for. When the current file is short (it was just rotated), the rotated files
//! `path.1`, `path.2`, … supply the lines before it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::file::generation_path;

const BLOCK: u64 = 64 * 1024;

/// The last `lines` lines of the log at `path`, oldest first, continuing into the rotated files
/// when `path` has fewer. A missing file has no lines. Invalid UTF-8 is replaced.
pub fn tail(path: &Path, lines: usize) -> io::Result<Vec<String>> {
    let mut chunks: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut found = 0;
    let mut n = 0;
    while found < lines {
        let p = generation_path(path, n);
        let file = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if n == 0 {
                    // Between a rotation's rename and the new file; the rotated ones may exist.
                    n += 1;
                    continue;
                }
                break;
            }
            Err(e) => return Err(e),
        };
        let got = last_lines(file, lines - found)?;
        found += got.len();
        chunks.push(got);
        n += 1;
    }
    Ok(chunks
        .into_iter()
        .rev()
        .flatten()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .collect())
}

/// The last `want` lines of `file` (fewer if it has fewer), oldest first, without newlines.
/// A final line without a newline counts as a line.
fn last_lines(mut file: File, want: usize) -> io::Result<Vec<Vec<u8>>> {
    if want == 0 {
        return Ok(Vec::new());
    }
    let len = file.metadata()?.len();
    // Read blocks from the end until the data holds `want` newlines besides the file's final
    // one (then the last `want` lines are all complete), or the start of the file is reached.
    let mut data: Vec<u8> = Vec::new();
    let mut pos = len;
    let mut newlines = 0;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        newlines += block.iter().filter(|&&b| b == b'\n').count();
        block.extend_from_slice(&data);
        data = block;
        pos = start;
        let trailing = usize::from(data.last() == Some(&b'\n'));
        if newlines >= want + trailing {
            break;
        }
    }
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    if body.is_empty() && data.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<Vec<u8>> = body
        .rsplit(|&b| b == b'\n')
        .take(want)
        .map(<[u8]>::to_vec)
        .collect();
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::file::rotated_path;
    use std::fs;

    fn numbered(from: usize, to: usize) -> String {
        (from..to).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn last_lines_of_one_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.log");
        fs::write(&p, numbered(0, 10)).expect("write");
        assert_eq!(tail(&p, 3).expect("tail"), ["line 7", "line 8", "line 9"]);
        assert_eq!(tail(&p, 10).expect("tail").len(), 10);
        assert_eq!(tail(&p, 100).expect("tail").len(), 10);
        assert!(tail(&p, 0).expect("tail").is_empty());
    }

    #[test]
    fn edge_cases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("b.log");
        assert!(tail(&p, 5).expect("missing file").is_empty());
        fs::write(&p, "").expect("write");
        assert!(tail(&p, 5).expect("empty").is_empty());
        fs::write(&p, "\n").expect("write");
        assert_eq!(tail(&p, 5).expect("one empty line"), [""]);
        fs::write(&p, "a\n\nb").expect("write");
        assert_eq!(tail(&p, 2).expect("no final newline"), ["", "b"]);
        assert_eq!(tail(&p, 5).expect("no final newline"), ["a", "", "b"]);
        fs::write(&p, b"ok\n\xff\xfe\n").expect("write");
        assert_eq!(tail(&p, 1).expect("binary"), ["\u{fffd}\u{fffd}"]);
    }

    #[test]
    fn spans_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.log");
        let text = numbered(0, 50_000); // ~600 KiB, many blocks
        fs::write(&p, &text).expect("write");
        let got = tail(&p, 20_000).expect("tail");
        assert_eq!(got.len(), 20_000);
        assert_eq!(got.first().map(String::as_str), Some("line 30000"));
        assert_eq!(got.last().map(String::as_str), Some("line 49999"));
        // A line longer than a block.
        let long = "y".repeat(200_000);
        fs::write(&p, format!("first\n{long}\nlast\n")).expect("write");
        assert_eq!(tail(&p, 2).expect("tail"), [long.as_str(), "last"]);
        assert_eq!(tail(&p, 3).expect("tail"), ["first", long.as_str(), "last"]);
    }

    #[test]
    fn reaches_into_rotated_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("d.log");
        fs::write(rotated_path(&p, 2), numbered(0, 5)).expect("write");
        fs::write(rotated_path(&p, 1), numbered(5, 10)).expect("write");
        fs::write(&p, numbered(10, 12)).expect("write");
        assert_eq!(tail(&p, 2).expect("tail"), ["line 10", "line 11"]);
        assert_eq!(
            tail(&p, 4).expect("tail"),
            ["line 8", "line 9", "line 10", "line 11"]
        );
        let all = tail(&p, 100).expect("tail");
        assert_eq!(
            all,
            (0..12).map(|i| format!("line {i}")).collect::<Vec<_>>()
        );
        // The current file is missing for a moment during a rotation.
        fs::remove_file(&p).expect("remove");
        assert_eq!(tail(&p, 1).expect("tail"), ["line 9"]);
    }
}
