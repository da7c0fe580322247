//! A fleet with agents serving an app, the start of the fleet-view tests: `n` sshd hosts, a
//! repository holding `server.js` and an `ecosystem.json` whose app `web` runs 2 instances in
//! cluster mode on a port of its own, and a project whose `deploy.production` reaches those
//! hosts' agents on another; the fleet CA made, `setup` and a first deploy done.

use std::ffi::OsStr;

use serde_json::json;

use crate::git_repo::GitRepo;
use crate::net::free_port;
use crate::project::{Project, ok};
use crate::sshd::Fleet;

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
    /// `n` hosts serving `server_js` as `web`, deployed once.
    pub fn serving(n: usize, server_js: &str) -> AgentFleet {
        AgentFleet::serving_with(n, server_js, &[])
    }

    /// [`AgentFleet::serving`], with `env` given to every `pmfleet` run that makes it (e.g.
    /// `PMFLEET_AGENT_BIN`: which agent binary `setup` installs).
    pub fn serving_with(n: usize, server_js: &str, env: &[(&str, &OsStr)]) -> AgentFleet {
        let fleet = Fleet::start(n);
        let (app_port, agent_port) = (free_port(), free_port());
        let repo = GitRepo::new();
        repo.write("server.js", server_js);
        repo.commit_file(
            "ecosystem.json",
            &json!({"apps": [{
                "name": "web", "script": "server.js", "instances": 2, "exec_mode": "cluster",
                "listen_timeout": 5000, "env": {"PORT": app_port}
            }]})
            .to_string(),
            "web app",
        );
        let project = Project::new(fleet.home.path());
        project.write_ecosystem(&json!({"deploy": {"production": {
            "host": fleet.hosts_json(), "ref": "main", "repo": repo.url(), "path": "/srv/app",
            "fetch": "push", "agent": {"port": agent_port, "bind": "host"},
        }}}));
        ok(&project.pmfleet_with(&["ca", "init"], env));
        ok(&project.pmfleet_with(&["deploy", "production", "setup"], env));
        ok(&project.pmfleet_with(&["deploy", "production"], env));
        AgentFleet {
            fleet,
            repo,
            project,
            app_port,
            agent_port,
        }
    }
}
