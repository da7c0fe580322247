//! `init [simple]` (PM2's `init` / `ecosystem`): writes a commented `ecosystem.config.js` in
//! the current directory, which `start`, `startOrReload` and `pmfleet deploy` read as it is.
//! Unlike PM2, it never replaces a file that exists (`--force` does).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

/// The file `init` writes.
pub const FILE: &str = "ecosystem.config.js";

/// Every app key a first file needs, with what it does; the deploy block `pmfleet deploy`
/// reads. The post-deploy hook builds only: the agent reloads the apps itself.
pub const FULL: &str = r#"// The apps pmfleet-agent runs (as PM2 would), and where `pmfleet deploy` puts them.
// Every key is described in pmfleet's docs/ecosystem.md.
module.exports = {
  apps: [
    {
      name: "api",
      script: "server.js",          // a .js file runs with node, .py with python3, …
      // args: "--port 3000",       // arguments for the script
      instances: 2,                 // "max": one per CPU
      exec_mode: "cluster",         // the agent shares one port between the instances
      port: 3000,                   // the port it binds once (also $PORT for the app)
      max_memory_restart: "300M",   // restarted gracefully above this
      // wait_ready: true,          // a reload waits for process.send('ready') / READY=1
      // watch: true,               // restart when files change (development)
      env: {
        NODE_ENV: "development",
      },
      env_production: {             // with --env production
        NODE_ENV: "production",
      },
    },
    {
      name: "worker",
      script: "worker.js",
      // autostart: false,          // listed but not started until `pmfleet-agent start worker`
      // cron_restart: "0 4 * * *", // restarted every night at 4
    },
  ],

  // `pmfleet deploy production setup`, then `pmfleet deploy production`
  deploy: {
    production: {
      user: "deploy",
      host: ["web1.example.com"],
      ref: "origin/main",
      repo: "git@github.com:example/app.git",
      path: "/var/www/app",
      // Build the release; the agent then reloads the apps with zero downtime
      // (no `pm2 reload` here).
      "post-deploy": "npm ci",
      // shared_dirs: ["logs"],     // kept across releases
    },
  },
};
"#;

/// `init simple`: one app.
pub const SIMPLE: &str = r#"// The apps pmfleet-agent runs; `pmfleet-agent start` reads this file.
module.exports = {
  apps: [
    {
      name: "app1",
      script: "./app.js",
    },
  ],
};
"#;

/// Writes the template into `dir`; returns the path written.
pub fn write(dir: &Path, simple: bool, force: bool) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(FILE);
    if path.exists() && !force {
        bail!(
            "{} exists; it was left as it is (--force replaces it)",
            path.display()
        );
    }
    let text = if simple { SIMPLE } else { FULL };
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub fn run(mode: Option<&str>, force: bool) -> anyhow::Result<ExitCode> {
    let simple = match mode {
        None => false,
        Some("simple") => true,
        Some(other) => bail!("unknown template `{other}`: `init` or `init simple`"),
    };
    let dir = std::env::current_dir().context("cannot read the current directory")?;
    let path = write(&dir, simple, force)?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_load_without_a_warning() {
        for (simple, apps) in [(false, 2), (true, 1)] {
            let dir = tempfile::tempdir().unwrap();
            let path = write(dir.path(), simple, false).unwrap();
            let eco = pmfleet_shared::ecosystem::load(&path).unwrap();
            assert_eq!(eco.apps.len(), apps);
            assert!(eco.warnings.is_empty(), "{:?}", eco.warnings);
            if !simple {
                let prod = eco.environment("production").unwrap();
                assert_eq!(prod.git_ref, "origin/main");
                assert_eq!(
                    eco.apps[0].env_by_name["production"]["NODE_ENV"],
                    "production"
                );
            }
            assert!(write(dir.path(), simple, false).is_err(), "never replaced");
            write(dir.path(), simple, true).unwrap();
        }
    }
}
