//! The local control socket: the agent's CLI connects here. Access control is the file
//! mode (0600, in a 0700 home): whoever can open it is the agent's user.
//!
//! [`run`] is the server loop, given its listener and shutdown token, so a test can run it on
//! a socket of its own; every connection runs on the caller's [`TaskTracker`].

use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::session::{Caller, Session};
use super::{Origin, TlsControl};
use crate::supervisor::Supervisor;
use crate::upgrade::Upgrader;

/// At most this many clients at once; more wait in the accept backlog.
const MAX_CONNECTIONS: usize = 64;

/// Serve the control socket until `shutdown` is cancelled (by a signal, or by a `kill`
/// request, which first stops every app).
pub async fn run(
    listener: UnixListener,
    sup: Supervisor,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    serve(listener, sup, shutdown, tasks, None, None).await
}

/// [`run`] as the daemon runs it: with its mutual-TLS endpoint to reload on `reload_tls`,
/// and what it needs to `upgrade` itself in place.
pub async fn run_daemon(
    listener: UnixListener,
    sup: Supervisor,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    (tls, upgrader): (TlsControl, Upgrader),
) {
    serve(listener, sup, shutdown, tasks, Some(tls), Some(upgrader)).await
}

async fn serve(
    listener: UnixListener,
    sup: Supervisor,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    tls: Option<TlsControl>,
    upgrader: Option<Upgrader>,
) {
    let session = Session {
        sup,
        shutdown: shutdown.clone(),
        origin: Origin::Local,
        idle_timeout: None,
        write_timeout: None,
        // The CLI's `start` carries its whole environment: the local socket keeps the
        // protocol's largest frame.
        max_request: pmfleet_shared::protocol::MAX_FRAME_LEN,
        budget: None,
        tls,
        upgrader,
        client: None,
    };
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.cancelled() => return,
        };
        let mut stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let mut session = session.clone();
        // The socket is the agent user's: the peer is that user or root.
        session.client = stream.peer_cred().ok().map(|c| Caller::HostUser(c.uid()));
        tasks.spawn(async move {
            if let Err(e) = session.serve(&mut stream).await {
                tracing::debug!("control connection: {e}");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::home::AgentHome;
    use pmfleet_shared::protocol::{
        Request, Response, ScriptStart, StartRequest, StartSource, Status, Target,
    };

    /// The server on a socket of the test's own, driven through the real client: start a
    /// script, see it in the list, stop it, then `kill` ends `run`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_the_verbs_and_kill_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let home = AgentHome::new(dir.path().join("home"));
        home.prepare().unwrap();
        let listener = UnixListener::bind(home.socket()).unwrap();
        let tasks = TaskTracker::new();
        let sup = Supervisor::start(home.clone(), tasks.clone()).await;
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run(listener, sup, shutdown.clone(), tasks.clone()));

        let mut c = Client::connect(&home, false).await.unwrap();
        assert!(matches!(
            c.request(&Request::Ping).await.unwrap(),
            Response::Pong { .. }
        ));
        let start = StartRequest {
            source: StartSource::Script(ScriptStart {
                script: "sleep".into(),
                name: Some("nap".into()),
                args: vec!["30".into()],
                ..Default::default()
            }),
            env_name: None,
            cwd: dir.path().to_path_buf(),
            env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
            only: None,
        };
        let resp = c.request(&Request::Start(Box::new(start))).await.unwrap();
        assert!(matches!(resp, Response::Done { .. }), "{resp:?}");
        let Response::Processes { processes } = c.request(&Request::List).await.unwrap() else {
            panic!("not a list")
        };
        assert_eq!(processes.len(), 1);
        assert_eq!(processes[0].status, Status::Online);

        let missing = c
            .request(&Request::Stop {
                target: Target::App("nope".into()),
            })
            .await
            .unwrap();
        assert!(
            matches!(missing, Response::Error(ref e) if e.kind == pmfleet_shared::protocol::ErrorKind::NotFound)
        );
        c.request(&Request::Stop {
            target: Target::All,
        })
        .await
        .unwrap();

        let resp = c.request(&Request::Kill).await.unwrap();
        assert!(matches!(resp, Response::Done { .. }));
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
        assert!(shutdown.is_cancelled());
    }
}
