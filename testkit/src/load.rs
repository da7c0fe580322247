//! HTTP load that counts every failed request: client threads sending `GET` to an app while a
//! test reloads, upgrades or drains it. Three shapes, one engine:
//!
//! - [`Load::start`]: half the clients on keep-alive connections (up to 50 requests each), half
//!   opening a new connection per request — what a reload must survive from real clients;
//! - [`Load::keep_alive`]: every client on one keep-alive connection, reused until the server
//!   says `Connection: close`, some requests slow (`/slow?ms=100`) so that some are in flight
//!   when a signal lands — what a drain must survive;
//! - [`Load::new_connections`]: one client, a new connection per request, to any address.
//!
//! A failed request is any error: a refused or reset connection, a partial or non-200
//! response. One exception, in [`Load::start`] only, as every HTTP client does it (RFC 9112
//! §9.3.1): a GET sent on a *reused* keep-alive connection that the server closed before
//! sending a single byte is retried once on a new connection — that connection was already
//! finished, the request did not fail. [`LoadReport::retried`] counts those.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::exchange;

/// What a load run saw.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Requests answered with 200.
    pub ok: u64,
    pub failed: u64,
    /// Requests retried because a reused keep-alive connection was closed before any byte.
    pub retried: u64,
    /// The first failures, with their reasons.
    pub errors: Vec<String>,
    /// Successful answers by the first number in their body (the test apps answer with their
    /// pid first).
    pub by_pid: HashMap<u32, u64>,
    /// Connections opened.
    pub connects: u64,
}

#[derive(Debug, Clone, Copy)]
enum Connections {
    /// Even clients keep-alive, odd ones a new connection per request.
    Mixed,
    KeepAlive,
    NewEach,
}

#[derive(Debug, Clone, Copy)]
struct Spec {
    addr: SocketAddr,
    connections: Connections,
    /// Requests on one keep-alive connection before the client opens a new one.
    reuse_limit: Option<u32>,
    retry_finished: bool,
    /// Every n-th request is `/slow?ms=100` (0: never).
    slow_every: u64,
    max_ok: u64,
    end: Instant,
    connect_timeout: Option<Duration>,
    io_timeout: Duration,
    max_errors: usize,
}

/// Running load; [`Load::finish`] stops it and reports.
pub struct Load {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<LoadReport>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// `workers` clients on 127.0.0.1:`port`, half keep-alive, half a new connection per
    /// request, until [`Load::finish`], `max` answered requests, or `deadline`.
    pub fn start(port: u16, workers: usize, max: u64, deadline: Duration) -> Load {
        Load::run(
            workers,
            Spec {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                connections: Connections::Mixed,
                reuse_limit: Some(50),
                retry_finished: true,
                slow_every: 0,
                max_ok: max,
                end: Instant::now() + deadline,
                connect_timeout: None,
                io_timeout: Duration::from_secs(10),
                max_errors: 10,
            },
        )
    }

    /// `clients` keep-alive clients on `addr` until [`Load::finish`]; every `slow_every`-th
    /// request is `/slow?ms=100` (0: never). No retries: every early close is a failure.
    pub fn keep_alive(addr: SocketAddr, clients: usize, slow_every: u64) -> Load {
        Load::run(
            clients,
            Spec {
                addr,
                connections: Connections::KeepAlive,
                reuse_limit: None,
                retry_finished: false,
                slow_every,
                max_ok: u64::MAX,
                end: Instant::now() + Duration::from_secs(3600),
                connect_timeout: Some(Duration::from_secs(2)),
                io_timeout: Duration::from_secs(5),
                max_errors: 20,
            },
        )
    }

    /// One client on `addr`, a new connection per request, until [`Load::finish`] or
    /// `deadline`.
    pub fn new_connections(addr: SocketAddr, deadline: Duration) -> Load {
        Load::run(
            1,
            Spec {
                addr,
                connections: Connections::NewEach,
                reuse_limit: None,
                retry_finished: false,
                slow_every: 0,
                max_ok: u64::MAX,
                end: Instant::now() + deadline,
                connect_timeout: None,
                io_timeout: Duration::from_secs(5),
                max_errors: 20,
            },
        )
    }

    fn run(clients: usize, spec: Spec) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(LoadReport::default()));
        let threads = (0..clients)
            .map(|n| {
                let keep_alive = match spec.connections {
                    Connections::Mixed => n % 2 == 0,
                    Connections::KeepAlive => true,
                    Connections::NewEach => false,
                };
                let (stop, report) = (stop.clone(), report.clone());
                std::thread::spawn(move || client(spec, keep_alive, &stop, &report))
            })
            .collect();
        Load {
            stop,
            report,
            threads,
        }
    }

    /// Requests answered so far.
    pub fn ok_so_far(&self) -> u64 {
        lock(&self.report).ok
    }

    /// Waits until `n` more requests were answered than when called: the load really ran
    /// against whatever the test just changed. Panics after `timeout`, with the report.
    pub fn wait_more(&self, n: u64, timeout: Duration) {
        let target = self.ok_so_far() + n;
        if let Err(e) = crate::wait::poll_until(timeout, &format!("{n} more answers"), || {
            self.ok_so_far() >= target
        }) {
            panic!("{e}: {:?}", self.snapshot());
        }
    }

    /// What the load saw so far; it keeps running.
    pub fn snapshot(&self) -> LoadReport {
        lock(&self.report).clone()
    }

    /// Stops every client and reports.
    pub fn finish(mut self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
        lock(&self.report).clone()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn lock(report: &Mutex<LoadReport>) -> std::sync::MutexGuard<'_, LoadReport> {
    report.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An open keep-alive connection and how many requests it carried.
type Conn = Option<(TcpStream, u32)>;

fn client(spec: Spec, keep_alive: bool, stop: &AtomicBool, report: &Mutex<LoadReport>) {
    let mut conn: Conn = None;
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) && Instant::now() < spec.end {
        if lock(report).ok >= spec.max_ok {
            break;
        }
        n += 1;
        let path = if spec.slow_every > 0 && n.is_multiple_of(spec.slow_every) {
            "/slow?ms=100"
        } else {
            "/"
        };
        let result = one_request(&spec, keep_alive, path, &mut conn, report);
        let mut r = lock(report);
        match result {
            Ok(body) => {
                r.ok += 1;
                if let Some(pid) = body.split_whitespace().find_map(|w| w.parse().ok()) {
                    *r.by_pid.entry(pid).or_default() += 1;
                }
            }
            Err(e) => {
                r.failed += 1;
                if r.errors.len() < spec.max_errors {
                    r.errors.push(format!("{path}: {e}"));
                }
            }
        }
    }
}

/// One request, on the held connection or a new one; the body of a 200 answer.
fn one_request(
    spec: &Spec,
    keep_alive: bool,
    path: &str,
    conn: &mut Conn,
    report: &Mutex<LoadReport>,
) -> Result<String, String> {
    let reused = conn.is_some();
    let (stream, count) = match conn {
        Some(held) => held,
        None => {
            let s = connect(spec).map_err(|e| format!("connect: {e}"))?;
            lock(report).connects += 1;
            conn.insert((s, 0))
        }
    };
    let request = if keep_alive {
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
    } else {
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    };
    match exchange(stream, request.as_bytes()) {
        Ok(answer) if answer.status == 200 => {
            *count += 1;
            if answer.close || !keep_alive || spec.reuse_limit.is_some_and(|l| *count >= l) {
                *conn = None;
            }
            Ok(answer.body)
        }
        Ok(answer) => {
            *conn = None;
            Err(format!("status {}: {:?}", answer.status, answer.body))
        }
        Err(f) if f.received == 0 && reused && spec.retry_finished => {
            // Closed by the server before any response byte: retry on a new connection.
            *conn = None;
            lock(report).retried += 1;
            one_request(spec, keep_alive, path, conn, report)
        }
        Err(f) => {
            *conn = None;
            Err(format!(
                "{} (after {} response bytes, reused={reused})",
                f.message, f.received
            ))
        }
    }
}

fn connect(spec: &Spec) -> std::io::Result<TcpStream> {
    let s = match spec.connect_timeout {
        Some(t) => TcpStream::connect_timeout(&spec.addr, t)?,
        None => TcpStream::connect(spec.addr)?,
    };
    s.set_read_timeout(Some(spec.io_timeout))?;
    s.set_write_timeout(Some(spec.io_timeout))?;
    s.set_nodelay(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A server answering keep-alive requests with "7 ok", closing every connection after
    /// `per_connection` answers without a word.
    fn server(per_connection: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    for _ in 0..per_connection {
                        if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
                            return;
                        }
                        let close = String::from_utf8_lossy(&buf).contains("Connection: close");
                        let head = if close { "Connection: close\r\n" } else { "" };
                        let answer =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n{head}\r\n7 ok\n");
                        if s.write_all(answer.as_bytes()).is_err() || close {
                            return;
                        }
                    }
                    // Read the next request, then hang up without answering it.
                    let _ = s.read(&mut buf);
                });
            }
        });
        addr
    }

    #[test]
    fn a_keep_alive_client_counts_an_unanswered_request_as_failed() {
        let load = Load::keep_alive(server(3), 1, 0);
        crate::wait_until(Duration::from_secs(10), "a failure", || {
            load.snapshot().failed > 0
        });
        let report = load.finish();
        assert!(report.ok >= 3, "{report:?}");
        assert_eq!(report.by_pid.get(&7).copied(), Some(report.ok));
        assert!(
            report.errors[0].contains("closed after 0 bytes"),
            "{report:?}"
        );
    }

    #[test]
    fn the_mixed_load_retries_a_finished_connection_and_fails_nothing() {
        let addr = server(3);
        let load = Load::start(addr.port(), 2, 60, Duration::from_secs(30));
        crate::wait_until(Duration::from_secs(10), "60 answers", || {
            load.ok_so_far() >= 60
        });
        let report = load.finish();
        assert_eq!(report.failed, 0, "{report:?}");
        assert!(report.retried > 0, "{report:?}");
    }
}
