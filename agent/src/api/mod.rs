//! The agent's APIs. Both speak [`pmfleet_shared::protocol`] frames and hand every request to
//! [`dispatch`], which calls the [`Supervisor`]; only the transport differs.
//!
//! - [`local`]: the Unix socket in the agent home (mode 0600), for the agent's own CLI.

pub mod conn;
pub mod local;

use pmfleet_shared::protocol::{ApiError, ErrorKind, Request, Response};

use crate::supervisor::{Supervisor, SupervisorError};

/// Answer one single-response request. `Logs` (a stream) and `Kill` (ends the daemon) are
/// handled by the transport, which owns the connection and the shutdown signal.
pub async fn dispatch(sup: &Supervisor, req: Request) -> Response {
    let done = |r: Result<Vec<String>, SupervisorError>| match r {
        Ok(messages) => Response::Done { messages },
        Err(e) => error(&e),
    };
    match req {
        Request::Ping => Response::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
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
        Request::Logs { .. } | Request::Kill => Response::Error(ApiError {
            kind: ErrorKind::Internal,
            message: "this request is handled by the transport".into(),
        }),
    }
}

fn error(e: &SupervisorError) -> Response {
    Response::Error(ApiError {
        kind: e.kind(),
        message: e.report(),
    })
}
