//! Reads `ecosystem.config.js` / `.cjs` / `.mjs` by letting `node` evaluate it and print the
//! exported object as JSON, as PM2 itself `require`s the file.
//!
//! The file's path reaches node as an argument, never as part of the script text. Anything
//! the file prints itself goes to stderr, so stdout carries only the JSON. Functions and
//! `undefined` values vanish in `JSON.stringify`, as they would for PM2's daemon.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::error::LoadError;

/// How to find and run `node`.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Run this program instead of looking for `node` on the search path.
    pub program: Option<PathBuf>,
    /// The search path for `node` (`PATH` syntax); `None` uses this process's `PATH`.
    pub search_path: Option<OsString>,
    /// How long the file may take to evaluate before node is killed.
    pub timeout: Duration,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions {
            program: None,
            search_path: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// `import()` reads CommonJS and ES modules alike; `default` is `module.exports` for the
/// former and `export default` for the latter. Output is written through the original
/// `process.stdout.write` after the file's own output has been sent to stderr.
const READER: &str = r#"
const { pathToFileURL } = require('node:url');
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
const file = process.argv[process.argv.length - 1];
import(pathToFileURL(file).href).then(
  (mod) => {
    let config = mod && mod.default !== undefined ? mod.default : mod;
    if (config && typeof config.then === 'function') {
      return config.then((c) => c);
    }
    return config;
  },
).then(
  (config) => {
    if (config === null || typeof config !== 'object') {
      process.stderr.write('the file must export an object (module.exports = { apps, deploy }), not ' +
        (config === null ? 'null' : typeof config) + '\n');
      process.exit(3);
    }
    const json = JSON.stringify(config);
    write(json + '\n', () => process.exit(0));
  },
  (err) => {
    process.stderr.write(String((err && err.stack) || err) + '\n');
    process.exit(2);
  },
);
"#;

/// Finds `node` on `search_path` (or this process's `PATH`).
pub(crate) fn find_node(search_path: Option<&OsStr>) -> Option<PathBuf> {
    let path_var = match search_path {
        Some(p) => p.to_os_string(),
        None => std::env::var_os("PATH")?,
    };
    std::env::split_paths(&path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("node"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Evaluates the file with node and returns the JSON it exported.
pub(crate) fn export_json(path: &Path, options: &NodeOptions) -> Result<String, LoadError> {
    let node = match &options.program {
        Some(p) => p.clone(),
        None => {
            find_node(options.search_path.as_deref()).ok_or_else(|| LoadError::NodeMissing {
                path: path.to_path_buf(),
            })?
        }
    };
    let absolute = std::path::absolute(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut command = Command::new(&node);
    command
        .arg("--input-type=commonjs")
        .arg("-e")
        .arg(READER)
        .arg("--")
        .arg(&absolute)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = absolute.parent() {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LoadError::NodeMissing {
                path: path.to_path_buf(),
            }
        } else {
            LoadError::Io {
                path: node.clone(),
                source,
            }
        }
    })?;

    let stdout = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        })
    });
    let stderr = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        })
    });

    let deadline = Instant::now() + options.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LoadError::Io { path: node, source });
            }
        }
    };
    let out = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
    let err = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    let err = String::from_utf8_lossy(&err).into_owned();

    match status {
        None => Err(LoadError::NodeFailed {
            path: path.to_path_buf(),
            stderr: format!(
                "{err}evaluating the file took longer than {} s; does it wait for something?",
                options.timeout.as_secs()
            ),
        }),
        Some(status) if !status.success() => Err(LoadError::NodeFailed {
            path: path.to_path_buf(),
            stderr: if err.trim().is_empty() {
                format!("node exited with {status}")
            } else {
                let mut said = without_node_internals(&err);
                if let Some(hint) = missing_module_hint(&err, &absolute) {
                    said.push_str("\nhint: ");
                    said.push_str(&hint);
                }
                said
            },
        }),
        Some(_) => String::from_utf8(out).map_err(|_| LoadError::NodeFailed {
            path: path.to_path_buf(),
            stderr: "node printed output that is not UTF-8".to_owned(),
        }),
    }
}

/// What to do when the file `require`s (or imports) a package that is not installed: run
/// `npm install` where the nearest `package.json` is (the file's own directory when there is
/// none). A missing relative module (`./settings`) is a file to create instead.
fn missing_module_hint(stderr: &str, file: &Path) -> Option<String> {
    let module = stderr
        .split("Cannot find module '")
        .nth(1)
        .or_else(|| stderr.split("Cannot find package '").nth(1))?
        .split('\'')
        .next()?;
    let dir = file.parent()?;
    if module.starts_with('.') || module.starts_with('/') {
        return Some(format!(
            "the file requires {module}, which does not exist (relative to {})",
            dir.display()
        ));
    }
    let project = dir
        .ancestors()
        .find(|d| d.join("package.json").is_file())
        .unwrap_or(dir);
    Some(format!(
        "the file requires `{module}`, which is not installed: run `npm install` in {}",
        project.display()
    ))
}

/// Drops the stack frames inside node itself (`at … (node:internal/…)`), which say nothing
/// about the ecosystem file.
fn without_node_internals(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|line| {
            let t = line.trim_start();
            !(t.starts_with("at ") && (t.contains("(node:") || t.contains(" node:")))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn commonjs_esm_and_cjs() {
        let dir = tempfile::tempdir().unwrap();
        let opts = NodeOptions::default();
        let js = write(
            dir.path(),
            "a.config.js",
            "console.log('noise'); module.exports = { apps: [{ script: 'a.js', f() {} }] };",
        );
        assert_eq!(
            export_json(&js, &opts).unwrap().trim(),
            r#"{"apps":[{"script":"a.js"}]}"#
        );
        let mjs = write(
            dir.path(),
            "b.config.mjs",
            "export default { deploy: { p: { port: 22 } } };",
        );
        assert_eq!(
            export_json(&mjs, &opts).unwrap().trim(),
            r#"{"deploy":{"p":{"port":22}}}"#
        );
        let cjs = write(
            dir.path(),
            "c.config.cjs",
            "process.stdout.write('x'); module.exports = { apps: [] };",
        );
        assert_eq!(export_json(&cjs, &opts).unwrap().trim(), r#"{"apps":[]}"#);
    }

    #[test]
    fn a_path_that_looks_like_code_stays_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let js = write(
            dir.path(),
            "x'); process.exit(9); ('.config.js",
            "module.exports = { apps: [] };",
        );
        assert_eq!(
            export_json(&js, &NodeOptions::default()).unwrap().trim(),
            r#"{"apps":[]}"#
        );
    }

    #[test]
    fn syntax_errors_and_throws_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let js = write(dir.path(), "bad.config.js", "module.exports = { apps: [ };");
        match export_json(&js, &NodeOptions::default()) {
            Err(LoadError::NodeFailed { stderr, .. }) => {
                assert!(stderr.contains("SyntaxError"), "{stderr}");
                assert!(!stderr.contains("node:internal"), "{stderr}");
            }
            other => panic!("{other:?}"),
        }
        let js = write(dir.path(), "fn.config.js", "module.exports = 42;");
        match export_json(&js, &NodeOptions::default()) {
            Err(LoadError::NodeFailed { stderr, .. }) => {
                assert!(stderr.contains("must export an object"), "{stderr}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_package_says_where_to_run_npm_install() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("app");
        std::fs::create_dir_all(project.join("config")).unwrap();
        std::fs::write(project.join("package.json"), "{}").unwrap();
        let js = write(
            &project.join("config"),
            "ecosystem.config.js",
            "require('dotenv-not-installed-here'); module.exports = { apps: [] };",
        );
        match export_json(&js, &NodeOptions::default()) {
            Err(LoadError::NodeFailed { stderr, .. }) => {
                let want = format!(
                    "hint: the file requires `dotenv-not-installed-here`, which is not installed: run `npm install` in {}",
                    project.display()
                );
                assert!(stderr.contains(&want), "{stderr}");
            }
            other => panic!("{other:?}"),
        }
        let js = write(
            dir.path(),
            "relative.config.js",
            "require('./settings'); module.exports = {};",
        );
        match export_json(&js, &NodeOptions::default()) {
            Err(LoadError::NodeFailed { stderr, .. }) => {
                assert!(
                    stderr.contains("hint: the file requires ./settings, which does not exist"),
                    "{stderr}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn node_missing() {
        let dir = tempfile::tempdir().unwrap();
        let js = write(dir.path(), "a.config.js", "module.exports = {};");
        let opts = NodeOptions {
            search_path: Some(dir.path().as_os_str().to_owned()),
            ..NodeOptions::default()
        };
        assert!(matches!(
            export_json(&js, &opts),
            Err(LoadError::NodeMissing { .. })
        ));
        let opts = NodeOptions {
            program: Some(dir.path().join("no-such-node")),
            ..NodeOptions::default()
        };
        assert!(matches!(
            export_json(&js, &opts),
            Err(LoadError::NodeMissing { .. })
        ));
    }

    #[test]
    fn a_file_that_never_finishes_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let js = write(
            dir.path(),
            "slow.config.mjs",
            "await new Promise(() => setInterval(() => {}, 1000)); export default {};",
        );
        let opts = NodeOptions {
            timeout: Duration::from_millis(1500),
            ..NodeOptions::default()
        };
        match export_json(&js, &opts) {
            Err(LoadError::NodeFailed { stderr, .. }) => {
                assert!(stderr.contains("longer than"), "{stderr}")
            }
            other => panic!("{other:?}"),
        }
    }
}
