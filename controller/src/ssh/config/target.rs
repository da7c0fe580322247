//! Everything needed to connect to one host, combined from the spec, `ssh_options`,
//! `~/.ssh/config` and the client settings; jump hosts resolved the same way, hop by hop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::error::SshError;
use super::super::{ClientSettings, ConnectSpec};

use super::options::{HostOptions, StrictHostKeyChecking};
use super::syntax::{Tokens, expand_command, expand_path};

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
    /// The command whose stdin and stdout SSH runs over instead (`ProxyCommand`), its tokens
    /// expanded and quoted.
    pub proxy_command: Option<String>,
}

/// How deep a chain of jump hosts may go (a loop in the config ends here).
pub(super) const MAX_JUMPS: usize = 8;

/// One entry of a `ProxyJump` list: `[user@]host[:port]`, `[user@][v6 address]:port`, or the
/// same as an `ssh://` URL.
pub(super) fn parse_jump(entry: &str) -> Result<ConnectSpec, String> {
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
        let mut proxy_command = None;
        match &options.proxy {
            Some((option, value, _)) if *option == "ProxyCommand" && !value.is_empty() => {
                proxy_command = Some(value.clone());
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

        let proxy_command = proxy_command.map(|c| expand_command(&c, &tokens, &spec.host));
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
            proxy_command,
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
