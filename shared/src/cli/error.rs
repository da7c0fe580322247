//! An error as a `--json` run prints it, so a program reading the output never has to parse
//! prose: one JSON object on stdout, `{"event": "error", "kind": …, "message": …}`, in the
//! same stream as the run's other JSON (`deploy --json` prints one event per line, and this
//! is one more). The exit code says the same as without `--json`.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct JsonError<'a> {
    event: &'static str,
    kind: &'a str,
    message: &'a str,
}

/// The one-line JSON text of an error: `kind` is a short snake_case word (`usage`,
/// `bad_config`, `not_found`, `failed`, …), `message` the sentence a person would read.
pub fn json_line(kind: &str, message: &str) -> String {
    let value = JsonError {
        event: "error",
        kind,
        message,
    };
    serde_json::to_string(&value).unwrap_or_else(|_| {
        r#"{"event":"error","kind":"internal","message":"cannot encode the error"}"#.to_owned()
    })
}

/// Prints an error for a person (`error: …` on stderr) or, with `json`, as [`json_line`]
/// on stdout; a registered secret is masked in either ([`crate::redact`]).
pub fn report(json: bool, kind: &str, message: &str) {
    let message = &*crate::redact::redact(message);
    if json {
        println!("{}", json_line(kind, message));
    } else {
        eprintln!("error: {message}");
    }
}

/// Whether a command line asks for JSON output: `--json` before any `--` (after it, words
/// belong to the app).
pub fn wants_json<S: AsRef<str>>(args: &[S]) -> bool {
    args.iter()
        .map(AsRef::as_ref)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// A command line clap refused: its message, as JSON when `--json` was asked for (exit
/// status 2, clap's for usage errors); help and version print as clap prints them.
pub fn usage(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    let args: Vec<String> = std::env::args().collect();
    if wants_json(&args) && !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
    {
        let text = e.render().to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        println!("{}", json_line("usage", first));
        return std::process::ExitCode::from(2);
    }
    e.exit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_json_object() {
        let line = json_line("bad_config", "no \"ecosystem\" file here");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "error");
        assert_eq!(v["kind"], "bad_config");
        assert_eq!(v["message"], "no \"ecosystem\" file here");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn json_is_asked_for_before_the_apps_own_arguments() {
        assert!(wants_json(&["pmfleet", "status", "--json"]));
        assert!(!wants_json(&["pmfleet", "status"]));
        assert!(!wants_json(&[
            "pmfleet-agent",
            "start",
            "a.js",
            "--",
            "--json"
        ]));
    }
}
