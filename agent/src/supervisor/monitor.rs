//! The resource monitor: CPU and RSS of every instance each second, for `list`, and the
//! graceful restart of an instance whose process tree passes `max_memory_restart`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::protocol::EventKind;

use super::Inner;
use super::app::lock;
use crate::metrics::Sampler;

/// Samples CPU and RSS of every running instance each second for `list`, and restarts an
/// instance gracefully when its process tree passes `max_memory_restart`.
pub(super) async fn monitor(inner: Arc<Inner>) {
    let mut sampler = Sampler::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = inner.tasks_cancel.cancelled() => return,
        }
        let apps: Vec<_> = lock(&inner.apps).values().cloned().collect();
        let mut samples = HashMap::new();
        for app in apps {
            let limit = lock(&app.spec).max_memory_restart;
            let pids: Vec<(u32, u32)> = lock(&app.slots)
                .iter()
                .filter_map(|(slot, s)| Some((*slot, lock(&s.runner.as_ref()?.view).pid?)))
                .collect();
            for (slot, pid) in pids {
                let Some(sample) = sampler.sample(pid) else {
                    continue;
                };
                samples.insert(pid, sample);
                if limit.is_some_and(|l| sample.rss_bytes > l)
                    && lock(&app.memory_restarts).insert(slot)
                {
                    tracing::warn!(app = %app.name, slot, rss = sample.rss_bytes, "over max_memory_restart; restarting");
                    let why = format!(
                        "{} bytes in memory, over max_memory_restart",
                        sample.rss_bytes
                    );
                    inner.emit(&app.name, Some(slot), Some(pid), EventKind::Restarting, why);
                    let (inner, app) = (inner.clone(), app.clone());
                    inner.clone().tasks.spawn(async move {
                        {
                            let _op = app.op.lock().await;
                            if let Err(e) = inner.restart_slot(&app, slot).await {
                                tracing::error!(app = %app.name, slot, "memory restart: {e}");
                            }
                        }
                        lock(&app.memory_restarts).remove(&slot);
                    });
                }
            }
        }
        let gone: Vec<u32> = lock(&inner.samples)
            .keys()
            .filter(|p| !samples.contains_key(p))
            .copied()
            .collect();
        for pid in gone {
            sampler.forget(pid);
        }
        *lock(&inner.samples) = samples;
    }
}
