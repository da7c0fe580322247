//! `pmfleet dashboard [file] [env…]`: the fleet in a browser, served by the controller (axum)
//! on 127.0.0.1 unless told otherwise. It asks every host of the environments for its
//! `status` on a kept mutual-TLS connection ([`FleetSessions`]), as `monit` does, keeps each
//! answer in memory for the pages and in SQLite ([`store`]) for the charts and the deploy
//! history, and streams an app's log lines to the page (server-sent events). Actions
//! (reload, restart, stop, scale) go to the agents with the controller's certificate, whose
//! role the agents check. Every request needs the token printed at start ([`access`]).
//!
//! - [`access`]: who may see and act (token, cookie, CSRF), pure;
//! - [`pages`] and [`charts`]: the HTML, pure;
//! - [`store`]: the history in SQLite; `assets.rs`: the page's script and style;
//! - this file: the command, the polling, the routes.

pub mod access;
mod assets;
pub mod charts;
pub mod pages;
pub mod store;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use clap::Args;
use pmfleet_shared::protocol::{self, Request as AgentRequest, Response as AgentResponse, Target};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::agent::sessions::FleetSessions;
use crate::cli::parse_duration;
use crate::deploy::Exit;
use pages::HostState;
use store::Store;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[arg(
        value_name = "ARGS",
        help = "[ECOSYSTEM_FILE] [ENVIRONMENT…] (every environment when none is named)"
    )]
    pub words: Vec<String>,
    /// Where to listen (a port 0 picks a free one; the address printed says which).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// The history file [default: $XDG_DATA_HOME/pmfleet/dashboard.sqlite, ~/.local/share/…].
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// How long samples are kept for the charts.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub keep: Duration,
    /// How often each host is asked.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub refresh: Duration,
    /// How long each host may take to answer.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The ecosystem file (default: the one here, else the last one a command used).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// What every request handler shares.
struct Shared {
    sessions: FleetSessions,
    hosts: RwLock<Vec<HostState>>,
    store: Mutex<Store>,
    envs: Vec<String>,
    token: String,
    csrf: String,
}

type St = State<Arc<Shared>>;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub async fn run(args: DashboardArgs) -> Exit {
    let (targets, client) =
        match super::monit::load_fleet(&args.words, args.file.clone(), args.timeout) {
            Ok(fleet) => fleet,
            Err(message) => {
                eprintln!("error: {message}");
                return Exit::BadConfig;
            }
        };
    let db = match args
        .db
        .clone()
        .or_else(|| dirs::data_dir().map(|d| d.join("pmfleet").join("dashboard.sqlite")))
    {
        Some(p) => p,
        None => {
            eprintln!("error: no data directory for the history: pass --db FILE");
            return Exit::BadConfig;
        }
    };
    let store = match Store::open(&db, args.keep) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
    };
    let (token, csrf) = match (access::new_secret(), access::new_secret()) {
        (Ok(t), Ok(c)) => (t, c),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
    };
    let hosts = targets
        .iter()
        .map(|t| HostState {
            label: t.label(),
            env: t.env.clone(),
            answer: None,
        })
        .collect();
    let mut envs: Vec<String> = targets.iter().map(|t| t.env.clone()).collect();
    envs.dedup();
    let shared = Arc::new(Shared {
        sessions: FleetSessions::new(client, targets),
        hosts: RwLock::new(hosts),
        store: Mutex::new(store),
        envs,
        token,
        csrf,
    });
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return Exit::Failed;
        }
    };
    let addr = listener.local_addr().unwrap_or(args.listen);
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: listening on {addr}, not a loopback address: anyone who can reach it and has the token can act on the fleet"
        );
    }
    let n = shared.sessions.targets.len();
    for host in 0..n {
        tokio::spawn(poll(shared.clone(), host, args.refresh));
    }
    tokio::spawn(prune(shared.clone()));
    {
        // Said once; a closed stdout (`| head -1`) must not end the dashboard.
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "pmfleet dashboard: http://{addr}/?token={}",
            shared.token
        );
        let _ = writeln!(out, "history: {}", db.display());
        let _ = out.flush();
    }
    let app = router(shared);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    match served {
        Ok(()) => Exit::Success,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failed
        }
    }
}

/// Ask host `host` every `refresh`, keeping and recording each answer.
async fn poll(shared: Arc<Shared>, host: usize, refresh: Duration) {
    loop {
        let started = tokio::time::Instant::now();
        let answer = match shared.sessions.ask(host, &AgentRequest::Status).await {
            Ok(AgentResponse::Status(s)) => Ok(s),
            Ok(other) => Err(format!("unexpected answer: {other:?}")),
            Err(e) => Err(e.to_string()),
        };
        if let Ok(status) = &answer {
            let (label, env) = match shared.hosts.read() {
                Ok(h) => h
                    .get(host)
                    .map(|h| (h.label.clone(), h.env.clone()))
                    .unwrap_or_default(),
                Err(_) => return,
            };
            if let Ok(mut store) = shared.store.lock()
                && let Err(e) = store.record(now(), &env, &label, status)
            {
                tracing::warn!("dashboard: {e}");
            }
        }
        if let Ok(mut hosts) = shared.hosts.write()
            && let Some(h) = hosts.get_mut(host)
        {
            h.answer = Some(answer);
        }
        tokio::time::sleep_until(started + refresh).await;
    }
}

async fn prune(shared: Arc<Shared>) {
    loop {
        if let Ok(mut store) = shared.store.lock()
            && let Err(e) = store.prune(now())
        {
            tracing::warn!("dashboard: {e}");
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(fleet_page))
        .route("/app/{name}", get(app_page))
        .route("/app/{name}/instances", get(instances_fragment))
        .route("/host/{index}", get(host_page))
        .route("/history", get(history_page))
        .route("/logs/{host}/{app}", get(logs))
        .route("/action", post(action))
        .route("/dashboard.js", get(assets::script))
        .route("/dashboard.css", get(assets::style))
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every request: the token first, then security headers on the answer.
async fn guard(State(shared): St, req: Request, next: Next) -> Response {
    let query_token = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    });
    let verdict = access::check(
        &shared.token,
        access::Credentials {
            cookie_header: header_str(req.headers(), "cookie"),
            authorization: header_str(req.headers(), "authorization"),
            query_token: query_token.as_deref(),
        },
    );
    let mut response = match verdict {
        access::Verdict::Deny => (
            StatusCode::UNAUTHORIZED,
            "pmfleet dashboard: open the address with the token it printed when it started\n",
        )
            .into_response(),
        access::Verdict::SetCookie => {
            let path = req.uri().path().to_string();
            let mut r = Redirect::to(&path).into_response();
            if let Ok(v) = HeaderValue::from_str(&access::set_cookie(&shared.token)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        access::Verdict::Allow => next.run(req).await,
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn hosts(shared: &Shared) -> Vec<HostState> {
    shared.hosts.read().map(|h| h.clone()).unwrap_or_default()
}

async fn fleet_page(State(shared): St) -> Html<String> {
    Html(pages::fleet(&hosts(&shared)))
}

async fn app_page(
    State(shared): St,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Html<String> {
    let samples = shared
        .store
        .lock()
        .ok()
        .and_then(|s| s.samples(&name, now() - 6 * 3600).ok())
        .unwrap_or_default();
    let message = q.get("message").map(String::as_str);
    Html(pages::app(
        &name,
        &hosts(&shared),
        &samples,
        &shared.csrf,
        message,
    ))
}

async fn instances_fragment(State(shared): St, Path(name): Path<String>) -> Html<String> {
    Html(pages::instances(&name, &hosts(&shared)))
}

async fn host_page(State(shared): St, Path(index): Path<usize>) -> Response {
    match hosts(&shared).get(index) {
        Some(h) => Html(pages::host(h)).into_response(),
        None => (StatusCode::NOT_FOUND, "no such host\n").into_response(),
    }
}

async fn history_page(State(shared): St) -> Html<String> {
    let envs: Vec<(String, Vec<store::Rollout>)> = shared
        .envs
        .iter()
        .map(|env| {
            let records = shared
                .store
                .lock()
                .ok()
                .and_then(|s| s.rollouts(env).ok())
                .unwrap_or_default();
            (env.clone(), records)
        })
        .collect();
    Html(pages::history(&envs))
}

/// An app's log lines on one host, as server-sent events, until the page goes away.
async fn logs(State(shared): St, Path((host, app)): Path<(usize, String)>) -> Response {
    let Some(target) = shared.sessions.targets.get(host).cloned() else {
        return (StatusCode::NOT_FOUND, "no such host\n").into_response();
    };
    let (tx, rx) = mpsc::channel::<String>(256);
    let client = shared.sessions.client.clone();
    tokio::spawn(async move {
        let request = AgentRequest::Logs {
            app: Some(app),
            lines: 20,
            follow: true,
        };
        let lines = tx.clone();
        let streamed =
            client.stream(
                &target.host,
                target.port,
                &target.via,
                &request,
                move |r| match r {
                    AgentResponse::Log(l) => {
                        lines.try_send(format!("{} | {}", l.file, l.line)).is_ok()
                            || !lines.is_closed()
                    }
                    _ => true,
                },
            );
        tokio::select! {
            r = streamed => {
                if let Err(e) = r {
                    let _ = tx.send(format!("(logs: {e})")).await;
                }
            }
            _ = tx.closed() => {}
        }
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((Ok::<_, Infallible>(Event::default().data(line)), rx))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    csrf: Option<String>,
    host: usize,
    app: String,
    verb: String,
    instances: Option<String>,
}

/// A verb from a page's form, sent to the host's agent; back to the app's page with what
/// came of it.
async fn action(State(shared): St, headers: HeaderMap, Form(form): Form<ActionForm>) -> Response {
    if !access::action_allowed(
        &shared.csrf,
        form.csrf.as_deref(),
        header_str(&headers, "sec-fetch-site"),
        header_str(&headers, "origin"),
        header_str(&headers, "host"),
    ) {
        return (
            StatusCode::FORBIDDEN,
            "this action did not come from the dashboard's page\n",
        )
            .into_response();
    }
    let Some(target) = shared.sessions.targets.get(form.host).cloned() else {
        return (StatusCode::NOT_FOUND, "no such host\n").into_response();
    };
    let app_target = Target::App(form.app.clone());
    let request = match form.verb.as_str() {
        "reload" => AgentRequest::Reload { target: app_target },
        "restart" => AgentRequest::Restart { target: app_target },
        "stop" => AgentRequest::Stop { target: app_target },
        "scale" => match form
            .instances
            .as_deref()
            .unwrap_or_default()
            .trim()
            .parse::<protocol::ScaleTo>()
        {
            Ok(to) => AgentRequest::Scale {
                app: form.app.clone(),
                to,
            },
            Err(e) => return (StatusCode::BAD_REQUEST, format!("scale: {e}\n")).into_response(),
        },
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown action `{other}`\n"),
            )
                .into_response();
        }
    };
    let what = format!("{} {} on {}", form.verb, form.app, target.label());
    let outcome = shared
        .sessions
        .client
        .request(
            &target.host,
            target.port,
            &target.via,
            &request,
            Some(Duration::from_secs(120)),
        )
        .await;
    let message = match outcome {
        Ok(AgentResponse::Done { messages }) if messages.is_empty() => format!("{what}: done"),
        Ok(AgentResponse::Done { messages }) => format!("{what}: {}", messages.join("; ")),
        Ok(other) => format!("{what}: {other:?}"),
        Err(e) => format!("{what} failed: {e}"),
    };
    Redirect::to(&format!(
        "/app/{}?message={}",
        pages::encode(&form.app),
        pages::encode(&message)
    ))
    .into_response()
}
