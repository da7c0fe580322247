//! `pmfleet config [file] [env] [--json]`: the ecosystem file as pmfleet reads it, checked and
//! printed, touching no host (as `kamal config` does): every deploy environment — or the one
//! named — with its hosts (user and port resolved), ref, repo, path, hooks and environment, and
//! every app as it will run, then the warnings. Values whose name looks secret (`PASSWORD`,
//! `SECRET`, `TOKEN`, `KEY`, …) and passwords inside URLs are masked. Exit code 2 when what
//! was asked for cannot be used: the file, the environment named, or — with none named — any
//! environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use pmfleet_shared::ecosystem::{
    self, AgentVia, App, Batch, DeployEnv, Diagnostic, Ecosystem, ExecMode, FetchMode, Instances,
    Interpreter, LoadError, Watch,
};
use serde::Serialize;

use crate::deploy::Exit;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The words after the verb, as PM2 takes them.
    #[arg(
        value_name = "ARGS",
        help = "[ECOSYSTEM_FILE] [ENVIRONMENT] (every environment when none is named)"
    )]
    pub words: Vec<String>,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What is shown for a masked value.
const MASK: &str = "********";

pub fn run(args: ConfigArgs) -> Exit {
    let (file, env) = match split_words(&args.words) {
        Ok(split) => split,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::BadConfig;
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let (view, ok) = match ecosystem::load_from(file.as_deref(), &cwd) {
        Ok(eco) => view(&eco, env.as_deref()),
        Err(e) => (refused(&e), false),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view).unwrap_or_default()
        );
    } else {
        print!("{}", render(&view));
    }
    if ok { Exit::Success } else { Exit::BadConfig }
}

/// `[file] [env]`: a first word is the file when it looks like one.
fn split_words(words: &[String]) -> Result<(Option<PathBuf>, Option<String>), String> {
    let mut rest = words.iter();
    let mut file = None;
    let mut env = None;
    if let Some(first) = rest.next() {
        if ecosystem::looks_like_ecosystem_file(first) {
            file = Some(PathBuf::from(first));
            env = rest.next().cloned();
        } else {
            env = Some(first.clone());
        }
    }
    match rest.next() {
        Some(extra) => Err(format!(
            "unexpected argument `{extra}`: pmfleet config [ECOSYSTEM_FILE] [ENVIRONMENT]"
        )),
        None => Ok((file, env)),
    }
}

/// Everything `config` prints.
#[derive(Debug, Serialize)]
pub struct ConfigView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    pub environments: Vec<EnvView>,
    pub apps: Vec<AppView>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct EnvView {
    pub name: String,
    pub hosts: Vec<HostView>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub repo: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    pub ssh_options: Vec<String>,
    /// Hook name → command, in the order they run.
    pub hooks: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub keep_releases: usize,
    pub shared_dirs: Vec<String>,
    pub shared_files: Vec<String>,
    pub fetch: String,
    pub batch: String,
    pub max_fail: usize,
    /// `none` for `agent: false`, else its port, home and how it is reached.
    pub agent: String,
}

#[derive(Debug, Serialize)]
pub struct HostView {
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Serialize)]
pub struct AppView {
    pub name: String,
    pub script: String,
    pub args: Vec<String>,
    /// The program that runs the script (`none`: the script runs itself).
    pub interpreter: String,
    pub interpreter_args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    pub exec_mode: String,
    pub instances: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The environment the app gets from the file: with an environment named, every layer
    /// resolved (`deploy.<env>.env` < `env` < `env_<env>`); else `env` alone.
    pub env: BTreeMap<String, String>,
    /// Without an environment named: the `env_<name>` blocks.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env_by_name: BTreeMap<String, BTreeMap<String, String>>,
    pub restart: String,
    pub logs: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron_restart: Option<String>,
    pub namespace: String,
}

/// The view of a file that could not be read at all.
fn refused(e: &LoadError) -> ConfigView {
    let (errors, warnings) = match e {
        LoadError::Invalid { diagnostics, .. } => {
            let (errors, warnings): (Vec<&Diagnostic>, Vec<&Diagnostic>) =
                diagnostics.iter().partition(|d| d.is_error());
            let text = |d: Vec<&Diagnostic>| d.iter().map(|d| d.to_string()).collect();
            (text(errors), text(warnings))
        }
        other => (vec![other.to_string()], Vec::new()),
    };
    ConfigView {
        file: None,
        environments: Vec::new(),
        apps: Vec::new(),
        warnings,
        errors,
    }
}

/// The view of a loaded file, for `env` (every environment when `None`), and whether what was
/// asked for can be used.
pub fn view(eco: &Ecosystem, env: Option<&str>) -> (ConfigView, bool) {
    let mut errors: Vec<String> = Vec::new();
    let environments: Vec<EnvView> = match env {
        Some(name) => match eco.environment(name) {
            Ok(e) => vec![env_view(e)],
            Err(LoadError::Invalid { diagnostics, .. }) => {
                errors.extend(diagnostics.iter().map(Diagnostic::to_string));
                Vec::new()
            }
            Err(other) => {
                errors.push(other.to_string());
                Vec::new()
            }
        },
        None => {
            errors.extend(eco.deploy_errors.iter().map(Diagnostic::to_string));
            errors.extend(
                eco.broken_environments
                    .values()
                    .flatten()
                    .map(Diagnostic::to_string),
            );
            eco.deploy.values().map(env_view).collect()
        }
    };
    let deploy_env = env.and_then(|n| eco.deploy.get(n)).map(|e| &e.env);
    let apps = eco
        .apps
        .iter()
        .map(|a| app_view(a, env, deploy_env))
        .collect();
    // With an environment named, the problems of the others are warnings (one line each).
    let warnings = eco.warnings.iter().map(Diagnostic::to_string).collect();
    let ok = errors.is_empty();
    (
        ConfigView {
            file: Some(eco.source.clone()),
            environments,
            apps,
            warnings,
            errors,
        },
        ok,
    )
}

fn env_view(e: &DeployEnv) -> EnvView {
    let hooks = [
        ("pre-deploy-local", &e.hooks.pre_deploy_local),
        ("pre-setup", &e.hooks.pre_setup),
        ("post-setup", &e.hooks.post_setup),
        ("pre-deploy", &e.hooks.pre_deploy),
        ("post-deploy", &e.hooks.post_deploy),
        ("published", &e.hooks.published),
    ]
    .into_iter()
    .filter_map(|(name, cmd)| cmd.as_ref().map(|c| (name.to_owned(), c.clone())))
    .collect();
    EnvView {
        name: e.name.clone(),
        hosts: e
            .hosts
            .iter()
            .map(|h| HostView {
                host: h.host.clone(),
                user: h.user.clone(),
                port: h.port,
            })
            .collect(),
        git_ref: e.git_ref.clone(),
        repo: mask_url(&e.repo),
        path: e.path.clone(),
        key: e.key.clone(),
        ssh_options: e.ssh_options.clone(),
        hooks,
        env: masked(&e.env),
        keep_releases: e.keep_releases,
        shared_dirs: e.shared_dirs.clone(),
        shared_files: e.shared_files.clone(),
        fetch: match e.fetch {
            FetchMode::Host => "host".to_owned(),
            FetchMode::Push => "push".to_owned(),
        },
        batch: match e.batch {
            Batch::All => "all".to_owned(),
            Batch::Count(n) => n.to_string(),
            Batch::Percent(p) => format!("{p}%"),
        },
        max_fail: e.max_fail,
        agent: match &e.agent {
            None => "none".to_owned(),
            Some(a) => format!(
                "port {}, home {}, reached {}",
                a.port,
                a.home,
                match a.via {
                    AgentVia::Direct => "directly",
                    AgentVia::Ssh => "through SSH",
                }
            ),
        },
    }
}

fn app_view(a: &App, env: Option<&str>, deploy_env: Option<&BTreeMap<String, String>>) -> AppView {
    let (app_env, env_by_name) = match env {
        Some(name) => (
            masked(&a.resolved_env(deploy_env, Some(name))),
            BTreeMap::new(),
        ),
        None => (
            masked(&a.resolved_env(None, None)),
            a.env_by_name
                .iter()
                .map(|(k, v)| (k.clone(), masked(v)))
                .collect(),
        ),
    };
    let log = |p: &Option<PathBuf>, kind: &str| {
        p.as_ref().map_or_else(
            || format!("<agent home>/logs/{}-{kind}.log", a.name),
            |p| p.display().to_string(),
        )
    };
    let per_instance = a.exec_mode == ExecMode::Cluster && !a.merge_logs;
    AppView {
        name: a.name_for(env),
        script: a.script.clone(),
        args: a.args.clone(),
        interpreter: match &a.interpreter {
            Interpreter::None => "none".to_owned(),
            _ => a.interpreter_program().unwrap_or("none").to_owned(),
        },
        interpreter_args: a.interpreter_args.clone(),
        cwd: a.cwd.clone(),
        exec_mode: match a.exec_mode {
            ExecMode::Fork => "fork".to_owned(),
            ExecMode::Cluster => "cluster".to_owned(),
        },
        instances: match a.instances {
            Instances::Count(n) => n.to_string(),
            Instances::Max => "max (one per CPU)".to_owned(),
            Instances::AllBut(n) => format!("all CPUs but {n}"),
        },
        port: a.port,
        env: app_env,
        env_by_name,
        restart: restart_policy(a),
        logs: format!(
            "{} {}{}",
            log(&a.out_file, "out"),
            log(&a.error_file, "err"),
            if per_instance {
                " (one of each per instance)"
            } else {
                ""
            }
        ),
        watch: match &a.watch {
            Watch::Off => Vec::new(),
            Watch::On => vec![".".to_owned()],
            Watch::Paths(p) => p.clone(),
        },
        cron_restart: a.cron_restart.clone(),
        namespace: a.namespace.clone(),
    }
}

fn restart_policy(a: &App) -> String {
    if !a.autorestart {
        return "never (autorestart: false)".to_owned();
    }
    let mut out = format!(
        "up to {} unstable restarts (under {} ms up), delay {} ms",
        a.max_restarts,
        a.min_uptime.as_millis(),
        a.restart_delay.as_millis()
    );
    if let Some(backoff) = a.exp_backoff_restart_delay {
        out.push_str(&format!(", backoff from {} ms", backoff.as_millis()));
    }
    if let Some(bytes) = a.max_memory_restart {
        out.push_str(&format!(", over {}", pmfleet_shared::display::bytes(bytes)));
    }
    out
}

/// Whether a variable's name says it holds a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    const INSIDE: [&str; 8] = [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "CREDENTIAL",
        "PRIVATE",
        "APIKEY",
        "ACCESSKEY",
    ];
    const WORDS: [&str; 8] = [
        "KEY",
        "PASS",
        "PWD",
        "AUTH",
        "DSN",
        "SALT",
        "COOKIE",
        "SIGNATURE",
    ];
    INSIDE.iter().any(|w| upper.contains(w))
        || upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|part| WORDS.contains(&part) && name != "PWD")
}

/// An env block with secret-looking values masked, and passwords in URLs too.
fn masked(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.iter()
        .map(|(k, v)| {
            let shown = if looks_secret(k) && !v.is_empty() {
                MASK.to_owned()
            } else {
                mask_url(v)
            };
            (k.clone(), shown)
        })
        .collect()
}

/// `scheme://user:password@host…` with the password masked; anything else as it is.
pub fn mask_url(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, password)) if !password.is_empty() => {
                format!("{scheme}://{user}:{MASK}@{host}{tail}")
            }
            _ => value.to_owned(),
        },
        None => value.to_owned(),
    }
}

/// The text form: one block per environment, then the apps, the warnings and the errors.
pub fn render(v: &ConfigView) -> String {
    let mut out = String::new();
    let line = |out: &mut String, key: &str, value: &str| {
        out.push_str(&format!("  {key:<14}{value}\n"));
    };
    if let Some(file) = &v.file {
        out.push_str(&format!("{}\n", file.display()));
    }
    for e in &v.environments {
        out.push_str(&format!("\ndeploy.{}\n", e.name));
        for (i, h) in e.hosts.iter().enumerate() {
            let user = h
                .user
                .as_deref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default();
            let port = h.port.map(|p| format!(":{p}")).unwrap_or_default();
            line(
                &mut out,
                if i == 0 { "hosts" } else { "" },
                &format!("{user}{}{port}", h.host),
            );
        }
        line(&mut out, "ref", &e.git_ref);
        line(&mut out, "repo", &e.repo);
        line(&mut out, "path", &e.path);
        if let Some(key) = &e.key {
            line(&mut out, "key", &key.display().to_string());
        }
        for option in &e.ssh_options {
            line(&mut out, "ssh_option", option);
        }
        for (hook, cmd) in &e.hooks {
            line(&mut out, hook, cmd);
        }
        for (i, (k, value)) in e.env.iter().enumerate() {
            line(
                &mut out,
                if i == 0 { "env" } else { "" },
                &format!("{k}={value}"),
            );
        }
        let mut releases = format!("keep {}", e.keep_releases);
        if !e.shared_dirs.is_empty() {
            releases.push_str(&format!(", shared dirs {}", e.shared_dirs.join(" ")));
        }
        if !e.shared_files.is_empty() {
            releases.push_str(&format!(", shared files {}", e.shared_files.join(" ")));
        }
        line(&mut out, "releases", &releases);
        line(
            &mut out,
            "rollout",
            &format!(
                "fetch {}, batch {}, max_fail {}",
                e.fetch, e.batch, e.max_fail
            ),
        );
        line(&mut out, "agent", &e.agent);
    }
    if !v.apps.is_empty() {
        out.push_str("\napps\n");
    }
    for a in &v.apps {
        let mut command: Vec<&str> = Vec::new();
        if a.interpreter != "none" {
            command.push(&a.interpreter);
            command.extend(a.interpreter_args.iter().map(String::as_str));
        }
        command.push(&a.script);
        command.extend(a.args.iter().map(String::as_str));
        out.push_str(&format!("  {}\n", a.name));
        line(&mut out, "  run", &command.join(" "));
        let mut mode = format!("{} × {}", a.exec_mode, a.instances);
        if let Some(port) = a.port {
            mode.push_str(&format!(", port {port}"));
        }
        line(&mut out, "  mode", &mode);
        if let Some(cwd) = &a.cwd {
            line(&mut out, "  cwd", &cwd.display().to_string());
        }
        for (i, (k, value)) in a.env.iter().enumerate() {
            line(
                &mut out,
                if i == 0 { "  env" } else { "" },
                &format!("{k}={value}"),
            );
        }
        for (name, block) in &a.env_by_name {
            let pairs: Vec<String> = block.iter().map(|(k, v)| format!("{k}={v}")).collect();
            line(&mut out, &format!("  env_{name}"), &pairs.join(" "));
        }
        line(&mut out, "  restart", &a.restart);
        line(&mut out, "  logs", &a.logs);
        if !a.watch.is_empty() {
            line(&mut out, "  watch", &a.watch.join(" "));
        }
        if let Some(cron) = &a.cron_restart {
            line(&mut out, "  cron_restart", cron);
        }
        if a.namespace != "default" {
            line(&mut out, "  namespace", &a.namespace);
        }
    }
    for (title, items) in [("warnings", &v.warnings), ("errors", &v.errors)] {
        if !items.is_empty() {
            out.push_str(&format!("\n{title}\n"));
            for item in items {
                out.push_str(&format!("  {item}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Ecosystem {
        let file = std::path::Path::new("ecosystem.json");
        ecosystem::parse_str(text, ecosystem::Format::Json, file).unwrap()
    }

    const FILE: &str = r#"{
      apps: [{ name: 'api', script: 'server.js', instances: 'max', port: 3000,
               env: { NODE_ENV: 'dev', db_password: 'hunter2' },
               env_production: { NODE_ENV: 'production', api_token: 'abc' } }],
      deploy: {
        production: { user: 'deploy', host: ['web1', { host: 'web2', port: 2222, user: 'ops' }],
                      ref: 'origin/main', repo: 'https://ci:s3cret@git.example.com/acme/shop.git',
                      path: '/var/www/shop', 'post-deploy': 'npm ci',
                      env: { database_url: 'postgres://app:pw@db/shop', REGION: 'eu' } },
        staging: { host: 'SSH_HOSTMACHINE', ref: 'main', repo: 'r', path: '/p' },
      },
    }"#;

    #[test]
    fn secret_names() {
        // Matched in any case (written in small letters here).
        let secret = "db_password password api_token github_token secret_key_base \
                      aws_secret_access_key stripe_key private_key_pem apiKey sentry_dsn \
                      session_cookie basic_auth db_pass";
        for yes in secret.split_whitespace() {
            assert!(looks_secret(yes), "{yes}");
            assert!(looks_secret(&yes.to_ascii_uppercase()), "{yes}");
        }
        for no in [
            "NODE_ENV", "PORT", "REGION", "KEYBOARD", "MONKEY", "PATH", "PWD", "AUTHOR",
        ] {
            assert!(!looks_secret(no), "{no}");
        }
    }

    #[test]
    fn passwords_in_urls() {
        assert_eq!(
            mask_url("postgres://app:pw@db:5432/shop"),
            "postgres://app:********@db:5432/shop"
        );
        assert_eq!(
            mask_url("https://git.example.com/a.git"),
            "https://git.example.com/a.git"
        );
        assert_eq!(mask_url("ssh://git@host/a.git"), "ssh://git@host/a.git");
        assert_eq!(mask_url("not a url"), "not a url");
    }

    #[test]
    fn every_environment_and_the_apps() {
        let eco = parse(FILE);
        let (v, ok) = view(&eco, None);
        assert!(!ok, "staging is a template");
        assert_eq!(v.environments.len(), 1);
        assert_eq!(v.errors.len(), 1);
        assert!(
            v.errors[0].contains("deploy.staging.host"),
            "{:?}",
            v.errors
        );
        let prod = &v.environments[0];
        assert_eq!(prod.hosts[0].user.as_deref(), Some("deploy"));
        assert_eq!(prod.hosts[1].user.as_deref(), Some("ops"));
        assert_eq!(prod.hosts[1].port, Some(2222));
        assert_eq!(
            prod.repo,
            "https://ci:********@git.example.com/acme/shop.git"
        );
        assert_eq!(prod.env["database_url"], "postgres://app:********@db/shop");
        assert_eq!(prod.hooks["post-deploy"], "npm ci");
        let api = &v.apps[0];
        assert_eq!(api.env["db_password"], MASK);
        assert_eq!(api.env["NODE_ENV"], "dev");
        assert_eq!(api.env["PORT"], "3000");
        assert_eq!(api.env_by_name["production"]["api_token"], MASK);
        assert_eq!(api.exec_mode, "cluster");
        let text = render(&v);
        assert!(text.contains("deploy@web1"), "{text}");
        assert!(text.contains("ops@web2:2222"), "{text}");
        assert!(!text.contains("hunter2") && !text.contains("s3cret") && !text.contains(":pw@"));
        assert!(text.contains("\nerrors\n"), "{text}");
    }

    #[test]
    fn one_environment_resolves_the_apps_env() {
        let eco = parse(FILE);
        let (v, ok) = view(&eco, Some("production"));
        assert!(ok, "{:?}", v.errors);
        assert_eq!(v.environments.len(), 1);
        let api = &v.apps[0];
        assert_eq!(api.env["NODE_ENV"], "production");
        assert_eq!(
            api.env["REGION"], "eu",
            "deploy.production.env is the lowest layer"
        );
        assert_eq!(api.env["api_token"], MASK);
        assert!(api.env_by_name.is_empty());
        assert_eq!(v.warnings.len(), 1, "the broken staging, in one line");
        let (v, ok) = view(&eco, Some("staging"));
        assert!(!ok);
        assert!(v.errors[0].contains("placeholder"), "{:?}", v.errors);
        let (v, ok) = view(&eco, Some("prod"));
        assert!(!ok);
        assert!(
            v.errors[0].contains("did you mean `production`?"),
            "{:?}",
            v.errors
        );
    }

    #[test]
    fn words() {
        let w = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_owned).collect() };
        assert_eq!(split_words(&w("")).unwrap(), (None, None));
        assert_eq!(
            split_words(&w("production")).unwrap(),
            (None, Some("production".into()))
        );
        assert_eq!(
            split_words(&w("eco.json staging")).unwrap(),
            (Some(PathBuf::from("eco.json")), Some("staging".into()))
        );
        assert!(split_words(&w("a.json b c")).is_err());
    }
}
