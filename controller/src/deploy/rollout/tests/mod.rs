//! The rollout's rules as tables: each row starts a machine, feeds it the events that bring it
//! to some point (`given`), then one more event (`when`), and checks the actions that follow,
//! written in a short notation (see [`show`]).

use std::sync::Arc;

use pmfleet_shared::ecosystem::Batch;

use super::deploy::batch_size;
use super::revert::{Verdict, verdict};
use super::*;
use crate::agent::apply::ApplyError;
use crate::deploy::error::Step;
use crate::deploy::history::{Action as RecordAction, Outcome, Record};
use crate::deploy::lock::Holder;
use crate::ssh::SshError;
use crate::transport::TransportError;

mod details;
mod gate;
mod prepare;
mod rails;
mod revert;
mod switch;

// ---- the notation -------------------------------------------------------------------------

fn hosts(list: &[HostId]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// One action in a few words: `lock 0,1`, `switch 0 r2`, `back 0 r1: why` (its history
/// record's message), `apply 0 r1 as r2` (the apps of r1 told they are r2),
/// `0 failed: why +discard r2 +rec failed r2<-r1 "other message" +prune`.
fn show(action: &Action) -> String {
    match action {
        Action::TakeLock(h) => format!("lock {}", hosts(h)),
        Action::HoldLock(h) => format!("hold {}", hosts(h)),
        Action::WaitForLock => "wait".into(),
        Action::ReleaseLock(h) => format!("unlock {}", hosts(h)),
        Action::Begin(h, r) => format!("begin {} {r}", hosts(h)),
        Action::End(h) => format!("end {}", hosts(h)),
        Action::EndHooks(h) => format!("end-hooks {}", hosts(h)),
        Action::Prepare(h, r) => format!("prepare {} {r}", hosts(h)),
        Action::ReadState(h) => format!("read {}", hosts(h)),
        Action::Switch(h, r, _) => format!("switch {h} {r}"),
        Action::SwitchBack(h, r, e) => {
            format!("back {h} {r}: {}", e.message.as_deref().unwrap_or(""))
        }
        Action::Apply {
            host,
            release,
            vars,
        } => format!("apply {host} {release}{}", as_vars(release, vars)),
        Action::ApplyBack {
            host,
            release,
            vars,
        } => format!("apply-back {host} {release}{}", as_vars(release, vars)),
        Action::RunRelease(h, r) => format!("release {h} {r}"),
        Action::Watch(h, r) => format!("watch {h} {r}"),
        Action::StopWatching(h) => format!("stop-watching {}", hosts(h)),
        Action::Confirm(h) => format!("confirm {}", hosts(h)),
        Action::Cancel => "cancel".into(),
        Action::Info(m) => format!("info: {m}"),
        Action::Note(h, step, text) => format!("note {h} {step}: {text}"),
        Action::Conclude(c) => {
            let mut s = format!("{} {}: {}", c.host, c.status.label(), c.message);
            if let Some(r) = &c.discard {
                s.push_str(&format!(" +discard {r}"));
            }
            for e in &c.records {
                s.push_str(&format!(" +rec {}", record(e)));
                if let Some(m) = e.message.as_ref().filter(|m| **m != c.message) {
                    s.push_str(&format!(" {m:?}"));
                }
            }
            if c.prune {
                s.push_str(" +prune");
            }
            s
        }
        Action::Finish => "finish".into(),
    }
}

fn as_vars(release: &str, vars: &ReleaseVars) -> String {
    if vars.release == release {
        String::new()
    } else {
        format!(" as {}", vars.release)
    }
}

fn record(e: &Entry) -> String {
    let outcome = match e.outcome {
        Outcome::Success => "success",
        Outcome::Failed => "failed",
        Outcome::Aborted => "aborted",
        Outcome::RolledBack => "rolled-back",
    };
    let action = match e.action {
        RecordAction::Deploy => "",
        RecordAction::Revert => "revert ",
        RecordAction::Setup | RecordAction::Unlock | RecordAction::Lock | RecordAction::App => {
            "other "
        }
    };
    match &e.previous {
        Some(p) => format!("{action}{outcome} {}<-{p}", e.release),
        None => format!("{action}{outcome} {}", e.release),
    }
}

// ---- configurations -----------------------------------------------------------------------

fn labels(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("h{i}")).collect()
}

fn deploy(n: usize, batch: Batch, max_fail: usize, agents: bool) -> Config {
    Config {
        plan: Plan::Deploy {
            release: ReleaseVars {
                release: "r2".into(),
                sha: Some("2".repeat(40)),
                git_ref: Some("main".into()),
            },
            batch,
            max_fail,
            rails: Rails::default(),
        },
        env: "prod".into(),
        labels: labels(n),
        agents,
        lock_wait: false,
        keep_releases: 5,
    }
}

/// A deploy with agents and `rails`.
fn railed(n: usize, batch: Batch, max_fail: usize, rails: Rails) -> Config {
    let mut cfg = deploy(n, batch, max_fail, true);
    if let Plan::Deploy { rails: r, .. } = &mut cfg.plan {
        *r = rails;
    }
    cfg
}

fn all(n: usize) -> Config {
    deploy(n, Batch::All, 0, false)
}

fn waiting(mut cfg: Config) -> Config {
    cfg.lock_wait = true;
    cfg
}

fn revert(n: usize, agents: bool) -> Config {
    Config {
        plan: Plan::Revert {
            to: RevertTo::Steps(1),
        },
        env: "prod".into(),
        labels: labels(n),
        agents,
        lock_wait: false,
        keep_releases: 5,
    }
}

/// `revert` with no N on `n` hosts, without agents.
fn revert_newest(n: usize) -> Config {
    Config {
        plan: Plan::Revert {
            to: RevertTo::NewestCommon,
        },
        ..revert(n, false)
    }
}

// ---- events -------------------------------------------------------------------------------

fn dropped() -> HostError {
    HostError::transport(TransportError::Ssh(SshError::ConnectionLost {
        destination: "root@h:22".into(),
        message: "gone".into(),
    }))
}

fn refused_tcp() -> HostError {
    HostError::connect(SshError::Connect {
        destination: "root@h:22".into(),
        source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
    })
}

fn key_refused() -> HostError {
    HostError::connect(SshError::Auth {
        destination: "root@h:22".into(),
        tried: vec!["id_ed25519".into()],
    })
}

fn boom() -> HostError {
    HostError::Exit {
        status: 1,
        reason: "boom".into(),
    }
}

fn not_ready() -> HostError {
    HostError::Agent(ApplyError::NotReady(vec!["web: never ready".into()]))
}

fn hook_failed(step: Step) -> StepFailure {
    StepFailure {
        step,
        error: HostError::Hook {
            hook: step.name(),
            status: 2,
        },
    }
}

/// A manual lock (a freeze) by alice, with why.
fn frozen() -> Refusal {
    Refusal::Held {
        holder: Some(Holder {
            since: "t".into(),
            ..Holder::manual("alice@laptop", "f1", Some("release freeze"))
        }),
        heartbeat_age: 3600,
        alive_here: None,
        env: "prod".into(),
    }
}

fn held(age: u64) -> Refusal {
    Refusal::Held {
        holder: Some(Holder {
            holder: "alice@laptop".into(),
            deploy_id: "d1".into(),
            action: "deploy".into(),
            since: "t".into(),
            pid: 7,
            machine: String::new(),
            ..Holder::default()
        }),
        heartbeat_age: age,
        alive_here: None,
        env: "prod".into(),
    }
}

fn connected(n: usize) -> Vec<Event> {
    (0..n).map(Event::Connected).collect()
}

fn locked(n: usize) -> Vec<Event> {
    let mut events = connected(n);
    events.extend((0..n).map(Event::LockTaken));
    events
}

/// What a host serving r1 says as the rollout begins.
fn begun_on(h: HostId) -> Event {
    Event::Begun(
        h,
        Box::new(Begun {
            current: Some("r1".into()),
            serving: Some(ReleaseVars {
                release: "r1".into(),
                sha: Some("sha-r1".into()),
                git_ref: Some("main".into()),
            }),
            last: None,
        }),
    )
}

/// Connected, locked and begun.
fn begun(n: usize) -> Vec<Event> {
    let mut events = locked(n);
    events.extend((0..n).map(begun_on));
    events
}

fn prep(h: HostId) -> Event {
    Event::Prepared(h, Prepared { has_apps: true })
}

fn prepared(n: usize) -> Vec<Event> {
    let mut events = begun(n);
    events.extend((0..n).map(prep));
    events
}

fn sw(h: HostId) -> Event {
    Event::Switched(h, Some("r1".into()))
}

fn and(mut events: Vec<Event>, more: impl IntoIterator<Item = Event>) -> Vec<Event> {
    events.extend(more);
    events
}

fn record_of(action: RecordAction, release: &str, outcome: Outcome) -> Record {
    Record {
        id: "x".into(),
        action,
        release: release.into(),
        previous: None,
        sha: format!("sha-{release}"),
        git_ref: "main".into(),
        who: "t".into(),
        when: "2026-01-01T00:00:00Z".into(),
        outcome,
        message: None,
    }
}

/// A set-up host that deployed `line` in order and still holds `releases`.
fn host_state(line: &[&str], releases: &[&str]) -> HostState {
    HostState {
        setup: true,
        root: "/srv/app".into(),
        current: line.last().map(|r| r.to_string()),
        releases: releases.iter().map(|r| r.to_string()).collect(),
        incomplete: Vec::new(),
        lock: None,
        rollout: None,
        history: line
            .iter()
            .map(|r| record_of(RecordAction::Deploy, r, Outcome::Success))
            .collect(),
    }
}

fn st(h: HostId, state: HostState) -> Event {
    Event::StateRead(h, Box::new(state))
}

/// What a host says as a revert's rollout begins.
fn revert_begun(h: HostId) -> Event {
    Event::Begun(
        h,
        Box::new(Begun {
            current: Some("r2".into()),
            serving: None,
            last: None,
        }),
    )
}

/// Revert of 2 hosts, both having deployed r1 then r2: read, begun, about to switch to r1.
fn read_two() -> Vec<Event> {
    and(
        locked(2),
        [
            st(0, host_state(&["r1", "r2"], &["r1", "r2"])),
            st(1, host_state(&["r1", "r2"], &["r1", "r2"])),
            revert_begun(0),
            revert_begun(1),
        ],
    )
}

// ---- the table ----------------------------------------------------------------------------

struct Row {
    name: &'static str,
    cfg: Config,
    given: Vec<Event>,
    when: Event,
    expect: Vec<String>,
}

fn row(name: &'static str, cfg: Config, given: Vec<Event>, when: Event, expect: &[&str]) -> Row {
    Row {
        name,
        cfg,
        given,
        when,
        expect: expect.iter().map(|e| e.to_string()).collect(),
    }
}

const UNREACHED: &str = "not deployed: another host could not be reached";
const NOT_LOCKED: &str = "not deployed: another host is locked or not set up";
const INTERRUPTED: &str =
    "interrupted before the switch: nothing switched, the new release was removed";
const HELD: &str = "locked by alice@laptop (deploy d1, since t, pid 7) (heartbeat 3s ago): wait for it, or pass --lock-wait 5m";

#[test]
fn the_rollout_table() {
    let mut rows = gate::rows();
    rows.extend(prepare::rows());
    rows.extend(switch::rows());
    rows.extend(revert::rows());
    rows.extend(rails::rows());
    let count = rows.len();
    let mut failures = Vec::new();
    for row in rows {
        let mut machine = Rollout::new(row.cfg);
        for event in row.given {
            machine.handle(event);
        }
        let got: Vec<String> = machine.handle(row.when).iter().map(show).collect();
        if got != row.expect {
            failures.push(format!(
                "row `{}`:\n  expected {:#?}\n  got      {:#?}",
                row.name, row.expect, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count > 60, "{count} rows");
}
