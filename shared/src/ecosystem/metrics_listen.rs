//! `agent.metrics`: where an agent serves its Prometheus metrics — nowhere (the default), a
//! loopback port (plain HTTP, for a scraper on the same host), or its mutual-TLS port (for
//! scrapers holding a fleet certificate). One reading for the ecosystem file and the agent's
//! `<home>/metrics`, which `setup` writes from it ([`MetricsListen::file_text`]).

use std::net::SocketAddr;

/// The port a bare `true`, `on` or `local` means.
pub const DEFAULT_METRICS_PORT: u16 = 9209;

/// Where the metrics endpoint listens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetricsListen {
    #[default]
    Off,
    Local(SocketAddr),
    Tls,
}

impl MetricsListen {
    /// What `<home>/metrics` holds for it (read back by [`MetricsListen::parse`]).
    pub fn file_text(&self) -> String {
        match self {
            MetricsListen::Off => "off".into(),
            MetricsListen::Tls => "tls".into(),
            MetricsListen::Local(addr) => addr.to_string(),
        }
    }

    /// Read the settings file's text; an error says what is accepted.
    pub fn parse(text: &str) -> Result<MetricsListen, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "`{text}`: expected `off`, `tls`, a loopback address with a port (127.0.0.1:{DEFAULT_METRICS_PORT}) or a port"
            )
        };
        match text {
            "" | "off" | "false" => return Ok(MetricsListen::Off),
            "tls" => return Ok(MetricsListen::Tls),
            "on" | "local" | "true" => {
                return Ok(MetricsListen::Local(SocketAddr::from((
                    [127, 0, 0, 1],
                    DEFAULT_METRICS_PORT,
                ))));
            }
            _ => {}
        }
        if let Ok(port) = text.parse::<u16>() {
            return Ok(MetricsListen::Local(SocketAddr::from((
                [127, 0, 0, 1],
                port,
            ))));
        }
        let text_addr = text.replacen("localhost:", "127.0.0.1:", 1);
        let addr: SocketAddr = text_addr.parse().map_err(|_| bad())?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "`{text}`: plain HTTP metrics listen on a loopback address only; `tls` serves them to scrapers with a fleet certificate on the mutual-TLS port"
            ));
        }
        Ok(MetricsListen::Local(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_the_settings_say_metrics_are_served() {
        let local = |s: &str| Ok(MetricsListen::Local(s.parse().unwrap()));
        let table: [(&str, Result<MetricsListen, String>); 10] = [
            ("", Ok(MetricsListen::Off)),
            ("off\n", Ok(MetricsListen::Off)),
            ("tls", Ok(MetricsListen::Tls)),
            ("on", local("127.0.0.1:9209")),
            ("9300", local("127.0.0.1:9300")),
            ("127.0.0.2:9300", local("127.0.0.2:9300")),
            ("localhost:9300", local("127.0.0.1:9300")),
            ("[::1]:9300", local("[::1]:9300")),
            ("0.0.0.0:9300", Err("loopback address only".into())),
            ("sometimes", Err("expected `off`, `tls`".into())),
        ];
        for (text, want) in table {
            match (MetricsListen::parse(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
                (Err(got), Err(want)) => assert!(got.contains(&want), "{text:?}: {got}"),
                (got, want) => panic!("{text:?}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn the_file_text_reads_back() {
        for text in ["off", "tls", "127.0.0.1:9300", "[::1]:9209"] {
            let l = MetricsListen::parse(text).unwrap();
            assert_eq!(MetricsListen::parse(&l.file_text()).unwrap(), l);
        }
    }
}
