//! The read-only and maintenance verbs: `list`, `current`, `previous`, `exec`, `lock`,
//! `unlock`.

use std::sync::Arc;
use std::time::Instant;

use pmfleet_shared::ecosystem::DeployEnv;

use super::common_release::newest_common;
use super::fleet::{Fleet, Member, each};
use super::history::{self, Action, Outcome, Record};
use super::host_state::HostState;
use super::lock::{Acquire, Break, Holder, Liveness, Refusal, describe, liveness};
use super::report::{HostReport, Status};
use super::revision::short_sha;
use super::rollout_record::interrupted_notice;
use super::{Context, scripts};
use crate::output::{Mode, table};

/// Reads every host's state, reporting hosts it could not read.
async fn states(ctx: &Context, env: &DeployEnv) -> (Vec<(String, HostState)>, Vec<HostReport>) {
    let fleet = Fleet::connect(env, &ctx.connector, &ctx.out).await;
    let mut reports = fleet.not_connected.clone();
    let results = each(&fleet.members, |m| {
        let script = scripts::state(&env.path);
        async move { m.run(&script).await.map(|c| HostState::parse(&c.stdout)) }
    })
    .await;
    let mut states = Vec::new();
    for (member, result) in fleet.members.iter().zip(results) {
        match result {
            Ok(state) if state.setup => {
                reports.push(HostReport::new(&member.label, Status::Ok, ""));
                states.push((member.label.clone(), state));
            }
            Ok(_) => reports.push(HostReport::new(
                &member.label,
                Status::Failed,
                format!("not set up: run `pmfleet deploy {} setup` first", env.name),
            )),
            Err(e) => reports.push(HostReport::new(&member.label, e.status(), e.to_string())),
        }
    }
    (states, reports)
}

fn print_problems(ctx: &Context, reports: &[HostReport]) {
    for r in reports.iter().filter(|r| r.status != Status::Ok) {
        ctx.out.done(&r.host, false, &r.message);
    }
}

/// Says which rollouts were interrupted, and what each host serves.
fn notice_interrupted(ctx: &Context, states: &[(String, HostState)]) {
    let records: Vec<_> = states.iter().filter_map(|(_, s)| s.interrupted()).collect();
    let hosts: Vec<(&str, Option<&str>)> = states
        .iter()
        .map(|(host, s)| (host.as_str(), s.current.as_deref()))
        .collect();
    for notice in interrupted_notice(&records, &hosts) {
        ctx.out.info(&notice);
    }
}

/// `list`: every release on every host, newest first, `*` marking current; then which host
/// holds each release, and where `revert` with no N would go.
pub async fn list(ctx: &Context, env: &DeployEnv) -> Vec<HostReport> {
    let (states, reports) = states(ctx, env).await;
    print_problems(ctx, &reports);
    notice_interrupted(ctx, &states);
    let mut json = Vec::new();
    let mut text = String::new();
    for (host, state) in &states {
        let mut rows = Vec::new();
        for release in state.releases.iter().rev() {
            let record = history::latest_for(&state.history, release);
            let current = state.current.as_deref() == Some(release.as_str());
            json.push(serde_json::json!({
                "host": host, "release": release, "current": current,
                "sha": record.map(|r| r.sha.clone()), "ref": record.map(|r| r.git_ref.clone()),
                "who": record.map(|r| r.who.clone()), "when": record.map(|r| r.when.clone()),
            }));
            rows.push([
                if current {
                    "*".to_string()
                } else {
                    String::new()
                },
                release.clone(),
                record
                    .map(|r| short_sha(&r.sha).to_string())
                    .unwrap_or_default(),
                record.map(|r| r.git_ref.clone()).unwrap_or_default(),
                record.map(|r| r.when.clone()).unwrap_or_default(),
                record.map(|r| r.who.clone()).unwrap_or_default(),
            ]);
        }
        text.push_str(&format!("{host} ({}):\n", state.root));
        if rows.is_empty() {
            text.push_str("  no releases yet\n");
        } else {
            for line in table(&["", "RELEASE", "SHA", "REF", "DEPLOYED", "BY"], &rows).lines() {
                text.push_str(&format!("  {line}\n"));
            }
        }
    }
    let view = presence(&states);
    text.push_str(&view.text);
    let json = serde_json::json!({
        "hosts": json, "releases": view.json,
        "revert": view.revert.as_ref().ok(), "revert_problem": view.revert.as_ref().err(),
    });
    emit(ctx, &text, json);
    reports
}

/// The presence view of `list`.
struct Presence {
    text: String,
    json: Vec<serde_json::Value>,
    revert: Result<String, String>,
}

/// Which host holds each release (release × host: `*` serves it, `x` holds it, `-` lacks
/// it), newest release first, and where `revert` with no N goes.
fn presence(states: &[(String, HostState)]) -> Presence {
    let mut releases: Vec<&str> = states
        .iter()
        .flat_map(|(_, s)| s.releases.iter().map(String::as_str))
        .collect();
    releases.sort_unstable_by(|a, b| b.cmp(a));
    releases.dedup();
    let mark = |state: &HostState, release: &str| {
        if state.current.as_deref() == Some(release) {
            ("*", "current")
        } else if state.releases.iter().any(|r| r == release) {
            ("x", "present")
        } else {
            ("-", "absent")
        }
    };
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for release in &releases {
        let mut row = vec![release.to_string()];
        let mut hosts = serde_json::Map::new();
        for (host, state) in states {
            let (short, word) = mark(state, release);
            row.push(short.to_string());
            hosts.insert(host.clone(), word.into());
        }
        rows.push(row);
        json.push(serde_json::json!({ "release": release, "hosts": hosts }));
    }
    let held: Vec<(&str, &HostState)> = states.iter().map(|(h, s)| (h.as_str(), s)).collect();
    let revert = newest_common(&held).map_err(|e| e.to_string());
    let mut text = String::new();
    if !releases.is_empty() {
        let mut header = vec!["RELEASE".to_string()];
        header.extend(states.iter().map(|(h, _)| h.clone()));
        rows.insert(0, header);
        let widths: Vec<usize> = (0..=states.len())
            .map(|c| {
                rows.iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        text.push_str("\nreleases by host (* serves, x holds, - lacks):\n");
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            text.push_str(&format!("  {}\n", cells.join("  ").trim_end()));
        }
        match &revert {
            Ok(target) => text.push_str(&format!("`revert` goes to {target}\n")),
            Err(why) => text.push_str(&format!("`revert` has no target: {why}\n")),
        }
    }
    Presence { text, json, revert }
}

/// Which release `current`/`previous` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Current,
    Previous,
}

/// `current` / `previous`: one line per host.
pub async fn show_release(ctx: &Context, env: &DeployEnv, which: Which) -> Vec<HostReport> {
    let (states, reports) = states(ctx, env).await;
    print_problems(ctx, &reports);
    notice_interrupted(ctx, &states);
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for (host, state) in &states {
        let release = match which {
            Which::Current => state.current.clone(),
            Which::Previous => state.revert_target(1),
        };
        let record = release
            .as_deref()
            .and_then(|r| history::latest_for(&state.history, r));
        json.push(serde_json::json!({
            "host": host, "release": release,
            "sha": record.map(|r| r.sha.clone()), "ref": record.map(|r| r.git_ref.clone()),
            "when": record.map(|r| r.when.clone()),
        }));
        rows.push([
            host.clone(),
            release.unwrap_or_else(|| "(none)".into()),
            record.map(|r| r.sha.clone()).unwrap_or_default(),
            record.map(|r| r.git_ref.clone()).unwrap_or_default(),
            record.map(|r| r.when.clone()).unwrap_or_default(),
        ]);
    }
    emit(
        ctx,
        &table(&["HOST", "RELEASE", "SHA", "REF", "DEPLOYED"], &rows),
        serde_json::Value::Array(json),
    );
    reports
}

/// `exec "cmd"`: runs the command in `current` on every host, output prefixed by host.
pub async fn exec(ctx: &Context, env: &DeployEnv, command: &str) -> Vec<HostReport> {
    let fleet = Fleet::connect(env, &ctx.connector, &ctx.out).await;
    let mut reports = fleet.not_connected.clone();
    let results = each(&fleet.members, |m| {
        let script = scripts::exec(&env.path, command);
        let out = ctx.out.clone();
        async move {
            let started = Instant::now();
            let result = m.run_visible(&out, "exec", &script).await;
            let mut report = match result {
                Ok(()) => HostReport::new(&m.label, Status::Ok, "exit 0"),
                Err(e) => HostReport::new(&m.label, e.status(), e.to_string()),
            };
            report.elapsed = started.elapsed();
            report
        }
    })
    .await;
    reports.extend(results);
    reports
}

/// `lock`: holds the environment on purpose (a freeze): a manual lock with `message` on
/// every host, taken one host at a time in the environment's order, or on none (the ones
/// taken are given back at the first refusal). It has no heartbeat and never looks stale;
/// every deploy and revert is refused with who and why, `--lock-wait` does not wait for it,
/// the hosts' agents leave the environment alone, and `unlock` releases it.
pub async fn lock(ctx: &Context, env: &DeployEnv, message: Option<&str>) -> Vec<HostReport> {
    let fleet = Fleet::connect(env, &ctx.connector, &ctx.out).await;
    let mut reports = fleet.not_connected.clone();
    if !reports.is_empty() {
        for m in &fleet.members {
            reports.push(HostReport::new(
                &m.label,
                Status::Aborted,
                "not locked: another host could not be reached",
            ));
        }
        return reports;
    }
    let id = uuid::Uuid::new_v4().to_string();
    let content =
        serde_json::to_string(&Holder::manual(&ctx.who, &id, message)).unwrap_or_default();
    let mut taken: Vec<&Arc<Member>> = Vec::new();
    let mut refused: Option<(String, Status, String)> = None;
    for m in &fleet.members {
        let refusal = match m.run(&scripts::lock_acquire(&env.path, &content)).await {
            Ok(c) => Refusal::from_acquire(Acquire::parse(&c.stdout), &env.name),
            Err(e) => Some(Refusal::Failed(e)),
        };
        match refusal {
            None => taken.push(m),
            Some(r) => {
                refused = Some((m.label.clone(), r.status(), r.to_string()));
                break;
            }
        }
    }
    let Some((label, status, why)) = refused else {
        let said = message.map(|m| format!(": \"{m}\"")).unwrap_or_default();
        let record = Record::event(
            &ctx.run_id,
            Action::Lock,
            &ctx.who,
            Outcome::Success,
            message.unwrap_or("locked on purpose"),
        );
        for m in &fleet.members {
            // Best effort: the lock holds whether or not the record could be written.
            if let Err(e) = m
                .run(&scripts::record_event(&env.path, &record.to_line()))
                .await
            {
                tracing::warn!("could not record the lock on {}: {e}", m.label);
            }
            let text = format!(
                "locked on purpose{said}; `pmfleet deploy {} unlock` releases it",
                env.name
            );
            ctx.out.done(&m.label, true, &text);
            reports.push(HostReport::new(&m.label, Status::Ok, text));
        }
        return reports;
    };
    for m in &taken {
        if let Err(e) = m.run(&scripts::lock_release(&env.path, &id)).await {
            tracing::warn!("could not give back the lock on {}: {e}", m.label);
        }
    }
    for m in &fleet.members {
        let report = if m.label == label {
            HostReport::new(&m.label, status, why.clone())
        } else {
            HostReport::new(
                &m.label,
                Status::Aborted,
                format!("not locked: {label} refused the lock"),
            )
        };
        ctx.out.done(&m.label, false, &report.message);
        reports.push(report);
    }
    reports
}

/// `unlock`: breaks a lock whose holder stopped sending heartbeats or ran on this machine
/// and is gone, or a manual lock (or any lock with `force`). The lock is read first and broken only if it is
/// still that one, so a newer holder's lock is never removed.
pub async fn unlock(ctx: &Context, env: &DeployEnv, force: bool) -> Vec<HostReport> {
    let fleet = Fleet::connect(env, &ctx.connector, &ctx.out).await;
    let mut reports = fleet.not_connected.clone();
    let results = each(&fleet.members, |m| {
        let root = env.path.clone();
        let out = ctx.out.clone();
        let (run_id, who) = (ctx.run_id.clone(), ctx.who.clone());
        async move {
            let report = match unlock_one(&m, &root, force).await {
                Ok((status, message)) => HostReport::new(&m.label, status, message),
                Err(e) => HostReport::new(&m.label, e.status(), e.to_string()),
            };
            if report.status == Status::Ok && report.message != NOT_LOCKED {
                let record = Record::event(
                    &run_id,
                    Action::Unlock,
                    &who,
                    Outcome::Success,
                    &report.message,
                );
                // Best effort: the lock is broken whether or not the record could be written.
                let _ = m
                    .run(&scripts::record_event(&root, &record.to_line()))
                    .await;
            }
            out.done(&m.label, report.status == Status::Ok, &report.message);
            report
        }
    })
    .await;
    reports.extend(results);
    reports
}

/// What `unlock` says of a host that had no lock (nothing to record).
const NOT_LOCKED: &str = "not locked";

async fn unlock_one(
    m: &Member,
    root: &str,
    force: bool,
) -> Result<(Status, String), crate::deploy::error::HostError> {
    let read = Acquire::parse(&m.run(&scripts::lock_read(root)).await?.stdout);
    let Acquire::Held {
        holder,
        heartbeat_age: age,
    } = read
    else {
        return Ok((Status::Ok, NOT_LOCKED.into()));
    };
    let live = liveness(age, holder.as_ref().and_then(Holder::alive_here));
    let manual = holder.as_ref().is_some_and(|h| h.manual);
    if live == Liveness::Alive && !force && !manual {
        return Ok((
            Status::LockHeld,
            format!(
                "locked by {}, alive (heartbeat {age}s ago): not breaking it; pass --force if you are sure it is dead",
                describe(holder.as_ref())
            ),
        ));
    }
    let expected = holder.as_ref().map(|h| h.deploy_id.as_str());
    let broken = Break::parse(&m.run(&scripts::lock_break(root, expected)).await?.stdout);
    Ok(match broken {
        Break::NoLock => (Status::Ok, NOT_LOCKED.into()),
        Break::Changed => (
            Status::LockHeld,
            "another run took the lock while it was being broken: left as it is".into(),
        ),
        Break::Broken { holder } if manual => (
            Status::Ok,
            format!("released the manual lock of {}", describe(holder.as_ref())),
        ),
        Break::Broken { holder } => {
            let why = match live {
                Liveness::DeadHere => format!(
                    "its process, pid {} on this machine, is gone",
                    holder.as_ref().map_or(0, |h| h.pid)
                ),
                _ => format!("last heartbeat {age}s ago"),
            };
            (
                Status::Ok,
                format!("broke the lock of {} ({why})", describe(holder.as_ref())),
            )
        }
    })
}

fn emit(ctx: &Context, text: &str, json: serde_json::Value) {
    if ctx.out.mode() == Mode::Json {
        ctx.out.print_block(&format!("{json}\n"));
    } else {
        ctx.out.print_block(text);
    }
}
