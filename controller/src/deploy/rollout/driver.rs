//! Runs a [`Rollout`] on its hosts: performs each action through [`RolloutHost`], feeds every
//! result back as an event, until the machine says the run is over. Host operations run
//! concurrently, each host's lock is kept alive by a heartbeat while held, and Ctrl-C or
//! SIGTERM becomes [`Event::Interrupted`]. The one place a host's end is carried out: remove
//! the new release, append the history records, prune, show and report the outcome.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    Action, Conclusion, Confirmed, Entry, Event, Heartbeat, HostId, Pruned, Rollout, RolloutHost,
};
use crate::deploy::error::HostError;
use crate::deploy::history::Record;
use crate::deploy::lock::{HEARTBEAT, Refusal};
use crate::deploy::now_rfc3339;
use crate::deploy::report::{HostReport, Status};
use crate::deploy::rollout_record::RolloutRecord;
use crate::output::Output;

/// How long to pause between attempts at a lock held by another run, at least; a random
/// part up to as much again is added, so two runs waiting for each other do not retry in
/// lockstep.
pub const LOCK_RETRY: Duration = Duration::from_secs(1);

/// [`LOCK_RETRY`] plus a random part of up to as much again.
fn lock_retry_pause() -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let millis = LOCK_RETRY.as_millis() as u64;
    LOCK_RETRY + Duration::from_millis(hasher.finish() % millis.max(1))
}

/// What the driver needs besides the machine and the hosts.
pub struct Run {
    pub out: Arc<Output>,
    /// Cancelled on Ctrl-C / SIGTERM.
    pub cancel: CancellationToken,
    /// `--lock-wait`.
    pub lock_wait: Option<Duration>,
    /// This run's id: in the lock and in every history record.
    pub deploy_id: String,
    /// `deploy` or `revert`, for the rollout record.
    pub action: String,
    pub who: String,
    /// What the lock file holds (the holder, as JSON).
    pub lock_content: String,
    /// The environment's name, for hints.
    pub env: String,
}

impl Run {
    /// A run of `action` (`deploy`, `revert`) for `ctx`, with the command's id.
    pub fn new(ctx: &crate::deploy::Context, env: &str, action: &str) -> Run {
        let deploy_id = ctx.run_id.clone();
        let holder = crate::deploy::lock::Holder::new(&ctx.who, &deploy_id, action);
        Run {
            out: ctx.out.clone(),
            cancel: ctx.cancel.clone(),
            lock_wait: ctx.lock_wait,
            lock_content: serde_json::to_string(&holder).unwrap_or_default(),
            deploy_id,
            action: action.to_string(),
            who: ctx.who.clone(),
            env: env.to_string(),
        }
    }
}

/// Drives `machine` over `hosts` (in the order of its labels: each host connected, or why
/// not) to the end; returns every host's report, in that order.
pub async fn drive<H: RolloutHost>(
    machine: Rollout,
    hosts: Vec<Result<Arc<H>, HostError>>,
    run: &Run,
) -> Vec<HostReport> {
    let (lost_tx, lost_rx) = mpsc::unbounded_channel();
    let mut queue = VecDeque::new();
    let mut connected = Vec::new();
    for (h, host) in hosts.into_iter().enumerate() {
        match host {
            Ok(host) => {
                queue.push_back(Event::Connected(h));
                connected.push(Some(host));
            }
            Err(e) => {
                queue.push_back(Event::NotConnected(h, e));
                connected.push(None);
            }
        }
    }
    let mut driver = Driver {
        reports: vec![None; connected.len()],
        machine,
        hosts: connected,
        run,
        inflight: JoinSet::new(),
        queue,
        heartbeat: None,
        lost_tx,
        lost_rx,
        lock_deadline: None,
        started: Instant::now(),
        interrupt_seen: false,
        watches: std::collections::HashMap::new(),
        fleet_target: Arc::default(),
    };
    driver.run_to_end().await;
    driver.finish_reports()
}

/// What a finished host operation produced.
enum Done {
    Event(Event),
    Report(HostId, HostReport),
}

struct Driver<'a, H> {
    machine: Rollout,
    hosts: Vec<Option<Arc<H>>>,
    run: &'a Run,
    inflight: JoinSet<Done>,
    queue: VecDeque<Event>,
    reports: Vec<Option<HostReport>>,
    /// Stops the heartbeat tasks, and waits for them.
    heartbeat: Option<(CancellationToken, TaskTracker)>,
    lost_tx: mpsc::UnboundedSender<HostId>,
    lost_rx: mpsc::UnboundedReceiver<HostId>,
    lock_deadline: Option<Instant>,
    started: Instant,
    interrupt_seen: bool,
    /// The watch windows in flight, so a rollout that stops can end them.
    watches: std::collections::HashMap<HostId, tokio::task::AbortHandle>,
    /// Where `revert` with no N would take the fleet, worked out by the first prune.
    fleet_target: super::fleet_target::Shared,
}

impl<H: RolloutHost> Driver<'_, H> {
    async fn run_to_end(&mut self) {
        loop {
            let event = match self.queue.pop_front() {
                Some(event) => event,
                None if self.inflight.is_empty() => {
                    // Nothing to wait for, yet no verdict: the machine stalled.
                    tracing::error!("the rollout stopped without a verdict");
                    break;
                }
                None => match self.next_event().await {
                    Some(event) => event,
                    None => continue,
                },
            };
            for action in self.machine.handle(event) {
                if self.perform(action).await {
                    return;
                }
            }
        }
        self.stop_heartbeat().await;
    }

    /// The next event from a finished operation, a lost lock or an interrupt.
    async fn next_event(&mut self) -> Option<Event> {
        tokio::select! {
            joined = self.inflight.join_next() => self.done(joined?),
            Some(h) = self.lost_rx.recv() => Some(Event::LockLost(h)),
            _ = self.run.cancel.cancelled(), if !self.interrupt_seen => {
                self.interrupt_seen = true;
                Some(Event::Interrupted)
            }
        }
    }

    fn done(&mut self, joined: Result<Done, tokio::task::JoinError>) -> Option<Event> {
        match joined {
            Ok(Done::Event(event)) => Some(event),
            Ok(Done::Report(h, report)) => {
                if let Some(slot) = self.reports.get_mut(h) {
                    *slot = Some(report);
                }
                None
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        }
    }

    /// Waits for every operation in flight; their events are handled next.
    async fn drain(&mut self) {
        while let Some(joined) = self.inflight.join_next().await {
            if let Some(event) = self.done(joined) {
                self.queue.push_back(event);
            }
        }
    }

    fn host(&self, h: HostId) -> Option<Arc<H>> {
        self.hosts.get(h).cloned().flatten()
    }

    fn label(&self, h: HostId) -> &str {
        self.machine.labels().get(h).map_or("?", String::as_str)
    }

    /// Runs `op` on host `h` in the background; its result becomes an event.
    fn spawn<F, Fut>(&mut self, h: HostId, op: F) -> Option<tokio::task::AbortHandle>
    where
        F: FnOnce(Arc<H>) -> Fut,
        Fut: std::future::Future<Output = Event> + Send + 'static,
    {
        let host = self.host(h)?;
        let fut = op(host);
        Some(self.inflight.spawn(async move { Done::Event(fut.await) }))
    }

    /// Performs one action; true once the run is over.
    async fn perform(&mut self, action: Action) -> bool {
        let out = self.run.out.clone();
        match action {
            Action::TakeLock(hosts) => {
                if self.lock_deadline.is_none() {
                    self.lock_deadline = self.run.lock_wait.map(|w| Instant::now() + w);
                }
                for h in hosts {
                    let content = self.run.lock_content.clone();
                    let env = self.run.env.clone();
                    self.spawn(h, move |host| async move {
                        match host.take_lock(&content).await {
                            Ok(acquire) => match Refusal::from_acquire(acquire, &env) {
                                None => Event::LockTaken(h),
                                Some(refusal) => Event::LockRefused(h, refusal),
                            },
                            Err(e) => Event::LockRefused(h, Refusal::Failed(e)),
                        }
                    });
                }
            }
            Action::HoldLock(hosts) => self.start_heartbeat(&hosts),
            Action::WaitForLock => {
                let over = self.lock_deadline.is_none_or(|d| Instant::now() >= d);
                self.inflight.spawn(async move {
                    if over {
                        return Done::Event(Event::LockWaitOver);
                    }
                    tokio::time::sleep(lock_retry_pause()).await;
                    Done::Event(Event::LockRetry)
                });
            }
            Action::ReleaseLock(hosts) => {
                self.drain().await;
                self.stop_heartbeat().await;
                let hosts: Vec<Arc<H>> = hosts.into_iter().filter_map(|h| self.host(h)).collect();
                let id = self.run.deploy_id.clone();
                crate::concurrent::each(&hosts, |host| {
                    let id = id.clone();
                    async move {
                        if let Err(e) = host.release_lock(&id).await {
                            tracing::warn!("could not release the lock: {e}");
                        }
                    }
                })
                .await;
            }
            Action::Begin(hosts, release) => {
                let record = RolloutRecord {
                    id: self.run.deploy_id.clone(),
                    action: self.run.action.clone(),
                    who: self.run.who.clone(),
                    started: now_rfc3339(),
                    release,
                    hosts: self.machine.labels().to_vec(),
                    previous: None,
                    state: String::new(),
                    finished: None,
                };
                for h in hosts {
                    let record = record.clone();
                    self.spawn(h, move |host| async move {
                        match host.begin(&record).await {
                            Ok(begun) => Event::Begun(h, Box::new(begun)),
                            Err(e) => Event::BeginFailed(h, e),
                        }
                    });
                }
            }
            Action::End(hosts) => {
                self.drain().await;
                let hosts: Vec<Arc<H>> = hosts.into_iter().filter_map(|h| self.host(h)).collect();
                crate::concurrent::each(&hosts, |host| async move {
                    if let Err(e) = host.end().await {
                        tracing::warn!("could not finish the rollout record: {e}");
                    }
                })
                .await;
            }
            Action::EndHooks(hosts) => {
                let hosts: Vec<Arc<H>> = hosts.into_iter().filter_map(|h| self.host(h)).collect();
                crate::concurrent::each(&hosts, |host| async move {
                    if let Err(e) = host.end_hooks().await {
                        tracing::warn!("could not end the hooks still running: {e}");
                    }
                })
                .await;
            }
            Action::Prepare(hosts, release) => {
                for h in hosts {
                    let release = release.clone();
                    self.spawn(h, move |host| async move {
                        match host.prepare(&release).await {
                            Ok(prepared) => Event::Prepared(h, prepared),
                            Err(failure) => Event::PrepareFailed(h, failure),
                        }
                    });
                }
            }
            Action::ReadState(hosts) => {
                for h in hosts {
                    self.spawn(h, move |host| async move {
                        match host.read_state().await {
                            Ok(state) => Event::StateRead(h, Box::new(state)),
                            Err(e) => Event::StateUnread(h, e),
                        }
                    });
                }
            }
            Action::Switch(h, release, entry) => {
                out.step(self.label(h), "switch");
                let record = self.record(&entry);
                self.spawn(h, move |host| async move {
                    match host.switch(&release, &record).await {
                        Ok(previous) => Event::Switched(h, previous),
                        Err(e) => Event::SwitchFailed(h, e),
                    }
                });
            }
            Action::Apply {
                host: h,
                release,
                vars,
            } => {
                out.step(self.label(h), "reload apps");
                self.spawn(h, move |host| async move {
                    match host.apply(&release, &vars).await {
                        Ok(done) => Event::Applied(h, done),
                        Err(e) => Event::ApplyFailed(h, e),
                    }
                });
            }
            Action::SwitchBack(h, release, entry) => {
                let record = self.record(&entry);
                self.spawn(h, move |host| async move {
                    match host.switch(&release, &record).await {
                        Ok(_) => Event::SwitchedBack(h),
                        Err(e) => Event::SwitchBackFailed(h, e),
                    }
                });
            }
            Action::ApplyBack {
                host: h,
                release,
                vars,
            } => {
                self.spawn(h, move |host| async move {
                    match host.apply(&release, &vars).await {
                        Ok(done) => Event::AppliedBack(h, done),
                        Err(e) => Event::ApplyBackFailed(h, e),
                    }
                });
            }
            Action::RunRelease(h, release) => {
                out.step(self.label(h), "release");
                self.spawn(h, move |host| async move {
                    match host.run_release(&release).await {
                        Ok(said) => Event::ReleaseRan(h, said),
                        Err(failure) => Event::ReleaseFailed(h, failure),
                    }
                });
            }
            Action::Watch(h, release) => {
                out.step(self.label(h), "watch");
                let handle = self.spawn(h, move |host| async move {
                    match host.watch(&release).await {
                        Ok(said) => Event::Watched(h, said),
                        Err(e) => Event::WatchFailed(h, e),
                    }
                });
                if let Some(handle) = handle {
                    self.watches.insert(h, handle);
                }
            }
            Action::StopWatching(hosts) => {
                for h in hosts {
                    if let Some(handle) = self.watches.remove(&h) {
                        handle.abort();
                    }
                }
            }
            Action::Confirm(hosts) => {
                for h in hosts {
                    let release = self.machine.release_id();
                    self.spawn(h, move |host| async move {
                        match host.confirm(&release).await {
                            Ok(Confirmed::Kept) => Event::Confirmed(h),
                            Ok(Confirmed::WentBack(why)) => Event::NotConfirmed(h, why),
                            Err(e) => Event::ConfirmFailed(h, e),
                        }
                    });
                }
            }
            Action::Cancel => {
                self.inflight.abort_all();
                while let Some(joined) = self.inflight.join_next().await {
                    // Results of cancelled operations are dropped; reports are kept.
                    let _ = self.done(joined);
                }
            }
            Action::Info(message) => out.info(&message),
            Action::Note(h, step, text) => out.line(self.label(h), step, &text),
            Action::Conclude(conclusion) => self.conclude(conclusion),
            Action::Finish => {
                self.drain().await;
                self.stop_heartbeat().await;
                return true;
            }
        }
        false
    }

    /// Carries out a host's end: the one place a release is discarded, history recorded and
    /// the outcome shown and reported.
    fn conclude(&mut self, c: Conclusion) {
        let label = self.label(c.host).to_string();
        let host = self.host(c.host);
        let out = self.run.out.clone();
        let started = self.started;
        let records: Vec<Record> = c.records.iter().map(|e| self.record(e)).collect();
        let fleet_target = self.fleet_target.clone();
        let every_host: Vec<(String, Arc<H>)> = if c.prune {
            (0..self.hosts.len())
                .filter_map(|h| Some((self.label(h).to_string(), self.host(h)?)))
                .collect()
        } else {
            Vec::new()
        };
        self.inflight.spawn(async move {
            let mut message = c.message;
            if let Some(host) = &host {
                if let Some(release) = &c.discard {
                    // A release that cannot be removed is removed by the next deploy's cleanup.
                    let _ = host.discard(release).await;
                }
                for record in &records {
                    if let Err(e) = host.record(record).await {
                        out.line(&label, "history", &format!("could not record history: {e}"));
                    }
                }
                if c.prune {
                    let target = fleet_target
                        .get_or_init(|| super::fleet_target::fleet_target(&every_host))
                        .await;
                    let pruned = match target {
                        Ok(target) => host.prune(target.as_deref()).await,
                        Err(why) => Ok(Pruned::Skipped(why.clone())),
                    };
                    match pruned {
                        Ok(Pruned::Removed { count, in_use }) => {
                            for (release, pid) in &in_use {
                                out.line(
                                    &label,
                                    "prune",
                                    &format!(
                                        "kept release {release}: process {pid} still runs in it \
                                         (stop whatever runs it there and the next deploy prunes it)"
                                    ),
                                );
                            }
                            if count > 0 {
                                message = format!("{message} (pruned {count} old release(s))");
                            }
                        }
                        Ok(Pruned::Skipped(why)) => {
                            out.line(&label, "prune", &format!("nothing pruned: {why}"));
                            message = format!("{message} (nothing pruned: {why})");
                        }
                        Err(e) => out.line(&label, "prune", &format!("could not prune: {e}")),
                    }
                }
            }
            out.done(&label, c.status == Status::Ok, &message);
            let report = HostReport {
                host: label,
                status: c.status,
                release: c.release.as_ref().map(|r| r.release.clone()),
                sha: c.release.and_then(|r| r.sha).filter(|s| !s.is_empty()),
                elapsed: started.elapsed(),
                message,
            };
            Done::Report(c.host, report)
        });
    }

    fn record(&self, entry: &Entry) -> Record {
        Record {
            id: self.run.deploy_id.clone(),
            action: entry.action,
            release: entry.release.clone(),
            previous: entry.previous.clone(),
            sha: entry.sha.clone(),
            git_ref: entry.git_ref.clone(),
            who: self.run.who.clone(),
            when: now_rfc3339(),
            outcome: entry.outcome,
            message: entry.message.clone(),
        }
    }

    fn start_heartbeat(&mut self, hosts: &[HostId]) {
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        for h in hosts {
            let Some(host) = self.host(*h) else { continue };
            let (h, stop, lost) = (*h, stop.clone(), self.lost_tx.clone());
            let id = self.run.deploy_id.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(HEARTBEAT) => {}
                    }
                    if let Ok(Heartbeat::Lost) = host.heartbeat(&id).await {
                        let _ = lost.send(h);
                        return;
                    }
                }
            });
        }
        tasks.close();
        self.heartbeat = Some((stop, tasks));
    }

    async fn stop_heartbeat(&mut self) {
        if let Some((stop, tasks)) = self.heartbeat.take() {
            stop.cancel();
            tasks.wait().await;
        }
    }

    /// Every host's report, in order; a host the machine never concluded (it stalled) says so.
    fn finish_reports(self) -> Vec<HostReport> {
        let labels = self.machine.labels().to_vec();
        self.reports
            .into_iter()
            .zip(labels)
            .map(|(report, label)| {
                report.unwrap_or_else(|| {
                    HostReport::new(
                        &label,
                        Status::Failed,
                        "the rollout ended without an outcome for this host",
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_waiters_do_not_retry_in_lockstep() {
        let pauses: Vec<Duration> = (0..32).map(|_| lock_retry_pause()).collect();
        for pause in &pauses {
            assert!(*pause >= LOCK_RETRY && *pause < LOCK_RETRY * 2, "{pause:?}");
        }
        let first = pauses[0];
        assert!(pauses.iter().any(|p| *p != first), "{pauses:?}");
    }
}
