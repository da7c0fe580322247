//! The words of a config line and the values pmfleet reads from them: ports, OpenSSH time
//! values, paths with `~` and `%` tokens.

use std::path::{Path, PathBuf};
use std::time::Duration;

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

pub(super) fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(format!("invalid port `{value}`")),
    }
}

/// OpenSSH time format, enough of it: `30`, `30s`, `2m`, `1h`, `none`.
pub(super) fn parse_seconds(value: &str) -> Result<Duration, String> {
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
    let out = expand_tokens(path, tokens, None, |value| value.to_string());
    expand_tilde(&out, tokens.home)
}

/// Expands the `%` tokens of a `ProxyCommand` — `%h` host name, `%p` port, `%r` remote
/// user, `%n` the host as given, `%u` local user, `%d` home, `%%` — each value quoted for
/// the shell (`nc %h %p` → `nc 'web1' '22'`), so no host name or user can add words or
/// commands to it.
pub(crate) fn expand_command(command: &str, tokens: &Tokens<'_>, alias: &str) -> String {
    expand_tokens(command, tokens, Some(alias), crate::shell::quote)
}

/// `text` with its `%` tokens replaced by `put(value)`; `%n` only when `alias` is given, and
/// an unknown token is kept as it is.
fn expand_tokens(
    text: &str,
    tokens: &Tokens<'_>,
    alias: Option<&str>,
    put: impl Fn(&str) -> String,
) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let next = chars.next();
        let value = match next {
            Some('d') => Some(tokens.home.to_string_lossy().into_owned()),
            Some('u') => Some(tokens.local_user.to_string()),
            Some('h') => Some(tokens.hostname.to_string()),
            Some('r') => Some(tokens.remote_user.to_string()),
            Some('p') => Some(tokens.port.to_string()),
            Some('n') => alias.map(str::to_string),
            _ => None,
        };
        match (value, next) {
            (Some(value), _) => out.push_str(&put(&value)),
            (None, Some('%')) => out.push('%'),
            (None, Some(other)) => {
                out.push('%');
                out.push(other);
            }
            (None, None) => out.push('%'),
        }
    }
    out
}

/// Values for `%` tokens.
pub(crate) struct Tokens<'a> {
    pub home: &'a Path,
    pub local_user: &'a str,
    pub hostname: &'a str,
    pub remote_user: &'a str,
    pub port: u16,
}
