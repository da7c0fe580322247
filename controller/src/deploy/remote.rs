//! One host of a rollout over its connection (SSH, or local for `localhost`): the scripts
//! each of the rollout's operations runs there, and the agent it asks to run the apps. The
//! real implementation of [`RolloutHost`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pmfleet_shared::ecosystem::DeployEnv;

use super::error::{HostError, Step, StepFailure};
use super::fleet::Member;
use super::history::{self, Record};
use super::host_state::HostState;
use super::lock::Acquire;
use super::prepare::{self, NewRelease};
use super::prune::prune_plan;
use super::rollout::{Begun, Confirmed, Heartbeat, Prepared, Pruned, ReleaseVars, RolloutHost};
use super::rollout_record::RolloutRecord;
use super::scripts;
use crate::agent::apply::Agents;
use crate::output::Output;

/// What every host of one run shares.
pub struct Settings {
    /// The run's id: what its lock holds, what every step that changes a host checks.
    pub run: String,
    pub env: DeployEnv,
    pub out: Arc<Output>,
    /// The hosts' agents, which run the apps of the release once it is current.
    pub agents: Option<Agents>,
    /// A deploy's new release (none for a revert).
    pub release: Option<Arc<NewRelease>>,
    /// The environment's secrets, for the `published` hook (on its stdin, as every hook's).
    pub secrets: Arc<crate::secrets::Resolved>,
}

pub struct Remote {
    member: Arc<Member>,
    settings: Arc<Settings>,
    /// The deploy root with `~` expanded, once the host said it (the agent needs real paths).
    root: Mutex<Option<String>>,
}

impl Remote {
    pub fn new(member: Arc<Member>, settings: Arc<Settings>) -> Remote {
        Remote {
            member,
            settings,
            root: Mutex::new(None),
        }
    }

    fn path(&self) -> &str {
        &self.settings.env.path
    }

    fn run_id(&self) -> &str {
        &self.settings.run
    }

    /// Runs a step that checks the lock: a refusal is [`HostError::LockLost`].
    async fn owned(
        &self,
        script: &crate::shell::Script,
    ) -> Result<crate::transport::Captured, HostError> {
        self.member
            .run(script)
            .await
            .map_err(HostError::lock_checked)
    }

    fn set_root(&self, root: Option<String>) {
        if let Some(root) = root.filter(|r| !r.is_empty()) {
            *self.root.lock().unwrap_or_else(|e| e.into_inner()) = Some(root);
        }
    }

    fn root(&self) -> String {
        self.root
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| self.path().to_string())
    }
}

/// Connects to every host of the run's environment, each as a [`Remote`] (or why not).
pub async fn connect(
    connector: &crate::ssh::Connector,
    settings: &Arc<Settings>,
) -> Vec<Result<Arc<Remote>, HostError>> {
    super::fleet::connect_all(&settings.env, connector, &settings.out)
        .await
        .into_iter()
        .map(|c| {
            c.result
                .map(|member| Arc::new(Remote::new(member, settings.clone())))
                .map_err(HostError::connect)
        })
        .collect()
}

/// The apps' environment for `vars`: `deploy.<env>.env`, `PMFLEET_ENV` and the release's
/// `PMFLEET_RELEASE`, `PMFLEET_SHA`, `PMFLEET_REF`.
pub fn app_env(env: &DeployEnv, vars: &ReleaseVars) -> BTreeMap<String, String> {
    let mut map = env.env.clone();
    map.insert("PMFLEET_ENV".into(), env.name.clone());
    map.insert("PMFLEET_RELEASE".into(), vars.release.clone());
    if let Some(sha) = &vars.sha {
        map.insert("PMFLEET_SHA".into(), sha.clone());
    }
    if let Some(git_ref) = &vars.git_ref {
        map.insert("PMFLEET_REF".into(), git_ref.clone());
    }
    map
}

impl Remote {
    /// `agent: false`: the `published` hook, in `current` (now `vars.release`), with the
    /// release's variables; it is what moves apps run by something else (PM2) there.
    async fn published(&self, vars: &ReleaseVars) -> Result<String, HostError> {
        let Some(hook) = &self.settings.env.hooks.published else {
            return Ok(String::new());
        };
        let out = &self.settings.out;
        out.step(&self.member.label, "published");
        let env: Vec<(String, String)> = app_env(&self.settings.env, vars).into_iter().collect();
        // A `secret:NAME` value goes on the hook's stdin, never on its command line.
        let (plain, hidden) =
            crate::secrets::references::split_hook_env(&env, &self.settings.secrets);
        if hidden.is_empty() {
            let script = scripts::run_hook(
                self.path(),
                scripts::HookDir::Current,
                hook,
                &plain,
                Some(self.run_id()),
                scripts::Pm2::Real,
            );
            self.member.run_visible(out, "published", &script).await?;
        } else {
            let (script, input) = scripts::run_hook_with_secrets(
                self.path(),
                scripts::HookDir::Current,
                hook,
                &plain,
                &hidden,
                Some(self.run_id()),
                scripts::Pm2::Real,
            );
            let stdin: crate::transport::Stdin = Box::new(std::io::Cursor::new(input));
            self.member
                .run_visible_with_stdin(out, "published", &script, Some(stdin))
                .await?;
        }
        Ok(format!("published: ran in release {}", vars.release))
    }
}

fn json_line(record: &Record) -> String {
    serde_json::to_string(record).unwrap_or_default()
}

impl RolloutHost for Remote {
    async fn take_lock(&self, content: &str) -> Result<Acquire, HostError> {
        let captured = self
            .member
            .run(&scripts::lock_acquire(self.path(), content))
            .await?;
        Ok(Acquire::parse(&captured.stdout))
    }

    async fn heartbeat(&self, deploy_id: &str) -> Result<Heartbeat, HostError> {
        let captured = self
            .member
            .run(&scripts::lock_heartbeat(self.path(), deploy_id))
            .await?;
        Ok(if captured.stdout.contains("LOST") {
            Heartbeat::Lost
        } else {
            Heartbeat::Kept
        })
    }

    async fn release_lock(&self, deploy_id: &str) -> Result<(), HostError> {
        self.member
            .run(&scripts::lock_release(self.path(), deploy_id))
            .await
            .map(drop)
    }

    async fn begin(&self, record: &RolloutRecord) -> Result<Begun, HostError> {
        let json = serde_json::to_string(record).unwrap_or_default();
        let captured = self
            .owned(&scripts::rollout_begin(self.path(), self.run_id(), &json))
            .await?;
        Ok(parse_begun(&captured.stdout))
    }

    async fn end(&self) -> Result<(), HostError> {
        let when = super::now_rfc3339();
        self.owned(&scripts::rollout_end(self.path(), self.run_id(), &when))
            .await
            .map(drop)
    }

    async fn end_hooks(&self) -> Result<(), HostError> {
        let captured = self
            .member
            .run(&scripts::end_hooks(self.path(), self.run_id()))
            .await?;
        if captured.stdout.contains("ended") {
            self.settings
                .out
                .line(&self.member.label, "stop", "ended the hook still running");
        }
        Ok(())
    }

    async fn prepare(&self, _release: &str) -> Result<Prepared, StepFailure> {
        let Some(release) = &self.settings.release else {
            return Ok(Prepared { has_apps: false });
        };
        let (mut prepared, root) = prepare::prepare(
            &self.member,
            &self.settings.env,
            release,
            &self.settings.run,
            &self.settings.out,
        )
        .await?;
        self.set_root(root);
        // Without agents, what runs the apps once the release is current is `published`.
        if self.settings.agents.is_none() {
            prepared.has_apps = self.settings.env.hooks.published.is_some();
        }
        Ok(prepared)
    }

    async fn read_state(&self) -> Result<HostState, HostError> {
        let captured = self.member.run(&scripts::state(self.path())).await?;
        let state = HostState::parse(&captured.stdout);
        self.set_root(Some(state.root.clone()));
        Ok(state)
    }

    async fn switch(&self, release: &str, record: &Record) -> Result<Option<String>, HostError> {
        // A deploy's switch on a host with an agent is pending until the rollout confirms it;
        // a switch back or a revert is not.
        let pending = (self.settings.agents.is_some() && record.action == history::Action::Deploy)
            .then_some(pmfleet_shared::protocol::QUIET_SECS);
        let captured = self
            .owned(&scripts::switch(
                self.path(),
                self.run_id(),
                release,
                &json_line(record),
                pending,
            ))
            .await?;
        Ok(captured
            .stdout
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("releases/"))
            .map(str::to_string))
    }

    async fn apply(&self, release: &str, vars: &ReleaseVars) -> Result<String, HostError> {
        let Some(agents) = &self.settings.agents else {
            return self.published(vars).await;
        };
        let env = app_env(&self.settings.env, vars);
        let name = &self.settings.env.name;
        Ok(agents
            .apply(&self.member, &self.root(), release, name, &env)
            .await?)
    }

    async fn run_release(&self, release: &str) -> Result<String, StepFailure> {
        let (Some(hook), Some(new)) = (&self.settings.env.hooks.release, &self.settings.release)
        else {
            return Ok(String::new());
        };
        let step = prepare::Hook {
            step: "release",
            dir: scripts::HookDir::Release(release),
            command: hook,
            pm2: scripts::Pm2::for_env(&self.settings.env),
        };
        prepare::hook(
            &self.member,
            &self.settings.out,
            step,
            self.path(),
            new,
            self.run_id(),
        )
        .await
        .map_err(StepFailure::new(Step::Release))?;
        Ok("ran once, here".to_string())
    }

    async fn watch(&self, release: &str) -> Result<String, HostError> {
        let Some(agents) = &self.settings.agents else {
            return Ok(String::new());
        };
        let period = self.settings.env.watch_period;
        Ok(agents
            .watch(
                &self.member,
                &self.root(),
                release,
                &self.settings.env.name,
                period,
            )
            .await?)
    }

    async fn confirm(&self, release: &str) -> Result<Confirmed, HostError> {
        let captured = self
            .owned(&scripts::confirm(self.path(), self.run_id(), release))
            .await?;
        Ok(parse_confirmed(&captured.stdout))
    }

    async fn discard(&self, release: &str) -> Result<(), HostError> {
        self.owned(&scripts::discard(self.path(), self.run_id(), release))
            .await
            .map(drop)
    }

    async fn record(&self, record: &Record) -> Result<(), HostError> {
        self.member
            .run(&scripts::record(self.path(), &json_line(record)))
            .await
            .map(drop)
    }

    async fn prune(&self, fleet_target: Option<&str>) -> Result<Pruned, HostError> {
        // Never prune a release an app still runs from (one the new release's file no longer
        // lists keeps running where it was); when the agent cannot say, prune nothing.
        let in_use = match &self.settings.agents {
            Some(agents) => match agents.releases_in_use(&self.member).await {
                Ok(in_use) => in_use,
                Err(e) => {
                    return Ok(Pruned::Skipped(format!(
                        "the agent did not say which releases its apps run from ({e})"
                    )));
                }
            },
            None => Vec::new(),
        };
        let captured = self.member.run(&scripts::state(self.path())).await?;
        let state = HostState::parse(&captured.stdout);
        let plan = prune_plan(
            &state,
            self.settings.env.keep_releases,
            &in_use,
            fleet_target,
        );
        if plan.is_empty() {
            return Ok(Pruned::Removed {
                count: 0,
                in_use: Vec::new(),
            });
        }
        let captured = self
            .owned(&scripts::prune(self.path(), self.run_id(), &plan))
            .await?;
        let lines = captured.stdout.lines();
        let count = lines.clone().filter(|l| l.starts_with("removed ")).count();
        let in_use = lines
            .filter_map(|l| l.strip_prefix("in-use "))
            .filter_map(|l| l.split_once(' '))
            .map(|(r, pid)| (r.to_owned(), pid.to_owned()))
            .collect();
        Ok(Pruned::Removed { count, in_use })
    }
}

/// The `confirm` script's output: `KEPT`, or `WENT-BACK <current>` and the agent's record.
fn parse_confirmed(stdout: &str) -> Confirmed {
    let (first, rest) = stdout.split_once('\n').unwrap_or((stdout, ""));
    let Some(now) = first.trim().strip_prefix("WENT-BACK") else {
        return Confirmed::Kept;
    };
    let why = serde_json::from_str::<pmfleet_shared::protocol::AutoReverted>(rest.trim())
        .map(|r| format!("went back to {} by itself: {}", r.to, r.why))
        .unwrap_or_else(|_| {
            format!(
                "current is {} now: the host went back by itself",
                now.trim()
            )
        });
    Confirmed::WentBack(why)
}

/// The `begin` script's output: `current=…`, the record it replaced, the end of the history.
fn parse_begun(stdout: &str) -> Begun {
    let (head, history) = stdout.split_once("--history--\n").unwrap_or((stdout, ""));
    let (head, last) = head.split_once("--rollout--\n").unwrap_or((head, ""));
    let current = head
        .lines()
        .find_map(|l| l.strip_prefix("current="))
        .and_then(|c| c.strip_prefix("releases/"))
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let records = history::parse(history);
    let serving = current.as_ref().map(|release| {
        let record = history::latest_for(&records, release);
        ReleaseVars {
            release: release.clone(),
            sha: record.map(|r| r.sha.clone()).filter(|s| !s.is_empty()),
            git_ref: record.map(|r| r.git_ref.clone()).filter(|s| !s.is_empty()),
        }
    });
    Begun {
        current,
        serving,
        last: RolloutRecord::parse(last),
    }
}
