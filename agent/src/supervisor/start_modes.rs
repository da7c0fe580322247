//! The two ways `start` of an ecosystem file can differ from a plain start, as PM2 has them:
//! an app with `autostart: false` is added but left stopped, and `startOrReload` rolls an app
//! the agent already runs to the file's spec instead of restarting it.

use std::sync::Arc;

use pmfleet_shared::protocol::{AppSpec, Target};

use super::app::{AppRuntime, lock};
use super::{Messages, Supervisor, SupervisorError};

impl Supervisor {
    /// Whether the agent knows an app of this name (running or not).
    pub(super) fn knows(&self, name: &str) -> bool {
        lock(&self.inner.apps).contains_key(name)
    }

    /// `autostart: false`: the app is listed, stopped, with its instances' ids, until
    /// `start <app>` or `restart <app>` starts it; the state file keeps it stopped.
    pub(super) fn add_stopped(&self, spec: AppSpec) -> Messages {
        let name = spec.name.clone();
        let count = spec.instances.resolve(self.inner.cpus);
        let app = Arc::new(AppRuntime::new(spec, count));
        self.inner.ensure_slots(&app, count);
        lock(&self.inner.apps).insert(name.clone(), app);
        self.inner.mark_dirty();
        vec![format!(
            "{name}: added, not started (autostart: false); `pmfleet-agent start {name}` starts it"
        )]
    }

    /// `startOrReload`: an app that runs the same spec gets a rolling reload (new processes,
    /// the same settings); one whose spec changed is rolled to the new spec as a release
    /// would be (zero downtime in cluster mode, a restart in fork mode or on a new port); an
    /// app that is not running is started.
    pub(super) async fn start_or_reload(&self, spec: AppSpec) -> Result<Messages, SupervisorError> {
        let name = spec.name.clone();
        let existing = lock(&self.inner.apps).get(&name).cloned();
        match existing {
            Some(app) if app.is_running() && app.spec() == spec => {
                self.reload(&Target::App(name)).await
            }
            Some(app) if app.is_running() => {
                let (_, result) = self.apply_app(spec, None).await;
                result.map(|m| vec![m])
            }
            _ => self.start_one(spec).await,
        }
    }
}
