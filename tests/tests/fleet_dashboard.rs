//! `pmfleet dashboard` in a real browser (headless Chromium through chromium-driver): two
//! real sshd hosts set up and deployed by `pmfleet`, each with its agent. Without the token
//! nothing is served and a forged action is refused; with it the fleet page shows every host
//! and app with its state, the app page streams a line an app wrote, a reload and a scale
//! from the page (after their confirmation) give new instances, the deploy history names who
//! deployed, a paused agent shows as unreachable, and a restarted dashboard still charts the
//! samples it kept. Screenshots are left in target/test-artifacts/dashboard.

use std::io::Write;
use std::time::Duration;

use pmfleet_testkit::agent_fleet::AgentFleet;
use pmfleet_testkit::dashboard::Dashboard;
use pmfleet_testkit::procs::Paused;
use pmfleet_testkit::project::{Project, audited};
use pmfleet_testkit::webdriver::{Browser, CHROMEDRIVER, CHROMIUM, http};
use pmfleet_testkit::{get_path, require_sshd, require_tool, tools, wait_for, wait_until};

const WAIT: Duration = Duration::from_secs(30);

const SERVER_JS: &str = r#"const http = require("http");
const metrics = require("net").createConnection(process.env.PMFLEET_METRICS_SOCKET);
metrics.on("error", (e) => console.error("metrics socket: " + e));
http.createServer((req, res) => {
  console.log(`said ${req.url}`);
  metrics.write("greetings:1|c\n");
  res.end(`pid ${process.pid}\n`);
}).listen(process.env.PORT);
"#;

/// The pids the page's instance table shows for `host`.
fn pids_in(source: &str, host: &str) -> Vec<u32> {
    source
        .split(&format!(r#"<tr data-host="{host}""#))
        .skip(1)
        .filter_map(|row| {
            let after = row.split(r#"class="pid">"#).nth(1)?;
            after.split('<').next()?.parse().ok()
        })
        .collect()
}

/// `pmfleet dashboard production` on a free port with the history in `db`: the process, its
/// port and its token (from the address it prints).
fn start_dashboard(project: &Project, db: &std::path::Path) -> (Dashboard, u16, String) {
    let dashboard = Dashboard::start(project, db, &[], 1);
    let (port, token) = (dashboard.port, dashboard.token.clone());
    (dashboard, port, token)
}

#[test]
fn the_dashboard_shows_the_fleet_streams_logs_and_reloads_from_the_page() {
    require_sshd!();
    require_tool!(CHROMEDRIVER, "chromium-driver");
    require_tool!(CHROMIUM, "chromium");
    let AgentFleet {
        fleet,
        project,
        app_port,
        ..
    } = AgentFleet::serving(2, SERVER_JS);
    let (first, second) = (fleet.hosts[0].address(), fleet.hosts[1].address());

    let db = project.path().join("dashboard.sqlite");
    let (dashboard, port, token) = start_dashboard(&project, &db);
    let url = format!("http://127.0.0.1:{port}/?token={token}");

    // Nothing without the token; an action without the page's CSRF token is refused.
    let (status, _) = http(port, "GET", "/", &[], "").expect("GET /");
    assert_eq!(status, 401);
    let (status, _) = http(port, "GET", "/?token=wrong", &[], "").expect("GET /");
    assert_eq!(status, 401);
    let bearer = format!("Bearer {token}");
    let form = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (status, _) =
        http(port, "POST", "/action", &form, "host=1&app=web&verb=stop").expect("POST");
    assert_eq!(status, 403, "an action without the CSRF token");
    let (status, _) = http(
        port,
        "POST",
        "/action",
        &form,
        "host=1&app=web&verb=stop&csrf=guess",
    )
    .expect("POST");
    assert_eq!(status, 403, "an action with a wrong CSRF token");

    let browser = Browser::start();
    let artifacts = tools::artifacts_dir("dashboard");
    browser.goto(&url);
    assert!(
        !browser.url().contains("token="),
        "the token leaves the address: {}",
        browser.url()
    );
    wait_until(WAIT, "every host's app online on the fleet page", || {
        browser.goto(&format!("http://127.0.0.1:{port}/"));
        let s = browser.source();
        [first, second].iter().all(|h| {
            s.split(&format!(r#"<tr data-host="{h}">"#))
                .nth(1)
                .and_then(|row| row.split("</tr>").next())
                .is_some_and(|row| row.contains(r#"data-app="web" data-state="online">online 2/2"#))
        })
    });
    browser.screenshot(&artifacts.join("fleet.png"));

    // The app page streams a line the app writes.
    browser.goto(&format!("http://127.0.0.1:{port}/app/web"));
    let marker = format!("/hello-{}", std::process::id());
    wait_until(WAIT, "the app's line streamed to the page", || {
        let _ = get_path(second, app_port, &marker);
        browser
            .text("#logs-1")
            .is_some_and(|t| t.contains(&format!("said {marker}")))
    });
    // The app's own counter, from the StatsD line it sent, beside its instance.
    wait_until(WAIT, "the app's own counter on the page", || {
        browser
            .text("#instances")
            .is_some_and(|t| t.contains("greetings="))
    });
    let before = wait_for(WAIT, "the second host's pids on the page", || {
        let pids = pids_in(&browser.source(), second);
        (pids.len() == 2).then_some(pids)
    });
    let first_before = pids_in(&browser.source(), first);

    // Reload from the page: its confirmation first, then new instances.
    browser.click("#reload-1");
    let asked = wait_for(WAIT, "the confirmation", || browser.dialog());
    assert_eq!(asked, format!("reload web on {second}?"));
    browser.accept_dialog();
    let message =
        pmfleet_testkit::wait::poll_for(WAIT, "the reload's outcome", || browser.text("#message"))
            .unwrap_or_else(|e| panic!("{e}: at {}\n{}", browser.url(), browser.source()));
    assert!(
        message.starts_with(&format!("reload web on {second}: ")) && !message.contains("failed"),
        "{message}"
    );
    wait_until(WAIT, "new instances on the page", || {
        let now = pids_in(&browser.source(), second);
        now.len() == 2 && now.iter().all(|p| !before.contains(p))
    });
    // The audit trail keeps it, for the token's user.
    let reloads = audited(&project, "production", "app reload web");
    assert!(
        reloads
            .iter()
            .any(|e| e["performer"] == "tester via dashboard" && e["outcome"] == "succeeded"),
        "{reloads:#?}"
    );
    assert_eq!(
        pids_in(&browser.source(), first),
        first_before,
        "the other host untouched"
    );
    browser.screenshot(&artifacts.join("app.png"));

    // Scale from the page: three instances on the first host.
    browser.type_into("#instances-0", "3");
    browser.click("#scale-0");
    let asked = wait_for(WAIT, "the scale confirmation", || browser.dialog());
    assert_eq!(asked, format!("scale web on {first}?"));
    browser.accept_dialog();
    wait_until(
        WAIT,
        "three instances of the first host on the page",
        || {
            browser
                .text("#message")
                .is_some_and(|m| m.starts_with(&format!("scale web on {first}: ")))
                && pids_in(&browser.source(), first).len() == 3
        },
    );

    // The deploy history: the deploy `pmfleet deploy` made, by whom, on both hosts.
    browser.goto(&format!("http://127.0.0.1:{port}/history"));
    let history = browser.text("table.history").unwrap_or_default();
    assert!(
        history.contains("deploy") && history.contains("tester"),
        "{history}"
    );
    assert!(
        history.contains(first) && history.contains(second),
        "{history}"
    );
    assert!(history.contains("finished"), "{history}");

    // A host: its figures, its deploy root with the last rollout, its apps.
    browser.goto(&format!("http://127.0.0.1:{port}/host/1"));
    let host_page = browser.source();
    for want in [
        "id=\"load\"",
        "/srv/app",
        "deploy of ",
        "by tester",
        "href=\"/app/web\"",
    ] {
        assert!(host_page.contains(want), "{want} missing:\n{host_page}");
    }

    // A host that stops answering is shown as unreachable.
    let paused = Paused::new(fleet.hosts[0].agent_pid());
    wait_until(WAIT, "the paused host unreachable", || {
        browser.goto(&format!("http://127.0.0.1:{port}/"));
        browser.source().contains(r#"data-state="unreachable""#)
    });
    browser.screenshot(&artifacts.join("unreachable.png"));
    drop(paused);
    drop(browser);
    drop(dashboard);

    // Started again on the same history, the charts still show what came before.
    let (dashboard, port, token) = start_dashboard(&project, &db);
    let (status, page) = http(
        port,
        "GET",
        "/app/web",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    )
    .expect("GET /app/web");
    assert_eq!(status, 200, "{page}");
    let points = page
        .split(r#"points=""#)
        .nth(1)
        .and_then(|p| p.split('"').next())
        .map_or(0, |p| p.split_whitespace().count());
    assert!(points >= 3, "the chart kept {points} samples:\n{page}");
    drop(dashboard);
}

#[test]
fn a_browser_the_tests_start_leaves_no_process_behind() {
    require_tool!(CHROMEDRIVER, "chromium-driver");
    require_tool!(CHROMIUM, "chromium");
    let browser = Browser::start();
    let profile = browser.profile_dir().display().to_string();
    assert!(
        !pmfleet_testkit::processes_with(&profile).is_empty(),
        "the browser runs with its profile on its command line"
    );
    drop(browser);
    wait_until(WAIT, "every process of the browser gone", || {
        pmfleet_testkit::processes_with(&profile).is_empty()
    });
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_dropped_and_the_others_are_served() {
    // A fleet whose one agent is not there: the dashboard serves all the same.
    let home = tempfile::tempdir().expect("home");
    let project = Project::new(home.path());
    project.write_ecosystem(&serde_json::json!({"deploy": {"production": {
        "host": ["127.0.0.9"], "ref": "main", "repo": "/nonexistent", "path": "/srv/app",
        "agent": {"port": pmfleet_testkit::free_port()},
    }}}));
    pmfleet_testkit::project::ok(&project.pmfleet(&["ca", "init"]));
    let db = project.path().join("dashboard.sqlite");
    let (_dashboard, port, token) = start_dashboard(&project, &db);

    // Slow clients: one sends half a head and stops, one trickles a header byte a second.
    let mut half = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("half a head");
    let mut trickle = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    trickle
        .write_all(b"GET / HTTP/1.1\r\nX-Slow: ")
        .expect("the start of a head");
    let started = std::time::Instant::now();
    let trickler = std::thread::spawn(move || {
        // Until the dashboard drops it (a write fails), or a minute.
        while started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_secs(1));
            if trickle.write_all(b"x").is_err() {
                return Some(started.elapsed());
            }
        }
        None
    });
    // Meanwhile everyone else is served.
    let bearer = format!("Bearer {token}");
    let (status, _) = http(port, "GET", "/", &[("Authorization", &bearer)], "").expect("GET /");
    assert_eq!(status, 200);

    half.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let mut buf = [0u8; 256];
    let read = std::io::Read::read(&mut half, &mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "half a head held its connection for {:?}",
        started.elapsed()
    );
    // Dropped: closed, or closed after an error answer (408), never a page.
    if let Ok(n) = read {
        let said = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || said.starts_with("HTTP/1.1 408"), "{said}");
    }
    let dropped = trickler.join().expect("the trickling client");
    assert!(
        dropped.is_some_and(|at| at < Duration::from_secs(30)),
        "a trickled head held its connection: {dropped:?}"
    );
}
