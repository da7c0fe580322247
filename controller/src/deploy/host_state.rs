//! What a host's deploy root holds, as printed by the `state` script.

use super::history::{self, Record};
use super::lock::Holder;
use super::rollout_record::RolloutRecord;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostState {
    /// `setup` has run (the layout exists).
    pub setup: bool,
    /// The deploy root with `~` expanded.
    pub root: String,
    /// The release `current` points at.
    pub current: Option<String>,
    /// Complete releases, oldest first.
    pub releases: Vec<String>,
    /// Release directories never marked complete (a deploy died or is running).
    pub incomplete: Vec<String>,
    /// Who holds the deploy lock now.
    pub lock: Option<Holder>,
    /// The last rollout that began on this host.
    pub rollout: Option<RolloutRecord>,
    pub history: Vec<Record>,
}

impl HostState {
    pub fn parse(text: &str) -> HostState {
        let mut state = HostState::default();
        let (head, history) = match text.split_once("--history--\n") {
            Some((head, history)) => (head, history),
            None => (text, ""),
        };
        let (head, rollout) = head.split_once("--rollout--\n").unwrap_or((head, ""));
        let (head, lock) = head.split_once("--lock--\n").unwrap_or((head, ""));
        state.lock = serde_json::from_str(lock.trim()).ok();
        state.rollout = RolloutRecord::parse(rollout);
        for line in head.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "setup" => state.setup = value == "yes",
                "root" => state.root = value.to_string(),
                "current" => {
                    state.current = value
                        .strip_prefix("releases/")
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                }
                "release" => state.releases.push(value.to_string()),
                "incomplete" => state.incomplete.push(value.to_string()),
                _ => {}
            }
        }
        state.releases.sort();
        state.history = history::parse(history);
        state
    }

    /// The last rollout, if it never finished and its run does not hold the lock now.
    pub fn interrupted(&self) -> Option<&RolloutRecord> {
        let holder = self.lock.as_ref().map(|h| h.deploy_id.as_str());
        self.rollout
            .as_ref()
            .filter(|r| r.interrupted_unless(holder))
    }

    /// Releases switched to, oldest first, minus those reverted away from.
    pub fn line(&self) -> Vec<String> {
        history::release_line(&self.history)
    }

    /// The release `n` deploys before the current one.
    pub fn revert_target(&self, n: usize) -> Option<String> {
        let line = self.line();
        line.len()
            .checked_sub(n + 1)
            .and_then(|i| line.get(i))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_state_output() {
        let text = "setup=yes\nroot=/srv/app\ncurrent=releases/b\nrelease=b\nrelease=a\nincomplete=c\n--history--\n";
        let s = HostState::parse(text);
        assert!(s.setup);
        assert_eq!(s.root, "/srv/app");
        assert_eq!(s.current.as_deref(), Some("b"));
        assert_eq!(s.releases, ["a", "b"]);
        assert_eq!(s.incomplete, ["c"]);
        assert!(!HostState::parse("setup=no\n").setup);
        assert_eq!(s.lock, None);
        assert_eq!(s.rollout, None);
        let text = "setup=yes\ncurrent=releases/b\n--lock--\n--rollout--\n{\"id\":\"x\",\"action\":\"deploy\",\"who\":\"w\",\"started\":\"t\",\"release\":\"b\",\"state\":\"running\"}\n--history--\n";
        let s = HostState::parse(text);
        assert_eq!(s.current.as_deref(), Some("b"));
        assert_eq!(s.rollout.as_ref().map(|r| r.id.as_str()), Some("x"));
        assert!(s.interrupted().is_some(), "nobody holds the lock");
        assert_eq!(HostState::parse("setup=yes\ncurrent=\n").current, None);
    }
}
