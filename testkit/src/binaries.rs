//! The `pmfleet` and `pmfleet-agent` binaries a test runs, found by path so the kit needs
//! neither crate as a dependency.
//!
//! - [`pmfleet_bin`] and [`agent_bin`] (the e2e tests and benchmarks): `$PMFLEET_BIN` /
//!   `$PMFLEET_AGENT_BIN`, else the build next to the running test executable, brought up to
//!   date once per process with `cargo build -p pmfleet -p pmfleet-agent --bins`;
//! - [`agent_under_test`] (the agent's own integration tests): `$PMFLEET_AGENT_BIN`, else the
//!   binary cargo has just built for them next to the test executable, never rebuilt from here
//!   (a second build could pick other features and replace it under a running test);
//! - [`shipped_agent_bin`]: the agent as it ships to hosts (`cargo build-agent`), named by
//!   `$PMFLEET_SHIPPED_AGENT_BIN` (scripts/test.sh builds it and sets it).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The `pmfleet` binary, up to date.
pub fn pmfleet_bin() -> PathBuf {
    built("pmfleet", "PMFLEET_BIN")
}

/// The `pmfleet-agent` binary, up to date.
pub fn agent_bin() -> PathBuf {
    built("pmfleet-agent", "PMFLEET_AGENT_BIN")
}

/// The agent binary cargo built for the agent's integration tests.
pub fn agent_under_test() -> PathBuf {
    if let Some(path) = std::env::var_os("PMFLEET_AGENT_BIN") {
        return from_env(path);
    }
    let path = build_dir().join("pmfleet-agent");
    assert!(
        path.exists(),
        "{} does not exist: run the agent's tests with `cargo test -p pmfleet-agent`, or set \
         PMFLEET_AGENT_BIN",
        path.display()
    );
    path
}

/// A binary named by the environment, made absolute: the tests run it from other working
/// directories (a project's, an agent's home), where `target/release/pmfleet` names nothing.
fn from_env(path: std::ffi::OsString) -> PathBuf {
    let path = PathBuf::from(path);
    std::path::absolute(&path).unwrap_or(path)
}

/// The agent as `cargo build-agent` builds it, or why there is none here: a test without it
/// is skipped with a line saying so, and fails under `CI=true`.
pub fn shipped_agent_bin() -> Result<PathBuf, String> {
    match std::env::var_os("PMFLEET_SHIPPED_AGENT_BIN") {
        Some(path) if std::path::Path::new(&path).is_file() => Ok(from_env(path)),
        Some(path) => Err(format!(
            "PMFLEET_SHIPPED_AGENT_BIN={} is not a file: run `cargo build-agent`",
            PathBuf::from(path).display()
        )),
        None => Err(
            "PMFLEET_SHIPPED_AGENT_BIN is not set: run `cargo build-agent` and point it at \
             target/<host>/agent/pmfleet-agent (scripts/test.sh does)"
                .into(),
        ),
    }
}

/// `target/<profile>`, the directory of the running test executable (without `deps/`).
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut dir = exe
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn built(name: &str, var: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    if let Some(path) = std::env::var_os(var) {
        return from_env(path);
    }
    let dir = build_dir();
    let path = dir.join(name);
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "-q",
            "-p",
            "pmfleet",
            "-p",
            "pmfleet-agent",
            "--bins",
        ]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        // What cargo set for this test process describes the test crate, not the build: some
        // build scripts (ring's) track such variables, and a build that saw them would be
        // redone by the next plain `cargo test`, and so on, every run.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(describes_the_test_crate) {
                cmd.env_remove(&key);
            }
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
    });
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The variables cargo sets for a test run that name the crate under test.
fn describes_the_test_crate(key: &str) -> bool {
    [
        "CARGO_MANIFEST_",
        "CARGO_PKG_",
        "CARGO_BIN_",
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
    ]
    .iter()
    .any(|prefix| key.starts_with(prefix))
}
