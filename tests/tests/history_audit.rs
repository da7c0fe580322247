//! `pmfleet history`: the controller's audit trail and every host's `history.jsonl` from real
//! deploys, reverts, setups and app commands on real sshd hosts, merged into one timeline;
//! a torn line neither hides a run nor swallows the next record, and a forged line is shown
//! harmlessly (no terminal escapes) and flagged as a host whose history disagrees.

use std::io::Write;

use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::{Project, ok};
use pmfleet_testkit::sshd::{Fleet, SshHost};
use pmfleet_testkit::{free_port, require_sshd};
use serde_json::{Value, json};

const SERVER_JS: &str = r#"require("http").createServer((req, res) => res.end("ok\n")).listen(process.env.PORT);
"#;

fn append(host: &SshHost, text: &str) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(host.root().join("app/.pmfleet/history.jsonl"))
        .expect("the host's history")
        .write_all(text.as_bytes())
        .unwrap();
}

fn timeline(project: &Project, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["history", "production", "--json"];
    all.extend_from_slice(args);
    let run = project.pmfleet(&all);
    let doc = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{}", run.all()));
    (run.code, doc)
}

#[test]
fn history_merges_every_run_across_hosts_and_survives_torn_and_forged_lines() {
    require_sshd!();
    let fleet = Fleet::start(2);
    let app_port = free_port();
    let agent_port = free_port();
    // Cluster mode: each host's agent binds the port on its own address.
    let apps = json!([{"name": "web", "script": "server.js", "exec_mode": "cluster",
                       "instances": 1, "env": {"PORT": app_port}}]);
    let repo = GitRepo::new();
    repo.write("server.js", SERVER_JS);
    repo.commit_file("ecosystem.json", &json!({ "apps": apps }).to_string(), "v1");
    let project = Project::new(fleet.home.path());
    let hosts = fleet.hosts_json();
    project.write_ecosystem(&json!({
        "apps": apps,
        "deploy": {"production": {
            "host": hosts, "ref": "main", "repo": repo.url(), "path": "/srv/app",
            "fetch": "push", "agent": {"port": agent_port, "bind": "host"},
        }}
    }));
    ok(&project.pmfleet(&["ca", "init"]));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    let sha1 = repo.head();
    repo.commit_file("VERSION", "2\n", "v2");
    ok(&project.pmfleet(&["deploy", "production"]));
    ok(&project.pmfleet(&["deploy", "production", "revert", "1"]));
    ok(&project.pmfleet(&["app", "production", "restart", "web"]));

    let (code, doc) = timeline(&project, &[]);
    assert_eq!(code, 0, "{doc:#}");
    let entries = doc["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["setup", "deploy", "deploy", "revert", "app restart web"],
        "{doc:#}"
    );
    for e in entries {
        assert_eq!(e["performer"], "tester", "{e}");
        assert!(e["disagreements"].as_array().unwrap().is_empty(), "{e}");
        assert!(
            e["duration_ms"].as_u64().is_some(),
            "the controller's record: {e}"
        );
        for h in &fleet.hosts {
            assert!(e["hosts"].get(h.label()).is_some(), "{} in {e}", h.label());
        }
    }
    assert_eq!(entries[1]["sha"], sha1.as_str());
    assert_eq!(entries[1]["ref"], "main");
    assert_eq!(entries[1]["outcome"], "succeeded");
    assert_eq!(entries[1]["hosts"][fleet.hosts[0].label()], "ok");
    assert_eq!(
        entries[3]["release"], entries[1]["release"],
        "reverted to r1"
    );
    assert!(
        entries[3]["command"]
            .as_str()
            .unwrap()
            .ends_with("deploy production revert 1"),
        "{}",
        entries[3]
    );
    assert!(doc["notes"].as_array().unwrap().is_empty(), "{doc:#}");

    let (_, limited) = timeline(&project, &["--limit", "2"]);
    let kept: Vec<&str> = limited["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["revert", "app restart web"]);

    let plain = project.pmfleet(&["history", "production"]);
    ok(&plain);
    assert!(
        plain.stdout.starts_with("WHEN") && plain.stdout.contains("app restart web"),
        "{}",
        plain.all()
    );

    // A writer died half-way through its line on host 0: the next deploy still records, and
    // the timeline still has every run.
    append(&fleet.hosts[0], r#"{"id":"torn-run","action":"dep"#);
    repo.commit_file("VERSION", "3\n", "v3");
    ok(&project.pmfleet(&["deploy", "production"]));
    let (code, doc) = timeline(&project, &[]);
    assert_eq!(code, 0, "{doc:#}");
    let last = doc["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["sha"], repo.head().as_str(), "{doc:#}");
    assert_eq!(last["hosts"][fleet.hosts[0].label()], "ok", "{last}");
    assert_eq!(doc["entries"].as_array().unwrap().len(), 6, "{doc:#}");

    // A forged line with terminal escapes, claiming a release nobody deployed.
    let forged = json!({
        "id": "forged", "action": "deploy", "release": "20990101-000000-000",
        "sha": "deadbeef", "ref": "main", "who": "\u{1b}[2J\u{1b}[31mmallory\r",
        "when": "2099-01-01T00:00:00Z", "outcome": "success",
    });
    append(&fleet.hosts[0], &format!("{forged}\n"));
    let plain = project.pmfleet(&["history", "production"]);
    assert_eq!(
        plain.code,
        1,
        "a disagreement exits non-zero:\n{}",
        plain.all()
    );
    assert!(
        plain.stdout.contains("?[2J?[31mmallory?"),
        "shown with its escapes defused:\n{}",
        plain.all()
    );
    assert!(!plain.stdout.contains('\u{1b}') && !plain.stdout.contains('\r'));
    let (code, doc) = timeline(&project, &[]);
    assert_eq!(code, 1);
    let notes: Vec<&str> = doc["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.starts_with(&fleet.hosts[0].label())
            && n.contains("history ends on release 20990101-000000-000")),
        "{notes:?}"
    );
}

/// The hosts' audit records (`.pmfleet/audit.jsonl`) of `host`, one JSON value per line.
fn audit_records(host: &SshHost) -> Vec<Value> {
    std::fs::read_to_string(host.root().join("app/.pmfleet/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_manual_lock_and_its_release_are_recorded_on_every_host_and_shown_by_history() {
    require_sshd!();
    let fleet = Fleet::start(2);
    let repo = GitRepo::new();
    repo.write("server.js", SERVER_JS);
    let apps = json!([{"name": "web", "script": "server.js", "env": {"PORT": free_port()}}]);
    repo.commit_file("ecosystem.json", &json!({ "apps": apps }).to_string(), "v1");
    let project = Project::new(fleet.home.path());
    let hosts = fleet.hosts_json();
    project.write_ecosystem(&json!({
        "apps": apps,
        "deploy": {"production": {
            "host": hosts, "ref": "main", "repo": repo.url(), "path": "/srv/app",
            "fetch": "push", "agent": {"port": free_port(), "bind": "host"},
        }}
    }));
    ok(&project.pmfleet(&["ca", "init"]));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    let why = "release freeze until Monday";
    ok(&project.pmfleet(&["deploy", "production", "lock", "--message", why]));
    ok(&project.pmfleet(&["deploy", "production", "unlock"]));

    for host in &fleet.hosts {
        let records = audit_records(host);
        let lock = records
            .iter()
            .find(|r| r["action"] == "lock")
            .unwrap_or_else(|| panic!("{}: no lock record in {records:?}", host.label()));
        assert_eq!(lock["who"], "tester", "{lock}");
        assert_eq!(lock["message"], why, "{lock}");
        assert_eq!(lock["outcome"], "success", "{lock}");
        let unlock = records
            .iter()
            .find(|r| r["action"] == "unlock")
            .unwrap_or_else(|| panic!("{}: no unlock record in {records:?}", host.label()));
        assert_eq!(unlock["who"], "tester", "{unlock}");
        assert!(
            unlock["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("released the manual lock of tester")),
            "{unlock}"
        );
    }

    let (code, doc) = timeline(&project, &[]);
    assert_eq!(code, 0, "{doc:#}");
    let entries = doc["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["setup", "lock", "unlock"], "{doc:#}");
    let lock = &entries[1];
    assert_eq!(lock["performer"], "tester", "{lock}");
    assert_eq!(lock["message"], why, "{lock}");
    assert_eq!(
        lock["outcome"], "succeeded",
        "the controller's record: {lock}"
    );
    assert!(
        lock["command"]
            .as_str()
            .unwrap()
            .ends_with(&format!("lock --message '{why}'")),
        "{lock}"
    );
    for h in &fleet.hosts {
        assert_eq!(lock["hosts"][h.label()], "ok", "{lock}");
        assert_eq!(entries[2]["hosts"][h.label()], "ok", "{}", entries[2]);
    }
    let plain = project.pmfleet(&["history", "production"]);
    ok(&plain);
    assert!(plain.stdout.contains(why), "{}", plain.all());
}

/// Two hosts with agents serving `web` (one cluster instance each), set up and deployed once.
fn two_hosts_serving_web() -> (Fleet, Project) {
    let fleet = Fleet::start(2);
    let repo = GitRepo::new();
    repo.write("server.js", SERVER_JS);
    // Cluster mode: each host's agent binds the port on its own address.
    let apps = json!([{"name": "web", "script": "server.js", "exec_mode": "cluster",
                       "instances": 1, "env": {"PORT": free_port()}}]);
    repo.commit_file("ecosystem.json", &json!({ "apps": apps }).to_string(), "v1");
    let project = Project::new(fleet.home.path());
    let hosts = fleet.hosts_json();
    project.write_ecosystem(&json!({
        "apps": apps,
        "deploy": {"production": {
            "host": hosts, "ref": "main", "repo": repo.url(), "path": "/srv/app",
            "fetch": "push", "agent": {"port": free_port(), "bind": "host"},
        }}
    }));
    ok(&project.pmfleet(&["ca", "init"]));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    (fleet, project)
}

#[test]
fn app_commands_over_mutual_tls_are_recorded_by_each_agent_and_joined_in_history() {
    require_sshd!();
    let (fleet, project) = two_hosts_serving_web();
    ok(&project.pmfleet(&["app", "production", "restart", "web"]));
    ok(&project.pmfleet(&["app", "production", "stop", "web"]));

    for host in &fleet.hosts {
        let records = audit_records(host);
        let apps: Vec<&Value> = records.iter().filter(|r| r["action"] == "app").collect();
        assert_eq!(apps.len(), 2, "{}: {records:?}", host.label());
        for (r, command) in apps.iter().zip(["app restart web", "app stop web"]) {
            let who = r["who"].as_str().unwrap_or("");
            assert!(
                who.starts_with("controller:") && who.ends_with("(admin)"),
                "the certificate's name and role: {r}"
            );
            assert_eq!(r["outcome"], "success", "{r}");
            assert!(
                r["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(command)),
                "{r}"
            );
            assert!(r["when"].as_str().is_some_and(|w| w.ends_with('Z')), "{r}");
        }
    }

    let (code, doc) = timeline(&project, &[]);
    assert_eq!(code, 0, "{doc:#}");
    let entries = doc["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["setup", "deploy", "app restart web", "app stop web"],
        "each host's record joins the controller's: {doc:#}"
    );
    let stop = &entries[3];
    assert_eq!(stop["performer"], "tester", "{stop}");
    assert!(
        stop["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("app stop web")),
        "the agents' word: {stop}"
    );
    for h in &fleet.hosts {
        assert_eq!(stop["hosts"][h.label()], "ok", "{stop}");
    }
}

#[test]
fn an_app_command_typed_on_a_host_is_recorded_with_the_host_user() {
    require_sshd!();
    let (fleet, project) = two_hosts_serving_web();
    let (typed_on, other) = (&fleet.hosts[0], &fleet.hosts[1]);
    // On the host, through the agent's control socket, as root (this test's user).
    let home = typed_on.home().join(".pmfleet-agent");
    let out = std::process::Command::new(home.join("bin/pmfleet-agent"))
        .args(["restart", "web"])
        .env("PMFLEET_AGENT_HOME", &home)
        .output()
        .expect("run pmfleet-agent on the host");
    assert!(out.status.success(), "{out:?}");

    let apps: Vec<Value> = audit_records(typed_on)
        .into_iter()
        .filter(|r| r["action"] == "app")
        .collect();
    assert_eq!(apps.len(), 1, "{apps:?}");
    assert_eq!(apps[0]["who"], "host user root (local)", "{}", apps[0]);
    assert_eq!(apps[0]["outcome"], "success", "{}", apps[0]);
    assert!(
        apps[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("app restart web")),
        "{}",
        apps[0]
    );
    assert!(
        !audit_records(other).iter().any(|r| r["action"] == "app"),
        "the other host ran nothing"
    );
    let (code, doc) = timeline(&project, &[]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(
        doc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["performer"] == "host user root (local)"),
        "history shows who typed it: {doc:#}"
    );
}
