//! `agent.via: "ssh"`: the agents listen on their hosts' loopback only and the controller
//! reaches them through channels of its SSH connections, for deploys and for `status`, `app`
//! and `logs` alike — still over mutual TLS, so a certificate's role is checked as before.
//! Real sshd hosts, real agents, a real Node app.

use std::time::Duration;

use pmfleet_testkit::assets::VERSION_SERVER_JS;
use pmfleet_testkit::git_repo::GitRepo;
use pmfleet_testkit::project::{Project, Run, ok};
use pmfleet_testkit::sshd::Fleet;
use pmfleet_testkit::{free_port, get_from, require_sshd, wait_until};
use serde_json::{Value, json};

/// The hosts `status --json` saw answering, and the apps each runs.
fn answering(run: &Run) -> Vec<(String, usize)> {
    let hosts: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    hosts
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["agent"]["processes"].is_array())
        .map(|h| {
            (
                h["host"].as_str().unwrap_or_default().to_owned(),
                h["agent"]["processes"].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

#[test]
fn agents_reached_through_ssh_deploy_and_answer_status_and_go_silent_without_ssh() {
    require_sshd!();
    let mut fleet = Fleet::start(2);
    let app_port = free_port();
    let agent_port = free_port();
    let repo = GitRepo::new();
    repo.write("server.js", VERSION_SERVER_JS);
    repo.write(
        "ecosystem.json",
        // Cluster mode: each host's agent binds the port on the host's own address.
        &json!({"apps": [{"name": "web", "script": "server.js", "exec_mode": "cluster",
                "instances": 1, "env": {"PORT": app_port}}]})
        .to_string(),
    );
    repo.commit_file("VERSION", "1\n", "web app");
    let project = Project::new(fleet.home.path());
    project.write_ecosystem(&json!({"deploy": {"production": {
        "host": fleet.hosts_json(), "ref": "main", "repo": repo.url(), "path": "/srv/app", "fetch": "push",
        "agent": {"port": agent_port, "home": "/srv/agent", "via": "ssh", "bind": "host"},
    }}}));
    ok(&project.pmfleet(&["ca", "init"]));
    ok(&project.pmfleet(&["deploy", "production", "setup"]));
    ok(&project.pmfleet(&["deploy", "production"]));
    for host in &fleet.hosts {
        wait_until(
            Duration::from_secs(30),
            &format!("{} serves version 1", host.address()),
            || get_from(host.address(), app_port).is_ok_and(|b| b.trim() == "version 1"),
        );
    }

    let status = project.pmfleet(&["status", "--json"]);
    ok(&status);
    let mut seen = answering(&status);
    seen.sort();
    let mut want: Vec<(String, usize)> = fleet
        .hosts
        .iter()
        .map(|h| (h.address().to_owned(), 1))
        .collect();
    want.sort();
    assert_eq!(seen, want, "{}", status.all());
    ok(&project.pmfleet(&["app", "production", "reload", "web"]));

    // Without SSH the agent cannot be reached, though it still runs and listens: the path to
    // it really is the SSH connection.
    fleet.hosts[0].stop();
    let status = project.pmfleet(&["status", "--json"]);
    assert_eq!(status.code, 3, "{}", status.all());
    let seen = answering(&status);
    assert_eq!(
        seen,
        [(fleet.hosts[1].address().to_owned(), 1)],
        "{}",
        status.all()
    );
    assert!(
        get_from(fleet.hosts[0].address(), app_port).is_ok_and(|b| b.trim() == "version 1"),
        "the host's app still serves"
    );
    fleet.hosts[0].restart();
    ok(&project.pmfleet(&["status"]));
}
