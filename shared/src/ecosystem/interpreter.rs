//! Which program runs an app's script when the file does not say, as PM2 chooses it
//! (`lib/API/interpreter.json`), and whether that program is node — which decides PM2's default
//! `exec_mode`.

use std::path::Path;

use super::model::{App, Interpreter};

/// The interpreter PM2 picks for a script's extension; `None`: the script runs itself.
///
/// `.py` is `python3` (the agent falls back to `python` when a host has no `python3`; PM2
/// prefers `python`, which can still be Python 2). `.cjs`/`.mjs` are node's too (PM2 hands
/// every text file without a known extension to node). `.ts`/`.tsx` are bun's, as in PM2 7.
pub fn interpreter_for(script: &str) -> Option<&'static str> {
    let ext = Path::new(script).extension()?.to_str()?;
    Some(match ext {
        "js" | "cjs" | "mjs" => "node",
        "py" => "python3",
        "sh" => "bash",
        "rb" => "ruby",
        "php" => "php",
        "pl" => "perl",
        "ts" | "tsx" => "bun",
        _ => return None,
    })
}

/// PM2's test for a node interpreter (`determineExecMode`): the program's file name is, or
/// ends with, `node` or `bun`.
pub fn is_node(program: &str) -> bool {
    let name = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program);
    name.ends_with("node") || name.ends_with("bun")
}

impl App {
    /// The program that runs the script, as written or as PM2 chooses it; `None` when the
    /// script runs itself.
    pub fn interpreter_program(&self) -> Option<&str> {
        match &self.interpreter {
            Interpreter::Auto => interpreter_for(&self.script),
            Interpreter::None => None,
            Interpreter::Program(p) => Some(p),
        }
    }

    /// Whether node (or bun) runs the app.
    pub fn runs_on_node(&self) -> bool {
        self.interpreter_program().is_some_and(is_node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_follows_the_extension() {
        let table = [
            ("app.js", Some("node")),
            ("app.mjs", Some("node")),
            ("app.cjs", Some("node")),
            ("w.py", Some("python3")),
            ("run.sh", Some("bash")),
            ("x.rb", Some("ruby")),
            ("i.php", Some("php")),
            ("t.pl", Some("perl")),
            ("a.ts", Some("bun")),
            ("server", None),
            ("bin/server.bin", None),
        ];
        for (script, want) in table {
            assert_eq!(interpreter_for(script), want, "{script}");
        }
    }

    #[test]
    fn node_by_name() {
        for yes in ["node", "/usr/bin/node", "nodejs-node", "bun", "/opt/bun"] {
            assert!(is_node(yes), "{yes}");
        }
        for no in ["nodejs", "python3", "/usr/bin/node18", "bash"] {
            assert!(!is_node(no), "{no}");
        }
        let mut app = App::from_script("server.js");
        assert!(app.runs_on_node());
        app.interpreter = Interpreter::None;
        assert!(!app.runs_on_node());
        app.interpreter = Interpreter::Program("/usr/local/bin/node".into());
        assert!(app.runs_on_node());
        assert!(!App::from_script("worker.py").runs_on_node());
    }
}
