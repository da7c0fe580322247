//! The agent endpoint against hostile peers, for real: a `pmfleet-agent` daemon certified by
//! a fleet CA made at test time, and peers that send malformed frames (bad lengths, truncated,
//! huge, another version, valid JSON of the wrong shape), flood it with idle and half-done
//! handshakes or with idle authenticated sessions, or stop reading a stream. After each, the
//! controller's request is still answered, and the agent's memory stays where it was.

mod agent_endpoint;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agent_endpoint::{Agent, Conn, Fleet, ask, connect, runtime, still_serves, wait_until};
use pmfleet_shared::protocol::{
    ErrorKind, MAX_FRAME_LEN, MAX_REQUEST_LEN, PROTOCOL_VERSION, Request, Response,
};
use pmfleet_shared::tls::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A frame with `payload` as its body and a correct length prefix.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

/// What the agent did with what was sent: its first answer (if any), and whether it then
/// closed the connection.
async fn answer_to(conn: &mut Conn, bytes: &[u8]) -> (Option<Response>, bool) {
    let _ = conn.send_bytes(bytes).await;
    let first = conn.recv(Duration::from_secs(10)).await.ok();
    let closed = conn.recv(Duration::from_secs(10)).await.is_err();
    (first, closed)
}

#[test]
fn malformed_frames_are_answered_with_an_error_and_never_disturb_the_others() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    let v = PROTOCOL_VERSION;
    let other_version = format!(r#"{{"v":{},"body":{{"op":"list"}}}}"#, v + 1);
    // (what, bytes, the error kind answered, words in its message)
    let table: Vec<(&str, Vec<u8>, ErrorKind, &str)> = vec![
        (
            "a length just over the request cap",
            (MAX_REQUEST_LEN + 1).to_be_bytes().to_vec(),
            ErrorKind::Invalid,
            "larger than",
        ),
        (
            "a length over the protocol's largest frame",
            (MAX_FRAME_LEN + 1).to_be_bytes().to_vec(),
            ErrorKind::Invalid,
            "larger than",
        ),
        (
            "the largest length there is",
            u32::MAX.to_be_bytes().to_vec(),
            ErrorKind::Invalid,
            "larger than",
        ),
        (
            "an empty frame",
            frame(b""),
            ErrorKind::Invalid,
            "malformed",
        ),
        (
            "not JSON",
            frame(b"\xff\xfe\x00garbage"),
            ErrorKind::Invalid,
            "malformed",
        ),
        (
            "a JSON array",
            frame(b"[1,2,3]"),
            ErrorKind::Invalid,
            "malformed",
        ),
        (
            "a JSON string",
            frame(br#""list""#),
            ErrorKind::Invalid,
            "malformed",
        ),
        (
            "no version",
            frame(br#"{"body":{"op":"list"}}"#),
            ErrorKind::Invalid,
            "malformed",
        ),
        (
            "no body",
            frame(format!(r#"{{"v":{v}}}"#).as_bytes()),
            ErrorKind::Invalid,
            "malformed",
        ),
        (
            "an unknown request",
            frame(format!(r#"{{"v":{v},"body":{{"op":"format_disk"}}}}"#).as_bytes()),
            ErrorKind::Invalid,
            "malformed",
        ),
        (
            "a request of the wrong shape",
            frame(format!(r#"{{"v":{v},"body":{{"op":"stop","target":42}}}}"#).as_bytes()),
            ErrorKind::Invalid,
            "malformed",
        ),
        (
            "a number where text belongs",
            frame(format!(r#"{{"v":{v},"body":{{"op":"show","app":[1]}}}}"#).as_bytes()),
            ErrorKind::Invalid,
            "malformed",
        ),
        (
            "deeply nested JSON",
            frame(
                format!(
                    r#"{{"v":{v},"body":{{"op":"show","app":"x","extra":{}{}}}}}"#,
                    "[".repeat(5000),
                    "]".repeat(5000)
                )
                .as_bytes(),
            ),
            ErrorKind::Invalid,
            "malformed",
        ),
        (
            "another protocol version",
            frame(other_version.as_bytes()),
            ErrorKind::Version,
            "version",
        ),
    ];
    for (what, bytes, kind, words) in table {
        let (first, closed) = rt.block_on(async {
            let mut conn = connect(agent.addr, fleet.controller())
                .await
                .expect("connect");
            answer_to(&mut conn, &bytes).await
        });
        match first {
            Some(Response::Error(e)) => {
                assert_eq!(e.kind, kind, "{what}: {}", e.message);
                assert!(e.message.contains(words), "{what}: {}", e.message);
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(
            closed,
            "{what}: the connection must be closed after the error"
        );
        still_serves(&rt, &agent, &fleet);
    }

    // A frame cut short (the peer ends its side after 10 of 100 bytes): no answer, closed.
    let answer = rt.block_on(async {
        let mut conn = connect(agent.addr, fleet.controller())
            .await
            .expect("connect");
        let mut bytes = 100u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[b'{'; 10]);
        conn.send_bytes(&bytes).await.expect("send");
        conn.stream.shutdown().await.expect("close our side");
        conn.recv(Duration::from_secs(10)).await
    });
    assert!(answer.is_err(), "{answer:?}");
    still_serves(&rt, &agent, &fleet);

    // Extra fields are ignored and a good request after errors elsewhere is answered.
    let good = format!(r#"{{"v":{v},"body":{{"op":"ping","junk":[1,{{"a":null}}]}},"more":1}}"#);
    let (first, _) = rt.block_on(async {
        let mut conn = connect(agent.addr, fleet.controller())
            .await
            .expect("connect");
        let _ = conn.send_bytes(&frame(good.as_bytes())).await;
        (conn.recv(Duration::from_secs(10)).await, ())
    });
    assert!(matches!(first, Ok(Response::Pong { .. })), "{first:?}");
}

/// The agent's resident memory sampled every few milliseconds while `burst` runs: the
/// highest value seen.
fn peak_rss_during(agent: &Agent, burst: impl FnOnce()) -> u64 {
    let pid = agent.pid();
    let peak = Arc::new(AtomicU64::new(agent.rss_bytes()));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(kb) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                    })
                {
                    peak.fetch_max(kb * 1024, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    burst();
    // What the agent still holds once the burst is over counts too.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    sampler.join().expect("sampler");
    peak.load(Ordering::SeqCst)
}

/// A frame of exactly `len` bytes of valid JSON: a `show` request padded with an array of
/// zeros, the shape that costs a naive decoder the most memory per byte.
fn padded_request(len: usize) -> Vec<u8> {
    let head = format!(r#"{{"v":{PROTOCOL_VERSION},"body":{{"op":"show","app":"x","pad":["#);
    let tail = "0]}}";
    let mut json = head.into_bytes();
    while json.len() + tail.len() + 2 <= len {
        json.extend_from_slice(b"0,");
    }
    while json.len() + tail.len() < len {
        json.push(b' ');
    }
    json.extend_from_slice(tail.as_bytes());
    frame(&json)
}

#[test]
fn a_burst_of_huge_and_maximum_size_frames_does_not_grow_the_agent() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    still_serves(&rt, &agent, &fleet);
    let before = agent.rss_bytes();
    let huge = padded_request(16 * 1024 * 1024 - 8);
    let largest = padded_request(MAX_REQUEST_LEN as usize);
    let peak = peak_rss_during(&agent, || {
        rt.block_on(async {
            let mut tasks = Vec::new();
            // Four frames of 16 MiB of JSON at once, as a hostile client sends them…
            for _ in 0..4 {
                let (addr, config, huge) = (agent.addr, fleet.controller(), huge.clone());
                tasks.push(tokio::spawn(async move {
                    let mut conn = connect(addr, config).await.expect("connect");
                    let _ = conn.send_bytes(&huge).await;
                    let _ = conn.recv(Duration::from_secs(30)).await;
                }));
            }
            // … and 64 connections sending frames of the largest size accepted, twice each.
            for _ in 0..64 {
                let (addr, config, largest) = (agent.addr, fleet.controller(), largest.clone());
                tasks.push(tokio::spawn(async move {
                    let Ok(mut conn) = connect(addr, config).await else {
                        return;
                    };
                    for _ in 0..2 {
                        if conn.send_bytes(&largest).await.is_err() {
                            return;
                        }
                        if conn.recv(Duration::from_secs(30)).await.is_err() {
                            return;
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    });
    let grown = peak.saturating_sub(before);
    eprintln!(
        "agent RSS: {} KiB before, {} KiB at the peak (+{} KiB)",
        before / 1024,
        peak / 1024,
        grown / 1024
    );
    assert!(
        grown < 24 * 1024 * 1024,
        "the agent grew by {} MiB (from {} MiB)",
        grown / (1024 * 1024),
        before / (1024 * 1024)
    );
    still_serves(&rt, &agent, &fleet);
}

#[test]
fn logs_sends_at_most_the_clamped_number_of_lines() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    agent.start_shell_app(
        "chatty",
        "i=0; while [ $i -lt 12000 ]; do echo \"line $i\"; i=$((i+1)); done; exec sleep 300",
    );
    let out_log = || {
        std::fs::read_dir(agent.home.path().join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("chatty-out"))
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(30), "12000 lines logged", || {
        out_log().contains("line 11999")
    });
    let lines = rt.block_on(async {
        let mut conn = connect(agent.addr, fleet.controller())
            .await
            .expect("connect");
        conn.send(&Request::Logs {
            app: Some("chatty".into()),
            lines: usize::MAX,
            follow: false,
        })
        .await
        .expect("send");
        let mut n = 0;
        loop {
            match conn.recv(Duration::from_secs(30)).await {
                Ok(Response::Log(_)) => n += 1,
                Ok(Response::End) => return n,
                other => panic!("{other:?}"),
            }
        }
    });
    assert!(lines > 0 && lines <= 10_000, "{lines} lines");
}

/// `n` TCP connections that never send a byte, and `n` that start a TLS handshake (a record
/// header announcing a ClientHello) and never finish it.
fn flood(addr: std::net::SocketAddr, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    let mut held = Vec::new();
    for i in 0..2 * n {
        let Ok(mut tcp) = std::net::TcpStream::connect(addr) else {
            continue;
        };
        if i % 2 == 1 {
            let _ = tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
        }
        held.push(tcp);
    }
    held
}

#[test]
fn a_flood_of_idle_and_slow_handshakes_does_not_lock_the_controller_out() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    let held = flood(agent.addr, 70);
    assert!(held.len() >= 130, "only {} connections opened", held.len());
    let started = Instant::now();
    match ask(&rt, agent.addr, fleet.controller(), &Request::Status) {
        Ok(Response::Status(_)) => {}
        other => panic!("the controller was locked out: {other:?}\n{}", agent.log()),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered only after {:?}",
        started.elapsed()
    );
    // Again and again while the flood holds its connections.
    for _ in 0..5 {
        still_serves(&rt, &agent, &fleet);
    }
    drop(held);
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_dropped_at_the_deadline() {
    use std::io::Read;
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    let mut silent = std::net::TcpStream::connect(agent.addr).expect("connect");
    let since = Instant::now();
    // The others are served meanwhile.
    still_serves(&rt, &agent, &fleet);
    assert!(since.elapsed() < Duration::from_secs(2));
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let n = silent.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the silent client gets nothing");
    let waited = since.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "closed after {waited:?}"
    );
    still_serves(&rt, &agent, &fleet);
}

#[test]
fn idle_sessions_of_other_roles_leave_capacity_for_the_controller() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    let dashboard = fleet.issue("dashboard", Role::Read);
    // 64 authenticated connections of a `read` certificate, each answered once and kept open.
    let (open, busy) = rt.block_on(async {
        let mut open = Vec::new();
        let mut busy = 0;
        for _ in 0..64 {
            let mut conn = connect(agent.addr, dashboard.clone())
                .await
                .expect("connect");
            match conn.request(&Request::Ping, Duration::from_secs(10)).await {
                Ok(Response::Pong { .. }) => open.push(conn),
                Ok(Response::Error(e)) if e.kind == ErrorKind::Busy => busy += 1,
                other => panic!("{other:?}"),
            }
        }
        (open, busy)
    });
    assert!(busy > 0, "every one of 64 read sessions got a slot");
    assert!(open.len() >= 32, "only {} read sessions served", open.len());
    // The controller still gets in, several times.
    for _ in 0..3 {
        still_serves(&rt, &agent, &fleet);
    }
    drop(open);
}

#[test]
fn a_follower_that_stops_reading_is_dropped_after_the_write_deadline() {
    let fleet = Fleet::new();
    let agent = Agent::start(&fleet);
    let rt = runtime();
    // An app that writes a 4 KiB line every 10 ms.
    agent.start_shell_app(
        "chatty",
        "while :; do printf '%04096d\\n' 0; sleep 0.01; done",
    );
    let stalled = rt.block_on(async {
        // A small receive window, so the agent's writes block soon after we stop reading.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let tcp = socket.connect(agent.addr).await.expect("connect");
        let connector = tokio_rustls::TlsConnector::from(fleet.controller());
        let name = pmfleet_shared::tls::server_name("127.0.0.1").expect("name");
        let stream = connector.connect(name, tcp).await.expect("handshake");
        let mut conn = Conn { stream };
        conn.send(&Request::Logs {
            app: Some("chatty".into()),
            lines: 0,
            follow: true,
        })
        .await
        .expect("send");
        // Read the first line, then never again.
        let first = conn.recv(Duration::from_secs(20)).await;
        assert!(matches!(first, Ok(Response::Log(_))), "{first:?}");
        conn
    });
    wait_until(
        Duration::from_secs(90),
        "the agent to drop the stalled follower",
        || agent.log().contains("did not read an answer within"),
    );
    // The stream ends: what was in flight can be read, then the connection is closed.
    let ended = rt.block_on(async move {
        let mut conn = stalled;
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), conn.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
        false
    });
    assert!(ended, "the stalled follower's connection was not closed");
    still_serves(&rt, &agent, &fleet);
}
