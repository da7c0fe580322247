//! Sending one notification: a POST with a deadline per attempt, up to [`ATTEMPTS`] attempts
//! with a growing pause between them, retried only when trying again can help (no answer, a
//! 5xx, a 429). `https://` is verified against the public web roots (webpki-roots), or only
//! against `PMFLEET_NOTIFY_CA_FILE` when that names a PEM file. Blocking: it runs on a
//! blocking thread, never on the deploy's own path.

use std::time::Duration;

use super::format::Body;

/// Attempts per notification.
pub const ATTEMPTS: u32 = 3;

/// The pause before attempt `n` (1-based, after the first): 0.5 s, 1 s, 2 s …
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << n.saturating_sub(2).min(10)))
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Worth trying again (no answer, a timeout, 5xx, 429).
    Retry(String),
    /// Trying again will not help (4xx, a bad URL, a certificate refused).
    GiveUp(String),
}

/// What an HTTP status means for delivery.
pub fn judge_status(status: u16) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        429 | 500..=599 => Attempt::Retry(format!("answered HTTP {status}")),
        _ => Attempt::GiveUp(format!("answered HTTP {status}")),
    }
}

/// The HTTP client, built once per run.
pub fn agent(timeout: Duration) -> Result<ureq::Agent, String> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(path) = std::env::var_os("PMFLEET_NOTIFY_CA_FILE") {
        let pem = std::fs::read(&path)
            .map_err(|e| format!("PMFLEET_NOTIFY_CA_FILE {}: {e}", path.to_string_lossy()))?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(format!(
                "PMFLEET_NOTIFY_CA_FILE {} holds no certificate",
                path.to_string_lossy()
            ));
        }
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    Ok(ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("pmfleet/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .build()
        .into())
}

/// One POST.
pub fn attempt(agent: &ureq::Agent, url: &str, body: &Body) -> Attempt {
    let mut request = agent.post(url).header("Content-Type", body.content_type);
    for (name, value) in &body.headers {
        request = request.header(*name, value.as_str());
    }
    match request.send(&body.bytes[..]) {
        Ok(response) => judge_status(response.status().as_u16()),
        Err(e) => match e {
            ureq::Error::BadUri(_) | ureq::Error::Tls(_) | ureq::Error::Rustls(_) => {
                Attempt::GiveUp(e.to_string())
            }
            _ => Attempt::Retry(e.to_string()),
        },
    }
}

/// Every attempt until one is delivered or none is left; `Err` says why the last failed.
pub fn deliver(agent: &ureq::Agent, url: &str, body: &Body) -> Result<u32, String> {
    let mut last = String::new();
    for n in 1..=ATTEMPTS {
        if n > 1 {
            std::thread::sleep(backoff(n));
        }
        match attempt(agent, url, body) {
            Attempt::Delivered => return Ok(n),
            Attempt::GiveUp(why) => return Err(why),
            Attempt::Retry(why) => last = why,
        }
    }
    Err(format!("{last} ({ATTEMPTS} attempts)"))
}

/// A URL as it may be shown: scheme and host only (a webhook's path is often its secret).
pub fn shown(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_backoff() {
        assert_eq!(judge_status(204), Attempt::Delivered);
        assert!(matches!(judge_status(503), Attempt::Retry(_)));
        assert!(matches!(judge_status(429), Attempt::Retry(_)));
        assert!(matches!(judge_status(404), Attempt::GiveUp(_)));
        assert!(matches!(judge_status(301), Attempt::GiveUp(_)));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(2));
    }

    #[test]
    fn urls_are_shown_without_their_path() {
        assert_eq!(
            shown("https://hooks.slack.com/services/T0/B0/XXXX"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            shown("http://user:pw@127.0.0.1:8080/x?y"),
            "http://127.0.0.1:8080"
        );
    }
}
