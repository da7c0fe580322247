//! `pmfleet dashboard [file] [env…]`: the fleet in a browser, served by the controller (axum)
//! on 127.0.0.1 unless told otherwise. It asks every host of the environments for its
//! `status` on a kept mutual-TLS connection ([`FleetSessions`]), as `monit` does, keeps each
//! answer in memory for the pages and in SQLite ([`store`]) for the charts and the deploy
//! history, and streams an app's log lines to the page (server-sent events). Actions
//! (reload, restart, stop, scale) go to the agents with the controller's certificate, whose
//! role the agents check. Every request needs the token printed at start or, over HTTPS
//! (`--tls`), a fleet client certificate, whose role then bounds the actions ([`access`]).
//!
//! - [`access`]: who may see and act (token, cookie, certificate, role, CSRF), pure;
//! - [`tls`]: HTTPS, the dashboard's certificate, client certificates and the CRL;
//! - `guard.rs`: every request signed in (certificate or token) and given its headers;
//! - [`pages`] and [`charts`]: the HTML, pure;
//! - [`store`]: the history in SQLite; `assets.rs`: the page's script and style;
//! - this file: the command, the polling, the routes.

pub mod access;
mod assets;
pub mod charts;
mod guard;
pub mod pages;
mod serve;
pub mod store;
pub mod tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use clap::Args;
use pmfleet_shared::protocol::{self, Request as AgentRequest, Response as AgentResponse};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::agent::sessions::FleetSessions;
use crate::audit::view_action::{self, Actor};
use crate::cli::parse_duration;
use crate::deploy::Exit;
use access::Session;
use guard::header_str;
use pages::HostState;
use store::Store;
use tls::Trust;

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
    /// Serve HTTPS with a certificate from the fleet CA of this machine, and let a browser
    /// holding a fleet client certificate in without the token, with that certificate's role.
    #[arg(long)]
    pub tls: bool,
    /// Another name for the dashboard's certificate (a host name or address the browser
    /// uses), beside the one it listens on; repeatable.
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_name: Vec<String>,
}

/// What every request handler shares.
struct Shared {
    sessions: FleetSessions,
    hosts: RwLock<Vec<HostState>>,
    store: Mutex<Store>,
    envs: Vec<String>,
    token: String,
    csrf: String,
    /// With `--tls`: which client certificates are trusted, now.
    trust: Option<Arc<Trust>>,
    /// The dashboard's own user (as a deploy records it), for the token's actions.
    who: String,
    /// The ecosystem file the fleet is from, for the audit trail.
    ecosystem: std::path::PathBuf,
}

type St = State<Arc<Shared>>;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub async fn run(args: DashboardArgs) -> Exit {
    let (targets, client, ecosystem) =
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
    let prepared = if args.tls {
        match tls::prepare(args.listen, &args.tls_name) {
            Ok(p) => Some(p),
            Err(message) => {
                eprintln!("error: {message}");
                return Exit::BadConfig;
            }
        }
    } else {
        None
    };
    let shared = Arc::new(Shared {
        sessions: FleetSessions::new(client, targets),
        hosts: RwLock::new(hosts),
        store: Mutex::new(store),
        envs,
        token,
        csrf,
        trust: prepared.as_ref().map(|p| p.trust.clone()),
        who: crate::deploy::who_in(ecosystem.parent()),
        ecosystem,
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
            "warning: listening on {addr}, not a loopback address: anyone who can reach it and has the token{} can act on the fleet",
            if args.tls {
                " or a fleet client certificate"
            } else {
                ""
            }
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
        let scheme = if prepared.is_some() { "https" } else { "http" };
        let _ = writeln!(
            out,
            "pmfleet dashboard: {scheme}://{addr}/?token={}",
            shared.token
        );
        let _ = writeln!(out, "history: {}", db.display());
        if let Some(p) = &prepared {
            let how = if p.cert.issued { "issued now" } else { "kept" };
            let _ = writeln!(
                out,
                "certificate: {} (for {}; {how}), from the fleet CA",
                p.cert.cert_path.display(),
                p.names.join(", ")
            );
            let _ = writeln!(
                out,
                "trust: {} (import it into the browser as an authority)",
                p.ca_file.display()
            );
            let _ = writeln!(
                out,
                "client certificates: one from the fleet CA signs in without the token, with its role (`pmfleet ca issue NAME --role read`)"
            );
        }
        let _ = out.flush();
    }
    let app = router(shared);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match prepared {
        Some(p) => match tls::TlsListener::new(listener, p.trust) {
            Ok(listener) => serve::serve(listener, app, shutdown).await,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failed;
            }
        },
        None => serve::serve(tls::PlainListener(listener), app, shutdown).await,
    }
    Exit::Success
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
        .layer(middleware::from_fn_with_state(shared.clone(), guard::guard))
        .with_state(shared)
}

fn hosts(shared: &Shared) -> Vec<HostState> {
    shared.hosts.read().map(|h| h.clone()).unwrap_or_default()
}

async fn fleet_page(State(shared): St) -> Html<String> {
    Html(pages::fleet(&hosts(&shared)))
}

async fn app_page(
    State(shared): St,
    Extension(session): Extension<Session>,
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
        &access::verbs_offered(&session),
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
async fn logs(
    State(shared): St,
    Extension(session): Extension<Session>,
    Path((host, app)): Path<(usize, String)>,
) -> Response {
    let Some(target) = shared.sessions.targets.get(host).cloned() else {
        return (StatusCode::NOT_FOUND, "no such host\n").into_response();
    };
    let request = AgentRequest::Logs {
        app: Some(app),
        lines: 20,
        follow: true,
    };
    if let Err(e) = access::may_send(&session, &request) {
        return (StatusCode::FORBIDDEN, format!("{e}\n")).into_response();
    }
    let (tx, rx) = mpsc::channel::<String>(256);
    let client = shared.sessions.client.clone();
    tokio::spawn(async move {
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
async fn action(
    State(shared): St,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
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
    let to = if form.verb == "scale" {
        match form
            .instances
            .as_deref()
            .unwrap_or_default()
            .trim()
            .parse::<protocol::ScaleTo>()
        {
            Ok(to) => to,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("scale: {e}\n")).into_response(),
        }
    } else {
        protocol::ScaleTo::Up(0)
    };
    let Some(request) = access::request_for(&form.verb, &form.app, to) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("unknown action `{}`\n", form.verb),
        )
            .into_response();
    };
    let actor = Actor {
        performer: access::performer(&session, &shared.who),
        view: "pmfleet dashboard".into(),
        ecosystem: shared.ecosystem.clone(),
    };
    if let Err(e) = access::may_send(&session, &request) {
        // Not sent, and kept all the same: who tried what.
        view_action::keep(&view_action::refused(&actor, &target, &request, &e));
        return (StatusCode::FORBIDDEN, format!("{e}\n")).into_response();
    }
    let what = format!("{} {} on {}", form.verb, form.app, target.label());
    let outcome = view_action::send(&shared.sessions, form.host, &request, &actor).await;
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
