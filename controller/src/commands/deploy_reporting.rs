//! What `pmfleet deploy` does around the verb itself: before it, the environment's secrets
//! resolved (and registered for masking) and every reference to them checked, the webhooks
//! made ready; after it, the outcome told to the webhooks, the `on-failure` hook run on the
//! controller when a deploy or revert failed, and the run written to the controller's audit
//! trail. Nothing here can fail a run that already happened: what cannot be sent or written
//! is one line in the output.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use pmfleet_shared::ecosystem::{DeployEnv, Ecosystem, NotifyEvent};

use crate::audit::{self, AuditRecord, HostEntry};
use crate::cli::Verb;
use crate::deploy::{Context, Exit, HostReport, Started, Status};
use crate::notify::{self, HostOutcome, Message, Notifier};
use crate::secrets::{self, references};

/// What a verb is, for reporting.
fn action(verb: &Verb) -> Option<&'static str> {
    match verb {
        Verb::Update { .. } => Some("deploy"),
        Verb::Revert(_) => Some("revert"),
        Verb::Setup => Some("setup"),
        Verb::Lock => Some("lock"),
        Verb::Unlock => Some("unlock"),
        Verb::Exec(_) => Some("exec"),
        Verb::List | Verb::Current | Verb::Previous => None,
    }
}

/// The reporting of one run, made before it starts.
pub struct Reporting {
    action: Option<&'static str>,
    notifier: Option<Arc<Notifier>>,
    started: Arc<Mutex<Option<Started>>>,
    began: Instant,
    began_at: String,
    git_ref: Option<String>,
}

/// Readies the run of `verb`: resolves the secrets a deploy needs (into `ctx`), checks that
/// every secret the file names is declared, and builds the notifier. `Err`: a configuration
/// problem, said in one message (exit 2).
pub async fn prepare(
    verb: &Verb,
    eco: &Ecosystem,
    env: &DeployEnv,
    ctx: &mut Context,
    git_ref: Option<String>,
) -> Result<Reporting, String> {
    let action = action(verb);
    let deploys = matches!(verb, Verb::Update { .. });
    let reverts = matches!(verb, Verb::Revert(_));
    let refs = references::references(eco, env);
    if deploys || (reverts && !refs.is_empty()) {
        let (resolved, warnings) = secrets::resolve(&ctx.workdir, &env.name)
            .await
            .map_err(|e| e.to_string())?;
        for w in warnings {
            ctx.out.info(&format!("warning: {w}"));
        }
        let names: Vec<String> = resolved.names().map(str::to_owned).collect();
        let missing = references::missing(&refs, &names);
        if !missing.is_empty() {
            return Err(missing.join("\n"));
        }
        ctx.secrets = Arc::new(resolved);
    }
    let notifier = if deploys || reverts {
        let n = Notifier::new(eco, env, Some(&ctx.secrets), ctx.out.clone())?;
        (!n.is_empty()).then(|| Arc::new(n))
    } else {
        None
    };
    let started: Arc<Mutex<Option<Started>>> = Arc::new(Mutex::new(None));
    let reporting = Reporting {
        action,
        notifier,
        started: started.clone(),
        began: Instant::now(),
        began_at: crate::deploy::now_rfc3339(),
        git_ref: git_ref.or_else(|| deploys.then(|| env.git_ref.clone())),
    };
    if deploys {
        let env_name = env.name.clone();
        let who = ctx.who.clone();
        let hosts: Vec<String> = env.hosts.iter().map(crate::deploy::fleet::label).collect();
        let notifier = reporting.notifier.clone();
        ctx.on_started = Some(Arc::new(move |s: &Started| {
            *started.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.clone());
            if let Some(n) = &notifier {
                let mut m = Message::new(NotifyEvent::DeployStarted, &env_name, &who);
                m.git_ref = Some(s.git_ref.clone());
                m.sha = Some(s.sha.clone());
                m.release = Some(s.release.clone());
                m.hosts = hosts
                    .iter()
                    .map(|h| HostOutcome {
                        host: h.clone(),
                        outcome: String::new(),
                    })
                    .collect();
                m.outcome = "started".into();
                n.send(&m);
            }
        }));
    }
    Ok(reporting)
}

impl Reporting {
    /// After the run: the outcome to the webhooks, `on-failure`, the audit record.
    pub async fn conclude(
        self,
        ctx: &Context,
        env: &DeployEnv,
        eco: &Ecosystem,
        reports: &[HostReport],
        exit: Exit,
    ) {
        let Some(action) = self.action else { return };
        let duration = self.began.elapsed();
        let started = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let release = started
            .as_ref()
            .map(|s| s.release.clone())
            .or_else(|| reports.iter().find_map(|r| r.release.clone()));
        let sha = started
            .as_ref()
            .map(|s| s.sha.clone())
            .or_else(|| reports.iter().find_map(|r| r.sha.clone()));
        let rolled_back = reports.iter().any(|r| r.status == Status::RolledBack);
        let ok = exit == Exit::Success;
        let (event, outcome) = match (action, ok, rolled_back) {
            ("deploy", _, true) => (Some(NotifyEvent::RolledBack), "rolled back"),
            ("deploy", true, _) => (Some(NotifyEvent::DeploySucceeded), "succeeded"),
            ("deploy", false, _) => (Some(NotifyEvent::DeployFailed), "failed"),
            ("revert", true, _) => (Some(NotifyEvent::Reverted), "reverted"),
            ("revert", false, _) => (Some(NotifyEvent::RevertFailed), "failed"),
            (_, true, _) => (None, "succeeded"),
            (_, false, _) => (None, "failed"),
        };
        let reason = reports
            .iter()
            .find(|r| r.status != Status::Ok)
            .map(|r| notify::message::one_line(&format!("{}: {}", r.host, r.message)));
        if let (Some(event), Some(n)) = (event, &self.notifier) {
            let mut m = Message::new(event, &env.name, &ctx.who).with_duration(duration);
            m.git_ref = self.git_ref.clone();
            m.sha = sha.clone();
            m.release = release.clone();
            m.hosts = reports
                .iter()
                .map(|r| HostOutcome {
                    host: r.host.clone(),
                    outcome: r.status.label().to_owned(),
                })
                .collect();
            m.outcome = outcome.to_owned();
            m.reason = reason.clone().filter(|_| !ok || rolled_back);
            n.send(&m);
        }
        if !ok
            && matches!(action, "deploy" | "revert")
            && let Some(hook) = &env.hooks.on_failure
        {
            ctx.out.step("local", "on-failure");
            let hosts: Vec<String> = env.hosts.iter().map(crate::deploy::fleet::label).collect();
            let mut vars = vec![
                ("PMFLEET_ENV".to_string(), env.name.clone()),
                (
                    "PMFLEET_RELEASE".to_string(),
                    release.clone().unwrap_or_default(),
                ),
                ("PMFLEET_SHA".to_string(), sha.clone().unwrap_or_default()),
                (
                    "PMFLEET_REF".to_string(),
                    self.git_ref.clone().unwrap_or_default(),
                ),
                ("PMFLEET_HOSTS".to_string(), hosts.join(",")),
                ("PMFLEET_PERFORMER".to_string(), ctx.who.clone()),
                ("PMFLEET_OUTCOME".to_string(), outcome.replace(' ', "-")),
                ("PMFLEET_ACTION".to_string(), action.to_owned()),
            ];
            vars.push((
                "PMFLEET_REASON".to_string(),
                reason.clone().unwrap_or_default(),
            ));
            if let Err(e) = crate::deploy::run_local_hook(ctx, "on-failure", hook, &vars).await {
                ctx.out.info(&format!("on-failure hook: {e}"));
            }
        }
        let record = AuditRecord {
            id: ctx.run_id.clone(),
            env: env.name.clone(),
            ecosystem: eco.source.clone(),
            action: action.to_owned(),
            command: audit::command_line(),
            performer: ctx.who.clone(),
            git_ref: self.git_ref.clone(),
            sha,
            release,
            hosts: reports
                .iter()
                .map(|r| HostEntry {
                    host: r.host.clone(),
                    outcome: r.status.label().to_owned(),
                    message: notify::message::one_line(&r.message),
                })
                .collect(),
            outcome: outcome.to_owned(),
            started: self.began_at.clone(),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        };
        let path = audit::path_for(&env.name);
        if let Err(e) = audit::append(&path, &record) {
            ctx.out.info(&format!(
                "could not add to the audit trail {}: {e}",
                path.display()
            ));
        }
        if let Some(n) = &self.notifier {
            n.finish(notify::FINISH_WAIT).await;
        }
    }
}
