//! The PM2 corpus (`tests/corpus/pm2`, the files the differential suite also runs through PM2 7
//! itself): what pmfleet reads in each file — the quirks real PM2 files have, valid and
//! refused — and that each file means the same written as JSON, YAML or JavaScript.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use pmfleet_shared::ecosystem::{
    self, App, Ecosystem, ExecMode, Instances, Interpreter, LoadError, Watch,
};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/pm2")
}

/// The ecosystem files of the corpus; the other files are the apps they start.
fn ecosystem_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            [
                ".json",
                ".yml",
                ".yaml",
                ".config.js",
                ".config.cjs",
                ".config.mjs",
            ]
            .iter()
            .any(|ext| n.ends_with(ext))
        })
        .collect();
    names.sort();
    names
}

/// A copy of the corpus file in `dir`, its `__PORTn__` placeholders made ports (the
/// differential suite makes them free ports).
fn copy(dir: &Path, name: &str) -> PathBuf {
    let mut text = std::fs::read_to_string(corpus().join(name)).unwrap();
    for n in 1..=9 {
        text = text.replace(&format!("__PORT{n}__"), &(3000 + n).to_string());
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load(name: &str) -> Result<Ecosystem, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    ecosystem::load(&copy(dir.path(), name))
}

/// Every value of a loaded file as `path = value` lines: what the expectations below pick from.
fn flatten(e: &Ecosystem) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (i, a) in e.apps.iter().enumerate() {
        for (k, v) in app_fields(a) {
            out.insert(format!("apps[{i}].{k}"), v);
        }
    }
    for (name, env) in &e.deploy {
        let hosts: Vec<String> = env
            .hosts
            .iter()
            .map(|h| {
                format!(
                    "{}{}{}",
                    h.user
                        .as_deref()
                        .map(|u| format!("{u}@"))
                        .unwrap_or_default(),
                    h.host,
                    h.port.map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
            .collect();
        out.insert(format!("deploy.{name}.hosts"), hosts.join(" "));
        out.insert(format!("deploy.{name}.path"), env.path.clone());
        for (k, v) in &env.env {
            out.insert(format!("deploy.{name}.env.{k}"), v.clone());
        }
    }
    for (name, diags) in &e.broken_environments {
        let errors = diags.iter().filter(|d| d.is_error()).count();
        out.insert(format!("broken.{name}"), errors.to_string());
    }
    if !e.deploy_errors.is_empty() {
        out.insert(
            "broken.deploy".to_owned(),
            e.deploy_errors.len().to_string(),
        );
    }
    out
}

fn app_fields(a: &App) -> Vec<(String, String)> {
    let ms = |d: std::time::Duration| d.as_millis().to_string();
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let mut f = vec![
        ("name".to_owned(), a.name.clone()),
        ("script".to_owned(), a.script.clone()),
        ("args".to_owned(), format!("{:?}", a.args)),
        (
            "interpreter".to_owned(),
            match &a.interpreter {
                Interpreter::Auto => format!("auto:{}", a.interpreter_program().unwrap_or("self")),
                Interpreter::None => "none".to_owned(),
                Interpreter::Program(p) => p.clone(),
            },
        ),
        (
            "interpreter_args".to_owned(),
            format!("{:?}", a.interpreter_args),
        ),
        (
            "cwd".to_owned(),
            opt(a.cwd.as_ref().map(|c| c.display().to_string())),
        ),
        (
            "instances".to_owned(),
            match a.instances {
                Instances::Count(n) => n.to_string(),
                Instances::Max => "max".to_owned(),
                Instances::AllBut(n) => format!("-{n}"),
            },
        ),
        (
            "exec_mode".to_owned(),
            match a.exec_mode {
                ExecMode::Fork => "fork".to_owned(),
                ExecMode::Cluster => "cluster".to_owned(),
            },
        ),
        ("port".to_owned(), opt(a.port.map(|p| p.to_string()))),
        (
            "max_memory_restart".to_owned(),
            opt(a.max_memory_restart.map(|b| b.to_string())),
        ),
        ("autorestart".to_owned(), a.autorestart.to_string()),
        ("autostart".to_owned(), a.autostart.to_string()),
        ("max_restarts".to_owned(), a.max_restarts.to_string()),
        ("min_uptime".to_owned(), ms(a.min_uptime)),
        ("restart_delay".to_owned(), ms(a.restart_delay)),
        (
            "exp_backoff_restart_delay".to_owned(),
            opt(a.exp_backoff_restart_delay.map(ms)),
        ),
        (
            "stop_exit_codes".to_owned(),
            format!("{:?}", a.stop_exit_codes),
        ),
        ("kill_signal".to_owned(), a.kill_signal.clone()),
        ("kill_timeout".to_owned(), ms(a.kill_timeout)),
        ("listen_timeout".to_owned(), ms(a.listen_timeout)),
        ("wait_ready".to_owned(), a.wait_ready.to_string()),
        (
            "watch".to_owned(),
            match &a.watch {
                Watch::Off => "off".to_owned(),
                Watch::On => "on".to_owned(),
                Watch::Paths(p) => format!("{p:?}"),
            },
        ),
        ("ignore_watch".to_owned(), format!("{:?}", a.ignore_watch)),
        (
            "out_file".to_owned(),
            opt(a.out_file.as_ref().map(|p| p.display().to_string())),
        ),
        (
            "error_file".to_owned(),
            opt(a.error_file.as_ref().map(|p| p.display().to_string())),
        ),
        ("merge_logs".to_owned(), a.merge_logs.to_string()),
        ("log_date_format".to_owned(), opt(a.log_date_format.clone())),
        ("time".to_owned(), a.time.to_string()),
        ("instance_var".to_owned(), a.instance_var.clone()),
        ("increment_var".to_owned(), opt(a.increment_var.clone())),
        ("cron_restart".to_owned(), opt(a.cron_restart.clone())),
        ("namespace".to_owned(), a.namespace.clone()),
        (
            "append_env_to_name".to_owned(),
            a.append_env_to_name.to_string(),
        ),
    ];
    for (k, v) in &a.env {
        f.push((format!("env.{k}"), v.clone()));
    }
    for (name, env) in &a.env_by_name {
        for (k, v) in env {
            f.push((format!("env_{name}.{k}"), v.clone()));
        }
    }
    for (name, env) in &a.deploy_env_by_name {
        for (k, v) in env {
            f.push((format!("deploy_env.{name}.{k}"), v.clone()));
        }
    }
    f
}

/// What pmfleet makes of a corpus file.
enum Expect {
    /// It loads; each `(path, value)` is in [`flatten`]'s result, and there is one warning
    /// per text, each containing it.
    Loads {
        values: &'static [(&'static str, &'static str)],
        warnings: &'static [&'static str],
    },
    /// Loading fails; the error says this (and, for JSON and YAML, where: `line:col`).
    Refused(&'static str),
}

const fn loads(values: &'static [(&'static str, &'static str)]) -> Expect {
    Expect::Loads {
        values,
        warnings: &[],
    }
}

const EXPECT: &[(&str, Expect)] = &[
    (
        "alias-camel-case.json",
        loads(&[
            ("apps[0].max_memory_restart", "209715200"),
            ("apps[0].min_uptime", "3000"),
            ("apps[0].max_restarts", "7"),
            ("apps[0].restart_delay", "100"),
            ("apps[0].kill_timeout", "2500"),
            ("apps[0].listen_timeout", "4000"),
            ("apps[0].exec_mode", "fork"),
            ("apps[0].instance_var", "WORKER_ID"),
            ("apps[0].log_date_format", "YYYY-MM-DD"),
            ("apps[0].ignore_watch", "[\"tmp\"]"),
            ("apps[0].stop_exit_codes", "[0]"),
            ("apps[0].exp_backoff_restart_delay", "150"),
        ]),
    ),
    (
        "alias-cmd-command.yml",
        Expect::Loads {
            values: &[
                ("apps[0].script", "sleep.js"),
                ("apps[1].script", "worker.py"),
                ("apps[2].script", "sleep.js"),
            ],
            warnings: &["`exec` and `command` are the same setting; PM2 uses `command`"],
        },
    ),
    (
        "alias-cron.json",
        loads(&[
            ("apps[0].cron_restart", "0 3 * * *"),
            ("apps[1].cron_restart", "*/30 * * * *"),
            ("apps[2].cron_restart", "-"),
        ]),
    ),
    (
        "alias-error-files.json",
        Expect::Loads {
            values: &[
                ("apps[0].error_file", "logs/err.log"),
                ("apps[1].error_file", "logs/error.log"),
                ("apps[2].error_file", "logs/err_file.log"),
                ("apps[3].error_file", "logs/err_log.log"),
                ("apps[4].error_file", "logs/error_file.log"),
            ],
            warnings: &[
                "PM2 uses `err`, so `error` is ignored",
                "PM2 uses `err_file`, so `err` is ignored",
                "PM2 uses `err_log`, so `err_file` is ignored",
                "PM2 uses `error_file`, so `errorFile` is ignored",
            ],
        },
    ),
    ("alias-exec.json", loads(&[("apps[0].script", "sleep.js")])),
    (
        "alias-interpreter.yml",
        Expect::Loads {
            values: &[
                ("apps[0].interpreter", "bash"),
                ("apps[1].interpreter", "sh"),
            ],
            warnings: &["PM2 uses `exec_interpreter`, so `interpreter` is ignored"],
        },
    ),
    (
        "alias-merge-logs.yml",
        Expect::Loads {
            values: &[
                ("apps[0].merge_logs", "true"),
                ("apps[1].merge_logs", "true"),
                ("apps[2].merge_logs", "true"),
            ],
            warnings: &["PM2 reads `merge_logs` first but skips its empty, false or zero value"],
        },
    ),
    (
        "alias-node-args.json",
        Expect::Loads {
            values: &[
                ("apps[0].interpreter_args", "[\"--max-old-space-size=64\"]"),
                (
                    "apps[1].interpreter_args",
                    "[\"--no-deprecation\", \"--max-old-space-size=96\"]",
                ),
                ("apps[2].interpreter_args", "[\"--no-warnings\"]"),
                ("apps[3].interpreter_args", "[\"--no-warnings\"]"),
            ],
            warnings: &[
                "PM2 uses `node_args`, so `interpreter_args` is ignored",
                "skips its empty, false or zero value and uses `interpreter_args`",
            ],
        },
    ),
    (
        "alias-out-files.config.js",
        Expect::Loads {
            values: &[
                ("apps[0].out_file", "logs/out.log"),
                ("apps[1].out_file", "logs/output.log"),
                ("apps[2].out_file", "logs/out_log.log"),
                ("apps[3].out_file", "logs/out_file.log"),
            ],
            warnings: &[
                "PM2 uses `output`, so `out` is ignored",
                "PM2 uses `out_log`, so `outFile` is ignored",
                "PM2 uses `out_file`, so `output` is ignored",
            ],
        },
    ),
    (
        "alias-script-and-exec.json",
        Expect::Loads {
            values: &[("apps[0].script", "sleep.js")],
            warnings: &["PM2 uses `script`, so `exec` is ignored"],
        },
    ),
    (
        "commonjs.config.cjs",
        loads(&[
            ("apps[0].name", "a"),
            ("apps[1].env.WHICH", "b"),
            ("apps[1].max_memory_restart", "67108864"),
        ]),
    ),
    (
        "computed.config.js",
        loads(&[
            ("apps[0].instances", "2"),
            ("apps[0].exec_mode", "cluster"),
            ("apps[0].env.STARTED_FROM", "here"),
            ("apps[0].args", "[\"--when\", \"2\"]"),
            ("apps[0].out_file", "-"),
        ]),
    ),
    (
        "deploy-as-list.yml",
        Expect::Loads {
            values: &[("apps[0].name", "listed"), ("broken.deploy", "1")],
            warnings: &["`deploy` cannot be used: 5:3: deploy: expected an object of environments"],
        },
    ),
    (
        "deploy-broken-other.json",
        Expect::Loads {
            values: &[
                ("broken.production", "1"),
                ("deploy.staging.hosts", "staging.example.com"),
                ("apps[0].deploy_env.staging.FROM_DEPLOY", "staging"),
            ],
            warnings: &[
                "environment `production` cannot be used: 4:19: deploy.production: missing required key `path`",
            ],
        },
    ),
    (
        "deploy-host-port-option.json",
        Expect::Loads {
            values: &[("apps[0].name", "behind-port"), ("broken.production", "1")],
            warnings: &["host \"web1.example.com -p 422\" carries an ssh `-p` option"],
        },
    ),
    (
        "deploy-template.config.js",
        Expect::Loads {
            values: &[
                ("apps[0].name", "sleep"),
                ("apps[0].watch", "[\".\"]"),
                ("apps[1].name", "worker"),
                ("broken.production", "4"),
            ],
            warnings: &[
                "`SSH_USERNAME` is a placeholder of the file `pm2 init` writes (and 3 more)",
            ],
        },
    ),
    (
        "env-types.yml",
        loads(&[
            ("apps[0].env.NUMBER", "42"),
            ("apps[0].env.FLOAT", "1.5"),
            ("apps[0].env.BOOL", "true"),
            ("apps[0].env.OFF", "false"),
            ("apps[0].env.NOTHING", "null"),
            ("apps[0].env.NESTED", "{\"a\":1,\"b\":[\"x\",\"y\"]}"),
            ("apps[0].env.LIST", "[1,\"two\"]"),
            ("apps[0].env.EMPTY", ""),
            ("apps[0].env_production.NUMBER", "43"),
        ]),
    ),
    (
        "esm.config.mjs",
        loads(&[("apps[0].instances", "2"), ("apps[0].exec_mode", "fork")]),
    ),
    (
        "exec-mode-empty.json",
        loads(&[
            ("apps[0].exec_mode", "fork"),
            ("apps[1].exec_mode", "cluster"),
        ]),
    ),
    (
        "exec-mode-suffix.yml",
        loads(&[
            ("apps[0].exec_mode", "cluster"),
            ("apps[1].exec_mode", "fork"),
            ("apps[1].instances", "2"),
        ]),
    ),
    (
        "full.config.js",
        loads(&[
            ("apps[0].port", "3001"),
            ("apps[0].max_memory_restart", "314572800"),
            ("apps[0].env_production.SENTRY", "true"),
            ("apps[1].interpreter", "auto:python3"),
            ("apps[1].namespace", "jobs"),
            (
                "deploy.production.hosts",
                "deploy@web1.example.com deploy@web2.example.com:2222",
            ),
        ]),
    ),
    (
        "full.json",
        loads(&[
            ("apps[0].min_uptime", "5000"),
            ("apps[1].cron_restart", "0 4 * * *"),
            ("deploy.production.env.REGION", "eu-west-1"),
        ]),
    ),
    (
        "full.yml",
        loads(&[
            ("apps[0].kill_timeout", "8000"),
            ("apps[1].watch", "[\"src\"]"),
            ("deploy.production.path", "/var/www/shop"),
        ]),
    ),
    (
        "instance-var-dash.json",
        loads(&[
            ("apps[0].instance_var", "MY-INSTANCE"),
            ("apps[0].increment_var", "NEXT_PORT"),
            ("apps[0].env.NEXT_PORT", "9000"),
        ]),
    ),
    (
        "javascript-in-json.json",
        Expect::Refused(":1:77: unexpected word `process`"),
    ),
    (
        "key-append-env-to-name.json",
        loads(&[("apps[0].append_env_to_name", "true")]),
    ),
    (
        "key-args-array.yml",
        loads(&[(
            "apps[0].args",
            "[\"--port\", \"3000\", \"true\", \"two words\"]",
        )]),
    ),
    (
        "key-args-string.json",
        loads(&[
            (
                "apps[0].args",
                "[\"--a\", \"b c\", \"d e\", \"--f=\\\"g h\\\"\", \"it's\", \"a\\\\\", \"b\"]",
            ),
            ("apps[1].args", "[\"--color\", \"#fff\", \"--x\"]"),
        ]),
    ),
    (
        "key-autostart.json",
        loads(&[("apps[0].name", "later"), ("apps[0].autostart", "false")]),
    ),
    (
        "key-cron.config.js",
        loads(&[
            ("apps[0].cron_restart", "0 3 * * *"),
            ("apps[1].cron_restart", "-"),
            ("apps[2].cron_restart", "-"),
        ]),
    ),
    (
        "key-env-other-environment.yml",
        loads(&[
            ("apps[0].env_staging.A", "staging"),
            ("apps[0].env_production.A", "production"),
        ]),
    ),
    (
        "key-env-precedence.config.js",
        loads(&[
            ("apps[0].deploy_env.production.A", "deploy"),
            ("apps[0].deploy_env.production.E", "deploy"),
            ("apps[0].env_production.C", "production"),
        ]),
    ),
    (
        "key-execute-command.yml",
        loads(&[("apps[0].exec_mode", "fork"), ("apps[0].instances", "2")]),
    ),
    (
        "key-increment-var.yml",
        loads(&[
            ("apps[0].increment_var", "WORKER_PORT"),
            ("apps[0].exec_mode", "cluster"),
        ]),
    ),
    (
        "key-instances-fork.yml",
        loads(&[
            ("apps[0].exec_mode", "fork"),
            ("apps[0].instances", "2"),
            ("apps[1].exec_mode", "fork"),
        ]),
    ),
    (
        "key-instances.json",
        loads(&[
            ("apps[0].instances", "max"),
            ("apps[0].merge_logs", "true"),
            ("apps[1].instances", "max"),
            ("apps[2].instances", "-1"),
            ("apps[2].merge_logs", "false"),
            ("apps[3].exec_mode", "cluster"),
        ]),
    ),
    (
        "key-interpreter-python.yml",
        loads(&[
            ("apps[0].interpreter", "auto:python3"),
            ("apps[1].interpreter", "python3"),
            ("apps[1].interpreter_args", "[\"-u\"]"),
        ]),
    ),
    (
        "key-interpreter.json",
        loads(&[
            ("apps[0].interpreter", "bash"),
            ("apps[1].interpreter", "auto:bash"),
            ("apps[2].interpreter", "node"),
            ("apps[2].exec_mode", "cluster"),
            ("apps[3].interpreter", "none"),
        ]),
    ),
    (
        "key-kill-listen.yml",
        loads(&[
            ("apps[0].kill_timeout", "5000"),
            ("apps[0].listen_timeout", "500"),
            ("apps[0].wait_ready", "true"),
            ("apps[1].kill_signal", "SIGTERM"),
        ]),
    ),
    (
        "key-log-date-format.json",
        loads(&[
            ("apps[0].log_date_format", "YYYY-MM-DD HH:mm Z"),
            ("apps[0].time", "false"),
        ]),
    ),
    (
        "key-log-paths.yml",
        loads(&[
            ("apps[0].out_file", "logs/relative-out.log"),
            ("apps[1].out_file", "/dev/null"),
            ("apps[1].error_file", "/dev/null"),
        ]),
    ),
    (
        "key-logs-cluster.json",
        loads(&[
            ("apps[0].merge_logs", "false"),
            ("apps[1].merge_logs", "true"),
            ("apps[2].out_file", "logs/named-out.log"),
            ("apps[3].exec_mode", "fork"),
        ]),
    ),
    (
        "key-max-memory.yml",
        loads(&[
            ("apps[0].max_memory_restart", "157286400"),
            ("apps[1].max_memory_restart", "1073741824"),
            ("apps[2].max_memory_restart", "524288"),
            ("apps[3].max_memory_restart", "104857600"),
        ]),
    ),
    (
        "key-namespace.json",
        loads(&[
            ("apps[0].namespace", "backend"),
            ("apps[1].namespace", "default"),
        ]),
    ),
    (
        "key-port.json",
        loads(&[
            ("apps[0].port", "3001"),
            ("apps[0].env.PORT", "1"),
            ("apps[1].env_production.PORT", "3003"),
        ]),
    ),
    (
        "key-restart.json",
        loads(&[
            ("apps[0].autorestart", "false"),
            ("apps[0].min_uptime", "5000"),
            ("apps[1].exp_backoff_restart_delay", "100"),
            ("apps[1].stop_exit_codes", "[0, 2]"),
            ("apps[2].stop_exit_codes", "[3]"),
            ("apps[2].min_uptime", "60000"),
        ]),
    ),
    (
        "key-time.yml",
        Expect::Loads {
            values: &[
                ("apps[0].log_date_format", "YYYY-MM-DDTHH:mm:ss"),
                ("apps[1].log_date_format", "YYYY-MM-DDTHH:mm:ss"),
            ],
            warnings: &["`time: true` replaces log_date_format"],
        },
    ),
    (
        "key-unimplemented.yml",
        Expect::Loads {
            values: &[("apps[0].name", "extras")],
            warnings: &[
                "`vizion` is a PM2 setting",
                "`source_map_support` is a PM2 setting",
                "`treekill` is a PM2 setting",
                "`pmx` is a PM2 setting",
                "`automation` is a PM2 setting",
                "`kill_retry_time` is a PM2 setting",
                "`pid_file` is a PM2 setting",
            ],
        },
    ),
    (
        "key-watch.json",
        loads(&[
            ("apps[0].watch", "on"),
            ("apps[1].watch", "[\"src\", \"lib\"]"),
            ("apps[1].ignore_watch", "[\"lib/tmp\", \"src/tmp\"]"),
            ("apps[2].watch", "[\"src\"]"),
            ("apps[3].watch", "off"),
        ]),
    ),
    (
        "lenient-comments.json",
        loads(&[
            ("apps[0].name", "api"),
            ("apps[0].env.NODE_ENV", "production"),
        ]),
    ),
    (
        "lenient-duplicate-keys.json",
        Expect::Loads {
            values: &[("apps[0].name", "dup"), ("apps[0].env.A", "2")],
            warnings: &[
                "`name` is given twice (again at 3:46); the last one counts",
                "`A` is given twice (again at 3:80)",
            ],
        },
    ),
    (
        "lenient-json5-values.json",
        loads(&[
            ("apps[0].kill_timeout", "2000"),
            ("apps[0].max_restarts", "3"),
            ("apps[0].restart_delay", "500"),
            ("apps[0].env.HEX", "16"),
            ("apps[0].env.HALF", "0.5"),
            ("apps[0].env.LINE", "one two"),
            ("apps[0].env.QUOTE", "it's"),
            ("apps[0].cwd", "-"),
        ]),
    ),
    (
        "names-with-slash-space.yml",
        loads(&[
            ("apps[0].name", "api/v2"),
            ("apps[1].name", "my worker"),
            ("apps[2].name", "snake_case_app"),
        ]),
    ),
    (
        "numbers-as-strings.json",
        loads(&[
            ("apps[0].instances", "2"),
            ("apps[0].kill_timeout", "3000"),
            ("apps[0].max_restarts", "5"),
            ("apps[0].restart_delay", "250"),
            ("apps[0].listen_timeout", "800"),
            ("apps[0].min_uptime", "2000"),
            ("apps[0].max_memory_restart", "1048576"),
        ]),
    ),
    ("only-one.yml", loads(&[("apps[1].name", "worker")])),
    (
        "only.config.js",
        loads(&[("apps[2].cron_restart", "0 * * * *")]),
    ),
    (
        "refuse-exec-mode.json",
        Expect::Refused(
            ":1:70: apps[0].exec_mode: expected \"fork\" or \"cluster\", found \"clustr\" — hint: did you mean `cluster`?",
        ),
    ),
    (
        "refuse-json-syntax.json",
        Expect::Refused(":4:5: expected `,` or `]` after an array element"),
    ),
    (
        "refuse-require-missing.config.js",
        Expect::Refused("which is not installed: run `npm install` in"),
    ),
    (
        "refuse-script-missing.json",
        // The file is fine; the agent refuses it when it looks for the script.
        loads(&[("apps[0].script", "not-there.js")]),
    ),
    (
        "refuse-yaml-indentation.yml",
        Expect::Refused(
            ":6:6: invalid YAML: while parsing a block mapping, did not find expected key — hint: this line is not indented like the keys above it",
        ),
    ),
    (
        "script-cwd.json",
        loads(&[("apps[0].cwd", "sub"), ("apps[0].out_file", "out.log")]),
    ),
    (
        "script-in-cwd.yml",
        loads(&[
            ("apps[0].interpreter", "none"),
            ("apps[1].interpreter", "auto:bash"),
        ]),
    ),
    (
        "script-mjs.json",
        loads(&[
            ("apps[0].exec_mode", "cluster"),
            ("apps[0].script", "sleep.mjs"),
        ]),
    ),
    (
        "script-npm.json",
        loads(&[
            ("apps[0].script", "npm"),
            ("apps[0].interpreter", "auto:self"),
            ("apps[0].args", "[\"--version\"]"),
        ]),
    ),
    (
        "script-on-path.json",
        loads(&[
            ("apps[0].script", "sleep"),
            ("apps[0].args", "[\"100000\"]"),
        ]),
    ),
    (
        "script-with-spaces.json",
        Expect::Loads {
            values: &[
                ("apps[0].script", "sleep 1000 && echo never"),
                ("apps[0].args", "[]"),
                ("apps[1].name", "sleep 999"),
            ],
            warnings: &["through `bash -c` and ignores `args`"],
        },
    ),
    (
        "shape-apps-object.yml",
        loads(&[("apps[0].name", "lonely")]),
    ),
    (
        "shape-array.json",
        loads(&[("apps[0].name", "one"), ("apps[1].name", "two")]),
    ),
    (
        "shape-pm2-key.json",
        loads(&[("apps[0].name", "old-style")]),
    ),
    (
        "shape-single-app-with-deploy.config.js",
        loads(&[
            ("apps[0].name", "solo"),
            ("apps[0].deploy_env.production.C", "deploy"),
            ("deploy.production.hosts", "web1.example.com"),
        ]),
    ),
    (
        "shape-single-app.json",
        loads(&[("apps[0].name", "single"), ("apps[0].env.SHAPE", "single")]),
    ),
    (
        "unknown-deploy-keys.yml",
        Expect::Loads {
            values: &[("deploy.production.env.DEPLOYED", "yes")],
            warnings: &[
                "unknown key `ssh-options` is ignored (as PM2 ignores it) — hint: did you mean `ssh_options`?",
                "unknown key `post_deploy` is ignored (as PM2 ignores it) — hint: did you mean `post-deploy`?",
            ],
        },
    ),
    (
        "unknown-keys.json",
        Expect::Loads {
            values: &[("apps[0].env.KEPT", "yes"), ("apps[0].instances", "1")],
            warnings: &[
                "unknown key `deploi` is ignored (as PM2 ignores it) — hint: did you mean `deploy`?",
                "did you mean `instances`?",
                "did you mean `max_memory_restart`?",
                "unknown key `my_setting` is ignored",
            ],
        },
    ),
];

#[test]
fn every_corpus_file_has_an_expectation() {
    let listed: Vec<&str> = EXPECT.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        ecosystem_files(),
        listed,
        "every file of tests/corpus/pm2 needs an entry in EXPECT, in order, and the other way round"
    );
    assert!(listed.len() >= 60);
}

#[test]
fn what_pmfleet_reads_in_each_corpus_file() {
    for (name, expect) in EXPECT {
        match (expect, load(name)) {
            (Expect::Loads { values, warnings }, Ok(e)) => {
                let flat = flatten(&e);
                for (key, want) in *values {
                    assert_eq!(
                        flat.get(*key).map(String::as_str),
                        Some(*want),
                        "{name}: {key}"
                    );
                }
                let shown: Vec<String> = e.warnings.iter().map(|w| w.to_string()).collect();
                assert_eq!(shown.len(), warnings.len(), "{name}: {shown:#?}");
                for want in *warnings {
                    assert!(
                        shown.iter().any(|w| w.contains(want)),
                        "{name}: no warning says `{want}`: {shown:#?}"
                    );
                }
            }
            (Expect::Refused(says), Err(err)) => {
                let text = err.to_string();
                assert!(text.contains(says), "{name}: `{says}` not in:\n{text}");
            }
            (_, other) => panic!("{name}: unexpected {other:?}"),
        }
    }
}

/// The file as JSON text: JavaScript evaluated by node, YAML converted node by node; a JSON
/// file is its own text.
fn as_json(path: &Path) -> String {
    let name = path.to_string_lossy();
    if name.ends_with(".json") {
        return std::fs::read_to_string(path).unwrap();
    }
    if name.ends_with(".yml") || name.ends_with(".yaml") {
        use saphyr::LoadableYamlNode;
        let text = std::fs::read_to_string(path).unwrap();
        let docs = saphyr::YamlOwned::load_from_str(&text).unwrap();
        return yaml_to_json(&docs[0]).to_string();
    }
    let out = Command::new("node")
        .arg("--input-type=module")
        .arg("-e")
        .arg("const m = await import(process.argv[1]); process.stdout.write(JSON.stringify(m.default));")
        .arg(url(path))
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn url(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn yaml_to_json(y: &saphyr::YamlOwned) -> serde_json::Value {
    use saphyr::{ScalarOwned, YamlOwned};
    use serde_json::{Value, json};
    match y {
        YamlOwned::Value(ScalarOwned::Null) => Value::Null,
        YamlOwned::Value(ScalarOwned::Boolean(b)) => json!(b),
        YamlOwned::Value(ScalarOwned::Integer(i)) => json!(i),
        YamlOwned::Value(ScalarOwned::FloatingPoint(x)) => json!(x.0),
        YamlOwned::Value(ScalarOwned::String(s)) => json!(s),
        YamlOwned::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        YamlOwned::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        other => panic!("no JSON for {other:?}"),
    }
}

/// What must agree between two formats of one file (positions and the file's name aside).
fn meaning(e: &Ecosystem) -> (Vec<App>, Vec<String>, Vec<String>, Vec<String>) {
    let mut fields: Vec<String> = e.warnings.iter().map(|w| w.field.clone()).collect();
    fields.sort();
    (
        e.apps.clone(),
        e.deploy.keys().cloned().collect(),
        e.environment_names(),
        fields,
    )
}

#[test]
fn every_corpus_file_means_the_same_in_json_yaml_and_javascript() {
    let mut checked = 0;
    for (name, expect) in EXPECT {
        // JavaScript reads a key given twice as the last one without a word, YAML refuses it.
        if matches!(expect, Expect::Refused(_)) || *name == "lenient-duplicate-keys.json" {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let original = copy(dir.path(), name);
        let e = ecosystem::load(&original).unwrap();
        let text = as_json(&original);
        let mut variants = vec![("as.config.js", format!("module.exports = (\n{text}\n);\n"))];
        // Strict JSON is YAML too, and JSON; the JSON5 of a lenient .json file is neither.
        if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
            variants.push(("as.yml", text.clone()));
            variants.push(("as.json", text.clone()));
        }
        for (file, body) in variants {
            let path = dir.path().join(file);
            std::fs::write(&path, body).unwrap();
            let other = ecosystem::load(&path).unwrap_or_else(|err| panic!("{name} {file}: {err}"));
            assert_eq!(meaning(&e), meaning(&other), "{name} written {file}");
            checked += 1;
        }
    }
    assert!(checked >= 150, "{checked} variants checked");
}
