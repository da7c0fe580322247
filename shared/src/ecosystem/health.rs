//! `healthcheck`, pmfleet's addition to an app: a bare string as before (`"/health"`, an HTTP
//! path, or `"tcp"`), or an object naming one probe — `http` (a path, with an optional
//! `status`, `body` to find in the answer and `host` header), `tcp: true`, or `command` (run
//! in the release) — and how often (`interval`) and how long each attempt may take
//! (`timeout`). What the agent does with it is in [`crate::protocol::HealthCheck`].

use super::diagnostic::{FieldPath, Report};
use super::fields;
use super::keys::{self, KeyDef, Schema};
use super::value::{Kind, Value};
use crate::protocol::{
    DEFAULT_INTERVAL_MS, DEFAULT_TIMEOUT_MS, HealthCheck, MAX_BODY_MATCH, Probe,
};

static HEALTH_SCHEMA: Schema = Schema {
    keys: &[
        KeyDef::new("http"),
        KeyDef::new("tcp"),
        KeyDef::new("command"),
        KeyDef::new("status"),
        KeyDef::new("body"),
        KeyDef::new("host"),
        KeyDef::new("interval"),
        KeyDef::new("timeout"),
    ],
    unimplemented: &[],
};

const OBJECT_HINT: &str = "write { \"http\": \"/health\" }, { \"tcp\": true } or { \"command\": \"./bin/check\" }, with `interval` and `timeout` if the defaults (1s, 2s) do not fit";

/// `healthcheck`: the string form or the object form.
pub(crate) fn read_healthcheck(r: &mut Report, v: &Value, f: &FieldPath) -> Option<HealthCheck> {
    match &v.kind {
        Kind::Map(_) => read_object(r, v, f),
        _ => read_string(r, v, f),
    }
}

fn read_string(r: &mut Report, v: &Value, f: &FieldPath) -> Option<HealthCheck> {
    let check = fields::text(r, v, f)?;
    if check == "tcp" || http_path(&check) {
        return Some(HealthCheck::legacy(&check));
    }
    r.error(
        v,
        f,
        format!(
            "expected an HTTP path such as \"/health\", \"tcp\" or an object, found {}",
            v.describe()
        ),
        Some(OBJECT_HINT.to_owned()),
    );
    None
}

fn http_path(path: &str) -> bool {
    path.starts_with('/') && !path.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn read_object(r: &mut Report, v: &Value, f: &FieldPath) -> Option<HealthCheck> {
    let entries = fields::object(r, v, f)?;
    let before = r.error_count();
    let selected = keys::select(r, &HEALTH_SCHEMA, entries, f);
    let mut probes: Vec<(&str, Option<Probe>)> = Vec::new();
    let (mut status, mut body, mut host) = (None, None, None);
    let mut interval_ms = DEFAULT_INTERVAL_MS;
    let mut timeout_ms = DEFAULT_TIMEOUT_MS;
    for (key, entry) in &selected.entries {
        let field = f.key(&entry.key);
        let value = &entry.value;
        match *key {
            "http" => {
                let path = fields::text(r, value, &field).filter(|p| {
                    let ok = http_path(p);
                    if !ok {
                        r.expected(value, &field, "an HTTP path such as \"/health\"", None);
                    }
                    ok
                });
                probes.push((
                    "http",
                    path.map(|path| Probe::Http {
                        path,
                        status: None,
                        body: None,
                        host: None,
                    }),
                ));
            }
            "tcp" => match fields::boolean(r, value, &field) {
                Some(true) => probes.push(("tcp", Some(Probe::Tcp))),
                Some(false) => {}
                None => probes.push(("tcp", None)),
            },
            "command" => probes.push((
                "command",
                fields::text(r, value, &field).map(|command| Probe::Command { command }),
            )),
            "status" => {
                status = fields::int_in(r, value, &field, 100, 599, "an HTTP status (100-599)")
                    .and_then(|s| u16::try_from(s).ok())
            }
            "body" => {
                body = fields::text(r, value, &field).filter(|b| {
                    let ok = b.len() <= MAX_BODY_MATCH;
                    if !ok {
                        r.error(
                            value,
                            &field,
                            format!("at most {MAX_BODY_MATCH} bytes are looked for"),
                            None,
                        );
                    }
                    ok
                })
            }
            "host" => {
                host = fields::text(r, value, &field).filter(|h| {
                    let ok = !h.chars().any(|c| c.is_whitespace() || c.is_control());
                    if !ok {
                        r.expected(value, &field, "a host name for the Host header", None);
                    }
                    ok
                })
            }
            "interval" => set_ms(&mut interval_ms, fields::duration(r, value, &field)),
            "timeout" => set_ms(&mut timeout_ms, fields::duration(r, value, &field)),
            _ => {}
        }
    }
    let probe = match probes.as_slice() {
        [(_, Some(probe))] => probe.clone(),
        [(_, None)] => return None,
        [] => {
            r.error(
                v,
                f,
                "names no probe: give one of `http`, `tcp` or `command`",
                Some(OBJECT_HINT.to_owned()),
            );
            return None;
        }
        several => {
            let names: Vec<&str> = several.iter().map(|(n, _)| *n).collect();
            r.error(
                v,
                f,
                format!(
                    "names {} probes ({}): one health check has one probe",
                    names.len(),
                    names.join(", ")
                ),
                Some(OBJECT_HINT.to_owned()),
            );
            return None;
        }
    };
    let probe = match probe {
        Probe::Http { path, .. } => Probe::Http {
            path,
            status,
            body,
            host,
        },
        other => {
            for (name, given) in [
                ("status", status.is_some()),
                ("body", body.is_some()),
                ("host", host.is_some()),
            ] {
                if given {
                    r.error(
                        v,
                        &f.key(name),
                        format!("`{name}` applies to an `http` probe only"),
                        None,
                    );
                }
            }
            other
        }
    };
    if interval_ms == 0 || timeout_ms == 0 {
        r.error(v, f, "`interval` and `timeout` must be longer than 0", None);
    }
    if r.error_count() > before {
        return None;
    }
    Some(HealthCheck {
        probe,
        interval_ms,
        timeout_ms,
        legacy: false,
    })
}

fn set_ms(slot: &mut u64, d: Option<std::time::Duration>) {
    if let Some(ms) = d.and_then(|d| u64::try_from(d.as_millis()).ok()) {
        *slot = ms;
    }
}

#[cfg(test)]
mod tests {
    use crate::ecosystem::parse_str;
    use crate::protocol::{HealthCheck, Probe};

    fn check(text: &str) -> (Option<HealthCheck>, Vec<String>) {
        let file = format!(r#"{{"apps": [{{"script": "a.js", "healthcheck": {text}}}]}}"#);
        match parse_str(&file, crate::ecosystem::Format::Json, "e.json".as_ref()) {
            Ok(eco) => (
                eco.apps[0].healthcheck.clone(),
                eco.warnings.iter().map(|w| w.message.clone()).collect(),
            ),
            Err(e) => (None, vec![e.to_string()]),
        }
    }

    #[test]
    fn health_checks_as_written() {
        let (hc, _) = check(r#""/health""#);
        assert_eq!(hc, Some(HealthCheck::legacy("/health")));
        let (hc, _) = check(
            r#"{"http": "/ready", "status": 204, "body": "ok", "host": "api.example.com", "interval": "250ms", "timeout": "1s"}"#,
        );
        assert_eq!(
            hc,
            Some(HealthCheck {
                probe: Probe::Http {
                    path: "/ready".into(),
                    status: Some(204),
                    body: Some("ok".into()),
                    host: Some("api.example.com".into())
                },
                interval_ms: 250,
                timeout_ms: 1000,
                legacy: false,
            })
        );
        let (hc, _) = check(r#"{"tcp": true}"#);
        assert_eq!(
            hc.map(|h| (h.probe, h.interval_ms)),
            Some((Probe::Tcp, 1000))
        );
        let (hc, _) = check(r#"{"command": "./bin/check --quick"}"#);
        assert_eq!(
            hc.map(|h| h.probe),
            Some(Probe::Command {
                command: "./bin/check --quick".into()
            })
        );
    }

    #[test]
    fn bad_health_checks_say_what_to_write() {
        for (text, said) in [
            (r#"{}"#, "names no probe"),
            (
                r#"{"http": "/a", "tcp": true}"#,
                "names 2 probes (http, tcp)",
            ),
            (
                r#"{"tcp": true, "status": 200}"#,
                "applies to an `http` probe only",
            ),
            (r#"{"http": "health"}"#, "an HTTP path"),
            (r#"{"http": "/a", "status": 99}"#, "an HTTP status"),
            (r#"{"http": "/a", "interval": 0}"#, "longer than 0"),
            (r#""health""#, "or an object"),
        ] {
            let (hc, messages) = check(text);
            assert_eq!(hc, None, "{text}");
            assert!(
                messages.iter().any(|m| m.contains(said)),
                "{text}: {messages:?}"
            );
        }
    }
}
