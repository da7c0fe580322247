//! The ecosystem corpus: every file under `tests/corpus/valid` loads with the values checked
//! here, and every file under `tests/corpus/invalid` fails (or warns) exactly as listed in
//! [`INVALID`]. A file without an entry, or an entry without a file, fails the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pmfleet_shared::ecosystem::{
    self, Batch, Diagnostic, Ecosystem, ExecMode, FetchMode, HostSpec, Instances, Interpreter,
    LoadError, NodeOptions, Severity, Watch,
};

fn corpus(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir)
}

fn files(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn load(dir: &str, name: &str) -> Result<Ecosystem, LoadError> {
    ecosystem::load(&corpus(dir).join(name))
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// valid/

#[test]
fn full_file_is_the_same_in_every_format() {
    let json = load("valid", "full.json").unwrap();
    let yaml = load("valid", "full.yml").unwrap();
    let js = load("valid", "full.config.js").unwrap();
    assert!(json.warnings.is_empty(), "{:?}", json.warnings);
    assert!(yaml.warnings.is_empty(), "{:?}", yaml.warnings);
    assert!(js.warnings.is_empty(), "{:?}", js.warnings);
    assert_eq!(json.apps, yaml.apps);
    assert_eq!(json.apps, js.apps);
    assert_eq!(json.deploy, yaml.deploy);
    assert_eq!(json.deploy, js.deploy);
    assert!(json.source.is_absolute());
    assert!(js.source.ends_with("full.config.js"));
}

#[test]
fn full_file_apps() {
    let e = load("valid", "full.json").unwrap();
    assert_eq!(e.apps.len(), 2);

    let api = e.app("api").unwrap();
    assert_eq!(api.script, "dist/server.js");
    assert_eq!(api.args, vec!["--color", "two words"]);
    assert_eq!(api.interpreter, Interpreter::Auto);
    assert_eq!(api.interpreter_args, vec!["--max-old-space-size=512"]);
    assert_eq!(api.instances, Instances::Max);
    assert_eq!(api.exec_mode, ExecMode::Cluster);
    assert_eq!(api.port, Some(3000));
    assert_eq!(api.max_memory_restart, Some(300 * 1024 * 1024));
    assert_eq!(api.min_uptime, Duration::from_secs(5));
    assert_eq!(api.kill_timeout, Duration::from_secs(8));
    assert_eq!(api.listen_timeout, Duration::from_secs(10));
    assert!(api.wait_ready);
    assert_eq!(
        api.healthcheck,
        Some(pmfleet_shared::protocol::HealthCheck::legacy("/health"))
    );
    assert_eq!(api.stop_exit_codes, vec![0]);
    assert_eq!(api.out_file.as_deref(), Some(Path::new("logs/api.out.log")));
    assert_eq!(
        api.error_file.as_deref(),
        Some(Path::new("logs/api.err.log"))
    );
    assert!(api.merge_logs);
    assert!(api.time);
    assert_eq!(
        api.env,
        env(&[("NODE_ENV", "development"), ("WORKERS", "2")])
    );
    assert_eq!(
        api.env_by_name["production"],
        env(&[("NODE_ENV", "production"), ("SENTRY", "true")])
    );
    // PM2's defaults where the file is silent.
    assert!(api.autorestart);
    assert_eq!(api.max_restarts, 16);
    assert_eq!(api.kill_signal, "SIGINT");
    assert_eq!(api.instance_var, "NODE_APP_INSTANCE");
    assert_eq!(api.namespace, "default");

    let worker = &e.apps[1];
    assert_eq!(worker.name, "worker", "named after the script");
    assert_eq!(worker.interpreter, Interpreter::Program("python3".into()));
    assert_eq!(worker.instances, Instances::Count(1));
    assert_eq!(worker.exec_mode, ExecMode::Fork);
    assert_eq!(worker.max_restarts, 5);
    assert_eq!(worker.restart_delay, Duration::from_secs(1));
    assert_eq!(
        worker.exp_backoff_restart_delay,
        Some(Duration::from_millis(100))
    );
    assert_eq!(worker.cron_restart.as_deref(), Some("0 4 * * *"));
    assert_eq!(
        worker.watch,
        Watch::Paths(vec!["src".into(), "config".into()])
    );
    assert_eq!(worker.ignore_watch, vec!["src/tmp"]);
    assert_eq!(worker.namespace, "jobs");
}

#[test]
fn full_file_deploy() {
    let e = load("valid", "full.yml").unwrap();
    let prod = e.environment("production").unwrap();
    assert_eq!(prod.name, "production");
    assert_eq!(
        prod.hosts,
        vec![
            HostSpec {
                host: "web1.example.com".into(),
                port: Some(22),
                user: Some("deploy".into())
            },
            HostSpec {
                host: "web2.example.com".into(),
                port: Some(2222),
                user: Some("deploy".into())
            },
            HostSpec {
                host: "10.0.0.3".into(),
                port: Some(22),
                user: Some("ops".into())
            },
        ]
    );
    assert_eq!(
        prod.key.as_deref(),
        Some(Path::new("/home/ci/.ssh/deploy_ed25519"))
    );
    assert_eq!(
        prod.ssh_options,
        vec!["StrictHostKeyChecking=yes", "ServerAliveInterval=15"]
    );
    assert_eq!(prod.git_ref, "origin/main");
    assert_eq!(prod.repo, "git@github.com:acme/shop.git");
    assert_eq!(prod.path, "/var/www/shop");
    assert_eq!(prod.hooks.pre_setup.as_deref(), Some("mkdir -p /var/www"));
    assert_eq!(prod.hooks.post_setup.as_deref(), Some("ls -la"));
    assert_eq!(
        prod.hooks.pre_deploy_local.as_deref(),
        Some("echo deploying")
    );
    assert_eq!(prod.hooks.pre_deploy.as_deref(), Some("git status"));
    assert_eq!(
        prod.hooks.post_deploy.as_deref(),
        Some("npm ci && npm run build")
    );
    assert_eq!(
        prod.env,
        env(&[("NODE_ENV", "production"), ("REGION", "eu-west-1")])
    );
    assert_eq!(prod.keep_releases, 10);
    assert_eq!(prod.shared_dirs, vec!["logs", "uploads"]);
    assert_eq!(prod.shared_files, vec![".env"]);
    assert_eq!(prod.fetch, FetchMode::Push);
    assert_eq!(prod.batch, Batch::Percent(25));
    assert_eq!(prod.max_fail, 1);

    let staging = e.environment("staging").unwrap();
    assert_eq!(
        staging.hosts,
        vec![HostSpec {
            host: "staging.example.com".into(),
            port: None,
            user: None
        }]
    );
    assert_eq!(staging.path, "~/shop");
    assert_eq!(staging.keep_releases, ecosystem::DEFAULT_KEEP_RELEASES);
    assert_eq!(staging.fetch, FetchMode::Host);
    assert_eq!(staging.batch, Batch::All);
    assert_eq!(staging.max_fail, 0);
    assert_eq!(staging.hooks, Default::default());

    // deploy.<env>.env < env < env_<env>
    let api = e.app("api").unwrap();
    let resolved = api.resolved_env(Some(&prod.env), Some("production"));
    assert_eq!(
        resolved,
        env(&[
            ("NODE_ENV", "production"),
            ("PORT", "3000"),
            ("REGION", "eu-west-1"),
            ("SENTRY", "true"),
            ("WORKERS", "2"),
        ])
    );
}

#[test]
fn es_module() {
    let e = load("valid", "esm.config.mjs").unwrap();
    assert_eq!(e.apps[0].name, "server");
    assert_eq!(e.apps[0].instances, Instances::Count(2));
    assert_eq!(
        e.apps[0].exec_mode,
        ExecMode::Fork,
        "an explicit exec_mode wins"
    );
    assert_eq!(
        e.environment("production").unwrap().repo,
        "https://example.com/shop.git"
    );
}

#[test]
fn commonjs_with_apps_only() {
    let e = load("valid", "apps-only.cjs").unwrap();
    assert!(e.deploy.is_empty());
    let job = &e.apps[0];
    assert_eq!(job.name, "cron-job");
    assert_eq!(job.interpreter, Interpreter::None);
    assert!(!job.autorestart);
    assert_eq!(job.cron_restart.as_deref(), Some("@hourly"));
}

#[test]
fn yaml_anchors_and_merge_keys() {
    let e = load("valid", "anchors.yaml").unwrap();
    let prod = e.environment("production").unwrap();
    let staging = e.environment("staging").unwrap();
    assert_eq!(prod.hosts.len(), 2);
    assert_eq!(prod.hosts[0].user.as_deref(), Some("deploy"));
    assert_eq!(
        staging.hosts[0].user.as_deref(),
        Some("stage"),
        "a key in the mapping wins over the merged one"
    );
    assert_eq!(prod.path, staging.path);
    assert_eq!(
        prod.hooks.post_deploy.as_deref(),
        Some("npm ci && npm run build")
    );
}

#[test]
fn every_valid_file_is_checked() {
    assert_eq!(
        files("valid"),
        vec![
            "anchors.yaml",
            "apps-only.cjs",
            "esm.config.mjs",
            "full.config.js",
            "full.json",
            "full.yml"
        ]
    );
    for name in files("valid") {
        let e = load("valid", &name).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(e.warnings.is_empty(), "{name}: {:?}", e.warnings);
    }
}

// ---------------------------------------------------------------------------------------------
// invalid/

/// One expected diagnostic: field path, line:column (None for JavaScript), and a piece of
/// the message or hint.
struct Diag {
    field: &'static str,
    at: Option<(usize, usize)>,
    says: &'static str,
}

const fn d(field: &'static str, at: (usize, usize), says: &'static str) -> Diag {
    Diag {
        field,
        at: Some(at),
        says,
    }
}

const fn js(field: &'static str, says: &'static str) -> Diag {
    Diag {
        field,
        at: None,
        says,
    }
}

enum Expect {
    /// Loading fails with exactly these errors, in this order (the apps' and the file's:
    /// problems in a `deploy` environment are the environment's, see `Broken`).
    Errors(&'static [Diag]),
    /// The file loads (the apps can start), with one warning naming `env`, and asking for
    /// `deploy.<env>` fails with exactly these errors.
    Broken {
        env: &'static str,
        errors: &'static [Diag],
    },
    /// Loading succeeds with exactly these warnings.
    Warnings(&'static [Diag]),
    /// node could not evaluate the file; stderr says this.
    NodeFailed(&'static str),
    /// The file loads, but asking for `asked` lists the environments that exist.
    UnknownEnvironment {
        asked: &'static str,
        known: &'static [&'static str],
        suggestion: Option<&'static str>,
    },
}

const INVALID: &[(&str, Expect)] = &[
    (
        "bad_env_key.json",
        Expect::Errors(&[
            d(
                "apps[0].env[\"\"]",
                (5, 35),
                "an environment variable needs a name",
            ),
            d(
                "apps[0].env_production[\"A=B\"]",
                (6, 27),
                "`A=B` is not a valid environment variable name",
            ),
        ]),
    ),
    (
        "bad_port.json",
        Expect::Broken {
            env: "production",
            errors: &[d(
                "deploy.production.port",
                (5, 15),
                "expected a port number (1-65535), found \"abc\"",
            )],
        },
    ),
    (
        "bad_values.config.js",
        Expect::Errors(&[
            js("apps[0].port", "found \"http\""),
            js("apps[0].exec_mode", "did you mean `cluster`?"),
        ]),
    ),
    (
        "broken_environment.yml",
        Expect::Broken {
            env: "production",
            errors: &[
                d("deploy.production.host[0]", (4, 9), "use `port: 422`"),
                d("deploy.production.host[1]", (5, 9), "use `port: 2222`"),
                d("deploy.production.host[2]", (6, 9), "starts with `-`"),
                d("deploy.production.host[3].port", (7, 29), "found 70000"),
                d(
                    "deploy.production.ref",
                    (8, 10),
                    "expected a string, found an array",
                ),
                d("deploy.production.path", (10, 11), "must be absolute"),
                d("deploy.production.env.NESTED", (13, 15), "found an object"),
                d("deploy.production.keep_releases", (14, 20), "found 0"),
                d("deploy.production.batch", (15, 12), "found \"150%\""),
            ],
        },
    ),
    (
        "duplicates.yml",
        Expect::Errors(&[d("apps[1].name", (4, 11), "two apps are named `api`")]),
    ),
    (
        "host_dash.json",
        Expect::Broken {
            env: "production",
            errors: &[
                d("deploy.production.user", (4, 15), "starts with `-`"),
                d("deploy.production.host[1]", (5, 24), "starts with `-`"),
                d(
                    "deploy.production.host[2]",
                    (5, 55),
                    "set `user: \"deploy\"`",
                ),
                d("deploy.production.host[3]", (5, 70), "contains a space"),
                d("deploy.production.ref", (6, 14), "starts with `-`"),
                d("deploy.production.repo", (7, 15), "starts with `-`"),
            ],
        },
    ),
    (
        "many_errors.json",
        Expect::Errors(&[
            d("apps[0].instances", (3, 43), "found an array"),
            d("apps[0].max_memory_restart", (3, 70), "found \"1T\""),
            d("apps[1]", (4, 5), "missing required key `script`"),
            d("apps[1].kill_signal", (4, 40), "did you mean `SIGTERM`?"),
        ]),
    ),
    (
        "missing_required.json",
        Expect::Errors(&[d("apps[0]", (3, 5), "missing required key `script`")]),
    ),
    (
        "not_an_object.mjs",
        Expect::NodeFailed("must export an object"),
    ),
    (
        "pm2_in_hooks.json",
        Expect::Warnings(&[
            d(
                "deploy.production.post-deploy",
                (9, 22),
                "move the PM2 call to `published`",
            ),
            js(
                "deploy.production.published",
                "give the app `cwd: \"/var/www/shop/current\"`",
            ),
        ]),
    ),
    (
        "pm2_in_hooks.yml",
        Expect::Warnings(&[d(
            "deploy.production.post-deploy",
            (11, 18),
            "the hosts skip that call and say so",
        )]),
    ),
    (
        "pm2_unimplemented.yml",
        Expect::Warnings(&[
            d(
                "apps[0].vizion",
                (3, 5),
                "`vizion` is a PM2 setting that pmfleet does not implement",
            ),
            d("apps[0].pid_file", (4, 5), "no pid files are written"),
            d(
                "deploy.production.forward-agent",
                (11, 5),
                "`forward-agent` is a PM2 setting",
            ),
        ]),
    ),
    (
        "published_with_agent.config.js",
        Expect::Broken {
            env: "production",
            errors: &[js(
                "deploy.production.published",
                "`published` is for `agent: false` environments",
            )],
        },
    ),
    (
        "relative_path.yml",
        Expect::Broken {
            env: "production",
            errors: &[
                d(
                    "deploy.production.path",
                    (6, 11),
                    "path must be absolute or start with `~/`, found \"var/www/shop\"",
                ),
                d(
                    "deploy.production.shared_dirs[1]",
                    (9, 9),
                    "must be relative, not absolute",
                ),
                d(
                    "deploy.production.shared_dirs[2]",
                    (10, 9),
                    "must not contain `..`",
                ),
            ],
        },
    ),
    ("syntax_error.config.js", Expect::NodeFailed("SyntaxError")),
    (
        "syntax_error.json",
        Expect::Errors(&[d("", (5, 3), "expected `,` or `}` after an object member")]),
    ),
    (
        "syntax_error.yml",
        Expect::Errors(&[d("", (5, 6), "invalid YAML")]),
    ),
    (
        "unknown_environment.yml",
        Expect::UnknownEnvironment {
            asked: "prod",
            known: &["production", "staging"],
            suggestion: Some("production"),
        },
    ),
    (
        "unknown_keys.yml",
        Expect::Warnings(&[
            d("apps[0].isntances", (3, 5), "did you mean `instances`?"),
            d(
                "deploy.production.post_deploy",
                (10, 5),
                "did you mean `post-deploy`?",
            ),
            d("deploy.production.hots", (11, 5), "did you mean `host`?"),
        ]),
    ),
    (
        "wrong_types.yml",
        Expect::Errors(&[
            d(
                "apps[0].autorestart",
                (3, 18),
                "expected true or false, found \"maybe\"",
            ),
            d(
                "apps[0].env",
                (4, 10),
                "expected an object, found \"production\"",
            ),
            d("apps[0].watch", (5, 12), "found 3"),
        ]),
    ),
];

fn check(name: &str, severity: Severity, got: &[Diagnostic], want: &[Diag]) {
    let listing = got.iter().map(|d| format!("\n  {d}")).collect::<String>();
    assert_eq!(got.len(), want.len(), "{name}: got{listing}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.severity, severity, "{name}: {g}");
        assert_eq!(g.field, w.field, "{name}: {g}");
        assert_eq!(g.location, w.at, "{name}: {g}");
        let text = format!("{} {}", g.message, g.hint.as_deref().unwrap_or(""));
        assert!(text.contains(w.says), "{name}: `{}` not in: {g}", w.says);
        assert!(g.file.ends_with(name), "{name}: {}", g.file.display());
        // The printed form names the file, the position and the field.
        let printed = g.to_string();
        if let Some((line, col)) = w.at {
            assert!(
                printed.contains(&format!("{name}:{line}:{col}: ")),
                "{printed}"
            );
        }
        assert!(printed.contains(w.field), "{printed}");
    }
}

#[test]
fn invalid_corpus() {
    let listed: Vec<&str> = INVALID.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        files("invalid"),
        listed,
        "every invalid file needs an entry in INVALID, and the other way round"
    );
    assert!(INVALID.len() >= 12);

    for (name, expect) in INVALID {
        let result = load("invalid", name);
        match (expect, result) {
            (Expect::Errors(want), Err(LoadError::Invalid { file, diagnostics })) => {
                assert!(file.ends_with(name));
                let errors: Vec<Diagnostic> = diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .cloned()
                    .collect();
                check(name, Severity::Error, &errors, want);
                // Display prints every one of them, one per line.
                let text = LoadError::Invalid {
                    file,
                    diagnostics: diagnostics.clone(),
                }
                .to_string();
                assert_eq!(text.lines().count(), diagnostics.len() + 1, "{text}");
            }
            (Expect::Warnings(want), Ok(e)) => check(name, Severity::Warning, &e.warnings, want),
            (Expect::Broken { env, errors }, Ok(e)) => {
                assert!(e.deploy.is_empty(), "{name}");
                assert_eq!(e.warnings.len(), 1, "{name}: {:#?}", e.warnings);
                let w = &e.warnings[0];
                assert_eq!(w.field, format!("deploy.{env}"), "{name}: {w}");
                assert!(w.message.contains("cannot be used"), "{name}: {w}");
                assert_eq!(e.errors().len(), errors.len(), "{name}");
                match e.environment(env) {
                    Err(LoadError::Invalid { diagnostics, .. }) => {
                        let got: Vec<Diagnostic> =
                            diagnostics.into_iter().filter(|d| d.is_error()).collect();
                        check(name, Severity::Error, &got, errors);
                    }
                    other => panic!("{name}: {other:?}"),
                }
            }
            (Expect::NodeFailed(says), Err(LoadError::NodeFailed { path, stderr })) => {
                assert!(path.ends_with(name));
                assert!(stderr.contains(says), "{name}: {stderr}");
            }
            (
                Expect::UnknownEnvironment {
                    asked,
                    known,
                    suggestion,
                },
                Ok(e),
            ) => match e.environment(asked) {
                Err(err @ LoadError::UnknownEnvironment { .. }) => {
                    let text = err.to_string();
                    let LoadError::UnknownEnvironment {
                        known: k,
                        suggestion: s,
                        ..
                    } = err
                    else {
                        unreachable!()
                    };
                    assert_eq!(k, *known, "{name}");
                    assert_eq!(s.as_deref(), *suggestion, "{name}");
                    for env in *known {
                        assert!(text.contains(env), "{text}");
                    }
                }
                other => panic!("{name}: {other:?}"),
            },
            (_, other) => panic!("{name}: unexpected {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// node

#[test]
fn javascript_without_node_is_a_clear_error() {
    let no_node = tempfile::tempdir().unwrap();
    let options = NodeOptions {
        search_path: Some(no_node.path().as_os_str().to_owned()),
        ..NodeOptions::default()
    };
    let path = corpus("valid").join("full.config.js");
    match ecosystem::load_with_node(&path, &options) {
        Err(err @ LoadError::NodeMissing { .. }) => {
            let text = err.to_string();
            assert!(
                text.contains("node is needed to read a .js ecosystem file"),
                "{text}"
            );
            assert!(
                text.contains("install Node.js or use ecosystem.json/.yml"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    // JSON and YAML never need node.
    assert!(ecosystem::load_with_node(&corpus("valid").join("full.json"), &options).is_ok());
}

#[test]
fn a_missing_file_is_an_io_error() {
    for name in ["nope.json", "nope.config.js"] {
        match ecosystem::load(&corpus("valid").join(name)) {
            Err(LoadError::Io { path, .. }) => assert!(path.ends_with(name)),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn discovery_finds_the_corpus_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        corpus("valid").join("full.yml"),
        dir.path().join("ecosystem.yml"),
    )
    .unwrap();
    std::fs::copy(
        corpus("valid").join("full.config.js"),
        dir.path().join("ecosystem.config.js"),
    )
    .unwrap();
    let found = ecosystem::discover(dir.path()).unwrap();
    assert_eq!(
        found,
        dir.path().join("ecosystem.yml"),
        "PM2 looks at YAML before JavaScript"
    );
    let e = ecosystem::load(&found).unwrap();
    assert_eq!(e.deploy.len(), 2);
    assert!(ecosystem::looks_like_ecosystem_file("ecosystem.config.js"));
    assert!(!ecosystem::looks_like_ecosystem_file("production"));
}

// ---------------------------------------------------------------------------------------------
// docs/ecosystem.md

/// The fenced blocks of `lang` in the reference page.
fn doc_blocks(lang: &str) -> Vec<String> {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ecosystem.md"))
            .unwrap();
    let fence = format!("```{lang}\n");
    page.split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_reference_examples_load_and_agree() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = Vec::new();
    for (lang, file) in [
        ("json", "ecosystem.json"),
        ("yaml", "ecosystem.yml"),
        ("js", "ecosystem.config.js"),
    ] {
        let blocks = doc_blocks(lang);
        assert_eq!(blocks.len(), 1, "one {lang} example");
        let path = dir.path().join(file);
        std::fs::write(&path, &blocks[0]).unwrap();
        let e = ecosystem::load(&path).unwrap_or_else(|err| panic!("{file}: {err}"));
        assert!(e.warnings.is_empty(), "{file}: {:?}", e.warnings);
        loaded.push(e);
    }
    for e in &loaded[1..] {
        assert_eq!(e.apps, loaded[0].apps);
        assert_eq!(e.deploy, loaded[0].deploy);
    }
    let prod = loaded[0].environment("production").unwrap();
    assert_eq!(prod.hosts.len(), 3);
    assert_eq!(prod.hosts[1].port, Some(2222));
}
