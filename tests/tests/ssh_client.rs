//! `pmfleet::ssh` against real OpenSSH sshd hosts: command execution, stdin streaming, host key
//! checking (unknown, learned, changed, hashed entries), ~/.ssh/config aliases, authentication
//! failures, unreachable hosts, channel caps and timeouts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pmfleet::ssh::{ClientSettings, ConnectSpec, Connection, Connector, SshError, Stream};
use pmfleet_testkit::client_home::ClientHome;
use pmfleet_testkit::require_sshd;
use pmfleet_testkit::sshd::{Fleet, SshHost};

fn settings(home: &ClientHome) -> ClientSettings {
    ClientSettings {
        home: home.path().to_path_buf(),
        connect_timeout: Duration::from_secs(20),
        ..ClientSettings::default()
    }
}

fn spec(host: &SshHost) -> ConnectSpec {
    ConnectSpec {
        host: host.address().to_string(),
        port: Some(host.port()),
        user: Some("root".into()),
        ..ConnectSpec::default()
    }
}

/// Output of one command.
struct Output {
    status: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Output {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

async fn run_with_input(
    connection: &Connection,
    command: &str,
    stdin: Option<Vec<u8>>,
) -> Result<Output, SshError> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let input = stdin.map(|bytes| {
        Box::new(std::io::Cursor::new(bytes)) as Box<dyn tokio::io::AsyncRead + Send + Unpin>
    });
    let status = connection
        .exec(command, input, &mut |stream, chunk| match stream {
            Stream::Stdout => stdout.extend_from_slice(chunk),
            Stream::Stderr => stderr.extend_from_slice(chunk),
        })
        .await?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

async fn run(connection: &Connection, command: &str) -> Output {
    run_with_input(connection, command, None)
        .await
        .unwrap_or_else(|e| panic!("`{command}` on {}: {e}", connection.destination()))
}

/// Deterministic bytes that do not compress into a pattern.
fn payload(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn exec_reports_stdout_stderr_and_exit_status() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    let connector = Connector::new(settings(&fleet.home));

    let started = Instant::now();
    let connection = connector.connect(&spec(host)).await.unwrap();
    eprintln!(
        "connect + handshake + auth to {}: {:?}",
        connection.destination(),
        started.elapsed()
    );
    assert_eq!(
        connection.destination(),
        format!("root@{}:{}", host.address(), host.port())
    );

    let output = run(&connection, "echo out; echo err >&2; printf more; exit 3").await;
    assert_eq!(output.status, 3);
    assert_eq!(output.stdout(), "out\nmore");
    assert_eq!(output.stderr(), "err\n");

    assert_eq!(run(&connection, "true").await.status, 0);
    assert_eq!(run(&connection, "whoami").await.stdout(), "root\n");
    // Killed by a signal: 128 + SIGTERM, as a shell reports it.
    assert_eq!(run(&connection, "kill -TERM $$").await.status, 143);
    // Without stdin the command sees EOF at once instead of hanging.
    assert_eq!(run(&connection, "cat; echo done").await.stdout(), "done\n");

    // The same connection keeps serving steps.
    for i in 0..5 {
        assert_eq!(
            run(&connection, &format!("echo {i}")).await.stdout(),
            format!("{i}\n")
        );
    }
    connection.close().await;
}

#[tokio::test]
async fn stdin_streams_a_multi_megabyte_payload() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    let connection = Connector::new(settings(&fleet.home))
        .connect(&spec(host))
        .await
        .unwrap();

    let data = payload(8 * 1024 * 1024);
    let output = run_with_input(
        &connection,
        "cat > /srv/payload && wc -c < /srv/payload",
        Some(data.clone()),
    )
    .await
    .unwrap();
    assert_eq!(output.status, 0, "{}", output.stderr());
    assert_eq!(output.stdout().trim(), data.len().to_string());
    let written = std::fs::read(host.root().join("payload")).unwrap();
    assert!(
        written == data,
        "the file on the host differs from what was sent"
    );

    // Output flowing back while input is still being written must not stall either side.
    let echoed = run_with_input(&connection, "cat", Some(data.clone()))
        .await
        .unwrap();
    assert_eq!(echoed.status, 0);
    assert!(echoed.stdout == data, "echoed bytes differ");

    // A command that exits without reading its input: its status is reported.
    let ignored = run_with_input(&connection, "exit 7", Some(data))
        .await
        .unwrap();
    assert_eq!(ignored.status, 7);
}

#[tokio::test]
async fn each_host_sees_its_own_srv_and_tmp() {
    require_sshd!();
    let fleet = Fleet::start(3);
    let connector = Connector::new(settings(&fleet.home));
    let mut connections = Vec::new();
    for (i, host) in fleet.hosts.iter().enumerate() {
        let connection = connector.connect(&spec(host)).await.unwrap();
        let output = run(
            &connection,
            &format!("echo host{i} > /srv/whoami && echo host{i} > /tmp/whoami && ls /srv"),
        )
        .await;
        assert_eq!(output.status, 0, "{}", output.stderr());
        assert_eq!(output.stdout(), "whoami\n", "host {i} sees others' files");
        connections.push(connection);
    }
    for (i, (host, connection)) in fleet.hosts.iter().zip(&connections).enumerate() {
        let file = std::fs::read_to_string(host.root().join("whoami")).unwrap();
        assert_eq!(file, format!("host{i}\n"));
        let output = run(connection, "cat /srv/whoami /tmp/whoami").await;
        assert_eq!(output.stdout(), format!("host{i}\nhost{i}\n"));
    }
    // The test's own /srv is untouched.
    assert!(!Path::new("/srv/whoami").exists());
}

#[tokio::test]
async fn unknown_host_is_refused_with_its_fingerprint() {
    require_sshd!();
    let home = ClientHome::new();
    let host = SshHost::start(&home, 0);
    let error = Connector::new(settings(&home))
        .connect(&spec(&host))
        .await
        .err()
        .expect("an unknown host must be refused");
    match &error {
        SshError::HostKeyUnknown {
            host: name,
            port,
            fingerprint,
            known_hosts,
        } => {
            assert_eq!(name, host.address());
            assert_eq!(*port, host.port());
            assert_eq!(fingerprint, &host.host_key_fingerprint());
            assert_eq!(known_hosts, &home.known_hosts());
        }
        other => panic!("expected HostKeyUnknown, got {other:?}"),
    }
    assert!(!error.is_unreachable());
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "ssh-keyscan -p {} {}",
            host.port(),
            host.address()
        )),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(home.known_hosts()).unwrap(), "");
}

#[tokio::test]
async fn accept_new_learns_an_unknown_host() {
    require_sshd!();
    let home = ClientHome::new();
    let host = SshHost::start(&home, 1);
    let mut learning = settings(&home);
    learning.accept_new_host_keys = true;
    let connection = Connector::new(learning)
        .connect(&spec(&host))
        .await
        .unwrap();
    assert_eq!(run(&connection, "echo hi").await.stdout(), "hi\n");

    let known = std::fs::read_to_string(home.known_hosts()).unwrap();
    assert_eq!(known, format!("{}\n", host.known_hosts_line()));

    // Now known: strict checking connects, and learning again adds nothing.
    Connector::new(settings(&home))
        .connect(&spec(&host))
        .await
        .unwrap();
    let mut via_option = spec(&host);
    via_option.ssh_options = vec!["StrictHostKeyChecking=accept-new".into()];
    Connector::new(settings(&home))
        .connect(&via_option)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(home.known_hosts()).unwrap(), known);

    // The ecosystem's ssh_options can ask for learning too.
    let other_home = ClientHome::new();
    std::fs::copy(home.private_key(), other_home.private_key()).unwrap();
    let mut accept_new = spec(&host);
    accept_new.ssh_options = vec!["StrictHostKeyChecking=accept-new".into()];
    Connector::new(settings(&other_home))
        .connect(&accept_new)
        .await
        .unwrap();
    assert!(
        std::fs::read_to_string(other_home.known_hosts())
            .unwrap()
            .contains(&host.known_hosts_line())
    );
}

#[tokio::test]
async fn changed_host_key_is_refused_showing_fingerprint_and_line() {
    require_sshd!();
    let home = ClientHome::new();
    let mut host = SshHost::start(&home, 2);
    // Comment lines before the entry: the reported line must be the file's own numbering.
    std::fs::write(
        home.known_hosts(),
        "# fleet hosts\n# managed by hand\n[10.9.9.9]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n",
    )
    .unwrap();
    home.trust(&host);
    Connector::new(settings(&home))
        .connect(&spec(&host))
        .await
        .unwrap();

    host.regenerate_host_key();
    let new_fingerprint = host.host_key_fingerprint();
    for accept_new in [false, true] {
        let mut settings = settings(&home);
        settings.accept_new_host_keys = accept_new;
        let error = Connector::new(settings)
            .connect(&spec(&host))
            .await
            .err()
            .expect("a changed host key must be refused");
        match &error {
            SshError::HostKeyChanged {
                host: name,
                port,
                fingerprint,
                known_hosts_path,
                line,
            } => {
                assert_eq!(name, host.address());
                assert_eq!(*port, host.port());
                assert_eq!(fingerprint, &new_fingerprint);
                assert_eq!(known_hosts_path, &home.known_hosts());
                assert_eq!(*line, 4);
            }
            other => panic!("expected HostKeyChanged, got {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains(&new_fingerprint), "{message}");
        assert!(
            message.contains(&format!("{}:4", home.known_hosts().display())),
            "{message}"
        );
        assert!(!error.is_unreachable());
    }
    // Nothing was learned over the old entry.
    let known = std::fs::read_to_string(home.known_hosts()).unwrap();
    assert_eq!(known.lines().count(), 4, "{known}");
}

#[tokio::test]
async fn hashed_known_hosts_entry_is_accepted() {
    require_sshd!();
    let home = ClientHome::new();
    let host = SshHost::start(&home, 3);
    home.trust(&host);
    let status = Command::new("ssh-keygen")
        .arg("-q")
        .arg("-H")
        .arg("-f")
        .arg(home.known_hosts())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let known = std::fs::read_to_string(home.known_hosts()).unwrap();
    assert!(known.starts_with("|1|"), "{known}");
    assert!(!known.contains(host.address()), "{known}");

    let connection = Connector::new(settings(&home))
        .connect(&spec(&host))
        .await
        .unwrap();
    assert_eq!(run(&connection, "echo ok").await.stdout(), "ok\n");
}

#[tokio::test]
async fn ssh_config_alias_supplies_hostname_user_port_and_key() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    let home = &fleet.home;
    // The key exists only where the alias's IdentityFile points.
    let deploy_key = home.path().join(".ssh/deploy_key");
    std::fs::rename(home.private_key(), &deploy_key).unwrap();
    home.add_config(&format!(
        "Host web1 web1.internal\n  HostName {}\n  Port {}\n  User root\n  IdentityFile ~/.ssh/deploy_key\n\
         Host *\n  User nobody\n  Port 1\n",
        host.address(),
        host.port()
    ));

    let alias = ConnectSpec {
        host: "web1".into(),
        ..ConnectSpec::default()
    };
    let connection = Connector::new(settings(home))
        .connect(&alias)
        .await
        .unwrap();
    assert_eq!(
        connection.destination(),
        format!("root@{}:{}", host.address(), host.port())
    );
    assert_eq!(run(&connection, "whoami").await.stdout(), "root\n");

    // The same alias with its key removed from the config: nothing else can log in.
    let mut no_key = alias.clone();
    no_key.host = "web1.internal".into();
    no_key.identity = Some(home.path().join(".ssh/absent_key"));
    std::fs::rename(&deploy_key, home.path().join(".ssh/moved")).unwrap();
    let error = Connector::new(settings(home))
        .connect(&no_key)
        .await
        .err()
        .expect("no usable key");
    let message = error.to_string();
    assert!(matches!(error, SshError::Auth { .. }), "{message}");
    assert!(message.contains("absent_key (not found)"), "{message}");
    assert!(message.contains("deploy_key (not found)"), "{message}");
}

#[tokio::test]
async fn proxy_jump_reaches_a_host_through_a_jump_host() {
    require_sshd!();
    let mut fleet = Fleet::start(2);
    let (jump, behind) = (&fleet.hosts[0], &fleet.hosts[1]);
    fleet.home.add_config(&format!(
        "Host bastion\n  HostName {}\n  Port {}\n  User root\n\
         Host app\n  HostName {}\n  Port {}\n  User root\n  ProxyJump bastion\n\
         Host app-twice\n  HostName {}\n  Port {}\n  User root\n  ProxyJump bastion,root@{}:{}\n",
        jump.address(),
        jump.port(),
        behind.address(),
        behind.port(),
        behind.address(),
        behind.port(),
        jump.address(),
        jump.port(),
    ));
    // Each host has its own /srv: the command ran on the host behind the jump host.
    std::fs::write(behind.root().join("marker"), "behind\n").unwrap();
    let via = connect_spec(&fleet.home, "app").await.unwrap();
    assert_eq!(run(&via, "cat /srv/marker").await.stdout(), "behind\n");
    let twice = connect_spec(&fleet.home, "app-twice").await.unwrap();
    assert_eq!(run(&twice, "cat /srv/marker").await.stdout(), "behind\n");
    drop((via, twice));

    // With the jump host down, the host behind it is unreachable, though it runs.
    fleet.hosts[0].stop();
    let error = connect_spec(&fleet.home, "app")
        .await
        .err()
        .expect("the jump host is down");
    assert!(error.is_unreachable(), "{error}");
    let direct = ConnectSpec {
        host: fleet.hosts[1].address().into(),
        port: Some(fleet.hosts[1].port()),
        user: Some("root".into()),
        ..ConnectSpec::default()
    };
    Connector::new(settings(&fleet.home))
        .connect(&direct)
        .await
        .expect("the host itself is up");
}

/// A `ProxyCommand` that relays its stdin and stdout to `host port`, and notes each run (its
/// arguments) in the file it is given.
const RELAY_PY: &str = r#"import os, socket, sys, threading
host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(log, "a") as f:
    f.write(f"{host} {port}\n")
s = socket.create_connection((host, port))
def up():
    while True:
        data = os.read(0, 65536)
        if not data:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(data)
threading.Thread(target=up, daemon=True).start()
while True:
    data = s.recv(65536)
    if not data:
        break
    os.write(1, data)
"#;

#[tokio::test]
async fn a_proxy_command_carries_the_connection_and_a_failing_one_says_why() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    let relay = fleet.home.path().join("relay.py");
    std::fs::write(&relay, RELAY_PY).unwrap();
    let log = fleet.home.path().join("relay.log");
    fleet.home.add_config(&format!(
        "Host piped\n  HostName {}\n  Port {}\n  User root\n  ProxyCommand python3 {} %h %p {}\n\
         Host broken\n  HostName {}\n  Port {}\n  User root\n  \
         ProxyCommand sh -c 'echo no route to %n >&2; exit 3'\n",
        host.address(),
        host.port(),
        relay.display(),
        log.display(),
        host.address(),
        host.port(),
    ));
    std::fs::write(host.root().join("marker"), "through the proxy\n").unwrap();
    let piped = connect_spec(&fleet.home, "piped").await.unwrap();
    assert_eq!(
        run(&piped, "cat /srv/marker").await.stdout(),
        "through the proxy\n"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("{} {}\n", host.address(), host.port()),
        "the connection went through the command, with %h and %p"
    );
    drop(piped);

    let error = connect_spec(&fleet.home, "broken")
        .await
        .err()
        .expect("the proxy command fails");
    let message = error.to_string();
    assert!(matches!(error, SshError::Proxy { .. }), "{message}");
    assert!(error.is_unreachable(), "{message}");
    assert!(
        message.contains("no route to broken"),
        "what it said: {message}"
    );
}

async fn connect_spec(home: &ClientHome, host: &str) -> Result<Connection, SshError> {
    Connector::new(settings(home))
        .connect(&ConnectSpec {
            host: host.into(),
            ..ConnectSpec::default()
        })
        .await
}

#[tokio::test]
async fn wrong_key_fails_listing_what_was_tried() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    // A second client whose key the host does not authorize.
    let stranger = ClientHome::new();
    stranger.trust(host);
    let error = Connector::new(settings(&stranger))
        .connect(&spec(host))
        .await
        .err()
        .expect("an unauthorized key must be refused");
    let message = error.to_string();
    assert!(matches!(error, SshError::Auth { .. }), "{message}");
    assert!(!error.is_unreachable());
    assert!(
        message.contains(&format!(
            "{} (refused by the server)",
            stranger.private_key().display()
        )),
        "{message}"
    );
    assert!(!message.contains("BEGIN OPENSSH"), "{message}");
}

#[tokio::test]
async fn stopped_host_is_unreachable_until_restarted() {
    require_sshd!();
    let mut fleet = Fleet::start(1);
    let connector = Connector::new(settings(&fleet.home));
    let connection = connector.connect(&spec(&fleet.hosts[0])).await.unwrap();

    fleet.hosts[0].stop();
    let error = connector
        .connect(&spec(&fleet.hosts[0]))
        .await
        .err()
        .expect("a stopped host must be unreachable");
    assert!(error.is_unreachable(), "{error:?}");
    assert!(matches!(error, SshError::Connect { .. }), "{error:?}");
    // The open connection went down with it.
    assert!(run_with_input(&connection, "true", None).await.is_err());

    fleet.hosts[0].restart();
    let connection = connector.connect(&spec(&fleet.hosts[0])).await.unwrap();
    assert_eq!(run(&connection, "echo back").await.stdout(), "back\n");
}

#[tokio::test]
async fn many_concurrent_execs_share_one_connection() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let settings = settings(&fleet.home);
    assert_eq!(settings.max_channels_per_connection, 10);
    let connection = Connector::new(settings)
        .connect(&spec(&fleet.hosts[0]))
        .await
        .unwrap();

    // 24 commands, at most 10 channels at a time (sshd's MaxSessions): three waves.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let connection = connection.clone();
        tasks.spawn(async move {
            let output = run(&connection, &format!("sleep 0.3; echo {i}")).await;
            (i, output.status, output.stdout())
        });
    }
    let mut seen = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (i, status, stdout) = result.unwrap();
        assert_eq!(status, 0);
        assert_eq!(stdout, format!("{i}\n"));
        seen.push(i);
    }
    seen.sort();
    assert_eq!(seen, (0..24).collect::<Vec<_>>());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "more than 10 channels ran at once: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connect_timeout_to_a_silent_listener() {
    // Accepts TCP connections (the kernel does, from the backlog) but never speaks SSH.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let home = ClientHome::new();
    let mut settings = settings(&home);
    settings.connect_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let error = Connector::new(settings)
        .connect(&ConnectSpec {
            host: "127.0.0.1".into(),
            port: Some(port),
            user: Some("root".into()),
            ..ConnectSpec::default()
        })
        .await
        .err()
        .expect("a silent peer must time out");
    let elapsed = started.elapsed();
    assert!(matches!(error, SshError::Timeout { .. }), "{error:?}");
    assert!(error.is_unreachable());
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    drop(blackhole);
}

#[tokio::test]
async fn command_timeout_stops_a_hanging_command() {
    require_sshd!();
    let fleet = Fleet::start(1);
    let mut settings = settings(&fleet.home);
    settings.command_timeout = Some(Duration::from_secs(2));
    let connection = Connector::new(settings)
        .connect(&spec(&fleet.hosts[0]))
        .await
        .unwrap();
    let started = Instant::now();
    let error = run_with_input(&connection, "sleep 30", None)
        .await
        .err()
        .expect("the command must time out");
    assert!(
        matches!(error, SshError::CommandTimeout { .. }),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The connection is still good for the next step.
    assert_eq!(run(&connection, "echo next").await.stdout(), "next\n");
}
