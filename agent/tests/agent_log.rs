//! The daemon's own log rotates like an app's: `agent.log` → `agent.log.1` … by size, every
//! line whole in exactly one generation, and the daemon goes on writing to the current file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pmfleet_testkit::{AgentHome, wait_until};

/// `agent.log`'s generations that exist, oldest first, then the file itself.
fn generations(home: &Path) -> Vec<PathBuf> {
    let log = home.join("agent.log");
    let mut files: Vec<PathBuf> = (1..)
        .map(|n| PathBuf::from(format!("{}.{n}", log.display())))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(log);
    files
}

fn count(files: &[PathBuf], needle: &str) -> usize {
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(needle))
                .count()
        })
        .sum()
}

#[test]
fn the_agents_own_log_rotates_and_keeps_every_line() {
    let agent = AgentHome::new();
    let max_size = 3000;
    // The daemon started in the background, its output in agent.log, rotated at 3000 bytes.
    let out = agent
        .command()
        .env("PMFLEET_AGENT_LOG_MAX_SIZE", max_size.to_string())
        .arg("ping")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An app that fails 29 times, then stays up: 30 spawns, 29 exits, each one logged.
    agent.write(
        "flaky.sh",
        "n=$(cat runs 2>/dev/null || echo 0); n=$((n + 1)); echo $n > runs\n\
         [ $n -ge 30 ] && exec sleep 1000\n\
         exit 1\n",
    );
    agent.write(
        "ecosystem.json",
        r#"{"apps": [{"name": "flaky", "script": "flaky.sh", "max_restarts": 100}]}"#,
    );
    agent.ok(&["start", "ecosystem.json"]);
    let runs = agent.work.path().join("runs");
    wait_until(Duration::from_secs(30), "30 runs", || {
        std::fs::read_to_string(&runs).is_ok_and(|s| s.trim() == "30")
    });
    agent.wait_online("flaky", 1);
    let home = agent.home.path();
    wait_until(Duration::from_secs(10), "every spawn logged", || {
        count(&generations(home), "spawned app=flaky") == 30
    });
    let files = generations(home);
    assert!(files.len() >= 3, "rotated at least twice: {files:?}");
    assert!(files.len() <= 6, "at most 5 kept: {files:?}");
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= max_size, "{} has {len} bytes", f.display());
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            f.display()
        );
    }
    // Nothing lost, nothing twice: every spawn and every exit exactly once across the files.
    assert_eq!(count(&files, "spawned app=flaky"), 30);
    assert_eq!(count(&files, "instance exited app=flaky"), 29);

    // The daemon still writes to the current file.
    agent.ok(&["stop", "flaky"]);
    wait_until(
        Duration::from_secs(10),
        "the newest line in agent.log",
        || {
            std::fs::read_to_string(home.join("agent.log"))
                .is_ok_and(|t| t.lines().any(|l| l.contains("stopped app=flaky")))
        },
    );
}
