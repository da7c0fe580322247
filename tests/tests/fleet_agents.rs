//! The control plane end to end: `setup` provisions a certified agent on every real sshd host,
//! a deploy has the agents reload the apps from the new release with zero failed requests, a
//! release that never becomes ready is rolled back, and `status` / `app` / `logs` reach every
//! host over mutual TLS.

use std::net::SocketAddr;
use std::time::Duration;

use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::net::connected;
use pmfleet_testkit::procs::open_descriptors;
use pmfleet_testkit::project::{Project, Run, ok};
use pmfleet_testkit::sshd::{Fleet, SshHost};
use pmfleet_testkit::wait::poll_until;
use pmfleet_testkit::{Load, free_port, get_from, require_sshd, wait_until};
use serde_json::{Value, json};

/// How long a step the tests wait for may take.
const WAIT: Duration = Duration::from_secs(30);

/// A Node app whose answer names its version; `NEVER_READY` releases never listen.
const SERVER_JS: &str = r#"const http = require("http");
const fs = require("fs");
const version = fs.readFileSync(__dirname + "/VERSION", "utf8").trim();
if (version.startsWith("broken")) { setInterval(() => {}, 1000); } else {
  http.createServer((req, res) => res.end(`version ${version} pid ${process.pid}\n`))
    .listen(process.env.PORT);
  console.log(`listening, version ${version}`);
}
"#;

fn app_repo(app_port: u16) -> GitRepo {
    let repo = GitRepo::new();
    repo.write("server.js", SERVER_JS);
    repo.write(
        "ecosystem.json",
        &json!({"apps": [{
            "name": "web", "script": "server.js", "instances": 2, "exec_mode": "cluster",
            "listen_timeout": 5000, "env": {"PORT": app_port}
        }]})
        .to_string(),
    );
    repo.commit_file("VERSION", "1\n", "web app");
    repo
}

/// Load on the app at `host:port`: one client, a new connection per request.
fn load_on(host: &str, port: u16) -> Load {
    let addr: SocketAddr = format!("{host}:{port}").parse().expect("a socket address");
    Load::new_connections(addr, Duration::from_secs(120))
}

/// True once `host`'s agent holds each of the web app's open log files twice: once to write
/// it (each file has one writer, shared by the instances writing there), once for a follower.
fn web_logs_followed(host: &SshHost) -> bool {
    let mut held: Vec<(String, usize)> = Vec::new();
    for target in open_descriptors(host.agent_pid()) {
        if !(target.contains("/.pmfleet-agent/logs/web-") && target.ends_with(".log")) {
            continue;
        }
        match held.iter_mut().find(|(t, _)| *t == target) {
            Some((_, n)) => *n += 1,
            None => held.push((target, 1)),
        }
    }
    !held.is_empty() && held.iter().all(|(_, n)| *n >= 2)
}

/// True once `pid` (a `pmfleet logs`/`events` follower) is connected to every host's agent.
fn connected_to_every_agent(pid: u32, hosts: &[SshHost], agent_port: u16) -> bool {
    hosts.iter().all(|h| {
        let addr: SocketAddr = format!("{}:{agent_port}", h.address())
            .parse()
            .expect("a socket address");
        connected(pid, addr)
    })
}

/// How many hosts' summary lines say `text` (outcome `done`).
fn done_lines(run: &Run, text: &str) -> usize {
    run.stdout
        .lines()
        .filter(|l| l.contains("| done |") && l.contains(text))
        .count()
}

/// Every (host, pid) of every app instance, from `status --json`.
fn app_pids(project: &Project) -> Vec<(String, u64)> {
    let run = project.pmfleet(&["status", "--json"]);
    ok(&run);
    let hosts: Value = serde_json::from_str(&run.stdout).expect("status --json is JSON");
    let mut pids: Vec<(String, u64)> = hosts
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| {
            let host = h["host"].as_str().unwrap_or_default().to_string();
            h["agent"]["processes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |p| Some((host.clone(), p["pid"].as_u64()?)))
        })
        .collect();
    pids.sort();
    pids
}

/// The agent daemon's pid on every host, as `exec` prints them.
fn agent_pids(project: &Project) -> String {
    let run = project.pmfleet(&[
        "deploy",
        "production",
        "exec",
        "echo agent-pid=$(cat ~/.pmfleet-agent/agent.pid)",
    ]);
    ok(&run);
    let mut lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("agent-pid="))
        .collect();
    lines.sort();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    lines.join("\n")
}

fn served(hosts: &[SshHost], port: u16) -> Vec<String> {
    hosts
        .iter()
        .map(|h| get_from(h.address(), port).unwrap_or_else(|e| format!("error: {e}")))
        .collect()
}

#[test]
fn setup_provisions_agents_and_deploys_reload_the_apps() {
    require_sshd!();
    let fleet = Fleet::start(3);
    let app_port = free_port();
    let agent_port = free_port();
    let repo = app_repo(app_port);
    let project = Project::new(fleet.home.path());
    let hosts = fleet.hosts_json();
    let ecosystem = |agent_port: u16| {
        project.write_ecosystem(&json!({"deploy": {"production": {
            "host": hosts, "ref": "main", "repo": repo.url(), "path": "/srv/app", "fetch": "push",
            "agent": {"port": agent_port, "bind": "host"},
        }}}));
    };
    ecosystem(agent_port);

    // Without a fleet CA, setup says what to do.
    let run = project.pmfleet(&["deploy", "production", "setup"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.all().contains("pmfleet ca init"), "{}", run.all());

    ok(&project.pmfleet(&["ca", "init"]));
    let run = project.pmfleet(&["deploy", "production", "setup"]);
    ok(&run);
    assert!(run.stdout.contains("agent"), "{}", run.stdout);
    // Idempotent: a healthy agent is left as it is.
    let again = project.pmfleet(&["deploy", "production", "setup"]);
    ok(&again);
    let kept = done_lines(&again, "already running");
    assert_eq!(kept, 3, "{}", again.stdout);

    ok(&project.pmfleet(&["deploy", "production"]));
    for answer in served(&fleet.hosts, app_port) {
        assert!(answer.starts_with("version 1"), "{answer}");
    }

    // Deploy version 2 under load: the apps reload with no failed request.
    repo.commit_file("VERSION", "2\n", "version 2");
    let load = load_on(fleet.hosts[0].address(), app_port);
    load.wait_more(5, WAIT);
    ok(&project.pmfleet(&["deploy", "production"]));
    load.wait_more(5, WAIT);
    let report = load.finish();
    assert!(
        report.failed == 0,
        "{} failed requests: {:?}",
        report.failed,
        &report.errors[..report.errors.len().min(5)]
    );
    let succeeded = report.ok;
    assert!(succeeded > 20, "only {succeeded} requests went through");
    for answer in served(&fleet.hosts, app_port) {
        assert!(answer.starts_with("version 2"), "{answer}");
    }

    // status: every host, the app in cluster mode, 2/2 online.
    let status = project.pmfleet(&["status"]);
    ok(&status);
    for host in &fleet.hosts {
        assert!(status.stdout.contains(host.address()), "{}", status.stdout);
    }
    assert_eq!(
        status.stdout.matches("cluster").count(),
        3,
        "{}",
        status.stdout
    );
    assert_eq!(status.stdout.matches("2/2").count(), 3, "{}", status.stdout);
    let json_run = project.pmfleet(&["status", "production", "--json"]);
    ok(&json_run);
    let parsed: Value = serde_json::from_str(&json_run.stdout).expect("status --json is JSON");
    assert_eq!(parsed.as_array().map(Vec::len), Some(3));

    // `setup --upgrade-agent` with a newer agent binary, under load: every agent becomes it in
    // place (same pid), the apps keep their very processes, and no request fails.
    let newer = fleet.home.path().join("pmfleet-agent-newer");
    let mut bytes = std::fs::read(pmfleet_testkit::binaries::agent_bin()).unwrap();
    bytes.push(b'\n');
    std::fs::write(&newer, bytes).unwrap();
    std::fs::set_permissions(&newer, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pids_before = app_pids(&project);
    assert_eq!(pids_before.len(), 6, "{pids_before:?}");
    let daemons = agent_pids(&project);
    let load = load_on(fleet.hosts[0].address(), app_port);
    load.wait_more(5, WAIT);
    let upgraded = project.pmfleet_with(
        &["deploy", "production", "setup", "--upgrade-agent"],
        &[("PMFLEET_AGENT_BIN", newer.as_os_str())],
    );
    ok(&upgraded);
    load.wait_more(5, WAIT);
    let report = load.finish();
    assert!(
        report.failed == 0,
        "failed requests during the upgrade: {:?}",
        report.errors
    );
    let succeeded = report.ok;
    assert!(succeeded > 20, "only {succeeded} requests went through");
    let in_place = done_lines(&upgraded, "upgraded in place");
    assert_eq!(in_place, 3, "{}", upgraded.stdout);
    assert_eq!(
        app_pids(&project),
        pids_before,
        "the apps kept their processes"
    );
    assert_eq!(agent_pids(&project), daemons, "each agent kept its pid");
    let exe = project.pmfleet(&[
        "deploy",
        "production",
        "exec",
        "readlink /proc/$(cat ~/.pmfleet-agent/agent.pid)/exe",
    ]);
    ok(&exe);
    assert!(!exe.stdout.contains("(deleted)"), "{}", exe.stdout);
    assert_eq!(
        exe.stdout.matches("/bin/pmfleet-agent").count(),
        3,
        "{}",
        exe.stdout
    );
    let again = project.pmfleet_with(
        &["deploy", "production", "setup"],
        &[("PMFLEET_AGENT_BIN", newer.as_os_str())],
    );
    ok(&again);
    let kept = done_lines(&again, "already running");
    assert_eq!(kept, 3, "{}", again.stdout);

    // A new certificate alone (here: the agents move to another port) is reloaded by the
    // running agents; their apps are not touched.
    let agent_port = free_port();
    ecosystem(agent_port);
    let moved = project.pmfleet(&["deploy", "production", "setup"]);
    ok(&moved);
    let reloaded = done_lines(&moved, "certificate reloaded");
    assert_eq!(reloaded, 3, "{}", moved.stdout);
    assert_eq!(
        app_pids(&project),
        pids_before,
        "the apps kept their processes"
    );

    // A release whose app never listens is rolled back; version 2 keeps serving.
    repo.commit_file("VERSION", "broken 3\n", "broken");
    let run = project.pmfleet(&["deploy", "production"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("rolled back"), "{}", run.stdout);
    for answer in served(&fleet.hosts, app_port) {
        assert!(answer.starts_with("version 2"), "{answer}");
    }

    // Fleet-wide app commands and logs.
    let reload = project.pmfleet(&["app", "production", "reload", "web"]);
    ok(&reload);
    assert_eq!(
        reload.stdout.matches(" ok ").count(),
        3,
        "{}",
        reload.stdout
    );
    let logs = project.pmfleet(&["logs", "production", "web", "--lines", "20"]);
    ok(&logs);
    for host in &fleet.hosts {
        assert!(
            logs.stdout
                .contains(&format!("{} | web | ", host.address())),
            "{}",
            logs.stdout
        );
    }
    assert!(
        logs.stdout.contains("listening, version 2"),
        "{}",
        logs.stdout
    );

    // `logs --follow` streams new lines from every host until interrupted.
    assert!(
        !fleet.hosts.iter().any(web_logs_followed),
        "no follower yet, so the wait below means something"
    );
    let mut follow = project.spawn(&["logs", "production", "web", "--lines", "0", "--follow"]);
    let stdout = follow.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("listening, version 2") {
                seen.push(line);
                if seen.len() == 6 {
                    break;
                }
            }
        }
        seen
    });
    // Subscribed: every agent opened each of web's logs a second time, to follow it.
    wait_until(WAIT, "the follower following every host's logs", || {
        fleet.hosts.iter().all(web_logs_followed)
    });
    ok(&project.pmfleet(&["app", "production", "restart", "web"]));
    let _ = poll_until(Duration::from_secs(20), "six followed lines", || {
        reader.is_finished()
    });
    let _ = follow.kill();
    let _ = follow.wait();
    let seen = reader.join().unwrap();
    for host in &fleet.hosts {
        let prefix = format!("{} | web | ", host.address());
        let from_host = seen.iter().filter(|l| l.starts_with(&prefix)).count();
        assert_eq!(
            from_host,
            2,
            "both restarted instances of {} followed: {seen:?}",
            host.address()
        );
    }

    // `events` streams the agents' lifecycle events from every host.
    let mut events = project.spawn(&["events", "production", "web"]);
    let stdout = events.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains(" online") {
                seen.push(line);
                if seen.len() == 6 {
                    break;
                }
            }
        }
        seen
    });
    // Connected to every agent (no signal tells more: the subscription follows the handshake
    // at once, and the restart below starts another process and its own handshakes first).
    wait_until(WAIT, "the events stream connected to every agent", || {
        connected_to_every_agent(events.id(), &fleet.hosts, agent_port)
    });
    ok(&project.pmfleet(&["app", "production", "restart", "web"]));
    let _ = poll_until(Duration::from_secs(20), "six online events", || {
        reader.is_finished()
    });
    let _ = events.kill();
    let _ = events.wait();
    let seen = reader.join().unwrap();
    for host in &fleet.hosts {
        let prefix = format!("{} | ", host.address());
        let online = seen
            .iter()
            .filter(|l| l.starts_with(&prefix) && l.contains("web["))
            .count();
        assert_eq!(
            online,
            2,
            "both instances of {} came online: {seen:?}",
            host.address()
        );
    }

    // revert reloads the apps too: back to version 1, no rebuild.
    ok(&project.pmfleet(&["deploy", "production", "revert", "1"]));
    for answer in served(&fleet.hosts, app_port) {
        assert!(answer.starts_with("version 1"), "{answer}");
    }

    // One agent down: shown as unreachable, and the exit code says so.
    let kill = project.pmfleet(&[
        "deploy",
        "production",
        "exec",
        "kill -9 $(cat ~/.pmfleet-agent/agent.pid)",
    ]);
    assert_ne!(kill.code, 2, "{}", kill.all());
    wait_until(WAIT, "status notices the dead agents", || {
        project.pmfleet(&["status"]).code == 3
    });
    let status = project.pmfleet(&["status"]);
    assert!(status.stdout.contains("unreachable"), "{}", status.stdout);
}

#[test]
fn a_release_without_an_ecosystem_file_deploys_with_nothing_to_reload_through_an_alias() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let repo = GitRepo::new();
    let project = Project::new(fleet.home.path());
    let host = &fleet.hosts[0];
    // The host through an ~/.ssh/config alias: SSH and the agent's TLS both reach its HostName.
    fleet.home.add_config(&format!(
        "Host app-host\n  HostName {}\n  Port {}\n  User root\n",
        host.address(),
        host.port()
    ));
    project.write_ecosystem(&json!({"deploy": {"production": {
        "host": "app-host",
        "ref": "main", "repo": repo.url(), "path": "/srv/app",
        "agent": {"port": free_port()},
    }}}));
    ok(&project.pmfleet(&["ca", "init"]));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    let run = project.pmfleet(&["deploy", "production"]);
    ok(&run);
    assert!(run.stdout.contains("no ecosystem file"), "{}", run.stdout);
    let status = project.pmfleet(&["status"]);
    ok(&status);
    assert!(status.stdout.contains("(no apps)"), "{}", status.stdout);
    assert!(status.stdout.contains("app-host"), "{}", status.stdout);

    // An agent whose binary differs is kept by a plain setup and replaced with --upgrade-agent.
    ok(&project.pmfleet(&[
        "deploy",
        "production",
        "exec",
        "cd ~/.pmfleet-agent/bin && cp pmfleet-agent x && printf x >> x && mv x pmfleet-agent",
    ]));
    let kept = project.pmfleet(&["deploy", "production", "setup"]);
    ok(&kept);
    assert!(kept.stdout.contains("--upgrade-agent"), "{}", kept.stdout);
    let upgraded = project.pmfleet(&["deploy", "production", "setup", "--upgrade-agent"]);
    ok(&upgraded);
    assert!(
        upgraded.stdout.contains("new binary"),
        "{}",
        upgraded.stdout
    );
    assert!(
        upgraded.stdout.contains("upgraded in place"),
        "{}",
        upgraded.stdout
    );
    let again = project.pmfleet(&["deploy", "production", "setup"]);
    ok(&again);
    assert!(again.stdout.contains("already running"), "{}", again.stdout);
    assert!(
        !again.stdout.contains("--upgrade-agent"),
        "{}",
        again.stdout
    );
}
