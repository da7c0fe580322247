//! Every environment variable the code of both binaries reads (or sets for apps and hooks)
//! is on docs/environment.md: the sources are scanned for the names, so a new variable
//! without its line fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Names that look like variables but are none a person sets or sees.
const NOT_VARIABLES: [(&str, &str); 12] = [
    ("NODE_ENV", "an example value in templates and tests"),
    ("CARGO_PKG_VERSION", "read when compiling"),
    ("GIT_AUTHOR_NAME", "a test's commit"),
    ("GIT_AUTHOR_EMAIL", "a test's commit"),
    ("GIT_COMMITTER_NAME", "a test's commit"),
    ("GIT_COMMITTER_EMAIL", "a test's commit"),
    ("INSTANCE_ID", "an instance_var in a test's ecosystem file"),
    ("DB_PASSWORD", "a secret's name in examples and tests"),
    ("API_TOKEN", "a secret's name in examples and tests"),
    ("FROM_CMD", "a secret's name in a test"),
    ("FROM_ENV", "a secret's name in a test"),
    ("IN_DIR", "a secret's name in a test"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "js") {
            out.push(path);
        }
    }
}

/// `"NAME_WITH_UNDERSCORES"` literals, `env::var("NAME")`-like calls, and `env.NAME` in
/// JavaScript.
fn names_in(text: &str, javascript: bool) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let is_name = |s: &str| {
        s.len() > 1
            && s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    // String literals, paired from the start (an escaped quote does not end one).
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(open) = text[i..].find('"').map(|o| i + o) {
        let mut close = open + 1;
        while close < bytes.len() && (bytes[close] != b'"' || bytes[close - 1] == b'\\') {
            close += 1;
        }
        let literal = text.get(open + 1..close).unwrap_or("");
        let before = &text[..open];
        let called = before.ends_with("var(") || before.ends_with("var_os(");
        if is_name(literal) && (literal.contains('_') || called) {
            names.insert(literal.to_string());
        }
        i = close + 1;
        if i >= bytes.len() {
            break;
        }
    }
    for (i, _) in text.match_indices("env.").filter(|_| javascript) {
        let rest = &text[i + 4..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if is_name(&name) {
            names.insert(name);
        }
    }
    names
}

#[test]
fn every_variable_the_code_reads_is_documented() {
    let root = root();
    let doc = std::fs::read_to_string(root.join("docs/environment.md")).unwrap();
    let mut sources = Vec::new();
    for dir in ["agent/src", "agent/preload", "controller/src", "shared/src"] {
        files(&root.join(dir), &mut sources);
    }
    let mut missing = BTreeSet::new();
    let mut seen = 0;
    for file in &sources {
        let text = std::fs::read_to_string(file).unwrap();
        let javascript = file.extension().is_some_and(|e| e == "js");
        for name in names_in(&text, javascript) {
            seen += 1;
            if NOT_VARIABLES.iter().any(|(n, _)| *n == name) {
                continue;
            }
            if !doc.contains(&format!("`{name}`")) {
                missing.insert(format!(
                    "{name} ({})",
                    file.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        seen > 30,
        "the scan found only {seen} names: is it looking in the right place?"
    );
    assert!(
        missing.is_empty(),
        "not in docs/environment.md: {missing:#?}"
    );
}

#[test]
fn the_scan_finds_each_way_a_name_is_written() {
    let names = names_in(
        r#"std::env::var("PMFLEET_LOG"); env::var_os("HOME"); const K: &str = "PMFLEET_SSH_KEY";
           let x = "not a name"; let y = "SIGINT"; process.env.PMFLEET_DRAIN_IDLE_MS"#,
        true,
    );
    let want: BTreeSet<String> = [
        "HOME",
        "PMFLEET_DRAIN_IDLE_MS",
        "PMFLEET_LOG",
        "PMFLEET_SSH_KEY",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, want);
}
