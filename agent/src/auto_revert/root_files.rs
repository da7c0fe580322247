//! What the auto-revert reads and changes in one deploy root, the way the controller's
//! scripts do it (docs/deploy.md): the pending record, `current`, a release's completeness,
//! the deploy lock (taken by hard-linking a complete file into place, broken and released by
//! renaming it aside first and looking at what was renamed), the switch (a fresh symlink
//! renamed over `current`), whole-line history appends, and the agent's own record.
//!
//! Files are read with [`read_small`]: no links followed, regular files only, bounded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use pmfleet_shared::protocol::{AUTO_REVERTED_FILE, AutoReverted, PENDING_FILE, Pending};

use super::decide::LockFacts;
use crate::api::deploy_roots::read_small;
use crate::api::release_gate::valid_id;

/// One deploy root registered on this host.
#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
}

impl Root {
    fn file(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    fn lock_path(&self) -> PathBuf {
        self.file(".pmfleet/lock")
    }

    /// The pending record, if there is one (an unreadable one is an error saying why).
    pub fn pending(&self) -> Result<Option<Pending>, String> {
        let Some(text) = read_small(&self.file(PENDING_FILE))? else {
            return Ok(None);
        };
        let p: Pending =
            serde_json::from_str(text.trim()).map_err(|e| format!("{PENDING_FILE}: {e}"))?;
        if !valid_id(&p.release) || !valid_id(&p.previous) {
            return Err(format!("{PENDING_FILE}: names no release id"));
        }
        Ok(Some(p))
    }

    /// The agent's last record of going back by itself.
    pub fn auto_reverted(&self) -> Option<AutoReverted> {
        let text = read_small(&self.file(AUTO_REVERTED_FILE)).ok().flatten()?;
        serde_json::from_str(text.trim()).ok()
    }

    /// The release `current` points at.
    pub fn current(&self) -> Option<String> {
        let target = std::fs::read_link(self.file("current")).ok()?;
        let id = target.strip_prefix("releases").ok()?.to_str()?.to_string();
        valid_id(&id).then_some(id)
    }

    /// `id` is a complete release: a real directory under `releases/` and its marker.
    pub fn complete(&self, id: &str) -> bool {
        valid_id(id)
            && std::fs::symlink_metadata(self.file(&format!("releases/{id}")))
                .is_ok_and(|m| m.is_dir())
            && std::fs::symlink_metadata(self.file(&format!(".pmfleet/prepared/{id}")))
                .is_ok_and(|m| m.is_file())
    }

    /// The deploy lock: its run, whether it is a manual one, its heartbeat's age.
    pub fn lock(&self) -> Option<LockFacts> {
        let path = self.lock_path();
        let meta = std::fs::symlink_metadata(&path).ok()?;
        let age_secs = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .map_or(0, |d| d.as_secs());
        let holder: serde_json::Value = read_small(&path)
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str(t.trim()).ok())
            .unwrap_or_default();
        Some(LockFacts {
            deploy_id: holder["deploy_id"].as_str().unwrap_or_default().to_string(),
            manual: holder["manual"].as_bool().unwrap_or(false),
            age_secs,
        })
    }

    /// Takes the deploy lock with `content`, first breaking `stale` (the lock judged dead)
    /// if it is still that one. False when another run holds it (or took it meanwhile).
    pub fn take_lock(&self, content: &str, stale: Option<&LockFacts>) -> std::io::Result<bool> {
        let lock = self.lock_path();
        if let Some(stale) = stale {
            let aside = self.file(&format!(".pmfleet/lock.break.{}", std::process::id()));
            match std::fs::rename(&lock, &aside) {
                Ok(()) => {
                    let holder: serde_json::Value = read_small(&aside)
                        .ok()
                        .flatten()
                        .and_then(|t| serde_json::from_str(t.trim()).ok())
                        .unwrap_or_default();
                    if holder["deploy_id"].as_str().unwrap_or_default() != stale.deploy_id {
                        // Not the lock judged dead: put it back, unless a newer one came.
                        let _ = std::fs::hard_link(&aside, &lock);
                        let _ = std::fs::remove_file(&aside);
                        return Ok(false);
                    }
                    let _ = std::fs::remove_file(&aside);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let tmp = self.file(&format!(".pmfleet/lock.new.{}", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(content.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
        }
        let taken = std::fs::hard_link(&tmp, &lock);
        let _ = std::fs::remove_file(&tmp);
        match taken {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Releases the lock if run `deploy_id` holds it.
    pub fn release_lock(&self, deploy_id: &str) {
        let lock = self.lock_path();
        let aside = self.file(&format!(".pmfleet/lock.release.{}", std::process::id()));
        if std::fs::rename(&lock, &aside).is_err() {
            return;
        }
        let ours = read_small(&aside)
            .ok()
            .flatten()
            .is_some_and(|t| t.contains(&format!("\"deploy_id\":\"{deploy_id}\"")));
        if !ours {
            let _ = std::fs::hard_link(&aside, &lock);
        }
        let _ = std::fs::remove_file(&aside);
    }

    /// Points `current` at release `id` (a fresh symlink renamed over it).
    pub fn switch(&self, id: &str) -> std::io::Result<()> {
        let fresh = self.file(".pmfleet/current.new");
        let _ = std::fs::remove_file(&fresh);
        std::os::unix::fs::symlink(Path::new("releases").join(id), &fresh)?;
        std::fs::rename(&fresh, self.file("current"))
    }

    /// Appends one line to the history, ending a torn last line first.
    pub fn append_history(&self, line: &str) -> std::io::Result<()> {
        let path = self.file(".pmfleet/history.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        crate::home::append_whole_line(&mut f, line)
    }

    /// What the history says of `release`: the SHA and ref of its last successful deploy.
    pub fn sha_and_ref(&self, release: &str) -> (String, String) {
        let text = std::fs::read_to_string(self.file(".pmfleet/history.jsonl")).unwrap_or_default();
        text.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| {
                r["release"] == release && r["outcome"] == "success" && r["action"] == "deploy"
            })
            .map(|r| {
                (
                    r["sha"].as_str().unwrap_or_default().to_string(),
                    r["ref"].as_str().unwrap_or_default().to_string(),
                )
            })
            .unwrap_or_default()
    }

    pub fn write_auto_reverted(&self, record: &AutoReverted) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        crate::home::write_atomic(&self.file(AUTO_REVERTED_FILE), &bytes)
    }

    /// Removes the pending record if it is still `rollout`'s.
    pub fn remove_pending(&self, rollout: &str) {
        if self
            .pending()
            .ok()
            .flatten()
            .is_some_and(|p| p.rollout == rollout)
        {
            let _ = std::fs::remove_file(self.file(PENDING_FILE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        for d in ["releases/r1", "releases/r2", ".pmfleet/prepared"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join(".pmfleet/prepared/r1"), "{}").unwrap();
        std::os::unix::fs::symlink("releases/r2", dir.path().join("current")).unwrap();
        let root = Root {
            path: dir.path().to_path_buf(),
        };
        (dir, root)
    }

    #[test]
    fn a_stale_lock_is_broken_only_if_it_is_still_the_one_judged_dead() {
        let (_dir, root) = root();
        std::fs::write(root.lock_path(), r#"{"deploy_id":"R"}"#).unwrap();
        let theirs = LockFacts {
            deploy_id: "S".into(),
            manual: false,
            age_secs: 99,
        };
        assert!(
            !root
                .take_lock(r#"{"deploy_id":"A"}"#, Some(&theirs))
                .unwrap()
        );
        assert_eq!(root.lock().unwrap().deploy_id, "R", "put back");
        let dead = LockFacts {
            deploy_id: "R".into(),
            ..theirs
        };
        assert!(root.take_lock(r#"{"deploy_id":"A"}"#, Some(&dead)).unwrap());
        assert_eq!(root.lock().unwrap().deploy_id, "A");
        assert!(
            !root.take_lock(r#"{"deploy_id":"B"}"#, None).unwrap(),
            "held"
        );
        root.release_lock("B");
        assert_eq!(
            root.lock().unwrap().deploy_id,
            "A",
            "only its holder releases it"
        );
        root.release_lock("A");
        assert!(root.lock().is_none());
    }

    #[test]
    fn switching_and_recording() {
        let (_dir, root) = root();
        assert_eq!(root.current().as_deref(), Some("r2"));
        assert!(root.complete("r1"));
        assert!(!root.complete("r2"), "no marker");
        assert!(!root.complete("../r1"));
        root.switch("r1").unwrap();
        assert_eq!(root.current().as_deref(), Some("r1"));
        let history = root.path.join(".pmfleet/history.jsonl");
        std::fs::write(
            &history,
            "{\"release\":\"r1\",\"action\":\"deploy\",\"outcome\":\"success\",\"sha\":\"abc\",\"ref\":\"main\"}\n{\"torn",
        )
        .unwrap();
        root.append_history("{\"x\":1}").unwrap();
        let text = std::fs::read_to_string(&history).unwrap();
        assert!(text.ends_with("{\"torn\n{\"x\":1}\n"), "{text}");
        assert_eq!(root.sha_and_ref("r1"), ("abc".into(), "main".into()));
    }
}
