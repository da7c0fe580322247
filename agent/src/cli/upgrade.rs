//! `pmfleet-agent upgrade`: have the running daemon become a new binary in place (see
//! [`crate::upgrade`]) and check that it did, with its apps still running.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pmfleet_shared::protocol::{ConnError, ErrorKind, FrameError, Request, Response, Status};

use crate::client::{Client, ClientError};
use crate::home::AgentHome;
use crate::supervisor::handover::HANDOVER_VERSION;

/// The exit code when the running daemon cannot upgrade in place.
const TOO_OLD: u8 = 3;
/// How long the new binary may take to answer.
const COME_BACK: Duration = Duration::from_secs(60);

pub async fn run(home: &AgentHome, binary: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let binary = match binary {
        Some(b) => std::fs::canonicalize(&b)
            .with_context(|| format!("cannot use {} as the new agent", b.display()))?,
        None => std::env::current_exe().context("cannot find this binary")?,
    };
    let mut c = match Client::connect(home, false).await {
        Err(ClientError::NotRunning) => bail!(
            "no agent is running in {}: `pmfleet-agent ping` starts one with this binary",
            home.root().display()
        ),
        other => other?,
    };
    let (version, pid, since) = match c.request(&Request::Ping).await {
        Ok(Response::Pong {
            version,
            pid,
            since_ms,
        }) => (version, pid, since_ms),
        // A daemon of another protocol version cannot be told what to become.
        Err(ClientError::Conn(ConnError::Frame(FrameError::Version { theirs, ours }))) => {
            eprintln!(
                "error: the running agent speaks protocol version {theirs} and this binary {ours}: it cannot hand its apps over in place; restart it instead (`pmfleet-agent kill`, then `pmfleet-agent ping`): its apps restart"
            );
            return Ok(ExitCode::from(TOO_OLD));
        }
        Ok(other) => bail!("unexpected answer from the agent: {other:?}"),
        Err(e) => return Err(e.into()),
    };
    let Some(since) = since else {
        eprintln!(
            "error: the running agent ({version}, pid {pid}) cannot hand its apps over in place; restart it instead (`pmfleet-agent kill`, then `pmfleet-agent ping`): its apps restart"
        );
        return Ok(ExitCode::from(TOO_OLD));
    };
    let before = online(&mut c).await?;
    let request = Request::Upgrade {
        binary: binary.clone(),
        handover: HANDOVER_VERSION,
    };
    match c.request(&request).await? {
        Response::Done { messages } => messages.iter().for_each(|m| println!("{m}")),
        // Another handover format, or an agent that does not know the request at all.
        Response::Error(e)
            if e.kind == ErrorKind::Version || e.message.contains("unknown variant") =>
        {
            eprintln!("error: {}", e.message);
            return Ok(ExitCode::from(TOO_OLD));
        }
        Response::Error(e) => bail!("{}", e.message),
        other => bail!("unexpected answer from the agent: {other:?}"),
    }
    // The connection ends when the daemon becomes the new binary, or tells why it could not.
    if let Ok(Some(Response::Error(e))) = c.next().await {
        bail!("{}", e.message);
    }
    let start = Instant::now();
    loop {
        if let Ok(mut c) = Client::connect(home, false).await
            && let Ok((now, now_pid, now_since)) = ping(&mut c).await
        {
            if now_pid != pid {
                bail!(
                    "the agent came back as pid {now_pid} instead of upgrading in place (see {})",
                    home.daemon_log().display()
                );
            }
            if now_since != Some(since) {
                let after = online(&mut c).await?;
                let kept = before.iter().filter(|p| after.contains(p)).count();
                println!(
                    "agent upgraded in place: {version} → {now}, pid {pid}; {kept} of {} running instance(s) kept running",
                    before.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
        }
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            bail!(
                "the agent exited while handing its apps over (see {}); `pmfleet-agent ping` starts it again, and it restarts the apps",
                home.daemon_log().display()
            );
        }
        if start.elapsed() > COME_BACK {
            bail!(
                "the agent did not come back as {} within {} s; see {}",
                binary.display(),
                COME_BACK.as_secs(),
                home.daemon_log().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ping(c: &mut Client) -> anyhow::Result<(String, u32, Option<u64>)> {
    match c.request(&Request::Ping).await? {
        Response::Pong {
            version,
            pid,
            since_ms,
        } => Ok((version, pid, since_ms)),
        other => bail!("unexpected answer from the agent: {other:?}"),
    }
}

/// The running instances, as (app, instance, pid).
async fn online(c: &mut Client) -> anyhow::Result<Vec<(String, u32, u32)>> {
    match c.request(&Request::List).await? {
        Response::Processes { processes } => Ok(processes
            .into_iter()
            .filter(|p| p.status == Status::Online)
            .filter_map(|p| Some((p.name, p.instance, p.pid?)))
            .collect()),
        other => bail!("unexpected answer from the agent: {other:?}"),
    }
}
