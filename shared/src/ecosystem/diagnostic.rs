//! How problems are collected, printed, and how a misspelt key finds its "did you mean".

use std::fmt;
use std::path::{Path, PathBuf};

use super::model::{Diagnostic, Severity};
use super::value::{Pos, Value};

impl fmt::Display for Diagnostic {
    /// `ecosystem.json:12:5: deploy.production.port: expected …, found "abc" — hint: …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        f.write_str(": ")?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " — hint: {hint}")?;
        }
        Ok(())
    }
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Builds field paths: `deploy.production.host[1].port`, `apps[0].env["MY VAR"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    pub fn root() -> FieldPath {
        FieldPath(String::new())
    }

    pub fn key(&self, key: &str) -> FieldPath {
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
        if plain {
            if self.0.is_empty() {
                FieldPath(key.to_owned())
            } else {
                FieldPath(format!("{}.{key}", self.0))
            }
        } else {
            FieldPath(format!("{}[{}]", self.0, super::value::quote_short(key)))
        }
    }

    pub fn index(&self, i: usize) -> FieldPath {
        FieldPath(format!("{}[{i}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Collects every problem of one file.
#[derive(Debug)]
pub(crate) struct Report {
    file: PathBuf,
    diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn new(file: &Path) -> Report {
        Report {
            file: file.to_path_buf(),
            diagnostics: Vec::new(),
        }
    }

    /// The file, as the diagnostics name it.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// An empty report for the same file, to collect one part's problems apart.
    pub fn sibling(&self) -> Report {
        Report::new(&self.file)
    }

    /// Takes diagnostics collected elsewhere (by a [`Report::sibling`]).
    pub fn extend(&mut self, diagnostics: impl IntoIterator<Item = Diagnostic>) {
        self.diagnostics.extend(diagnostics);
    }

    pub fn push(
        &mut self,
        severity: Severity,
        pos: Option<Pos>,
        field: &FieldPath,
        message: String,
        hint: Option<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.clone(),
            location: pos.map(|p| (p.line, p.col)),
            field: field.as_str().to_owned(),
            message,
            hint,
        });
    }

    /// An error about `value` (reported at its position).
    pub fn error(
        &mut self,
        value: &Value,
        field: &FieldPath,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, value.pos, field, message.into(), hint);
    }

    pub fn error_at(
        &mut self,
        pos: Option<Pos>,
        field: &FieldPath,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, pos, field, message.into(), hint);
    }

    /// A warning about `value` (reported at its position).
    pub fn warning(
        &mut self,
        value: &Value,
        field: &FieldPath,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Warning, value.pos, field, message.into(), hint);
    }

    pub fn warning_at(
        &mut self,
        pos: Option<Pos>,
        field: &FieldPath,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Warning, pos, field, message.into(), hint);
    }

    /// "expected X, found Y" about `value`.
    pub fn expected(
        &mut self,
        value: &Value,
        field: &FieldPath,
        expected: &str,
        hint: Option<String>,
    ) {
        self.error(
            value,
            field,
            format!("expected {expected}, found {}", value.describe()),
            hint,
        );
    }

    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a plausible slip:
/// `post_deploy` → `post-deploy`, `isntances` → `instances`, `Host` → `host`.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let normal = normalize(word);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = if normalize(candidate) == normal {
            0
        } else {
            edit_distance(&normal, &normalize(candidate))
        };
        let limit = match candidate.chars().count() {
            0..=3 => 1,
            4..=7 => 2,
            _ => 3,
        };
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Case and `-`/`_` do not count as differences.
fn normalize(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Optimal string alignment distance (Levenshtein plus transpositions), on characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j]; three rolling rows.
    let width = b.len() + 1;
    let mut two_back: Vec<usize> = vec![0; width];
    let mut prev: Vec<usize> = (0..width).collect();
    let mut cur: Vec<usize> = vec![0; width];
    for (i, &ca) in a.iter().enumerate() {
        if let Some(first) = cur.first_mut() {
            *first = i + 1;
        }
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let del = prev
                .get(j + 1)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let ins = cur.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            let sub = prev
                .get(j)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(cost);
            let mut d = del.min(ins).min(sub);
            let transposed = i > 0
                && j > 0
                && a.get(i - 1) == Some(&cb)
                && b.get(j - 1) == Some(&ca)
                && ca != cb;
            if transposed {
                d = d.min(
                    two_back
                        .get(j - 1)
                        .copied()
                        .unwrap_or(usize::MAX)
                        .saturating_add(1),
                );
            }
            if let Some(slot) = cur.get_mut(j + 1) {
                *slot = d;
            }
        }
        std::mem::swap(&mut two_back, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.get(b.len()).copied().unwrap_or(0)
}

/// "did you mean `x`?" when a close candidate exists.
pub(crate) fn suggestion_hint<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    did_you_mean(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("instances", "isntances"), 1);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggestions() {
        let keys = [
            "post-deploy",
            "pre-deploy",
            "post-setup",
            "host",
            "path",
            "ref",
            "repo",
        ];
        assert_eq!(did_you_mean("post_deploy", keys), Some("post-deploy"));
        assert_eq!(did_you_mean("postdeploy", keys), Some("post-deploy"));
        assert_eq!(did_you_mean("post-deplyo", keys), Some("post-deploy"));
        assert_eq!(did_you_mean("Host", keys), Some("host"));
        assert_eq!(did_you_mean("hots", keys), Some("host"));
        assert_eq!(did_you_mean("completely-else", keys), None);
    }

    #[test]
    fn field_paths() {
        let p = FieldPath::root()
            .key("deploy")
            .key("production")
            .key("host")
            .index(1)
            .key("port");
        assert_eq!(p.as_str(), "deploy.production.host[1].port");
        let p = FieldPath::root()
            .key("apps")
            .index(0)
            .key("env")
            .key("MY VAR");
        assert_eq!(p.as_str(), r#"apps[0].env["MY VAR"]"#);
        assert_eq!(FieldPath::root().key("pre-deploy").as_str(), "pre-deploy");
    }

    #[test]
    fn display_has_location_field_message_and_hint() {
        let d = Diagnostic {
            severity: Severity::Error,
            file: PathBuf::from("ecosystem.json"),
            location: Some((12, 5)),
            field: "deploy.production.port".into(),
            message: "expected a port number (1-65535), found \"abc\"".into(),
            hint: Some("write a number such as 22".into()),
        };
        assert_eq!(
            d.to_string(),
            "ecosystem.json:12:5: deploy.production.port: expected a port number (1-65535), found \"abc\" — hint: write a number such as 22"
        );
        let w = Diagnostic {
            severity: Severity::Warning,
            location: None,
            hint: None,
            ..d
        };
        assert_eq!(
            w.to_string(),
            "ecosystem.json: warning: deploy.production.port: expected a port number (1-65535), found \"abc\""
        );
    }
}
