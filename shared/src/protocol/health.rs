//! An app's health gate, as the agent runs it: which probe (an HTTP request, a TCP connect,
//! or a command run in the release), how often, and how long one attempt may take. It is
//! written in the ecosystem file as `healthcheck` (see docs/ecosystem.md) and travels inside
//! an [`super::AppSpec`].
//!
//! A probe is aimed at one instance, never at the shared socket the old instances answer on:
//! an instance in cluster mode is told its own `PMFLEET_PROBE_PORT`, which the Node preload
//! serves for it and any other program listens on itself; a command probe is told
//! `PMFLEET_PROBE_PORT` and `PMFLEET_INSTANCE_PID`. The bare string form of older files
//! (`"/health"`, `"tcp"`) keeps its old meaning for programs that are not Node: in cluster
//! mode it is checked through the shared socket once every old instance is gone.

use serde::{Deserialize, Serialize};

/// The default pause between two attempts of a `healthcheck` object.
pub const DEFAULT_INTERVAL_MS: u64 = 1_000;
/// The default bound on one attempt.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// The pause between attempts of the bare string form, as it always probed.
pub const LEGACY_INTERVAL_MS: u64 = 100;
/// The most bytes of an answer an HTTP probe reads to match its `body`.
pub const MAX_PROBE_BODY: usize = 64 * 1024;
/// The longest `body` to look for.
pub const MAX_BODY_MATCH: usize = 1024;

/// What is probed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// `GET path`: passes on `status` (default: any 2xx or 3xx), and when `body` is given,
    /// only if the answer's body contains it.
    Http {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        /// The `Host` header (default: the address probed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    /// A TCP connect.
    Tcp,
    /// `sh -c command` in the release, with the instance's environment: exit 0 passes.
    Command { command: String },
}

/// An app's health gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    pub probe: Probe,
    /// The pause between two attempts.
    pub interval_ms: u64,
    /// How long one attempt may take.
    pub timeout_ms: u64,
    /// Written as a bare string (`"/health"`, `"tcp"`): see the module documentation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy: bool,
}

impl HealthCheck {
    /// The bare string form: `tcp`, or an HTTP path (a missing leading `/` is added).
    pub fn legacy(text: &str) -> HealthCheck {
        let probe = if text.eq_ignore_ascii_case("tcp") {
            Probe::Tcp
        } else if text.starts_with('/') {
            Probe::Http {
                path: text.to_string(),
                status: None,
                body: None,
                host: None,
            }
        } else {
            Probe::Http {
                path: format!("/{text}"),
                status: None,
                body: None,
                host: None,
            }
        };
        HealthCheck {
            probe,
            interval_ms: LEGACY_INTERVAL_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            legacy: true,
        }
    }

    /// Whether the probe reaches the app over the network (HTTP or TCP), as opposed to a
    /// command.
    pub fn is_network(&self) -> bool {
        !matches!(self.probe, Probe::Command { .. })
    }

    /// "HTTP GET /health", "TCP connect", "command `./check`": for messages.
    pub fn describe(&self) -> String {
        match &self.probe {
            Probe::Http { path, .. } => format!("HTTP GET {path}"),
            Probe::Tcp => "TCP connect".to_string(),
            Probe::Command { command } => format!("command `{command}`"),
        }
    }

    /// Whether an HTTP answer with `status` and `body` passes this probe.
    pub fn http_passes(&self, status: u16, body: &str) -> Result<(), String> {
        let Probe::Http {
            status: want,
            body: needle,
            ..
        } = &self.probe
        else {
            return Ok(());
        };
        match want {
            Some(want) if status != *want => {
                return Err(format!("answered {status}, not {want}"));
            }
            None if !(200..400).contains(&status) => {
                return Err(format!("answered {status}"));
            }
            _ => {}
        }
        match needle {
            Some(needle) if !body.contains(needle.as_str()) => {
                Err(format!("answered {status} without `{needle}` in its body"))
            }
            _ => Ok(()),
        }
    }
}

/// What a persisted spec or a frame may hold: an object, or the bare string older agents wrote.
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Legacy(String),
    Full {
        probe: Probe,
        #[serde(default = "default_interval")]
        interval_ms: u64,
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
        #[serde(default)]
        legacy: bool,
    },
}

fn default_interval() -> u64 {
    DEFAULT_INTERVAL_MS
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

impl<'de> Deserialize<'de> for HealthCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Written::deserialize(d)? {
            Written::Legacy(text) => HealthCheck::legacy(&text),
            Written::Full {
                probe,
                interval_ms,
                timeout_ms,
                legacy,
            } => HealthCheck {
                probe,
                interval_ms,
                timeout_ms,
                legacy,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_an_older_agent_persisted_still_reads() {
        let old: HealthCheck = serde_json::from_str(r#""/health""#).unwrap();
        assert_eq!(old, HealthCheck::legacy("/health"));
        assert!(old.legacy);
        let tcp: HealthCheck = serde_json::from_str(r#""tcp""#).unwrap();
        assert_eq!(tcp.probe, Probe::Tcp);
        assert_eq!(
            HealthCheck::legacy("ready").probe,
            Probe::Http {
                path: "/ready".into(),
                status: None,
                body: None,
                host: None
            }
        );
        let full = HealthCheck {
            probe: Probe::Command {
                command: "./check".into(),
            },
            interval_ms: 500,
            timeout_ms: 1_000,
            legacy: false,
        };
        let json = serde_json::to_string(&full).unwrap();
        assert_eq!(
            json,
            r#"{"probe":{"command":{"command":"./check"}},"interval_ms":500,"timeout_ms":1000}"#
        );
        assert_eq!(serde_json::from_str::<HealthCheck>(&json).unwrap(), full);
    }

    #[test]
    fn http_answers_pass_or_say_why_not() {
        let any = HealthCheck::legacy("/health");
        assert!(any.http_passes(200, "").is_ok());
        assert!(any.http_passes(301, "").is_ok());
        assert_eq!(any.http_passes(500, "").unwrap_err(), "answered 500");
        let strict = HealthCheck {
            probe: Probe::Http {
                path: "/health".into(),
                status: Some(204),
                body: Some("ok".into()),
                host: None,
            },
            interval_ms: 1,
            timeout_ms: 1,
            legacy: false,
        };
        assert_eq!(
            strict.http_passes(200, "ok").unwrap_err(),
            "answered 200, not 204"
        );
        assert!(strict.http_passes(204, "all ok").is_ok());
        assert!(
            strict
                .http_passes(204, "fine")
                .unwrap_err()
                .contains("without `ok`")
        );
    }
}
