//! The monit model, table by table: rows and the filter, the selection kept on its instance
//! while rows move, unreachable hosts shown and coming back, and every key in every mode.

use std::time::{Duration, Instant};

use super::*;
use crate::protocol::{ExecModeSpec, Status};

fn proc(app: &str, instance: u32, status: Status) -> ProcessInfo {
    ProcessInfo {
        id: instance,
        name: app.into(),
        namespace: "default".into(),
        mode: ExecModeSpec::Cluster,
        instance,
        pid: Some(100 + instance),
        status,
        uptime_ms: Some(1000),
        restarts: 0,
        cpu_percent: Some(10.0),
        rss_bytes: Some(1 << 20),
        release: Some("r1".into()),
        sha: None,
        extra: Default::default(),
    }
}

fn status(procs: Vec<ProcessInfo>) -> AgentStatus {
    AgentStatus {
        version: "0.1.0".into(),
        hostname: "h".into(),
        uptime_secs: 1,
        release: None,
        processes: procs,
        roots: Vec::new(),
        applying: false,
        host: None,
    }
}

fn names(n: &[&str]) -> Vec<HostName> {
    n.iter()
        .map(|l| HostName {
            label: l.to_string(),
            env: "production".into(),
        })
        .collect()
}

/// web1 runs api×2 and worker, web2 runs api×1, web3 is unreachable.
fn fleet() -> Monit {
    let mut m = Monit::new(names(&["web1", "web2", "web3"]));
    let now = Instant::now();
    m.answered(
        0,
        Ok(status(vec![
            proc("worker", 0, Status::Online),
            proc("api", 1, Status::Online),
            proc("api", 0, Status::Online),
        ])),
        now,
    );
    m.answered(1, Ok(status(vec![proc("api", 0, Status::Errored)])), now);
    m.answered(2, Err("connection refused".into()), now);
    m
}

fn shown(m: &Monit) -> Vec<String> {
    m.rows()
        .iter()
        .map(|r| {
            let host = &m.hosts[r.host].name.label;
            match r.process {
                Some(p) => format!("{host}/{}/{}", p.name, p.instance),
                None => format!("{host}/-"),
            }
        })
        .collect()
}

#[test]
fn rows_are_every_instance_by_host_and_one_row_per_silent_host() {
    let m = fleet();
    assert_eq!(
        shown(&m),
        [
            "web1/api/0",
            "web1/api/1",
            "web1/worker/0",
            "web2/api/0",
            "web3/-"
        ]
    );
    assert_eq!(m.answering(), (2, 3));
}

#[test]
fn the_filter_matches_hosts_and_apps() {
    let table: [(&str, &[&str]); 5] = [
        (
            "",
            &[
                "web1/api/0",
                "web1/api/1",
                "web1/worker/0",
                "web2/api/0",
                "web3/-",
            ],
        ),
        ("worker", &["web1/worker/0"]),
        ("web2", &["web2/api/0"]),
        ("API", &["web1/api/0", "web1/api/1", "web2/api/0"]),
        ("web3", &["web3/-"]),
    ];
    for (filter, want) in table {
        let mut m = fleet();
        m.filter = filter.into();
        assert_eq!(shown(&m), want, "{filter:?}");
    }
}

#[test]
fn typing_a_filter_applies_on_enter_and_esc_clears_it() {
    let mut m = fleet();
    m.key(Key::Char('/'));
    for c in "wrk".chars() {
        m.key(Key::Char(c));
    }
    m.key(Key::Backspace);
    m.key(Key::Backspace);
    for c in "orker".chars() {
        m.key(Key::Char(c));
    }
    assert_eq!(m.mode, Mode::Filtering("worker".into()));
    assert_eq!(shown(&m).len(), 5, "not applied while typing");
    m.key(Key::Enter);
    assert_eq!(m.mode, Mode::List);
    assert_eq!(shown(&m), ["web1/worker/0"]);
    m.key(Key::Char('/'));
    m.key(Key::Esc);
    assert_eq!(m.filter, "");
    assert_eq!(shown(&m).len(), 5);
}

#[test]
fn moving_the_selection_follows_the_selected_apps_logs_and_settings() {
    let mut m = fleet();
    // The first answer selected web1/api/0: its logs and settings were asked for.
    assert_eq!(m.logs_for, Some((0, "api".into())));
    let effects = m.key(Key::Down);
    assert!(effects.is_empty(), "same app, other instance: {effects:?}");
    let effects = m.key(Key::Down);
    assert_eq!(
        effects,
        vec![
            Effect::FollowLogs {
                host: 0,
                app: "worker".into()
            },
            Effect::Describe {
                host: 0,
                app: "worker".into()
            },
        ]
    );
    m.described(
        0,
        crate::ecosystem::App::from_script("w.js").pipe_spec("worker"),
    );
    m.key(Key::Up);
    let effects = m.key(Key::Down);
    assert_eq!(
        effects,
        vec![Effect::FollowLogs {
            host: 0,
            app: "worker".into()
        }]
    );
    for _ in 0..10 {
        m.key(Key::Down);
    }
    assert_eq!(m.selected, 4, "stops at the last row");
    m.key(Key::PageUp);
    assert_eq!(m.selected, 0);
    m.key(Key::Up);
    assert_eq!(m.selected, 0);
}

#[test]
fn the_selection_stays_on_its_instance_when_rows_move() {
    let mut m = fleet();
    m.key(Key::Down);
    m.key(Key::Down);
    assert_eq!(m.selected_key(), Some((0, "worker".into(), 0)));
    // web1 starts another app that sorts before `worker`.
    m.answered(
        0,
        Ok(status(vec![
            proc("worker", 0, Status::Online),
            proc("api", 1, Status::Online),
            proc("api", 0, Status::Online),
            proc("cron", 0, Status::Online),
        ])),
        Instant::now(),
    );
    assert_eq!(m.selected_key(), Some((0, "worker".into(), 0)));
    // Its row goes away: the selection stays in bounds.
    m.key(Key::PageDown);
    m.answered(1, Err("gone".into()), Instant::now());
    m.answered(2, Err("gone".into()), Instant::now());
    m.answered(0, Ok(status(vec![])), Instant::now());
    assert!(m.selected < m.rows().len().max(1));
}

#[test]
fn an_unreachable_host_is_shown_and_comes_back_by_itself() {
    let mut m = fleet();
    let t0 = Instant::now();
    m.answered(1, Err("connection refused".into()), t0);
    let since = match &m.hosts[1].reach {
        Reach::Down { since, .. } => *since,
        other => panic!("{other:?}"),
    };
    m.answered(
        1,
        Err("no answer within 3s".into()),
        t0 + Duration::from_secs(1),
    );
    match &m.hosts[1].reach {
        Reach::Down { since: s, error } => {
            assert_eq!(*s, since, "down since the first failure");
            assert!(error.contains("no answer"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        shown(&m),
        [
            "web1/api/0",
            "web1/api/1",
            "web1/worker/0",
            "web2/-",
            "web3/-"
        ]
    );
    m.answered(
        1,
        Ok(status(vec![proc("api", 0, Status::Online)])),
        t0 + Duration::from_secs(2),
    );
    assert!(matches!(m.hosts[1].reach, Reach::Up { .. }));
    assert!(shown(&m).contains(&"web2/api/0".to_string()));
}

#[test]
fn the_refresh_period_is_the_median_time_between_answers() {
    let mut m = Monit::new(names(&["a", "b", "c"]));
    let t = Instant::now();
    for (host, gaps) in [(0, [1000, 1000]), (1, [1000, 1200]), (2, [1000, 3000])] {
        let mut at = t;
        m.answered(host, Ok(status(vec![])), at);
        for g in gaps {
            at += Duration::from_millis(g);
            m.answered(host, Ok(status(vec![])), at);
        }
    }
    assert_eq!(m.refresh_period(), Some(Duration::from_millis(1200)));
    assert_eq!(Monit::new(names(&["a"])).refresh_period(), None);
}

#[test]
fn verbs_ask_first_and_go_only_on_yes() {
    // (key, then the answer to the question) → what is sent.
    let table: [(char, char, Option<Request>); 5] = [
        (
            'R',
            'y',
            Some(Request::Reload {
                target: Target::App("api".into()),
            }),
        ),
        (
            'r',
            'Y',
            Some(Request::Restart {
                target: Target::App("api".into()),
            }),
        ),
        (
            's',
            'y',
            Some(Request::Stop {
                target: Target::App("api".into()),
            }),
        ),
        ('R', 'n', None),
        ('s', 'q', None),
    ];
    for (verb, answer, want) in table {
        let mut m = fleet();
        assert!(
            m.key(Key::Char(verb)).is_empty(),
            "{verb}: nothing sent before yes"
        );
        assert!(matches!(m.mode, Mode::Confirm(_)), "{verb}");
        let effects = m.key(Key::Char(answer));
        assert_eq!(m.mode, Mode::List);
        match want {
            Some(request) => {
                let [
                    Effect::Send {
                        host,
                        request: sent,
                        what,
                    },
                ] = effects.as_slice()
                else {
                    panic!("{verb}{answer}: {effects:?}")
                };
                assert_eq!((*host, sent), (0, &request));
                assert!(what.contains("api on web1"), "{what}");
            }
            None => {
                assert!(effects.is_empty(), "{verb}{answer}: {effects:?}");
                assert_eq!(m.message.as_deref(), Some("cancelled"));
            }
        }
    }
}

#[test]
fn a_verb_on_a_silent_host_is_refused_and_outcomes_are_said() {
    let mut m = fleet();
    m.filter = "web3".into();
    m.selected = 0;
    assert!(m.key(Key::Char('R')).is_empty());
    assert_eq!(m.mode, Mode::List);
    assert_eq!(m.message.as_deref(), Some("select an app first"));
    m.acted(
        "reload api on web1",
        Ok(vec!["api: reloaded 2 instance(s)".into()]),
    );
    assert_eq!(
        m.message.as_deref(),
        Some("reload api on web1: api: reloaded 2 instance(s)")
    );
    m.acted(
        "stop api on web1",
        Err("`stop` needs the `admin` role".into()),
    );
    assert!(
        m.message
            .as_deref()
            .is_some_and(|s| s.contains("failed: `stop` needs"))
    );
}

#[test]
fn quit_and_the_full_screen_logs() {
    let table: [(&[Key], Mode, bool); 6] = [
        (&[Key::Char('q')], Mode::List, true),
        (&[Key::Esc], Mode::List, true),
        (&[Key::Char('l')], Mode::Logs, false),
        (&[Key::Char('l'), Key::Char('l')], Mode::List, false),
        (&[Key::Char('l'), Key::Esc], Mode::List, false),
        (&[Key::Char('l'), Key::Char('q')], Mode::Logs, true),
    ];
    for (keys, mode, quits) in table {
        let mut m = fleet();
        let mut effects = Vec::new();
        for k in keys {
            effects = m.key(*k);
        }
        assert_eq!(m.mode, mode, "{keys:?}");
        assert_eq!(effects.contains(&Effect::Quit), quits, "{keys:?}");
    }
}

#[test]
fn history_and_log_lines_are_bounded() {
    let mut m = fleet();
    for _ in 0..(HISTORY + 5) {
        m.answered(
            1,
            Ok(status(vec![proc("api", 0, Status::Online)])),
            Instant::now(),
        );
    }
    assert_eq!(m.history(1, "api", 0).map(|h| h.cpu.len()), Some(HISTORY));
    for i in 0..(LOG_LINES + 3) {
        m.log_line(format!("line {i}"));
    }
    assert_eq!(m.logs.len(), LOG_LINES);
    assert_eq!(
        m.logs.back().map(String::as_str),
        Some(&*format!("line {}", LOG_LINES + 2))
    );
    // An instance that went away takes its history with it.
    m.answered(1, Ok(status(vec![])), Instant::now());
    assert!(m.history(1, "api", 0).is_none());
}

/// A spec for the metadata panel.
trait PipeSpec {
    fn pipe_spec(self, name: &str) -> AppSpec;
}

impl PipeSpec for crate::ecosystem::App {
    fn pipe_spec(self, name: &str) -> AppSpec {
        AppSpec {
            name: name.into(),
            namespace: "default".into(),
            program: "node".into(),
            program_args: vec![self.script.clone()],
            script: self.script,
            cwd: "/".into(),
            env: Default::default(),
            exec_mode: ExecModeSpec::Fork,
            instances: crate::protocol::InstancesSpec::Count(1),
            port: None,
            node: true,
            max_memory_restart: None,
            autorestart: true,
            max_restarts: 16,
            min_uptime_ms: 1000,
            restart_delay_ms: 0,
            exp_backoff_restart_delay_ms: None,
            stop_exit_codes: Vec::new(),
            kill_signal: "SIGINT".into(),
            kill_timeout_ms: 1600,
            listen_timeout_ms: 3000,
            wait_ready: false,
            watch: Vec::new(),
            ignore_watch: Vec::new(),
            out_file: None,
            error_file: None,
            merge_logs: false,
            log_date_format: None,
            time: false,
            instance_var: "NODE_APP_INSTANCE".into(),
            increment_var: None,
            healthcheck: None,
            deploy_timeout_ms: None,
            cron_restart: None,
            metrics: None,
            secrets_file: None,
        }
    }
}
