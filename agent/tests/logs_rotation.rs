//! Real child processes writing fast into rotating log files while a follower reads along:
//! nothing may be lost or repeated, neither in the files nor by the follower.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pmfleet_agent::logs::{LogConfig, LogFile, MAX_LINE, follow, pump, tail};
use pmfleet_testkit::procs::open_count;
use pmfleet_testkit::wait::wait_until_async;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// `path`, `path.1`, … read oldest first and split into lines.
fn all_lines(path: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = (1..)
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(path.to_path_buf());
    files
        .iter()
        .flat_map(|p| {
            fs::read_to_string(p)
                .expect("read log")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn rotated_count(path: &Path) -> usize {
    (1..)
        .take_while(|n| Path::new(&format!("{}.{n}", path.display())).exists())
        .count()
}

/// Follows `path` in the background.
struct Follower {
    lines: Arc<Mutex<Vec<String>>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
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

    /// Waits until the follower has opened the (just created) file at `path`, next to the
    /// sink that writes it, so it reads from before the first line.
    async fn wait_open(&self, path: &Path) {
        let me = std::process::id();
        wait_until_async(
            Duration::from_secs(10),
            "the follower to open the log",
            || open_count(me, path) >= 2,
        )
        .await;
    }

    /// Waits until `n` lines arrived (at most 30 s), lets it run a little longer to catch
    /// duplicates (the point of the pause: lines that arrive too many), then stops it.
    async fn finish(self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.lines.lock().expect("lock").len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.cancel.cancel();
        self.task.await.expect("join").expect("follow");
        std::mem::take(&mut *self.lines.lock().expect("lock"))
    }
}

fn sink(path: &Path, max_size: u64, retain: usize) -> Arc<tokio::sync::Mutex<LogFile>> {
    let cfg = LogConfig {
        max_size,
        retain,
        ..LogConfig::default()
    };
    Arc::new(tokio::sync::Mutex::new(
        LogFile::open(path.to_path_buf(), cfg).expect("open log"),
    ))
}

/// Compares without printing a hundred thousand lines on failure.
fn assert_same(what: &str, got: &[String], expected: &[String]) {
    if got == expected {
        return;
    }
    let first_diff = got
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expected.len()));
    panic!(
        "{what}: {} lines, expected {}; first difference at {first_diff}: got {:?}, expected {:?}",
        got.len(),
        expected.len(),
        got.get(first_diff),
        expected.get(first_diff),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_writer_many_rotations_nothing_lost_or_repeated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("logs/app-out.log");
    let log = sink(&path, 16 * 1024, 1000);
    let follower = Follower::start(&path);
    follower.wait_open(&path).await;

    // `seq` writes in buffered blocks, so lines arrive split across reads.
    const N: usize = 200_000;
    let mut child = Command::new("seq")
        .args(["-f", "line %06g", "1", &N.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn seq");
    let stdout = child.stdout.take().expect("stdout");
    pump(stdout, log.clone()).await.expect("pump");
    assert!(child.wait().await.expect("wait").success());

    let expected: Vec<String> = (1..=N).map(|i| format!("line {i:06}")).collect();
    let rotations = rotated_count(&path);
    assert!(rotations > 50, "only {rotations} rotations");
    assert_same("files", &all_lines(&path), &expected);
    assert_same("follower", &follower.finish(N).await, &expected);

    // tail reaches back across rotated files.
    let last = tail(&path, 5_000).expect("tail");
    assert_same("tail", &last, &expected[N - 5_000..]);
    let last = tail(&path, 3).expect("tail");
    assert_same("tail 3", &last, &expected[N - 3..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_into_one_merged_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("merged.log");
    let log = sink(&path, 8 * 1024, 1000);
    let follower = Follower::start(&path);
    follower.wait_open(&path).await;

    // Two instances of an app, one on stdout, one on stderr, written line by line by a shell.
    const N: usize = 5_000;
    let script = format!(
        "i=0; while [ $i -lt {N} ]; do echo \"$1 $i\"; i=$((i+1)); done; printf 'tail-%s' \"$1\""
    );
    let mut a = Command::new("sh")
        .args(["-c", &script, "sh", "a"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a");
    let mut b = Command::new("sh")
        .args(["-c", &format!("{{ {script}; }} 1>&2"), "sh", "b"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn b");
    let pa = tokio::spawn(pump(a.stdout.take().expect("stdout"), log.clone()));
    let pb = tokio::spawn(pump(b.stderr.take().expect("stderr"), log.clone()));
    pa.await.expect("join").expect("pump a");
    pb.await.expect("join").expect("pump b");
    a.wait().await.expect("wait a");
    b.wait().await.expect("wait b");

    let check = |what: &str, lines: &[String]| {
        for who in ["a", "b"] {
            let mine: Vec<&String> = lines.iter().filter(|l| l.starts_with(who)).collect();
            assert_eq!(mine.len(), N, "{what}: lines of {who}");
            for (i, l) in mine.iter().enumerate() {
                assert_eq!(**l, format!("{who} {i}"), "{what}: line {i} of {who}");
            }
            // The last line had no newline: written when the stream ended.
            let tails = lines
                .iter()
                .filter(|l| **l == format!("tail-{who}"))
                .count();
            assert_eq!(tails, 1, "{what}: unterminated last line of {who}");
        }
        assert_eq!(lines.len(), 2 * N + 2, "{what}: nothing else");
    };
    check("files", &all_lines(&path));
    check("follower", &follower.finish(2 * N + 2).await);
}

#[tokio::test]
async fn long_lines_and_stderr_of_a_python_app() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("py-out.log");
    let err_path = dir.path().join("py-err.log");
    let out = sink(&out_path, 1024 * 1024, 5);
    let err = sink(&err_path, 1024 * 1024, 5);
    let script = format!(
        "import sys\n\
         print('start', flush=True)\n\
         sys.stdout.write('x' * {})\n\
         sys.stdout.write('\\nend\\n')\n\
         sys.stderr.write('oops\\n')\n",
        2 * MAX_LINE + 100
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let po = tokio::spawn(pump(child.stdout.take().expect("stdout"), out));
    let pe = tokio::spawn(pump(child.stderr.take().expect("stderr"), err));
    po.await.expect("join").expect("pump out");
    pe.await.expect("join").expect("pump err");
    assert!(child.wait().await.expect("wait").success());

    let lines = all_lines(&out_path);
    let lens: Vec<usize> = lines.iter().map(String::len).collect();
    assert_eq!(lens, [5, MAX_LINE, MAX_LINE, 100, 3], "{lens:?}");
    assert_eq!(all_lines(&err_path), ["oops"]);
}

#[tokio::test]
async fn timestamped_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.log");
    let cfg = LogConfig {
        time: true,
        date_format: Some("YYYY-MM-DD HH:mm:ss.SSS Z".into()),
        ..LogConfig::default()
    };
    let log = Arc::new(tokio::sync::Mutex::new(
        LogFile::open(path.clone(), cfg).expect("open"),
    ));
    let mut child = Command::new("sh")
        .args(["-c", "echo hello; echo world"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    pump(child.stdout.take().expect("stdout"), log)
        .await
        .expect("pump");
    child.wait().await.expect("wait");
    let lines = tail(&path, 10).expect("tail");
    assert_eq!(lines.len(), 2);
    for (line, word) in lines.iter().zip(["hello", "world"]) {
        // 2026-03-07 09:05:04.012 +07:00: hello
        let (stamp, text) = line.split_once(": ").expect("prefix");
        assert_eq!(text, word);
        assert_eq!(
            stamp.len(),
            "2026-03-07 09:05:04.012 +07:00".len(),
            "{line}"
        );
        assert!(
            stamp.get(23..25).is_some_and(|s| s == " +" || s == " -"),
            "{line}"
        );
    }
}
