//! Reading an app's own metrics endpoint (`metrics` in the ecosystem file): every
//! [`INTERVAL`], an HTTP GET of its path on 127.0.0.1 for each online instance — on
//! `metrics.port + instance` when the endpoint has a port of its own, else on the app's
//! `port` — and the samples of the answer ([`super::prom_text`]) kept for that instance.
//!
//! The request is written by hand (one GET, `Connection: close`, a bounded answer): the
//! agent stays small and pulls in no HTTP client for it.

use std::time::Duration;

use pmfleet_shared::protocol::{AppSpec, MAX_APP_METRICS, MetricsEndpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How often each endpoint is read.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// How long one read may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer read.
pub const MAX_ANSWER: u64 = 256 * 1024;

/// The port instance `instance` of `spec` answers its metrics on, if any.
pub fn port_of(spec: &AppSpec, endpoint: &MetricsEndpoint, instance: u32) -> Option<u16> {
    match endpoint.port {
        Some(base) => u16::try_from(u32::from(base) + instance).ok(),
        None => spec.port,
    }
}

/// One read of `http://127.0.0.1:<port><path>`: the samples, or why none.
pub async fn read(port: u16, path: &str) -> Result<Vec<(String, f64)>, String> {
    let body = tokio::time::timeout(TIMEOUT, get(port, path))
        .await
        .map_err(|_| format!("no answer within {TIMEOUT:?}"))??;
    Ok(super::prom_text::samples(&body, MAX_APP_METRICS))
}

async fn get(port: u16, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| e.to_string())?;
    body_of(&raw)
}

/// The body of a `200` answer (chunked or not); an error naming the status otherwise.
pub fn body_of(raw: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("an answer without a header")?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered `{status}`"));
    }
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    if !chunked {
        return Ok(body.to_string());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| "a bad chunk size")?;
        if size == 0 {
            break;
        }
        let chunk = after.get(..size).ok_or("a truncated chunk")?;
        out.push_str(chunk);
        rest = after.get(size..).unwrap_or("").trim_start_matches("\r\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_plain_or_chunked_and_other_statuses_refused() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\njobs 1\n";
        assert_eq!(body_of(plain).unwrap(), "jobs 1\n");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\njobs\r\n3\r\n 2\n\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked).unwrap(), "jobs 2\n");
        let missing = b"HTTP/1.1 404 Not Found\r\n\r\nno";
        assert!(body_of(missing).unwrap_err().contains("404"));
        assert!(body_of(b"garbage").is_err());
    }

    #[test]
    fn each_instance_has_its_port() {
        let app = pmfleet_shared::ecosystem::App::from_script("/bin/sh");
        let mut spec =
            crate::supervisor::spec::resolve(&app, "/".as_ref(), &Default::default(), None)
                .expect("a script app resolves");
        spec.port = Some(3000);
        let own = MetricsEndpoint {
            path: "/metrics".into(),
            port: Some(9400),
        };
        let shared = MetricsEndpoint {
            path: "/metrics".into(),
            port: None,
        };
        assert_eq!(port_of(&spec, &own, 2), Some(9402));
        assert_eq!(port_of(&spec, &shared, 2), Some(3000));
        let top = MetricsEndpoint {
            path: "/m".into(),
            port: Some(u16::MAX),
        };
        assert_eq!(port_of(&spec, &top, 1), None);
    }
}
