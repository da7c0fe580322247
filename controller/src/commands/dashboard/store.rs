//! The dashboard's memory, in SQLite (a file of the controller, created on first start): a
//! sample of every instance each time its host answers (CPU, memory, restarts, status), so the
//! charts show the last hours even after a restart, and every rollout record the hosts showed,
//! which is the deploy history per environment. Samples older than the retention are pruned.

use std::path::Path;
use std::time::Duration;

use pmfleet_shared::protocol::AgentStatus;
use rusqlite::{Connection, OptionalExtension, params};

/// What went wrong with the history file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("the dashboard's history: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// One instance as a host reported it at `at` (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: i64,
    pub host: String,
    pub app: String,
    pub instance: u32,
    pub cpu: Option<f64>,
    pub rss: Option<u64>,
    pub restarts: u32,
    pub status: String,
}

/// One rollout as a host's record showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub env: String,
    pub host: String,
    pub id: String,
    pub action: String,
    pub who: String,
    pub started: String,
    pub finished: Option<String>,
    pub release: String,
    pub state: String,
}

/// The open history.
pub struct Store {
    conn: Connection,
    keep: Duration,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS samples (
    at INTEGER NOT NULL, host TEXT NOT NULL, app TEXT NOT NULL, instance INTEGER NOT NULL,
    cpu REAL, rss INTEGER, restarts INTEGER NOT NULL, status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_app ON samples (app, at);
CREATE TABLE IF NOT EXISTS rollouts (
    env TEXT NOT NULL, host TEXT NOT NULL, id TEXT NOT NULL, action TEXT NOT NULL,
    who TEXT NOT NULL, started TEXT NOT NULL, finished TEXT, release TEXT NOT NULL,
    state TEXT NOT NULL, PRIMARY KEY (env, host, id)
);
";

impl Store {
    /// Open (or create) the history at `path`, keeping samples for `keep`.
    pub fn open(path: &Path, keep: Duration) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(open_error)?;
        conn.execute_batch(SCHEMA).map_err(open_error)?;
        Ok(Store { conn, keep })
    }

    /// Record what host `host` of `env` answered at `at`.
    pub fn record(
        &mut self,
        at: i64,
        env: &str,
        host: &str,
        status: &AgentStatus,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO samples (at, host, app, instance, cpu, rss, restarts, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for p in &status.processes {
                insert.execute(params![
                    at,
                    host,
                    p.name,
                    p.instance,
                    p.cpu_percent.map(f64::from),
                    p.rss_bytes.and_then(|b| i64::try_from(b).ok()),
                    p.restarts,
                    p.status.to_string(),
                ])?;
            }
            let mut upsert = tx.prepare_cached(
                "INSERT INTO rollouts (env, host, id, action, who, started, finished, release, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (env, host, id) DO UPDATE SET finished = ?7, state = ?9",
            )?;
            for r in status.roots.iter().filter_map(|root| root.rollout.as_ref()) {
                if r.id.is_empty() {
                    continue;
                }
                upsert.execute(params![
                    env, host, r.id, r.action, r.who, r.started, r.finished, r.release, r.state
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forget samples older than the retention, as of `now`; how many went.
    pub fn prune(&mut self, now: i64) -> Result<usize, StoreError> {
        let keep = i64::try_from(self.keep.as_secs()).unwrap_or(i64::MAX);
        let before = now.saturating_sub(keep);
        Ok(self
            .conn
            .execute("DELETE FROM samples WHERE at < ?1", params![before])?)
    }

    /// The samples of `app` since `since`, oldest first.
    pub fn samples(&self, app: &str, since: i64) -> Result<Vec<Sample>, StoreError> {
        let mut q = self.conn.prepare_cached(
            "SELECT at, host, app, instance, cpu, rss, restarts, status FROM samples
             WHERE app = ?1 AND at >= ?2 ORDER BY at, host, instance",
        )?;
        let rows = q.query_map(params![app, since], |r| {
            Ok(Sample {
                at: r.get(0)?,
                host: r.get(1)?,
                app: r.get(2)?,
                instance: r.get(3)?,
                cpu: r.get(4)?,
                rss: r
                    .get::<_, Option<i64>>(5)?
                    .and_then(|b| u64::try_from(b).ok()),
                restarts: r.get(6)?,
                status: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The rollouts seen in `env`, the latest first (at most 200).
    pub fn rollouts(&self, env: &str) -> Result<Vec<Rollout>, StoreError> {
        let mut q = self.conn.prepare_cached(
            "SELECT env, host, id, action, who, started, finished, release, state FROM rollouts
             WHERE env = ?1 ORDER BY started DESC, host LIMIT 200",
        )?;
        let rows = q.query_map(params![env], |r| {
            Ok(Rollout {
                env: r.get(0)?,
                host: r.get(1)?,
                id: r.get(2)?,
                action: r.get(3)?,
                who: r.get(4)?,
                started: r.get(5)?,
                finished: r.get(6)?,
                release: r.get(7)?,
                state: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The oldest sample kept, if any.
    pub fn oldest(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT MIN(at) FROM samples", [], |r| r.get(0))
            .optional()?
            .flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmfleet_shared::protocol::{DeployRoot, ExecModeSpec, ProcessInfo, RolloutSeen, Status};

    fn status(cpu: f32, rollout_state: &str) -> AgentStatus {
        AgentStatus {
            version: "0.1.0".into(),
            hostname: "web1".into(),
            uptime_secs: 1,
            release: None,
            processes: vec![ProcessInfo {
                id: 0,
                name: "api".into(),
                namespace: "default".into(),
                mode: ExecModeSpec::Fork,
                instance: 0,
                pid: Some(10),
                status: Status::Online,
                uptime_ms: Some(1000),
                restarts: 2,
                cpu_percent: Some(cpu),
                rss_bytes: Some(1 << 20),
                release: Some("r1".into()),
                sha: None,
                extra: Default::default(),
            }],
            roots: vec![DeployRoot {
                path: "/srv/app".into(),
                current: Some("r1".into()),
                current_error: None,
                rollout: Some(RolloutSeen {
                    id: "run-1".into(),
                    action: "deploy".into(),
                    who: "alice".into(),
                    started: "2026-12-01T10:00:00Z".into(),
                    release: "r1".into(),
                    state: rollout_state.into(),
                    finished: (rollout_state == "finished").then(|| "2026-12-01T10:00:09Z".into()),
                    ..Default::default()
                }),
                rollout_error: None,
                lock: None,
                apps: Vec::new(),
                ..Default::default()
            }],
            applying: false,
            host: None,
        }
    }

    #[test]
    fn samples_and_rollouts_survive_a_restart_and_old_samples_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dashboard.sqlite");
        {
            let mut store = Store::open(&path, Duration::from_secs(3600)).unwrap();
            store
                .record(1_000, "production", "web1", &status(5.0, "running"))
                .unwrap();
            store
                .record(5_000, "production", "web1", &status(7.0, "finished"))
                .unwrap();
        }
        let mut store = Store::open(&path, Duration::from_secs(3600)).unwrap();
        let got = store.samples("api", 0).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].at, got[0].cpu, got[0].rss),
            (1_000, Some(5.0), Some(1 << 20))
        );
        assert_eq!((got[1].restarts, got[1].status.as_str()), (2, "online"));
        assert!(store.samples("other", 0).unwrap().is_empty());
        // One rollout, updated in place when it finished.
        let rollouts = store.rollouts("production").unwrap();
        assert_eq!(rollouts.len(), 1, "{rollouts:?}");
        assert_eq!(rollouts[0].state, "finished");
        assert_eq!(
            rollouts[0].finished.as_deref(),
            Some("2026-12-01T10:00:09Z")
        );
        assert!(store.rollouts("staging").unwrap().is_empty());
        // Retention: an hour before 5 400 is 1 800; the sample at 1 000 goes.
        assert_eq!(store.prune(5_400).unwrap(), 1);
        assert_eq!(store.oldest().unwrap(), Some(5_000));
        assert_eq!(store.samples("api", 0).unwrap().len(), 1);
    }
}
