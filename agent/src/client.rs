//! The CLI's side of the control socket: connect (starting the daemon in the background if
//! none is running) and exchange frames.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pmfleet_shared::protocol::{Request, Response};
use tokio::net::UnixStream;

use crate::home::AgentHome;
use pmfleet_shared::protocol::{ConnError, read_frame, write_frame};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the agent is not running")]
    NotRunning,
    #[error("cannot start the agent: {0}")]
    Spawn(std::io::Error),
    #[error("the agent did not come up within {secs} s; see {log}")]
    NoStart { secs: u64, log: PathBuf },
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("the agent closed the connection without answering")]
    Closed,
}

pub struct Client {
    stream: UnixStream,
}

/// How long a freshly spawned daemon may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);

impl Client {
    /// Connect to the daemon of `home`; with `autostart`, start one first if needed.
    pub async fn connect(home: &AgentHome, autostart: bool) -> Result<Client, ClientError> {
        if let Ok(stream) = UnixStream::connect(home.socket()).await {
            return Ok(Client { stream });
        }
        if !autostart {
            return Err(ClientError::NotRunning);
        }
        let mut child = spawn_daemon(home).map_err(ClientError::Spawn)?;
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            if let Ok(stream) = UnixStream::connect(home.socket()).await {
                return Ok(Client { stream });
            }
            // A daemon that exited at once lost a race with another one: keep trying to
            // connect to the winner.
            let _ = child.try_wait();
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(ClientError::NoStart {
            secs: START_TIMEOUT.as_secs(),
            log: home.daemon_log(),
        })
    }

    /// Send one request and read its (first) response.
    pub async fn request(&mut self, req: &Request) -> Result<Response, ClientError> {
        write_frame(&mut self.stream, req).await?;
        self.next().await?.ok_or(ClientError::Closed)
    }

    /// The next frame of a streamed answer; `None` once the agent closed the connection.
    pub async fn next(&mut self) -> Result<Option<Response>, ClientError> {
        Ok(read_frame(&mut self.stream).await?)
    }
}

/// `pmfleet-agent daemon` in its own session, output appended to the home's agent.log.
fn spawn_daemon(home: &AgentHome) -> std::io::Result<std::process::Child> {
    use std::os::unix::fs::DirBuilderExt;
    use std::os::unix::process::CommandExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home.root())?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.daemon_log())?;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("daemon")
        .env("PMFLEET_AGENT_HOME", home.root())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the child only detaches from our session.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}
