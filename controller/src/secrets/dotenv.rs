//! The secrets files' format, dotenv as Kamal and the `dotenv` libraries read it, parsed into
//! templates without evaluating anything:
//!
//! ```text
//! # a comment
//! DB_PASSWORD=$(op read op://prod/db/password)    # a command, run on the controller
//! API_TOKEN=$API_TOKEN                            # from the controller's environment (CI)
//! export SENTRY_DSN="https://${SENTRY_KEY}@o1.ingest.sentry.io/2"
//! LITERAL='no $expansion in single quotes'
//! PEM="-----BEGIN KEY-----
//! ...
//! -----END KEY-----"
//! ```
//!
//! Unquoted values end at ` #` and are trimmed; double quotes take `\n`, `\t`, `\"`, `\\`
//! and `\$` escapes and may span lines; single quotes are literal. `$NAME`, `${NAME}` and
//! `$(command)` expand outside single quotes.

/// One part of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    /// `$NAME` / `${NAME}`: an earlier secret of the files, else the controller's environment.
    Var(String),
    /// `$(command)`: its standard output, run by `sh` on the controller.
    Command(String),
}

/// `NAME=value` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub parts: Vec<Part>,
    /// 1-based.
    pub line: usize,
}

/// A line that is not `NAME=value`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Every entry of `text`, in order, or the first line that cannot be read.
pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    let mut p = Parser {
        chars: &chars,
        at: 0,
        line: 1,
    };
    let mut out = Vec::new();
    loop {
        p.skip_blank_lines_and_comments();
        if p.done() {
            return Ok(out);
        }
        out.push(p.entry()?);
    }
}

struct Parser<'a> {
    chars: &'a [char],
    at: usize,
    line: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.at >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn error(&self, line: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            line,
            message: message.into(),
        }
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    fn skip_blank_lines_and_comments(&mut self) {
        loop {
            self.skip_spaces();
            match self.peek() {
                Some('\n' | '\r') => {
                    self.bump();
                }
                Some('#') => self.skip_to_line_end(),
                _ => return,
            }
        }
    }

    fn skip_to_line_end(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
                self.bump();
            } else {
                break;
            }
        }
        word
    }

    fn entry(&mut self) -> Result<Entry, SyntaxError> {
        let line = self.line;
        let mut name = self.word();
        if name == "export" && matches!(self.peek(), Some(' ' | '\t')) {
            self.skip_spaces();
            name = self.word();
        }
        if !pmfleet_shared::secrets::valid_name(&name) {
            return Err(self.error(
                line,
                "expected NAME=value (a name of letters, digits and `_`, not starting with a digit)",
            ));
        }
        self.skip_spaces();
        if self.bump() != Some('=') {
            return Err(self.error(line, format!("expected `=` after `{name}`")));
        }
        self.skip_spaces();
        let parts = match self.peek() {
            Some('\'') => {
                self.bump();
                self.single_quoted(line)?
            }
            Some('"') => {
                self.bump();
                self.double_quoted(line)?
            }
            _ => self.unquoted(line)?,
        };
        self.skip_spaces();
        match self.peek() {
            None | Some('\n' | '\r') => {}
            Some('#') => self.skip_to_line_end(),
            Some(_) => {
                return Err(self.error(line, "unexpected text after the closing quote"));
            }
        }
        Ok(Entry {
            name,
            parts: merge(parts),
            line,
        })
    }

    fn single_quoted(&mut self, line: usize) -> Result<Vec<Part>, SyntaxError> {
        let mut text = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error(line, "a single quote is never closed")),
                Some('\'') => return Ok(vec![Part::Literal(text)]),
                Some(c) => text.push(c),
            }
        }
    }

    fn double_quoted(&mut self, line: usize) -> Result<Vec<Part>, SyntaxError> {
        let mut parts = Vec::new();
        loop {
            match self.bump() {
                None => return Err(self.error(line, "a double quote is never closed")),
                Some('"') => return Ok(parts),
                Some('\\') => {
                    let c = match self.bump() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some(c @ ('"' | '\\' | '$')) => c,
                        Some(c) => {
                            parts.push(Part::Literal('\\'.to_string()));
                            c
                        }
                        None => return Err(self.error(line, "a double quote is never closed")),
                    };
                    parts.push(Part::Literal(c.to_string()));
                }
                Some('$') => parts.push(self.expansion(line)?),
                Some(c) => parts.push(Part::Literal(c.to_string())),
            }
        }
    }

    fn unquoted(&mut self, line: usize) -> Result<Vec<Part>, SyntaxError> {
        let mut parts = Vec::new();
        let mut pending_space = String::new();
        while let Some(c) = self.peek() {
            match c {
                '\n' | '\r' => break,
                ' ' | '\t' => {
                    self.bump();
                    if self.peek() == Some('#') {
                        break;
                    }
                    pending_space.push(c);
                    continue;
                }
                '$' => {
                    self.bump();
                    parts.push(Part::Literal(std::mem::take(&mut pending_space)));
                    parts.push(self.expansion(line)?);
                    continue;
                }
                _ => {
                    self.bump();
                    pending_space.push(c);
                    parts.push(Part::Literal(std::mem::take(&mut pending_space)));
                }
            }
        }
        Ok(parts)
    }

    /// After a `$`: `NAME`, `{NAME}` or `(command)`; a lone `$` is itself.
    fn expansion(&mut self, line: usize) -> Result<Part, SyntaxError> {
        match self.peek() {
            Some('{') => {
                self.bump();
                let name = self.word();
                if self.bump() != Some('}') || name.is_empty() {
                    return Err(self.error(line, "`${` must be `${NAME}`"));
                }
                Ok(Part::Var(name))
            }
            Some('(') => {
                self.bump();
                let mut depth = 1;
                let mut command = String::new();
                loop {
                    let c = self.bump();
                    match c {
                        None => return Err(self.error(line, "`$(` is never closed")),
                        Some('(') => depth += 1,
                        Some(')') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Some(_) => {}
                    }
                    command.extend(c);
                }
                let command = command.trim().to_owned();
                if command.is_empty() {
                    return Err(self.error(line, "`$()` runs no command"));
                }
                Ok(Part::Command(command))
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => Ok(Part::Var(self.word())),
            _ => Ok(Part::Literal("$".into())),
        }
    }
}

/// Adjacent literals joined, empty ones dropped.
fn merge(parts: Vec<Part>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    for part in parts {
        match (out.last_mut(), part) {
            (_, Part::Literal(s)) if s.is_empty() => {}
            (Some(Part::Literal(last)), Part::Literal(s)) => last.push_str(&s),
            (_, part) => out.push(part),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Part {
        Part::Literal(s.into())
    }

    fn one(text: &str) -> (String, Vec<Part>) {
        let entries = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(entries.len(), 1, "{text:?}: {entries:?}");
        let e = entries.into_iter().next().unwrap();
        (e.name, e.parts)
    }

    #[test]
    fn values_table() {
        let rows: Vec<(&str, Vec<Part>)> = vec![
            ("A=plain", vec![lit("plain")]),
            ("A = spaced out  ", vec![lit("spaced out")]),
            ("export A=x", vec![lit("x")]),
            ("A=x # comment", vec![lit("x")]),
            ("A=x#not-a-comment", vec![lit("x#not-a-comment")]),
            ("A=", vec![]),
            (
                "A='$NOT ${EXPANDED} $(no)'",
                vec![lit("$NOT ${EXPANDED} $(no)")],
            ),
            ("A=\"a\\nb\\\"c\\$d\"", vec![lit("a\nb\"c$d")]),
            ("A=\"line1\nline2\"", vec![lit("line1\nline2")]),
            ("A=$B", vec![Part::Var("B".into())]),
            (
                "A=pre-${B}-post",
                vec![lit("pre-"), Part::Var("B".into()), lit("-post")],
            ),
            (
                "A=$(op read \"op://x/y\")",
                vec![Part::Command("op read \"op://x/y\"".into())],
            ),
            (
                "A=\"$(echo $(date))x\"",
                vec![Part::Command("echo $(date)".into()), lit("x")],
            ),
            ("A=cost$", vec![lit("cost$")]),
            ("A=\"x\" # trailing", vec![lit("x")]),
        ];
        for (text, parts) in rows {
            assert_eq!(one(text), ("A".to_string(), parts), "{text:?}");
        }
    }

    #[test]
    fn several_entries_with_their_lines() {
        let text = "# head\n\nA=1\n  B='x\ny'\nC=3\n";
        let entries = parse(text).unwrap();
        let got: Vec<(&str, usize)> = entries.iter().map(|e| (e.name.as_str(), e.line)).collect();
        assert_eq!(got, [("A", 3), ("B", 4), ("C", 6)]);
    }

    #[test]
    fn errors_name_the_line() {
        let rows = [
            ("A=1\n-x\n", 2, "expected NAME=value"),
            ("A=1\nnot a line\n", 2, "expected `=` after `not`"),
            ("1A=x", 1, "expected NAME=value"),
            ("A x", 1, "expected `=`"),
            ("A='open", 1, "never closed"),
            ("A=\"open\n\n", 1, "never closed"),
            ("A=$(echo", 1, "never closed"),
            ("A=${B", 1, "${NAME}"),
            ("A='x' y", 1, "after the closing quote"),
        ];
        for (text, line, message) in rows {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(message), "{text:?}: {err}");
        }
    }
}
