//! PM2's defaults for an app — the one place they are written — and the order in which an
//! app's environment blocks are layered.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::model::{App, ExecMode, Instances, Interpreter, Watch};

/// PM2's format when `time: true` is set (`Common.verifyConfs`), which replaces any
/// `log_date_format`.
pub const TIME_FORMAT: &str = "YYYY-MM-DDTHH:mm:ss";

/// PM2's defaults: every app starts from these (the file readers, `start <script>`), and the
/// agent's restart policy and stop signal fall back to them.
impl Default for App {
    fn default() -> App {
        App {
            name: String::new(),
            script: String::new(),
            args: Vec::new(),
            interpreter: Interpreter::Auto,
            interpreter_args: Vec::new(),
            cwd: None,
            instances: Instances::Count(1),
            exec_mode: ExecMode::Fork,
            env: BTreeMap::new(),
            env_by_name: BTreeMap::new(),
            deploy_env_by_name: BTreeMap::new(),
            port: None,
            max_memory_restart: None,
            autorestart: true,
            autostart: true,
            max_restarts: 16,
            min_uptime: Duration::from_millis(1000),
            restart_delay: Duration::ZERO,
            exp_backoff_restart_delay: None,
            stop_exit_codes: Vec::new(),
            kill_signal: "SIGINT".to_owned(),
            kill_timeout: Duration::from_millis(1600),
            listen_timeout: Duration::from_millis(3000),
            wait_ready: false,
            watch: Watch::Off,
            ignore_watch: Vec::new(),
            out_file: None,
            error_file: None,
            merge_logs: false,
            log_date_format: None,
            time: false,
            instance_var: "NODE_APP_INSTANCE".to_owned(),
            increment_var: None,
            cron_restart: None,
            namespace: "default".to_owned(),
            append_env_to_name: false,
            healthcheck: None,
            metrics: None,
            deploy_timeout: None,
        }
    }
}

impl App {
    /// An app for `script` with every PM2 default, named after the file (as
    /// `pm2 start server.js` names it `server`: the file name up to its last dot).
    pub fn from_script(script: &str) -> App {
        App {
            name: name_from_script(script),
            script: script.to_owned(),
            ..App::default()
        }
    }

    /// The environment the app's processes get, in PM2's order of precedence (later wins):
    /// with an environment name, `deploy.<env>.env` (`deploy_env` when given, else the file's
    /// own); then `env`, with `PORT` from `port`; then `env_<env_name>` (so a `PORT` there
    /// wins over `port`, as in PM2).
    pub fn resolved_env(
        &self,
        deploy_env: Option<&BTreeMap<String, String>>,
        env_name: Option<&str>,
    ) -> BTreeMap<String, String> {
        let own_deploy = env_name.and_then(|n| self.deploy_env_by_name.get(n));
        let mut out = deploy_env.or(own_deploy).cloned().unwrap_or_default();
        out.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(port) = self.port {
            out.insert("PORT".to_owned(), port.to_string());
        }
        if let Some(named) = env_name.and_then(|n| self.env_by_name.get(n)) {
            out.extend(named.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }

    /// The name the app runs under with `--env <env_name>`: `append_env_to_name` adds
    /// `-<env_name>`, as in PM2.
    pub fn name_for(&self, env_name: Option<&str>) -> String {
        match env_name {
            Some(env) if self.append_env_to_name => format!("{}-{env}", self.name),
            _ => self.name.clone(),
        }
    }
}

/// PM2's `renderApplicationName`: the script's file name without what follows its last dot
/// (`dist/server.js` → `server`; `python3 -m http.server 8000` → `python3 -m http`).
pub(crate) fn name_from_script(script: &str) -> String {
    Path::new(script)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| script.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_pm2s() {
        let app = App::from_script("dist/server.js");
        assert_eq!(app.name, "server");
        assert_eq!(app.instances, Instances::Count(1));
        assert_eq!(app.exec_mode, ExecMode::Fork);
        assert!(app.autorestart);
        assert_eq!(app.max_restarts, 16);
        assert_eq!(app.min_uptime, Duration::from_secs(1));
        assert_eq!(app.kill_timeout, Duration::from_millis(1600));
        assert_eq!(app.listen_timeout, Duration::from_secs(3));
        assert_eq!(app.kill_signal, "SIGINT");
        assert_eq!(app.instance_var, "NODE_APP_INSTANCE");
        assert_eq!(app.namespace, "default");
        assert_eq!(App::from_script("bin/worker").name, "worker");
        assert_eq!(
            App::from_script("python3 -m http.server 8000").name,
            "python3 -m http"
        );
        assert_eq!(App::from_script("sleep 999").name, "sleep 999");
    }

    #[test]
    fn env_layers_in_pm2s_order() {
        let mut app = App::from_script("a.js");
        app.env = map(&[("A", "app"), ("B", "app")]);
        app.env_by_name
            .insert("production".into(), map(&[("B", "named"), ("C", "named")]));
        app.deploy_env_by_name.insert(
            "production".into(),
            map(&[("A", "deploy"), ("D", "deploy")]),
        );
        let env = app.resolved_env(None, Some("production"));
        assert_eq!(
            env,
            map(&[
                ("A", "app"),
                ("B", "named"),
                ("C", "named"),
                ("D", "deploy")
            ])
        );
        let given = map(&[("E", "given")]);
        assert_eq!(
            app.resolved_env(Some(&given), Some("production"))["E"],
            "given"
        );
        assert!(
            !app.resolved_env(Some(&given), Some("production"))
                .contains_key("D")
        );
        assert_eq!(
            app.resolved_env(None, None),
            map(&[("A", "app"), ("B", "app")])
        );
        assert_eq!(app.resolved_env(None, Some("staging")).len(), 2);

        app.port = Some(8080);
        assert_eq!(app.resolved_env(None, None)["PORT"], "8080");
        app.env.insert("PORT".into(), "1".into());
        assert_eq!(
            app.resolved_env(None, None)["PORT"],
            "8080",
            "port wins over env"
        );
        app.env_by_name
            .get_mut("production")
            .unwrap()
            .insert("PORT".into(), "4000".into());
        assert_eq!(
            app.resolved_env(None, Some("production"))["PORT"],
            "4000",
            "env_<name> wins over port, as in PM2"
        );
    }

    #[test]
    fn names_per_environment() {
        let mut app = App::from_script("api.js");
        assert_eq!(app.name_for(Some("production")), "api");
        app.append_env_to_name = true;
        assert_eq!(app.name_for(Some("production")), "api-production");
        assert_eq!(app.name_for(None), "api");
    }
}
