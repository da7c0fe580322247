//! Secrets never leak, as a property: a real deploy to real sshd hosts with real agents, with
//! sentinel secret values (from a `$(command)` and from the controller's environment), then
//! every byte pmfleet printed — deploy live (in a pty), plain and `--json`, hook output,
//! status, config, secrets, history, a revert, app commands, logs, the agents' events, a
//! failing deploy — and every file the controller and the agents wrote is searched for the
//! sentinels. The one place they may be is each host's one 0600 secrets file; the apps prove
//! they got the values without printing them.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::{Project, Run, ok};
use pmfleet_testkit::sshd::Fleet;
use pmfleet_testkit::{free_port, get_from, require_sshd, wait_until};
use serde_json::json;

/// Answers whether it got the secret: `DB_PASSWORD` reversed must be `EXPECT_REVERSED`.
const SERVER_JS: &str = r#"const http = require("http");
const got = (process.env.DB_PASSWORD || "").split("").reverse().join("");
const ok = got === process.env.EXPECT_REVERSED && process.env.API_TOKEN_LEN == String((process.env.API_TOKEN || "").length);
http.createServer((req, res) => res.end(ok ? "secret delivered\n" : "secret missing\n"))
  .listen(process.env.PORT);
"#;

/// A sentinel no file or command line holds as written: random, upper case.
fn sentinel(tag: &str) -> String {
    let random = uuid_like();
    format!("SNTL{tag}{random}").to_ascii_uppercase()
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", nanos, std::process::id())
}

/// Every regular file under `dir` (not following links), except `skip`.
fn files_under(dir: &Path, skip: &[PathBuf], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            files_under(&path, skip, out);
        } else if meta.is_file() && !skip.contains(&path) {
            out.push(path);
        }
    }
}

/// The files among `files` that hold any of `needles` (as bytes).
fn holding(files: &[PathBuf], needles: &[&str]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| {
            let bytes = std::fs::read(f).ok()?;
            needles
                .iter()
                .find(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
                .map(|n| format!("{} holds {n}", f.display()))
        })
        .collect()
}

#[test]
fn secret_values_reach_the_apps_and_nothing_else_ever_holds_them() {
    require_sshd!();
    let fleet = Fleet::start(2);
    let app_port = free_port();
    let agent_port = free_port();
    let db = sentinel("db");
    let token = sentinel("tok");

    let apps = json!([{
        "name": "web", "script": "server.js", "instances": 2, "exec_mode": "cluster",
        "listen_timeout": 5000,
        "env": {
            "PORT": app_port,
            "DB_PASSWORD": "secret:DB_PASSWORD",
            "EXPECT_REVERSED": db.chars().rev().collect::<String>(),
            "API_TOKEN_LEN": token.len().to_string(),
        }
    }]);
    let repo = GitRepo::new();
    repo.write("server.js", SERVER_JS);
    repo.commit_file(
        "ecosystem.json",
        &json!({ "apps": apps }).to_string(),
        "web app",
    );

    let project = Project::new(fleet.home.path());
    let hosts = fleet.hosts_json();
    let ecosystem = |post_deploy: &str| {
        project.write_ecosystem(&json!({
            "apps": apps,
            "deploy": {"production": {
                "host": hosts, "ref": "main", "repo": repo.url(), "path": "/srv/app",
                "fetch": "push", "agent": {"port": agent_port, "bind": "host"},
                "env": {"API_TOKEN": "secret:API_TOKEN", "NODE_ENV": "production"},
                "pre-deploy-local": "echo \"local hook sees $API_TOKEN\"",
                "post-deploy": post_deploy,
                "on-failure": "echo \"on-failure: $PMFLEET_OUTCOME by $PMFLEET_PERFORMER\"",
            }}
        }));
    };
    ecosystem("echo \"post-deploy sees $API_TOKEN\"; echo \"$API_TOKEN\" >&2");
    // `.pmfleet/secrets`: a command whose output is the sentinel (the file never holds it);
    // `.pmfleet/secrets.production`: a variable of the controller's environment.
    let secrets_dir = project.path().join(".pmfleet");
    std::fs::create_dir_all(&secrets_dir).unwrap();
    std::fs::write(
        secrets_dir.join("secrets"),
        format!(
            "# every environment\nDB_PASSWORD=$(printf '%s' '{}' | tr a-z A-Z)\n",
            db.to_ascii_lowercase()
        ),
    )
    .unwrap();
    std::fs::write(
        secrets_dir.join("secrets.production"),
        "API_TOKEN=$CI_API_TOKEN\n",
    )
    .unwrap();
    for f in ["secrets", "secrets.production"] {
        std::fs::set_permissions(secrets_dir.join(f), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let ci = [("CI_API_TOKEN", std::ffi::OsStr::new(&token))];
    let printed: std::cell::RefCell<Vec<Run>> = std::cell::RefCell::new(Vec::new());
    let pmfleet = |args: &[&str]| -> Run {
        let run = project.pmfleet_with(args, &ci);
        printed.borrow_mut().push(run.clone());
        run
    };

    ok(&pmfleet(&["ca", "init"]));
    ok(&pmfleet(&["deploy", "production", "setup"]));
    let deploy = pmfleet(&["deploy", "production"]);
    ok(&deploy);
    // The hooks got the value, and what they printed reached the output masked.
    assert!(
        deploy
            .stdout
            .contains("post-deploy sees [secret API_TOKEN]"),
        "{}",
        deploy.all()
    );
    assert!(
        deploy.stdout.contains("local hook sees [secret API_TOKEN]"),
        "{}",
        deploy.all()
    );
    for h in &fleet.hosts {
        let answer = get_from(h.address(), app_port).unwrap_or_else(|e| format!("error: {e}"));
        assert_eq!(answer, "secret delivered\n", "{}", h.address());
    }
    ok(&pmfleet(&["deploy", "production", "--json"]));
    // Live output: a terminal (a pty from `script`), not CI.
    let live = std::process::Command::new("script")
        .arg("-qefc")
        .arg(format!(
            "{} deploy production",
            pmfleet_testkit::binaries::pmfleet_bin().display()
        ))
        .arg("/dev/null")
        .current_dir(project.path())
        .env("HOME", fleet.home.path())
        .env("XDG_CACHE_HOME", project.path().join(".cache"))
        .env("PMFLEET_ACTOR", "tester")
        .env("CI_API_TOKEN", &token)
        .env("TERM", "xterm")
        .env_remove("CI")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run pmfleet in a pty");
    let live = Run::from(live);
    ok(&live);
    assert!(
        !live.stdout.contains("pmfleet | "),
        "a terminal gets live output, not plain lines:\n{}",
        live.all()
    );
    assert!(
        live.stdout.contains("post-deploy sees [secret API_TOKEN]"),
        "{}",
        live.all()
    );
    printed.borrow_mut().push(live);
    ok(&pmfleet(&["status"]));
    ok(&pmfleet(&["status", "--json"]));
    ok(&pmfleet(&["config", "production"]));
    ok(&pmfleet(&["config", "--json"]));
    let listed = pmfleet(&["secrets", "production"]);
    ok(&listed);
    assert!(listed.stdout.contains("DB_PASSWORD"), "{}", listed.all());
    assert!(listed.stdout.contains("$CI_API_TOKEN"), "{}", listed.all());
    assert!(listed.stdout.contains("$(printf"), "{}", listed.all());
    assert!(
        listed.stdout.contains("secrets.production"),
        "{}",
        listed.all()
    );
    ok(&pmfleet(&["secrets", "production", "--json"]));
    ok(&pmfleet(&["deploy", "production", "revert", "1"]));
    ok(&pmfleet(&["history", "production"]));
    ok(&pmfleet(&["history", "production", "--json"]));
    // The agents' events while the app reloads.
    let mut events = project.spawn(&["events", "production"]);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        let stdout = events.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let mut seen = seen.lock().unwrap();
                seen.push_str(&line);
                seen.push('\n');
            }
        })
    };
    wait_until(
        std::time::Duration::from_secs(60),
        "pmfleet events to show the reload",
        || {
            ok(&pmfleet(&["app", "production", "reload", "web"]));
            seen.lock().unwrap().contains("web")
        },
    );
    let _ = events.kill();
    let stderr = events
        .wait_with_output()
        .map(|o| o.stderr)
        .unwrap_or_default();
    let _ = reader.join();
    printed.borrow_mut().push(Run {
        code: 0,
        stdout: seen.lock().unwrap().clone(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    });
    ok(&pmfleet(&["logs", "production", "web", "--lines", "50"]));
    // A failing deploy whose hook prints the secret on stderr.
    ecosystem("echo \"$API_TOKEN\" >&2; exit 3");
    let failed = pmfleet(&["deploy", "production"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    assert!(
        failed.stdout.contains("on-failure: failed by tester"),
        "{}",
        failed.all()
    );

    let needles = [db.as_str(), token.as_str()];
    for run in printed.borrow().iter() {
        for needle in needles {
            assert!(
                !run.stdout.contains(needle) && !run.stderr.contains(needle),
                "pmfleet printed a secret:\n{}",
                run.all()
            );
        }
    }

    // Every file the controller wrote (its home, the project with its caches) and every file
    // on the hosts (deploy roots, agent homes, logs, state files) but the one secrets file.
    let mut skip = Vec::new();
    for h in &fleet.hosts {
        let file = h.root().join("app/.pmfleet/secrets");
        let meta = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{}",
            file.display()
        );
        // The deploy user (`root` here) owns it.
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(&db) && text.contains(&token),
            "{}",
            file.display()
        );
        skip.push(file);
    }
    let mut files = Vec::new();
    files_under(fleet.home.path(), &skip, &mut files);
    files_under(project.path(), &skip, &mut files);
    for h in &fleet.hosts {
        files_under(h.root(), &skip, &mut files);
        files_under(&h.home(), &skip, &mut files);
    }
    assert!(files.len() > 20, "searched only {} files", files.len());
    let leaks = holding(&files, &needles);
    assert!(leaks.is_empty(), "secrets in files:\n{}", leaks.join("\n"));

    // The agent keeps the reference, never the value.
    let state = std::fs::read_to_string(fleet.hosts[0].home().join(".pmfleet-agent/state.json"))
        .expect("the agent's state file");
    assert!(state.contains("secret:DB_PASSWORD"), "{state}");
}

#[test]
fn the_published_hook_of_a_fleet_without_agents_gets_the_values_and_prints_them_masked() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let token = sentinel("pub");
    let repo = GitRepo::new();
    repo.commit_file("app.sh", "echo app\n", "v1");
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&json!({
        "apps": [{"name": "app", "script": "app.sh"}],
        "deploy": {"production": {
            "host": [{"host": fleet.hosts[0].address(), "port": fleet.hosts[0].port(), "user": "root"}],
            "ref": "main", "repo": repo.url(), "path": "/srv/app", "agent": false,
            "env": {"API_TOKEN": "secret:API_TOKEN"},
            "published": "echo \"published sees $API_TOKEN\"; printf 'published length %s\\n' \"${#API_TOKEN}\"",
        }}
    }));
    let dir = project.path().join(".pmfleet");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secrets"), "API_TOKEN=$CI_API_TOKEN\n").unwrap();
    let ci = [("CI_API_TOKEN", std::ffi::OsStr::new(&token))];
    ok(&project.pmfleet_with(&["deploy", "production", "setup"], &ci));
    let mut runs = Vec::new();
    for args in [
        &["deploy", "production"][..],
        &["deploy", "production"][..],
        &["deploy", "production", "revert", "1"][..],
    ] {
        let run = project.pmfleet_with(args, &ci);
        ok(&run);
        assert!(
            run.stdout.contains("published sees [secret API_TOKEN]")
                && run
                    .stdout
                    .contains(&format!("published length {}", token.len())),
            "{}",
            run.all()
        );
        runs.push(run);
    }
    for run in &runs {
        assert!(!run.all().contains(&token), "{}", run.all());
    }
}
