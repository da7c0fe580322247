//! What `pmfleet status` says after a controller died mid-rollout, end to end: real OpenSSH
//! hosts (each with its own `/srv`), real agents, a real Node app in cluster mode, the
//! controller SIGKILLed at a step. Status names the interrupted rollout (who, when, its
//! target, which host serves which release), a host whose `current` is not what its apps run,
//! the command that converges the fleet, and exits 1; once that command ran, it is clean.

use std::time::{Duration, Instant};

use pmfleet_testkit::agent_fleet::AgentFleet;
use pmfleet_testkit::assets::GATED_VERSION_SERVER_JS;
use pmfleet_testkit::deployed::current_release;
use pmfleet_testkit::procs::app_processes;
use pmfleet_testkit::project::{Run, ok};
use pmfleet_testkit::sshd::SshHost;
use pmfleet_testkit::{get_from, require_sshd, wait_until};
use serde_json::{Value, json};

/// `n` hosts with agents (`batch: 1`), version 1 deployed and serving.
fn start(n: usize) -> AgentFleet {
    let f = AgentFleet::deployed(
        n,
        GATED_VERSION_SERVER_JS,
        json!({"listen_timeout": 3000}),
        Some("1"),
        json!({"batch": 1}),
    );
    for host in f.hosts() {
        f.wait_serving(host, "1");
    }
    f
}

/// What these tests do to the fleet and read of it.
trait Suite {
    fn wait_serving(&self, host: &SshHost, version: &str);
    /// Deploys version 2 and SIGKILLs the controller once host 0 switched and its agent
    /// started the new release's instances. Returns (the old release, the new one).
    fn kill_deploy_after_the_first_switch(&self) -> (String, String);
    fn status(&self) -> Run;
    /// Status has nothing to say below the table, and exits 0.
    fn assert_clean(&self);
}

impl Suite for AgentFleet {
    fn wait_serving(&self, host: &SshHost, version: &str) {
        wait_until(
            Duration::from_secs(60),
            &format!("{} serves version {version}", host.address()),
            || {
                get_from(host.address(), self.app_port).map(|b| b.trim().to_string())
                    == Ok(format!("version {version}"))
            },
        );
    }

    fn kill_deploy_after_the_first_switch(&self) -> (String, String) {
        let old = current_release(&self.hosts()[0]).expect("current");
        self.repo.commit_file("VERSION", "2\n", "version 2");
        let mut victim = self.project.spawn(&["deploy", "production"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        let new = loop {
            assert!(
                victim.try_wait().unwrap().is_none(),
                "the deploy ended before its first host switched"
            );
            assert!(Instant::now() < deadline, "host 0 never switched");
            if let Some(new) = current_release(&self.hosts()[0]).filter(|r| *r != old)
                && app_processes(self.app_port, Some(&new)) > 0
            {
                break new;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        victim.kill().unwrap();
        victim.wait().unwrap();
        (old, new)
    }

    fn status(&self) -> Run {
        self.project.pmfleet(&["status"])
    }

    fn assert_clean(&self) {
        let run = self.status();
        ok(&run);
        for word in ["interrupted", "split", "current is", "to converge"] {
            assert!(!run.stdout.contains(word), "{word}:\n{}", run.all());
        }
    }
}

/// The rollout record host `host` holds.
fn rollout_record(host: &SshHost) -> Value {
    let text = std::fs::read_to_string(host.root().join("app/.pmfleet/rollout.json"))
        .expect("rollout.json");
    serde_json::from_str(&text).expect("rollout.json is JSON")
}

#[test]
fn status_names_a_rollout_cut_short_and_the_split_fleet_until_a_deploy_converges_it() {
    require_sshd!();
    let s = start(3);
    s.assert_clean();

    let (old, new) = s.kill_deploy_after_the_first_switch();
    // Host 0's agent finishes the reload it was asked for; hosts 1 and 2 never switched.
    s.wait_serving(&s.hosts()[0], "2");
    for host in &s.hosts()[1..] {
        assert_eq!(current_release(host).as_deref(), Some(old.as_str()));
        s.wait_serving(host, "1");
    }
    let record = rollout_record(&s.hosts()[0]);
    assert_eq!(record["state"], "running", "{record}");
    let (who, started) = (
        record["who"].as_str().unwrap_or_default().to_string(),
        record["started"].as_str().unwrap_or_default().to_string(),
    );
    assert!(!who.is_empty() && !started.is_empty(), "{record}");

    let run = s.status();
    assert_eq!(run.code, 1, "a split fleet fails status:\n{}", run.all());
    let [h0, h1, h2] = [0, 1, 2].map(|i| s.hosts()[i].address().to_string());
    for said in [
        format!("deploy of {new} by {who}, started {started}) was interrupted"),
        format!("{h0} serves {new}; {h1}, {h2} serve {old}"),
        "to converge: `pmfleet deploy production unlock` (the run's lock is still there), then `pmfleet deploy production`".to_string(),
    ] {
        assert!(run.stdout.contains(&said), "{said}:\n{}", run.all());
    }
    assert!(!run.stdout.contains("current is"), "{}", run.all());

    let json_run = s.project.pmfleet(&["status", "--json"]);
    assert_eq!(json_run.code, 1, "{}", json_run.all());
    let hosts: Value = serde_json::from_str(&json_run.stdout).expect("JSON");
    for host in hosts.as_array().expect("an array of hosts") {
        let finding = &host["findings"][0];
        assert_eq!(finding["kind"], "interrupted_rollout", "{host}");
        assert_eq!(finding["rollout"]["who"], who.as_str());
        assert_eq!(finding["rollout"]["started"], started.as_str());
        assert_eq!(finding["rollout"]["release"], new.as_str());
        assert_eq!(finding["serving"][0]["release"], new.as_str());
        assert_eq!(finding["serving"][1]["hosts"], json!([h1, h2]));
        assert_eq!(finding["converge"]["command"], "pmfleet deploy production");
    }

    // The command it names converges the fleet, and status is clean again.
    ok(&s.project.pmfleet(&["deploy", "production", "unlock"]));
    let run = s.status();
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout
            .contains("to converge: `pmfleet deploy production`\n"),
        "no unlock once the lock is gone:\n{}",
        run.all()
    );
    ok(&s.project.pmfleet(&["deploy", "production"]));
    for host in s.hosts() {
        s.wait_serving(host, "2");
    }
    s.assert_clean();
}

#[test]
fn status_says_when_current_is_not_the_release_the_apps_run() {
    require_sshd!();
    let s = start(1);
    let host = &s.hosts()[0];
    // Version 2 never listens: its agent's reload fails once the controller is gone.
    std::fs::write(host.root().join("hold-2"), "").unwrap();
    let (old, new) = s.kill_deploy_after_the_first_switch();
    wait_until(
        Duration::from_secs(60),
        "the new release's instances are stopped",
        || app_processes(s.app_port, Some(&new)) == 0,
    );
    s.wait_serving(host, "1");
    assert_eq!(current_release(host).as_deref(), Some(new.as_str()));

    let said = format!(
        "{}: current is {new} but the apps run {old}",
        host.address()
    );
    let mut last = None;
    wait_until(
        Duration::from_secs(30),
        "status says current and the apps disagree",
        || {
            let run = s.status();
            let says = run.stdout.contains(&said);
            last = Some(run);
            says
        },
    );
    let run = last.expect("status ran");
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains(
            "to converge: `pmfleet deploy production unlock` (the run's lock is still there), then `pmfleet deploy production revert 1`"
        ),
        "{}",
        run.all()
    );
    let json_run = s.project.pmfleet(&["status", "--json"]);
    assert_eq!(json_run.code, 1, "{}", json_run.all());
    let hosts: Value = serde_json::from_str(&json_run.stdout).expect("JSON");
    let at_odds = hosts[0]["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["kind"] == "at_odds"))
        .cloned()
        .unwrap_or_else(|| panic!("an at_odds finding: {hosts}"));
    assert_eq!(at_odds["current"], new.as_str());
    assert_eq!(at_odds["running"][0]["release"], old.as_str());
    assert_eq!(at_odds["running"][0]["apps"], json!(["web"]));
    assert_eq!(
        at_odds["converge"]["command"],
        "pmfleet deploy production revert 1"
    );

    // Going back to what runs converges it.
    std::fs::remove_file(host.root().join("hold-2")).unwrap();
    ok(&s.project.pmfleet(&["deploy", "production", "unlock"]));
    ok(&s.project.pmfleet(&["deploy", "production", "revert", "1"]));
    assert_eq!(current_release(host).as_deref(), Some(old.as_str()));
    s.wait_serving(host, "1");
    s.assert_clean();
}
