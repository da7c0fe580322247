//! What `monit` shows and how a key changes it, with no terminal and no network: the hosts as
//! they last answered, each instance's recent CPU and memory, the selection, the filter, the
//! selected app's log lines and settings, and a pending confirmation. [`Monit::key`] takes a
//! key and returns what the loop must do ([`Effect`]: ask a host, follow other logs, quit);
//! [`Monit::answered`] takes what a host said. Both are pure, and table-tested.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::protocol::{AgentStatus, AppSpec, ProcessInfo, Request, Target};

/// How many samples of CPU and memory each instance keeps (one per refresh).
pub const HISTORY: usize = 60;
/// How many log lines are kept for the selected app.
pub const LOG_LINES: usize = 500;

/// One host as configured: what it is called on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostName {
    /// As written in the ecosystem file (or the agent's own name, for `pmfleet-agent monit`).
    pub label: String,
    /// The deploy environment (empty for one local agent).
    pub env: String,
}

/// What a host said last.
#[derive(Debug, Clone)]
pub enum Reach {
    /// Not asked yet, or no answer yet.
    Waiting,
    Up {
        status: Box<AgentStatus>,
        at: Instant,
    },
    /// It stopped answering (`since` the first failure); what it said before is kept.
    Down { error: String, since: Instant },
}

/// A host: its name, its last answer, and when the previous answers came (the refresh period).
#[derive(Debug, Clone)]
pub struct HostView {
    pub name: HostName,
    pub reach: Reach,
    /// The time between its last two answers.
    pub period: Option<Duration>,
    last_answer: Option<Instant>,
}

/// The verbs `monit` sends, each after a confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Restart,
    Reload,
    Stop,
}

impl Verb {
    pub fn word(self) -> &'static str {
        match self {
            Verb::Restart => "restart",
            Verb::Reload => "reload",
            Verb::Stop => "stop",
        }
    }

    fn request(self, app: &str) -> Request {
        let target = Target::App(app.to_string());
        match self {
            Verb::Restart => Request::Restart { target },
            Verb::Reload => Request::Reload { target },
            Verb::Stop => Request::Stop { target },
        }
    }
}

/// A verb waiting for `y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub verb: Verb,
    pub host: usize,
    pub app: String,
}

/// What the keys do right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    List,
    /// Typing a filter (`/`), its text so far.
    Filtering(String),
    Confirm(Pending),
    /// The log lines full screen (`l`).
    Logs,
}

/// A key, as the loop reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Up,
    Down,
    PageUp,
    PageDown,
    Enter,
    Esc,
    Backspace,
    Char(char),
}

/// What the loop must do after a key or an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Quit,
    /// Send `request` to host `host`; its answer comes back through [`Monit::acted`].
    Send {
        host: usize,
        request: Request,
        what: String,
    },
    /// Follow the log lines of `app` on `host` instead of the ones followed so far.
    FollowLogs {
        host: usize,
        app: String,
    },
    /// Fetch the settings of `app` on `host` (`show`), for the metadata panel.
    Describe {
        host: usize,
        app: String,
    },
}

/// One row of the process list.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    pub host: usize,
    /// `None`: the host answered nothing (waiting or unreachable): one row says so.
    pub process: Option<&'a ProcessInfo>,
}

/// An instance's recent CPU (%) and memory (bytes), oldest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub cpu: VecDeque<f64>,
    pub memory: VecDeque<f64>,
}

/// Everything on screen.
#[derive(Debug, Clone)]
pub struct Monit {
    pub hosts: Vec<HostView>,
    pub mode: Mode,
    pub filter: String,
    /// Index into [`Monit::rows`].
    pub selected: usize,
    /// The last outcome of a verb, or another line for the status bar.
    pub message: Option<String>,
    /// The app whose lines `logs` holds.
    pub logs_for: Option<(usize, String)>,
    pub logs: VecDeque<String>,
    /// `show` answers, by (host, app).
    pub details: HashMap<(usize, String), AppSpec>,
    /// The `show`s asked for (each app once per host).
    described: HashSet<(usize, String)>,
    history: HashMap<(usize, String, u32), History>,
}

impl Monit {
    pub fn new(hosts: Vec<HostName>) -> Monit {
        Monit {
            hosts: hosts
                .into_iter()
                .map(|name| HostView {
                    name,
                    reach: Reach::Waiting,
                    period: None,
                    last_answer: None,
                })
                .collect(),
            mode: Mode::List,
            filter: String::new(),
            selected: 0,
            message: None,
            logs_for: None,
            logs: VecDeque::new(),
            details: HashMap::new(),
            described: HashSet::new(),
            history: HashMap::new(),
        }
    }

    /// What host `host` answered to `status` (or why it did not), at `now`.
    pub fn answered(
        &mut self,
        host: usize,
        answer: Result<AgentStatus, String>,
        now: Instant,
    ) -> Vec<Effect> {
        let before = self.selected_key();
        let Some(view) = self.hosts.get_mut(host) else {
            return Vec::new();
        };
        match answer {
            Ok(status) => {
                if let Some(last) = view.last_answer {
                    view.period = Some(now.saturating_duration_since(last));
                }
                view.last_answer = Some(now);
                for p in &status.processes {
                    let h = self
                        .history
                        .entry((host, p.name.clone(), p.instance))
                        .or_default();
                    push(&mut h.cpu, p.cpu_percent.map_or(0.0, f64::from));
                    push(&mut h.memory, p.rss_bytes.map_or(0.0, |b| b as f64));
                }
                let alive: Vec<(String, u32)> = status
                    .processes
                    .iter()
                    .map(|p| (p.name.clone(), p.instance))
                    .collect();
                self.history.retain(|(h, app, i), _| {
                    *h != host || alive.iter().any(|(a, n)| a == app && n == i)
                });
                view.reach = Reach::Up {
                    status: Box::new(status),
                    at: now,
                };
            }
            Err(error) => {
                view.last_answer = None;
                view.period = None;
                let since = match &view.reach {
                    Reach::Down { since, .. } => *since,
                    _ => now,
                };
                view.reach = Reach::Down { error, since };
            }
        }
        self.keep_selection(before)
    }

    /// The outcome of a verb sent after a confirmation.
    pub fn acted(&mut self, what: &str, outcome: Result<Vec<String>, String>) {
        self.message = Some(match outcome {
            Ok(lines) if lines.is_empty() => format!("{what}: done"),
            Ok(lines) => format!("{what}: {}", lines.join("; ")),
            Err(e) => format!("{what} failed: {e}"),
        });
    }

    /// A log line of the followed app.
    pub fn log_line(&mut self, line: String) {
        self.logs.push_back(line);
        while self.logs.len() > LOG_LINES {
            self.logs.pop_front();
        }
    }

    /// The settings `show` gave for `app` on `host`.
    pub fn described(&mut self, host: usize, spec: AppSpec) {
        self.details.insert((host, spec.name.clone()), spec);
    }

    /// The recent CPU and memory of an instance.
    pub fn history(&self, host: usize, app: &str, instance: u32) -> Option<&History> {
        self.history.get(&(host, app.to_string(), instance))
    }

    /// The rows of the process list, filtered: every instance of every host that answered,
    /// and one row for each host that did not.
    pub fn rows(&self) -> Vec<Row<'_>> {
        let needle = self.filter.to_lowercase();
        let mut rows = Vec::new();
        for (i, host) in self.hosts.iter().enumerate() {
            let host_matches = host.name.label.to_lowercase().contains(&needle)
                || host.name.env.to_lowercase().contains(&needle);
            match &host.reach {
                Reach::Up { status, .. } => {
                    let mut procs: Vec<&ProcessInfo> = status
                        .processes
                        .iter()
                        .filter(|p| host_matches || p.name.to_lowercase().contains(&needle))
                        .collect();
                    procs.sort_by(|a, b| (&a.name, a.instance).cmp(&(&b.name, b.instance)));
                    rows.extend(procs.into_iter().map(|p| Row {
                        host: i,
                        process: Some(p),
                    }));
                }
                _ if host_matches => rows.push(Row {
                    host: i,
                    process: None,
                }),
                _ => {}
            }
        }
        rows
    }

    /// The selected row's (host, app, instance), if it is an instance.
    pub fn selected_key(&self) -> Option<(usize, String, u32)> {
        let rows = self.rows();
        let row = rows.get(self.selected)?;
        row.process.map(|p| (row.host, p.name.clone(), p.instance))
    }

    /// The selected row's host.
    pub fn selected_host(&self) -> Option<usize> {
        self.rows().get(self.selected).map(|r| r.host)
    }

    /// Hosts answering, and hosts in all.
    pub fn answering(&self) -> (usize, usize) {
        let up = self
            .hosts
            .iter()
            .filter(|h| matches!(h.reach, Reach::Up { .. }))
            .count();
        (up, self.hosts.len())
    }

    /// The refresh period: the median over hosts of the time between their last two answers.
    pub fn refresh_period(&self) -> Option<Duration> {
        let mut periods: Vec<Duration> = self.hosts.iter().filter_map(|h| h.period).collect();
        periods.sort();
        periods.get(periods.len() / 2).copied()
    }

    /// A key pressed.
    pub fn key(&mut self, key: Key) -> Vec<Effect> {
        let before = self.selected_key();
        match self.mode.clone() {
            Mode::Filtering(mut text) => {
                match key {
                    Key::Enter => {
                        self.filter = text;
                        self.mode = Mode::List;
                        self.selected = 0;
                    }
                    Key::Esc => {
                        self.filter.clear();
                        self.mode = Mode::List;
                    }
                    Key::Backspace => {
                        text.pop();
                        self.mode = Mode::Filtering(text);
                    }
                    Key::Char(c) => {
                        text.push(c);
                        self.mode = Mode::Filtering(text);
                    }
                    _ => {}
                }
                return self.keep_selection(before);
            }
            Mode::Confirm(pending) => {
                self.mode = Mode::List;
                if key == Key::Char('y') || key == Key::Char('Y') {
                    let label = self
                        .hosts
                        .get(pending.host)
                        .map_or("?", |h| h.name.label.as_str());
                    let what = format!("{} {} on {label}", pending.verb.word(), pending.app);
                    self.message = Some(format!("{what}…"));
                    return vec![Effect::Send {
                        host: pending.host,
                        request: pending.verb.request(&pending.app),
                        what,
                    }];
                }
                self.message = Some("cancelled".into());
                return Vec::new();
            }
            Mode::Logs => {
                match key {
                    Key::Char('l') | Key::Esc | Key::Enter => self.mode = Mode::List,
                    Key::Char('q') => return vec![Effect::Quit],
                    _ => {}
                }
                return Vec::new();
            }
            Mode::List => {}
        }
        let rows = self.rows().len();
        match key {
            Key::Char('q') | Key::Esc => return vec![Effect::Quit],
            Key::Up | Key::Char('k') => self.selected = self.selected.saturating_sub(1),
            Key::Down | Key::Char('j') => {
                self.selected = (self.selected + 1).min(rows.saturating_sub(1));
            }
            Key::PageUp => self.selected = self.selected.saturating_sub(10),
            Key::PageDown => self.selected = (self.selected + 10).min(rows.saturating_sub(1)),
            Key::Char('/') => self.mode = Mode::Filtering(self.filter.clone()),
            Key::Char('l') => self.mode = Mode::Logs,
            Key::Char(c @ ('r' | 'R' | 's')) => {
                let verb = match c {
                    'r' => Verb::Restart,
                    'R' => Verb::Reload,
                    _ => Verb::Stop,
                };
                match self.selected_key() {
                    Some((host, app, _)) => self.mode = Mode::Confirm(Pending { verb, host, app }),
                    None => self.message = Some("select an app first".into()),
                }
            }
            _ => {}
        }
        self.follow(before)
    }

    /// Keep the same instance selected when rows move, then follow it.
    fn keep_selection(&mut self, before: Option<(usize, String, u32)>) -> Vec<Effect> {
        if let Some(key) = &before {
            let rows = self.rows();
            if let Some(at) = rows.iter().position(|r| {
                r.host == key.0
                    && r.process
                        .is_some_and(|p| p.name == key.1 && p.instance == key.2)
            }) {
                self.selected = at;
            }
        }
        let len = self.rows().len();
        if self.selected >= len {
            self.selected = len.saturating_sub(1);
        }
        self.follow(before)
    }

    /// The effects of the selection landing on another app: its logs, its settings.
    fn follow(&mut self, _before: Option<(usize, String, u32)>) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some((host, app, _)) = self.selected_key() else {
            return effects;
        };
        let target = (host, app.clone());
        if self.logs_for.as_ref() != Some(&target) {
            self.logs_for = Some(target.clone());
            self.logs.clear();
            effects.push(Effect::FollowLogs {
                host,
                app: app.clone(),
            });
        }
        if !self.details.contains_key(&target) && self.described.insert(target.clone()) {
            effects.push(Effect::Describe { host, app });
        }
        effects
    }

    /// The deploy that brought `release` to `host` (who and when), from its rollout records.
    pub fn deployed(&self, host: usize, release: &str) -> Option<(String, String)> {
        let Reach::Up { status, .. } = &self.hosts.get(host)?.reach else {
            return None;
        };
        status.roots.iter().find_map(|root| {
            let r = root.rollout.as_ref().filter(|r| r.release == release)?;
            let when = r.finished.clone().unwrap_or_else(|| r.started.clone());
            Some((r.who.clone(), when))
        })
    }
}

fn push(q: &mut VecDeque<f64>, v: f64) {
    q.push_back(v);
    while q.len() > HISTORY {
        q.pop_front();
    }
}

#[cfg(test)]
mod tests;
