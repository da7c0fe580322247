//! Which of its own log lines the agent writes: `PMFLEET_LOG`, read as tracing's `Targets`
//! (`info`, `warn,pmfleet_agent=debug`, …) — the directive syntax without the regular
//! expressions of `EnvFilter`, which would cost the daemon its code on every host.

use tracing_subscriber::filter::{LevelFilter, Targets};

/// The filter for `PMFLEET_LOG` = `var`: what it says when it parses, else `info` for the
/// daemon and `warn` for the other verbs.
pub fn filter(var: Option<&str>, daemon: bool) -> Targets {
    let default = if daemon {
        LevelFilter::INFO
    } else {
        LevelFilter::WARN
    };
    var.map(str::trim)
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(default))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn pmfleet_log_picks_the_lines() {
        // (PMFLEET_LOG, daemon, target, level, written)
        let table = [
            (None, true, "pmfleet_agent", Level::INFO, true),
            (None, true, "pmfleet_agent", Level::DEBUG, false),
            (None, false, "pmfleet_agent", Level::INFO, false),
            (None, false, "pmfleet_agent", Level::WARN, true),
            (Some(""), true, "pmfleet_agent", Level::INFO, true),
            (Some("debug"), false, "pmfleet_agent", Level::DEBUG, true),
            (Some("error"), true, "pmfleet_agent", Level::WARN, false),
            (
                Some("warn,pmfleet_agent=trace"),
                true,
                "pmfleet_agent::api",
                Level::TRACE,
                true,
            ),
            (
                Some("warn,pmfleet_agent=trace"),
                true,
                "rustls",
                Level::INFO,
                false,
            ),
            (Some("off"), true, "pmfleet_agent", Level::ERROR, false),
            // Not a filter: the default, as if unset.
            (
                Some("pmfleet_agent=loud"),
                true,
                "pmfleet_agent",
                Level::INFO,
                true,
            ),
            (
                Some("pmfleet_agent=loud"),
                true,
                "pmfleet_agent",
                Level::DEBUG,
                false,
            ),
        ];
        for (var, daemon, target, level, want) in table {
            assert_eq!(
                filter(var, daemon).would_enable(target, &level),
                want,
                "PMFLEET_LOG={var:?} daemon={daemon}: {target} {level}"
            );
        }
    }
}
