//! Typed reads of single values (a port, a duration, a list of strings, an env block). Each
//! read reports what is wrong and returns `None`, so validation can go on and find the next
//! problem. Which keys of an object count is [`super::keys`]' job.

use std::collections::BTreeMap;
use std::time::Duration;

use super::diagnostic::{FieldPath, Report};
use super::value::{Entry, Kind, Value};
use crate::units::{self, Bare};

pub(crate) fn object<'v>(r: &mut Report, v: &'v Value, f: &FieldPath) -> Option<&'v [Entry]> {
    match &v.kind {
        Kind::Map(entries) => Some(entries),
        _ => {
            r.expected(v, f, "an object", None);
            None
        }
    }
}

pub(crate) fn string(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    match &v.kind {
        Kind::Str(s) => Some(s.clone()),
        _ => {
            r.expected(v, f, "a string", None);
            None
        }
    }
}

/// A string that is not empty and has no NUL.
pub(crate) fn text(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    let s = string(r, v, f)?;
    if s.trim().is_empty() {
        r.error(v, f, "must not be empty", None);
        return None;
    }
    if s.contains('\0') {
        r.error(v, f, "must not contain a NUL character", None);
        return None;
    }
    Some(s)
}

/// `true`/`false`, also written as the strings `"true"`/`"false"` (PM2 accepts both).
pub(crate) fn boolean(r: &mut Report, v: &Value, f: &FieldPath) -> Option<bool> {
    match &v.kind {
        Kind::Bool(b) => Some(*b),
        Kind::Str(s) if s == "true" => Some(true),
        Kind::Str(s) if s == "false" => Some(false),
        _ => {
            r.expected(v, f, "true or false", None);
            None
        }
    }
}

/// An integer, written as a number or as a string of digits (a JS file reading
/// `process.env.X` gives a string).
pub(crate) fn integer(v: &Value) -> Option<i64> {
    match &v.kind {
        Kind::Int(i) => Some(*i),
        Kind::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Some(*x as i64),
        Kind::Str(s) => {
            let t = s.trim();
            let digits = t.strip_prefix('-').unwrap_or(t);
            if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
                t.parse().ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

/// An integer in `min..=max`.
pub(crate) fn int_in(
    r: &mut Report,
    v: &Value,
    f: &FieldPath,
    min: i64,
    max: i64,
    what: &str,
) -> Option<i64> {
    match integer(v) {
        Some(i) if (min..=max).contains(&i) => Some(i),
        _ => {
            r.expected(v, f, what, None);
            None
        }
    }
}

pub(crate) fn port(r: &mut Report, v: &Value, f: &FieldPath) -> Option<u16> {
    match integer(v)
        .and_then(|i| u16::try_from(i).ok())
        .filter(|p| *p > 0)
    {
        Some(p) => Some(p),
        None => {
            r.expected(
                v,
                f,
                "a port number (1-65535)",
                Some("write a number such as 22, or a string of digits such as \"22\"".to_owned()),
            );
            None
        }
    }
}

/// A duration: a number of milliseconds, or a string with a unit (`500ms`, `2s`, `1m`, `1h`;
/// digits alone are milliseconds).
pub(crate) fn duration(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Duration> {
    let ms = match &v.kind {
        Kind::Str(s) => units::parse_duration(s, Bare::Millis)
            .ok()
            .and_then(|d| u64::try_from(d.as_millis()).ok()),
        _ => integer(v).and_then(|i| u64::try_from(i).ok()),
    };
    match ms {
        Some(ms) => Some(Duration::from_millis(ms)),
        None => {
            r.expected(
                v,
                f,
                "a duration in milliseconds",
                Some("write a number of milliseconds (1000) or a string with a unit: \"500ms\", \"2s\", \"1m\", \"1h\"".to_owned()),
            );
            None
        }
    }
}

/// A size in bytes: a number, or digits with `K`, `M` or `G` (powers of 1024, as PM2).
pub(crate) fn bytes(r: &mut Report, v: &Value, f: &FieldPath) -> Option<u64> {
    let parsed = match &v.kind {
        Kind::Str(s) => units::parse_size(s).ok(),
        _ => integer(v).and_then(|i| u64::try_from(i).ok()),
    };
    match parsed.filter(|b| *b > 0) {
        Some(b) => Some(b),
        None => {
            r.expected(
                v,
                f,
                "a memory size",
                Some(
                    "write bytes as a number, or a string such as \"512K\", \"150M\" or \"1G\""
                        .to_owned(),
                ),
            );
            None
        }
    }
}

/// A string, or an array of strings.
pub(crate) fn string_list(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Vec<String>> {
    match &v.kind {
        Kind::Str(s) => Some(vec![s.clone()]),
        Kind::Seq(items) => string_items(r, items, f, |item| match &item.kind {
            Kind::Str(s) => Some(s.clone()),
            _ => None,
        }),
        _ => {
            r.expected(v, f, "a string or an array of strings", None);
            None
        }
    }
}

/// The items of the array at `f`, each made a string by `string`; each item it refuses is
/// reported ("expected a string" at its index), and then the whole list is `None`.
pub(crate) fn string_items(
    r: &mut Report,
    items: &[Value],
    f: &FieldPath,
    string: impl Fn(&Value) -> Option<String>,
) -> Option<Vec<String>> {
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match string(item) {
            Some(s) => out.push(s),
            None => {
                r.expected(item, &f.index(i), "a string", None);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A scalar as the string a process would see in its environment (numbers and booleans
/// converted the way JavaScript prints them, as PM2 does).
pub(crate) fn env_string(v: &Value) -> Option<String> {
    match &v.kind {
        Kind::Str(s) => Some(s.clone()),
        Kind::Int(i) => Some(i.to_string()),
        Kind::Float(x) => Some(js_number(*x)),
        Kind::Bool(b) => Some(b.to_string()),
        Kind::Null | Kind::Seq(_) | Kind::Map(_) => None,
    }
}

/// A number as JavaScript's `String(x)` prints it.
pub(crate) fn js_number(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_owned()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        x.to_string()
    }
}

/// A name a shell can read (`[A-Za-z_][A-Za-z0-9_]*`).
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A name a process environment can hold: not empty, no `=` and no NUL (`MY-VAR` and
/// `my.var` are fine: PM2 passes them, and programs read them, though a shell cannot).
pub(crate) fn is_process_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// Which `env` block is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvBlock {
    /// An app's `env` / `env_<name>`: what PM2 hands the process. Any name a process
    /// environment holds; an object, array or `null` value becomes its JSON text, as PM2
    /// writes it.
    App,
    /// `deploy.<env>.env`: also exported to every hook by a shell, so names are shell names
    /// and values scalars.
    Deploy,
}

/// An `env` block (see [`EnvBlock`]); numbers and booleans become strings as JavaScript
/// prints them; no NUL anywhere.
pub(crate) fn env_map(
    r: &mut Report,
    v: &Value,
    f: &FieldPath,
    block: EnvBlock,
) -> Option<BTreeMap<String, String>> {
    let entries = object(r, v, f)?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for entry in entries {
        let field = f.key(&entry.key);
        let name_ok = match block {
            EnvBlock::App => is_process_env_name(&entry.key),
            EnvBlock::Deploy => is_env_name(&entry.key),
        };
        if !name_ok {
            let hint = match block {
                EnvBlock::App => "a name must not be empty or contain `=`",
                EnvBlock::Deploy => {
                    "the deploy environment is exported to the hooks by a shell: names are letters, digits and `_`, and do not start with a digit (e.g. `NODE_ENV`)"
                }
            };
            let message = if entry.key.is_empty() {
                "an environment variable needs a name".to_owned()
            } else {
                format!(
                    "`{}` is not a valid environment variable name",
                    entry.key.escape_debug()
                )
            };
            r.error_at(entry.key_pos, &field, message, Some(hint.to_owned()));
            ok = false;
            continue;
        }
        if out.contains_key(&entry.key) {
            r.error_at(
                entry.key_pos,
                &field,
                format!("`{}` is set twice", entry.key),
                None,
            );
            ok = false;
            continue;
        }
        let text = match (block, env_string(&entry.value)) {
            (_, Some(s)) => Some(s),
            (EnvBlock::App, None) => Some(entry.value.to_json()),
            (EnvBlock::Deploy, None) => None,
        };
        match text {
            Some(s) if s.contains('\0') => {
                r.error(
                    &entry.value,
                    &field,
                    "an environment value cannot contain a NUL character",
                    None,
                );
                ok = false;
            }
            Some(s) => {
                out.insert(entry.key.clone(), s);
            }
            None => {
                r.expected(
                    &entry.value,
                    &field,
                    "a string, number or boolean",
                    Some("write \"\" for an empty value".to_owned()),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Text that goes to a remote host as a single word (a host or user name, a ref): not
/// empty, no whitespace or control characters, and not starting with `-` (it would read as
/// an option).
pub(crate) fn word(r: &mut Report, v: &Value, f: &FieldPath, what: &str) -> Option<String> {
    let s = string(r, v, f)?;
    if s.is_empty() {
        r.error(v, f, format!("{what} must not be empty"), None);
        return None;
    }
    if s.starts_with('-') {
        r.error(
            v,
            f,
            format!("{what} {} starts with `-`", v.describe()),
            Some("a value starting with `-` would be read as a command-line option".to_owned()),
        );
        return None;
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        r.error(
            v,
            f,
            format!("{what} {} contains {}", v.describe(), describe_bad_char(c)),
            None,
        );
        return None;
    }
    Some(s)
}

pub(crate) fn describe_bad_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        '\n' | '\r' => "a line break".to_owned(),
        '\0' => "a NUL character".to_owned(),
        c => format!("the character U+{:04X}", c as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecosystem::value::Pos;
    use std::path::Path;

    fn v(kind: Kind) -> Value {
        Value::new(kind, Some(Pos::new(1, 1)))
    }

    fn s(text: &str) -> Value {
        v(Kind::Str(text.to_owned()))
    }

    fn report() -> Report {
        Report::new(Path::new("e.json"))
    }

    #[test]
    fn durations() {
        let f = FieldPath::root().key("min_uptime");
        let mut r = report();
        assert_eq!(
            duration(&mut r, &v(Kind::Int(1500)), &f),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(duration(&mut r, &s("2s"), &f), Some(Duration::from_secs(2)));
        assert_eq!(
            duration(&mut r, &s("1m"), &f),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            duration(&mut r, &s("1h"), &f),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            duration(&mut r, &s("500ms"), &f),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            duration(&mut r, &s("700"), &f),
            Some(Duration::from_millis(700))
        );
        assert!(!r.has_errors());
        assert_eq!(duration(&mut r, &s("2 days"), &f), None);
        assert_eq!(duration(&mut r, &v(Kind::Int(-1)), &f), None);
        assert_eq!(r.into_diagnostics().len(), 2);
    }

    #[test]
    fn byte_sizes() {
        let f = FieldPath::root();
        let mut r = report();
        assert_eq!(bytes(&mut r, &s("150M"), &f), Some(150 << 20));
        assert_eq!(bytes(&mut r, &s("1G"), &f), Some(1 << 30));
        assert_eq!(bytes(&mut r, &s("512K"), &f), Some(512 << 10));
        assert_eq!(bytes(&mut r, &s("200mb"), &f), Some(200 << 20));
        assert_eq!(bytes(&mut r, &v(Kind::Int(1024)), &f), Some(1024));
        assert!(!r.has_errors());
        assert_eq!(bytes(&mut r, &s("1T"), &f), None);
        assert_eq!(bytes(&mut r, &s("M"), &f), None);
        assert_eq!(bytes(&mut r, &s("99999999999999999999G"), &f), None);
        assert_eq!(r.into_diagnostics().len(), 3);
    }

    #[test]
    fn ports() {
        let f = FieldPath::root().key("port");
        let mut r = report();
        assert_eq!(port(&mut r, &v(Kind::Int(22)), &f), Some(22));
        assert_eq!(port(&mut r, &s("2222"), &f), Some(2222));
        assert_eq!(port(&mut r, &v(Kind::Float(22.0)), &f), Some(22));
        assert_eq!(port(&mut r, &s("abc"), &f), None);
        assert_eq!(port(&mut r, &v(Kind::Int(0)), &f), None);
        assert_eq!(port(&mut r, &v(Kind::Int(70000)), &f), None);
        assert_eq!(port(&mut r, &v(Kind::Float(22.5)), &f), None);
        let d = r.into_diagnostics();
        assert_eq!(d.len(), 4);
        assert_eq!(
            d[0].message,
            "expected a port number (1-65535), found \"abc\""
        );
    }

    #[test]
    fn env_blocks() {
        let f = FieldPath::root().key("env");
        let entry = |k: &str, val: Value| Entry {
            key: k.to_owned(),
            key_pos: Some(Pos::new(2, 3)),
            value: val,
        };
        let good = v(Kind::Map(vec![
            entry("NODE_ENV", s("production")),
            entry("PORT", v(Kind::Int(3000))),
            entry("RATIO", v(Kind::Float(0.5))),
            entry("DEBUG", v(Kind::Bool(false))),
            entry("_X1", s("a;b $(c)")),
        ]));
        let mut r = report();
        let env = env_map(&mut r, &good, &f, EnvBlock::Deploy).unwrap();
        assert_eq!(env["PORT"], "3000");
        assert_eq!(env["RATIO"], "0.5");
        assert_eq!(env["DEBUG"], "false");
        assert_eq!(env["_X1"], "a;b $(c)");
        let bad = v(Kind::Map(vec![
            entry("MY-VAR", s("x")),
            entry("1X", s("x")),
            entry("OK", v(Kind::Null)),
            entry("NUL", s("a\0b")),
        ]));
        assert!(env_map(&mut r, &bad, &f, EnvBlock::Deploy).is_none());
        let d = r.into_diagnostics();
        assert_eq!(d.len(), 4);
        assert_eq!(d[0].field, "env.MY-VAR");
        assert!(
            d[0].message
                .contains("not a valid environment variable name")
        );
        // An app's own env takes what a process environment holds, as PM2 passes it.
        let mut r = report();
        let env = env_map(&mut r, &bad, &f, EnvBlock::App);
        let d = r.into_diagnostics();
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].message.contains("NUL"));
        assert!(env.is_none());
        let app = v(Kind::Map(vec![
            entry("MY-VAR", s("x")),
            entry("1X", v(Kind::Seq(vec![v(Kind::Int(1))]))),
            entry("OK", v(Kind::Null)),
        ]));
        let mut r = report();
        let env = env_map(&mut r, &app, &f, EnvBlock::App).unwrap();
        assert_eq!(env["MY-VAR"], "x");
        assert_eq!(env["1X"], "[1]");
        assert_eq!(env["OK"], "null");
        assert!(r.into_diagnostics().is_empty());
    }

    #[test]
    fn words() {
        let f = FieldPath::root().key("host");
        let mut r = report();
        assert_eq!(
            word(&mut r, &s("web-1.example.com"), &f, "host"),
            Some("web-1.example.com".into())
        );
        assert_eq!(word(&mut r, &s("-oProxyCommand=x"), &f, "host"), None);
        assert_eq!(word(&mut r, &s("a b"), &f, "host"), None);
        assert_eq!(word(&mut r, &s("a\nb"), &f, "host"), None);
        assert_eq!(word(&mut r, &s(""), &f, "host"), None);
        assert_eq!(word(&mut r, &s("-o Proxy x"), &f, "host"), None);
        let d = r.into_diagnostics();
        assert!(d[0].message.contains("starts with `-`"));
        assert!(d[1].message.contains("a space"));
        assert!(d[2].message.contains("a line break"));
        assert!(d[4].message.contains("starts with `-`"));
    }
}
