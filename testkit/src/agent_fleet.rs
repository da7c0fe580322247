//! A fleet with agents serving an app, the start of the fleet-view and rollout tests: `n` sshd
//! hosts, a repository holding `server.js` and an `ecosystem.json` whose app `web` runs 2
//! instances in cluster mode on a port of its own, and a project whose `deploy.production`
//! reaches those hosts' agents on another; the fleet CA made, `setup` and a first deploy done.

use std::ffi::OsStr;

use serde_json::{Value, json};

use crate::deployed::with_keys;
use crate::git_repo::GitRepo;
use crate::net::free_port;
use crate::project::{Project, ok};
use crate::sshd::{Fleet, SshHost};

pub struct AgentFleet {
    pub fleet: Fleet,
    pub repo: GitRepo,
    pub project: Project,
    /// The port `web` listens on, on every host.
    pub app_port: u16,
    /// The agents' mutual-TLS port.
    pub agent_port: u16,
}

impl AgentFleet {
    /// `n` hosts serving `server_js` as `web` (`listen_timeout` 5 s), deployed once.
    pub fn serving(n: usize, server_js: &str) -> AgentFleet {
        AgentFleet::serving_with(n, server_js, &[])
    }

    /// [`AgentFleet::serving`], with `env` given to every `pmfleet` run that makes it (e.g.
    /// `PMFLEET_AGENT_BIN`: which agent binary `setup` installs).
    pub fn serving_with(n: usize, server_js: &str, env: &[(&str, &OsStr)]) -> AgentFleet {
        AgentFleet::start(
            n,
            server_js,
            json!({"listen_timeout": 5000}),
            None,
            json!({}),
            env,
        )
    }

    /// `n` hosts serving `server_js` as `web`, with `app`'s keys added to the app (or replacing
    /// its own), and a `VERSION` file holding `version` committed beside it when one is given;
    /// the environment has `extra`'s keys ([`AgentFleet::write_ecosystem`]); deployed once.
    pub fn deployed(
        n: usize,
        server_js: &str,
        app: Value,
        version: Option<&str>,
        extra: Value,
    ) -> AgentFleet {
        AgentFleet::start(n, server_js, app, version, extra, &[])
    }

    fn start(
        n: usize,
        server_js: &str,
        app: Value,
        version: Option<&str>,
        extra: Value,
        env: &[(&str, &OsStr)],
    ) -> AgentFleet {
        let fleet = Fleet::start(n);
        let (app_port, agent_port) = (free_port(), free_port());
        let repo = GitRepo::new();
        repo.write("server.js", server_js);
        let app = with_keys(
            json!({
                "name": "web", "script": "server.js", "instances": 2, "exec_mode": "cluster",
                "env": {"PORT": app_port}
            }),
            &app,
        );
        let ecosystem = json!({ "apps": [app] }).to_string();
        match version {
            Some(version) => {
                repo.write("ecosystem.json", &ecosystem);
                repo.commit_file("VERSION", &format!("{version}\n"), "web app");
            }
            None => {
                repo.commit_file("ecosystem.json", &ecosystem, "web app");
            }
        }
        let project = Project::new(fleet.home.path());
        let this = AgentFleet {
            fleet,
            repo,
            project,
            app_port,
            agent_port,
        };
        this.write_ecosystem(extra);
        ok(&this.project.pmfleet_with(&["ca", "init"], env));
        ok(&this
            .project
            .pmfleet_with(&["deploy", "production", "setup"], env));
        ok(&this.project.pmfleet_with(&["deploy", "production"], env));
        this
    }

    /// (Re)writes the project's `deploy.production`: every host, `main` pushed to `/srv/app`,
    /// the agents on [`AgentFleet::agent_port`] bound to each host's address, and `extra`'s
    /// keys added (or replacing those).
    pub fn write_ecosystem(&self, extra: Value) {
        let env = with_keys(
            json!({
                "host": self.fleet.hosts_json(), "ref": "main", "repo": self.repo.url(),
                "path": "/srv/app", "fetch": "push",
                "agent": {"port": self.agent_port, "bind": "host"},
            }),
            &extra,
        );
        self.project
            .write_ecosystem(&json!({"deploy": {"production": env}}));
    }

    pub fn hosts(&self) -> &[SshHost] {
        &self.fleet.hosts
    }
}
