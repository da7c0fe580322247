//! What `list` and `show` see: one [`ProcessInfo`] row per slot, with the latest CPU and
//! memory sample, and the log files of an app.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use pmfleet_shared::protocol::{AppDetail, InstanceExtra, ProcessInfo, Target};

use super::app::{AppRuntime, lock};
use super::{Inner, Supervisor, SupervisorError};

impl Supervisor {
    pub fn list(&self) -> Vec<ProcessInfo> {
        let apps: Vec<_> = lock(&self.inner.apps).values().cloned().collect();
        apps.iter().flat_map(|a| self.inner.processes(a)).collect()
    }

    pub fn show(&self, name: &str) -> Result<AppDetail, SupervisorError> {
        let app = self.targets(&Target::App(name.to_string()))?.remove(0);
        let (out_logs, err_logs) = app.all_log_paths(self.inner.home.root());
        Ok(AppDetail {
            spec: app.spec(),
            processes: self.inner.processes(&app),
            out_logs,
            err_logs,
        })
    }

    /// The log files of `app` (of every app when `None`), by app name.
    pub fn log_files(&self, app: Option<&str>) -> Result<Vec<(String, PathBuf)>, SupervisorError> {
        let target = app.map_or(Target::All, |a| Target::App(a.to_string()));
        let mut out = Vec::new();
        for a in self.targets(&target)? {
            let (outs, errs) = a.all_log_paths(self.inner.home.root());
            out.extend(outs.into_iter().chain(errs).map(|p| (a.name.clone(), p)));
        }
        Ok(out)
    }
}

impl Inner {
    pub(super) fn processes(&self, app: &AppRuntime) -> Vec<ProcessInfo> {
        let spec = app.spec();
        let samples = lock(&self.samples);
        lock(&app.slots)
            .iter()
            .map(|(slot, s)| {
                let v = s
                    .runner
                    .as_ref()
                    .map(|r| lock(&r.view).clone())
                    .unwrap_or_else(super::app::View::stopped);
                let sample = v.pid.and_then(|p| samples.get(&p));
                ProcessInfo {
                    id: s.id,
                    name: app.name.clone(),
                    namespace: spec.namespace.clone(),
                    mode: spec.exec_mode,
                    instance: *slot,
                    pid: v.pid,
                    status: v.status,
                    uptime_ms: v
                        .started
                        .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(0)),
                    restarts: s.restarts.load(Ordering::SeqCst),
                    cpu_percent: sample.map(|s| s.cpu_percent),
                    rss_bytes: sample.map(|s| s.rss_bytes),
                    release: spec.env.get("PMFLEET_RELEASE").cloned(),
                    sha: spec.env.get("PMFLEET_SHA").cloned(),
                    extra: InstanceExtra {
                        cpu_seconds: sample.map(|s| s.cpu_seconds),
                        git_ref: spec.env.get("PMFLEET_REF").cloned(),
                        app_metrics: self.app_metrics.of(&app.name, *slot),
                    },
                }
            })
            .collect()
    }
}
