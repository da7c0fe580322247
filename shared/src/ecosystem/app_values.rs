//! The values of an app's keys as PM2 takes them: a name, PM2's words of an `args` string, an
//! instance count (`"max"`, `-1`, a string that is not a number), a mode, exit codes, a
//! signal, watched paths, log paths (`NULL`), variable names with `-`, a cron pattern. Each reports what is wrong and returns `None`.

use std::path::PathBuf;

use super::diagnostic::{FieldPath, Report, suggestion_hint};
use super::fields;
use super::model::{ExecMode, Instances, Watch};
use super::value::{Kind, Value};
use super::words;

/// Signals an app may be stopped with.
const SIGNALS: [&str; 10] = [
    "SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGWINCH",
    "SIGABRT", "SIGALRM",
];

/// A name PM2 takes; pmfleet refuses only what its commands could not tell apart (`all`, a
/// number) and control characters. `/` and spaces are fine: log file names are made safe
/// from it, as PM2 makes them.
pub(crate) fn read_name(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    let name = fields::text(r, v, f)?;
    let problem = if name.chars().any(char::is_control) {
        Some("an app name must not contain control characters or line breaks")
    } else if name == "all" {
        Some("`all` is reserved: `stop all` means every app")
    } else if name.chars().all(|c| c.is_ascii_digit()) {
        Some("an app name cannot be a number (numbers select apps by id)")
    } else {
        None
    };
    match problem {
        Some(message) => {
            r.error(v, f, message, None);
            None
        }
        None => Some(name),
    }
}

/// `args`, `interpreter_args` and `ignore_watch`: a string split as PM2 splits it
/// ([`words::split_args`]), or an array (numbers and booleans become their text).
pub(crate) fn read_words(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Vec<String>> {
    match &v.kind {
        Kind::Str(s) => match words::split_args(s) {
            Ok(list) => Some(list),
            Err(problem) => {
                r.error(v, f, problem, None);
                None
            }
        },
        Kind::Seq(items) => fields::string_items(r, items, f, |item| {
            fields::env_string(item).filter(|s| !s.contains('\0'))
        }),
        _ => {
            r.expected(v, f, "a string or an array of strings", None);
            None
        }
    }
}

/// `instances`: a count, `"max"` or `0` (one per CPU), or `-N` (all CPUs but N). A string
/// that is not a number is read as PM2 reads it (`parseInt(…) || 0`: one per CPU), with a
/// warning.
pub(crate) fn read_instances(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Instances> {
    let from_int = |n: i64| match n {
        0 => Some(Instances::Max),
        n if n > 0 => u32::try_from(n).ok().map(Instances::Count),
        n => u32::try_from(n.unsigned_abs()).ok().map(Instances::AllBut),
    };
    if let Some(s) = v.as_str() {
        if s.trim().eq_ignore_ascii_case("max") {
            return Some(Instances::Max);
        }
        if let Some(n) = fields::integer(v) {
            return from_int(n);
        }
        let leading = parse_int_prefix(s);
        if leading.is_none_or(|n| n == 0) {
            r.warning(
                v,
                f,
                format!("{} is not a number of instances; PM2 reads it as 0: one per CPU, and so does pmfleet", v.describe()),
                Some("write a number, \"max\", or -1 for all CPUs but one".to_owned()),
            );
            return Some(Instances::Max);
        }
        return leading.and_then(from_int);
    }
    let parsed = fields::integer(v).and_then(from_int);
    if parsed.is_none() {
        r.expected(
            v,
            f,
            "a number of instances",
            Some(
                "write a number, \"max\" or 0 for one per CPU, or -1 for all CPUs but one"
                    .to_owned(),
            ),
        );
    }
    parsed
}

/// JavaScript's `parseInt(s)`: leading white space, a sign, the digits that follow.
fn parse_int_prefix(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (sign, rest) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<i64>().ok().map(|n| sign * n)
}

pub(crate) fn read_exec_mode(r: &mut Report, v: &Value, f: &FieldPath) -> Option<ExecMode> {
    match v.as_str() {
        Some("fork" | "fork_mode") => Some(ExecMode::Fork),
        Some("cluster" | "cluster_mode") => Some(ExecMode::Cluster),
        other => {
            let hint = other
                .and_then(|s| suggestion_hint(s, ["fork", "cluster", "fork_mode", "cluster_mode"]))
                .or_else(|| Some("use \"fork\" or \"cluster\"".to_owned()));
            r.expected(v, f, "\"fork\" or \"cluster\"", hint);
            None
        }
    }
}

pub(crate) fn read_exit_codes(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Vec<i32>> {
    let code = |r: &mut Report, item: &Value, field: &FieldPath| {
        let c = fields::int_in(r, item, field, 0, 255, "an exit code (0-255)");
        c.and_then(|n| i32::try_from(n).ok())
    };
    match &v.kind {
        Kind::Seq(items) => {
            let codes: Vec<Option<i32>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| code(r, item, &f.index(i)))
                .collect();
            codes.into_iter().collect()
        }
        _ => code(r, v, f).map(|c| vec![c]),
    }
}

pub(crate) fn read_signal(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    let raw = fields::text(r, v, f)?;
    let upper = raw.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if SIGNALS.contains(&name.as_str()) {
        return Some(name);
    }
    let hint = suggestion_hint(&name, SIGNALS)
        .or_else(|| Some(format!("use one of {}", SIGNALS.join(", "))));
    r.error(v, f, format!("unknown signal {}", v.describe()), hint);
    None
}

pub(crate) fn read_watch(r: &mut Report, v: &Value, f: &FieldPath) -> Option<Watch> {
    match &v.kind {
        Kind::Bool(true) => Some(Watch::On),
        Kind::Bool(false) => Some(Watch::Off),
        Kind::Str(s) if s == "true" => Some(Watch::On),
        Kind::Str(s) if s == "false" => Some(Watch::Off),
        Kind::Str(_) | Kind::Seq(_) => fields::string_list(r, v, f).map(Watch::Paths),
        _ => {
            r.expected(v, f, "true, false, or an array of paths", None);
            None
        }
    }
}

/// `out_file` / `error_file`: a path; `"NULL"` is `/dev/null`, as in PM2.
pub(crate) fn read_log_path(r: &mut Report, v: &Value, f: &FieldPath) -> Option<PathBuf> {
    let path = fields::text(r, v, f)?;
    Some(PathBuf::from(if path == "NULL" {
        "/dev/null"
    } else {
        &path
    }))
}

/// `instance_var` / `increment_var`: a name a process environment can hold (PM2 takes
/// `MY-VAR`; programs read it, a shell cannot).
pub(crate) fn read_var_name(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    let name = fields::string(r, v, f)?;
    if fields::is_process_env_name(&name) && !name.chars().any(char::is_whitespace) {
        Some(name)
    } else {
        r.error(
            v,
            f,
            format!("{} is not a valid environment variable name", v.describe()),
            Some("a name must not contain `=` or white space".to_owned()),
        );
        None
    }
}

/// `cron_restart`: a cron pattern ([`super::cron`]); `0` turns it off, as in PM2.
pub(crate) fn read_cron(r: &mut Report, v: &Value, f: &FieldPath) -> Option<String> {
    if matches!(v.kind, Kind::Int(0)) || v.as_str() == Some("0") {
        return None;
    }
    let cron = fields::text(r, v, f)?;
    let cron = cron.trim().to_owned();
    match super::cron::CronSchedule::parse(&cron) {
        Ok(_) => Some(cron),
        Err(why) => {
            r.error(
                v,
                f,
                format!("{} is not a cron pattern: {why}", v.describe()),
                Some("write five fields (minute hour day month weekday), e.g. \"0 3 * * *\", six with seconds first, or a nickname such as \"@daily\"".to_owned()),
            );
            None
        }
    }
}

/// `metrics`: the path of the app's own metrics endpoint on its `port` (`"/metrics"`), or
/// `{ "path": "/metrics", "port": 9464 }` — one port per instance, instance N on 9464 + N.
pub(crate) fn read_metrics(
    r: &mut Report,
    v: &Value,
    f: &FieldPath,
) -> Option<crate::protocol::MetricsEndpoint> {
    let hint = || {
        Some("the agent reads the app's Prometheus text there every few seconds: \"/metrics\" on the app's `port`, or { \"path\": \"/metrics\", \"port\": 9464 } (instance N on 9464 + N)".to_owned())
    };
    let good_path =
        |p: &str| p.starts_with('/') && !p.chars().any(|c| c.is_whitespace() || c.is_control());
    match &v.kind {
        Kind::Str(s) if good_path(s) => Some(crate::protocol::MetricsEndpoint {
            path: s.clone(),
            port: None,
        }),
        Kind::Map(entries) => {
            let mut out = crate::protocol::MetricsEndpoint {
                path: "/metrics".into(),
                port: None,
            };
            for entry in entries {
                let field = f.key(&entry.key);
                match entry.key.as_str() {
                    "path" => match entry.value.as_str() {
                        Some(p) if good_path(p) => out.path = p.to_string(),
                        _ => r.expected(
                            &entry.value,
                            &field,
                            "an HTTP path such as \"/metrics\"",
                            hint(),
                        ),
                    },
                    "port" => out.port = fields::port(r, &entry.value, &field),
                    other => r.error(
                        &entry.value,
                        &field,
                        format!("unknown key `{other}` in `metrics`"),
                        hint(),
                    ),
                }
            }
            Some(out)
        }
        _ => {
            r.expected(
                v,
                f,
                "an HTTP path such as \"/metrics\", or { \"path\", \"port\" }",
                hint(),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_int_like_javascript() {
        assert_eq!(parse_int_prefix(" 12abc"), Some(12));
        assert_eq!(parse_int_prefix("-3"), Some(-3));
        assert_eq!(parse_int_prefix("+4"), Some(4));
        assert_eq!(parse_int_prefix("abc"), None);
    }
}
