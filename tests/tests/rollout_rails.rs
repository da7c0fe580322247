//! The rollout rails against real sshd hosts, real agents and a real Node app under HTTP
//! load: a release whose own instances never pass their health check is never left serving,
//! one failing only on the canary sends the canary back while no other host switches, a crash inside the watch window of the last batch sends the whole fleet back, the
//! `release` step runs once and a failing one switches nothing, a controller killed after a
//! switch is undone by the hosts themselves, and maintenance mode answers new connections with
//! a 503 page while deploys go on underneath.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pmfleet_testkit::agent_fleet::AgentFleet;
use pmfleet_testkit::deployed::{current_release, releases};
use pmfleet_testkit::project::{Run, ok};
use pmfleet_testkit::sshd::SshHost;
use pmfleet_testkit::{Load, get_from, require_sshd, wait_until};
use serde_json::{Value, json};

/// A Node app answering `<pid> version <v>`, and `/health`. A `sick` version answers its
/// health check with 500 (its `/` still works, so old and new instances alike answer the
/// shared socket), a `sick-here` version only on a host holding `/srv/sick-here`; a `crash`
/// version exits 3 s after it started on a host holding `/srv/crash-here`.
const SERVER_JS: &str = r#"const http = require("http");
const fs = require("fs");
const version = fs.readFileSync(__dirname + "/VERSION", "utf8").trim();
const sick = version.includes("sick-here") ? fs.existsSync("/srv/sick-here") : version.includes("sick");
http.createServer((req, res) => {
  if (req.url === "/health") { res.statusCode = sick ? 500 : 200; return res.end(sick ? "sick\n" : "ok\n"); }
  const answer = () => res.end(`${process.pid} version ${version}\n`);
  if (req.url.startsWith("/slow")) return setTimeout(answer, 100);
  answer();
}).listen(process.env.PORT);
if (version.includes("crash") && fs.existsSync("/srv/crash-here")) {
  setTimeout(() => { console.error("crash: the new release fell over"); process.exit(1); }, 3000);
}
"#;

/// `n` hosts with agents, version 1 deployed and serving.
fn start(n: usize, extra: Value) -> AgentFleet {
    let f = AgentFleet::deployed(
        n,
        SERVER_JS,
        json!({
            "listen_timeout": 3000, "deploy_timeout": "6s",
            "healthcheck": {"http": "/health", "interval": "200ms", "timeout": "1s"},
        }),
        Some("1"),
        extra,
    );
    f.wait_serving("1");
    f
}

/// What these tests read of the fleet, and the load they put on it.
trait Rails {
    /// The release `current` points at on each host (empty where none).
    fn current_releases(&self) -> Vec<String>;
    /// The version `host` answers with on `/`.
    fn version(&self, host: &SshHost) -> String;
    fn wait_serving(&self, version: &str);
    fn addr(&self, host: &SshHost) -> SocketAddr;
    /// Keep-alive and new-connection load on every host.
    fn load(&self) -> Vec<Load>;
}

impl Rails for AgentFleet {
    fn current_releases(&self) -> Vec<String> {
        self.hosts()
            .iter()
            .map(|h| current_release(h).unwrap_or_default())
            .collect()
    }

    fn version(&self, host: &SshHost) -> String {
        get_from(host.address(), self.app_port)
            .ok()
            .and_then(|b| b.split(" version ").nth(1).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    }

    fn wait_serving(&self, version: &str) {
        for host in self.hosts() {
            wait_until(
                Duration::from_secs(30),
                &format!("{} serves version {version}", host.address()),
                || self.version(host) == version,
            );
        }
    }

    fn addr(&self, host: &SshHost) -> SocketAddr {
        SocketAddr::new(host.address().parse().expect("an IP"), self.app_port)
    }

    fn load(&self) -> Vec<Load> {
        self.hosts()
            .iter()
            .flat_map(|h| {
                [
                    Load::keep_alive(self.addr(h), 2, 0),
                    Load::new_connections(self.addr(h), Duration::from_secs(600)),
                ]
            })
            .collect()
    }
}

/// Stops the load; asserts no request failed and the load really ran.
fn no_request_failed(loads: Vec<Load>) {
    for load in loads {
        let report = load.finish();
        assert!(report.ok > 0, "the load ran: {report:?}");
        assert_eq!(report.failed, 0, "no request failed: {:?}", report.errors);
    }
}

/// Each host's outcome in the summary of a `--json` run, in the hosts' order.
fn outcomes(run: &Run, hosts: &[SshHost]) -> Vec<String> {
    let events: Vec<Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    hosts
        .iter()
        .map(|host| {
            events
                .iter()
                .find(|e| e["event"] == "summary" && e["host"] == host.label().as_str())
                .map(|e| e["outcome"].as_str().unwrap_or("").to_string())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn a_release_whose_own_instances_never_pass_their_health_check_is_never_left_serving() {
    require_sshd!();
    let f = start(2, json!({"batch": 1}));
    let before: Vec<String> = f.current_releases();
    f.repo
        .commit_file("VERSION", "2 sick\n", "health check fails");
    let loads = f.load();
    let run = f.project.pmfleet(&["deploy", "production"]);
    assert_eq!(run.code, 1, "{}", run.all());
    // The new instances answered `/` on the shared socket like the old ones did; only a probe
    // aimed at each new instance itself sees the failing health check.
    assert!(
        run.all().contains("/health") || run.all().contains("500"),
        "the failing check is named:\n{}",
        run.all()
    );
    let after: Vec<String> = f.current_releases();
    assert_eq!(
        after, before,
        "every host is back on (or never left) its release"
    );
    f.wait_serving("1");
    no_request_failed(loads);
    // Still 1 a while later: no instance of the sick release is left answering.
    for host in f.hosts() {
        for _ in 0..20 {
            assert_eq!(f.version(host), "1");
        }
    }
}

#[test]
fn a_release_failing_its_health_check_on_the_canary_only_goes_back_there_and_nowhere_else_switches()
{
    require_sshd!();
    let f = start(3, json!({"batch": 1}));
    let before: Vec<String> = f.current_releases();
    // Only the canary (the first batch: host 0) sees its new instances fail `/health`.
    std::fs::write(f.hosts()[0].root().join("sick-here"), "").unwrap();
    f.repo
        .commit_file("VERSION", "2 sick-here\n", "health check fails on one host");
    let loads = f.load();
    let run = f.project.pmfleet(&["deploy", "production", "--json"]);
    assert_eq!(run.code, 1, "{}", run.all());
    let out = run.all();
    assert!(
        out.contains("/health") || out.contains("500"),
        "the failing check is named:\n{out}"
    );
    let after: Vec<String> = f.current_releases();
    assert_eq!(after, before, "the canary went back; the others never left");
    let outcomes = outcomes(&run, f.hosts());
    assert!(
        matches!(outcomes[0].as_str(), "failed" | "rolled back"),
        "the canary failed its gate and went back: {outcomes:?}\n{out}"
    );
    assert_eq!(outcomes[1..], ["aborted", "aborted"], "{out}");
    // Hosts 1 and 2 never switched: no switch in their histories but to the first release.
    for (host, first) in f.hosts().iter().zip(&before).skip(1) {
        let history =
            std::fs::read_to_string(host.root().join("app/.pmfleet/history.jsonl")).unwrap();
        let switches: Vec<Value> = history
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|r| r["outcome"] == "success" && r["action"] != "setup")
            .collect();
        assert!(
            !switches.is_empty() && switches.iter().all(|r| r["release"] == first.as_str()),
            "{} never switched:\n{history}",
            host.address()
        );
    }
    f.wait_serving("1");
    // The sick instances answered `/` as well as the old ones: no request failed anywhere.
    no_request_failed(loads);
}

#[test]
fn a_crash_inside_the_last_batch_s_watch_window_sends_every_switched_host_back() {
    require_sshd!();
    let f = start(3, json!({"batch": 1, "watch_period": "6s"}));
    let before: Vec<String> = f.current_releases();
    std::fs::write(f.hosts()[2].root().join("crash-here"), "").unwrap();
    f.repo
        .commit_file("VERSION", "2 crash\n", "falls over on one host");
    let loads = f.load();
    let started = Instant::now();
    let run = f.project.pmfleet(&["deploy", "production", "--json"]);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.all());
    let out = run.all();
    assert!(out.contains("watch window"), "{out}");
    assert!(
        out.contains("crash: the new release fell over"),
        "the crashed instance's last log lines are shown:\n{out}"
    );
    let after: Vec<String> = f.current_releases();
    assert_eq!(
        after, before,
        "the canary and every earlier batch went back"
    );
    assert_eq!(outcomes(&run, f.hosts()), ["rolled back"; 3], "{out}");
    f.wait_serving("1");
    // Hosts 0 and 1 lost no request, reverting included; host 2's own crashing instances took
    // the requests they held with them, and only those.
    let mut loads = loads;
    let crashed: Vec<Load> = loads.split_off(4);
    no_request_failed(loads);
    let lost: u64 = crashed.into_iter().map(|l| l.finish().failed).sum();
    assert!(lost <= 6, "{lost} requests lost on the crashing host");
    eprintln!("requests lost with the crashed instances on host 2: {lost}");
    for host in f.hosts() {
        assert!(
            !host.root().join("app/.pmfleet/pending").exists(),
            "a switch back leaves no pending record"
        );
    }
    eprintln!("a crash in the last batch's window to every host back: {took:?}");
}

#[test]
fn the_release_step_runs_once_before_any_switch_and_a_failing_one_switches_nothing() {
    require_sshd!();
    // Each host sees its own /srv: the step appends to the host's own counter, which it can
    // also check was written before any switch (`current` still the old release).
    let step = r#"echo "$PMFLEET_RELEASE $(readlink /srv/app/current)" >> /srv/release-ran"#;
    let f = start(3, json!({"release": step}));
    let ran = |h: &SshHost| {
        std::fs::read_to_string(h.root().join("release-ran"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let first: Vec<Vec<String>> = f.hosts().iter().map(ran).collect();
    assert_eq!(first[0].len(), 1, "ran on the first host: {first:?}");
    assert!(first[1].is_empty() && first[2].is_empty(), "{first:?}");

    // Once more, on the host marked primary, before any host switched.
    let hosts: Vec<Value> = f
        .hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| json!({"host": h.address(), "port": h.port(), "user": "root", "primary": i == 2}))
        .collect();
    f.write_ecosystem(json!({"release": step, "host": hosts}));
    let old = current_release(&f.hosts()[2]).unwrap_or_default();
    f.repo.commit_file("VERSION", "2\n", "version 2");
    ok(&f.project.pmfleet(&["deploy", "production"]));
    f.wait_serving("2");
    let second: Vec<Vec<String>> = f.hosts().iter().map(ran).collect();
    assert_eq!(second[0].len(), 1, "{second:?}");
    assert!(second[1].is_empty(), "{second:?}");
    assert_eq!(second[2].len(), 1, "{second:?}");
    let new = current_release(&f.hosts()[2]).unwrap_or_default();
    assert_eq!(
        second[2][0],
        format!("{new} releases/{old}"),
        "it ran in the new release while current was still the old one"
    );

    // A failing step: nothing switches anywhere, the new release is gone everywhere.
    f.write_ecosystem(json!({"release": "echo migrating; exit 3", "host": hosts}));
    let before: Vec<String> = f.current_releases();
    let kept: Vec<Vec<String>> = f.hosts().iter().map(releases).collect();
    f.repo.commit_file("VERSION", "3\n", "version 3");
    let loads = f.load();
    let run = f.project.pmfleet(&["deploy", "production"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.all().contains("release step failed"), "{}", run.all());
    let after: Vec<String> = f.current_releases();
    assert_eq!(after, before, "no host switched");
    let left: Vec<Vec<String>> = f.hosts().iter().map(releases).collect();
    assert_eq!(left, kept, "the new release was removed everywhere");
    f.wait_serving("2");
    no_request_failed(loads);
}

#[test]
fn a_controller_killed_after_the_first_batch_switched_is_undone_by_the_hosts_themselves() {
    require_sshd!();
    // A long watch window: the controller sits in it, holding the lock, when it is killed.
    let f = start(2, json!({"batch": 1}));
    f.write_ecosystem(json!({"batch": 1, "watch_period": "300s"}));
    let old: Vec<String> = f.current_releases();
    f.repo.commit_file("VERSION", "2\n", "version 2");
    let loads = f.load();
    let mut victim = f.project.spawn(&["deploy", "production"]);
    let pending = f.hosts()[0].root().join("app/.pmfleet/pending");
    wait_until(
        Duration::from_secs(60),
        "host 0 switched and serves version 2",
        || {
            assert!(
                victim.try_wait().unwrap().is_none(),
                "the deploy ended before it was killed"
            );
            pending.exists() && f.version(&f.hosts()[0]) == "2"
        },
    );
    let switched = current_release(&f.hosts()[0]).unwrap_or_default();
    assert_ne!(switched, old[0]);
    victim.kill().unwrap();
    victim.wait().unwrap();
    let killed = Instant::now();

    // Before the bound: `status` says the switch is pending and what will happen.
    let status = f.project.pmfleet(&["status", "production"]);
    assert!(
        status.stdout.contains(&format!("{switched} is pending")),
        "{}",
        status.all()
    );

    // No pmfleet command: the host goes back by itself once the run is silent for the quiet
    // time (the lock's stale age), plus a look and a reload.
    let bound = Duration::from_secs(pmfleet_shared::protocol::QUIET_SECS) + Duration::from_secs(20);
    wait_until(bound, "host 0 goes back to its release by itself", || {
        current_release(&f.hosts()[0]).unwrap_or_default() == old[0]
            && f.version(&f.hosts()[0]) == "1"
    });
    let back_after = killed.elapsed();
    assert_eq!(
        current_release(&f.hosts()[1]).unwrap_or_default(),
        old[1],
        "host 1 never switched"
    );
    f.wait_serving("1");
    no_request_failed(loads);
    assert!(!pending.exists(), "the pending record is gone");

    // Once its apps run the release again (the old instances drained), the host records what
    // it did, and `status` shows it.
    let said = format!("went back from {switched} to {} by itself", old[0]);
    wait_until(
        Duration::from_secs(60),
        "status names the auto-revert",
        || {
            f.project
                .pmfleet(&["status", "production"])
                .stdout
                .contains(&said)
        },
    );
    let history =
        std::fs::read_to_string(f.hosts()[0].root().join("app/.pmfleet/history.jsonl")).unwrap();
    assert!(
        history
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"action\":\"revert\"") && l.contains("not confirmed")),
        "the host recorded why:\n{history}"
    );
    eprintln!("controller killed to host 0 back on its release: {back_after:?}");
}

/// One GET on a new connection: the status, the head (lower case) and the body; `Err` when
/// the connection failed or no complete answer came.
fn fetch(addr: SocketAddr, path: &str) -> Result<(u16, String, String), String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(format!("no head: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("no status: {head:?}"))?;
    Ok((status, head.to_ascii_lowercase(), body.to_string()))
}

#[test]
fn maintenance_answers_new_connections_with_503_while_a_deploy_goes_on_underneath() {
    require_sshd!();
    let f = start(1, json!({}));
    let addr = f.addr(&f.hosts()[0]);
    // A client on new connections the whole time: every request gets an answer, 200 or 503.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen: std::collections::BTreeMap<u16, u64> = Default::default();
            let mut errors = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match fetch(addr, "/") {
                    Ok((status, _, _)) => *seen.entry(status).or_default() += 1,
                    Err(e) => errors.push(e),
                }
            }
            (seen, errors)
        })
    };
    ok(&f.project.pmfleet(&[
        "app",
        "production",
        "maintenance",
        "on",
        "--message",
        "Back at <five>",
    ]));
    let (status, head, body) = fetch(addr, "/").unwrap();
    assert_eq!(status, 503, "{head}\n{body}");
    assert!(head.contains("retry-after:"), "{head}");
    assert!(
        body.contains("Back at &lt;five&gt;"),
        "the message, escaped: {body}"
    );
    // The health path is excepted: it reaches an instance.
    let (status, _, body) = fetch(addr, "/health").unwrap();
    assert_eq!((status, body.trim()), (200, "ok"));

    // A deploy underneath: the new instances pass their gate, new connections still get 503.
    f.repo.commit_file("VERSION", "2\n", "version 2");
    ok(&f.project.pmfleet(&["deploy", "production"]));
    assert_eq!(fetch(addr, "/").unwrap().0, 503);

    ok(&f
        .project
        .pmfleet(&["app", "production", "maintenance", "off"]));
    let (status, _, body) = fetch(addr, "/").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("version 2"), "{body}");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, errors) = client.join().unwrap();
    assert!(errors.is_empty(), "every request was answered: {errors:?}");
    assert!(
        seen.keys().all(|s| *s == 200 || *s == 503),
        "only 200 and 503: {seen:?}"
    );
    assert!(seen.get(&503).is_some_and(|n| *n > 0) && seen.get(&200).is_some_and(|n| *n > 0));
    eprintln!("answers on new connections through maintenance on, a deploy, off: {seen:?}");
}

#[test]
fn maintenance_stays_on_when_the_agent_is_killed_and_started_again() {
    require_sshd!();
    let f = start(1, json!({}));
    let host = &f.hosts()[0];
    let addr = f.addr(host);
    ok(&f.project.pmfleet(&[
        "app",
        "production",
        "maintenance",
        "on",
        "--message",
        "Back soon",
    ]));
    assert_eq!(fetch(addr, "/").unwrap().0, 503);

    // The agent dies (a panic ends it, as SIGKILL does); setup starts it again.
    let agent = host.agent_pid();
    // SAFETY: kill has no memory-safety preconditions; the pid is this test's host agent.
    unsafe { libc::kill(agent as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(10), "the agent gone", || {
        !pmfleet_testkit::pid_alive(agent)
    });
    ok(&f.project.pmfleet(&["deploy", "production", "setup"]));
    assert_ne!(host.agent_pid(), agent);
    // Its successor serves the maintenance page again, with its message; the health path
    // still reaches an instance.
    wait_until(
        Duration::from_secs(30),
        "the maintenance page again",
        || {
            fetch(addr, "/")
                .is_ok_and(|(status, _, body)| status == 503 && body.contains("Back soon"))
        },
    );
    wait_until(
        Duration::from_secs(30),
        "the health path handed to an instance",
        || {
            fetch(addr, "/health")
                .is_ok_and(|(status, _, body)| (status, body.trim()) == (200, "ok"))
        },
    );
    assert_eq!(fetch(addr, "/").unwrap().0, 503, "still in maintenance");

    ok(&f
        .project
        .pmfleet(&["app", "production", "maintenance", "off"]));
    let (status, _, body) = fetch(addr, "/").unwrap();
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_manual_lock_refuses_every_deploy_with_its_message_and_lock_wait_does_not_wait_for_it() {
    require_sshd!();
    let f = start(2, json!({}));
    let why = "release freeze until Monday";
    ok(&f
        .project
        .pmfleet(&["deploy", "production", "lock", "--message", why]));
    f.repo.commit_file("VERSION", "2\n", "version 2");
    let run = f.project.pmfleet(&["deploy", "production"]);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.stdout.contains("locked on purpose by tester")
            && run.stdout.contains(why)
            && run.stdout.contains("pmfleet deploy production unlock"),
        "who and why:\n{}",
        run.all()
    );
    let started = Instant::now();
    let run = f
        .project
        .pmfleet(&["deploy", "production", "--lock-wait", "5m"]);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(run.stdout.contains(why), "{}", run.all());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "--lock-wait did not wait for the freeze: {:?}",
        started.elapsed()
    );
    let run = f.project.pmfleet(&["deploy", "production", "revert"]);
    assert_eq!(run.code, 4, "a revert is refused too:\n{}", run.all());
    f.wait_serving("1");

    let run = f.project.pmfleet(&["deploy", "production", "unlock"]);
    ok(&run);
    assert!(
        run.stdout.contains("released the manual lock"),
        "{}",
        run.all()
    );
    ok(&f.project.pmfleet(&["deploy", "production"]));
    f.wait_serving("2");
}
