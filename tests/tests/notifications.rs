//! Notifications end to end: real deploys, reverts and agents on real sshd hosts tell real
//! HTTP receivers started by the test — generic JSON, Slack-compatible and ntfy — about every
//! event kind; hooks get the run's context and `on-failure` runs on the controller; and a
//! receiver that is down or never answers neither fails a deploy nor holds it longer than
//! the documented bounds, while the output says what was not sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pmfleet_testkit::deployed::current_release;
use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::{Project, ok};
use pmfleet_testkit::sshd::Fleet;
use pmfleet_testkit::{free_port, require_sshd, wait_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    /// Header names in small letters.
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// `200 OK` at once.
    Ok,
    /// Reads the request and never answers (until the sender gives up and closes).
    Never,
}

/// A real HTTP server on 127.0.0.1 that keeps every request it gets.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let shared = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let got = shared.clone();
                std::thread::spawn(move || serve(stream, answer, &got));
            }
        });
        Receiver { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The requests to `path`.
    fn at(&self, path: &str) -> Vec<Received> {
        self.got().into_iter().filter(|r| r.path == path).collect()
    }

    /// The JSON bodies to `path` whose `event` is `event`.
    fn events(&self, path: &str, event: &str) -> Vec<Value> {
        self.at(path)
            .iter()
            .map(Received::json)
            .filter(|v| v["event"] == event)
            .collect()
    }
}

fn serve(stream: TcpStream, answer: Answer, got: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    got.lock().unwrap().push(Received {
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    match answer {
        Answer::Ok => {
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        Answer::Never => {
            // Blocks until the sender closes the connection.
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        }
    }
}

/// `KEY=value` lines of a file, as a map.
fn env_file(path: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Serves `version N` from the release's VERSION file, and never listens when it starts with
/// `broken`.
const SERVER_JS: &str = r#"const fs = require("fs");
const version = fs.readFileSync("VERSION", "utf8").trim();
if (!version.startsWith("broken")) {
  require("http").createServer((req, res) => res.end("version " + version + "\n")).listen(process.env.PORT);
} else {
  setInterval(() => {}, 1000);
}
"#;

#[test]
fn every_deploy_and_revert_event_reaches_json_slack_and_ntfy_webhooks_with_its_context() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    let receiver = Receiver::start(Answer::Ok);
    let app_port = free_port();
    let agent_port = free_port();
    let repo = GitRepo::new();
    let apps = json!([{"name": "web", "script": "server.js", "instances": 2,
                       "exec_mode": "cluster", "listen_timeout": 3000,
                       "env": {"PORT": app_port}}]);
    repo.write("server.js", SERVER_JS);
    // The release's own ecosystem file is what the agent runs.
    repo.write("ecosystem.json", &json!({ "apps": apps }).to_string());
    repo.commit_file("VERSION", "1\n", "version 1");
    let project = Project::new(fleet.home.path());
    let on_failure = project.path().join("on-failure.env");
    let write = |extra_post_deploy: &str| {
        project.write_ecosystem(&json!({
            "apps": apps,
            // The top level: a URL alone is generic JSON for every event.
            "notify": receiver.url("/json"),
            "deploy": {"production": {
                "host": fleet.hosts_json(), "ref": "main", "repo": repo.url(),
                "path": "/srv/app", "fetch": "push",
                "agent": {"port": agent_port, "bind": "host"},
                "post-deploy": format!(
                    "echo \"context $PMFLEET_ENV $PMFLEET_RELEASE $PMFLEET_SHA $PMFLEET_HOSTS $PMFLEET_PERFORMER $PMFLEET_OUTCOME\"{extra_post_deploy}"
                ),
                "on-failure": format!(
                    "env | grep ^PMFLEET_ | sort > {}; echo on-failure ran",
                    on_failure.display()
                ),
                "notify": [
                    {"url": receiver.url("/slack"), "format": "slack"},
                    {"url": receiver.url("/ntfy"), "format": "ntfy",
                     "events": ["deploy_failed", "rolled_back", "revert_failed"]},
                ],
            }}
        }));
    };
    write("");
    ok(&project.pmfleet(&["ca", "init"]));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    assert!(receiver.got().is_empty(), "setup notifies nothing");

    // A deploy: started, then succeeded, to JSON and Slack; ntfy wants neither.
    let deploy = project.pmfleet(&["deploy", "production"]);
    ok(&deploy);
    let r1 = current_release(host).unwrap_or_default();
    let sha1 = repo.head();
    assert!(
        deploy.stdout.contains(&format!(
            "context production {r1} {sha1} {} tester running",
            host.label()
        )),
        "the hooks get the run's context:\n{}",
        deploy.all()
    );
    let started = receiver.events("/json", "deploy_started");
    assert_eq!(started.len(), 1, "{:?}", receiver.got());
    assert_eq!(started[0]["env"], "production");
    assert_eq!(started[0]["performer"], "tester");
    assert_eq!(started[0]["ref"], "main");
    assert_eq!(started[0]["sha"], sha1.as_str());
    assert_eq!(started[0]["release"], r1.as_str());
    assert_eq!(started[0]["hosts"][0]["host"], host.label().as_str());
    let succeeded = receiver.events("/json", "deploy_succeeded");
    assert_eq!(succeeded.len(), 1, "{:?}", receiver.got());
    assert_eq!(succeeded[0]["outcome"], "succeeded");
    assert_eq!(succeeded[0]["release"], r1.as_str());
    assert!(succeeded[0]["duration_secs"].as_f64().unwrap() > 0.0);
    assert!(succeeded[0].get("reason").is_none(), "{}", succeeded[0]);
    let slack = receiver.at("/slack");
    assert_eq!(slack.len(), 2, "{slack:?}");
    assert!(
        slack
            .iter()
            .all(|r| r.header("content-type") == Some("application/json"))
    );
    let texts: Vec<String> = slack
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("production: deploy succeeded")
                && t.contains(&sha1[..7])
                && t.contains("by tester")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("deploy started")),
        "{texts:?}"
    );
    assert!(
        receiver.at("/ntfy").is_empty(),
        "ntfy asked for failures only"
    );
    assert!(
        !on_failure.exists(),
        "on-failure runs only when a run fails"
    );

    // A release whose app never listens: rolled back; ntfy hears it, on-failure runs.
    repo.commit_file("VERSION", "broken 2\n", "broken");
    let rolled = project.pmfleet(&["deploy", "production"]);
    assert_eq!(rolled.code, 1, "{}", rolled.all());
    assert_eq!(
        current_release(host).unwrap_or_default(),
        r1,
        "the host went back"
    );
    let back = receiver.events("/json", "rolled_back");
    assert_eq!(back.len(), 1, "{:?}", receiver.got());
    assert_eq!(back[0]["outcome"], "rolled back");
    assert!(
        back[0]["reason"].as_str().unwrap().contains(&host.label()),
        "{}",
        back[0]
    );
    let ntfy = receiver.at("/ntfy");
    assert_eq!(ntfy.len(), 1, "{ntfy:?}");
    assert_eq!(ntfy[0].header("priority"), Some("high"));
    assert!(
        ntfy[0].header("tags").unwrap().contains("rolled_back"),
        "{ntfy:?}"
    );
    assert!(
        ntfy[0].header("title").unwrap().contains("production"),
        "{ntfy:?}"
    );
    assert!(ntfy[0].body.contains("by tester"), "{ntfy:?}");
    assert!(rolled.stdout.contains("on-failure ran"), "{}", rolled.all());
    let context = env_file(&on_failure);
    assert_eq!(context["PMFLEET_ENV"], "production");
    assert_eq!(context["PMFLEET_OUTCOME"], "rolled-back");
    assert_eq!(context["PMFLEET_ACTION"], "deploy");
    assert_eq!(context["PMFLEET_SHA"], repo.head());
    assert_eq!(context["PMFLEET_HOSTS"], host.label());
    assert_eq!(context["PMFLEET_PERFORMER"], "tester");
    assert!(!context["PMFLEET_RELEASE"].is_empty(), "{context:?}");
    std::fs::remove_file(&on_failure).unwrap();

    // post-deploy fails: deploy failed, with the one-line reason.
    repo.commit_file("VERSION", "3\n", "version 3");
    write("; exit 7");
    let failed = project.pmfleet(&["deploy", "production"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    let failures = receiver.events("/json", "deploy_failed");
    assert_eq!(failures.len(), 1, "{:?}", receiver.got());
    assert_eq!(failures[0]["outcome"], "failed");
    assert!(failures[0]["reason"].as_str().is_some(), "{}", failures[0]);
    assert_eq!(env_file(&on_failure)["PMFLEET_OUTCOME"], "failed");
    std::fs::remove_file(&on_failure).unwrap();

    // A good deploy, then a revert to r1.
    write("");
    ok(&project.pmfleet(&["deploy", "production"]));
    assert_ne!(current_release(host).unwrap_or_default(), r1);
    ok(&project.pmfleet(&["deploy", "production", "revert", "1"]));
    assert_eq!(current_release(host).unwrap_or_default(), r1);
    let reverted = receiver.events("/json", "reverted");
    assert_eq!(reverted.len(), 1, "{:?}", receiver.got());
    assert_eq!(reverted[0]["release"], r1.as_str());
    assert_eq!(reverted[0]["outcome"], "reverted");

    // A revert that cannot switch: revert failed, and on-failure says it was a revert.
    let blocker = host.root().join("app/.pmfleet/current.new");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    let revert = project.pmfleet(&["deploy", "production", "revert", "1"]);
    std::fs::remove_dir_all(&blocker).unwrap();
    assert_eq!(revert.code, 1, "{}", revert.all());
    assert_eq!(receiver.events("/json", "revert_failed").len(), 1);
    let context = env_file(&on_failure);
    assert_eq!(context["PMFLEET_ACTION"], "revert");
    assert_eq!(context["PMFLEET_OUTCOME"], "failed");
    assert_eq!(receiver.at("/ntfy").len(), 3, "{:?}", receiver.at("/ntfy"));
    // Every message went to JSON and Slack alike.
    assert_eq!(receiver.at("/json").len(), receiver.at("/slack").len());
}

/// An app that runs until `/srv/app/shared/<flag>` exists, then exits.
fn until_flag(flag: &str) -> String {
    format!("#!/bin/sh\nwhile [ ! -f /srv/app/shared/{flag} ]; do sleep 0.1; done\nexit 1\n")
}

#[test]
fn the_agents_crash_loops_errors_and_memory_restarts_reach_the_webhooks_through_events_notify() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    let receiver = Receiver::start(Answer::Ok);
    let agent_port = free_port();
    let app_port = free_port();
    let repo = GitRepo::new();
    repo.write("server.js", SERVER_JS);
    repo.write("VERSION", "1\n");
    repo.write("crashy.sh", &until_flag("crash"));
    // Once its flag is there it removes itself: the agent cannot start it again.
    repo.write(
        "gone.sh",
        "#!/bin/sh\nwhile [ ! -f /srv/app/shared/gone ]; do sleep 0.1; done\nrm -f \"$0\"\nexit 1\n",
    );
    repo.write(
        "hog.js",
        "const fs = require('fs'); let held = null;\nsetInterval(() => { if (!held && fs.existsSync('/srv/app/shared/hog')) held = Buffer.alloc(160 * 1024 * 1024, 1); }, 100);\n",
    );
    for script in ["crashy.sh", "gone.sh"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            repo.path().join(script),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let apps = json!([
        {"name": "web", "script": "server.js", "env": {"PORT": app_port}},
        {"name": "crashy", "script": "crashy.sh", "interpreter": "sh",
         "max_restarts": 2, "min_uptime": 5000},
        {"name": "gone", "script": "gone.sh", "interpreter": "none"},
        {"name": "hog", "script": "hog.js", "max_memory_restart": "120M"},
    ]);
    repo.commit_file(
        "ecosystem.json",
        &json!({ "apps": apps }).to_string(),
        "apps",
    );
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&json!({
        "apps": apps,
        "deploy": {"production": {
            "host": fleet.hosts_json(), "ref": "main", "repo": repo.url(),
            "path": "/srv/app", "fetch": "push",
            "agent": {"port": agent_port, "bind": "host"},
            "notify": [
                {"url": receiver.url("/json"),
                 "events": ["crash_loop", "errored", "memory_restart"]},
                {"url": receiver.url("/ntfy"), "format": "ntfy", "events": ["crash_loop"]},
            ],
        }}
    }));
    ok(&project.pmfleet(&["ca", "init"]));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    assert!(receiver.got().is_empty(), "{:?}", receiver.got());

    let mut events = project.spawn(&["events", "production", "--notify", "--notify-window", "15s"]);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let lines = lines.clone();
        let stdout = events.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }
    // The stream is there once it shows a restart of `web`.
    wait_until(WAIT, "pmfleet events to show a restart", || {
        ok(&project.pmfleet(&["app", "production", "restart", "web"]));
        lines.lock().unwrap().iter().any(|l| l.contains("web"))
    });

    let shared = host.root().join("app/shared");
    for flag in ["crash", "gone", "hog"] {
        std::fs::write(shared.join(flag), "").unwrap();
    }
    let kinds = || -> Vec<(String, String)> {
        receiver
            .at("/json")
            .iter()
            .map(Received::json)
            .map(|v| {
                (
                    v["event"].as_str().unwrap_or("").to_string(),
                    v["app"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let want = [
        ("crash_loop", "crashy"),
        ("errored", "gone"),
        ("memory_restart", "hog"),
    ];
    wait_until(WAIT, "a crash loop, an error and a memory restart", || {
        let got = kinds();
        want.iter()
            .all(|(e, a)| got.iter().any(|(ge, ga)| ge == e && ga == a))
    });
    // hog allocates again each time it starts, so its memory restarts go on: the webhook is
    // told of them once per window, and one summary counts the rest.
    let hog_told = || -> Vec<Value> {
        receiver
            .events("/json", "memory_restart")
            .into_iter()
            .filter(|v| v["app"] == "hog")
            .collect()
    };
    wait_until(
        Duration::from_secs(90),
        "a summary of hog's held-back memory restarts",
        || {
            hog_told()
                .iter()
                .any(|v| v["held_back"].as_u64().is_some_and(|n| n >= 1))
        },
    );
    let hog_restarts = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("hog") && l.contains("max_memory_restart"))
        .count();
    let told = hog_told();
    assert!(
        told.len() < hog_restarts,
        "{} messages for {hog_restarts} memory restarts: {told:?}",
        told.len()
    );
    let summary = told
        .iter()
        .find(|v| v["held_back"].is_u64())
        .unwrap()
        .clone();
    let held_back = summary["held_back"].as_u64().unwrap();
    assert!(
        summary["reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{held_back} more in the last 15s")),
        "{summary}"
    );
    // Stopped (SIGTERM, as a service manager stops it) while a new window holds another
    // restart back: that one is told before it goes.
    let hog_lines = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("hog") && l.contains("max_memory_restart"))
            .count()
    };
    wait_until(WAIT, "one more memory restart after the summary", || {
        hog_lines() > hog_restarts
    });
    let summaries = || {
        hog_told()
            .iter()
            .filter(|v| v["held_back"].is_u64())
            .count()
    };
    let before = summaries();
    // SAFETY: kill has no memory-safety preconditions; the pid is this test's child.
    unsafe { libc::kill(events.id() as i32, libc::SIGTERM) };
    let status = events.wait().expect("pmfleet events ends");
    assert!(status.success(), "stopped cleanly: {status:?}");
    assert_eq!(
        summaries(),
        before + 1,
        "what the window held back was told at the stop: {:?}",
        hog_told()
    );
    for (event, app) in want {
        let body = receiver
            .events("/json", event)
            .into_iter()
            .find(|v| v["app"] == app)
            .unwrap();
        assert_eq!(body["env"], "production", "{body}");
        // The agents' events name a host by its address.
        assert_eq!(body["hosts"][0]["host"], host.address(), "{body}");
        assert!(body["reason"].as_str().is_some(), "{body}");
    }
    // A crash loop is not also told as a plain error.
    assert!(
        !kinds().iter().any(|(e, a)| e == "errored" && a == "crashy"),
        "{:?}",
        kinds()
    );
    let ntfy = receiver.at("/ntfy");
    assert!(!ntfy.is_empty());
    assert!(
        ntfy.iter()
            .all(|r| r.header("tags").unwrap_or("").contains("crash_loop")),
        "{ntfy:?}"
    );
}

#[test]
fn a_webhook_that_is_down_or_never_answers_neither_fails_nor_holds_the_deploy() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let fast = Receiver::start(Answer::Ok);
    let slow = Receiver::start(Answer::Never);
    let down = free_port();
    let repo = GitRepo::new();
    repo.commit_file("app.sh", "echo app\n", "app");
    let project = Project::new(fleet.home.path());
    let write = |notify: Value| {
        project.write_ecosystem(&json!({
            "apps": [{"name": "app", "script": "app.sh"}],
            "deploy": {"production": {
                "host": fleet.hosts_json(), "ref": "main", "repo": repo.url(),
                "path": "/srv/app", "post-deploy": "true", "agent": false,
                "notify": notify,
            }}
        }));
    };
    write(json!([fast.url("/ok")]));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    let began = Instant::now();
    ok(&project.pmfleet(&["deploy", "production"]));
    let baseline = began.elapsed();
    assert_eq!(fast.at("/ok").len(), 2);

    // Down, and never answering within its 1 s timeout: three attempts each, then a line.
    write(json!([
        fast.url("/ok"),
        format!("http://127.0.0.1:{down}/down"),
        {"url": slow.url("/slow"), "timeout": "1s"},
    ]));
    let began = Instant::now();
    let run = project.pmfleet(&["deploy", "production"]);
    let took = began.elapsed();
    ok(&run);
    for (event, url) in [
        ("deploy_started", format!("http://127.0.0.1:{down}")),
        ("deploy_succeeded", format!("http://127.0.0.1:{down}")),
        ("deploy_started", slow.url("")),
        ("deploy_succeeded", slow.url("")),
    ] {
        let line = format!("notification {event} could not be sent to {url}:");
        assert!(run.stdout.contains(&line), "no {line:?}:\n{}", run.all());
    }
    assert!(
        !run.stdout.contains("/down") && !run.stdout.contains("/slow"),
        "a webhook's path is never shown:\n{}",
        run.all()
    );
    assert_eq!(slow.at("/slow").len(), 6, "3 attempts per message");
    assert_eq!(fast.at("/ok").len(), 4, "the good webhook still got both");
    eprintln!(
        "a deploy alone: {baseline:?}; with a webhook down and one never answering: {took:?}"
    );
    // 3 attempts of 1 s and two pauses (0.5 s, 1 s), in parallel with the deploy.
    assert!(
        took < baseline + Duration::from_secs(12),
        "took {took:?} (a deploy alone: {baseline:?})"
    );

    // A webhook slower than the run's wait at its end (20 s) is given up on, said once.
    write(json!([{"url": slow.url("/slower"), "timeout": "30s"}]));
    let began = Instant::now();
    let run = project.pmfleet(&["deploy", "production"]);
    let took = began.elapsed();
    ok(&run);
    assert!(
        run.stdout
            .contains("2 notification(s) not delivered within 20s: given up"),
        "{}",
        run.all()
    );
    eprintln!("with a webhook slower than the wait at the end: {took:?}");
    assert!(
        took < baseline + Duration::from_secs(20 + 10),
        "took {took:?} (a deploy alone: {baseline:?})"
    );
    assert!(!slow.at("/slower").is_empty());
}

#[test]
fn a_host_that_goes_back_by_itself_reaches_json_slack_and_ntfy_webhooks_through_events_notify() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    let receiver = Receiver::start(Answer::Ok);
    let app_port = free_port();
    let repo = GitRepo::new();
    repo.write("server.js", SERVER_JS);
    repo.write("VERSION", "1\n");
    let apps = json!([{"name": "web", "script": "server.js", "env": {"PORT": app_port}}]);
    repo.commit_file(
        "ecosystem.json",
        &json!({ "apps": apps }).to_string(),
        "apps",
    );
    let project = Project::new(fleet.home.path());
    let events = ["auto_revert"];
    let agent_port = free_port();
    let ecosystem = |extra: Value| {
        let mut env = json!({
            "host": fleet.hosts_json(), "ref": "main", "repo": repo.url(),
            "path": "/srv/app", "fetch": "push",
            "agent": {"port": agent_port, "bind": "host"},
            "notify": [
                {"url": receiver.url("/json"), "events": events},
                {"url": receiver.url("/slack"), "format": "slack", "events": events},
                {"url": receiver.url("/ntfy"), "format": "ntfy", "events": events},
            ],
        });
        if let (Some(env), Some(extra)) = (env.as_object_mut(), extra.as_object()) {
            env.extend(extra.clone());
        }
        project.write_ecosystem(&json!({"apps": apps, "deploy": {"production": env}}));
    };
    ecosystem(json!({}));
    ok(&project.pmfleet(&["ca", "init"]));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    let old = current_release(host).unwrap_or_default();
    // A long watch window: the controller sits in it, holding the lock, when it is killed.
    ecosystem(json!({"watch_period": "300s"}));

    let mut watcher = project.spawn(&["events", "production", "--notify"]);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let lines = lines.clone();
        let stdout = watcher.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }
    // The stream is there once it shows a restart of `web`.
    wait_until(WAIT, "pmfleet events to show a restart", || {
        ok(&project.pmfleet(&["app", "production", "restart", "web"]));
        lines.lock().unwrap().iter().any(|l| l.contains("web"))
    });

    repo.commit_file("VERSION", "2\n", "version 2");
    let mut victim = project.spawn(&["deploy", "production"]);
    let pending = host.root().join("app/.pmfleet/pending");
    wait_until(WAIT, "the host switched, its switch pending", || {
        assert!(
            victim.try_wait().unwrap().is_none(),
            "the deploy ended before it was killed"
        );
        pending.exists() && current_release(host).unwrap_or_default() != old
    });
    let switched = current_release(host).unwrap_or_default();
    victim.kill().unwrap();
    victim.wait().unwrap();

    // No pmfleet command but `events --notify`: the host goes back once the run is silent
    // for the quiet time, and says so.
    let bound = Duration::from_secs(pmfleet_shared::protocol::QUIET_SECS) + WAIT;
    wait_until(bound, "the auto_revert notification", || {
        ["/json", "/slack", "/ntfy"]
            .iter()
            .all(|p| !receiver.at(p).is_empty())
    });
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(
        current_release(host).unwrap_or_default(),
        old,
        "the host went back"
    );
    let said = format!("from release {switched} to {old}");

    let json = receiver.events("/json", "auto_revert");
    assert_eq!(json.len(), 1, "{:?}", receiver.at("/json"));
    let body = &json[0];
    assert_eq!(body["env"], "production", "{body}");
    assert_eq!(body["hosts"][0]["host"], host.address(), "{body}");
    assert!(body.get("app").is_none(), "a whole root's event: {body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&said) && r.contains("/srv/app")),
        "{body}"
    );

    let slack = receiver.at("/slack");
    let text = slack[0].json()["text"].as_str().unwrap_or("").to_string();
    assert!(
        text.contains("*production: went back by itself*") && text.contains(&said),
        "{text}"
    );

    let ntfy = &receiver.at("/ntfy")[0];
    assert!(
        ntfy.header("tags")
            .is_some_and(|t| t.contains("auto_revert")),
        "{ntfy:?}"
    );
    assert_eq!(ntfy.header("priority"), Some("high"), "{ntfy:?}");
    assert!(ntfy.body.contains(&said), "{ntfy:?}");
}
