//! The `monit` loop: the terminal (raw mode, the alternate screen, restored on every way out),
//! one polling task per host, the keys, and the effects of [`Monit::key`]. Hosts are asked on
//! their own tasks, each under a deadline, and answers are applied as they come: a slow or
//! unreachable host never holds up the others or the keys. The screen is redrawn at most every
//! [`FRAME`], so 200 hosts answering each second cost one frame, not 200.
//!
//! Where the answers come from is a [`Source`]: the controller's (every host of the chosen
//! environments over mutual TLS) or the agent's (its own local socket).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::model::{Effect, HostName, Key, Monit};
use crate::protocol::{AgentStatus, AppSpec, Request};

/// The shortest time between two frames.
pub const FRAME: Duration = Duration::from_millis(100);

/// An answer on its way.
pub type Answer<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// Where `monit` gets its answers, host by host (`host` indexes the names it was given).
pub trait Source: Send + Sync + 'static {
    /// The host's `status`.
    fn status(&self, host: usize) -> Answer<AgentStatus>;
    /// Send a verb; its `done` lines.
    fn request(&self, host: usize, request: Request) -> Answer<Vec<String>>;
    /// The settings of `app` (`show`).
    fn describe(&self, host: usize, app: String) -> Answer<AppSpec>;
    /// The last lines of `app`'s logs, then each new one, sent to `lines` until it closes.
    fn follow_logs(&self, host: usize, app: String, lines: mpsc::Sender<String>) -> Answer<()>;
}

/// How often each host is asked, and how long it may take to answer.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub refresh: Duration,
    pub deadline: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            refresh: Duration::from_secs(1),
            deadline: Duration::from_secs(3),
        }
    }
}

enum Msg {
    Status(usize, Result<AgentStatus, String>),
    Acted(String, Result<Vec<String>, String>),
    Described(usize, Result<Box<AppSpec>, String>),
    Log(u64, String),
    Key(Key),
    Redraw,
}

/// Puts the terminal back however the loop ends.
struct Screen;

impl Screen {
    fn enter() -> io::Result<Screen> {
        enable_raw_mode()?;
        if let Err(e) = execute!(io::stdout(), EnterAlternateScreen) {
            let _ = disable_raw_mode();
            return Err(e);
        }
        Ok(Screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), LeaveAlternateScreen);
        let _ = disable_raw_mode();
    }
}

/// Run `monit` on this terminal until `q`.
pub async fn run(
    hosts: Vec<HostName>,
    source: Arc<dyn Source>,
    options: Options,
) -> io::Result<()> {
    let n = hosts.len();
    let mut monit = Monit::new(hosts);
    let _screen = Screen::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let (tx, mut rx) = mpsc::channel::<Msg>(1024);
    let mut tasks: Vec<JoinHandle<()>> = (0..n)
        .map(|host| tokio::spawn(poll(host, source.clone(), options, tx.clone())))
        .collect();
    let stop_keys = Arc::new(AtomicBool::new(false));
    let keys = {
        let (tx, stop) = (tx.clone(), stop_keys.clone());
        std::thread::spawn(move || read_keys(tx, stop))
    };
    let mut follower: Option<JoinHandle<()>> = None;
    let mut generation = 0u64;
    let mut dirty = true;
    let mut last_frame = Instant::now() - FRAME;
    let mut ticker = tokio::time::interval(FRAME);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let outcome = loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = ticker.tick() => Some(Msg::Redraw),
        };
        let Some(msg) = msg else { break Ok(()) };
        let effects = match msg {
            Msg::Status(host, answer) => {
                dirty = true;
                monit.answered(host, answer, Instant::now())
            }
            Msg::Acted(what, outcome) => {
                dirty = true;
                monit.acted(&what, outcome);
                Vec::new()
            }
            Msg::Described(host, Ok(spec)) => {
                dirty = true;
                monit.described(host, *spec);
                Vec::new()
            }
            Msg::Described(_, Err(_)) => Vec::new(),
            Msg::Log(g, line) if g == generation => {
                dirty = true;
                monit.log_line(line);
                Vec::new()
            }
            Msg::Log(..) => Vec::new(),
            Msg::Key(key) => {
                dirty = true;
                // A key is drawn at once.
                last_frame = Instant::now() - FRAME;
                monit.key(key)
            }
            Msg::Redraw => Vec::new(),
        };
        let mut quit = false;
        for effect in effects {
            match effect {
                Effect::Quit => quit = true,
                Effect::Send {
                    host,
                    request,
                    what,
                } => {
                    let (source, tx) = (source.clone(), tx.clone());
                    tasks.push(tokio::spawn(async move {
                        let outcome = source.request(host, request).await;
                        let _ = tx.send(Msg::Acted(what, outcome)).await;
                    }));
                }
                Effect::Describe { host, app } => {
                    let (source, tx) = (source.clone(), tx.clone());
                    tasks.push(tokio::spawn(async move {
                        let spec = source.describe(host, app).await.map(Box::new);
                        let _ = tx.send(Msg::Described(host, spec)).await;
                    }));
                }
                Effect::FollowLogs { host, app } => {
                    if let Some(f) = follower.take() {
                        f.abort();
                    }
                    generation += 1;
                    follower = Some(tokio::spawn(follow(
                        host,
                        app,
                        generation,
                        source.clone(),
                        tx.clone(),
                    )));
                }
            }
        }
        if quit {
            break Ok(());
        }
        if dirty && last_frame.elapsed() >= FRAME {
            if let Err(e) = terminal.draw(|f| super::view::draw(f, &monit)) {
                break Err(e);
            }
            dirty = false;
            last_frame = Instant::now();
        }
    };
    stop_keys.store(true, Ordering::SeqCst);
    for t in tasks {
        t.abort();
    }
    if let Some(f) = follower {
        f.abort();
    }
    drop(rx);
    let _ = keys.join();
    outcome
}

/// Ask `host` every `options.refresh`, each answer within `options.deadline`.
async fn poll(host: usize, source: Arc<dyn Source>, options: Options, tx: mpsc::Sender<Msg>) {
    loop {
        let started = tokio::time::Instant::now();
        let answer = match tokio::time::timeout(options.deadline, source.status(host)).await {
            Ok(a) => a,
            Err(_) => Err(format!("no answer within {:?}", options.deadline)),
        };
        if tx.send(Msg::Status(host, answer)).await.is_err() {
            return;
        }
        tokio::time::sleep_until(started + options.refresh).await;
    }
}

async fn follow(
    host: usize,
    app: String,
    generation: u64,
    source: Arc<dyn Source>,
    tx: mpsc::Sender<Msg>,
) {
    let (lines_tx, mut lines) = mpsc::channel::<String>(256);
    let stream = source.follow_logs(host, app, lines_tx);
    let forward = async {
        while let Some(line) = lines.recv().await {
            if tx.send(Msg::Log(generation, line)).await.is_err() {
                return;
            }
        }
    };
    let (ended, ()) = tokio::join!(stream, forward);
    if let Err(e) = ended {
        let _ = tx.send(Msg::Log(generation, format!("(logs: {e})"))).await;
    }
}

fn read_keys(tx: mpsc::Sender<Msg>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let key = match event::read() {
            Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
                    Some(Key::Char('q'))
                } else {
                    map_key(k.code)
                }
            }
            Ok(Event::Resize(..)) => {
                let _ = tx.blocking_send(Msg::Redraw);
                None
            }
            Ok(_) => None,
            Err(_) => return,
        };
        if let Some(key) = key
            && tx.blocking_send(Msg::Key(key)).is_err()
        {
            return;
        }
    }
}

fn map_key(code: KeyCode) -> Option<Key> {
    Some(match code {
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Char(c) => Key::Char(c),
        _ => return None,
    })
}
