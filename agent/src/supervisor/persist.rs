//! The persisted process list: every app's resolved spec, whether it should run, and which
//! processes were running for it — pid *and* start time, so a daemon that died without
//! stopping its apps can find exactly those processes again and never a stranger that
//! inherited a recycled pid. Every write goes to `state.json` and then to a second copy,
//! `state.json.bak` (each written to a temporary file, fsynced, renamed), so one damaged file
//! never loses the list.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::protocol::AppSpec;
use serde::{Deserialize, Serialize};

use super::Inner;
use super::app::lock;
use crate::home::write_atomic;

/// `state.json` (and, with the same shape, `dump.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    pub version: u32,
    pub apps: Vec<SavedApp>,
    /// The release directory last applied in full (`apply_release`), for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedApp {
    pub spec: AppSpec,
    /// False once the user stopped it: restored as stopped.
    pub running: bool,
    /// The resolved instance count (after `scale`).
    pub instances: u32,
    pub processes: Vec<SavedProcess>,
}

/// One process the daemon had running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedProcess {
    pub id: u32,
    pub slot: u32,
    pub pid: u32,
    /// Clock ticks since boot, from `/proc/<pid>/stat`.
    pub start_time: u64,
}

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid process list: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl SavedState {
    /// Read a state file; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<SavedState, StateError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SavedState::default()),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn store(&self, path: &Path) -> Result<(), StateError> {
        let write = |source| StateError::Write {
            path: path.display().to_string(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| write(e.into()))?;
        write_atomic(path, &json).map_err(write)
    }
}

/// Whether `p` is still the very process that was recorded.
pub fn still_running(p: &SavedProcess) -> bool {
    crate::metrics::process_start_time(p.pid) == Some(p.start_time)
}

impl Inner {
    /// Write the process list to the state file, then to its backup: one damaged file
    /// never loses the list.
    pub(super) fn persist(&self) -> Result<(), StateError> {
        let _serial = lock(&self.persist_lock);
        let snapshot = self.snapshot();
        snapshot.store(&self.home.state_file())?;
        snapshot.store(&self.home.state_backup())
    }

    pub(super) fn snapshot(&self) -> SavedState {
        let apps: Vec<_> = lock(&self.apps).values().cloned().collect();
        SavedState {
            version: STATE_VERSION,
            release: lock(&self.release).clone(),
            apps: apps
                .iter()
                .map(|a| {
                    let processes = lock(&a.slots)
                        .iter()
                        .filter_map(|(slot, s)| {
                            let v = lock(&s.runner.as_ref()?.view).clone();
                            Some(SavedProcess {
                                id: s.id,
                                slot: *slot,
                                pid: v.pid?,
                                start_time: v.start_time?,
                            })
                        })
                        .collect();
                    SavedApp {
                        spec: a.spec(),
                        running: a.is_running(),
                        instances: a.count(),
                        processes,
                    }
                })
                .collect(),
        }
    }
}

/// Rewrites the state file whenever something changed, coalescing bursts.
pub(super) async fn persister(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = inner.dirty.notified() => {}
            _ = inner.tasks_cancel.cancelled() => return,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Err(e) = inner.persist() {
            tracing::error!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_pid_is_not_the_recorded_process() {
        let me = std::process::id();
        let start_time = crate::metrics::process_start_time(me).unwrap();
        assert!(still_running(&SavedProcess {
            id: 0,
            slot: 0,
            pid: me,
            start_time
        }));
        let other = SavedProcess {
            id: 0,
            slot: 0,
            pid: me,
            start_time: start_time + 1,
        };
        assert!(!still_running(&other));
    }

    #[test]
    fn state_round_trips_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(SavedState::load(&path).unwrap(), SavedState::default());
        let state = SavedState {
            version: STATE_VERSION,
            apps: Vec::new(),
            release: Some("/srv/app/releases/1".into()),
        };
        state.store(&path).unwrap();
        assert_eq!(SavedState::load(&path).unwrap(), state);
    }
}
