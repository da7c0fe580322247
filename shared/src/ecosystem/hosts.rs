//! The hosts of a `deploy.<env>` block: `host` as a name, a list of names, or a list of
//! `{host, port, user, primary}` objects, and the user names beside them — with what a PM2 file writes
//! there by mistake refused with the key to use instead (`user@host`, `host:port`,
//! `host -p 422`, a leading `-`), and `pm2 init`'s placeholders named as such.

use super::diagnostic::{FieldPath, Report};
use super::fields;
use super::keys::{self, KeyDef, Schema};
use super::value::{Kind, Value};

static HOST_SCHEMA: Schema = Schema {
    keys: &[
        KeyDef::new("host"),
        KeyDef::new("port"),
        KeyDef::new("user"),
        KeyDef::new("primary"),
    ],
    unimplemented: &[],
};

/// One host as written, with its own port and user when the entry gives them.
pub(crate) struct HostEntry {
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// `primary: true`: the `release` step runs here.
    pub primary: bool,
}

/// `host`: a string, an array of strings, or an array of `{host, port, user}` objects.
pub(crate) fn read_hosts(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Vec<HostEntry>> {
    match &v.kind {
        Kind::Str(_) => Some(vec![HostEntry {
            host: host_name(r, v, f)?,
            port: None,
            user: None,
            primary: false,
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
                        primary: false,
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
    let before = r.error_count();
    let (mut host, mut port, mut user, mut primary) = (None, None, None, false);
    let selected = keys::select(r, &HOST_SCHEMA, entries, f);
    for (key, entry) in &selected.entries {
        let field = f.key(&entry.key);
        match *key {
            "host" => host = host_name(r, &entry.value, &field),
            "port" => port = fields::port(r, &entry.value, &field),
            "user" => user = user_name(r, &entry.value, &field),
            "primary" => primary = fields::boolean(r, &entry.value, &field).unwrap_or(false),
            _ => {}
        }
    }
    if !selected.has("host") {
        r.error(v, f, "missing required key `host`", None);
        return None;
    }
    if r.error_count() > before {
        return None;
    }
    Some(HostEntry {
        host: host?,
        port,
        user,
        primary,
    })
}

/// The placeholders of the file `pm2 init` writes (in capitals there; matched in any case),
/// and what each one stands for.
const PLACEHOLDERS: [(&str, &str); 4] = [
    ("ssh_username", "the login user on the hosts"),
    ("ssh_hostmachine", "the host to deploy to"),
    ("git_repository", "the git URL the code comes from"),
    (
        "destination_path",
        "the deploy root on the hosts, e.g. \"/var/www/app\"",
    ),
];

/// Whether `v` is still a placeholder of `pm2 init`'s template (reported when it is).
pub(crate) fn placeholder(r: &mut Report, v: &Value, f: &FieldPath) -> bool {
    let Some((name, meaning)) = v.as_str().and_then(|s| {
        PLACEHOLDERS
            .iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(s))
            .map(|(_, meaning)| (s, meaning))
    }) else {
        return false;
    };
    r.error(
        v,
        f,
        format!("`{name}` is a placeholder of the file `pm2 init` writes"),
        Some(format!("replace it with {meaning}")),
    );
    true
}

pub(crate) fn user_name(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    if placeholder(r, v, f) {
        return None;
    }
    fields::word(r, v, f, "user name")
}

/// A host name, address or ssh alias. `user@host`, `host:port` and `host -p N` are refused:
/// PM2 does not read them either, and they would hide a `user`/`port` setting.
fn host_name(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    if placeholder(r, v, f) {
        return None;
    }
    if let Some((port, rest)) = v.as_str().and_then(ssh_port_option) {
        let host = if rest.is_empty() {
            "the host".to_owned()
        } else {
            format!("\"{rest}\"")
        };
        r.error(
            v,
            f,
            format!("host {} carries an ssh `-p` option", v.describe()),
            Some(format!(
                "use `port: {port}` (on the environment or in a {{host, port}} entry) and write {host} alone"
            )),
        );
        return None;
    }
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

/// `-p 422` (or `-p422`) among the words of a host string: the port, and the other words.
fn ssh_port_option(text: &str) -> Option<(String, String)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut rest = Vec::new();
    let mut port = None;
    let mut i = 0;
    while let Some(word) = words.get(i) {
        if *word == "-p" {
            port = words.get(i + 1).map(|p| (*p).to_owned());
            i += 2;
            continue;
        }
        if let Some(p) = word.strip_prefix("-p").filter(|p| !p.is_empty()) {
            port = Some(p.to_owned());
        } else {
            rest.push(*word);
        }
        i += 1;
    }
    let port = port.filter(|p| p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty())?;
    Some((port, rest.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_port_options_among_the_words() {
        let table = [
            ("web1 -p 422", Some(("422", "web1"))),
            ("-p 2222 web2", Some(("2222", "web2"))),
            ("web3 -p2200", Some(("2200", "web3"))),
            ("-p 22", Some(("22", ""))),
            ("web4 -p x", None),
            ("web5", None),
            ("-pweb", None),
        ];
        for (text, want) in table {
            let got = ssh_port_option(text);
            assert_eq!(
                got.as_ref().map(|(p, h)| (p.as_str(), h.as_str())),
                want,
                "{text}"
            );
        }
    }
}
