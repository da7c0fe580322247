//! The local control socket: the agent's CLI connects here. Access control is the file
//! mode (0600, in a 0700 home): whoever can open it is the agent's user.
//!
//! [`run`] is the server loop, given its listener and shutdown token, so a test can run it on
//! a socket of its own; every connection runs on the caller's [`TaskTracker`].

use std::path::PathBuf;
use std::sync::Arc;

use pmfleet_shared::protocol::{LogLine, Request, Response};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::{read_frame, write_frame};
use crate::supervisor::Supervisor;

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
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.cancelled() => return,
        };
        let stream = tokio::select! {
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
        let (sup, shutdown) = (sup.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = serve(stream, sup, shutdown).await {
                tracing::debug!("control connection: {e}");
            }
            drop(permit);
        });
    }
}

async fn serve(
    mut stream: UnixStream,
    sup: Supervisor,
    shutdown: CancellationToken,
) -> Result<(), super::conn::ConnError> {
    loop {
        let req: Request = tokio::select! {
            r = read_frame(&mut stream) => match r? { Some(r) => r, None => return Ok(()) },
            _ = shutdown.cancelled() => return Ok(()),
        };
        match req {
            Request::Kill => {
                sup.shutdown(true).await;
                let msg = "stopped every app; the agent exits".to_string();
                write_frame(
                    &mut stream,
                    &Response::Done {
                        messages: vec![msg],
                    },
                )
                .await?;
                shutdown.cancel();
                return Ok(());
            }
            Request::Logs { app, lines, follow } => {
                return logs(stream, &sup, app.as_deref(), lines, follow, shutdown).await;
            }
            req => {
                let resp = super::dispatch(&sup, req).await;
                write_frame(&mut stream, &resp).await?;
            }
        }
    }
}

/// `logs`: the last lines of each file, then (with `follow`) new lines until the client
/// hangs up or the agent shuts down.
async fn logs(
    mut stream: UnixStream,
    sup: &Supervisor,
    app: Option<&str>,
    lines: usize,
    follow: bool,
    shutdown: CancellationToken,
) -> Result<(), super::conn::ConnError> {
    let files = match sup.log_files(app) {
        Ok(f) => f,
        Err(e) => {
            let err = pmfleet_shared::protocol::ApiError {
                kind: e.kind(),
                message: e.report(),
            };
            return write_frame(&mut stream, &Response::Error(err)).await;
        }
    };
    for (app, path) in &files {
        for line in crate::logs::tail(path, lines).unwrap_or_default() {
            write_frame(&mut stream, &Response::Log(log_line(app, path, line))).await?;
        }
    }
    if !follow {
        return write_frame(&mut stream, &Response::End).await;
    }
    let cancel = shutdown.child_token();
    let _stop_followers = cancel.clone().drop_guard();
    let (tx, mut rx) = mpsc::channel::<LogLine>(1024);
    for (app, path) in files {
        let (tx, cancel) = (tx.clone(), cancel.clone());
        tokio::spawn(async move {
            let follow_cancel = cancel.clone();
            let _ = crate::logs::follow(&path, follow_cancel, |line| {
                // A client too slow to keep up loses lines rather than stalling the agent.
                let _ = tx.try_send(log_line(&app, &path, line.to_string()));
            })
            .await;
        });
    }
    drop(tx);
    let (mut rd, mut wr) = stream.split();
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(l) => write_frame(&mut wr, &Response::Log(l)).await?,
                None => return write_frame(&mut wr, &Response::End).await,
            },
            // The client never sends more: a read returning means it hung up.
            _ = tokio::io::AsyncReadExt::read(&mut rd, &mut probe) => return Ok(()),
            _ = cancel.cancelled() => return write_frame(&mut wr, &Response::End).await,
        }
    }
}

fn log_line(app: &str, path: &std::path::Path, line: String) -> LogLine {
    let file = PathBuf::from(path.file_name().unwrap_or_default())
        .display()
        .to_string();
    LogLine {
        app: app.to_string(),
        file,
        line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::home::AgentHome;
    use pmfleet_shared::protocol::{ScriptStart, StartRequest, StartSource, Status, Target};

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
