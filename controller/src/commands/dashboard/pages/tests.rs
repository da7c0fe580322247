//! The pages, table by table: an app's state from its instances, the fleet grid with
//! unreachable and waiting hosts, the actions an app page offers, escaping, and rollouts
//! grouped across hosts.

use super::*;
use pmfleet_shared::protocol::ExecModeSpec;

fn proc(app: &str, instance: u32, status: Status) -> ProcessInfo {
    ProcessInfo {
        id: instance,
        name: app.into(),
        namespace: "default".into(),
        mode: ExecModeSpec::Fork,
        instance,
        pid: Some(100 + instance),
        status,
        uptime_ms: Some(1000),
        restarts: 0,
        cpu_percent: Some(1.0),
        rss_bytes: Some(1 << 20),
        release: Some("r1".into()),
        sha: None,
        extra: Default::default(),
    }
}

fn up(label: &str, procs: Vec<ProcessInfo>) -> HostState {
    HostState {
        label: label.into(),
        env: "production".into(),
        answer: Some(Ok(AgentStatus {
            version: "0.1.0".into(),
            hostname: label.into(),
            uptime_secs: 1,
            release: None,
            processes: procs,
            roots: Vec::new(),
            applying: false,
            host: None,
        })),
    }
}

#[test]
fn an_apps_state_comes_from_its_instances() {
    use Status::*;
    type State = (&'static str, &'static str, usize, usize);
    let table: [(&[Status], State); 6] = [
        (&[], ("-", "none", 0, 0)),
        (&[Online, Online], ("online", "ok", 2, 2)),
        (&[Online, Errored], ("errored", "bad", 1, 2)),
        (&[Stopped, Stopped], ("stopped", "warn", 0, 2)),
        (&[Online, Launching], ("partial", "warn", 1, 2)),
        (&[Waiting], ("partial", "warn", 0, 1)),
    ];
    for (statuses, want) in table {
        let procs: Vec<ProcessInfo> = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| proc("api", i as u32, *s))
            .collect();
        let refs: Vec<&ProcessInfo> = procs.iter().collect();
        assert_eq!(app_state(&refs), want, "{statuses:?}");
    }
}

#[test]
fn the_fleet_grid_shows_every_host_and_app_with_its_state() {
    let hosts = vec![
        up(
            "web1",
            vec![
                proc("api", 0, Status::Online),
                proc("api", 1, Status::Online),
            ],
        ),
        up("web2", vec![proc("worker", 0, Status::Errored)]),
        HostState {
            label: "web3".into(),
            env: "production".into(),
            answer: Some(Err("connection refused".into())),
        },
        HostState {
            label: "web<4>".into(),
            env: "staging".into(),
            answer: None,
        },
    ];
    assert_eq!(app_names(&hosts), ["api", "worker"]);
    let page = fleet(&hosts);
    for want in [
        r#"<td class="ok" data-app="api" data-state="online">online 2/2</td>"#,
        r#"<td class="bad" data-app="worker" data-state="errored">errored 0/1</td>"#,
        r#"data-state="unreachable">unreachable: connection refused</td>"#,
        r#"data-state="waiting">"#,
        r#"<tr data-host="web&lt;4&gt;">"#,
        r#"<a href="/app/worker">worker</a>"#,
    ] {
        assert!(page.contains(want), "{want} missing:\n{page}");
    }
    assert!(!page.contains("web<4>"), "{page}");
}

#[test]
fn values_are_escaped_and_encoded() {
    let table = [
        (
            r#"<script>"x"&'y'"#,
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;",
        ),
        ("plain", "plain"),
    ];
    for (raw, want) in table {
        assert_eq!(escape(raw), want);
    }
    assert_eq!(encode("a b/c?d"), "a%20b%2Fc%3Fd");
}

#[test]
fn rollouts_are_grouped_across_hosts_latest_first() {
    let r = |host: &str, id: &str, started: &str, finished: Option<&str>| Rollout {
        env: "production".into(),
        host: host.into(),
        id: id.into(),
        action: "deploy".into(),
        who: "alice".into(),
        started: started.into(),
        finished: finished.map(str::to_string),
        release: format!("release-{id}"),
        state: if finished.is_some() {
            "finished"
        } else {
            "running"
        }
        .into(),
    };
    let rows = rollout_rows(&[
        r(
            "web2",
            "a",
            "2026-12-01T10:00:00Z",
            Some("2026-12-01T10:00:12Z"),
        ),
        r(
            "web1",
            "a",
            "2026-12-01T10:00:00Z",
            Some("2026-12-01T10:00:07Z"),
        ),
        r("web1", "b", "2026-12-01T11:00:00Z", None),
    ]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0].id.as_str(), rows[0].state.as_str()),
        ("b", "running or interrupted")
    );
    assert_eq!(rows[0].duration, None);
    assert_eq!(rows[1].hosts, ["web1", "web2"]);
    assert_eq!(
        (rows[1].state.as_str(), rows[1].duration.as_deref()),
        ("finished", Some("12s"))
    );
}

#[test]
fn an_app_page_offers_only_the_actions_it_is_given() {
    let hosts = [
        up("web1", vec![proc("web", 0, Status::Online)]),
        up("web2", vec![proc("other", 0, Status::Online)]),
    ];
    // (verbs given, buttons expected on the host that runs the app)
    let table: [(&[&str], &[&str]); 3] = [
        (
            &["reload", "restart", "stop", "scale"],
            &["reload-0", "restart-0", "stop-0", "scale-0"],
        ),
        (&["reload", "restart"], &["reload-0", "restart-0"]),
        (&[], &[]),
    ];
    for (verbs, want) in table {
        let page = app("web", &hosts, &[], "k", verbs, None);
        for id in ["reload-0", "restart-0", "stop-0", "scale-0"] {
            let shown = page.contains(&format!(r#"id="{id}""#));
            assert_eq!(shown, want.contains(&id), "{id} with {verbs:?}");
        }
        assert!(!page.contains(r#"id="reload-1""#), "web2 does not run it");
        assert_eq!(page.contains(r#"name="csrf""#), !verbs.is_empty());
        assert_eq!(page.contains(r#"id="no-actions""#), verbs.is_empty());
    }
}
