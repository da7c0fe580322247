//! Colour for people, never for programs: on when stdout is a terminal, off in a pipe, with
//! `NO_COLOR` set (<https://no-color.org>) or with `TERM=dumb`; `CLICOLOR_FORCE` turns it on
//! anyway (for `less -R`). The decision is [`decide`], a pure function; [`Palette`] carries it
//! to whoever paints.

use std::io::IsTerminal;

use crate::protocol::Status;

/// How a row or a word should stand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Everything is as it should be (`online`).
    Good,
    /// Needs a look (`stopped`, `waiting restart`, some instances down).
    Warn,
    /// Broken (`errored`, unreachable).
    Bad,
    /// Less important text (headers).
    Dim,
}

impl Tone {
    fn code(self) -> &'static str {
        match self {
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Bad => "1;31",
            Tone::Dim => "2",
        }
    }
}

/// What the environment says about colour, read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    pub is_terminal: bool,
    /// `NO_COLOR` is set to something non-empty.
    pub no_color: bool,
    /// `CLICOLOR_FORCE` is set to something other than `0`.
    pub force: bool,
    pub term: Option<String>,
}

impl Env {
    /// The environment of this process, for its stdout.
    pub fn stdout() -> Env {
        Env {
            is_terminal: std::io::stdout().is_terminal(),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            force: std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0"),
            term: std::env::var("TERM").ok(),
        }
    }
}

/// Whether to colour: `NO_COLOR` always wins, then `CLICOLOR_FORCE`, then a terminal that
/// is not `dumb`.
pub fn decide(env: &Env) -> bool {
    if env.no_color {
        return false;
    }
    if env.force {
        return true;
    }
    env.is_terminal && env.term.as_deref() != Some("dumb")
}

/// Paints text, or leaves it alone when colour is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    pub enabled: bool,
}

impl Palette {
    /// The palette for this process's stdout.
    pub fn stdout() -> Palette {
        Palette {
            enabled: decide(&Env::stdout()),
        }
    }

    /// No colour at all.
    pub const fn plain() -> Palette {
        Palette { enabled: false }
    }

    pub fn paint(&self, text: &str, tone: Tone) -> String {
        if !self.enabled || text.is_empty() {
            return text.to_owned();
        }
        format!("\x1b[{}m{text}\x1b[0m", tone.code())
    }

    /// A rendered table (a header line, then one line per row) with row `i` painted in
    /// `tones[i]`; the header is dimmed. Colour goes around whole lines, so the columns the
    /// renderer aligned stay aligned.
    pub fn rows(&self, table: &str, tones: &[Option<Tone>]) -> String {
        if !self.enabled {
            return table.to_owned();
        }
        let mut out = String::with_capacity(table.len() + 16 * tones.len());
        for (i, line) in table.lines().enumerate() {
            let tone = match i {
                0 => Some(Tone::Dim),
                _ => tones.get(i - 1).copied().flatten(),
            };
            match tone {
                Some(t) => out.push_str(&self.paint(line, t)),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }
}

/// The tone of an instance's status: errored and stopped rows stand out, online ones do not
/// need to.
pub fn status_tone(status: Status) -> Option<Tone> {
    match status {
        Status::Online => None,
        Status::Errored => Some(Tone::Bad),
        Status::Stopped | Status::Stopping | Status::Waiting | Status::Launching => {
            Some(Tone::Warn)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(tty: bool, no_color: bool, force: bool, term: Option<&str>) -> Env {
        Env {
            is_terminal: tty,
            no_color,
            force,
            term: term.map(str::to_owned),
        }
    }

    #[test]
    fn colour_only_for_a_terminal_that_wants_it() {
        let table = [
            // (terminal, NO_COLOR, CLICOLOR_FORCE, TERM) → colour
            ((true, false, false, Some("xterm-256color")), true),
            ((true, false, false, None), true),
            ((false, false, false, Some("xterm")), false),
            ((true, true, false, Some("xterm")), false),
            ((true, false, false, Some("dumb")), false),
            ((false, false, true, None), true),
            ((false, true, true, None), false),
            ((true, true, true, Some("xterm")), false),
        ];
        for ((tty, no, force, term), want) in table {
            assert_eq!(
                decide(&env(tty, no, force, term)),
                want,
                "tty {tty} NO_COLOR {no} FORCE {force} TERM {term:?}"
            );
        }
    }

    #[test]
    fn rows_are_painted_whole_and_only_when_enabled() {
        let table = "A  B\nx  online\ny  errored\n";
        let tones = [None, Some(Tone::Bad)];
        assert_eq!(Palette::plain().rows(table, &tones), table);
        let painted = Palette { enabled: true }.rows(table, &tones);
        assert_eq!(
            painted,
            "\x1b[2mA  B\x1b[0m\nx  online\n\x1b[1;31my  errored\x1b[0m\n"
        );
    }

    #[test]
    fn errored_and_stopped_stand_out() {
        assert_eq!(status_tone(Status::Online), None);
        assert_eq!(status_tone(Status::Errored), Some(Tone::Bad));
        assert_eq!(status_tone(Status::Stopped), Some(Tone::Warn));
    }
}
