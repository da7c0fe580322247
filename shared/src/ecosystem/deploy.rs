//! Validation of `deploy.<env>` blocks into [`DeployEnv`].
//!
//! Values that end up on a remote shell or filesystem (host, user, path, ref, repo, env) are
//! checked only for what can never be valid there; quoting them is the controller's job.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::diagnostic::{FieldPath, Report};
use super::fields::{self, KeyDef, KeyWalk, Schema};
use super::model::{AgentSettings, Batch, DeployEnv, FetchMode, Hooks, HostSpec};
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
        KeyDef::new("env"),
        KeyDef::new("keep_releases"),
        KeyDef::new("shared_dirs"),
        KeyDef::new("shared_files"),
        KeyDef::new("fetch"),
        KeyDef::new("batch"),
        KeyDef::new("max_fail"),
        KeyDef::new("agent"),
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

static HOST_SCHEMA: Schema = Schema {
    keys: &[
        KeyDef::new("host"),
        KeyDef::new("port"),
        KeyDef::new("user"),
    ],
    unimplemented: &[],
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

/// Reads the whole `deploy` object; environments with errors are left out (and reported).
pub(crate) fn read_deploy(
    r: &mut Report,
    v: &Value,
    base_dir: &Path,
) -> BTreeMap<String, DeployEnv> {
    let f = FieldPath::root().key("deploy");
    let mut out = BTreeMap::new();
    let Some(entries) = fields::object(r, v, &f) else {
        return out;
    };
    for entry in entries {
        let field = f.key(&entry.key);
        if out.contains_key(&entry.key) {
            r.error_at(
                entry.key_pos,
                &field,
                format!("environment `{}` is defined twice", entry.key),
                None,
            );
            continue;
        }
        if !valid_env_name(&entry.key) {
            r.error_at(
                entry.key_pos,
                &field,
                format!(
                    "`{}` is not usable as an environment name",
                    entry.key.escape_debug()
                ),
                Some("use letters, digits, `-`, `_` or `.`, e.g. `production`".to_owned()),
            );
            continue;
        }
        if let Some(env) = read_env(r, &entry.key, &entry.value, &field, base_dir) {
            out.insert(entry.key.clone(), env);
        }
    }
    out
}

/// Environment names are typed on the command line and written into history records.
fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn read_env(
    r: &mut Report,
    name: &str,
    v: &Value,
    f: &FieldPath,
    base_dir: &Path,
) -> Option<DeployEnv> {
    let entries = fields::object(r, v, f)?;
    let mut walk = KeyWalk::new();
    let mut ok = true;
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
    let mut keep_releases = DEFAULT_KEEP_RELEASES;
    let mut shared_dirs = Vec::new();
    let mut shared_files = Vec::new();
    let mut fetch = FetchMode::default();
    let mut batch = Batch::default();
    let mut max_fail = 0usize;
    let mut agent = Some(AgentSettings::default());

    for entry in entries {
        let field = f.key(&entry.key);
        let before = r.error_count();
        let Some(canonical) = walk.accept(r, &DEPLOY_SCHEMA, entry, &field) else {
            ok &= r.error_count() == before;
            continue;
        };
        let value = &entry.value;
        match canonical {
            "user" => user = fields::word(r, value, &field, "user name"),
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
            "env" => env = fields::env_map(r, value, &field).unwrap_or_default(),
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
        if r.error_count() > before {
            ok = false;
        }
    }

    for (required, example) in REQUIRED {
        if !walk.has(required) {
            r.error(
                v,
                f,
                format!("missing required key `{required}`"),
                Some(format!("add `{required}`: {example}")),
            );
            ok = false;
        }
    }

    let hosts = hosts?;
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
            ok = false;
        }
        resolved.push(spec);
    }

    if !ok {
        return None;
    }
    Some(DeployEnv {
        name: name.to_owned(),
        hosts: resolved,
        key,
        ssh_options,
        git_ref: git_ref?,
        repo: repo?,
        path: path?,
        hooks,
        env,
        keep_releases,
        shared_dirs,
        shared_files,
        fetch,
        batch,
        max_fail,
        agent,
    })
}

static AGENT_SCHEMA: Schema = Schema {
    keys: &[
        KeyDef::new("port"),
        KeyDef::new("home"),
        KeyDef::new("bind"),
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
            let mut walk = KeyWalk::new();
            for entry in entries {
                let field = f.key(&entry.key);
                match walk.accept(r, &AGENT_SCHEMA, entry, &field) {
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

struct HostEntry {
    host: String,
    port: Option<u16>,
    user: Option<String>,
}

/// `host`: a string, an array of strings, or an array of `{host, port, user}` objects.
fn read_hosts(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Vec<HostEntry>> {
    match &v.kind {
        Kind::Str(_) => Some(vec![HostEntry {
            host: host_name(r, v, f)?,
            port: None,
            user: None,
        }]),
        Kind::Seq(items) => {
            if items.is_empty() {
                r.error(
                    v,
                    f,
                    "the host list is empty",
                    Some("list at least one host".to_owned()),
                );
                return None;
            }
            let mut out = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                let field = f.index(i);
                let host = match &item.kind {
                    Kind::Str(_) => host_name(r, item, &field).map(|host| HostEntry {
                        host,
                        port: None,
                        user: None,
                    }),
                    Kind::Map(_) => read_host_object(r, item, &field),
                    _ => {
                        r.expected(
                            item,
                            &field,
                            "a host name or a {host, port, user} object",
                            None,
                        );
                        None
                    }
                };
                match host {
                    Some(h) => out.push(h),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        _ => {
            r.expected(
                v,
                f,
                "a host name, an array of host names, or an array of {host, port, user} objects",
                None,
            );
            None
        }
    }
}

fn read_host_object(r: &mut Report, v: &Value, f: &FieldPath) -> Option<HostEntry> {
    let entries = fields::object(r, v, f)?;
    let mut walk = KeyWalk::new();
    let mut ok = true;
    let (mut host, mut port, mut user) = (None, None, None);
    for entry in entries {
        let field = f.key(&entry.key);
        let before = r.error_count();
        let Some(canonical) = walk.accept(r, &HOST_SCHEMA, entry, &field) else {
            ok &= r.error_count() == before;
            continue;
        };
        match canonical {
            "host" => {
                host = host_name(r, &entry.value, &field);
                ok &= host.is_some();
            }
            "port" => {
                port = fields::port(r, &entry.value, &field);
                ok &= port.is_some();
            }
            "user" => {
                user = fields::word(r, &entry.value, &field, "user name");
                ok &= user.is_some();
            }
            _ => {}
        }
    }
    if !walk.has("host") {
        r.error(v, f, "missing required key `host`", None);
        return None;
    }
    if !ok {
        return None;
    }
    Some(HostEntry {
        host: host?,
        port,
        user,
    })
}

/// A host name, address or ssh alias. `user@host` and `host:port` are refused: PM2 does not
/// read them either, and they would hide a `user`/`port` setting.
fn host_name(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    let host = fields::word(r, v, f, "host")?;
    if let Some((user, rest)) = host.split_once('@') {
        r.error(
            v,
            f,
            format!("host {} includes a user name", v.describe()),
            Some(format!(
                "write the host as \"{rest}\" and set `user: \"{user}\"`"
            )),
        );
        return None;
    }
    if host.matches(':').count() == 1
        && let Some((name, port)) = host.split_once(':')
    {
        r.error(
            v,
            f,
            format!("host {} includes a port", v.describe()),
            Some(format!(
                "write the host as \"{name}\" and set `port: {port}` (on the environment or in a {{host, port}} entry)"
            )),
        );
        return None;
    }
    Some(host)
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
        let v = json::parse(text).unwrap();
        let mut r = Report::new(Path::new("e.json"));
        let out = read_deploy(&mut r, &v, Path::new("/proj"));
        (out, r.into_diagnostics())
    }

    const MINIMAL: &str =
        r#""repo": "git@example.com:a/b.git", "path": "/srv/app", "ref": "origin/main""#;

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
                "deploy.p.host[0]",
                "deploy.p.host[1]",
                "deploy.p.host[2]",
                "deploy.p.host[3]",
                "deploy.p.port",
                "deploy.p.path",
                "deploy.p.ref",
                "deploy.p.repo",
                "deploy.p.post_deploy",
                "deploy.p.env.BAD-NAME",
                "deploy.p.shared_dirs[0]",
                "deploy.p.shared_dirs[1]",
            ],
            "{diags:#?}"
        );
        assert_eq!(
            diags[8].hint.as_deref(),
            Some("did you mean `post-deploy`?")
        );
        assert!(
            diags[1]
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
    fn relative_paths() {
        assert_eq!(relative_path("./logs/").unwrap(), "logs");
        assert_eq!(relative_path("config/.env").unwrap(), "config/.env");
        assert!(relative_path("/etc").is_err());
        assert!(relative_path("a/../../b").is_err());
        assert!(relative_path(".").is_err());
        assert!(relative_path("~/x").is_err());
    }
}
