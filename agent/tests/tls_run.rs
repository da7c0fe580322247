//! The mutual-TLS server as a library: `api::tls::run` on a listener of the test's own, with a
//! real supervisor, real handshakes and limits small enough to reach in a test — a handshake
//! deadline, a handshake pool of 4 (2 per peer), 2 sessions of which 1 is kept for `admin`, a
//! write deadline — then stopped by its token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pmfleet_agent::api::tls::{Endpoint, Limits, Stop, run};
use pmfleet_agent::home::AgentHome;
use pmfleet_agent::supervisor::Supervisor;
use pmfleet_shared::protocol::{ErrorKind, Request, Response};
use pmfleet_shared::tls::Role;
use pmfleet_testkit::tls;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const HANDSHAKE: Duration = Duration::from_millis(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_a_listener_of_its_callers_within_its_limits_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let home = AgentHome::new(dir.path().join("home"));
    home.prepare().unwrap();
    let tasks = TaskTracker::new();
    let supervisor = Supervisor::start(home, tasks.clone()).await;
    let ca = tls::Ca::new("test fleet CA");
    let leaf = ca.agent();
    let config = pmfleet_shared::tls::server_config(&ca.pem, &leaf.cert, &leaf.key).unwrap();
    let (_config_tx, config) = watch::channel(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits {
        handshake: HANDSHAKE,
        max_handshakes: 4,
        handshakes_per_peer: 2,
        max_sessions: 2,
        admin_reserve: 1,
        write: Duration::from_millis(500),
        ..Limits::default()
    };
    let stop = Stop {
        accepting: CancellationToken::new(),
        sessions: CancellationToken::new(),
    };
    let server = tokio::spawn(run(
        listener,
        Endpoint {
            config,
            supervisor,
            tasks: tasks.clone(),
            limits,
        },
        stop.clone(),
    ));
    let admin = tls::client_config(&ca.pem, Some(&ca.client(10)));
    let read = tls::client_config(&ca.pem, Some(&ca.client_as(11, Role::Read)));
    let status = |config: Arc<rustls::ClientConfig>| async move {
        tls::request(addr, config, &Request::Status, Duration::from_secs(10)).await
    };

    // A silent peer is closed at the handshake deadline.
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut [0u8; 8]))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let waited = started.elapsed();
    assert!(
        waited >= HANDSHAKE && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // More silent peers than the pool holds: the newest get in, evicting the oldest (closed at
    // once), and the controller's handshake is one of the newest.
    let mut crowd = Vec::new();
    for _ in 0..6 {
        crowd.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let evicted = tokio::time::timeout(HANDSHAKE / 2, crowd[0].read(&mut [0u8; 8]))
        .await
        .expect("the oldest of the crowd is closed before its deadline")
        .unwrap_or(0);
    assert_eq!(evicted, 0);
    assert!(matches!(
        status(admin.clone()).await,
        Ok(Response::Status(_))
    ));
    drop(crowd);

    // Sessions: one for `read`, the other kept for `admin`.
    let mut first = tls::connect(addr, read.clone()).await.unwrap();
    let pong = first.request(&Request::Ping, Duration::from_secs(5)).await;
    assert!(matches!(pong, Ok(Response::Pong { .. })), "{pong:?}");
    match status(read.clone()).await {
        Ok(Response::Error(e)) => assert_eq!(e.kind, ErrorKind::Busy, "{}", e.message),
        other => panic!("a second read session got {other:?}"),
    }
    assert!(matches!(
        status(admin.clone()).await,
        Ok(Response::Status(_))
    ));
    drop(first);

    // Stopped: no new connection is served, and `run` returns.
    stop.accepting.cancel();
    stop.sessions.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("run returns once stopped")
        .unwrap();
    assert!(status(admin).await.is_err());
}
