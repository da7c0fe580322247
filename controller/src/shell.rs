//! Building remote commands without shell injection.
//!
//! Every command pmfleet runs on a host is a *fixed* script written in this crate, handed to
//! `sh -c` with the values from the ecosystem file (paths, refs, repo URLs, env, hooks) as
//! positional parameters. Those values therefore never pass through a shell parser as code: the
//! only place they are turned into shell words is [`quote`], and the script reads them as `"$1"`.

use std::fmt::Write as _;

/// Quotes `value` as one POSIX shell word: `'...'`, with embedded single quotes written `'\''`.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A fixed script plus the arguments it reads as `$1`, `$2`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    body: &'static str,
    args: Vec<String>,
}

impl Script {
    /// A script; `body` must be a constant written in this crate, never built from input.
    pub fn new(body: &'static str) -> Script {
        Script {
            body,
            args: Vec::new(),
        }
    }

    /// Appends one positional argument.
    pub fn arg(mut self, value: impl Into<String>) -> Script {
        self.args.push(value.into());
        self
    }

    /// Appends several positional arguments.
    pub fn args<I, S>(mut self, values: I) -> Script
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(values.into_iter().map(Into::into));
        self
    }

    /// The command line for a remote (or local) shell: `sh -c '<body>' pmfleet '<arg1>' …`.
    pub fn render(&self) -> String {
        let mut out = String::from("sh -c ");
        out.push_str(&quote(self.body));
        out.push_str(" pmfleet");
        for arg in &self.args {
            let _ = write!(out, " {}", quote(arg));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn run(script: &Script) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script.render())
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", out);
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn quote_plain_and_empty() {
        assert_eq!(quote("abc"), "'abc'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn hostile_values_arrive_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let canary = dir.path().join("canary");
        let hostile = [
            format!("; touch {}", canary.display()),
            format!("$(touch {})", canary.display()),
            format!("`touch {}`", canary.display()),
            format!("'\"; touch {} #", canary.display()),
            "a b\nc\td".to_string(),
            "\\'\\\\".to_string(),
            "-n".to_string(),
        ];
        for value in &hostile {
            let script = Script::new(r#"printf '%s' "$1""#).arg(value.as_str());
            assert_eq!(&run(&script), value);
        }
        assert!(!canary.exists());
    }

    #[test]
    fn many_arguments_keep_their_order() {
        let script = Script::new(r#"for a; do printf '[%s]' "$a"; done"#).args(["x", "y z", ""]);
        assert_eq!(run(&script), "[x][y z][]");
    }
}
