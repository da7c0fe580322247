//! Where to connect and how: `~/.ssh/config` and the ecosystem file's `ssh_options`, read the way
//! OpenSSH reads them, so a fleet that works with `ssh host` works with pmfleet.
//!
//! OpenSSH rules kept here: the first value obtained for an option wins, command-line values
//! (the ecosystem's `user`/`port`/`key`, then `ssh_options`) come before the config file,
//! `Host` patterns are matched against the name as given (the alias), `IdentityFile` accumulates,
//! and `Include` applies inside the block it appears in. Only the options pmfleet uses are
//! understood; `Match` blocks are skipped with a warning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::SshError;
use super::{ClientSettings, ConnectSpec};

/// How deep `Include` may nest before it is treated as a loop (OpenSSH uses 16 too).
const MAX_INCLUDE_DEPTH: usize = 16;

/// What to do with a host key that no known_hosts file lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrictHostKeyChecking {
    /// Refuse unknown keys (OpenSSH `yes`, and `ask`, since nobody can be asked).
    Yes,
    /// Learn unknown keys (OpenSSH `accept-new`).
    AcceptNew,
    /// OpenSSH `no`: pmfleet treats it like `accept-new` and still refuses changed keys.
    No,
}

/// The options pmfleet understands, as obtained from one or more sources. `None` means "not set
/// yet": the first source to set an option wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HostOptions {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Unexpanded, in the order obtained.
    pub identity_files: Vec<String>,
    /// Unexpanded.
    pub known_hosts_files: Option<Vec<String>>,
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    pub connect_timeout: Option<Duration>,
    /// `(option, value, origin)` of a ProxyJump / ProxyCommand other than `none`.
    pub proxy: Option<(&'static str, String, String)>,
}

/// Whether [`HostOptions::apply`] used a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Used,
    /// A keyword pmfleet does not act on.
    Unknown,
}

impl HostOptions {
    /// Applies one `keyword args...` line. `keyword` is matched case-insensitively; `origin`
    /// ("~/.ssh/config:12") is kept for messages.
    pub(crate) fn apply(
        &mut self,
        keyword: &str,
        args: &[String],
        origin: &str,
    ) -> Result<Applied, String> {
        let keyword = keyword.to_ascii_lowercase();
        let first = || {
            args.first()
                .cloned()
                .ok_or_else(|| format!("{keyword} needs a value"))
        };
        match keyword.as_str() {
            "hostname" => {
                let value = first()?;
                self.hostname.get_or_insert(value);
            }
            "user" => {
                let value = first()?;
                self.user.get_or_insert(value);
            }
            "port" => {
                let value = first()?;
                let port = parse_port(&value)?;
                self.port.get_or_insert(port);
            }
            "identityfile" => {
                let value = first()?;
                if !self.identity_files.contains(&value) {
                    self.identity_files.push(value);
                }
            }
            "userknownhostsfile" => {
                if args.is_empty() {
                    return Err("UserKnownHostsFile needs a value".into());
                }
                self.known_hosts_files.get_or_insert_with(|| args.to_vec());
            }
            "stricthostkeychecking" => {
                let value = first()?;
                let parsed = match value.to_ascii_lowercase().as_str() {
                    "yes" | "ask" => StrictHostKeyChecking::Yes,
                    "accept-new" => StrictHostKeyChecking::AcceptNew,
                    "no" | "off" => StrictHostKeyChecking::No,
                    _ => {
                        return Err(format!(
                            "StrictHostKeyChecking `{value}`: expected yes, accept-new or no"
                        ));
                    }
                };
                self.strict_host_key_checking.get_or_insert(parsed);
            }
            "connecttimeout" => {
                let value = first()?;
                let timeout = parse_seconds(&value)?;
                // `ConnectTimeout 0` / `none` mean "the system default": keep ours.
                if !timeout.is_zero() {
                    self.connect_timeout.get_or_insert(timeout);
                }
            }
            "proxyjump" | "proxycommand" => {
                let value = args.join(" ");
                if value.is_empty() {
                    return Err(format!("{keyword} needs a value"));
                }
                let option = if keyword == "proxyjump" {
                    "ProxyJump"
                } else {
                    "ProxyCommand"
                };
                if self.proxy.is_none() && !value.eq_ignore_ascii_case("none") {
                    self.proxy = Some((option, value, origin.to_string()));
                } else if self.proxy.is_none() {
                    // An explicit `none` is a value too: later sources cannot set a proxy.
                    self.proxy = Some((option, String::new(), origin.to_string()));
                }
            }
            _ => return Ok(Applied::Unknown),
        }
        Ok(Applied::Used)
    }

    /// Applies the ecosystem file's `ssh_options` ("Key=Value" or "Key Value"). Options pmfleet
    /// does not act on are ignored with a warning naming them.
    pub(crate) fn apply_ssh_options(&mut self, options: &[String]) -> Result<(), SshError> {
        for option in options {
            let origin = format!("ssh_options `{option}`");
            let Some((keyword, args)) = split_line(option).map_err(|message| SshError::Config {
                origin: origin.clone(),
                message,
            })?
            else {
                continue;
            };
            match self.apply(&keyword, &args, &origin) {
                Ok(Applied::Used) => {}
                Ok(Applied::Unknown) => {
                    tracing::warn!(option = %keyword, "ssh_options: ignoring {keyword}, which pmfleet does not support");
                }
                Err(message) => return Err(SshError::Config { origin, message }),
            }
        }
        Ok(())
    }

    /// Reads `<home>/.ssh/config` (if it exists) for `alias`, the host name as given.
    pub(crate) fn apply_config_file(&mut self, home: &Path, alias: &str) -> Result<(), SshError> {
        let path = home.join(".ssh").join("config");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let alias = alias.to_ascii_lowercase();
        let mut reader = ConfigReader {
            home,
            alias: &alias,
            options: self,
        };
        reader.read_text(&text, &path, true, 0)
    }
}

/// Reads config text for one host, like OpenSSH's readconf: each line is applied if the current
/// `Host` block matches.
struct ConfigReader<'a> {
    home: &'a Path,
    alias: &'a str,
    options: &'a mut HostOptions,
}

impl ConfigReader<'_> {
    fn read_text(
        &mut self,
        text: &str,
        path: &Path,
        mut active: bool,
        depth: usize,
    ) -> Result<(), SshError> {
        // Lines before the first `Host` of an included file belong to the including block; a
        // `Host` inside a non-matching block's include never matches.
        let never_match = !active && depth > 0;
        for (index, line) in text.lines().enumerate() {
            let origin = format!("{}:{}", path.display(), index + 1);
            let parsed = split_line(line).map_err(|message| SshError::Config {
                origin: origin.clone(),
                message,
            })?;
            let Some((keyword, args)) = parsed else {
                continue;
            };
            match keyword.to_ascii_lowercase().as_str() {
                "host" => {
                    active = !never_match && host_matches(&args, self.alias);
                }
                "match" => {
                    tracing::warn!(
                        "{origin}: `Match` blocks are not supported; skipping this block"
                    );
                    active = false;
                }
                "include" => {
                    if depth >= MAX_INCLUDE_DEPTH {
                        return Err(SshError::Config {
                            origin,
                            message: "Include nested too deeply (a loop?)".into(),
                        });
                    }
                    for pattern in &args {
                        for file in self.include_files(pattern) {
                            // Unreadable includes are skipped, as OpenSSH does for missing ones.
                            if let Ok(text) = std::fs::read_to_string(&file) {
                                self.read_text(&text, &file, active, depth + 1)?;
                            }
                        }
                    }
                }
                _ if active => {
                    self.options
                        .apply(&keyword, &args, &origin)
                        .map_err(|message| SshError::Config { origin, message })?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The files an `Include` names: `~` expands to home, relative paths are under ~/.ssh, and
    /// the last path component may be a `*`/`?` glob.
    fn include_files(&self, pattern: &str) -> Vec<PathBuf> {
        let expanded = expand_tilde(pattern, self.home);
        let full = if expanded.is_absolute() {
            expanded
        } else {
            self.home.join(".ssh").join(expanded)
        };
        let Some(name) = full.file_name().and_then(|n| n.to_str()) else {
            return Vec::new();
        };
        if !name.contains(['*', '?']) {
            return vec![full];
        }
        let Some(dir) = full.parent() else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .is_some_and(|candidate| glob_matches(name, candidate))
            })
            .map(|entry| entry.path())
            .collect();
        files.sort();
        files
    }
}

/// True if `alias` matches a `Host` line's patterns: some positive pattern matches and no
/// negated (`!pattern`) one does.
pub(crate) fn host_matches(patterns: &[String], alias: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        let pattern = pattern.to_ascii_lowercase();
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob_matches(negated, alias) {
                return false;
            }
        } else if glob_matches(&pattern, alias) {
            matched = true;
        }
    }
    matched
}

/// `*` matches any run of characters, `?` exactly one.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Position of the last `*` and the text position it was tried at, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

/// Splits a config line into its keyword and arguments: `Key value`, `Key=value` or
/// `Key = "quoted value"`; `#` starts a comment. `None` for blank and comment lines.
pub(crate) fn split_line(line: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let keyword_end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (keyword, rest) = line.split_at(keyword_end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None => break,
            Some('#') => break,
            Some('"') => {
                chars.next();
                let mut arg = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => arg.push(c),
                        None => return Err(format!("unterminated quote in `{line}`")),
                    }
                }
                args.push(arg);
            }
            Some(_) => {
                let mut arg = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    arg.push(c);
                    chars.next();
                }
                args.push(arg);
            }
        }
    }
    Ok(Some((keyword.to_string(), args)))
}

fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(format!("invalid port `{value}`")),
    }
}

/// OpenSSH time format, enough of it: `30`, `30s`, `2m`, `1h`, `none`.
fn parse_seconds(value: &str) -> Result<Duration, String> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(Duration::ZERO);
    }
    let lower = value.to_ascii_lowercase();
    let (digits, unit) = match lower.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => (lower.trim_end_matches(c), c),
        _ => (lower.as_str(), 's'),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid time `{value}`"))?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        _ => return Err(format!("invalid time unit in `{value}`")),
    };
    Ok(Duration::from_secs(number.saturating_mul(factor)))
}

/// `~` and `~/...` become paths under `home` (the controller's own home, or a test's).
pub(crate) fn expand_tilde(path: &str, home: &Path) -> PathBuf {
    if path == "~" {
        home.to_path_buf()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(path)
    }
}

/// Expands `~` and the `%` tokens OpenSSH allows in IdentityFile and UserKnownHostsFile:
/// `%d` home, `%u` local user, `%h` host name, `%r` remote user, `%p` port, `%%`.
pub(crate) fn expand_path(path: &str, tokens: &Tokens<'_>) -> PathBuf {
    let mut out = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&tokens.home.to_string_lossy()),
            Some('u') => out.push_str(tokens.local_user),
            Some('h') => out.push_str(tokens.hostname),
            Some('r') => out.push_str(tokens.remote_user),
            Some('p') => out.push_str(&tokens.port.to_string()),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    expand_tilde(&out, tokens.home)
}

/// Values for `%` tokens.
pub(crate) struct Tokens<'a> {
    pub home: &'a Path,
    pub local_user: &'a str,
    pub hostname: &'a str,
    pub remote_user: &'a str,
    pub port: u16,
}

/// Everything needed to connect to one host, after the spec, `ssh_options`, ~/.ssh/config and
/// the client settings were combined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The name the host was given as (an alias, maybe).
    pub alias: String,
    /// What to connect to and check the host key for.
    pub hostname: String,
    pub port: u16,
    pub user: String,
    /// Key files to try after the agent, explicit ones first, then the defaults.
    pub identity_files: Vec<PathBuf>,
    /// How many of `identity_files` were named explicitly (spec `key`, `IdentityFile`).
    pub explicit_identity_files: usize,
    /// Files the host key is checked against; new keys are learned into the first.
    pub known_hosts: Vec<PathBuf>,
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
    /// The jump host this one is reached through (`ProxyJump`), itself maybe behind another.
    pub jump: Option<Box<Target>>,
}

/// How deep a chain of jump hosts may go (a loop in the config ends here).
const MAX_JUMPS: usize = 8;

/// One entry of a `ProxyJump` list: `[user@]host[:port]`, `[user@][v6 address]:port`, or the
/// same as an `ssh://` URL.
fn parse_jump(entry: &str) -> Result<ConnectSpec, String> {
    let bad = || format!("ProxyJump `{entry}`: expected [user@]host[:port]");
    let rest = entry.strip_prefix("ssh://").unwrap_or(entry);
    let (user, rest) = match rest.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
        Some(_) => return Err(bad()),
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?),
        None => None,
    };
    Ok(ConnectSpec {
        host: host.to_string(),
        port,
        user,
        ..ConnectSpec::default()
    })
}

/// The name or address `spec.host` stands for: the `HostName` its `ssh_options` or
/// `<home>/.ssh/config` give it, else the host as written. A config that cannot be read
/// resolves to the host as written (connecting reports the problem).
pub(crate) fn hostname_of(spec: &ConnectSpec, home: &Path) -> String {
    let mut options = HostOptions::default();
    let resolved = options
        .apply_ssh_options(&spec.ssh_options)
        .and_then(|()| options.apply_config_file(home, &spec.host));
    match (resolved, options.hostname) {
        (Ok(()), Some(name)) => name.replace("%h", &spec.host).replace("%%", "%"),
        _ => spec.host.clone(),
    }
}

impl Target {
    /// "user@host:port", used in every message about this host.
    pub(crate) fn destination(&self) -> String {
        format!("{}@{}:{}", self.user, self.hostname, self.port)
    }

    /// Combines, first value wins: the spec's own fields, its `ssh_options`, ~/.ssh/config, then
    /// the client settings and defaults. A `ProxyJump` is resolved the same way, host by host.
    pub(crate) fn resolve(
        spec: &ConnectSpec,
        settings: &ClientSettings,
        local_user: Option<&str>,
    ) -> Result<Target, SshError> {
        Target::resolve_at(spec, settings, local_user, 0)
    }

    fn resolve_at(
        spec: &ConnectSpec,
        settings: &ClientSettings,
        local_user: Option<&str>,
        depth: usize,
    ) -> Result<Target, SshError> {
        let home = settings.home.as_path();
        let mut options = HostOptions {
            user: spec.user.clone(),
            port: spec.port,
            ..HostOptions::default()
        };
        if let Some(identity) = &spec.identity {
            options
                .identity_files
                .push(identity.to_string_lossy().into_owned());
        }
        options.apply_ssh_options(&spec.ssh_options)?;
        // Remembered before the config file is read: see the known_hosts precedence below.
        let known_hosts_from_options = options.known_hosts_files.clone();
        options.apply_config_file(home, &spec.host)?;

        let mut jump = None;
        match &options.proxy {
            Some((option, value, origin)) if *option == "ProxyCommand" && !value.is_empty() => {
                return Err(SshError::ProxyUnsupported {
                    host: spec.host.clone(),
                    option,
                    value: value.clone(),
                    origin: origin.clone(),
                });
            }
            // A jump host that would jump through itself (`Host *` blocks) is reached directly.
            Some((_, value, _))
                if value
                    .split(',')
                    .filter_map(|e| parse_jump(e.trim()).ok())
                    .any(|hop| hop.host.eq_ignore_ascii_case(&spec.host)) => {}
            Some((_, value, origin)) if !value.is_empty() => {
                if depth >= MAX_JUMPS {
                    return Err(SshError::Config {
                        origin: origin.clone(),
                        message: format!(
                            "ProxyJump: more than {MAX_JUMPS} jump hosts in a row (does the config loop?)"
                        ),
                    });
                }
                // `a,b`: through a to b, then through b to this host.
                for entry in value.split(',').map(str::trim) {
                    let hop = parse_jump(entry).map_err(|message| SshError::Config {
                        origin: origin.clone(),
                        message,
                    })?;
                    let mut resolved = Target::resolve_at(&hop, settings, local_user, depth + 1)?;
                    if let Some(previous) = jump.take() {
                        resolved.jump = Some(Box::new(previous));
                    }
                    jump = Some(resolved);
                }
            }
            _ => {}
        }

        let hostname = match &options.hostname {
            Some(name) => name.replace("%h", &spec.host).replace("%%", "%"),
            None => spec.host.clone(),
        };
        let port = options.port.unwrap_or(22);
        let local_user = local_user.unwrap_or_default();
        let user = match options.user.clone() {
            Some(user) => user,
            None if !local_user.is_empty() => local_user.to_string(),
            None => {
                return Err(SshError::NoUser {
                    host: spec.host.clone(),
                });
            }
        };
        let tokens = Tokens {
            home,
            local_user,
            hostname: &hostname,
            remote_user: &user,
            port,
        };

        let mut identity_files: Vec<PathBuf> = options
            .identity_files
            .iter()
            .map(|file| expand_path(file, &tokens))
            .collect();
        let explicit_identity_files = identity_files.len();
        for default in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let path = home.join(".ssh").join(default);
            if !identity_files.contains(&path) {
                identity_files.push(path);
            }
        }

        // An explicit ssh_options UserKnownHostsFile wins over the settings, which win over the
        // config file (a command-line flag beats ~/.ssh/config).
        let known_hosts: Vec<PathBuf> = match (&known_hosts_from_options, &settings.known_hosts) {
            (Some(files), _) => files.iter().map(|f| expand_path(f, &tokens)).collect(),
            (None, Some(path)) => vec![path.clone()],
            (None, None) => match &options.known_hosts_files {
                Some(files) => files.iter().map(|f| expand_path(f, &tokens)).collect(),
                None => vec![home.join(".ssh").join("known_hosts")],
            },
        };

        let accept_new_host_keys = settings.accept_new_host_keys
            || match options.strict_host_key_checking {
                Some(StrictHostKeyChecking::AcceptNew) => true,
                Some(StrictHostKeyChecking::No) => {
                    tracing::warn!(
                        host = %spec.host,
                        "StrictHostKeyChecking=no is treated as accept-new: unknown host keys are \
                         learned, changed host keys are still refused"
                    );
                    true
                }
                Some(StrictHostKeyChecking::Yes) | None => false,
            };
        // Learning into a file that keeps nothing is accepting any key, every time.
        if accept_new_host_keys && let Some(sink) = known_hosts.first().filter(|f| keeps_nothing(f))
        {
            let setting = match options.strict_host_key_checking {
                _ if settings.accept_new_host_keys => "--accept-new-host-key",
                Some(StrictHostKeyChecking::No) => "StrictHostKeyChecking=no",
                _ => "StrictHostKeyChecking=accept-new",
            };
            return Err(SshError::BlindHostKeys {
                host: spec.host.clone(),
                setting: setting.to_string(),
                known_hosts: sink.clone(),
            });
        }

        Ok(Target {
            alias: spec.host.clone(),
            hostname,
            port,
            user,
            identity_files,
            explicit_identity_files,
            known_hosts,
            accept_new_host_keys,
            connect_timeout: options.connect_timeout.unwrap_or(settings.connect_timeout),
            jump: jump.map(Box::new),
        })
    }
}

/// Whether `path` is a file that keeps nothing written to it: `/dev/null`, or any character
/// device.
fn keeps_nothing(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    path == Path::new("/dev/null")
        || std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_alias_stands_for_its_host_name() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(
            home.path().join(".ssh/config"),
            "Host web1\n  HostName 10.1.2.3\nHost *.lan\n  HostName %h.example.com\n",
        )
        .unwrap();
        assert_eq!(hostname_of(&spec("web1"), home.path()), "10.1.2.3");
        assert_eq!(
            hostname_of(&spec("db.lan"), home.path()),
            "db.lan.example.com"
        );
        assert_eq!(hostname_of(&spec("10.0.0.9"), home.path()), "10.0.0.9");
        let mut with_option = spec("web1");
        with_option.ssh_options = vec!["HostName=10.9.9.9".into()];
        assert_eq!(hostname_of(&with_option, home.path()), "10.9.9.9");
    }

    fn options_for(config: &str, alias: &str) -> HostOptions {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/config"), config).unwrap();
        let mut options = HostOptions::default();
        options.apply_config_file(home.path(), alias).unwrap();
        options
    }

    fn spec(host: &str) -> ConnectSpec {
        ConnectSpec {
            host: host.into(),
            port: None,
            user: None,
            identity: None,
            ssh_options: Vec::new(),
        }
    }

    #[test]
    fn split_line_forms() {
        assert_eq!(split_line("  # comment").unwrap(), None);
        assert_eq!(split_line("").unwrap(), None);
        assert_eq!(
            split_line("HostName web1.example.com").unwrap(),
            Some(("HostName".into(), strings(&["web1.example.com"])))
        );
        assert_eq!(
            split_line("Port=2222").unwrap(),
            Some(("Port".into(), strings(&["2222"])))
        );
        assert_eq!(
            split_line("IdentityFile = \"~/keys/my key\" # deploy").unwrap(),
            Some(("IdentityFile".into(), strings(&["~/keys/my key"])))
        );
        assert_eq!(
            split_line("Host web* !web9\t db").unwrap(),
            Some(("Host".into(), strings(&["web*", "!web9", "db"])))
        );
        assert!(split_line("User \"unterminated").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("web?", "web1"));
        assert!(!glob_matches("web?", "web10"));
        assert!(glob_matches("*.example.com", "a.b.example.com"));
        assert!(!glob_matches("*.example.com", "example.com"));
        assert!(glob_matches("w*b*1", "wxxbyy1"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
        assert!(glob_matches("a**", "a"));
    }

    #[test]
    fn host_patterns_with_negation() {
        assert!(host_matches(&strings(&["web*", "!web9"]), "web1"));
        assert!(!host_matches(&strings(&["web*", "!web9"]), "web9"));
        assert!(!host_matches(&strings(&["!web9"]), "web1"));
        assert!(host_matches(&strings(&["db", "WEB1"]), "web1"));
    }

    #[test]
    fn first_obtained_value_wins() {
        let options = options_for(
            "Host web1\n  HostName 10.0.0.1\n  User deploy\n  IdentityFile ~/.ssh/web\n\
             Host web*\n  HostName 10.0.0.99\n  Port 2222\n  User other\n  IdentityFile ~/.ssh/all\n\
             Host *\n  Port 22\n  User fallback\n",
            "web1",
        );
        assert_eq!(options.hostname.as_deref(), Some("10.0.0.1"));
        assert_eq!(options.user.as_deref(), Some("deploy"));
        assert_eq!(options.port, Some(2222));
        assert_eq!(
            options.identity_files,
            strings(&["~/.ssh/web", "~/.ssh/all"])
        );
    }

    #[test]
    fn global_lines_before_first_host_apply_to_all() {
        let options = options_for("User early\nHost other\n  User late\n", "web1");
        assert_eq!(options.user.as_deref(), Some("early"));
        assert_eq!(options.port, None);
    }

    #[test]
    fn alias_is_matched_case_insensitively_and_not_other_hosts() {
        let options = options_for("Host Web1\n  Port 2200\nHost db\n  User db\n", "WEB1");
        assert_eq!(options.port, Some(2200));
        assert_eq!(options.user, None);
    }

    #[test]
    fn match_blocks_are_skipped() {
        let options = options_for("Match host web1\n  User m\nHost *\n  User h\n", "web1");
        assert_eq!(options.user.as_deref(), Some("h"));
    }

    #[test]
    fn include_applies_inside_its_block() {
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        std::fs::create_dir_all(ssh.join("conf.d")).unwrap();
        std::fs::write(
            ssh.join("conf.d/a.conf"),
            "Port 2201\nHost db\n  User dbuser\n",
        )
        .unwrap();
        std::fs::write(
            ssh.join("config"),
            "Host web1\n  Include conf.d/*.conf\nHost *\n  User all\n",
        )
        .unwrap();
        let mut web = HostOptions::default();
        web.apply_config_file(home.path(), "web1").unwrap();
        assert_eq!(web.port, Some(2201));
        assert_eq!(web.user.as_deref(), Some("all"));

        // The include sits in web1's block: its `Host db` never matches for other hosts.
        let mut db = HostOptions::default();
        db.apply_config_file(home.path(), "db").unwrap();
        assert_eq!(db.port, None);
        assert_eq!(db.user.as_deref(), Some("all"));
    }

    #[test]
    fn invalid_values_name_the_line() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/config"), "Host *\n  Port http\n").unwrap();
        let error = HostOptions::default()
            .apply_config_file(home.path(), "web1")
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("config:2"), "{message}");
        assert!(message.contains("invalid port `http`"), "{message}");
    }

    #[test]
    fn ssh_options_parsing() {
        let mut options = HostOptions::default();
        options
            .apply_ssh_options(&strings(&[
                "StrictHostKeyChecking=accept-new",
                "Port 2022",
                "user=deploy",
                "ConnectTimeout=2m",
                "UserKnownHostsFile=/dev/null",
                "ForwardAgent=yes",
                "IdentityFile=~/.ssh/deploy",
            ]))
            .unwrap();
        assert_eq!(
            options.strict_host_key_checking,
            Some(StrictHostKeyChecking::AcceptNew)
        );
        assert_eq!(options.port, Some(2022));
        assert_eq!(options.user.as_deref(), Some("deploy"));
        assert_eq!(options.connect_timeout, Some(Duration::from_secs(120)));
        assert_eq!(options.known_hosts_files, Some(strings(&["/dev/null"])));
        assert_eq!(options.identity_files, strings(&["~/.ssh/deploy"]));

        for (value, expected) in [
            ("yes", StrictHostKeyChecking::Yes),
            ("ask", StrictHostKeyChecking::Yes),
            ("no", StrictHostKeyChecking::No),
            ("off", StrictHostKeyChecking::No),
            ("ACCEPT-NEW", StrictHostKeyChecking::AcceptNew),
        ] {
            let mut options = HostOptions::default();
            options
                .apply_ssh_options(&[format!("StrictHostKeyChecking={value}")])
                .unwrap();
            assert_eq!(options.strict_host_key_checking, Some(expected), "{value}");
        }

        let error = HostOptions::default()
            .apply_ssh_options(&strings(&["Port=abc"]))
            .unwrap_err();
        assert!(error.to_string().contains("Port=abc"), "{error}");
        assert!(
            HostOptions::default()
                .apply_ssh_options(&strings(&["StrictHostKeyChecking=maybe"]))
                .is_err()
        );
    }

    #[test]
    fn time_values() {
        assert_eq!(parse_seconds("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_seconds("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_seconds("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_seconds("none").unwrap(), Duration::ZERO);
        assert!(parse_seconds("ten").is_err());
        assert!(parse_seconds("5d").is_err());
    }

    #[test]
    fn resolve_combines_sources_in_order() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(
            home.path().join(".ssh/config"),
            "Host web1\n  HostName 10.1.2.3\n  User cfguser\n  Port 2200\n  IdentityFile %d/.ssh/web_%r\n",
        )
        .unwrap();
        let settings = ClientSettings {
            home: home.path().to_path_buf(),
            ..ClientSettings::default()
        };
        let mut web1 = spec("web1");
        web1.port = Some(2022);
        let target = Target::resolve(&web1, &settings, Some("me")).unwrap();
        assert_eq!(target.hostname, "10.1.2.3");
        assert_eq!(target.port, 2022, "the spec's port wins over the config");
        assert_eq!(target.user, "cfguser");
        assert_eq!(target.destination(), "cfguser@10.1.2.3:2022");
        let ssh = home.path().join(".ssh");
        assert_eq!(
            target.identity_files,
            vec![
                ssh.join("web_cfguser"),
                ssh.join("id_ed25519"),
                ssh.join("id_ecdsa"),
                ssh.join("id_rsa"),
            ]
        );
        assert_eq!(target.known_hosts, vec![ssh.join("known_hosts")]);
        assert!(!target.accept_new_host_keys);

        // Unconfigured host: local user, port 22, the name as given.
        let other = Target::resolve(&spec("db.example.com"), &settings, Some("me")).unwrap();
        assert_eq!(other.destination(), "me@db.example.com:22");
        assert!(matches!(
            Target::resolve(&spec("db"), &settings, None),
            Err(SshError::NoUser { .. })
        ));
    }

    #[test]
    fn known_hosts_precedence_and_strict_checking() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(
            home.path().join(".ssh/config"),
            "Host *\n  UserKnownHostsFile ~/.ssh/from_config\n",
        )
        .unwrap();
        let mut settings = ClientSettings {
            home: home.path().to_path_buf(),
            ..ClientSettings::default()
        };
        let target = Target::resolve(&spec("h"), &settings, Some("me")).unwrap();
        assert_eq!(
            target.known_hosts,
            vec![home.path().join(".ssh/from_config")]
        );

        settings.known_hosts = Some("/flag/known_hosts".into());
        let target = Target::resolve(&spec("h"), &settings, Some("me")).unwrap();
        assert_eq!(target.known_hosts, vec![PathBuf::from("/flag/known_hosts")]);

        let mut with_option = spec("h");
        with_option.ssh_options =
            strings(&["UserKnownHostsFile=~/a ~/b", "StrictHostKeyChecking=no"]);
        let target = Target::resolve(&with_option, &settings, Some("me")).unwrap();
        assert_eq!(
            target.known_hosts,
            vec![home.path().join("a"), home.path().join("b")]
        );
        assert!(target.accept_new_host_keys);
    }

    #[test]
    fn learning_host_keys_into_dev_null_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let settings = ClientSettings {
            home: home.path().to_path_buf(),
            ..ClientSettings::default()
        };
        let with = |options: &[&str]| {
            let mut s = spec("h");
            s.ssh_options = strings(options);
            s
        };
        // (ssh_options, --accept-new-host-key, refused naming)
        let table: [(&[&str], bool, Option<&str>); 6] = [
            (
                &["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"],
                false,
                Some("StrictHostKeyChecking=no"),
            ),
            (
                &[
                    "StrictHostKeyChecking=accept-new",
                    "UserKnownHostsFile /dev/null",
                ],
                false,
                Some("StrictHostKeyChecking=accept-new"),
            ),
            (
                &["UserKnownHostsFile=/dev/null"],
                true,
                Some("--accept-new-host-key"),
            ),
            // Checking against /dev/null only refuses every host: not blind, left alone.
            (&["UserKnownHostsFile=/dev/null"], false, None),
            (&["StrictHostKeyChecking=no"], false, None),
            (
                &["StrictHostKeyChecking=no", "UserKnownHostsFile=~/kh"],
                false,
                None,
            ),
        ];
        for (options, flag, refused) in table {
            let settings = ClientSettings {
                accept_new_host_keys: flag,
                ..settings.clone()
            };
            let got = Target::resolve(&with(options), &settings, Some("me"));
            match (refused, got) {
                (None, Ok(_)) => {}
                (Some(setting), Err(e @ SshError::BlindHostKeys { .. })) => {
                    let message = e.to_string();
                    assert!(message.contains(setting), "{options:?}: {message}");
                    assert!(message.contains("--accept-new-host-key"), "{message}");
                    assert!(message.contains("/dev/null"), "{message}");
                }
                (want, got) => panic!("{options:?} {flag}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn proxy_jump_chains_resolve_and_proxy_command_is_refused() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(
            home.path().join(".ssh/config"),
            "Host direct\n  ProxyJump none\nHost piped\n  ProxyCommand nc %h %p\n\
             Host chained\n  ProxyJump ops@gw1:2201,[fd00::7]\n\
             Host *\n  ProxyJump bastion\n",
        )
        .unwrap();
        let settings = ClientSettings {
            home: home.path().to_path_buf(),
            ..ClientSettings::default()
        };
        let web1 = Target::resolve(&spec("web1"), &settings, Some("me")).unwrap();
        let bastion = web1.jump.as_deref().expect("through the bastion");
        assert_eq!(bastion.hostname, "bastion");
        assert!(
            bastion.jump.is_none(),
            "the bastion itself is reached directly"
        );

        let chained = Target::resolve(&spec("chained"), &settings, Some("me")).unwrap();
        let last = chained.jump.as_deref().expect("second hop");
        assert_eq!((last.hostname.as_str(), last.port), ("fd00::7", 22));
        let first = last.jump.as_deref().expect("first hop");
        assert_eq!(
            (first.hostname.as_str(), first.port, first.user.as_str()),
            ("gw1", 2201, "ops")
        );

        assert!(
            Target::resolve(&spec("direct"), &settings, Some("me"))
                .unwrap()
                .jump
                .is_none()
        );
        let error = Target::resolve(&spec("piped"), &settings, Some("me")).unwrap_err();
        assert!(
            matches!(error, SshError::ProxyUnsupported { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("ProxyCommand `nc %h %p`"), "{message}");
        assert!(message.contains("config:4"), "{message}");
    }

    #[test]
    fn jump_entries_parse_like_openssh() {
        let hop = parse_jump("ssh://deploy@[::1]:2222").unwrap();
        assert_eq!(
            (hop.user.as_deref(), hop.host.as_str(), hop.port),
            (Some("deploy"), "::1", Some(2222))
        );
        let hop = parse_jump("gw").unwrap();
        assert_eq!((hop.user, hop.host.as_str(), hop.port), (None, "gw", None));
        for bad in ["", "@gw", "gw:0", "gw:port", "-oProxyCommand=x", "[::1"] {
            assert!(parse_jump(bad).is_err(), "{bad}");
        }
    }
}
