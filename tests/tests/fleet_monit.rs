//! `pmfleet monit` in a real terminal (tmux): two real sshd hosts set up and deployed by
//! `pmfleet`, each with its agent. The test reads the process list, the host bar, the
//! selected app's metadata and logs off the screen; pauses one agent (SIGSTOP) and sees that
//! host shown as unreachable while the other keeps answering; filters to the other host,
//! cancels a stop, reloads its app through the confirmation and reads the new instances'
//! pids on screen; lets the paused agent go and sees it come back by itself; `l` and `q`.
//! With a `read` certificate, the same screen shows the fleet and the agents refuse a reload.

use std::time::Duration;

use pmfleet_testkit::agent_fleet::AgentFleet;
use pmfleet_testkit::procs::Paused;
use pmfleet_testkit::project::{audited, ok};
use pmfleet_testkit::tmux::{TMUX, Tmux, shell_line};
use pmfleet_testkit::{require_sshd, require_tool};

const WAIT: Duration = Duration::from_secs(30);

const SERVER_JS: &str = r#"const http = require("http");
http.createServer((req, res) => res.end(`pid ${process.pid}\n`)).listen(process.env.PORT);
console.log(`listening as pid ${process.pid}`);
"#;

/// The process list's part of each screen line (the list is the first bordered panel).
fn list_part(line: &str) -> &str {
    line.split('│').nth(1).unwrap_or_default()
}

/// The pids the process list shows for `app` on `host`, by screen order.
fn pids_on_screen(screen: &str, host: &str, app: &str) -> Vec<u32> {
    screen
        .lines()
        .map(list_part)
        .filter(|row| {
            let words: Vec<&str> = row.split_whitespace().collect();
            words.iter().any(|w| w.trim_start_matches('▶') == host) && words.contains(&app)
        })
        .filter_map(|row| row.split_whitespace().last()?.parse().ok())
        .collect()
}

#[test]
fn monit_shows_the_fleet_and_reloads_the_selected_app_through_a_confirmation() {
    require_sshd!();
    require_tool!(TMUX, "tmux");
    let AgentFleet {
        fleet,
        repo,
        project,
        ..
    } = AgentFleet::serving(2, SERVER_JS);
    let (first, second) = (fleet.hosts[0].address(), fleet.hosts[1].address());

    let mut monit = project.command(&["monit", "production"]);
    monit.env_remove("CI");
    let term = Tmux::start(&shell_line(&monit), 200, 50);

    // Every host's instances, with the host bar and the first instance's metadata and logs.
    let screen = term.wait_screen(WAIT, "both hosts' instances online", |s| {
        s.contains("hosts 2/2 answering")
            && pids_on_screen(s, first, "web").len() == 2
            && pids_on_screen(s, second, "web").len() == 2
            && s.matches("online").count() >= 4
    });
    for label in [
        "HOST", "STATUS", "CPU", "MEM", "UPTIME", " load ", " mem ", " disk ",
    ] {
        assert!(screen.contains(label), "{label} missing:\n{screen}");
    }
    let screen = term.wait_screen(WAIT, "the selected app's metadata and logs", |s| {
        s.contains("app         web [0]")
            && s.contains("exec mode   cluster")
            && s.contains(&format!("logs: web on {first}"))
            && s.contains("listening as pid")
    });
    assert!(screen.contains(&repo.head()[..12]), "the SHA:\n{screen}");
    assert!(screen.contains("by tester"), "who deployed:\n{screen}");
    let before_first = pids_on_screen(&screen, first, "web");
    std::fs::write(
        pmfleet_testkit::tools::artifacts_dir("monit").join("fleet.txt"),
        &screen,
    )
    .expect("artifact");

    // One agent stops answering: its host is shown unreachable; the other keeps answering.
    let paused = Paused::new(fleet.hosts[0].agent_pid());
    term.wait_screen(WAIT, "the paused host unreachable", |s| {
        s.contains("hosts 1/2 answering") && s.contains("unreachable")
    });

    // Select the other host's app with the filter.
    term.keys(&["/"]);
    term.type_text(second);
    term.keys(&["Enter"]);
    let screen = term.wait_screen(WAIT, "only the second host", |s| {
        s.contains(&format!("filter: {second}"))
            && pids_on_screen(s, first, "web").is_empty()
            && pids_on_screen(s, second, "web").len() == 2
            && s.contains(&format!("logs: web on {second}"))
    });
    let before = pids_on_screen(&screen, second, "web");

    // `s` asks first; anything but `y` cancels.
    term.keys(&["s"]);
    term.wait_screen(WAIT, "the stop confirmation", |s| {
        s.contains(&format!("stop web on {second}? [y/N]"))
    });
    term.keys(&["n"]);
    term.wait_screen(WAIT, "the stop cancelled", |s| s.contains("cancelled"));

    // `R` reloads after `y`: new instances, their pids on screen.
    term.keys(&["R"]);
    term.wait_screen(WAIT, "the reload confirmation", |s| {
        s.contains(&format!("reload web on {second}? [y/N]"))
    });
    term.keys(&["y"]);
    let screen = term.wait_screen(WAIT, "the reloaded instances", |s| {
        let now = pids_on_screen(s, second, "web");
        s.contains(&format!("reload web on {second}: "))
            && !s.contains("failed")
            && now.len() == 2
            && now.iter().all(|p| !before.contains(p))
            && s.matches("online").count() >= 2
    });
    assert!(!screen.contains("cancelled"), "{screen}");
    let reloads = audited(&project, "production", "app reload web");
    assert!(
        reloads
            .iter()
            .any(|e| e["performer"] == "tester via monit" && e["outcome"] == "succeeded"),
        "the audit trail keeps monit's reload: {reloads:#?}"
    );
    let artifacts = pmfleet_testkit::tools::artifacts_dir("monit");
    std::fs::write(artifacts.join("after-reload.txt"), &screen).expect("artifact");

    // The paused agent comes back by itself, its app untouched by the reload.
    drop(paused);
    term.keys(&["/", "Escape"]);
    let screen = term.wait_screen(WAIT, "both hosts answering again", |s| {
        s.contains("hosts 2/2 answering") && pids_on_screen(s, first, "web").len() == 2
    });
    assert_eq!(
        pids_on_screen(&screen, first, "web"),
        before_first,
        "{screen}"
    );

    // `l`: the logs full screen, and back; `q` quits.
    term.keys(&["l"]);
    term.wait_screen(WAIT, "the full-screen logs", |s| {
        s.contains("logs: web on") && !s.contains(" processes ")
    });
    term.keys(&["l"]);
    term.wait_screen(WAIT, "the process list again", |s| {
        s.contains(" processes ")
    });
    term.keys(&["q"]);
    term.wait_screen(WAIT, "monit to quit", |s| s.contains("[exited with 0]"));
    drop(term);

    // With a `read` certificate monit watches, and the agents refuse its reload.
    let viewer = project.path().join("viewer");
    let viewer_dir = viewer.display().to_string();
    ok(&project.pmfleet(&[
        "ca",
        "issue",
        "viewer",
        "--role",
        "read",
        "--out",
        &viewer_dir,
    ]));
    let mut monit = project.command(&["monit", "production"]);
    monit
        .env_remove("CI")
        .env("PMFLEET_TLS_CA_FILE", viewer.join("ca.pem"))
        .env("PMFLEET_TLS_CERT_FILE", viewer.join("cert.pem"))
        .env("PMFLEET_TLS_KEY_FILE", viewer.join("key.pem"));
    let term = Tmux::start(&shell_line(&monit), 200, 50);
    let screen = term.wait_screen(WAIT, "the fleet, seen with a read certificate", |s| {
        s.contains("hosts 2/2 answering") && pids_on_screen(s, second, "web").len() == 2
    });
    let before = pids_on_screen(&screen, second, "web");
    term.keys(&["/"]);
    term.type_text(second);
    term.keys(&["Enter", "R"]);
    term.wait_screen(WAIT, "the reload confirmation", |s| {
        s.contains(&format!("reload web on {second}? [y/N]"))
    });
    term.keys(&["y"]);
    let screen = term.wait_screen(WAIT, "the reload refused", |s| {
        s.contains(&format!("reload web on {second} failed: "))
    });
    let refusal = screen
        .lines()
        .find(|l| l.contains("failed: "))
        .unwrap_or_default();
    let reloads = audited(&project, "production", "app reload web");
    assert!(
        reloads
            .iter()
            .any(|e| e["performer"] == "tester via monit" && e["outcome"] == "failed"),
        "the audit trail keeps the refused reload too: {reloads:#?}"
    );
    std::fs::write(
        pmfleet_testkit::tools::artifacts_dir("monit").join("read-refused.txt"),
        &screen,
    )
    .expect("artifact");
    assert!(
        refusal.contains("`read`"),
        "the refusal names the role: {refusal}"
    );
    assert_eq!(pids_on_screen(&screen, second, "web"), before, "{screen}");
}
