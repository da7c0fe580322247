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
