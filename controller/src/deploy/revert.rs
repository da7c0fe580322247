//! `pmfleet deploy <env> revert [N]`: every host back to the release N deploys before the
//! current one — the same release everywhere, already built, so nothing is fetched or rebuilt.

use std::collections::BTreeMap;
use std::time::Instant;

use pmfleet_shared::ecosystem::DeployEnv;

use super::fleet::{Fleet, each};
use super::history::{self, Action, Outcome, Record};
use super::host_state::HostState;
use super::lock::{self, Holder};
use super::report::{HostReport, Status};
use super::{Context, now_rfc3339, scripts};
use crate::agent::apply::Agents;

pub async fn revert(ctx: &Context, env: &DeployEnv, n: usize) -> Vec<HostReport> {
    let out = &ctx.out;
    let agents = match Agents::for_env(env) {
        Ok(agents) => agents,
        Err(message) => {
            return env
                .hosts
                .iter()
                .map(|h| HostReport::new(&super::fleet::label(h), Status::Failed, message.clone()))
                .collect();
        }
    };
    let fleet = Fleet::connect(env, &ctx.connector, out).await;
    let mut reports = fleet.not_connected.clone();
    if !reports.is_empty() {
        reports.extend(fleet.members.iter().map(|m| {
            HostReport::new(
                &m.label,
                Status::Aborted,
                "not reverted: every host must revert together, and some could not be reached",
            )
        }));
        return reports;
    }
    let deploy_id = uuid::Uuid::new_v4().to_string();
    let holder = Holder::new(&ctx.who, &deploy_id, "revert");
    let guard =
        match lock::acquire_all(&fleet.members, &env.path, &env.name, &holder, ctx.lock_wait).await
        {
            Ok(guard) => guard,
            Err(refused) => {
                for r in &refused {
                    out.done(&r.host, false, &r.message);
                }
                return refused;
            }
        };

    let states = each(&fleet.members, |m| {
        let script = scripts::state(&env.path);
        async move { m.run(&script).await.map(|c| HostState::parse(&c.stdout)) }
    })
    .await;

    // Every host must agree on the target and still have it.
    let mut targets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (member, state) in fleet.members.iter().zip(&states) {
        match state {
            Err(message) => problems.push(HostReport::new(&member.label, Status::Failed, message.clone())),
            Ok(state) if !state.setup => problems.push(HostReport::new(
                &member.label,
                Status::Failed,
                format!("not set up: run `pmfleet deploy {} setup` first", env.name),
            )),
            Ok(state) => match state.revert_target(n) {
                None => problems.push(HostReport::new(
                    &member.label,
                    Status::Failed,
                    format!(
                        "cannot revert {n}: this host has only {} deploy(s) to go back through",
                        state.line().len().saturating_sub(1)
                    ),
                )),
                Some(target) if !state.releases.contains(&target) => problems.push(HostReport::new(
                    &member.label,
                    Status::Failed,
                    format!(
                        "release {target} is no longer on this host (pruned: keep_releases is {})",
                        env.keep_releases
                    ),
                )),
                Some(target) => targets.entry(target).or_default().push(member.label.clone()),
            },
        }
    }
    if problems.is_empty() && targets.len() > 1 {
        let detail: Vec<String> = targets
            .iter()
            .map(|(target, hosts)| format!("{target} on {}", hosts.join(", ")))
            .collect();
        let message = format!(
            "hosts disagree on the release to revert to ({}); revert would split the fleet",
            detail.join("; ")
        );
        problems.extend(
            fleet
                .members
                .iter()
                .map(|m| HostReport::new(&m.label, Status::Failed, message.clone())),
        );
    }
    if !problems.is_empty() {
        for r in &problems {
            out.done(&r.host, false, &r.message);
        }
        let bad: Vec<String> = problems.iter().map(|r| r.host.clone()).collect();
        reports.extend(problems);
        reports.extend(
            fleet
                .members
                .iter()
                .filter(|m| !bad.contains(&m.label))
                .map(|m| {
                    HostReport::new(
                        &m.label,
                        Status::Aborted,
                        "not reverted: another host cannot revert",
                    )
                }),
        );
        guard.release().await;
        return reports;
    }
    let Some(target) = targets.into_keys().next() else {
        guard.release().await;
        return reports;
    };
    out.info(&format!("reverting {} to release {target}", env.name));

    let started = Instant::now();
    let results = each(&fleet.members, |m| {
        let root = env.path.clone();
        let target = target.clone();
        let out = out.clone();
        let deploy_id = deploy_id.clone();
        let who = ctx.who.clone();
        let state = states
            .iter()
            .zip(&fleet.members)
            .find(|(_, member)| std::sync::Arc::ptr_eq(member, &m))
            .and_then(|(s, _)| s.as_ref().ok().cloned())
            .unwrap_or_default();
        let agents = agents.clone();
        let env_name = env.name.clone();
        let app_env = env.env.clone();
        async move {
            out.step(&m.label, "switch");
            let mut switched = m.run(&scripts::switch(&root, &target)).await;
            if let (Ok(_), Some(agents)) = (&switched, &agents) {
                out.step(&m.label, "reload apps");
                let mut app_env = app_env;
                app_env.insert("PMFLEET_ENV".into(), env_name.clone());
                app_env.insert("PMFLEET_RELEASE".into(), target.clone());
                if let Some(r) = history::latest_for(&state.history, &target) {
                    app_env.insert("PMFLEET_SHA".into(), r.sha.clone());
                    app_env.insert("PMFLEET_REF".into(), r.git_ref.clone());
                }
                match agents
                    .apply(&m, &state.root, &target, &env_name, &app_env)
                    .await
                {
                    Ok(done) => out.line(&m.label, "reload apps", &done),
                    Err(e) => {
                        // The apps stay on what they ran; so does `current`.
                        if let Some(current) = &state.current {
                            let _ = m.run(&scripts::switch(&root, current)).await;
                            let _ = agents
                                .apply(&m, &state.root, current, &env_name, &app_env)
                                .await;
                        }
                        switched = Err(e);
                    }
                }
            }
            let (sha, git_ref) = history::latest_for(&state.history, &target)
                .map(|r| (r.sha.clone(), r.git_ref.clone()))
                .unwrap_or_default();
            let record = Record {
                id: deploy_id,
                action: Action::Revert,
                release: target.clone(),
                previous: state.current.clone(),
                sha: sha.clone(),
                git_ref,
                who,
                when: now_rfc3339(),
                outcome: if switched.is_ok() {
                    Outcome::Success
                } else {
                    Outcome::Failed
                },
                message: switched.as_ref().err().cloned(),
            };
            let _ = m
                .run(&scripts::record(
                    &root,
                    &serde_json::to_string(&record).unwrap_or_default(),
                ))
                .await;
            let (status, message) = match switched {
                Ok(_) => (Status::Ok, format!("reverted to {target}")),
                Err(e) => (Status::Failed, format!("switch: {e}")),
            };
            out.done(&m.label, status == Status::Ok, &message);
            HostReport {
                host: m.label.clone(),
                status,
                release: Some(target),
                sha: Some(sha).filter(|s| !s.is_empty()),
                elapsed: started.elapsed(),
                message,
            }
        }
    })
    .await;
    let mut results = results;
    if results.iter().any(|r| r.status == Status::Failed) {
        // Never leave the fleet split: hosts that switched go back to what they served.
        let switched: Vec<_> = fleet
            .members
            .iter()
            .zip(&states)
            .zip(&results)
            .filter(|(_, r)| r.status == Status::Ok)
            .filter_map(|((m, s), _)| Some((m.clone(), s.as_ref().ok()?.current.clone()?)))
            .collect();
        for (member, previous) in switched {
            let back = member.run(&scripts::switch(&env.path, &previous)).await;
            if back.is_ok() {
                // Restores `previous` at the end of this host's release line.
                let record = Record {
                    id: deploy_id.clone(),
                    action: Action::Revert,
                    release: previous.clone(),
                    previous: Some(target.clone()),
                    sha: String::new(),
                    git_ref: String::new(),
                    who: ctx.who.clone(),
                    when: now_rfc3339(),
                    outcome: Outcome::Success,
                    message: Some("switched back: another host failed to revert".into()),
                };
                let line = serde_json::to_string(&record).unwrap_or_default();
                let _ = member.run(&scripts::record(&env.path, &line)).await;
            }
            let message = match back {
                Ok(_) => format!("switched back to {previous}: another host failed to revert"),
                Err(e) => format!("could not switch back to {previous}: {e}"),
            };
            out.done(&member.label, false, &message);
            if let Some(report) = results.iter_mut().find(|r| r.host == member.label) {
                report.status = Status::RolledBack;
                report.message = message;
            }
        }
    }
    guard.release().await;
    reports.extend(results);
    reports
}
