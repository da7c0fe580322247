//! From a file (or text) to a checked [`Ecosystem`]: read the format into the value tree,
//! validate the top level, `apps` and `deploy`, and collect every problem on the way.
//!
//! Problems in the apps (or the file's syntax) stop loading: every command needs the apps or
//! runs on a host whose agent does. Problems in a `deploy` environment stop only what uses
//! that environment: the file loads, the environment is set aside with its problems
//! ([`Ecosystem::broken_environments`]), and a warning names it.

use std::path::{Path, PathBuf};

use super::app::{attach_deploy_env, read_apps};
use super::deploy::{DeployRead, read_deploy};
use super::diagnostic::{FieldPath, Report, did_you_mean};
use super::discover::{Format, locate};
use super::error::LoadError;
use super::javascript::{self, NodeOptions};
use super::keys::{self, KeyDef, Schema};
use super::model::{DeployEnv, Diagnostic, Ecosystem, Severity};
use super::value::{Entry, Kind, SyntaxError, Value};
use super::{json, yaml};

static TOP_SCHEMA: Schema = Schema {
    // PM2 takes `apps`, else `pm2` (`API._startJson`).
    keys: &[
        KeyDef::spelled("apps", &["apps", "pm2"]),
        KeyDef::new("deploy"),
        KeyDef::new("notify"),
    ],
    unimplemented: &[(
        "static",
        "PM2's static file server; serve the files from an app of your own",
    )],
};

/// The keys that make an object without `apps` a single app, as PM2 reads such a file.
const SCRIPT_KEYS: [&str; 4] = ["script", "cmd", "command", "exec"];

/// Reads and validates the ecosystem file at `path`, choosing the format from its extension
/// (`.json`, `.yml`/`.yaml`, `.js`/`.cjs`/`.mjs`; any other name is read as JSON when it
/// starts with `{` or `[`, as YAML otherwise). JavaScript runs `node` from `PATH`.
pub fn load(path: &Path) -> Result<Ecosystem, LoadError> {
    load_with_node(path, &NodeOptions::default())
}

/// The ecosystem file a command works on, loaded: `file` when the command names one (relative
/// to `cwd`), else the one found in `cwd` under PM2's names ([`locate`]). Every command of
/// both binaries starts here, so "which file" and "none here" read the same everywhere.
pub fn load_from(file: Option<&Path>, cwd: &Path) -> Result<Ecosystem, LoadError> {
    let path: PathBuf = match file {
        Some(file) => cwd.join(file),
        None => locate(cwd)?,
    };
    load(&path)
}

/// [`load`], with control over how `node` is found and run for JavaScript files.
pub fn load_with_node(path: &Path, node: &NodeOptions) -> Result<Ecosystem, LoadError> {
    let format = Format::from_path(path);
    if format == Some(Format::JavaScript) {
        if !path.is_file() {
            // Say "cannot read" rather than letting node report a missing module.
            std::fs::File::open(path).map_err(|source| LoadError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let json = javascript::export_json(path, node)?;
        return parse_str(&json, Format::JavaScript, path);
    }
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let format = format.unwrap_or_else(|| sniff(&text));
    parse_str(&text, format, path)
}

fn sniff(text: &str) -> Format {
    match text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .chars()
        .next()
    {
        Some('{' | '[') => Format::Json,
        _ => Format::Yaml,
    }
}

/// Validates ecosystem text. `source` names the file in diagnostics. For
/// [`Format::JavaScript`], `text` is the JSON that `node` printed for the file, and
/// diagnostics carry field paths but no line:column (they would point into that output,
/// not into the file).
pub fn parse_str(text: &str, format: Format, source: &Path) -> Result<Ecosystem, LoadError> {
    let parsed = match format {
        Format::Json => json::parse(text),
        Format::Yaml => yaml::parse(text),
        Format::JavaScript => json::parse(text).map(|mut v| {
            v.strip_positions();
            v
        }),
    };
    let mut root = match parsed {
        Ok(root) => root,
        Err(e) => return Err(syntax_error(e, format, source)),
    };
    let absolute = std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf());
    let base_dir = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut report = Report::new(source);
    if format == Format::Json {
        keys::last_key_wins(&mut report, &mut root, &FieldPath::root());
    }
    let (mut apps, mut deploy, notify) = read_root(&mut report, &root, &base_dir);
    super::pm2_calls::check_published_cwd(&mut report, &apps, &deploy.envs);
    attach_deploy_env(&mut apps, &deploy.env_blocks);
    let has_errors = report.has_errors();
    let diagnostics = in_file_order(report.into_diagnostics());
    if has_errors {
        return Err(LoadError::Invalid {
            file: source.to_path_buf(),
            diagnostics,
        });
    }
    for problems in deploy.broken.values_mut() {
        *problems = in_file_order(std::mem::take(problems));
    }
    Ok(Ecosystem {
        source: absolute,
        apps,
        deploy: deploy.envs,
        warnings: diagnostics,
        broken_environments: deploy.broken,
        deploy_errors: deploy.errors,
        notify,
    })
}

/// Problems in the order of the file when they all have a position (they are found in the
/// order keys are sorted out, not the order they are written).
fn in_file_order(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    if diagnostics.iter().all(|d| d.location.is_some()) {
        diagnostics.sort_by_key(|d| d.location);
    }
    diagnostics
}

fn syntax_error(e: SyntaxError, format: Format, source: &Path) -> LoadError {
    let (location, message) = match format {
        // node printed it; a position in its output would mean nothing to the reader.
        Format::JavaScript => (
            None,
            format!("node printed something that is not JSON: {}", e.message),
        ),
        Format::Json | Format::Yaml => (Some((e.pos.line, e.pos.col)), e.message),
    };
    LoadError::Invalid {
        file: source.to_path_buf(),
        diagnostics: vec![Diagnostic {
            severity: Severity::Error,
            file: source.to_path_buf(),
            location,
            field: String::new(),
            message,
            hint: e.hint,
        }],
    }
}

type Root = (
    Vec<super::model::App>,
    DeployRead,
    Vec<super::notify::NotifyTarget>,
);

/// The top level: `{apps, deploy}`, or, as PM2 also accepts, an array of apps, `pm2` for
/// `apps`, or a single app object (one with `script` and no `apps`). Top-level keys starting
/// with `x-` are skipped: they hold YAML anchors.
fn read_root(r: &mut Report, root: &Value, base_dir: &Path) -> Root {
    let top = FieldPath::root();
    let mut apps = Vec::new();
    let mut deploy = DeployRead::default();
    let mut notify = Vec::new();
    match &root.kind {
        Kind::Seq(_) => apps = read_apps(r, root, &top),
        Kind::Map(entries) => {
            let has = |key: &str| entries.iter().any(|e| e.key == key);
            if !has("apps") && !has("pm2") && SCRIPT_KEYS.iter().any(|k| has(k)) {
                // A file that is one app; it may still carry `deploy`, as PM2 allows.
                let app_entries: Vec<Entry> = entries
                    .iter()
                    .filter(|e| e.key != "deploy")
                    .cloned()
                    .collect();
                let app = Value::new(Kind::Map(app_entries), root.pos);
                apps = read_apps(r, &app, &top);
                if let Some(entry) = entries.iter().find(|e| e.key == "deploy") {
                    deploy = read_deploy(r, &entry.value, base_dir);
                }
            } else {
                let kept = entries.iter().filter(|e| !e.key.starts_with("x-"));
                let selected = keys::select(r, &TOP_SCHEMA, kept, &top);
                for (key, entry) in &selected.entries {
                    match *key {
                        "apps" => apps = read_apps(r, &entry.value, &top.key(&entry.key)),
                        "deploy" => deploy = read_deploy(r, &entry.value, base_dir),
                        "notify" => {
                            notify =
                                super::notify::read_notify(r, &entry.value, &top.key(&entry.key))
                        }
                        _ => {}
                    }
                }
                if !selected.has("apps") && !selected.has("deploy") && !r.has_errors() {
                    r.error(
                        root,
                        &top,
                        "the file defines neither `apps` nor `deploy`",
                        Some("an ecosystem file looks like { \"apps\": [...], \"deploy\": { \"production\": {...} } }".to_owned()),
                    );
                }
            }
        }
        Kind::Null => r.error(
            root,
            &top,
            "the file is empty",
            Some("an ecosystem file holds `apps` and/or `deploy`".to_owned()),
        ),
        _ => r.expected(root, &top, "an object with `apps` and `deploy`", None),
    }
    (apps, deploy, notify)
}

/// `prod` → `production`: the one known name that starts with `name` (or that `name` starts
/// with), when there is exactly one.
fn unique_prefix_match<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let mut matches = known.iter().filter(|k| {
        let k = k.to_ascii_lowercase();
        !lower.is_empty() && (k.starts_with(&lower) || lower.starts_with(&k))
    });
    let first = matches.next()?;
    matches.next().is_none().then_some(first.as_str())
}

impl Ecosystem {
    /// `deploy.<name>`, or why it cannot be used: its own problems (a broken environment), a
    /// problem with `deploy` itself, or an error naming the environments that exist.
    pub fn environment(&self, name: &str) -> Result<&DeployEnv, LoadError> {
        if let Some(diagnostics) = self.broken_environments.get(name) {
            return Err(self.invalid(diagnostics));
        }
        if !self.deploy_errors.is_empty() {
            return Err(self.invalid(&self.deploy_errors));
        }
        self.deploy.get(name).ok_or_else(|| {
            let known = self.environment_names();
            let suggestion = did_you_mean(name, known.iter().map(String::as_str))
                .or_else(|| unique_prefix_match(name, &known))
                .map(str::to_owned);
            LoadError::UnknownEnvironment {
                name: name.to_owned(),
                known,
                suggestion,
            }
        })
    }

    /// Every environment the file defines, usable or not, in order.
    pub fn environment_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .deploy
            .keys()
            .chain(self.broken_environments.keys())
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Every error that keeps part of the file from being used (broken environments, a bad
    /// `deploy`), for a command that checks the whole file.
    pub fn errors(&self) -> Vec<&Diagnostic> {
        self.deploy_errors
            .iter()
            .chain(self.broken_environments.values().flatten())
            .filter(|d| d.is_error())
            .collect()
    }

    fn invalid(&self, diagnostics: &[Diagnostic]) -> LoadError {
        LoadError::Invalid {
            file: diagnostics
                .first()
                .map(|d| d.file.clone())
                .unwrap_or_else(|| self.source.clone()),
            diagnostics: diagnostics.to_vec(),
        }
    }

    /// The app named `name`.
    pub fn app(&self, name: &str) -> Option<&super::model::App> {
        self.apps.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str, format: Format) -> Vec<super::super::Diagnostic> {
        match parse_str(text, format, Path::new("ecosystem.json")) {
            Err(LoadError::Invalid { diagnostics, .. }) => diagnostics,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_from_finds_the_file_or_takes_the_one_named_relative_to_cwd() {
        let dir = tempfile::tempdir().unwrap();
        match load_from(None, dir.path()) {
            Err(e @ LoadError::NotFound { .. }) => {
                let message = e.to_string();
                assert!(message.starts_with("no ecosystem file in "), "{message}");
                assert!(message.contains("or name the file to use"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.path().join("ecosystem.json"), r#"{"apps": []}"#).unwrap();
        let found = load_from(None, dir.path()).unwrap();
        assert_eq!(found.source, dir.path().join("ecosystem.json"));
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        std::fs::write(dir.path().join("conf/prod.yml"), "apps: []\n").unwrap();
        let named = load_from(Some(Path::new("conf/prod.yml")), dir.path()).unwrap();
        assert_eq!(named.source, dir.path().join("conf/prod.yml"));
    }

    #[test]
    fn top_level_shapes() {
        let e = parse_str(r#"[{"script": "a.js"}]"#, Format::Json, Path::new("e.json")).unwrap();
        assert_eq!(e.apps.len(), 1);
        let e = parse_str(
            r#"{"script": "a.js", "instances": 2}"#,
            Format::Json,
            Path::new("e.json"),
        )
        .unwrap();
        assert_eq!(e.apps[0].name, "a");
        let e = parse_str(
            "apps:\n  - script: a.js\n",
            Format::Yaml,
            Path::new("e.yml"),
        )
        .unwrap();
        assert!(e.source.is_absolute());
        assert!(e.deploy.is_empty());
    }

    #[test]
    fn unknown_top_level_key_is_a_warning() {
        let e = parse_str(
            r#"{"apps": [], "deploi": {}}"#,
            Format::Json,
            Path::new("e.json"),
        )
        .unwrap();
        let d = &e.warnings;
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "deploi");
        assert_eq!(d[0].location, Some((1, 14)));
        assert_eq!(d[0].hint.as_deref(), Some("did you mean `deploy`?"));
    }

    #[test]
    fn pm2_key_for_apps_and_a_single_app_with_deploy() {
        let e = parse_str(
            r#"{pm2: [{script: 'a.js'}]}"#,
            Format::Json,
            Path::new("e.json"),
        )
        .unwrap();
        assert_eq!(e.apps[0].name, "a");
        let text = r#"{script: 'a.js', deploy: {production: {host: 'h', repo: 'r', path: '/p', ref: 'main', env: {A: '1'}}}}"#;
        let e = parse_str(text, Format::Json, Path::new("e.json")).unwrap();
        assert!(e.warnings.is_empty(), "{:?}", e.warnings);
        assert_eq!(e.apps.len(), 1);
        assert_eq!(e.environment("production").unwrap().hosts[0].host, "h");
        assert_eq!(e.apps[0].resolved_env(None, Some("production"))["A"], "1");
    }

    #[test]
    fn a_broken_environment_stops_only_what_uses_it() {
        let text = r#"{
  "apps": [{"script": "a.js"}],
  "deploy": {
    "production": {"host": "SSH_HOSTMACHINE", "repo": "GIT_REPOSITORY", "path": "DESTINATION_PATH", "ref": "origin/master", "env": {"A": "1"}},
    "staging": {"host": "s", "repo": "r", "path": "/p", "ref": "main"}
  }
}"#;
        let e = parse_str(text, Format::Json, Path::new("e.json")).unwrap();
        assert_eq!(e.apps.len(), 1);
        assert!(e.environment("staging").is_ok());
        assert_eq!(e.environment_names(), vec!["production", "staging"]);
        assert_eq!(e.warnings.len(), 1, "{:#?}", e.warnings);
        let w = &e.warnings[0];
        assert_eq!(w.field, "deploy.production");
        assert_eq!(w.location, Some((4, 5)));
        assert!(
            w.message
                .starts_with("environment `production` cannot be used: 4:"),
            "{w}"
        );
        match e.environment("production") {
            Err(LoadError::Invalid { diagnostics, .. }) => {
                let fields: Vec<&str> = diagnostics.iter().map(|d| d.field.as_str()).collect();
                assert_eq!(
                    fields,
                    vec![
                        "deploy.production.host",
                        "deploy.production.repo",
                        "deploy.production.path"
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.errors().len(), 3);
        assert_eq!(
            e.apps[0].resolved_env(None, Some("production"))["A"],
            "1",
            "PM2 merges a broken environment's env too"
        );
    }

    #[test]
    fn deploy_written_as_a_list() {
        let text = "apps:\n  - script: a.js\ndeploy:\n  - production\n";
        let e = parse_str(text, Format::Yaml, Path::new("e.yml")).unwrap();
        assert_eq!(e.apps.len(), 1);
        assert_eq!(e.warnings.len(), 1);
        assert!(e.warnings[0].message.starts_with("`deploy` cannot be used"));
        match e.environment("production") {
            Err(LoadError::Invalid { diagnostics, .. }) => {
                assert!(
                    diagnostics[0]
                        .message
                        .contains("expected an object of environments")
                );
                assert_eq!(diagnostics[0].location, Some((4, 3)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn extension_keys_hold_anchors() {
        let text = "x-base: &base\n  script: a.js\napps:\n  - <<: *base\n    name: one\n";
        let e = parse_str(text, Format::Yaml, Path::new("e.yml")).unwrap();
        assert_eq!(e.apps[0].name, "one");
        assert_eq!(e.apps[0].script, "a.js");
    }

    #[test]
    fn empty_and_pointless_files() {
        assert_eq!(invalid("", Format::Yaml)[0].message, "the file is empty");
        assert!(invalid("{}", Format::Json)[0].message.contains("neither"));
        assert!(
            invalid("42", Format::Json)[0]
                .message
                .contains("expected an object")
        );
    }

    #[test]
    fn syntax_errors_are_diagnostics_with_positions() {
        let d = invalid(
            "{\n  \"apps\": [\n    {\"script\": \"a.js\" \"x\"}\n  ]\n}",
            Format::Json,
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].location, Some((3, 23)));
        assert_eq!(d[0].field, "");
    }

    #[test]
    fn javascript_output_has_no_positions() {
        let d = invalid(
            r#"{"apps": [{"script": "a.js", "port": "abc"}]}"#,
            Format::JavaScript,
        );
        assert_eq!(d[0].location, None);
        assert_eq!(d[0].field, "apps[0].port");
    }

    #[test]
    fn environment_lookup() {
        let text = r#"{"deploy": {"production": {"host": "a", "repo": "r", "path": "/p", "ref": "main"},
                                "staging": {"host": "b", "repo": "r", "path": "/p", "ref": "main"}}}"#;
        let e = parse_str(text, Format::Json, Path::new("e.json")).unwrap();
        assert_eq!(e.environment("staging").unwrap().hosts[0].host, "b");
        match e.environment("prodution") {
            Err(LoadError::UnknownEnvironment {
                known, suggestion, ..
            }) => {
                assert_eq!(known, vec!["production", "staging"]);
                assert_eq!(suggestion.as_deref(), Some("production"));
            }
            other => panic!("{other:?}"),
        }
        match e.environment("prod") {
            Err(LoadError::UnknownEnvironment { suggestion, .. }) => {
                assert_eq!(suggestion.as_deref(), Some("production"))
            }
            other => panic!("{other:?}"),
        }
        match e.environment("qa") {
            Err(LoadError::UnknownEnvironment { suggestion, .. }) => assert_eq!(suggestion, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sniffing_unknown_extensions() {
        assert_eq!(sniff("  {\"apps\": []}"), Format::Json);
        assert_eq!(sniff("apps: []"), Format::Yaml);
    }
}
