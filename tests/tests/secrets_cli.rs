//! `pmfleet secrets ENV`: the real binary lists the names an environment resolves, the file
//! and line declaring each, where its value comes from and which fields use it — never a
//! value, and without running a `$(command)` — and exits 2 when the ecosystem file names a
//! secret that no secrets file declares.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pmfleet_testkit::project::Project;
use serde_json::{Value, json};

/// A project whose production names `DB_PASSWORD` (an app) and `API_TOKEN` (deploy env),
/// with a base and a production secrets file. The `$(command)` would leave a mark if run.
fn project(home: &Path, extra_reference: bool) -> Project {
    let project = Project::new(home);
    let mut env = json!({"API_TOKEN": "secret:API_TOKEN", "NODE_ENV": "production"});
    if extra_reference {
        env["STRIPE_KEY"] = json!("secret:STRIPE_KEY");
    }
    project.write_ecosystem(&json!({
        "apps": [{"name": "web", "script": "server.js",
                  "env": {"DB_PASSWORD": "secret:DB_PASSWORD"}}],
        "deploy": {"production": {
            "host": "127.0.0.1", "ref": "main", "repo": "/nowhere", "path": "/srv/app",
            "env": env,
        }}
    }));
    let dir = project.path().join(".pmfleet");
    std::fs::create_dir_all(&dir).unwrap();
    let mark = project.path().join("command-ran");
    std::fs::write(
        dir.join("secrets"),
        format!(
            "# every environment\nDB_PASSWORD=$(touch {} && echo pw)\nLITERAL_ONE=written-literal-value\n",
            mark.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("secrets.production"),
        "API_TOKEN=$CI_API_TOKEN\nLITERAL_ONE=\"prod-literal-value\"\n",
    )
    .unwrap();
    std::fs::set_permissions(dir.join("secrets"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // Readable by others: warned about.
    std::fs::set_permissions(
        dir.join("secrets.production"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    project
}

#[test]
fn secrets_lists_names_and_sources_never_values_nor_runs_commands() {
    let home = tempfile::tempdir().unwrap();
    let project = project(home.path(), false);
    let listed = project.pmfleet(&["secrets", "production"]);
    assert_eq!(listed.code, 0, "{}", listed.all());
    let all = listed.all();
    for expected in [
        "DB_PASSWORD",
        ".pmfleet/secrets:2",
        "$(touch",
        "apps[0].env.DB_PASSWORD",
        "API_TOKEN",
        ".pmfleet/secrets.production:1",
        "$CI_API_TOKEN",
        "deploy.production.env.API_TOKEN",
        "LITERAL_ONE",
        ".pmfleet/secrets.production:2",
        "text written in the file",
        "(not used)",
        "can be read by other users",
    ] {
        assert!(all.contains(expected), "missing {expected:?}:\n{all}");
    }
    for value in ["written-literal-value", "prod-literal-value", "pw\n"] {
        assert!(!all.contains(value), "printed {value:?}:\n{all}");
    }
    assert!(
        !project.path().join("command-ran").exists(),
        "listing ran a $(command)"
    );

    let json = project.pmfleet(&["secrets", "production", "--json"]);
    assert_eq!(json.code, 0, "{}", json.all());
    let doc: Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    let names: Vec<&str> = doc["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["DB_PASSWORD", "LITERAL_ONE", "API_TOKEN"]);
    let token = &doc["secrets"][2];
    assert_eq!(token["source"], "$CI_API_TOKEN");
    assert_eq!(token["line"], 1);
    assert_eq!(token["used_by"], json!(["deploy.production.env.API_TOKEN"]));
    assert_eq!(doc["missing"], json!([]));
    assert!(!json.stdout.contains("literal-value"), "{}", json.stdout);
}

#[test]
fn secrets_exits_2_naming_a_secret_no_file_declares() {
    let home = tempfile::tempdir().unwrap();
    let project = project(home.path(), true);
    let listed = project.pmfleet(&["secrets", "production"]);
    assert_eq!(listed.code, 2, "{}", listed.all());
    assert!(
        listed.stderr.contains("STRIPE_KEY") && listed.stderr.contains("deploy.production.env"),
        "{}",
        listed.all()
    );
    let json = project.pmfleet(&["secrets", "production", "--json"]);
    assert_eq!(json.code, 2, "{}", json.all());
    let doc: Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    assert_eq!(doc["missing"].as_array().map(Vec::len), Some(1), "{doc}");
}

#[test]
fn a_deploy_whose_secrets_cannot_be_resolved_stops_before_any_host_and_shows_no_value() {
    let home = tempfile::tempdir().unwrap();
    // The production hosts are this listener: it must never see a connection.
    let hosts = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    hosts.set_nonblocking(true).unwrap();
    let port = hosts.local_addr().unwrap().port();
    let project = Project::new(home.path());
    let write = |reference: &str| {
        project.write_ecosystem(&json!({
            "apps": [{"name": "web", "script": "server.js",
                      "env": {"DB_PASSWORD": "secret:DB_PASSWORD", "OTHER": reference}}],
            "deploy": {"production": {
                "host": "127.0.0.1", "port": port, "ref": "main", "repo": "/nowhere",
                "path": "/srv/app", "agent": false,
            }}
        }));
    };
    let dir = project.path().join(".pmfleet");
    std::fs::create_dir_all(&dir).unwrap();
    let secrets = |text: &str| std::fs::write(dir.join("secrets"), text).unwrap();

    // `$NAME` unset in the controller's environment.
    write("plain");
    secrets("DB_PASSWORD=$CI_DB_PASSWORD\n");
    let unset = project.pmfleet(&["deploy", "production"]);
    assert_eq!(unset.code, 2, "{}", unset.all());
    assert!(
        unset.stderr.contains(".pmfleet/secrets:1")
            && unset.stderr.contains("DB_PASSWORD")
            && unset.stderr.contains("$CI_DB_PASSWORD"),
        "{}",
        unset.all()
    );

    // A failing `$(command)`: how it ended, never what it printed.
    // (What it prints is not in its text, which may be shown.)
    secrets("DB_PASSWORD=$(printf '%s%s' printed- sentinel-4411; exit 3)\n");
    let failed = project.pmfleet(&["deploy", "production"]);
    assert_eq!(failed.code, 2, "{}", failed.all());
    assert!(failed.stderr.contains("DB_PASSWORD"), "{}", failed.all());
    assert!(
        !failed.all().contains("printed-sentinel-4411"),
        "{}",
        failed.all()
    );

    // A name no file declares.
    secrets("DB_PASSWORD=long-enough-value\n");
    write("secret:NOT_DECLARED");
    let missing = project.pmfleet(&["deploy", "production"]);
    assert_eq!(missing.code, 2, "{}", missing.all());
    assert!(
        missing.stderr.contains("NOT_DECLARED") && missing.stderr.contains("apps[0].env.OTHER"),
        "{}",
        missing.all()
    );
    assert!(
        !missing.all().contains("long-enough-value"),
        "{}",
        missing.all()
    );

    match hosts.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a host was contacted: {other:?}"),
    }
}
