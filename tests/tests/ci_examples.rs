//! The CI examples in `examples/ci` work as written: their steps run, with the environment
//! each sets and the documented secrets filled in, on a runner that has nothing but pmfleet
//! on its PATH (no fleet CA, no SSH files) — and deploy the commit to real sshd hosts with
//! agents. The steps that install tools (checkout, `cargo install`, `apt-get`) are the
//! runner's business and are left out.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pmfleet_testkit::assets::VERSION_SERVER_JS;
use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::{Project, Run, ok};
use pmfleet_testkit::sshd::Fleet;
use pmfleet_testkit::{free_port, get_from, require_sshd, wait_until};
use saphyr::{LoadableYamlNode, Yaml};
use serde_json::json;

fn example(name: &str) -> Yaml<'static> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/ci")
        .join(name);
    let text: &'static str = Box::leak(std::fs::read_to_string(path).unwrap().into_boxed_str());
    Yaml::load_from_str(text)
        .unwrap_or_else(|e| panic!("{name} is not YAML: {e}"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{name} is empty"))
}

fn text(node: &Yaml) -> String {
    node.as_str().map(str::to_owned).unwrap_or_default()
}

/// `node[key]`, or "" when there is no such key.
fn field(node: &Yaml, key: &str) -> String {
    node.as_mapping_get(key).map(text).unwrap_or_default()
}

fn seq<'a>(node: &'a Yaml<'a>) -> Vec<&'a Yaml<'a>> {
    (0..).map_while(|i| node.as_sequence_get(i)).collect()
}

/// A fleet of one host with an agent, set up and serving version 1 from an admin's machine
/// (which holds the fleet CA), and the secrets the examples ask for.
struct Setting {
    fleet: Fleet,
    repo: GitRepo,
    project: Project,
    app_port: u16,
    secrets: BTreeMap<String, String>,
}

impl Setting {
    fn new() -> Setting {
        let fleet = Fleet::start(1);
        let app_port = free_port();
        let repo = GitRepo::new();
        repo.write("server.js", VERSION_SERVER_JS);
        repo.write(
            "ecosystem.json",
            &json!({"apps": [{"name": "web", "script": "server.js", "env": {"PORT": app_port}}]})
                .to_string(),
        );
        repo.commit_file("VERSION", "1\n", "web app");
        let project = Project::new(fleet.home.path());
        project.write_ecosystem(&json!({"deploy": {"production": {
            "host": fleet.hosts_json(),
            "ref": "main", "repo": repo.url(), "path": "/srv/app", "fetch": "push",
            "agent": {"port": free_port(), "bind": "host"},
        }}}));
        ok(&project.pmfleet(&["ca", "init"]));
        ok(&project.pmfleet(&["deploy", "production", "setup"]));
        ok(&project.pmfleet(&["deploy", "production"]));

        let issued = tempfile::tempdir().unwrap();
        let out = issued.path().join("ci");
        let out_arg = out.display().to_string();
        ok(&project.pmfleet(&[
            "ca",
            "issue",
            "ci-deploy",
            "--role",
            "deploy",
            "--out",
            &out_arg,
        ]));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        let secrets = BTreeMap::from([
            ("DEPLOY_SSH_KEY".into(), read(&fleet.home.private_key())),
            ("DEPLOY_KNOWN_HOSTS".into(), read(&fleet.home.known_hosts())),
            ("PMFLEET_TLS_CA".into(), read(&out.join("ca.pem"))),
            ("PMFLEET_TLS_CERT".into(), read(&out.join("cert.pem"))),
            ("PMFLEET_TLS_KEY".into(), read(&out.join("key.pem"))),
            (
                "PMFLEET_GIT".into(),
                "https://git.example.com/pmfleet.git".into(),
            ),
        ]);
        Setting {
            fleet,
            repo,
            project,
            app_port,
            secrets,
        }
    }

    fn wait_serving(&self, version: &str) {
        let host = &self.fleet.hosts[0];
        wait_until(
            Duration::from_secs(30),
            &format!("the host serves version {version}"),
            || {
                get_from(host.address(), self.app_port)
                    .is_ok_and(|b| b.trim() == format!("version {version}"))
            },
        );
    }

    /// Runs `script` with bash as a runner would: an empty home, pmfleet on PATH, `env`.
    fn run_step(&self, home: &Path, script: &str, env: &BTreeMap<String, String>) -> Run {
        let bin = pmfleet_testkit::binaries::pmfleet_bin();
        let bin_dir = bin.parent().expect("the binary's directory");
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display());
        let out = Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", script])
            .env_clear()
            .env("PATH", path)
            .env("HOME", home)
            .env("CI", "true")
            .envs(env)
            .current_dir(self.project.path())
            .output()
            .expect("run bash");
        Run::from(out)
    }

    /// No secret value appears in what the steps printed.
    fn assert_no_secret_in(&self, printed: &str) {
        for (name, value) in &self.secrets {
            for line in value
                .lines()
                .filter(|l| l.len() > 20 && !l.starts_with("-----"))
            {
                assert!(!printed.contains(line), "{name} was printed:\n{printed}");
            }
        }
    }

    fn last_deployer(&self) -> String {
        let history = std::fs::read_to_string(
            self.fleet.hosts[0]
                .root()
                .join("app/.pmfleet/history.jsonl"),
        )
        .unwrap();
        let last: serde_json::Value =
            serde_json::from_str(history.lines().last().unwrap()).unwrap();
        last["who"].as_str().unwrap_or_default().to_owned()
    }
}

/// `${{ secrets.NAME }}` filled in from `secrets`.
fn fill_secrets(value: &str, secrets: &BTreeMap<String, String>) -> String {
    let Some(name) = value
        .trim()
        .strip_prefix("${{ secrets.")
        .and_then(|v| v.strip_suffix("}}"))
    else {
        return value.to_owned();
    };
    secrets
        .get(name.trim())
        .unwrap_or_else(|| panic!("the workflow uses secret {name}, which this test does not know"))
        .clone()
}

#[test]
fn the_github_workflow_deploys_as_written() {
    require_sshd!();
    let setting = Setting::new();
    let sha = setting.repo.commit_file("VERSION", "2\n", "version 2");
    let workflow = example("github-actions.yml");
    let runner_home = tempfile::tempdir().unwrap();
    let mut ran = Vec::new();
    for step in seq(&workflow["jobs"]["deploy"]["steps"]) {
        let run = field(step, "run");
        if run.is_empty() || run.starts_with("cargo install") {
            continue;
        }
        let mut env = BTreeMap::from([
            ("GITHUB_SHA".to_owned(), sha.clone()),
            ("GITHUB_ACTOR".to_owned(), "octocat".to_owned()),
        ]);
        if let Some(map) = step.as_mapping_get("env").and_then(Yaml::as_mapping) {
            for (k, v) in map {
                env.insert(text(k), fill_secrets(&text(v), &setting.secrets));
            }
        }
        let done = setting.run_step(runner_home.path(), &run, &env);
        assert_eq!(
            done.code,
            0,
            "step `{}` failed:\n{}",
            field(step, "name"),
            done.all()
        );
        setting.assert_no_secret_in(&done.all());
        ran.push(field(step, "name"));
    }
    assert_eq!(ran, ["Trust the hosts", "Deploy this commit"]);
    setting.wait_serving("2");
    assert_eq!(setting.last_deployer(), "octocat via github-actions");
}

#[test]
fn the_gitlab_job_deploys_as_written() {
    require_sshd!();
    let setting = Setting::new();
    let sha = setting.repo.commit_file("VERSION", "2\n", "version 2");
    let pipeline = example("gitlab-ci.yml");
    let job = &pipeline["deploy-production"];
    let lines: Vec<String> = seq(&job["before_script"])
        .into_iter()
        .chain(seq(&job["script"]))
        .map(text)
        .filter(|l| !l.starts_with("apt-get") && !l.starts_with("cargo install"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    // GitLab hands every CI/CD variable to the job's shell as it is.
    let mut env = setting.secrets.clone();
    env.insert("CI_COMMIT_SHA".into(), sha);
    env.insert("GITLAB_USER_LOGIN".into(), "alice".into());
    let runner_home = tempfile::tempdir().unwrap();
    let done = setting.run_step(runner_home.path(), &lines.join("\n"), &env);
    assert_eq!(done.code, 0, "the job failed:\n{}", done.all());
    setting.assert_no_secret_in(&done.all());
    setting.wait_serving("2");
    assert_eq!(setting.last_deployer(), "alice via gitlab-ci");
}
