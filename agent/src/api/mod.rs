//! The agent's APIs. Both speak [`pmfleet_shared::protocol`] frames and hand every request to
//! [`dispatch`], which calls the [`Supervisor`]; only the transport, and what each endpoint
//! accepts ([`Origin`]), differ.
//!
//! - [`local`]: the Unix socket in the agent home (mode 0600), for the agent's own CLI.
//! - [`tls`]: the mutual-TLS TCP endpoint, for the controller.
//! - [`access`]: which request each origin (and each certificate role) may send.
//! - [`metrics_http`]: the metrics endpoint for Prometheus (`GET /metrics`), on a loopback
//!   port or the mutual-TLS port, as `<home>/metrics` says.
//! - [`admission`]: the connection slots of the TLS endpoint (handshakes, sessions).
//! - [`release_gate`]: what a remote `apply_release` may name (a release SSH put on the host).
//! - [`app_record`]: app commands asked over mutual TLS, appended to the audit file of the
//!   deploy root their app runs from.
//! - [`deploy_roots`]: what `status` says about each deploy root (`current`, the rollout
//!   record, the lock, which release each app runs), read from what SSH wrote.
//! - `session`: one connection's request loop and the streamed `logs` and `events`, shared by
//!   both.

pub mod access;
pub mod admission;
pub mod app_record;
pub mod deploy_roots;
pub mod local;
pub mod metrics_http;
pub mod release_gate;
mod session;
pub mod tls;

pub use access::Origin;

use pmfleet_shared::protocol::{ApiError, ErrorKind, Request, Response};
use tokio::sync::{mpsc, oneshot};

use crate::supervisor::{Supervisor, SupervisorError};

/// Answer one single-response request. `Logs` and `Events` (streams), `Kill` (ends the
/// daemon), `ReloadTls` (restarts an endpoint) and `Upgrade` (replaces the daemon's binary)
/// are handled by the session, which owns the
/// connection, the shutdown signal and the TLS endpoint's handle.
pub async fn dispatch(sup: &Supervisor, req: Request) -> Response {
    let done = |r: Result<Vec<String>, SupervisorError>| match r {
        Ok(messages) => Response::Done { messages },
        Err(e) => error(&e),
    };
    match req {
        Request::Ping => Response::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            since_ms: crate::daemon::started_ms(),
        },
        Request::Start(s) => done(sup.start_apps(*s).await),
        Request::Stop { target } => done(sup.stop(&target).await),
        Request::Restart { target } => done(sup.restart(&target).await),
        Request::Reload { target } => done(sup.reload(&target).await),
        Request::Delete { target } => done(sup.delete(&target).await),
        Request::Scale { app, to } => done(sup.scale(&app, to).await),
        Request::List => Response::Processes {
            processes: sup.list(),
        },
        Request::Status => {
            let mut status = sup.status();
            let apps = deploy_roots::apps_of_supervisor(sup);
            status.roots = deploy_roots::read(sup.home().root(), &apps);
            status.host = Some(sup.host_load());
            Response::Status(status)
        }
        Request::Metrics => Response::Metrics {
            text: sup.exposition(),
        },
        Request::ApplyRelease(r) => match release_gate::resolve(sup.home().root(), &r) {
            Ok(dir) => applied(sup.apply_release(dir).await),
            Err(refused) => {
                tracing::warn!("apply_release refused: {refused}");
                Response::Error(refused.to_api())
            }
        },
        Request::WatchRelease(w) => {
            let gate = pmfleet_shared::protocol::ApplyRelease {
                root: w.root.clone(),
                release: w.release.clone(),
                timeout_ms: 0,
            };
            match release_gate::resolve(sup.home().root(), &gate) {
                Ok(dir) => {
                    let period = std::time::Duration::from_millis(
                        w.period_ms.min(pmfleet_shared::protocol::MAX_WATCH_MS),
                    );
                    Response::Watched(sup.watch_release(&dir.release_dir, period).await)
                }
                Err(refused) => Response::Error(refused.to_api()),
            }
        }
        Request::Maintenance(m) => done(sup.maintenance(&m).await),
        Request::ApplyDir(d) => applied(sup.apply_release(*d).await),
        Request::Show { app } => match sup.show(&app) {
            Ok(app) => Response::App { app: Box::new(app) },
            Err(e) => error(&e),
        },
        Request::Flush { app } => done(sup.flush(app.as_deref()).await),
        Request::ReloadLogs => Response::Done {
            messages: sup.reload_logs().await,
        },
        Request::Save => done(sup.save()),
        Request::Resurrect => done(sup.resurrect().await),
        Request::Logs { .. }
        | Request::Events { .. }
        | Request::Kill
        | Request::ReloadTls
        | Request::Upgrade { .. } => Response::Error(ApiError {
            kind: ErrorKind::Internal,
            message: "this request is handled by the transport".into(),
        }),
    }
}

fn applied(r: Result<pmfleet_shared::protocol::ApplyReport, SupervisorError>) -> Response {
    match r {
        Ok(report) => Response::Applied(report),
        Err(e) => error(&e),
    }
}

fn error(e: &SupervisorError) -> Response {
    Response::Error(ApiError {
        kind: e.kind(),
        message: e.report(),
    })
}

/// A handle on the daemon's mutual-TLS endpoint: `reload_tls` asks it to read its files
/// again, and gets back what it now serves (or why it cannot).
#[derive(Debug, Clone)]
pub struct TlsControl {
    tx: mpsc::Sender<oneshot::Sender<Result<Vec<String>, String>>>,
}

/// The endpoint's side of a [`TlsControl`].
pub type TlsReloads = mpsc::Receiver<oneshot::Sender<Result<Vec<String>, String>>>;

impl TlsControl {
    pub fn new() -> (TlsControl, TlsReloads) {
        let (tx, rx) = mpsc::channel(4);
        (TlsControl { tx }, rx)
    }

    /// Ask for a reload and wait for its outcome.
    pub async fn reload(&self) -> Result<Vec<String>, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .await
            .map_err(|_| "the mutual-TLS endpoint is not running".to_string())?;
        rx.await
            .map_err(|_| "the mutual-TLS endpoint ended during the reload".to_string())?
    }
}
