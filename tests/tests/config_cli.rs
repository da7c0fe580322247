//! `pmfleet config`: the real binary checks and prints an ecosystem file — environments with
//! their hosts, ref, paths, hooks and masked environment, the apps as they will run — without
//! touching a host (a listener standing in for the hosts' SSH port never sees a connection),
//! and exits 2 when what was asked for cannot be used.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn config(dir: &Path, args: &[&str]) -> Output {
    Command::new(pmfleet_testkit::binaries::pmfleet_bin())
        .arg("config")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("run pmfleet config")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A project whose production hosts are this test's own listener.
fn project(port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let file = format!(
        r#"// a PM2 file with comments and bare keys
module.exports = {{
  apps: [{{
    name: 'api', script: 'server.js', instances: 'max', port: 3000,
    env: {{ NODE_ENV: 'development', DB_PASSWORD: 'hunter2-app' }},
    env_production: {{ NODE_ENV: 'production', STRIPE_SECRET_KEY: 'sk-live-xyz' }},
  }}],
  deploy: {{
    production: {{
      user: 'deploy',
      host: ['127.0.0.1', {{ host: 'localhost.localdomain', port: {port}, user: 'ops' }}],
      port: {port},
      ref: 'origin/main',
      repo: 'https://ci:repo-pass@git.example.com/acme/shop.git',
      path: '/var/www/shop',
      'post-deploy': 'npm ci && npm run build',
      env: {{ DATABASE_URL: 'postgres://shop:db-pass@db/shop', REGION: 'eu-west-1' }},
    }},
    staging: {{
      user: 'SSH_USERNAME', host: 'SSH_HOSTMACHINE', ref: 'origin/master',
      repo: 'GIT_REPOSITORY', path: 'DESTINATION_PATH',
    }},
  }},
}};
"#
    );
    std::fs::write(dir.path().join("ecosystem.config.js"), file).unwrap();
    dir
}

const SECRETS: [&str; 4] = ["hunter2-app", "sk-live-xyz", "repo-pass", "db-pass"];

#[test]
fn config_prints_an_environment_with_its_secrets_masked_and_touches_no_host() {
    let hosts = TcpListener::bind("127.0.0.1:0").unwrap();
    hosts.set_nonblocking(true).unwrap();
    let port = hosts.local_addr().unwrap().port();
    let dir = project(port);

    let out = config(dir.path(), &["production"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    for want in [
        "deploy.production",
        &format!("deploy@127.0.0.1:{port}"),
        &format!("ops@localhost.localdomain:{port}"),
        "origin/main",
        "/var/www/shop",
        "npm ci && npm run build",
        "REGION=eu-west-1",
        "DATABASE_URL=postgres://shop:********@db/shop",
        "NODE_ENV=production",
        "STRIPE_SECRET_KEY=********",
        "cluster × max (one per CPU), port 3000",
        "environment `staging` cannot be used",
    ] {
        assert!(shown.contains(want), "`{want}` not in:\n{shown}");
    }
    for secret in SECRETS {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }

    let out = config(dir.path(), &["ecosystem.config.js", "production", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let prod = &v["environments"][0];
    assert_eq!(prod["name"], "production");
    assert_eq!(prod["hosts"][1]["user"], "ops");
    assert_eq!(prod["hosts"][1]["port"], port);
    assert_eq!(prod["ref"], "origin/main");
    assert_eq!(prod["hooks"]["post-deploy"], "npm ci && npm run build");
    assert_eq!(v["apps"][0]["env"]["DB_PASSWORD"], "********");
    assert_eq!(v["apps"][0]["env"]["REGION"], "eu-west-1");
    assert_eq!(v["errors"], serde_json::json!([]));
    for secret in SECRETS {
        assert!(!text(&out).contains(secret), "{secret} in the JSON");
    }

    match hosts.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("pmfleet config connected to a host: {other:?}"),
    }
}

#[test]
fn config_exits_2_when_an_environment_cannot_be_used_and_names_every_problem() {
    let dir = project(22);
    let out = config(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("deploy.production"), "{shown}");
    for field in ["user", "host", "repo", "path"] {
        assert!(
            shown.contains(&format!("deploy.staging.{field}: `")),
            "staging.{field} not named:\n{shown}"
        );
    }
    assert!(
        shown.contains("placeholder of the file `pm2 init` writes"),
        "{shown}"
    );

    let out = config(dir.path(), &["staging", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(4), "{v:#}");
    assert_eq!(v["environments"], serde_json::json!([]));

    let out = config(dir.path(), &["prod"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("did you mean `production`?"),
        "{}",
        text(&out)
    );
}

#[test]
fn config_of_a_file_with_errors_says_where() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ecosystem.yml"),
        "apps:\n  - name: api\n    script: server.js\n    env:\n      A: 1\n     B: 2\n",
    )
    .unwrap();
    let out = config(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let shown = text(&out);
    assert!(shown.contains("ecosystem.yml:6:6: invalid YAML"), "{shown}");
    assert!(
        shown.contains("not indented like the keys above it"),
        "{shown}"
    );

    let out = config(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["errors"][0].as_str().unwrap().contains(":6:6:"), "{v:#}");

    std::fs::remove_file(dir.path().join("ecosystem.yml")).unwrap();
    let out = config(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("no ecosystem file in"),
        "{}",
        text(&out)
    );
}
