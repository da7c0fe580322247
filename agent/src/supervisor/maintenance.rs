//! Maintenance mode, served by the agent from the socket it owns. A cluster-mode app's
//! shared socket is bound with `SO_REUSEPORT`; `maintenance on` binds a second listener on
//! the same address, which joins the socket's reuseport group, and attaches a one-instruction
//! classic BPF program to the group (`SO_ATTACH_REUSEPORT_CBPF`) that sends every new
//! connection to that second listener: the agent answers each with
//! [`super::maintenance_page::answer`] (503, a page, `Retry-After`), except requests for the
//! app's health-check path, which are handed to one of its instances on that instance's own
//! port. The instances keep running, keep their keep-alive connections, and are reloaded or
//! replaced by a deploy as usual: they simply get no new connections. `off` points the group
//! back at the app's socket, answers what was already queued for the agent, and closes the
//! second listener.
//!
//! The state is kept in `<home>/maintenance.json` (app name → message), so a restarted or
//! upgraded agent, or an app whose socket is bound again, serves it again.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::protocol::{MAX_MAINTENANCE_MESSAGE, MaintenanceRequest, Probe, Status};
use socket2::Socket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::app::{AppRuntime, lock};
use super::maintenance_page::{DEFAULT_MESSAGE, MAX_HEAD, answer, request_path};
use super::{Inner, Messages, Supervisor, SupervisorError};

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic/socket.h: the same on x86_64 and arm64).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// How long a connection may take to send its request line.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// An app in maintenance: its message, and the listener answering for it while its socket
/// is open.
pub(crate) struct Maintenance {
    pub message: String,
    server: Option<Server>,
}

struct Server {
    stop: CancellationToken,
    join: tokio::task::JoinHandle<()>,
}

impl Supervisor {
    /// `maintenance on|off` for the apps of `req.target`.
    pub async fn maintenance(&self, req: &MaintenanceRequest) -> Result<Messages, SupervisorError> {
        let message = req
            .message
            .clone()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
        if message.len() > MAX_MAINTENANCE_MESSAGE {
            return Err(SupervisorError::Release(format!(
                "the maintenance message is {} bytes; at most {MAX_MAINTENANCE_MESSAGE} are shown",
                message.len()
            )));
        }
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for app in self.targets(&req.target)? {
            let result = if req.on {
                self.inner.maintenance_on(&app, &message)
            } else {
                self.inner.maintenance_off(&app).await
            };
            match result {
                Ok(m) => done.push(m),
                Err(m) => failed.push(m),
            }
        }
        self.inner.save_maintenance();
        if failed.is_empty() {
            Ok(done)
        } else {
            Err(SupervisorError::Partial { done, failed })
        }
    }
}

impl Inner {
    fn maintenance_on(&self, app: &Arc<AppRuntime>, message: &str) -> Result<String, String> {
        if lock(&app.listener).is_none() {
            return Err(format!(
                "{}: no socket of the agent's to answer on (maintenance needs cluster mode with a `port`, running)",
                app.name
            ));
        }
        let mut state = lock(&app.maintenance);
        let state = state.get_or_insert_with(|| Maintenance {
            message: message.to_string(),
            server: None,
        });
        state.message = message.to_string();
        if state.server.is_none() {
            state.server = Some(self.serve(app, message).map_err(|e| {
                format!(
                    "{}: cannot answer on its port ({e}); restart the app once so that an agent of this version binds it",
                    app.name
                )
            })?);
        }
        Ok(format!(
            "{}: in maintenance: new connections get 503 and the page; the instances keep running",
            app.name
        ))
    }

    async fn maintenance_off(&self, app: &AppRuntime) -> Result<String, String> {
        let state = lock(&app.maintenance).take();
        let Some(mut state) = state else {
            return Ok(format!("{}: not in maintenance", app.name));
        };
        if let Some(server) = state.server.take() {
            stop_serving(app, server).await;
        }
        Ok(format!(
            "{}: out of maintenance: the instances get every new connection",
            app.name
        ))
    }

    /// After `app`'s socket was bound: answer for it again if it is in maintenance (in
    /// memory, or in the file a previous daemon left).
    pub(super) fn resume_maintenance(&self, app: &Arc<AppRuntime>) {
        let message = lock(&app.maintenance)
            .as_ref()
            .map(|m| m.message.clone())
            .or_else(|| self.saved_maintenance().remove(&app.name));
        if let Some(message) = message
            && let Err(e) = self.maintenance_on(app, &message)
        {
            tracing::warn!(app = %app.name, "maintenance: {e}");
        }
    }

    /// Before `app`'s socket closes: its maintenance listener goes too (the state stays).
    pub(super) async fn pause_maintenance(&self, app: &AppRuntime) {
        let server = lock(&app.maintenance)
            .as_mut()
            .and_then(|m| m.server.take());
        if let Some(server) = server {
            stop_serving(app, server).await;
        }
    }

    fn maintenance_file(&self) -> std::path::PathBuf {
        self.home.root().join("maintenance.json")
    }

    fn saved_maintenance(&self) -> BTreeMap<String, String> {
        std::fs::read(self.maintenance_file())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_maintenance(&self) {
        let apps: BTreeMap<String, String> = lock(&self.apps)
            .values()
            .filter_map(|a| {
                let m = lock(&a.maintenance);
                m.as_ref().map(|m| (a.name.clone(), m.message.clone()))
            })
            .collect();
        let bytes = serde_json::to_vec(&apps).unwrap_or_default();
        if let Err(e) = crate::home::write_atomic(&self.maintenance_file(), &bytes) {
            tracing::warn!("cannot record the maintenance state: {e}");
        }
    }

    /// Binds the second listener, steers the group to it, and answers on it.
    fn serve(&self, app: &Arc<AppRuntime>, message: &str) -> std::io::Result<Server> {
        let side = {
            let listener = lock(&app.listener);
            let main = listener
                .as_ref()
                .ok_or_else(|| std::io::Error::other("the app's socket is closed"))?;
            let side = join_group(main)?;
            // The app's socket joined the group first (index 0), this one second.
            steer(main, 1)?;
            side
        };
        side.set_nonblocking(true)?;
        let side = TcpListener::from_std(std::net::TcpListener::from(side))?;
        let stop = self.tasks_cancel.child_token();
        let page = Arc::new(answer(message));
        let health = health_path(app);
        let join = self
            .tasks
            .spawn(answer_all(side, app.clone(), page, health, stop.clone()));
        Ok(Server { stop, join })
    }
}

/// Points the group back at the app's socket, answers what the agent's listener still has
/// queued, and closes it.
async fn stop_serving(app: &AppRuntime, server: Server) {
    if let Some(main) = lock(&app.listener).as_ref()
        && let Err(e) = steer(main, 0)
    {
        tracing::warn!(app = %app.name, "cannot hand the connections back: {e}");
    }
    server.stop.cancel();
    let _ = server.join.await;
}

/// A listener on the same address as `main`, in its reuseport group.
fn join_group(main: &Socket) -> std::io::Result<Socket> {
    let addr = main
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("the app's socket has no IP address"))?;
    let side = Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if addr.is_ipv6() {
        side.set_only_v6(main.only_v6().unwrap_or(false))?;
    }
    side.set_reuse_address(true)?;
    side.set_reuse_port(true)?;
    side.bind(&addr.into())?;
    side.listen(1024)?;
    Ok(side)
}

/// Every new connection of `socket`'s reuseport group goes to the group's socket `index`.
fn steer(socket: &Socket, index: u32) -> std::io::Result<()> {
    // BPF_RET | BPF_K: return the constant `index`.
    let mut program = [libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: index,
    }];
    let fprog = libc::sock_fprog {
        len: 1,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `program`, both alive for the call; the kernel copies the
    // program and reads nothing after it returns.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::from_ref(&fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The app's HTTP health-check path, which maintenance hands to an instance.
fn health_path(app: &AppRuntime) -> Option<String> {
    match app.spec().healthcheck.map(|h| h.probe) {
        Some(Probe::Http { path, .. }) => Some(path),
        _ => None,
    }
}

/// Answers every connection of `side` until `stop`, then what is still queued.
async fn answer_all(
    side: TcpListener,
    app: Arc<AppRuntime>,
    page: Arc<Vec<u8>>,
    health: Option<String>,
    stop: CancellationToken,
) {
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            a = side.accept() => a,
            _ = stop.cancelled() => break,
        };
        if let Ok((conn, _)) = accepted {
            conns.spawn(one(conn, app.clone(), page.clone(), health.clone()));
        }
    }
    // Connections the group sent here before it was pointed back.
    while let Ok(Ok((conn, _))) =
        tokio::time::timeout(Duration::from_millis(100), side.accept()).await
    {
        conns.spawn(one(conn, app.clone(), page.clone(), health.clone()));
    }
    drop(side);
    conns.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), conns.wait()).await;
}

/// One connection: the page, or the health check handed to an instance.
async fn one(
    mut conn: TcpStream,
    app: Arc<AppRuntime>,
    page: Arc<Vec<u8>>,
    health: Option<String>,
) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let path = tokio::time::timeout(HEAD_TIMEOUT, async {
        while head.len() < MAX_HEAD {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
            if let Some(path) = request_path(&head) {
                return Some(path);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    if path.is_some()
        && path == health
        && let Some(port) = instance_port(&app)
        && let Ok(mut instance) = TcpStream::connect(("127.0.0.1", port)).await
    {
        if instance.write_all(&head).await.is_ok() {
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                tokio::io::copy_bidirectional(&mut conn, &mut instance),
            )
            .await;
        }
        return;
    }
    let _ = conn.write_all(&page).await;
    let _ = conn.shutdown().await;
}

/// The own port of an online instance of `app`.
fn instance_port(app: &AppRuntime) -> Option<u16> {
    lock(&app.slots).values().find_map(|s| {
        let r = s.runner.as_ref()?;
        (lock(&r.view).status == Status::Online)
            .then_some(r.probe_port)
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn accepted(listener: &std::net::TcpListener) -> usize {
        listener.set_nonblocking(true).unwrap();
        let mut n = 0;
        while let Ok((mut c, _)) = listener.accept() {
            let _ = c.write_all(b"x");
            n += 1;
        }
        n
    }

    #[test]
    fn the_group_is_steered_to_one_socket_and_back() {
        let main = super::super::cluster_socket::bind(Some("127.0.0.1".parse().unwrap()), 0)
            .expect("a socket");
        let port = main.local_addr().unwrap().as_socket().unwrap().port();
        let side = join_group(&main).expect("the second listener joins the group");
        steer(&main, 1).unwrap();
        let connect = |n| {
            (0..n)
                .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
                .collect::<Vec<_>>()
        };
        let main_std: std::net::TcpListener = main.try_clone().unwrap().into();
        let side_std: std::net::TcpListener = side.try_clone().unwrap().into();
        let mut clients = connect(20);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!((accepted(&main_std), accepted(&side_std)), (0, 20));
        steer(&main, 0).unwrap();
        clients.extend(connect(20));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!((accepted(&main_std), accepted(&side_std)), (20, 0));
        let mut byte = [0u8; 1];
        assert_eq!(clients[0].read(&mut byte).unwrap(), 1);
    }
}
