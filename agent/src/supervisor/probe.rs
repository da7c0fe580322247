//! One attempt of an app's health check against one instance, within the check's `timeout`:
//! an HTTP GET (its status and, when asked, its body), a TCP connect, or a command run in the
//! release. Each attempt passes or says why not, in a few words for the deploy's output.
//! Which instance an attempt reaches is decided in [`super::readiness`]; retrying until a
//! deadline is [`super::ready`]'s job, watching after a deploy [`super::watch_window`]'s.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use pmfleet_shared::protocol::{AppSpec, HealthCheck, MAX_PROBE_BODY, Probe};

use super::readiness::ProbeTarget;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where one attempt goes.
#[derive(Debug, Clone)]
pub enum Aim {
    /// An address only the instance answers on.
    Addr(SocketAddr),
    /// A command: run in `cwd` with `env` (the instance's, and its pid and probe port).
    Command {
        cwd: PathBuf,
        env: Vec<(String, String)>,
    },
}

/// Where a probe of the instance `pid` of `spec` goes, given its own port (`probe_port`) and
/// the address the app's shared socket is bound to (`bound`, when it is one address): `None`
/// when the instance has no address the probe could reach.
pub fn aim_at(
    spec: &AppSpec,
    target: ProbeTarget,
    bound: Option<IpAddr>,
    probe_port: Option<u16>,
    pid: u32,
) -> Option<Aim> {
    match target {
        ProbeTarget::AppPort(port) => Some(Aim::Addr(SocketAddr::new(
            bound.unwrap_or(Ipv4Addr::LOCALHOST.into()),
            port,
        ))),
        ProbeTarget::InstancePort => {
            probe_port.map(|port| Aim::Addr(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)))
        }
        ProbeTarget::Command => {
            let mut env: Vec<(String, String)> = spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            env.push(("PMFLEET_APP".into(), spec.name.clone()));
            env.push(("PMFLEET_INSTANCE_PID".into(), pid.to_string()));
            if let Some(port) = probe_port {
                env.push((super::process::PROBE_PORT_VAR.into(), port.to_string()));
            }
            Some(Aim::Command {
                cwd: spec.cwd.clone(),
                env,
            })
        }
    }
}

/// One attempt of `check` at `aim`.
pub async fn attempt(aim: &Aim, check: &HealthCheck) -> Result<(), String> {
    let timeout = Duration::from_millis(check.timeout_ms.max(1));
    if let (Aim::Command { cwd, env }, Probe::Command { command }) = (aim, &check.probe) {
        // Bounded by itself, so that its process group is ended when it runs out of time.
        return run_command(command, cwd, env, timeout).await;
    }
    let run = async {
        match (aim, &check.probe) {
            (Aim::Addr(addr), Probe::Tcp) => TcpStream::connect(addr)
                .await
                .map(drop)
                .map_err(|e| format!("TCP connect to {addr}: {e}")),
            (Aim::Addr(addr), Probe::Http { path, host, .. }) => {
                let (status, body) = http_get(*addr, path, host.as_deref()).await?;
                check
                    .http_passes(status, &body)
                    .map_err(|why| format!("GET {path} on {addr} {why}"))
            }
            (Aim::Command { .. }, _) | (Aim::Addr(_), Probe::Command { .. }) => {
                Err("this probe has no address to reach".to_string())
            }
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{} gave no answer within {timeout:?}",
            check.describe()
        )),
    }
}

/// `GET path` with `Connection: close`: the status and up to [`MAX_PROBE_BODY`] bytes of body.
async fn http_get(
    addr: SocketAddr,
    path: &str,
    host: Option<&str>,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("GET {path} on {addr}: {e}"))?;
    let host = host.map_or_else(|| addr.to_string(), str::to_string);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pmfleet-agent\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("GET {path} on {addr}: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    while answer.len() < MAX_PROBE_BODY {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(buf.get(..n).unwrap_or_default()),
            // A reset after a complete head still says what the status was.
            Err(_) if !answer.is_empty() => break,
            Err(e) => return Err(format!("GET {path} on {addr}: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("GET {path} on {addr}: no HTTP answer"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    Ok((status, body))
}

/// `sh -c command`: exit 0 passes; otherwise its status and last line of output. It runs in a
/// process group of its own, ended when the attempt runs out of time.
async fn run_command(
    command: &str,
    cwd: &std::path::Path,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("command `{command}` could not start: {e}"))?;
    let pid = child.id();
    let ended = tokio::time::timeout(timeout, child.wait_with_output()).await;
    let output = match ended {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("command `{command}`: {e}")),
        Err(_) => {
            if let Some(pid) = pid {
                super::process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            }
            return Err(format!("command `{command}` still ran after {timeout:?}"));
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let said = [output.stderr.as_slice(), output.stdout.as_slice()]
        .into_iter()
        .flat_map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .rfind(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.chars().take(200).collect::<String>()))
        .unwrap_or_default();
    Err(format!("command `{command}` {}{said}", output.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(probe: Probe) -> HealthCheck {
        HealthCheck {
            probe,
            interval_ms: 10,
            timeout_ms: 2_000,
            legacy: false,
        }
    }

    /// Serves one canned answer per connection, recording each request.
    async fn server(
        answers: Vec<&'static str>,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut requests = Vec::new();
            for answer in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 2048];
                let n = s.read(&mut buf).await.unwrap();
                requests.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                s.write_all(answer.as_bytes()).await.unwrap();
            }
            requests
        });
        (addr, task)
    }

    #[tokio::test]
    async fn an_http_probe_checks_status_body_and_sends_the_host_header() {
        let (addr, task) = server(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nall ok",
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbusy",
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
        ])
        .await;
        let hc = check(Probe::Http {
            path: "/health".into(),
            status: None,
            body: Some("ok".into()),
            host: Some("api.example.com".into()),
        });
        assert_eq!(attempt(&Aim::Addr(addr), &hc).await, Ok(()));
        let e = attempt(&Aim::Addr(addr), &hc).await.unwrap_err();
        assert!(e.contains("without `ok`"), "{e}");
        let e = attempt(&Aim::Addr(addr), &hc).await.unwrap_err();
        assert!(e.contains("answered 503"), "{e}");
        let requests = task.await.unwrap();
        assert!(
            requests[0].starts_with("GET /health HTTP/1.1\r\n"),
            "{requests:?}"
        );
        assert!(
            requests[0].contains("Host: api.example.com\r\n"),
            "{requests:?}"
        );
    }

    #[tokio::test]
    async fn tcp_probes_say_why_they_failed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(attempt(&Aim::Addr(addr), &check(Probe::Tcp)).await, Ok(()));
        drop(listener);
        let e = attempt(&Aim::Addr(addr), &check(Probe::Tcp))
            .await
            .unwrap_err();
        assert!(e.contains("refused"), "{e}");
    }

    #[tokio::test]
    async fn a_command_probe_passes_on_exit_0_and_is_ended_when_too_slow() {
        let dir = tempfile::tempdir().unwrap();
        let aim = Aim::Command {
            cwd: dir.path().to_path_buf(),
            env: vec![("PMFLEET_INSTANCE_PID".into(), "42".into())],
        };
        let ok = check(Probe::Command {
            command: "test \"$PMFLEET_INSTANCE_PID\" = 42".into(),
        });
        assert_eq!(attempt(&aim, &ok).await, Ok(()));
        let bad = check(Probe::Command {
            command: "echo 'database down' >&2; exit 3".into(),
        });
        let e = attempt(&aim, &bad).await.unwrap_err();
        assert!(e.contains("exit status: 3: database down"), "{e}");
        let mut slow = check(Probe::Command {
            command: "touch started; sleep 30".into(),
        });
        slow.timeout_ms = 300;
        let started = std::time::Instant::now();
        let e = attempt(&aim, &slow).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{e}");
        assert!(dir.path().join("started").exists());
    }
}
