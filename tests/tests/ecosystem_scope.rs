//! A deploy environment with problems — here the template `pm2 init` writes — stops only the
//! commands that use it: the agent starts the file's apps, `pmfleet deploy staging` goes to its
//! host, and only `pmfleet deploy production` is refused (exit 2), naming every problem.

use std::process::Command;

use pmfleet_testkit::AgentHome;

#[test]
fn a_template_production_stops_neither_the_apps_nor_staging() {
    let agent = AgentHome::with_binary(pmfleet_testkit::binaries::agent_bin());
    let dir = agent.work.path();
    agent.write("server.js", "setInterval(() => {}, 1 << 30);\n");
    let root = dir.join("staging-root");
    agent.write(
        "ecosystem.json",
        &format!(
            r#"{{
  // pm2 init's deploy block, never filled in
  apps: [{{ name: 'web', script: 'server.js' }}],
  deploy: {{
    production: {{ user: 'SSH_USERNAME', host: 'SSH_HOSTMACHINE', ref: 'origin/master',
                  repo: 'GIT_REPOSITORY', path: 'DESTINATION_PATH' }},
    staging: {{ host: 'localhost', ref: 'main', repo: {dir:?}, path: {root:?}, agent: false }},
  }},
}}
"#
        ),
    );

    let started = agent.ok(&["start", "ecosystem.json"]);
    assert!(started.contains("web: started"), "{started}");
    agent.wait_online("web", 1);

    let pmfleet = |args: &[&str]| {
        Command::new(pmfleet_testkit::binaries::pmfleet_bin())
            .args(args)
            .current_dir(dir)
            .env("HOME", dir)
            .env("CI", "true")
            .output()
            .expect("run pmfleet")
    };
    let staging = pmfleet(&["deploy", "staging", "list"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&staging.stdout),
        String::from_utf8_lossy(&staging.stderr)
    );
    // It reached its host (which is not set up yet): production's problems did not stop it.
    assert_eq!(staging.status.code(), Some(1), "{said}");
    assert!(
        said.contains("not set up: run `pmfleet deploy staging setup` first"),
        "{said}"
    );
    assert!(
        said.contains("environment `production` cannot be used"),
        "{said}"
    );

    let production = pmfleet(&["deploy", "production", "list"]);
    let said = String::from_utf8_lossy(&production.stderr).into_owned();
    assert_eq!(production.status.code(), Some(2), "{said}");
    assert!(said.contains("has 4 problems"), "{said}");
    for field in ["user", "host", "repo", "path"] {
        assert!(
            said.contains(&format!("deploy.production.{field}: `")),
            "{field}: {said}"
        );
    }
}
