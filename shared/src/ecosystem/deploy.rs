//! Validation of `deploy.<env>` blocks into [`DeployEnv`].
//!
//! Each environment is checked on its own: one that has problems is set aside with them
//! ([`DeployRead::broken`]) and stops only the commands that use it, so a template
//! `deploy.production` never stands in the way of `pmfleet-agent start` or of
//! `pmfleet deploy staging`.
//!
//! Values that end up on a remote shell or filesystem (host, user, path, ref, repo, env) are
//! checked only for what can never be valid there; quoting them is the controller's job.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::diagnostic::{FieldPath, Report};
use super::fields::{self, EnvBlock};
use super::hosts::{HostEntry, placeholder, read_hosts, user_name};
use super::keys::{self, KeyDef, Schema};
use super::model::{
    AgentSettings, AgentVia, Batch, DeployEnv, Diagnostic, FetchMode, Hooks, HostSpec,
};
use super::value::{Kind, Value};

/// Defaults of pmfleet's own deploy settings.
pub const DEFAULT_KEEP_RELEASES: usize = 5;

static DEPLOY_SCHEMA: Schema = Schema {
    keys: &[
        KeyDef::new("user"),
        KeyDef::new("host"),
        KeyDef::new("port"),
        KeyDef::new("key"),
        KeyDef::new("ssh_options"),
        KeyDef::new("ref"),
        KeyDef::new("repo"),
        KeyDef::new("path"),
        KeyDef::new("pre-setup"),
        KeyDef::new("post-setup"),
        KeyDef::new("pre-deploy-local"),
        KeyDef::new("pre-deploy"),
        KeyDef::new("post-deploy"),
        KeyDef::new("release"),
        KeyDef::new("on-failure"),
        KeyDef::new("published"),
        KeyDef::new("env"),
        KeyDef::new("keep_releases"),
        KeyDef::new("shared_dirs"),
        KeyDef::new("shared_files"),
        KeyDef::new("fetch"),
        KeyDef::new("batch"),
        KeyDef::new("max_fail"),
        KeyDef::new("agent"),
        KeyDef::new("watch_period"),
        KeyDef::new("notify"),
    ],
    unimplemented: &[
        (
            "forward-agent",
            "pmfleet authenticates with ssh-agent but never forwards it to the hosts; with `fetch: \"push\"` the hosts need no git credentials",
        ),
        (
            "needs_tty",
            "hooks run without a terminal, so that CI runs never block on a prompt",
        ),
        (
            "test",
            "put the check at the end of `post-deploy`: when it fails, the new release is discarded and `current` is left alone",
        ),
    ],
};

const REQUIRED: [(&str, &str); 4] = [
    (
        "host",
        "the machine(s) to deploy to, e.g. \"web1.example.com\" or [\"web1\", \"web2\"]",
    ),
    (
        "repo",
        "the git URL the code comes from, e.g. \"git@github.com:acme/api.git\"",
    ),
    (
        "path",
        "the deploy root on the hosts, e.g. \"/var/www/api\" or \"~/api\"",
    ),
    ("ref", "the git ref to deploy, e.g. \"origin/main\""),
];

/// What `deploy` held: the environments that can be used, and the others with their problems.
#[derive(Debug, Default)]
pub(crate) struct DeployRead {
    pub envs: BTreeMap<String, DeployEnv>,
    /// Environments with errors, each with every diagnostic found in it.
    pub broken: BTreeMap<String, Vec<Diagnostic>>,
    /// Problems with `deploy` itself.
    pub errors: Vec<Diagnostic>,
    /// Every environment's `env` block that could be read, also of a broken environment (PM2
    /// merges it into the apps' environment with `--env`, whatever else the block says).
    pub env_blocks: BTreeMap<String, BTreeMap<String, String>>,
}

/// Reads the whole `deploy` object. Warnings of usable environments go to `r`; everything
/// else is kept in the [`DeployRead`].
pub(crate) fn read_deploy(r: &mut Report, v: &Value, base_dir: &Path) -> DeployRead {
    let f = FieldPath::root().key("deploy");
    let mut out = DeployRead::default();
    let mut top = r.sibling();
    let Some(entries) = fields::object(&mut top, v, &f) else {
        if matches!(v.kind, Kind::Seq(_)) {
            // Replace the bare "expected an object" with what to write instead.
            top = r.sibling();
            top.expected(
                v,
                &f,
                "an object of environments",
                Some("write `deploy: { production: { host, repo, path, ref, ... } }`: one object per environment, named".to_owned()),
            );
        }
        out.errors = top.into_diagnostics();
        deploy_unusable(r, v, &f, &out.errors);
        return out;
    };
    for entry in entries {
        let field = f.key(&entry.key);
        let mut env_report = r.sibling();
        if out.envs.contains_key(&entry.key) || out.broken.contains_key(&entry.key) {
            top.error_at(
                entry.key_pos,
                &field,
                format!("environment `{}` is defined twice", entry.key),
                None,
            );
            continue;
        }
        if !valid_env_name(&entry.key) {
            env_report.error_at(
                entry.key_pos,
                &field,
                format!(
                    "`{}` is not usable as an environment name",
                    entry.key.escape_debug()
                ),
                Some("use letters, digits, `-`, `_` or `.`, e.g. `production`".to_owned()),
            );
            out.broken
                .insert(entry.key.clone(), env_report.into_diagnostics());
            continue;
        }
        let (env, env_block) =
            read_env(&mut env_report, &entry.key, &entry.value, &field, base_dir);
        if let Some(block) = env_block {
            out.env_blocks.insert(entry.key.clone(), block);
        }
        match env {
            Some(env) if !env_report.has_errors() => {
                r.extend(env_report.into_diagnostics());
                out.envs.insert(entry.key.clone(), env);
            }
            _ => {
                let diagnostics = env_report.into_diagnostics();
                r.warning_at(
                    entry.key_pos,
                    &field,
                    unusable(&format!("environment `{}`", entry.key), &diagnostics),
                    Some(format!(
                        "only a command that uses `{}` stops on this; `pmfleet config {} {}` lists every problem",
                        entry.key,
                        r.file().display(),
                        entry.key
                    )),
                );
                out.broken.insert(entry.key.clone(), diagnostics);
            }
        }
    }
    let top = top.into_diagnostics();
    let (errors, warnings): (Vec<_>, Vec<_>) = top.into_iter().partition(Diagnostic::is_error);
    r.extend(warnings);
    deploy_unusable(r, v, &f, &errors);
    out.errors = errors;
    out
}

/// The warning for problems with `deploy` itself, if there are any.
fn deploy_unusable(r: &mut Report, v: &Value, f: &FieldPath, errors: &[Diagnostic]) {
    if !errors.is_empty() {
        r.warning_at(
            v.pos,
            f,
            unusable("`deploy`", errors),
            Some("the apps are not affected; `pmfleet config` lists every problem".to_owned()),
        );
    }
}

/// "environment `x` cannot be used: <the first error> (and N more)".
fn unusable(what: &str, diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
    let first = errors.first().map_or_else(String::new, |d| {
        let at = d
            .location
            .map(|(l, c)| format!("{l}:{c}: "))
            .unwrap_or_default();
        let field = if d.field.is_empty() {
            String::new()
        } else {
            format!("{}: ", d.field)
        };
        format!(": {at}{field}{}", d.message)
    });
    let more = match errors.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    format!("{what} cannot be used{first}{more}")
}

/// Environment names are typed on the command line and written into history records.
fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One environment, and its `env` block when that could be read.
fn read_env(
    r: &mut Report,
    name: &str,
    v: &Value,
    f: &FieldPath,
    base_dir: &Path,
) -> (Option<DeployEnv>, Option<BTreeMap<String, String>>) {
    let Some(entries) = fields::object(r, v, f) else {
        return (None, None);
    };
    let before = r.error_count();
    // `None` once a value was reported, so missing-key errors are not doubled.
    let mut hosts: Option<Vec<HostEntry>> = None;
    let mut user = None;
    let mut port = None;
    let mut key = None;
    let mut ssh_options = Vec::new();
    let mut git_ref = None;
    let mut repo = None;
    let mut path = None;
    let mut hooks = Hooks::default();
    let mut env = BTreeMap::new();
    let mut env_block = None;
    let mut keep_releases = DEFAULT_KEEP_RELEASES;
    let mut shared_dirs = Vec::new();
    let mut shared_files = Vec::new();
    let mut fetch = FetchMode::default();
    let mut batch = Batch::default();
    let mut max_fail = 0usize;
    let mut agent = Some(AgentSettings::default());
    let mut watch_period = std::time::Duration::ZERO;
    let mut notify = Vec::new();
    let mut published_at = None;

    let selected = keys::select(r, &DEPLOY_SCHEMA, entries, f);
    // The hooks run on the hosts, for the PM2 check.
    let mut host_hooks = Vec::new();
    for (canonical, entry) in &selected.entries {
        let field = f.key(&entry.key);
        let value = &entry.value;
        match *canonical {
            "user" => user = user_name(r, value, &field),
            "host" => hosts = read_hosts(r, value, &field),
            "port" => port = fields::port(r, value, &field),
            "key" => key = fields::text(r, value, &field).map(|k| key_path(&k, base_dir)),
            "ssh_options" => ssh_options = read_ssh_options(r, value, &field).unwrap_or_default(),
            "ref" => git_ref = read_ref(r, value, &field),
            "repo" => repo = read_repo(r, value, &field),
            "path" => path = read_path(r, value, &field),
            "pre-setup" => hooks.pre_setup = read_hook(r, value, &field),
            "post-setup" => hooks.post_setup = read_hook(r, value, &field),
            "pre-deploy-local" => hooks.pre_deploy_local = read_hook(r, value, &field),
            "pre-deploy" => hooks.pre_deploy = read_hook(r, value, &field),
            "post-deploy" => hooks.post_deploy = read_hook(r, value, &field),
            "release" => hooks.release = read_hook(r, value, &field),
            "watch_period" => watch_period = fields::duration(r, value, &field).unwrap_or_default(),
            "on-failure" => hooks.on_failure = read_hook(r, value, &field),
            "notify" => notify = super::notify::read_notify(r, value, &field),
            "published" => {
                hooks.published = read_hook(r, value, &field);
                published_at = Some((value, field.clone()));
            }
            "env" => {
                env_block = fields::env_map(r, value, &field, EnvBlock::Deploy);
                env = env_block.clone().unwrap_or_default();
            }
            "keep_releases" => {
                keep_releases =
                    fields::int_in(r, value, &field, 1, 10_000, "a positive number of releases")
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(DEFAULT_KEEP_RELEASES);
            }
            "shared_dirs" => shared_dirs = read_shared(r, value, &field).unwrap_or_default(),
            "shared_files" => shared_files = read_shared(r, value, &field).unwrap_or_default(),
            "fetch" => fetch = read_fetch(r, value, &field),
            "batch" => batch = read_batch(r, value, &field).unwrap_or_default(),
            "agent" => agent = read_agent(r, value, &field),
            "max_fail" => {
                max_fail = fields::int_in(
                    r,
                    value,
                    &field,
                    0,
                    1_000_000,
                    "a number of hosts (0 or more)",
                )
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0);
            }
            _ => {}
        }
        let on_host = match *canonical {
            "pre-setup" => &hooks.pre_setup,
            "post-setup" => &hooks.post_setup,
            "pre-deploy" => &hooks.pre_deploy,
            "post-deploy" => &hooks.post_deploy,
            "published" => &hooks.published,
            _ => &None,
        };
        if let Some(command) = on_host {
            host_hooks.push((field.clone(), value, command.clone()));
        }
    }

    super::pm2_calls::check(r, &host_hooks, agent.is_some());
    if let (Some(_), Some((value, field))) = (&agent, published_at)
        && hooks.published.is_some()
    {
        r.error(
            value,
            &field,
            "`published` is for `agent: false` environments: with the agent, the agent itself moves the apps to the new release once it is `current`",
            Some("remove `published`, or set `agent: false` to run the apps yourself (with PM2, say) from it".to_owned()),
        );
    }

    for (required, example) in REQUIRED {
        if !selected.has(required) {
            r.error(
                v,
                f,
                format!("missing required key `{required}`"),
                Some(format!("add `{required}`: {example}")),
            );
        }
    }

    let Some(hosts) = hosts else {
        return (None, env_block);
    };
    let primary = read_primary(r, v, f, &hosts);
    let mut resolved: Vec<HostSpec> = Vec::with_capacity(hosts.len());
    for (i, h) in hosts.into_iter().enumerate() {
        let spec = HostSpec {
            host: h.host,
            port: h.port.or(port),
            user: h.user.or_else(|| user.clone()),
        };
        if resolved.contains(&spec) {
            r.error(
                v,
                &f.key("host").index(i),
                format!("host `{}` is listed twice", spec.host),
                None,
            );
        }
        resolved.push(spec);
    }

    if r.error_count() > before {
        return (None, env_block);
    }
    let (Some(git_ref), Some(repo), Some(path)) = (git_ref, repo, path) else {
        return (None, env_block);
    };
    let env = DeployEnv {
        name: name.to_owned(),
        hosts: resolved,
        key,
        ssh_options,
        git_ref,
        repo,
        path,
        hooks,
        env,
        keep_releases,
        shared_dirs,
        shared_files,
        fetch,
        batch,
        max_fail,
        agent,
        watch_period,
        primary,
        notify,
    };
    (Some(env), env_block)
}

/// The host marked `primary: true`, if one is; two are an error.
fn read_primary(r: &mut Report, v: &Value, f: &FieldPath, hosts: &[HostEntry]) -> Option<usize> {
    let marked: Vec<usize> = (0..hosts.len())
        .filter(|i| hosts.get(*i).is_some_and(|h| h.primary))
        .collect();
    if marked.len() > 1 {
        let names: Vec<&str> = marked
            .iter()
            .filter_map(|i| hosts.get(*i).map(|h| h.host.as_str()))
            .collect();
        r.error(
            v,
            &f.key("host"),
            format!(
                "{} hosts are marked `primary` ({}): the `release` step runs on one",
                marked.len(),
                names.join(", ")
            ),
            Some("keep `primary: true` on one host".to_owned()),
        );
    }
    marked.first().copied()
}

static AGENT_SCHEMA: Schema = Schema {
    keys: &[
        KeyDef::new("port"),
        KeyDef::new("home"),
        KeyDef::new("bind"),
        KeyDef::new("metrics"),
        KeyDef::new("via"),
    ],
    unimplemented: &[],
};

/// `agent`: `true`, `false`, or `{ port, home }`.
fn read_agent(r: &mut Report, v: &Value, f: &FieldPath) -> Option<AgentSettings> {
    match &v.kind {
        Kind::Bool(true) => Some(AgentSettings::default()),
        Kind::Bool(false) => None,
        Kind::Map(entries) => {
            let mut settings = AgentSettings::default();
            for (key, entry) in keys::select(r, &AGENT_SCHEMA, entries, f).entries {
                let field = f.key(&entry.key);
                match Some(key) {
                    Some("port") => {
                        if let Some(port) = fields::port(r, &entry.value, &field) {
                            settings.port = port;
                        }
                    }
                    Some("home") => {
                        if let Some(home) = read_path(r, &entry.value, &field) {
                            settings.home = home;
                        }
                    }
                    Some("via") => match entry.value.as_str() {
                        Some("tls") => settings.via = AgentVia::Direct,
                        Some("ssh") => settings.via = AgentVia::Ssh,
                        _ => r.expected(
                            &entry.value,
                            &field,
                            "\"tls\" or \"ssh\"",
                            Some("\"tls\": the controller dials the agent's port; \"ssh\": through the SSH connection, the agent listening on the host's loopback only".to_owned()),
                        ),
                    },
                    Some("bind") => match entry.value.as_str() {
                        Some("host") => settings.bind_host = true,
                        Some("all") => settings.bind_host = false,
                        _ => r.expected(
                            &entry.value,
                            &field,
                            "\"all\" or \"host\"",
                            Some("\"host\": apps listen on the host's own address; \"all\": on every interface".to_owned()),
                        ),
                    },
                    Some("metrics") => {
                        if let Some(m) = read_agent_metrics(r, &entry.value, &field) {
                            settings.metrics = m;
                        }
                    }
                    _ => {}
                }
            }
            Some(settings)
        }
        _ => {
            r.expected(
                v,
                f,
                "true, false or { \"port\": 7677, \"home\": \"~/.pmfleet-agent\" }",
                Some("`agent: false` deploys without the pmfleet agent (restart the apps from `post-deploy`)".to_owned()),
            );
            None
        }
    }
}

/// `agent.metrics`: `false`, `true` (127.0.0.1:9209), a port, a loopback `"ADDR:PORT"`, or
/// `"tls"`.
fn read_agent_metrics(r: &mut Report, v: &Value, f: &FieldPath) -> Option<super::MetricsListen> {
    let text = match &v.kind {
        Kind::Bool(true) => "on".to_string(),
        Kind::Bool(false) => "off".to_string(),
        Kind::Int(n) => n.to_string(),
        Kind::Str(s) if !s.trim().is_empty() => s.clone(),
        _ => {
            r.expected(
                v,
                f,
                "false, true, a port, \"127.0.0.1:PORT\" or \"tls\"",
                None,
            );
            return None;
        }
    };
    match super::MetricsListen::parse(&text) {
        Ok(m) => Some(m),
        Err(message) => {
            r.error(
                v,
                f,
                message,
                Some("`true` serves http://127.0.0.1:9209/metrics on each host; `\"tls\"` serves them on the agent's mutual-TLS port to scrapers with a fleet certificate".to_owned()),
            );
            None
        }
    }
}

/// `key`: `~/` expands to this user's home, a relative path is taken from the ecosystem
/// file's directory.
fn key_path(key: &str, base_dir: &Path) -> PathBuf {
    if let Some(rest) = key.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    let path = PathBuf::from(key);
    if path.is_absolute() || key.starts_with('~') {
        path
    } else {
        base_dir.join(path)
    }
}

/// `ssh_options`: `"StrictHostKeyChecking=no"` or a list of them; `Key Value` is accepted
/// and normalised to `Key=Value`.
fn read_ssh_options(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Vec<String>> {
    let list = fields::string_list(r, v, f)?;
    let mut out = Vec::with_capacity(list.len());
    let mut ok = true;
    for (i, option) in list.iter().enumerate() {
        let field = if matches!(v.kind, Kind::Seq(_)) {
            f.index(i)
        } else {
            f.clone()
        };
        let option = option.trim();
        let bad = if option.is_empty() {
            Some("an ssh option must not be empty".to_owned())
        } else if option.chars().any(char::is_control) {
            Some("an ssh option must not contain control characters or line breaks".to_owned())
        } else if option.starts_with('-') {
            Some(format!(
                "`{option}` is a command-line flag, not an ssh_config option"
            ))
        } else {
            None
        };
        if let Some(message) = bad {
            r.error(
                v,
                &field,
                message,
                Some("write options as `Name=value`, e.g. \"ServerAliveInterval=15\"".to_owned()),
            );
            ok = false;
            continue;
        }
        if option.contains('=') {
            out.push(option.to_owned());
        } else if let Some((name, value)) = option.split_once(char::is_whitespace) {
            out.push(format!("{name}={}", value.trim_start()));
        } else {
            r.error(
                v,
                &field,
                format!("`{option}` has no value"),
                Some("write options as `Name=value`, e.g. \"ServerAliveInterval=15\"".to_owned()),
            );
            ok = false;
        }
    }
    ok.then_some(out)
}

fn read_ref(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    fields::word(r, v, f, "ref")
}

fn read_repo(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    if placeholder(r, v, f) {
        return None;
    }
    let repo = fields::string(r, v, f)?;
    if repo.trim().is_empty() {
        r.error(v, f, "repo must not be empty", None);
        None
    } else if let Some(c) = repo.chars().find(|c| c.is_control()) {
        r.error(
            v,
            f,
            format!("repo contains {}", fields::describe_bad_char(c)),
            None,
        );
        None
    } else if repo.starts_with('-') {
        r.error(
            v,
            f,
            format!("repo {} starts with `-`", v.describe()),
            Some("a value starting with `-` would be read as a git option".to_owned()),
        );
        None
    } else {
        Some(repo)
    }
}

/// `path`: absolute on the host, or under the login user's home (`~`, `~/…`).
fn read_path(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    if placeholder(r, v, f) {
        return None;
    }
    let path = fields::string(r, v, f)?;
    if let Some(c) = path.chars().find(|c| matches!(c, '\0' | '\n' | '\r')) {
        r.error(
            v,
            f,
            format!("path contains {}", fields::describe_bad_char(c)),
            None,
        );
        return None;
    }
    if path.starts_with('/') || path == "~" || path.starts_with("~/") {
        return Some(path);
    }
    let hint = if path.starts_with('~') {
        "`~user` is not expanded; write the absolute path, or `~/…` for the login user's home"
            .to_owned()
    } else if path.is_empty() {
        "write the deploy root on the hosts, e.g. \"/var/www/app\" or \"~/app\"".to_owned()
    } else {
        {
            let rel = path.trim_start_matches("./");
            let abs = if rel.contains('/') {
                format!("/{rel}")
            } else {
                format!("/var/www/{rel}")
            };
            format!(
                "write an absolute path such as \"{abs}\", or \"~/{rel}\" under the login user's home"
            )
        }
    };
    r.error(
        v,
        f,
        format!(
            "path must be absolute or start with `~/`, found {}",
            v.describe()
        ),
        Some(hint),
    );
    None
}

/// A hook: a shell command, or an array of commands run one after another (joined with `&&`).
fn read_hook(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    let command = match &v.kind {
        Kind::Str(s) => s.clone(),
        Kind::Seq(_) => fields::string_list(r, v, f)?
            .iter()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join(" && "),
        _ => {
            r.expected(v, f, "a shell command or an array of commands", None);
            return None;
        }
    };
    if command.contains('\0') {
        r.error(v, f, "a hook must not contain a NUL character", None);
        return None;
    }
    let command = command.trim();
    (!command.is_empty()).then(|| command.to_owned())
}

/// `shared_dirs` / `shared_files`: paths relative to the release, staying inside it.
fn read_shared(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Vec<String>> {
    let Kind::Seq(items) = &v.kind else {
        r.expected(
            v,
            f,
            "an array of relative paths",
            Some("e.g. [\"logs\", \"node_modules\"]".to_owned()),
        );
        return None;
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let field = f.index(i);
        let Some(raw) = fields::string(r, item, &field) else {
            ok = false;
            continue;
        };
        match relative_path(&raw) {
            Ok(clean) if out.contains(&clean) => {
                r.error(item, &field, format!("`{clean}` is listed twice"), None);
                ok = false;
            }
            Ok(clean) => out.push(clean),
            Err(problem) => {
                r.error(
                    item,
                    &field,
                    format!("{problem}, found {}", item.describe()),
                    Some("shared paths are relative to the release, e.g. \"logs\" or \"config/.env\"".to_owned()),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `./logs/` → `logs`; refuses absolute paths, `..`, `~`, empty, and control characters.
fn relative_path(raw: &str) -> Result<String, &'static str> {
    if raw.chars().any(char::is_control) {
        return Err("a shared path must not contain control characters");
    }
    if raw.starts_with('~') {
        return Err("a shared path must be relative to the release, not under `~`");
    }
    let path = Path::new(raw);
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err("a shared path must not contain `..`"),
            Component::RootDir | Component::Prefix(_) => {
                return Err("a shared path must be relative, not absolute");
            }
        }
    }
    if parts.is_empty() {
        return Err("a shared path must name something inside the release");
    }
    Ok(parts.join("/"))
}

fn read_fetch(r: &mut Report, v: &Value, f: &FieldPath) -> FetchMode {
    match v.as_str() {
        Some("host") => FetchMode::Host,
        Some("push") => FetchMode::Push,
        Some("fast") => {
            r.warning_at(
                v.pos,
                f,
                "PM2's `fetch: \"fast\"` (shallow clone) is not supported; fetching on the host through a mirror",
                Some("pmfleet reads `fetch` as \"host\" or \"push\"".to_owned()),
            );
            FetchMode::Host
        }
        _ => {
            r.expected(
                v,
                f,
                "\"host\" or \"push\"",
                Some("\"host\": each host fetches from `repo`; \"push\": the controller sends the code over SSH".to_owned()),
            );
            FetchMode::default()
        }
    }
}

/// `batch`: `1`, a number of hosts, a percentage such as `"25%"`, or `"all"`.
fn read_batch(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Batch> {
    let hint = || {
        Some("write a number of hosts (1 for one at a time), a percentage such as \"25%\", or \"all\"".to_owned())
    };
    if let Some(s) = v.as_str() {
        let s = s.trim();
        if s == "all" {
            return Some(Batch::All);
        }
        if let Some(pct) = s.strip_suffix('%') {
            return match pct.trim().parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => Some(Batch::Percent(p)),
                _ => {
                    r.expected(v, f, "a percentage from 1% to 100%", hint());
                    None
                }
            };
        }
    }
    match fields::integer(v)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n >= 1)
    {
        Some(n) => Some(Batch::Count(n)),
        None => {
            r.expected(v, f, "a batch size", hint());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecosystem::json;

    fn read(
        text: &str,
    ) -> (
        BTreeMap<String, DeployEnv>,
        Vec<crate::ecosystem::Diagnostic>,
    ) {
        let (read, summary) = read_all(text);
        let mut diags = read.errors.clone();
        diags.extend(read.broken.values().flatten().cloned());
        diags.extend(
            summary
                .into_iter()
                .filter(|d| !d.message.contains("cannot be used")),
        );
        (read.envs, diags)
    }

    /// What `read_deploy` keeps, and what it reports.
    fn read_all(text: &str) -> (DeployRead, Vec<crate::ecosystem::Diagnostic>) {
        let v = json::parse(text).unwrap();
        let mut r = Report::new(Path::new("e.json"));
        let out = read_deploy(&mut r, &v, Path::new("/proj"));
        (out, r.into_diagnostics())
    }

    const MINIMAL: &str =
        r#""repo": "git@example.com:a/b.git", "path": "/srv/app", "ref": "origin/main""#;

    #[test]
    fn agent_metrics_say_where_prometheus_reads_each_agent() {
        use crate::ecosystem::MetricsListen;
        let local = |a: &str| Some(MetricsListen::Local(a.parse().unwrap()));
        let table = [
            ("false", Some(MetricsListen::Off)),
            ("true", local("127.0.0.1:9209")),
            ("9300", local("127.0.0.1:9300")),
            (r#""127.0.0.1:9301""#, local("127.0.0.1:9301")),
            (r#""tls""#, Some(MetricsListen::Tls)),
            (r#""0.0.0.0:9300""#, None),
            ("[1]", None),
        ];
        for (value, want) in table {
            let (envs, diags) = read(&format!(
                r#"{{"p": {{"host": "a", "agent": {{"metrics": {value}}}, {MINIMAL}}}}}"#
            ));
            match want {
                Some(want) => {
                    assert!(diags.is_empty(), "{value}: {diags:?}");
                    let agent = envs["p"].agent.as_ref().unwrap();
                    assert_eq!(agent.metrics, want, "{value}");
                }
                None => {
                    assert_eq!(diags.len(), 1, "{value}: {diags:?}");
                    assert_eq!(diags[0].field, "deploy.p.agent.metrics", "{value}");
                }
            }
        }
        let (envs, _) = read(&format!(r#"{{"p": {{"host": "a", {MINIMAL}}}}}"#));
        assert_eq!(
            envs["p"].agent.as_ref().unwrap().metrics,
            MetricsListen::Off
        );
    }

    #[test]
    fn minimal_environment_gets_defaults() {
        let (envs, diags) = read(&format!(
            r#"{{"production": {{"host": "web1", {MINIMAL}}}}}"#
        ));
        assert!(diags.is_empty(), "{diags:?}");
        let env = &envs["production"];
        assert_eq!(env.name, "production");
        assert_eq!(
            env.hosts,
            vec![HostSpec {
                host: "web1".into(),
                port: None,
                user: None
            }]
        );
        assert_eq!(env.keep_releases, 5);
        assert_eq!(env.fetch, FetchMode::Host);
        assert_eq!(env.batch, Batch::All);
        assert_eq!(env.max_fail, 0);
        assert_eq!(env.hooks, Hooks::default());
    }

    #[test]
    fn the_rollout_rails_are_read() {
        let (envs, diags) = read(&format!(
            r#"{{"p": {{"host": ["a", {{"host": "b", "primary": true}}], "watch_period": "30s", "release": "./migrate", {MINIMAL}}}}}"#
        ));
        assert!(diags.is_empty(), "{diags:?}");
        let env = &envs["p"];
        assert_eq!(env.watch_period, std::time::Duration::from_secs(30));
        assert_eq!(env.hooks.release.as_deref(), Some("./migrate"));
        assert_eq!(env.primary, Some(1));
        let (envs, _) = read(&format!(r#"{{"p": {{"host": "a", {MINIMAL}}}}}"#));
        assert_eq!(envs["p"].watch_period, std::time::Duration::ZERO);
        assert_eq!(envs["p"].primary, None);
        let (envs, diags) = read(&format!(
            r#"{{"p": {{"host": [{{"host": "a", "primary": true}}, {{"host": "b", "primary": true}}], {MINIMAL}}}}}"#
        ));
        assert!(envs.is_empty());
        assert!(
            diags
                .iter()
                .any(|d| d.message.contains("2 hosts are marked `primary` (a, b)")),
            "{diags:?}"
        );
    }

    #[test]
    fn host_entries_inherit_user_and_port() {
        let (envs, diags) = read(&format!(
            r#"{{"p": {{"user": "deploy", "port": "2222", "host": ["a", {{"host": "b", "port": 22, "user": "root"}}, {{"host": "c"}}], {MINIMAL}}}}}"#
        ));
        assert!(diags.is_empty(), "{diags:?}");
        let hosts = &envs["p"].hosts;
        assert_eq!(
            hosts[0],
            HostSpec {
                host: "a".into(),
                port: Some(2222),
                user: Some("deploy".into())
            }
        );
        assert_eq!(
            hosts[1],
            HostSpec {
                host: "b".into(),
                port: Some(22),
                user: Some("root".into())
            }
        );
        assert_eq!(
            hosts[2],
            HostSpec {
                host: "c".into(),
                port: Some(2222),
                user: Some("deploy".into())
            }
        );
    }

    #[test]
    fn hooks_from_strings_and_arrays() {
        let (envs, diags) = read(&format!(
            r#"{{"p": {{"host": "a", "post-deploy": ["npm ci", "npm run build", ""], "pre-setup": "  ", "pre-deploy-local": "echo hi", {MINIMAL}}}}}"#
        ));
        assert!(diags.is_empty(), "{diags:?}");
        let hooks = &envs["p"].hooks;
        assert_eq!(
            hooks.post_deploy.as_deref(),
            Some("npm ci && npm run build")
        );
        assert_eq!(hooks.pre_setup, None);
        assert_eq!(hooks.pre_deploy_local.as_deref(), Some("echo hi"));
    }

    #[test]
    fn our_settings() {
        let (envs, diags) = read(&format!(
            r#"{{"p": {{"host": "a", "keep_releases": 3, "shared_dirs": ["./logs/", "node_modules"], "shared_files": [".env"], "fetch": "push", "batch": "25%", "max_fail": 1, {MINIMAL}}}}}"#
        ));
        assert!(diags.is_empty(), "{diags:?}");
        let env = &envs["p"];
        assert_eq!(env.keep_releases, 3);
        assert_eq!(env.shared_dirs, vec!["logs", "node_modules"]);
        assert_eq!(env.shared_files, vec![".env"]);
        assert_eq!(env.fetch, FetchMode::Push);
        assert_eq!(env.batch, Batch::Percent(25));
        assert_eq!(env.max_fail, 1);
    }

    #[test]
    fn batches() {
        for (text, want) in [
            ("1", Batch::Count(1)),
            ("3", Batch::Count(3)),
            ("\"2\"", Batch::Count(2)),
            ("\"all\"", Batch::All),
            ("\"100%\"", Batch::Percent(100)),
        ] {
            let (envs, diags) = read(&format!(
                r#"{{"p": {{"host": "a", "batch": {text}, {MINIMAL}}}}}"#
            ));
            assert!(diags.is_empty(), "{text}: {diags:?}");
            assert_eq!(envs["p"].batch, want, "{text}");
        }
        for text in ["0", "-1", "\"0%\"", "\"150%\"", "\"half\""] {
            let (envs, diags) = read(&format!(
                r#"{{"p": {{"host": "a", "batch": {text}, {MINIMAL}}}}}"#
            ));
            assert!(envs.is_empty(), "{text}");
            assert_eq!(diags.len(), 1, "{text}: {diags:?}");
            assert_eq!(diags[0].field, "deploy.p.batch");
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let (envs, diags) = read(
            r#"{"p": {"host": ["-oProxyCommand=x", "deploy@web2", "web3:22", "ok host"], "port": "abc", "path": "relative/dir", "ref": "--upload-pack=x", "repo": "-u", "post_deploy": "x", "env": {"BAD-NAME": "1"}, "shared_dirs": ["/abs", "../up"]}}"#,
        );
        assert!(envs.is_empty());
        let fields: Vec<&str> = diags.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "deploy.p.post_deploy",
                "deploy.p.host[0]",
                "deploy.p.host[1]",
                "deploy.p.host[2]",
                "deploy.p.host[3]",
                "deploy.p.port",
                "deploy.p.path",
                "deploy.p.ref",
                "deploy.p.repo",
                "deploy.p.env.BAD-NAME",
                "deploy.p.shared_dirs[0]",
                "deploy.p.shared_dirs[1]",
            ],
            "{diags:#?}"
        );
        assert_eq!(
            diags[0].hint.as_deref(),
            Some("did you mean `post-deploy`?")
        );
        assert!(!diags[0].is_error(), "an unknown key is a warning");
        assert!(
            diags[2]
                .hint
                .as_deref()
                .unwrap()
                .contains("user: \"deploy\"")
        );
    }

    #[test]
    fn missing_required_keys() {
        let (envs, diags) = read(r#"{"p": {"user": "x"}}"#);
        assert!(envs.is_empty());
        let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                "missing required key `host`",
                "missing required key `repo`",
                "missing required key `path`",
                "missing required key `ref`"
            ]
        );
        assert!(
            diags.iter().all(|d| d.location == Some((1, 7))),
            "{diags:?}"
        );
    }

    #[test]
    fn pm2_keys_not_implemented_are_warnings() {
        let (envs, diags) = read(&format!(
            r#"{{"p": {{"host": "a", "forward-agent": "yes", "fetch": "fast", {MINIMAL}}}}}"#
        ));
        assert!(envs.contains_key("p"));
        assert_eq!(diags.len(), 2);
        assert!(diags.iter().all(|d| !d.is_error()));
        assert!(diags[0].message.contains("`forward-agent`"));
    }

    #[test]
    fn paths() {
        for ok in ["/srv/app", "~", "~/app", "/path with space/$(x)"] {
            let (envs, diags) = read(&format!(
                r#"{{"p": {{"host": "a", "repo": "r", "ref": "main", "path": "{ok}"}}}}"#
            ));
            assert!(diags.is_empty(), "{ok}: {diags:?}");
            assert_eq!(envs["p"].path, ok);
        }
        for bad in ["app", "./app", "~bob/app", "", "/srv/a\\nb"] {
            let (_, diags) = read(&format!(
                r#"{{"p": {{"host": "a", "repo": "r", "ref": "main", "path": "{bad}"}}}}"#
            ));
            assert_eq!(diags.len(), 1, "{bad}: {diags:?}");
        }
    }

    #[test]
    fn ssh_options_and_key() {
        let (envs, diags) = read(&format!(
            r#"{{"p": {{"host": "a", "ssh_options": ["StrictHostKeyChecking=no", "ServerAliveInterval 15"], "key": "deploy/id_ed25519", {MINIMAL}}}}}"#
        ));
        assert!(diags.is_empty(), "{diags:?}");
        let env = &envs["p"];
        assert_eq!(
            env.ssh_options,
            vec!["StrictHostKeyChecking=no", "ServerAliveInterval=15"]
        );
        assert_eq!(
            env.key.as_deref(),
            Some(Path::new("/proj/deploy/id_ed25519"))
        );
        let (_, diags) = read(&format!(
            r#"{{"p": {{"host": "a", "ssh_options": "-v", {MINIMAL}}}}}"#
        ));
        assert_eq!(diags.len(), 1);
    }

    #[test]
    fn duplicate_hosts_and_environments() {
        let (_, diags) = read(&format!(r#"{{"p": {{"host": ["a", "a"], {MINIMAL}}}}}"#));
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("listed twice"));
        let (_, diags) = read(&format!(
            r#"{{"p": {{"host": "a", "host": "b", {MINIMAL}}}}}"#
        ));
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("given twice"));
    }

    #[test]
    fn a_pm2_init_template_names_its_placeholders() {
        let (read, _) = read_all(
            r#"{"production": {"user": "SSH_USERNAME", "host": "SSH_HOSTMACHINE", "ref": "origin/master",
                "repo": "GIT_REPOSITORY", "path": "DESTINATION_PATH", "pre-setup": ""}}"#,
        );
        let diags = &read.broken["production"];
        let fields: Vec<&str> = diags.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "deploy.production.user",
                "deploy.production.host",
                "deploy.production.repo",
                "deploy.production.path"
            ]
        );
        assert!(diags.iter().all(|d| d.message.contains("placeholder")));
        assert_eq!(
            diags[1].hint.as_deref(),
            Some("replace it with the host to deploy to")
        );
    }

    #[test]
    fn ssh_options_in_a_host_say_which_key_to_use() {
        for (host, port) in [
            ("web1 -p 422", "422"),
            ("-p 2222 web2", "2222"),
            ("web3 -p2200", "2200"),
        ] {
            let (read, _) = read_all(&format!(r#"{{"p": {{"host": "{host}", {MINIMAL}}}}}"#));
            let d = &read.broken["p"][0];
            assert_eq!(
                d.hint
                    .as_deref()
                    .map(|h| h.starts_with(&format!("use `port: {port}`"))),
                Some(true),
                "{host}: {d}"
            );
        }
        let (read, _) = read_all(&format!(
            r#"{{"p": {{"host": "-oProxyCommand=x", {MINIMAL}}}}}"#
        ));
        assert!(read.broken["p"][0].message.contains("starts with `-`"));
    }

    #[test]
    fn an_environment_with_problems_is_set_aside_with_them() {
        let (read, summary) = read_all(&format!(
            r#"{{"bad": {{"host": "a", "port": "x", "hots": "b"}}, "good": {{"host": "a", "bogus": 1, {MINIMAL}}}}}"#
        ));
        assert_eq!(read.envs.keys().collect::<Vec<_>>(), vec!["good"]);
        let bad = &read.broken["bad"];
        assert_eq!(bad.iter().filter(|d| d.is_error()).count(), 4, "{bad:#?}");
        assert_eq!(
            bad.iter().filter(|d| !d.is_error()).count(),
            1,
            "the warning stays with it"
        );
        assert_eq!(summary.len(), 2, "{summary:#?}");
        assert!(
            summary[0]
                .message
                .starts_with("environment `bad` cannot be used: 1:")
        );
        assert!(
            summary[0].message.ends_with("(and 3 more)"),
            "{}",
            summary[0].message
        );
        assert_eq!(summary[1].field, "deploy.good.bogus");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_path("./logs/").unwrap(), "logs");
        assert_eq!(relative_path("config/.env").unwrap(), "config/.env");
        assert!(relative_path("/etc").is_err());
        assert!(relative_path("a/../../b").is_err());
        assert!(relative_path(".").is_err());
        assert!(relative_path("~/x").is_err());
    }
}
