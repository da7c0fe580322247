//! pmfleet reads every ecosystem file the way PM2 7 does, checked against PM2 itself.
//!
//! For each file of the corpus (`shared/tests/corpus/pm2`: every app key, every spelling PM2
//! takes, every quirk real files have, in JSON, YAML and JavaScript), the suite has PM2 start it
//! as `pm2 start FILE [--env E] [--only A]` does, under a PM2 home of its own, and reads back
//! what `pm2 jlist` shows; and runs `pmfleet-agent start FILE …` + `show --json` under an agent
//! home of its own, in the same copy of the corpus; then it compares what each resolved for
//! every app, field by field. Each difference must be in [`KNOWN`] or follow from one of the
//! [`GENERAL`] rules, and each is explained in docs/migrating-from-pm2.md under its id (which
//! this test checks): a new difference — or a listed one that went away — fails the test.
//!
//! What the two tools cannot share is written the same way before comparing (see
//! `resolved.rs`): the corpus directory, each tool's own log directory, PM2's `-error.log`
//! against pmfleet's `-err.log`, PM2's process id against pmfleet's instance number in
//! per-instance log names, PM2's `PWD` and its own variables.

#[path = "pm2_differential/pm2.rs"]
mod pm2;
#[path = "pm2_differential/pmfleet.rs"]
mod pmfleet;
#[path = "pm2_differential/resolved.rs"]
mod resolved;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use resolved::{Context, FIELDS, Outcome};
use serde_json::Value;

/// The command-line options a file is started with (none when not listed).
const OPTIONS: &[(&str, &[&str])] = &[
    ("deploy-broken-other.json", &["--env", "staging"]),
    ("env-types.yml", &["--env", "production"]),
    ("full.config.js", &["--env", "production"]),
    ("full.yml", &["--env", "production"]),
    ("key-append-env-to-name.json", &["--env", "production"]),
    ("key-env-other-environment.yml", &["--env", "staging"]),
    ("key-env-precedence.config.js", &["--env", "production"]),
    ("key-port.json", &["--env", "production"]),
    ("only-one.yml", &["--only", "worker"]),
    ("only.config.js", &["--only", "api,worker"]),
    (
        "shape-single-app-with-deploy.config.js",
        &["--env", "production"],
    ),
    ("unknown-deploy-keys.yml", &["--env", "production"]),
];

/// Every difference between PM2 7 and pmfleet on the corpus: (file, app, field, the id of its
/// explanation in docs/migrating-from-pm2.md). `*` as the app: the whole file.
const KNOWN: &[(&str, &str, &str, &str)] = &[
    ("esm.config.mjs", "*", "outcome", "es-module-ecosystem"),
    (
        "exec-mode-suffix.yml",
        "fork-mode",
        "err_log",
        "fork-instances-log",
    ),
    (
        "exec-mode-suffix.yml",
        "fork-mode",
        "out_log",
        "fork-instances-log",
    ),
    (
        "javascript-in-json.json",
        "*",
        "outcome",
        "javascript-in-json",
    ),
    (
        "key-env-precedence.config.js",
        "layers",
        "env",
        "deploy-env-precedence",
    ),
    (
        "key-execute-command.yml",
        "forced-fork",
        "err_log",
        "fork-instances-log",
    ),
    (
        "key-execute-command.yml",
        "forced-fork",
        "out_log",
        "fork-instances-log",
    ),
    (
        "key-instances-fork.yml",
        "node-forks",
        "err_log",
        "fork-instances-log",
    ),
    (
        "key-instances-fork.yml",
        "node-forks",
        "out_log",
        "fork-instances-log",
    ),
    (
        "key-instances-fork.yml",
        "py-workers",
        "err_log",
        "fork-instances-log",
    ),
    (
        "key-instances-fork.yml",
        "py-workers",
        "out_log",
        "fork-instances-log",
    ),
    (
        "key-kill-listen.yml",
        "signal",
        "kill_signal",
        "kill-signal",
    ),
    (
        "key-logs-cluster.json",
        "fork-instances",
        "err_log",
        "fork-instances-log",
    ),
    (
        "key-logs-cluster.json",
        "fork-instances",
        "out_log",
        "fork-instances-log",
    ),
    (
        "key-logs-cluster.json",
        "named-per-instance",
        "out_log",
        "named-log-per-instance",
    ),
    (
        "names-with-slash-space.yml",
        "snake_case_app",
        "err_log",
        "log-file-names",
    ),
    (
        "names-with-slash-space.yml",
        "snake_case_app",
        "out_log",
        "log-file-names",
    ),
    (
        "script-npm.json",
        "npm-version",
        "interpreter",
        "extensionless-script",
    ),
];

/// Whether a difference follows from one rule.
type Rule = fn(&Difference) -> bool;

/// Differences that follow from one rule wherever they occur, by the id of their explanation.
const GENERAL: &[(&str, Rule)] = &[("python3", runs_python3)];

/// PM2 runs `.py` with `python` when there is one; pmfleet prefers `python3`.
fn runs_python3(d: &Difference) -> bool {
    d.field == "interpreter" && d.pm2.ends_with("/python\"") && d.pmfleet.ends_with("/python3\"")
}

/// The ecosystem files of the corpus (the other files there are the apps they start).
fn corpus_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".json")
                || n.ends_with(".yml")
                || n.ends_with(".yaml")
                || n.ends_with(".config.js")
                || n.ends_with(".config.cjs")
                || n.ends_with(".config.mjs")
        })
        .collect();
    names.sort();
    names
}

/// Copies the corpus (its files keep their modes), each `__PORTn__` made a free port.
fn copy_corpus(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_corpus(&entry.path(), &target);
            continue;
        }
        std::fs::copy(entry.path(), &target).unwrap();
        let text = std::fs::read_to_string(&target).unwrap_or_default();
        if text.contains("__PORT") {
            let mut text = text;
            for n in 1..=9 {
                let placeholder = format!("__PORT{n}__");
                if text.contains(&placeholder) {
                    text = text.replace(&placeholder, &pmfleet_testkit::free_port().to_string());
                }
            }
            std::fs::write(&target, text).unwrap();
        }
    }
}

/// One difference: (file, app, field) and the two values.
#[derive(Debug, Clone)]
struct Difference {
    file: String,
    app: String,
    field: String,
    pm2: String,
    pmfleet: String,
}

fn compare(file: &str, pm2: &Outcome, ours: &Outcome) -> Vec<Difference> {
    let diff = |app: &str, field: &str, a: String, b: String| Difference {
        file: file.to_owned(),
        app: app.to_owned(),
        field: field.to_owned(),
        pm2: a,
        pmfleet: b,
    };
    match (pm2, ours) {
        (Outcome::Refused(_), Outcome::Refused(_)) => Vec::new(),
        (Outcome::Refused(a), Outcome::Started(b)) => vec![diff(
            "*",
            "outcome",
            format!("refused: {}", first_line(a)),
            format!(
                "started {}",
                b.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )],
        (Outcome::Started(a), Outcome::Refused(b)) => vec![diff(
            "*",
            "outcome",
            format!(
                "started {}",
                a.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            format!("refused: {}", first_line(b)),
        )],
        (Outcome::Started(a), Outcome::Started(b)) => {
            let mut out = Vec::new();
            let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for name in names {
                match (a.get(name), b.get(name)) {
                    (Some(x), Some(y)) => {
                        for field in FIELDS {
                            let (vx, vy) = (x.get(field), y.get(field));
                            if vx != vy {
                                out.push(diff(name, field, show(vx), show(vy)));
                            }
                        }
                    }
                    (x, y) => out.push(diff(
                        name,
                        "started",
                        x.map_or("no", |_| "yes").to_owned(),
                        y.map_or("no", |_| "yes").to_owned(),
                    )),
                }
            }
            out
        }
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "-".to_owned(), Value::to_string)
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| l.contains("rror") || l.contains("problem"))
        .or_else(|| text.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or_default()
        .chars()
        .take(160)
        .collect()
}

/// The environment both tools start with: PATH (node, python, bash), a scratch HOME, no colour.
fn base_env(home: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_owned(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned()),
    );
    env.insert("HOME".to_owned(), home.display().to_string());
    env.insert("LANG".to_owned(), "C.UTF-8".to_owned());
    env.insert("NO_COLOR".to_owned(), "1".to_owned());
    env
}

#[test]
fn every_corpus_file_means_what_it_means_in_pm2() {
    let pm2_bin = match pmfleet_testkit::pm2::find() {
        Ok(bin) => bin,
        Err(why) if pmfleet_testkit::sshd::in_ci() => {
            panic!("{why} (CI=true: the PM2 comparison must run)")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tests/corpus/pm2");
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("project");
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    copy_corpus(&corpus, &dir);
    let env = base_env(&home);

    let mut pm2 = pm2::Pm2::new(pm2_bin, &env);
    let version = pm2.version(&dir);
    pm2.drive(&dir);
    assert!(
        version.starts_with("7."),
        "PM2 7 expected, found {version:?}"
    );
    let agent = pmfleet::Agent::new(&env);
    let ctx = Context {
        dir: dir.clone(),
        base_env: env.clone(),
        pm2_logs: pm2.logs(),
        agent_logs: agent.logs(),
    };

    let files = corpus_files(&dir);
    assert!(files.len() >= 60, "the corpus has {} files", files.len());
    let options: BTreeMap<&str, &[&str]> = OPTIONS.iter().copied().collect();
    for (file, _) in OPTIONS {
        assert!(
            files.iter().any(|f| f == file),
            "OPTIONS names {file}, which is not in the corpus"
        );
    }
    let mut found: Vec<Difference> = Vec::new();
    let mut identical = 0;
    for file in &files {
        let opts = options.get(file.as_str()).copied().unwrap_or_default();
        let theirs = pm2.resolve(&ctx, file, opts);
        let ours = agent.resolve(&ctx, file, opts);
        let differences = compare(file, &theirs, &ours);
        if differences.is_empty() {
            identical += 1;
        }
        found.extend(differences);
    }
    let by_rule = found
        .iter()
        .filter(|d| GENERAL.iter().any(|(_, rule)| rule(d)))
        .count();
    println!(
        "PM2 {version}: {identical} of {} corpus files resolve identically; {} listed difference(s) and {by_rule} by a general rule in the others",
        files.len(),
        found.len() - by_rule
    );

    let key =
        |file: &str, app: &str, field: &str| (file.to_owned(), app.to_owned(), field.to_owned());
    let known: BTreeMap<(String, String, String), &str> = KNOWN
        .iter()
        .map(|(f, a, field, id)| (key(f, a, field), *id))
        .collect();
    let mut unexpected = String::new();
    let mut general_seen: BTreeSet<&str> = BTreeSet::new();
    for d in &found {
        if let Some((id, _)) = GENERAL.iter().find(|(_, rule)| rule(d)) {
            general_seen.insert(id);
            continue;
        }
        if !known.contains_key(&key(&d.file, &d.app, &d.field)) {
            unexpected.push_str(&format!(
                "\n  (\"{}\", \"{}\", \"{}\", \"?\"),   // PM2 {} | pmfleet {}",
                d.file, d.app, d.field, d.pm2, d.pmfleet
            ));
        }
    }
    let seen: BTreeSet<(String, String, String)> = found
        .iter()
        .map(|d| key(&d.file, &d.app, &d.field))
        .collect();
    let mut gone: Vec<String> = known
        .keys()
        .filter(|k| !seen.contains(*k))
        .map(|(f, a, field)| format!("\n  ({f}, {a}, {field})"))
        .collect();
    gone.extend(
        GENERAL
            .iter()
            .filter(|(id, _)| !general_seen.contains(id))
            .map(|(id, _)| format!("\n  the rule `{id}`")),
    );
    assert!(
        unexpected.is_empty() && gone.is_empty(),
        "differences from PM2 that are not in KNOWN:{unexpected}\nKNOWN differences that no longer occur:{}",
        gone.concat()
    );

    // Every id is explained in the migration page.
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/migrating-from-pm2.md"),
    )
    .unwrap();
    let ids = KNOWN
        .iter()
        .map(|(_, _, _, id)| *id)
        .chain(GENERAL.iter().map(|(id, _)| *id));
    for id in ids {
        assert!(
            page.contains(&format!("<a id=\"{id}\"></a>")),
            "docs/migrating-from-pm2.md does not explain `{id}`"
        );
    }
    drop(agent);
    drop(pm2);
}
