//! Files of the repository that tests run: the agent's sample apps (`agent/tests/apps/`), its
//! fixtures (`agent/tests/fixtures/`) and the Node preload (`agent/preload/cluster.js`); and
//! the apps the deploy tests commit ([`VERSION_SERVER_JS`], [`GATED_VERSION_SERVER_JS`]).

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace() -> PathBuf {
    let kit = Path::new(env!("CARGO_MANIFEST_DIR"));
    kit.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| kit.to_path_buf())
}

/// A sample app under `agent/tests/apps/`.
pub fn agent_app(name: &str) -> PathBuf {
    workspace().join("agent/tests/apps").join(name)
}

/// A fixture under `agent/tests/fixtures/`.
pub fn agent_fixture(name: &str) -> PathBuf {
    workspace().join("agent/tests/fixtures").join(name)
}

/// The preload the agent injects into Node apps with `NODE_OPTIONS=--require`.
pub fn node_preload() -> PathBuf {
    workspace().join("agent/preload/cluster.js")
}

/// A Node app that answers every request with `version <the VERSION file of its release>` on
/// `$PORT`: what the deploy tests commit next to a `VERSION` file, to see which release serves.
pub const VERSION_SERVER_JS: &str = r#"const http = require("http");
const fs = require("fs");
const version = fs.readFileSync(__dirname + "/VERSION", "utf8").trim();
http.createServer((req, res) => res.end(`version ${version}\n`)).listen(process.env.PORT);
"#;

/// [`VERSION_SERVER_JS`] that listens only once `/srv/hold-<version>` is gone: a test keeps a
/// release from becoming ready (a reload in flight, a release that never is) for as long as
/// that file exists on the host.
pub const GATED_VERSION_SERVER_JS: &str = r#"const http = require("http");
const fs = require("fs");
const version = fs.readFileSync(__dirname + "/VERSION", "utf8").trim();
const hold = "/srv/hold-" + version;
const serve = () => http.createServer((q, s) => s.end(`version ${version}\n`)).listen(process.env.PORT);
(function wait() { if (fs.existsSync(hold)) setTimeout(wait, 50); else serve(); })();
"#;
