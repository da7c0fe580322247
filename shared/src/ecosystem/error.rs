//! Why an ecosystem file could not be used.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::model::Diagnostic;

/// Everything that can go wrong between "which file?" and a checked [`Ecosystem`].
///
/// [`Ecosystem`]: super::Ecosystem
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No ecosystem file in `dir` under any of the names pmfleet looks for (`searched`).
    #[error(
        "no ecosystem file in {}: create ecosystem.config.js, ecosystem.json or ecosystem.yml, or name the file to use",
        dir.display()
    )]
    NotFound { dir: PathBuf, searched: Vec<String> },

    /// The file (or the directory) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A `.js`/`.cjs`/`.mjs` file needs `node`, and there is none on PATH.
    #[error(
        "node is needed to read a .js ecosystem file ({}); install Node.js or use ecosystem.json/.yml",
        path.display()
    )]
    NodeMissing { path: PathBuf },

    /// `node` ran but could not evaluate the file (a syntax error in it, a missing `require`,
    /// an export that is not an object, or it took too long).
    #[error("node could not read {}:\n{}", path.display(), stderr.trim_end())]
    NodeFailed { path: PathBuf, stderr: String },

    /// The file was read but has problems. Every one is listed, errors and warnings alike.
    #[error("{}", invalid_message(file, diagnostics))]
    Invalid {
        file: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },

    /// `pmfleet deploy <env>` named an environment the file does not define.
    #[error("{}", unknown_environment_message(name, known, suggestion.as_deref()))]
    UnknownEnvironment {
        name: String,
        known: Vec<String>,
        suggestion: Option<String>,
    },
}

fn invalid_message(file: &std::path::Path, diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let mut out = format!(
        "{} has {errors} problem{}:",
        file.display(),
        if errors == 1 { "" } else { "s" }
    );
    for diagnostic in diagnostics {
        let _ = write!(out, "\n{diagnostic}");
    }
    out
}

fn unknown_environment_message(name: &str, known: &[String], suggestion: Option<&str>) -> String {
    let mut out = format!("unknown deploy environment `{name}`");
    if known.is_empty() {
        out.push_str("; the ecosystem file has no `deploy` environments");
    } else {
        let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        let _ = write!(out, "; the ecosystem file defines {}", list.join(", "));
    }
    if let Some(s) = suggestion {
        let _ = write!(out, " — did you mean `{s}`?");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecosystem::Severity;

    #[test]
    fn invalid_lists_every_diagnostic() {
        let d = |line, field: &str, severity| Diagnostic {
            severity,
            file: PathBuf::from("ecosystem.yml"),
            location: Some((line, 3)),
            field: field.into(),
            message: "bad".into(),
            hint: None,
        };
        let e = LoadError::Invalid {
            file: PathBuf::from("ecosystem.yml"),
            diagnostics: vec![
                d(1, "a", Severity::Error),
                d(2, "b", Severity::Error),
                d(3, "c", Severity::Warning),
            ],
        };
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ecosystem.yml has 2 problems:");
        assert_eq!(lines[1], "ecosystem.yml:1:3: a: bad");
        assert_eq!(lines[2], "ecosystem.yml:2:3: b: bad");
        assert_eq!(lines[3], "ecosystem.yml:3:3: warning: c: bad");
    }

    #[test]
    fn unknown_environment_lists_known_ones() {
        let e = LoadError::UnknownEnvironment {
            name: "prod".into(),
            known: vec!["production".into(), "staging".into()],
            suggestion: Some("production".into()),
        };
        assert_eq!(
            e.to_string(),
            "unknown deploy environment `prod`; the ecosystem file defines `production`, `staging` — did you mean `production`?"
        );
    }

    #[test]
    fn node_missing_says_what_to_do() {
        let e = LoadError::NodeMissing {
            path: PathBuf::from("ecosystem.config.js"),
        };
        let text = e.to_string();
        assert!(text.contains("node is needed to read a .js ecosystem file"));
        assert!(text.contains("install Node.js or use ecosystem.json/.yml"));
    }
}
