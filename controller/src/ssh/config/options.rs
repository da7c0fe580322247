//! The options pmfleet understands for one host, as obtained from `ssh_options` and
//! `~/.ssh/config` lines, the first value obtained winning.

use std::path::Path;
use std::time::Duration;

use super::super::error::SshError;

use super::file::ConfigReader;
use super::syntax::{parse_port, parse_seconds, split_line};

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
