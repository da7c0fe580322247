//! PM2's everyday verbs and flags, typed as a PM2 user types them, against a real daemon and
//! real processes: ids and several targets, `jlist`, `describe`, `env`, `--only`,
//! `startOrReload`, commands with spaces, `npm -- <script>`, `init`, `logs` streaming, the
//! common `start` flags, and `autostart: false`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use pmfleet_testkit::{AgentHome, Load, free_port, get, wait_until};
use serde_json::Value;

fn status(agent: &AgentHome, app: &str) -> Vec<String> {
    agent
        .procs(app)
        .iter()
        .map(|p| p["status"].as_str().unwrap_or("").to_string())
        .collect()
}

fn id_of(agent: &AgentHome, app: &str, instance: u64) -> String {
    agent
        .procs(app)
        .iter()
        .find(|p| p["instance"] == instance)
        .map(|p| p["id"].to_string())
        .unwrap_or_else(|| panic!("no instance {instance} of {app}"))
}

const TICK: &str = "while true; do echo tick; sleep 0.2; done\n";

#[test]
fn ids_and_several_targets_act_on_whole_apps() {
    let agent = AgentHome::new();
    agent.write("tick.sh", TICK);
    agent.ok(&["start", "tick.sh", "--name", "api", "-i", "2"]);
    agent.ok(&["start", "tick.sh", "--name", "worker"]);
    agent.ok(&["start", "tick.sh", "--name", "mailer"]);
    agent.wait_online("api", 2);
    agent.wait_online("worker", 1);
    agent.wait_online("mailer", 1);

    // `stop <id>` of one instance of a two-instance app: the whole app, said so.
    let id = id_of(&agent, "api", 1);
    let out = agent.run(&["stop", &id]);
    assert!(out.status.success(), "{out:?}");
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("pmfleet acts on whole apps"), "{note}");
    assert_eq!(status(&agent, "api"), ["stopped", "stopped"]);
    assert_eq!(status(&agent, "worker"), ["online"]);

    // Several names at once.
    let out = agent.ok(&["stop", "worker", "mailer"]);
    assert!(
        out.contains("worker: stopped") && out.contains("mailer: stopped"),
        "{out}"
    );
    let out = agent.ok(&["restart", "api", "worker"]);
    assert!(
        out.contains("api: restarted") && out.contains("worker: restarted"),
        "{out}"
    );
    agent.wait_online("api", 2);
    agent.wait_online("worker", 1);
    assert_eq!(status(&agent, "mailer"), ["stopped"]);

    // `start <name>` of an app the agent knows restarts it, as in PM2.
    agent.ok(&["start", "mailer"]);
    agent.wait_online("mailer", 1);

    // An unknown id is refused before anything is sent.
    let err = agent.fails(&["stop", "99"]);
    assert!(err.contains("no process with id 99"), "{err}");
    // `delete all`.
    agent.ok(&["delete", "all"]);
    assert!(agent.list().is_empty());
}

#[test]
fn jlist_describe_and_env_speak_pm2() {
    let agent = AgentHome::new();
    agent.write("tick.sh", TICK);
    agent
        .command()
        .args(["start", "tick.sh", "--name", "api", "--", "--flag"])
        .env("FROM_THE_SHELL", "yes")
        .output()
        .unwrap();
    agent.wait_online("api", 1);
    let id = id_of(&agent, "api", 0);

    let list: Value = serde_json::from_str(&agent.ok(&["jlist"])).unwrap();
    let entry = &list[0];
    assert_eq!(entry["name"], "api");
    assert_eq!(entry["pm_id"].to_string(), id);
    assert!(entry["pid"].as_u64().unwrap() > 0);
    assert!(entry["monit"]["memory"].is_u64(), "{entry}");
    let env = &entry["pm2_env"];
    assert_eq!(env["status"], "online");
    assert_eq!(env["exec_mode"], "fork_mode");
    assert_eq!(env["exec_interpreter"], "bash");
    assert!(
        env["pm_exec_path"].as_str().unwrap().ends_with("/tick.sh"),
        "{env}"
    );
    assert_eq!(env["args"], serde_json::json!(["--flag"]));
    assert_eq!(env["FROM_THE_SHELL"], "yes");
    assert!(
        env["pm_uptime"].as_u64().unwrap() > 1_600_000_000_000,
        "{env}"
    );
    let pretty = agent.ok(&["prettylist"]);
    assert!(pretty.lines().count() > 10, "{pretty}");

    let described = agent.ok(&["describe", &id]);
    assert!(described.contains("name            api"), "{described}");

    let env = agent.ok(&["env", &id]);
    assert!(env.lines().any(|l| l == "FROM_THE_SHELL: yes"), "{env}");
    assert!(env.lines().any(|l| l == "NODE_APP_INSTANCE: 0"), "{env}");
    let err = agent.fails(&["env", "4242"]);
    assert!(err.contains("no process with id 4242"), "{err}");
}

#[test]
fn only_and_autostart_false_pick_what_starts() {
    let agent = AgentHome::new();
    agent.write("tick.sh", TICK);
    agent.write(
        "ecosystem.json",
        r#"{"apps": [
            {"name": "a", "script": "tick.sh"},
            {"name": "b", "script": "tick.sh"},
            {"name": "c", "script": "tick.sh"},
            {"name": "later", "script": "tick.sh", "autostart": false}
        ]}"#,
    );
    agent.ok(&["start", "ecosystem.json", "--only", "a,c"]);
    agent.wait_online("a", 1);
    agent.wait_online("c", 1);
    assert!(agent.procs("b").is_empty());
    assert!(agent.procs("later").is_empty());

    let out = agent.ok(&["start", "ecosystem.json"]);
    assert!(
        out.contains("later: added, not started (autostart: false)"),
        "{out}"
    );
    assert!(
        !out.contains("does not implement"),
        "the loader's warning is answered: {out}"
    );
    agent.wait_online("b", 1);
    assert_eq!(status(&agent, "later"), ["stopped"]);
    // It stays stopped across a restart of the agent, and starts when asked for by name.
    agent.ok(&["stop-daemon"]);
    agent.wait_online("a", 1);
    assert_eq!(status(&agent, "later"), ["stopped"]);
    agent.ok(&["start", "later"]);
    agent.wait_online("later", 1);
}

#[test]
fn an_env_no_app_defines_is_warned_about() {
    let agent = AgentHome::new();
    agent.write("tick.sh", TICK);
    agent.write(
        "ecosystem.json",
        r#"{"apps": [{"name": "a", "script": "tick.sh", "env_production": {"X": "1"}}]}"#,
    );
    let out = agent.run(&["start", "ecosystem.json", "--env", "prodution"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--env prodution: no app") && err.contains("did you mean `production`"),
        "{err}"
    );
    agent.wait_online("a", 1);
    let out = agent.run(&["start", "ecosystem.json", "--env", "production"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("no app"));
}

#[test]
fn start_or_reload_starts_what_is_missing_and_reloads_without_downtime() {
    let agent = AgentHome::new();
    let port = free_port();
    agent.fixture("server.js");
    agent.write("tick.sh", TICK);
    let file = |version: &str| {
        format!(
            r#"{{"apps": [
                {{"name": "web", "script": "server.js", "instances": 2, "exec_mode": "cluster",
                  "port": {port}, "env": {{"VERSION": "{version}"}}}},
                {{"name": "jobs", "script": "tick.sh"}}
            ]}}"#
        )
    };
    agent.write("ecosystem.json", &file("1"));
    agent.ok(&["startOrReload", "ecosystem.json"]);
    agent.wait_online("web", 2);
    agent.wait_online("jobs", 1);
    get(port).expect("serving");
    let before = agent.pids("web");

    // The post-deploy line PM2 users have: the running cluster app rolls to the new env
    // while it keeps answering.
    agent.write("ecosystem.json", &file("2"));
    let load = Load::start(port, 4, u64::MAX, Duration::from_secs(60));
    load.wait_more(50, Duration::from_secs(10));
    let out = agent.ok(&["startOrReload", "ecosystem.json", "--env", "production"]);
    load.wait_more(50, Duration::from_secs(10));
    let report = load.finish();
    assert!(out.contains("web:") && out.contains("reload"), "{out}");
    assert_eq!(report.failed, 0, "{:?}", report.errors);
    let after = agent.pids("web");
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
    let env = agent.ok(&["env", &id_of(&agent, "web", 0)]);
    assert!(env.lines().any(|l| l == "VERSION: 2"), "{env}");

    // The same spec again: still a rolling reload (new processes), as PM2's reload.
    agent.ok(&["startOrGracefulReload", "ecosystem.json"]);
    agent.wait_online("web", 2);
    let again = agent.pids("web");
    assert!(
        again.iter().all(|p| !after.contains(p)),
        "{after:?} {again:?}"
    );

    // startOrRestart restarts.
    let out = agent.ok(&["startOrRestart", "ecosystem.json"]);
    assert!(out.contains("web: restarted"), "{out}");
}

#[test]
fn a_command_with_spaces_runs_through_bash_and_npm_takes_its_script_after_dashes() {
    let agent = AgentHome::new();
    let port = free_port();
    let command = format!("python3 -m http.server {port} --bind 127.0.0.1");
    let out = agent.ok(&["start", &command]);
    assert!(out.contains("python3: started"), "{out}");
    wait_until(Duration::from_secs(10), "http.server answers", || {
        answers_200(port)
    });
    let show = agent.ok(&["show", "python3"]);
    assert!(show.contains(&format!("-c {command}")), "{show}");

    let npm_port = free_port();
    agent.write(
        "package.json",
        r#"{"name": "t", "version": "1.0.0", "scripts": {"serve": "node -e \"require('http').createServer((q, s) => s.end('npm ' + process.argv.slice(1).join(' '))).listen(process.env.PORT)\" --"}}"#,
    );
    let out = agent
        .command()
        .args(["start", "npm", "--", "run", "serve", "--", "extra"])
        .env("PORT", npm_port.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_until(Duration::from_secs(20), "npm's app answers", || {
        get(npm_port).is_ok_and(|body| body.contains("extra"))
    });
    assert_eq!(status(&agent, "npm"), ["online"]);
}

#[test]
fn init_writes_a_file_that_starts() {
    let agent = AgentHome::new();
    let out = agent.ok(&["init", "simple"]);
    assert!(out.contains("ecosystem.config.js"), "{out}");
    let err = agent.fails(&["init"]);
    assert!(err.contains("left as it is"), "{err}");
    agent.ok(&["init", "--force"]);
    let text = std::fs::read_to_string(agent.work.path().join("ecosystem.config.js")).unwrap();
    assert!(text.contains("//") && text.contains("deploy"), "{text}");
    agent.write("server.js", "setInterval(() => {}, 1000);\n");
    agent.write("worker.js", "setInterval(() => {}, 1000);\n");
    // `start` with no word reads the file of the directory.
    let out = agent.ok(&["start", "--only", "worker"]);
    assert!(out.contains("worker: started"), "{out}");
    agent.wait_online("worker", 1);
}

#[test]
fn logs_stream_until_interrupted_and_nostream_returns() {
    let agent = AgentHome::new();
    agent.write("tick.sh", TICK);
    agent.ok(&["start", "tick.sh", "--name", "tick"]);
    agent.wait_online("tick", 1);
    let out = agent.ok(&["logs", "tick", "--nostream", "--lines", "2"]);
    assert!(out.contains("tick-out | tick"), "{out}");

    let mut child = agent
        .command()
        .args(["logs", "tick", "--lines", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // New lines keep coming: it streams.
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        assert!(line.contains("tick"), "{line}");
    }
    assert!(child.try_wait().unwrap().is_none(), "still streaming");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_common_start_flags_reach_the_app() {
    let agent = AgentHome::new();
    // --no-autorestart: an exit is final.
    agent.write("once.sh", "echo once; exit 0\n");
    agent.ok(&["start", "once.sh", "--no-autorestart"]);
    wait_until(Duration::from_secs(10), "once stopped", || {
        status(&agent, "once") == ["stopped"]
    });
    assert_eq!(agent.procs("once")[0]["restarts"], 0);

    // -o / -e, --log-date-format: the app's lines in the files named, stamped.
    agent.write(
        "talk.sh",
        "while true; do echo out-line; echo err-line >&2; sleep 0.2; done\n",
    );
    agent.ok(&[
        "start",
        "talk.sh",
        "-o",
        "mine-out.log",
        "-e",
        "mine-err.log",
        "--log-date-format",
        "YYYY",
    ]);
    let year = chrono_year();
    wait_until(Duration::from_secs(10), "both files written", || {
        let out =
            std::fs::read_to_string(agent.work.path().join("mine-out.log")).unwrap_or_default();
        let err =
            std::fs::read_to_string(agent.work.path().join("mine-err.log")).unwrap_or_default();
        out.lines()
            .any(|l| l.starts_with(&year) && l.ends_with("out-line"))
            && err.lines().any(|l| l.ends_with("err-line"))
    });

    // --merge-logs with -i 2: one out file for both instances; --time stamps it.
    agent.write("tick.sh", TICK);
    agent.ok(&[
        "start",
        "tick.sh",
        "--name",
        "merged",
        "-i",
        "2",
        "--merge-logs",
        "--time",
    ]);
    agent.wait_online("merged", 2);
    let show = agent.ok(&["show", "merged"]);
    let out_log = show
        .lines()
        .find_map(|l| l.strip_prefix("out log"))
        .unwrap()
        .trim()
        .to_string();
    assert!(!out_log.contains(','), "one file: {out_log}");

    // --interpreter, --node-args, --watch, --max-memory-restart.
    agent.write("app.js", "setInterval(() => {}, 1000);\n");
    agent.ok(&[
        "start",
        "app.js",
        "--interpreter",
        "node",
        "--node-args",
        "--max-old-space-size=64 --no-warnings",
        "--watch",
        "--max-memory-restart",
        "300M",
    ]);
    agent.wait_online("app", 1);
    let pid = agent.pids("app")[0];
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(
        args.iter().any(|a| a == "--max-old-space-size=64"),
        "{args:?}"
    );
    assert!(args.iter().any(|a| a == "--no-warnings"), "{args:?}");
    let show = agent.ok(&["show", "app"]);
    assert!(show.contains("memory limit    300.0 MiB"), "{show}");
    assert!(show.contains("watch           "), "{show}");
}

/// Whether `GET /` on 127.0.0.1:`port` is answered 200, in any HTTP version (python's
/// http.server answers HTTP/1.0).
fn answers_200(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = [0u8; 12];
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok()
        && s.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.")
        && &head[9..12] == b"200"
}

/// This year, as `YYYY` formats it, from the system's `date`.
fn chrono_year() -> String {
    let out = std::process::Command::new("date")
        .arg("+%Y")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
