//! The deploy setup every `pm2 deploy` user has — a `post-deploy` of `pm2 reload
//! ecosystem.config.js --env production` — deploys with pmfleet as it stands: with the agent,
//! the hosts skip the PM2 call and say so, and the agent runs the apps; with `agent: false`,
//! the call moves to `published`, which real PM2 runs in `current` after every switch, so PM2
//! follows each release (and goes back with a release that did not stay).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pmfleet_testkit::assets::VERSION_SERVER_JS;
use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::{Project, ok};
use pmfleet_testkit::sshd::Fleet;
use pmfleet_testkit::{free_port, get_from, require_sshd, wait_until};

/// A PM2 user's `ecosystem.config.js`: the app (with `app_keys`), and `deploy`.
fn ecosystem_js(app_port: u16, app_keys: &str, deploy: &str) -> String {
    format!(
        r#"module.exports = {{
  apps: [{{ name: "web", script: "server.js", env_production: {{ PORT: {app_port} }}, {app_keys} }}],
  deploy: {{ {deploy} }},
}};
"#
    )
}

#[test]
fn a_post_deploy_calling_pm2_reload_deploys_with_the_agent_and_says_what_it_did_instead() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    let app_port = free_port();
    let repo = GitRepo::new();
    let deploy = format!(
        r#"production: {{
      user: "root", host: "{}", port: {}, ref: "origin/main", repo: {:?}, path: "/srv/app",
      fetch: "push", agent: {{ port: {}, bind: "host" }},
      "post-deploy": "echo installing && pm2 reload ecosystem.config.js --env production",
    }}"#,
        host.address(),
        host.port(),
        repo.url(),
        free_port()
    );
    let file = ecosystem_js(app_port, "", &deploy);
    repo.write("server.js", VERSION_SERVER_JS);
    repo.write("ecosystem.config.js", &file);
    repo.commit_file("VERSION", "1\n", "web app");
    let project = Project::new(fleet.home.path());
    std::fs::write(project.path().join("ecosystem.config.js"), &file).unwrap();

    ok(&project.pmfleet(&["ca", "init"]));
    let setup = project.pmfleet(&["deploy", "production", "setup"]);
    ok(&setup);
    assert!(
        setup.stderr.contains("this hook calls PM2"),
        "loading the file says what happens to the PM2 call:\n{}",
        setup.all()
    );
    let deployed = project.pmfleet(&["deploy", "production"]);
    ok(&deployed);
    let said = deployed.all();
    assert!(
        said.contains("installing"),
        "the rest of the hook ran:\n{said}"
    );
    assert!(
        said.contains("skipped `pm2 reload ecosystem.config.js --env production`"),
        "the output names the PM2 call it skipped:\n{said}"
    );
    // The agent runs the app, with the file's env_production.
    wait_until(
        Duration::from_secs(30),
        "the agent serves version 1",
        || get_from(host.address(), app_port).is_ok_and(|b| b.trim() == "version 1"),
    );
}

/// PM2 under a home of its own, killed when the test ends.
struct Pm2Home {
    bin: std::path::PathBuf,
    home: tempfile::TempDir,
}

impl Pm2Home {
    fn new() -> Pm2Home {
        let bin = match pmfleet_testkit::pm2::find() {
            Ok(bin) => bin,
            Err(why) => panic!("{why}"),
        };
        Pm2Home {
            bin: std::fs::canonicalize(bin).expect("the pm2 binary"),
            home: tempfile::tempdir().expect("PM2 home"),
        }
    }
}

impl Drop for Pm2Home {
    fn drop(&mut self) {
        let _ = Command::new(&self.bin)
            .arg("kill")
            .env("PM2_HOME", self.home.path())
            .output();
    }
}

fn current_release(root: &Path) -> String {
    std::fs::read_link(root.join("current"))
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

#[test]
fn published_moves_pm2_run_apps_to_every_release_and_back_with_one_that_did_not_stay() {
    let pm2 = Pm2Home::new();
    let app_port = free_port();
    let repo = GitRepo::new();
    let home = tempfile::tempdir().unwrap();
    let project = Project::new(home.path());
    let root = project.path().join("deployed");
    // `published` refuses version 3, so that release does not stay.
    let published = format!(
        "test \"$(cat VERSION)\" != 3 && {} startOrReload ecosystem.config.js --env production",
        pm2.bin.display()
    );
    let deploy = format!(
        r#"production: {{
      host: "localhost", ref: "main", repo: {:?}, path: {:?}, agent: false,
      published: {:?},
    }}"#,
        repo.url(),
        root.display().to_string(),
        published
    );
    // PM2 keeps an app where it first started it: without a `cwd` in `current` it would
    // never leave the first release, and loading the file says so.
    std::fs::write(
        project.path().join("ecosystem.config.js"),
        ecosystem_js(app_port, "", &deploy),
    )
    .unwrap();
    let config = project.pmfleet(&["config"]);
    assert!(
        config.all().contains(&format!(
            "give the app `cwd: \"{}/current\"`",
            root.display()
        )),
        "{}",
        config.all()
    );
    let cwd = format!("cwd: {:?}", format!("{}/current", root.display()));
    let file = ecosystem_js(app_port, &cwd, &deploy);
    repo.write("server.js", VERSION_SERVER_JS);
    repo.write("ecosystem.config.js", &file);
    repo.commit_file("VERSION", "1\n", "web app");
    std::fs::write(project.path().join("ecosystem.config.js"), &file).unwrap();
    let pmfleet =
        |args: &[&str]| project.pmfleet_with(args, &[("PM2_HOME", pm2.home.path().as_os_str())]);
    let serves = |version: &str| {
        wait_until(
            Duration::from_secs(30),
            &format!("PM2 serves version {version}"),
            || {
                get_from("127.0.0.1", app_port)
                    .is_ok_and(|b| b.trim() == format!("version {version}"))
            },
        );
    };

    ok(&pmfleet(&["deploy", "production", "setup"]));
    let first = pmfleet(&["deploy", "production"]);
    ok(&first);
    assert!(first.all().contains("published"), "{}", first.all());
    serves("1");

    repo.commit_file("VERSION", "2\n", "version 2");
    ok(&pmfleet(&["deploy", "production"]));
    serves("2");
    let second = current_release(&root);

    repo.commit_file("VERSION", "3\n", "version 3");
    let third = pmfleet(&["deploy", "production"]);
    assert_eq!(
        third.code,
        1,
        "a failed `published` fails the deploy:\n{}",
        third.all()
    );
    assert_eq!(
        current_release(&root),
        second,
        "the host went back to the release it served:\n{}",
        third.all()
    );
    // `published` ran again in the release gone back to: PM2 still serves version 2.
    serves("2");
}

#[test]
fn a_first_setup_without_a_fleet_ca_says_once_what_to_run() {
    let home = tempfile::tempdir().unwrap();
    let project = Project::new(home.path());
    let repo = GitRepo::new();
    let hosts: Vec<serde_json::Value> = (0..3)
        .map(|i| serde_json::json!({"host": "localhost", "user": format!("u{i}")}))
        .collect();
    project.write_ecosystem(&serde_json::json!({"deploy": {"production": {
        "host": hosts, "ref": "main", "repo": repo.url(),
        "path": project.path().join("root").display().to_string(),
    }}}));
    let setup = project.pmfleet(&["deploy", "production", "setup"]);
    assert_eq!(setup.code, 1, "{}", setup.all());
    let said = setup.all();
    assert_eq!(
        said.matches("no fleet CA").count(),
        1,
        "said once, not once per host:\n{said}"
    );
    assert!(said.contains("run `pmfleet ca init`"), "{said}");
}
