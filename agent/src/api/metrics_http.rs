//! The metrics endpoint: what a Prometheus scraper reads (`GET /metrics`, the text of
//! [`crate::exposition`]), served where `<home>/metrics` says ([`MetricsListen`]):
//!
//! - `off` (or no file): nowhere — the default;
//! - `127.0.0.1:9209` (any loopback address, or a bare port): plain HTTP on that address,
//!   for a scraper on the same host; only loopback, since plain HTTP proves nothing about
//!   who asks;
//! - `tls`: the agent's mutual-TLS port, for scrapers holding a fleet certificate (any role:
//!   reading metrics is a `read` request). The endpoint then also offers the `http/1.1`
//!   ALPN protocol, and a connection that chose it is answered here instead of by the frame
//!   protocol.
//!
//! `setup` writes the file from the environment's `agent.metrics`; the daemon looks at it
//! every few seconds, so a change applies without a restart (for `tls`, at the next reload
//! of the TLS files, which every `setup` asks for).
//!
//! HTTP/1.1 is written by hand here, one GET per connection: the agent must stay small, and
//! a web framework for one read-only path would be most of its binary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::supervisor::Supervisor;

/// The file in the agent home that says where metrics are served.
pub const SETTINGS_FILE: &str = "metrics";
/// How long a scraper may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing the answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Plain-HTTP connections served at once.
const MAX_CONNECTIONS: usize = 16;
/// How often the settings file is looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

pub use pmfleet_shared::ecosystem::MetricsListen;

/// What the file in `home` says (`off` when there is none; an unreadable one is said).
pub fn of_home(home: &Path) -> Result<MetricsListen, String> {
    match std::fs::read_to_string(home.join(SETTINGS_FILE)) {
        Ok(text) => MetricsListen::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MetricsListen::Off),
        Err(e) => Err(e.to_string()),
    }
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics { head_only: bool },
    NotFound,
    BadMethod,
    BadRequest,
}

/// Route a request head (`GET /metrics HTTP/1.1`, then headers).
pub fn route(head: &str) -> Route {
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::BadMethod,
    };
    let path = target.split('?').next().unwrap_or_default();
    match path {
        "/metrics" | "/" => Route::Metrics { head_only },
        _ => Route::NotFound,
    }
}

/// Answer one HTTP request on `stream` (then the connection ends).
pub async fn answer<S>(stream: &mut S, sup: &Supervisor) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request in time"))??;
    let (status, body, head_only) = match route(&head) {
        Route::Metrics { head_only } => ("200 OK", sup.exposition(), head_only),
        Route::NotFound => (
            "404 Not Found",
            "only /metrics is served here\n".into(),
            false,
        ),
        Route::BadMethod => ("405 Method Not Allowed", "GET /metrics\n".into(), false),
        Route::BadRequest => ("400 Bad Request", "GET /metrics\n".into(), false),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&out).await?;
        stream.flush().await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the answer was not read"))??;
    Ok(())
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= MAX_HEAD {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Serve plain HTTP on `listener` until `stop`.
pub async fn serve(listener: TcpListener, sup: Supervisor, stop: CancellationToken) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (mut stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("metrics: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (sup, stop) = (sup.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                r = answer(&mut stream, &sup) => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "metrics: {e}");
                    }
                }
                _ = stop.cancelled() => {}
            }
            drop(permit);
        });
    }
}

/// The daemon's metrics endpoint: serve what `<home>/metrics` says, following the file.
pub async fn endpoint(home: PathBuf, sup: Supervisor, shutdown: CancellationToken) {
    let mut serving: Option<(MetricsListen, CancellationToken)> = None;
    let mut said: Option<Result<MetricsListen, String>> = None;
    loop {
        let wanted = of_home(&home);
        if said.as_ref() != Some(&wanted) {
            said = Some(wanted.clone());
            let listen = match wanted {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("metrics: {}: {e}", home.join(SETTINGS_FILE).display());
                    MetricsListen::Off
                }
            };
            if serving.as_ref().map(|(l, _)| *l) != Some(listen) {
                if let Some((_, stop)) = serving.take() {
                    stop.cancel();
                }
                serving = start(listen, &sup, &shutdown).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn start(
    listen: MetricsListen,
    sup: &Supervisor,
    shutdown: &CancellationToken,
) -> Option<(MetricsListen, CancellationToken)> {
    match listen {
        MetricsListen::Off => None,
        MetricsListen::Tls => {
            tracing::info!(
                "metrics: served on the mutual-TLS port (GET /metrics, any fleet certificate)"
            );
            Some((listen, shutdown.child_token()))
        }
        MetricsListen::Local(addr) => match TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!("metrics: serving http://{addr}/metrics");
                let stop = shutdown.child_token();
                tokio::spawn(serve(listener, sup.clone(), stop.clone()));
                Some((listen, stop))
            }
            Err(e) => {
                tracing::error!("metrics: cannot listen on {addr}: {e}");
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed() {
        let table = [
            (
                "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Route::Metrics { head_only: false },
            ),
            (
                "GET /metrics?x=1 HTTP/1.0\r\n\r\n",
                Route::Metrics { head_only: false },
            ),
            (
                "HEAD /metrics HTTP/1.1\r\n\r\n",
                Route::Metrics { head_only: true },
            ),
            (
                "GET / HTTP/1.1\r\n\r\n",
                Route::Metrics { head_only: false },
            ),
            ("GET /secrets HTTP/1.1\r\n\r\n", Route::NotFound),
            ("POST /metrics HTTP/1.1\r\n\r\n", Route::BadMethod),
            ("GET /metrics\r\n\r\n", Route::BadRequest),
            ("GET /metrics SPDY/3\r\n\r\n", Route::BadRequest),
            ("", Route::BadRequest),
        ];
        for (head, want) in table {
            assert_eq!(route(head), want, "{head:?}");
        }
    }
}
