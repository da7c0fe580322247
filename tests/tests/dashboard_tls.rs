//! `pmfleet dashboard --tls` against a real sshd host set up and deployed by `pmfleet`, with
//! its agent, and a real rustls client as the browser: the dashboard serves HTTPS with a
//! certificate from the fleet CA and prints the CA file to trust; a fleet client certificate
//! signs in without the token, with its role — a `read` one sees the fleet but is offered no
//! action and its reload is refused (the instances keep their pids), a `deploy` one reloads
//! from its page's form (new pids) but may not stop, an `admin` one scales; no certificate and
//! no token is refused, a certificate of another CA fails its handshake, a cross-site action
//! with a good certificate is refused, and a certificate revoked with `pmfleet ca revoke` is
//! refused on a connection opened before and on every new one. Clients that connect and stay
//! silent hold up no one and are let go at the handshake's deadline. Started again, the
//! dashboard keeps its certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::tls::Role;
use pmfleet_testkit::agent_fleet::AgentFleet;
use pmfleet_testkit::dashboard::Dashboard;
use pmfleet_testkit::https::{self, Conn};
use pmfleet_testkit::project::{Project, audited, ok};
use pmfleet_testkit::tls::Leaf;
use pmfleet_testkit::{require_sshd, wait_until};
use rustls::ClientConfig;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

const SERVER_JS: &str = r#"require("http").createServer((req, res) => {
  res.end(`pid ${process.pid}\n`);
}).listen(process.env.PORT);
"#;

/// What `pmfleet dashboard --tls` printed before serving.
struct Started {
    /// Held for its drop, which ends the process.
    #[allow(dead_code)]
    dashboard: Dashboard,
    port: u16,
    token: String,
    /// The `certificate:` and `trust:` lines.
    certificate_line: String,
    trust_file: PathBuf,
}

fn start_dashboard(project: &Project) -> Started {
    let db = project.path().join("dashboard.sqlite");
    let dashboard = Dashboard::start(project, &db, &["--tls"], 5);
    assert!(
        dashboard.lines[0].starts_with("pmfleet dashboard: https://"),
        "an https address: {:?}",
        dashboard.lines
    );
    let certificate_line = dashboard.line("certificate: ").to_string();
    let trust_file = PathBuf::from(
        dashboard
            .line("trust: ")
            .strip_prefix("trust: ")
            .and_then(|l| l.split(' ').next())
            .expect("the CA file"),
    );
    Started {
        port: dashboard.port,
        token: dashboard.token.clone(),
        dashboard,
        certificate_line,
        trust_file,
    }
}

/// `pmfleet ca issue NAME --role ROLE`, into the project: the certificate and its key.
fn issue(project: &Project, name: &str, role: Role) -> Leaf {
    let out = project.path().join("certs").join(name);
    ok(&project.pmfleet(&[
        "ca",
        "issue",
        name,
        "--role",
        role.as_str(),
        "--out",
        &out.display().to_string(),
    ]));
    let read = |f: &str| std::fs::read_to_string(out.join(f)).expect("issued file");
    Leaf {
        cert: read("cert.pem"),
        key: read("key.pem"),
    }
}

/// Every pid of every app instance, from `status --json`.
fn app_pids(project: &Project) -> Vec<u64> {
    let run = project.pmfleet(&["status", "--json"]);
    ok(&run);
    let hosts: Value = serde_json::from_str(&run.stdout).expect("status --json is JSON");
    let mut pids: Vec<u64> = hosts
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| {
            h["agent"]["processes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["pid"].as_u64())
        })
        .collect();
    pids.sort();
    pids
}

/// The CSRF field of the first action form on `page`.
fn csrf_in(page: &str) -> Option<String> {
    let after = page.split(r#"name="csrf" value=""#).nth(1)?;
    Some(after.split('"').next()?.to_string())
}

fn get(port: u16, config: &Arc<ClientConfig>, path: &str) -> https::Reply {
    https::request(port, config.clone(), "GET", path, &[], "")
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A form the page posts from the dashboard's own origin, plus `extra` headers.
fn post_action(
    port: u16,
    config: &Arc<ClientConfig>,
    form: &str,
    headers: &[(&str, &str)],
) -> https::Reply {
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    https::request(port, config.clone(), "POST", "/action", &all, form)
        .unwrap_or_else(|e| panic!("POST /action: {e}"))
}

#[test]
fn a_fleet_client_certificate_signs_in_to_the_dashboard_over_https_with_its_role() {
    require_sshd!();
    let AgentFleet {
        fleet: _fleet,
        repo: _repo,
        project,
        ..
    } = AgentFleet::serving(1, SERVER_JS);
    let viewer = issue(&project, "viewer", Role::Read);
    let deployer = issue(&project, "deployer", Role::Deploy);
    let operator = issue(&project, "operator", Role::Admin);

    let started = start_dashboard(&project);
    let port = started.port;
    let ca_pem = std::fs::read_to_string(&started.trust_file).expect("the CA file it names");
    assert!(
        started.certificate_line.contains("127.0.0.1")
            && started.certificate_line.contains("issued now"),
        "{}",
        started.certificate_line
    );
    let same_origin = format!("https://127.0.0.1:{port}");
    let from_page = [
        ("Sec-Fetch-Site", "same-origin"),
        ("Origin", same_origin.as_str()),
    ];

    // No certificate: the token as over HTTP, and nothing without it.
    let anonymous = https::client_config(&ca_pem, None);
    let refused = get(port, &anonymous, "/");
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused.body.contains("client certificate"),
        "{}",
        refused.body
    );
    assert_eq!(get(port, &anonymous, "/?token=wrong").status, 401);
    let bearer = format!("Bearer {}", started.token);
    let with_token = https::request(
        port,
        anonymous.clone(),
        "GET",
        "/app/web",
        &[("Authorization", &bearer)],
        "",
    )
    .expect("GET with the token");
    assert_eq!(with_token.status, 200, "{}", with_token.body);
    let token_cookie = https::request(
        port,
        anonymous.clone(),
        "GET",
        &format!("/?token={}", started.token),
        &[],
        "",
    )
    .expect("GET ?token=");
    assert_eq!(token_cookie.status, 303);
    assert!(
        token_cookie
            .header("set-cookie")
            .is_some_and(|c| c.contains("; Secure")),
        "{:?}",
        token_cookie.headers
    );

    // A `read` certificate: the fleet without the token, no action offered, none let through.
    let read = https::client_config(&ca_pem, Some(&viewer));
    wait_until(
        WAIT,
        "the host's app online for the read certificate",
        || {
            let page = get(port, &read, "/");
            page.status == 200 && page.body.contains(r#"data-app="web" data-state="online""#)
        },
    );
    let app_page = get(port, &read, "/app/web");
    assert_eq!(app_page.status, 200);
    assert!(
        app_page.body.contains(r#"id="no-actions""#),
        "{}",
        app_page.body
    );
    for button in ["reload-0", "restart-0", "stop-0", "scale-0"] {
        assert!(
            !app_page.body.contains(&format!(r#"id="{button}""#)),
            "{button} offered to a read certificate"
        );
    }
    assert_eq!(csrf_in(&app_page.body), None, "no form, no CSRF token");
    let csrf = csrf_in(&with_token.body).expect("the token's page has forms");
    let before = app_pids(&project);
    assert_eq!(before.len(), 2, "{before:?}");
    let reload = format!("csrf={csrf}&host=0&app=web&verb=reload");
    let answer = post_action(port, &read, &reload, &from_page);
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(
        answer.body.contains("`deploy` role") && answer.body.contains("client:viewer"),
        "{}",
        answer.body
    );
    assert_eq!(
        app_pids(&project),
        before,
        "a refused reload restarts nothing"
    );

    // A `deploy` certificate: reload and restart offered, stop and scale neither offered nor
    // let through; and a cross-site action refused whatever the certificate.
    let deploy = https::client_config(&ca_pem, Some(&deployer));
    let its_page = get(port, &deploy, "/app/web");
    assert_eq!(its_page.status, 200);
    for (button, offered) in [
        ("reload-0", true),
        ("restart-0", true),
        ("stop-0", false),
        ("scale-0", false),
    ] {
        assert_eq!(
            its_page.body.contains(&format!(r#"id="{button}""#)),
            offered,
            "{button} for a deploy certificate"
        );
    }
    let csrf = csrf_in(&its_page.body).expect("its page's CSRF token");
    let stop = post_action(
        port,
        &deploy,
        &format!("csrf={csrf}&host=0&app=web&verb=stop"),
        &from_page,
    );
    assert_eq!(stop.status, 403, "{}", stop.body);
    assert!(stop.body.contains("`admin` role"), "{}", stop.body);
    let reload = format!("csrf={csrf}&host=0&app=web&verb=reload");
    for (what, form, headers) in [
        (
            "no CSRF field",
            "host=0&app=web&verb=reload".to_string(),
            from_page.to_vec(),
        ),
        (
            "a wrong CSRF field",
            "csrf=guess&host=0&app=web&verb=reload".to_string(),
            from_page.to_vec(),
        ),
        (
            "sent from another site",
            reload.clone(),
            vec![("Sec-Fetch-Site", "cross-site")],
        ),
        (
            "a foreign Origin",
            reload.clone(),
            vec![("Origin", "https://evil.example")],
        ),
    ] {
        let answer = post_action(port, &deploy, &form, &headers);
        assert_eq!(answer.status, 403, "{what}: {}", answer.body);
        assert!(
            answer.body.contains("did not come from"),
            "{what}: {}",
            answer.body
        );
    }
    assert_eq!(
        app_pids(&project),
        before,
        "nothing refused restarted anything"
    );

    // Its reload from the page's form goes through: new instances.
    let answer = post_action(port, &deploy, &reload, &from_page);
    assert_eq!(answer.status, 303, "{}", answer.body);
    let location = answer.header("location").unwrap_or_default().to_string();
    assert!(
        location.starts_with("/app/web?message=reload%20web%20on%20")
            && !location.contains("failed"),
        "{location}"
    );
    wait_until(WAIT, "new instances after the reload", || {
        let now = app_pids(&project);
        now.len() == 2 && now.iter().all(|p| !before.contains(p))
    });
    // The audit trail has it, for the certificate; and the read certificate's reload, refused
    // by the dashboard and never sent, as refused.
    let reloads = audited(&project, "production", "app reload web");
    assert!(
        reloads.iter().any(
            |e| e["performer"] == "client:deployer (deploy role) via dashboard"
                && e["outcome"] == "succeeded"
        ),
        "{reloads:#?}"
    );
    assert!(
        reloads.iter().any(
            |e| e["performer"] == "client:viewer (read role) via dashboard"
                && e["outcome"] == "refused"
        ),
        "{reloads:#?}"
    );

    // An `admin` certificate is offered everything, and its scale goes through.
    let admin = https::client_config(&ca_pem, Some(&operator));
    let its_page = get(port, &admin, "/app/web");
    for button in ["reload-0", "restart-0", "stop-0", "scale-0"] {
        assert!(
            its_page.body.contains(&format!(r#"id="{button}""#)),
            "{button} for an admin certificate"
        );
    }
    let csrf = csrf_in(&its_page.body).expect("its page's CSRF token");
    let scale = format!("csrf={csrf}&host=0&app=web&verb=scale&instances=3");
    let answer = post_action(port, &admin, &scale, &from_page);
    assert_eq!(answer.status, 303, "{}", answer.body);
    wait_until(WAIT, "three instances after the scale", || {
        app_pids(&project).len() == 3
    });

    // Clients that connect and say nothing hold up no one, and are let go after the
    // handshake's deadline.
    let silent: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    assert_eq!(
        get(port, &deploy, "/").status,
        200,
        "served beside silent clients"
    );
    for s in &silent {
        assert!(open(s), "a silent client is let go only at the deadline");
    }
    wait_until(WAIT, "the silent clients let go", || {
        silent.iter().all(|s| !open(s))
    });

    // A certificate from another CA: its handshake fails, nothing is served.
    let stranger = pmfleet_testkit::tls::Ca::new("another fleet").client_as(7, Role::Admin);
    let foreign = https::client_config(&ca_pem, Some(&stranger));
    let refused = https::request(port, foreign, "GET", "/", &[], "");
    assert!(
        refused.is_err(),
        "served to a certificate of another CA: {refused:?}"
    );

    // Revoked: refused on a connection opened before, and on every new one.
    let mut kept = Conn::open(port, read.clone()).expect("a connection for the viewer");
    assert_eq!(kept.send("GET", "/", &[], "").expect("GET /").status, 200);
    ok(&project.pmfleet(&["ca", "revoke", "viewer"]));
    let after = kept.send("GET", "/", &[], "").expect("GET / again");
    assert_eq!(after.status, 403, "{}", after.body);
    assert!(after.body.contains("no longer accepted"), "{}", after.body);
    let refused = https::request(port, read.clone(), "GET", "/", &[], "");
    assert!(
        refused.is_err(),
        "served to a revoked certificate: {refused:?}"
    );
    assert_eq!(get(port, &deploy, "/").status, 200, "the others still in");

    // Started again, it keeps its certificate.
    let cert_file = ca_dir(&started.trust_file).join("dashboard.pem");
    let cert = std::fs::read_to_string(&cert_file).expect("dashboard.pem");
    drop(started);
    let again = start_dashboard(&project);
    assert!(
        again.certificate_line.contains("kept"),
        "{}",
        again.certificate_line
    );
    assert_eq!(
        std::fs::read_to_string(&cert_file).expect("dashboard.pem"),
        cert
    );
    assert_eq!(get(again.port, &deploy, "/").status, 200);
    drop(again);
}

/// Whether the server still holds `s` open (nothing to read yet, no end of stream).
fn open(s: &std::net::TcpStream) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let mut byte = [0u8; 1];
    matches!(
        (&*s).read(&mut byte),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
    )
}

fn ca_dir(ca_file: &Path) -> &Path {
    ca_file.parent().expect("the CA directory")
}
